#!/usr/bin/python3
"""Two threads of one process open the same file: the main thread holds it
for half a second while a second thread tries it without waiting, then
waits for it.

Usage: two_threads.py PATH
Prints the second thread's O_NONBLOCK result ("OK" or the errno name) and
how long its blocking open waited, in seconds.
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
    result["waited"] = time.monotonic() - t0
    os.close(fd)


fd = os.open(path, os.O_RDWR)
t = threading.Thread(target=second)
t.start()
held.set()
time.sleep(0.5)
os.close(fd)
t.join()
print(result["nonblock"], "%.3f" % result["waited"])
