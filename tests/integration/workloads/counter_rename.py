#!/usr/bin/python3
"""The counter updated the way editors and `sed -i` save files: read it,
write the new contents to a temporary file beside it, rename that over it.

Usage: counter_rename.py ITERATIONS (in the directory of counter.txt).
"""
import os
import sys

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 100
tmp = "counter.txt.tmp.%d" % os.getpid()

for _ in range(iterations):
    with open("counter.txt") as f:
        n = int(f.read())
    with open(tmp, "w") as f:
        f.write(str(n + 1))
    os.rename(tmp, "counter.txt")
