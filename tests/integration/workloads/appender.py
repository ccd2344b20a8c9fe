#!/usr/bin/python3
"""A long-lived logger: opens the log for appending once, keeps it open,
and writes one whole line at a time with small pauses.

Usage: appender.py LOG NAME LINES PAUSE_SECONDS
Each line is "NAME N" for N = 0 .. LINES-1.
"""
import sys
import time

log, name, lines, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

with open(log, "a") as f:
    for i in range(lines):
        f.write("%s %d\n" % (name, i))
        f.flush()
        time.sleep(pause)
