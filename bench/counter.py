#!/usr/bin/python3
"""One worker of the counter benchmark.

    counter.py VARIANT FILE ITERATIONS

VARIANT is one of
    bare         the unmodified read-close-reopen-write loop
    filelock     the same loop, each RMW inside filelock.FileLock(FILE.lock)
    portalocker  the same loop, each RMW inside portalocker.Lock(FILE.lock)

The worker imports everything, prints "ready", then waits for end-of-file on
stdin so that the driver can start all workers' loops at the same moment
(interpreter start-up is outside the timed part). It then prints one line:

    START END TORN

START and END are CLOCK_MONOTONIC seconds around the loop (comparable across
processes), TORN counts reads that found the file empty or half-written. The
unmodified script would die of ValueError at the first torn read; the worker
counts it and skips that iteration instead, so that the run still measures the
rate of the others.
"""
import os
import sys
import time


def rmw(name):
    # Exactly the script from the README: nothing here knows about locks.
    with open(name) as f:
        n = int(f.read())
    with open(name, "w") as f:
        f.write(str(n + 1))


def main():
    variant, path, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.chdir(os.path.dirname(os.path.abspath(path)))
    name = os.path.basename(path)
    lock = None
    if variant == "filelock":
        import filelock
        lock = filelock.FileLock(name + ".lock")
    elif variant == "portalocker":
        import portalocker
        # The default timeout (5 s) fails under contention with ten
        # workers; the polling interval stays at the library's default.
        lock = portalocker.Lock(name + ".lock", timeout=600)
    elif variant != "bare":
        sys.exit("unknown variant " + variant)

    print("ready", flush=True)
    sys.stdin.buffer.read()
    torn = 0
    start = time.monotonic()
    if lock is None:
        for _ in range(iters):
            try:
                rmw(name)
            except ValueError:
                torn += 1
    else:
        for _ in range(iters):
            with lock:
                try:
                    rmw(name)
                except ValueError:
                    torn += 1
    end = time.monotonic()
    print(f"{start:.9f} {end:.9f} {torn}", flush=True)


if __name__ == "__main__":
    main()
