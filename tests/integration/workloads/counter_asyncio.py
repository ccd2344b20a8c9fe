#!/usr/bin/python3
"""The counter written the asyncio way: the blocking read and the blocking
write each go to the default executor's thread pool with asyncio.to_thread,
so one increment's read and write usually run on two different threads.

Usage: counter_asyncio.py ITERATIONS (in the directory of counter.txt).
No locking of its own.
"""
import asyncio
import sys


def read():
    with open("counter.txt") as f:
        return int(f.read())


def write(v):
    with open("counter.txt", "w") as f:
        f.write(str(v))


async def main(iterations):
    for _ in range(iterations):
        v = await asyncio.to_thread(read)
        await asyncio.to_thread(write, v + 1)


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
