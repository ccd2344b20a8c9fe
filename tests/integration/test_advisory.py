"""Advisory locks (flock, POSIX fcntl locks, OFD locks) reach the source
file system, so they are shared by every mount of one SOURCE and by programs
using SOURCE directly.

Two lockfs daemons (mounts A and B) serve one SOURCE. A lock holder always
opens its file through A; the contenders use B or SOURCE itself. Why this
cannot deadlock against lockfs's own (mandatory) locks: the holder's open
through A takes the file in A's lock table, but B is a separate daemon with a
separate table, and SOURCE is not a lockfs mount at all, so neither of their
opens waits for the holder. Only a second open through A itself would wait
(in open(2), before any flock could be tried), which is why no contender here
uses A while the holder has the file open.
"""

import contextlib
import os
import shutil
import signal
import tempfile
import time
import unittest

from harness import (LockfsTestCase, Mount, TMP_PREFIX, py, read_line, spawn_py, stop_process)

LOCKLIB = r"""
import errno, fcntl, os, struct, sys
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
NAMES = {v: k for k, v in TYPES.items()}

def flock_struct(t, start=0, length=0):
    return struct.pack("@hhqqi4x", TYPES[t], os.SEEK_SET, start, length, 0)

def fcntl_lock(fd, kind, t, block, start=0, length=0):
    # kind: "posix" or "ofd"
    if kind == "posix":
        cmd = fcntl.F_SETLKW if block else fcntl.F_SETLK
    else:
        cmd = F_OFD_SETLKW if block else F_OFD_SETLK
    fcntl.fcntl(fd, cmd, flock_struct(t, start, length))

def fcntl_getlk(fd, kind, t, start=0, length=0):
    cmd = fcntl.F_GETLK if kind == "posix" else F_OFD_GETLK
    r = fcntl.fcntl(fd, cmd, flock_struct(t, start, length))
    ltype, _, lstart, llen, lpid = struct.unpack("@hhqqi4x", r)
    return NAMES[ltype], lstart, llen

def take(fd, kind, t, block, start=0, length=0):
    if kind == "flock":
        op = {"r": fcntl.LOCK_SH, "w": fcntl.LOCK_EX, "u": fcntl.LOCK_UN}[t]
        fcntl.flock(fd, op | (0 if block else fcntl.LOCK_NB))
    else:
        fcntl_lock(fd, kind, t, block, start, length)

def open_for(path, kind):
    # flock works on any descriptor; record write locks need write access.
    return os.open(path, os.O_RDONLY if kind == "flock" else os.O_RDWR)

def try_lock(path, kind, t, start=0, length=0):
    # "ok" or the errno name of a non-blocking attempt from a fresh process.
    fd = open_for(path, kind)
    try:
        take(fd, kind, t, False, start, length)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)
"""

# Holds a lock until told: stdin "close" closes the file, "exit" exits.
HOLDER = LOCKLIB + r"""
path, kind, t = sys.argv[1:4]
start, length = int(sys.argv[4]), int(sys.argv[5])
fd = open_for(path, kind)
take(fd, kind, t, True, start, length)
print("locked", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        os.close(fd)
        print("closed", flush=True)
    elif line.strip() == "exit":
        break
"""

PROBE = LOCKLIB + r"""
path, kind, t = sys.argv[1:4]
start, length = int(sys.argv[4]), int(sys.argv[5])
print(try_lock(path, kind, t, start, length))
"""

GETLK = LOCKLIB + r"""
path, kind, t = sys.argv[1:4]
start, length = int(sys.argv[4]), int(sys.argv[5])
fd = os.open(path, os.O_RDWR)
print(*fcntl_getlk(fd, kind, t, start, length))
"""

# Blocks in a lock; reports "interrupted" when SIGINT ends the wait.
WAITER = LOCKLIB + r"""
path, kind, t = sys.argv[1:4]
fd = open_for(path, kind)
print("waiting", flush=True)
try:
    take(fd, kind, t, True)
    print("got", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
sys.stdin.read()
"""

SYSCALLS = {"flock": 73, "posix": 72, "ofd": 72}  # x86_64 flock, fcntl


