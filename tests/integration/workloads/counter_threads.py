#!/usr/bin/python3
"""The counter loop of counter_rmw.py, run by several threads of one process.

Usage: counter_threads.py THREADS ITERATIONS (in the directory of
counter.txt). An exception in a thread does not end a Python process, so the
threads that died are counted and reported through the exit status (1) and
one line "crashed N" on stdout.
"""
import sys
import threading
import traceback

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 15
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 100
crashed = []


def work():
    try:
        for _ in range(iterations):
            with open("counter.txt") as f:
                n = int(f.read())
            with open("counter.txt", "w") as f:
                f.write(str(n + 1))
    except Exception:
        crashed.append(traceback.format_exc())


pool = [threading.Thread(target=work) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print("crashed", len(crashed))
if crashed:
    sys.stderr.write(crashed[0])
sys.exit(1 if crashed else 0)
