#!/usr/bin/python3
"""Python workers of the readers benchmark (bench.py bench_readers).

    readers.py threads FILE PER_THREAD SHORT
    readers.py tothread FILE ITERATIONS

threads   4 threads each read FILE PER_THREAD times (open, read, close), at
          the same time; then SHORT short-lived threads are started, each
          reading FILE once, and all are joined: a thread pool and a
          thread-per-request server reading one configuration file.
tothread  one asyncio coroutine increments the counter in FILE ITERATIONS
          times: `v = await asyncio.to_thread(read)`, then
          `await asyncio.to_thread(write, v + 1)` (the read and the write
          run on the default executor's threads, perhaps not the same one).

The worker imports everything, prints "ready", then waits for end-of-file on
stdin, so that the driver can start several workers' loops at the same moment
(interpreter start-up is outside the timed part). It then prints one line:

    START END BAD

START and END are CLOCK_MONOTONIC seconds around the timed part (comparable
across processes); BAD counts reads that did not return the file's whole
content (threads: any read that differs from the first; tothread: a read
that found the file empty or cut short, which the unmodified program would
die of; the worker counts it and skips that increment).
"""
import asyncio
import os
import sys
import threading
import time


def read(name):
    with open(name) as f:
        return f.read()


def write(name, text):
    with open(name, "w") as f:
        f.write(text)


def threads(name, per_thread, short):
    want = read(name)
    bad = [0]
    lock = threading.Lock()

    def reader(k):
        for _ in range(k):
            if read(name) != want:
                with lock:
                    bad[0] += 1

    print("ready", flush=True)
    sys.stdin.buffer.read()
    start = time.monotonic()
    pool = [threading.Thread(target=reader, args=(per_thread,)) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    shorts = [threading.Thread(target=reader, args=(1,)) for _ in range(short)]
    for t in shorts:
        t.start()
    for t in shorts:
        t.join()
    end = time.monotonic()
    return start, end, bad[0]


def tothread(name, iters):
    async def loop():
        bad = 0
        for _ in range(iters):
            text = await asyncio.to_thread(read, name)
            try:
                v = int(text)
            except ValueError:
                bad += 1
                continue
            await asyncio.to_thread(write, name, str(v + 1))
        return bad

    print("ready", flush=True)
    sys.stdin.buffer.read()
    start = time.monotonic()
    bad = asyncio.run(loop())
    end = time.monotonic()
    return start, end, bad


def main():
    mode, path = sys.argv[1], sys.argv[2]
    os.chdir(os.path.dirname(os.path.abspath(path)))
    name = os.path.basename(path)
    if mode == "threads":
        r = threads(name, int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "tothread":
        r = tothread(name, int(sys.argv[3]))
    else:
        sys.exit("unknown mode " + mode)
    print(f"{r[0]:.9f} {r[1]:.9f} {r[2]}", flush=True)


if __name__ == "__main__":
    main()
