#!/usr/bin/python3
"""Many threads of one process read one file and never write it: a
ThreadPoolExecutor of THREADS threads doing READS reads in all, then SHORT
short-lived threads (a thread per read, each exiting at once).

Usage: thread_readers.py FILE THREADS READS SHORT. Prints
"pool N short M": how many reads returned the file's full contents.
"""
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

path = sys.argv[1]
threads, reads, short = (int(a) for a in sys.argv[2:5])
with open(path) as f:
    expected = f.read()
# (The main thread read it first, as programs read their configuration at
# start: the workers below then begin beside their main thread's lease.)


def read(_=None):
    with open(path) as f:
        return f.read() == expected


with ThreadPoolExecutor(threads) as ex:
    pool_ok = sum(ex.map(read, range(reads)))

results = []


def one():
    results.append(read())


ths = [threading.Thread(target=one) for _ in range(short)]
for t in ths:
    t.start()
for t in ths:
    t.join()
print("pool %d short %d" % (pool_ok, sum(results)))
