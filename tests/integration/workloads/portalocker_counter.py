#!/usr/bin/python3
"""A program that already coordinates: each increment of counter.txt is
wrapped in portalocker.Lock on counter.txt.lock (opened for appending and
locked with flock, as portalocker does by default).

Usage: portalocker_counter.py ITERATIONS (in the directory of counter.txt).
"""
import sys

import portalocker

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50

for _ in range(iterations):
    with portalocker.Lock("counter.txt.lock", timeout=60, check_interval=0.005):
        with open("counter.txt") as f:
            n = int(f.read())
        with open("counter.txt", "w") as f:
            f.write(str(n + 1))
