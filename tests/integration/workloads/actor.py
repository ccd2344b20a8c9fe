#!/usr/bin/python3
"""A process that opens and closes files when told to, for tests that need
to hold a file, wait for one, or race two programs in a chosen order.

Commands arrive one per line on stdin; every command is answered by one JSON
line on stdout. All file operations run in the main thread, so the process's
lock owner is one thread throughout.

    open ID PATH MODE [nonblock]   MODE: r  (O_RDONLY)
                                         rw (O_RDWR)
                                         w  (O_WRONLY|O_CREAT|O_TRUNC)
                                         a  (O_WRONLY|O_APPEND)
    close ID
    map ID                         mmap the open file ID shared and writable
    spare N                        open N more descriptors (of /dev/null)
    unmap ID
    read PATH                      open O_RDONLY, read all, close
    write PATH TEXT                open O_WRONLY|O_CREAT|O_TRUNC, write, close
    exit

Before an operation that may wait, a {"begin": CMD} line is printed, so a
test knows the request was made. Answers carry "ok", "errno" on failure and
"t", time.monotonic() when the operation returned (the clock is shared by
all processes, so tests can compare it with their own).

Signals are left at their defaults: SIGINT raises KeyboardInterrupt out of a
waiting open(), which is what a user pressing Ctrl-C sees.
"""
import ctypes
import json
import mmap
import os
import sys
import time

MODES = {
    "r": os.O_RDONLY,
    "rw": os.O_RDWR,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_APPEND,
}

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def say(**kw):
    kw["t"] = time.monotonic()
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    fds = {}
    maps = {}
    say(hello=True, pid=os.getpid())
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        say(begin=cmd, args=words[1:])
        try:
            if cmd == "open":
                ident, path, mode = words[1:4]
                flags = MODES[mode]
                if "nonblock" in words[4:]:
                    flags |= os.O_NONBLOCK
                fds[ident] = os.open(path, flags, 0o644)
                say(cmd=cmd, ok=True, id=ident)
            elif cmd == "close":
                os.close(fds.pop(words[1]))
                say(cmd=cmd, ok=True, id=words[1])
            elif cmd == "map":
                # Through libc: Python's mmap module keeps a duplicate of
                # the descriptor, and the point is a mapping without one.
                size = os.fstat(fds[words[1]]).st_size
                addr = LIBC.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                                 mmap.MAP_SHARED, fds[words[1]], 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    raise OSError(ctypes.get_errno(), "mmap failed")
                maps[words[1]] = (addr, size)
                say(cmd=cmd, ok=True, id=words[1])
            elif cmd == "unmap":
                addr, size = maps.pop(words[1])
                LIBC.munmap(ctypes.c_void_p(addr), size)
                say(cmd=cmd, ok=True, id=words[1])
            elif cmd == "spare":
                spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(int(words[1]))]
                say(cmd=cmd, ok=True, fds=len(spare))
            elif cmd == "read":
                with open(words[1]) as f:
                    data = f.read()
                say(cmd=cmd, ok=True, data=data)
            elif cmd == "write":
                with open(words[1], "w") as f:
                    f.write(" ".join(words[2:]))
                say(cmd=cmd, ok=True)
            elif cmd == "exit":
                say(cmd=cmd, ok=True)
                return 0
            else:
                say(cmd=cmd, ok=False, errno=0, error="unknown command")
        except OSError as e:
            say(cmd=cmd, ok=False, errno=e.errno, error=str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
