#!/usr/bin/python3
"""Two threads of one process open the same file: the main thread holds it
open for writing for half a second while a second thread tries it without
waiting, then opens it for writing (which joins the main thread's hold: one
program's flow of work may move between threads), then for reading (which
waits: threads that race a read-modify-write are serialized).

Usage: two_threads.py PATH
Prints the second thread's O_NONBLOCK result ("OK" or the errno name), how
long its write open waited and how long its read open waited, in seconds.
"""
import errno
import os
import sys
import threading
import time

path = sys.argv[1]
held = threading.Event()
result = {}


def second():
    held.wait()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        result["nonblock"] = "OK"
    except OSError as e:
        result["nonblock"] = errno.errorcode.get(e.errno, str(e.errno))
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDWR)
    result["write"] = time.monotonic() - t0
    os.close(fd)
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    result["read"] = time.monotonic() - t0
    os.close(fd)


fd = os.open(path, os.O_RDWR)
t = threading.Thread(target=second)
t.start()
held.set()
time.sleep(0.5)
os.close(fd)
t.join()
print(result["nonblock"], "%.3f" % result["write"], "%.3f" % result["read"])
