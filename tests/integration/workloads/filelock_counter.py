#!/usr/bin/python3
"""A program that already coordinates: each increment of counter.txt is
wrapped in filelock.FileLock on counter.txt.lock.

Usage: filelock_counter.py ITERATIONS (in the directory of counter.txt).
"""
import sys

from filelock import FileLock

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50
lock = FileLock("counter.txt.lock", timeout=60)

for _ in range(iterations):
    with lock:
        with open("counter.txt") as f:
            n = int(f.read())
        with open("counter.txt", "w") as f:
            f.write(str(n + 1))