class Advisory(LockfsTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.src = tempfile.mkdtemp(prefix=TMP_PREFIX)
        cls.a = Mount(source=cls.src)
        cls.a.start()
        try:
            cls.b = Mount(source=cls.src)
            cls.b.start()
        except BaseException:
            cls.a.close(raise_errors=False)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.close()
        finally:
            try:
                cls.a.close()
            finally:
                shutil.rmtree(cls.src, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.name = self._testMethodName
        self.ps = os.path.join(self.src, self.name)
        with open(self.ps, "w") as f:
            f.write("advisory " * 100)
        self.pa = self.a.path(self.name)
        self.pb = self.b.path(self.name)
        self.procs = []

    def tearDown(self):
        self.stop_all()

    def stop_all(self):
        """Ends every helper process, so that a failed step cannot leave a
        lock behind for the next one."""
        for p in self.procs:
            stop_process(p)
        self.procs = []

    @contextlib.contextmanager
    def step(self, **params):
        with self.subTest(**params):
            try:
                yield
            finally:
                self.stop_all()

    def hold(self, path, kind, t="w", start=0, length=0):
        p = spawn_py(HOLDER, path, kind, t, start, length)
        self.procs.append(p)
        line = read_line(p, timeout=20)
        self.assertEqual(line.strip(), "locked", p.stderr.read() if p.poll() is not None else "")
        return p

    def tell(self, p, what):
        p.stdin.write(what + "\n")
        p.stdin.flush()

    def probe(self, path, kind, t="w", start=0, length=0):
        r = py(PROBE, path, kind, t, start, length, check=True)
        return r.stdout.strip()

    def getlk(self, path, kind, t="w", start=0, length=0):
        r = py(GETLK, path, kind, t, start, length, check=True)
        return r.stdout.split()

    def eventually(self, fn, expected, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def release_and_check(self, holder, how, path, kind):
        if how == "close":
            self.tell(holder, "close")
            self.assertEqual(read_line(holder).strip(), "closed")
        elif how == "exit":
            self.tell(holder, "exit")
            holder.wait(timeout=20)
        else:
            holder.kill()
            holder.wait(timeout=20)
        self.assertEqual(self.eventually(lambda: self.probe(path, kind), "ok"), "ok",
                         "%s lock not released after %s" % (kind, how))

    # -- flock

    def test_flock_exclusive_through_a_blocks_b_and_source(self):
        h = self.hold(self.pa, "flock", "w")    # on a read-only descriptor
        self.assertEqual(self.probe(self.pb, "flock", "w"), "EAGAIN")
        self.assertEqual(self.probe(self.pb, "flock", "r"), "EAGAIN")
        self.assertEqual(self.probe(self.ps, "flock", "w"), "EAGAIN")
        self.release_and_check(h, "close", self.pb, "flock")
        self.assertEqual(self.probe(self.ps, "flock", "w"), "ok")

    def test_flock_in_source_blocks_mount(self):
        h = self.hold(self.ps, "flock", "w")
        self.assertEqual(self.probe(self.pa, "flock", "w"), "EAGAIN")
        self.assertEqual(self.probe(self.pb, "flock", "r"), "EAGAIN")
        self.release_and_check(h, "close", self.pa, "flock")

    def test_flock_shared_locks_coexist(self):
        h = self.hold(self.pa, "flock", "r")
        self.assertEqual(self.probe(self.pb, "flock", "r"), "ok")
        self.assertEqual(self.probe(self.ps, "flock", "r"), "ok")
        self.assertEqual(self.probe(self.pb, "flock", "w"), "EAGAIN")
        self.release_and_check(h, "exit", self.pb, "flock")

    def test_flock_released_when_holder_exits_or_dies(self):
        for how in ["exit", "kill"]:
            with self.step(how=how):
                h = self.hold(self.pa, "flock", "w")
                self.assertEqual(self.probe(self.pb, "flock", "w"), "EAGAIN")
                self.release_and_check(h, how, self.pb, "flock")

    # -- POSIX and OFD record locks

    def test_record_locks_conflict_across_mounts(self):
        for kind in ["posix", "ofd"]:
            with self.step(kind=kind):
                h = self.hold(self.pa, kind, "w")
                for path in (self.pb, self.ps):
                    self.assertIn(self.probe(path, kind, "w"), ("EAGAIN", "EACCES"))
                    self.assertIn(self.probe(path, kind, "r"), ("EAGAIN", "EACCES"))
                # The other kind of record lock conflicts too.
                other = "ofd" if kind == "posix" else "posix"
                self.assertIn(self.probe(self.pb, other, "w"), ("EAGAIN", "EACCES"))
                ltype, _, _ = self.getlk(self.pb, kind, "w")
                self.assertEqual(ltype, "w")
                ltype, _, _ = self.getlk(self.ps, kind, "r")
                self.assertEqual(ltype, "w")
                self.release_and_check(h, "close", self.pb, kind)
                self.assertEqual(self.getlk(self.pb, kind, "w")[0], "u")

    def test_record_lock_ranges(self):
        for kind in ["posix", "ofd"]:
            with self.step(kind=kind):
                h = self.hold(self.pa, kind, "w", 0, 100)
                self.assertEqual(self.probe(self.pb, kind, "w", 100, 100), "ok")
                self.assertIn(self.probe(self.pb, kind, "w", 50, 10), ("EAGAIN", "EACCES"))
                self.assertEqual(self.getlk(self.pb, kind, "w", 50, 10), ["w", "0", "100"])
                self.assertEqual(self.getlk(self.ps, kind, "w", 200, 100)[0], "u")
                self.release_and_check(h, "exit", self.pb, kind)

    def test_shared_record_locks_coexist(self):
        for kind in ["posix", "ofd"]:
            with self.step(kind=kind):
                h = self.hold(self.pa, kind, "r")
                self.assertEqual(self.probe(self.pb, kind, "r"), "ok")
                self.assertIn(self.probe(self.pb, kind, "w"), ("EAGAIN", "EACCES"))
                self.assertEqual(self.getlk(self.ps, kind, "w")[0], "r")
                self.release_and_check(h, "close", self.pb, kind)

    def test_record_locks_released_when_holder_exits_or_dies(self):
        for kind in ["posix", "ofd"]:
            for how in ["exit", "kill"]:
                with self.step(kind=kind, how=how):
                    h = self.hold(self.pa, kind, "w")
                    self.assertIn(self.probe(self.pb, kind, "w"), ("EAGAIN", "EACCES"))
                    self.release_and_check(h, how, self.pb, kind)

    # -- waiting

    def wait_blocked_in(self, proc, kind):
        """Until `proc` sits in the lock system call (so a signal then
        really interrupts a wait inside lockfs, not Python code)."""
        want = SYSCALLS[kind]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/syscall" % proc.pid) as f:
                    fields = f.read().split()
            except OSError:
                fields = []
            if fields and fields[0] == str(want):
                return
            time.sleep(0.05)
        self.fail("pid %d never blocked in syscall %d" % (proc.pid, want))

    def test_blocking_lock_waits_until_release(self):
        for kind in ["flock", "posix", "ofd"]:
            with self.step(kind=kind):
                h = self.hold(self.pa, kind, "w")
                w = spawn_py(WAITER, self.pb, kind, "w")
                self.procs.append(w)
                self.assertEqual(read_line(w).strip(), "waiting")
                self.wait_blocked_in(w, kind)
                time.sleep(0.3)
                self.assertIsNone(w.poll())
                self.tell(h, "close")
                self.assertEqual(read_line(w, timeout=10).strip(), "got")
                # Now the waiter holds it.
                self.assertIn(self.probe(self.ps, kind, "w"), ("EAGAIN", "EACCES"))
                stop_process(w)
                self.assertEqual(self.eventually(lambda: self.probe(self.ps, kind), "ok"), "ok")
                self.tell(h, "exit")

    def test_blocking_lock_is_interruptible(self):
        for kind in ["flock", "posix", "ofd"]:
            with self.step(kind=kind):
                h = self.hold(self.pa, kind, "w")
                w = spawn_py(WAITER, self.pb, kind, "w")
                self.procs.append(w)
                self.assertEqual(read_line(w).strip(), "waiting")
                self.wait_blocked_in(w, kind)
                w.send_signal(signal.SIGINT)
                self.assertEqual(read_line(w, timeout=10).strip(), "interrupted",
                                 "SIGINT did not end a lock wait through lockfs")
                self.assertEqual(w.wait(timeout=10), 0)
                # The daemon is healthy and nothing took the lock for the
                # interrupted waiter behind our back once the holder is gone.
                self.assertIn(self.probe(self.pb, kind, "w"), ("EAGAIN", "EACCES"))
                self.tell(h, "close")
                self.assertEqual(read_line(h).strip(), "closed")
                time.sleep(0.5)
                self.assertEqual(self.probe(self.ps, kind, "w"), "ok")
                self.assertEqual(self.probe(self.pb, kind, "w"), "ok")
                r = py("import sys; print(open(sys.argv[1]).read()[:8])", self.pb, check=True)
                self.assertEqual(r.stdout.strip(), "advisory")
                self.tell(h, "exit")


if __name__ == "__main__":
    unittest.main()
