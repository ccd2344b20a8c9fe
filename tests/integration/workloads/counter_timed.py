#!/usr/bin/python3
"""The unsafe counter of counter_rmw.py, timing each increment.

Run in the directory that holds counter.txt; the argument is the number of
iterations. Prints one line at the end: the longest increment in seconds
and the CLOCK_MONOTONIC time it ended at ("max=S at=T"), so that a test can
tell which increments waited through a fault and for how long.
"""
import sys
import time

iterations = int(sys.argv[1])
longest, at = 0.0, 0.0
for _ in range(iterations):
    t0 = time.monotonic()
    with open("counter.txt") as f:
        n = int(f.read())
    with open("counter.txt", "w") as f:
        f.write(str(n + 1))
    t1 = time.monotonic()
    if t1 - t0 > longest:
        longest, at = t1 - t0, t1
print("max=%.3f at=%.3f" % (longest, at))
