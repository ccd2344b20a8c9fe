#!/usr/bin/python3
"""A writer closes the file, then tells a second process, which at once
tries it with O_NONBLOCK: after a write's close the lock is free, so the
try must succeed every time.

Usage: close_then_probe.py PATH OTHER ROUNDS
After each try the second process reads OTHER, an unrelated file: a reader
that moves on to another file gives up its lease, so the writer never waits
for the probe.
Prints "refused N of ROUNDS" (N tries failed with EAGAIN) and exits 0, or
exits 1 on any other error. The two processes hand the turn to each other
through pipes, so no sleep is involved.
"""
import errno
import os
import sys

path, other, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
to_probe_r, to_probe_w = os.pipe()
to_writer_r, to_writer_w = os.pipe()

pid = os.fork()
if pid == 0:
    refused = 0
    for _ in range(rounds):
        os.read(to_probe_r, 1)
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
            refused += 1
        os.close(os.open(other, os.O_RDONLY))
        os.write(to_writer_w, b"x")
    print("refused %d of %d" % (refused, rounds), flush=True)
    os._exit(0)

for i in range(rounds):
    with open(path, "w") as f:
        f.write(str(i))
    os.write(to_probe_w, b"x")
    os.read(to_writer_r, 1)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
