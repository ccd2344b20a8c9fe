#!/usr/bin/python3
"""The classic unsafe counter: read the number, write it back plus one.

Run in the directory that holds counter.txt. No locking of its own: this is
the unmodified program lockfs has to make safe. The optional argument is the
number of iterations (default 100).
"""
import sys

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 100

for _ in range(iterations):
    with open("counter.txt") as f:
        n = int(f.read())
    with open("counter.txt", "w") as f:
        f.write(str(n + 1))
