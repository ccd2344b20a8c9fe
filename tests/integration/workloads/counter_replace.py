#!/usr/bin/python3
"""The counter saved the careful way: read it, write the new value to a
fresh temporary file beside it (tempfile.mkstemp), os.replace() that over
the counter. Atomic for readers, still a lost update without a lock.

Usage: counter_replace.py ITERATIONS (in the directory of counter.txt).
"""
import os
import sys
import tempfile

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 25

for _ in range(iterations):
    with open("counter.txt") as f:
        n = int(f.read())
    fd, tmp = tempfile.mkstemp(dir=".", prefix=".counter.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(str(n + 1))
    os.replace(tmp, "counter.txt")
