#!/usr/bin/python3
"""Two programs take turns rewriting one 1 MiB file.

    rewrite_turns.py ROLE LAST FILE

Each round's contents are whole 4 KiB blocks, each starting with the round's
number and filled with a byte that depends on it, so a read can tell a whole
round from a mix of two or a short file. The file starts as round 0. The
program with ROLE 0 writes the odd rounds, ROLE 1 the even ones: each reads
the file until it finds the round the other program wrote after its own
last one, checks it, and writes the next, until round LAST has been written
and read. Nothing here locks: the exclusion has to come from below.

Every read is classified: "whole" (the round we last wrote, or the one
after it, complete), "torn" (short, or not one round throughout) or "stale"
(a whole round older than one this program already saw). Prints one JSON
line with the counts and the first few bad reads; exits 2 if the other
program's round did not come within the time limit.
"""
import json
import os
import sys
import time

SIZE = 1 << 20
BLOCK = 4096


def contents(rnd):
    fill = bytes([(rnd * 37 + 11) % 256])
    block = b"round %08d\n" % rnd
    return (block + fill * (BLOCK - len(block))) * (SIZE // BLOCK)


def round_of(data):
    """The round a read shows, or None when it is not one whole round."""
    if len(data) != SIZE or not data.startswith(b"round "):
        return None
    try:
        rnd = int(data[6:14])
    except ValueError:
        return None
    return rnd if data == contents(rnd) else None


def main():
    role, last, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    deadline = time.monotonic() + float(os.environ.get("REWRITE_LIMIT", "240"))
    seen = 0            # the latest round read whole
    written = 0         # the latest round this program wrote
    counts = {"whole": 0, "torn": 0, "stale": 0, "written": 0, "theirs": 0}
    bad = []
    while seen < last:
        if time.monotonic() > deadline:
            counts["bad"] = bad
            counts["stuck_at"] = seen
            print(json.dumps(counts), flush=True)
            sys.exit(2)
        with open(path, "rb") as f:
            data = f.read()
        rnd = round_of(data)
        if rnd is None:
            counts["torn"] += 1
            if len(bad) < 5:
                bad.append("torn: %d bytes, starts %r" % (len(data), data[:14]))
            continue
        if rnd < seen:
            counts["stale"] += 1
            if len(bad) < 5:
                bad.append("stale: round %d after round %d" % (rnd, seen))
            continue
        counts["whole"] += 1
        if rnd > seen and rnd != written:
            counts["theirs"] += 1
        seen = rnd
        if rnd % 2 == role and rnd < last:
            data = contents(rnd + 1)
            with open(path, "wb") as f:
                # In pieces, as programs write big files: 16 write calls.
                for i in range(0, SIZE, SIZE // 16):
                    f.write(data[i:i + SIZE // 16])
            written = rnd + 1
            counts["written"] += 1
            if written == last:
                seen = last
        else:
            # The other program's turn: do not take the file from it at
            # every read.
            time.sleep(0.005)
    counts["bad"] = bad
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
