#!/usr/bin/python3
"""Thread A opens FILE for reading and, with it still open, starts thread B
and joins it; B opens FILE for writing and writes. If B's open had to wait
for A's read, and A waits for B, the program would hang for ever.

Usage: read_then_join_writer.py FILE. Prints what A then reads through its
still open descriptor, and B's text.
"""
import sys
import threading

path = sys.argv[1]
TEXT = "written by thread B\n"
out = {}


def b():
    with open(path, "w") as f:
        f.write(TEXT)
    out["b"] = "wrote"


def a():
    with open(path) as f:
        t = threading.Thread(target=b)
        t.start()
        t.join()
        out["a"] = f.read()


ta = threading.Thread(target=a)
ta.start()
ta.join()
print(out.get("b"), repr(out.get("a")))
