#!/usr/bin/python3
"""Loads a shared library with the dynamic loader (as any program linked
against it does at start), reports when it is loaded, then keeps it mapped.

Usage: load_library.py LIBRARY SECONDS
Prints "loaded T" with T = time.monotonic() right after the load.
"""
import ctypes
import sys
import time

ctypes.CDLL(sys.argv[1])
print("loaded", time.monotonic(), flush=True)
time.sleep(float(sys.argv[2]))
