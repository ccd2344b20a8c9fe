"""Faults under a running mount: a full source, a source that disappears,
and a daemon killed in the middle of work.

What must hold whatever goes wrong: programs get an error, never a hang
(every call here is bounded by a timeout); a lock held by a program that got
an error is released; writes a program saw succeed are on the source; the
daemon that survived a fault keeps serving and unmounts cleanly; a killed
daemon's mount can be unmounted and mounted again.
"""

import errno
import json
import os
import re
import signal
import subprocess
import tempfile
import textwrap
import time
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount, Programs

# The counter of the kill test: read the number, write it back plus one, and
# print each value whose write was acknowledged (close returned), so the
# test knows what must be on the source. Ends on the first error.
COUNTER = textwrap.dedent(r'''
    import errno, sys
    while True:
        try:
            with open("counter") as f:
                text = f.read()
            n = int(text) if text else 0
            with open("counter", "w") as f:
                f.write(str(n + 1))
        except OSError as e:
            print("ERR", errno.errorcode.get(e.errno, e.errno), flush=True)
            sys.exit(1)
        except ValueError:
            print("TORN", repr(text), flush=True)
            sys.exit(2)
        print(n + 1, flush=True)
''')

# The errors an operation on a source that is gone may report.
GONE_ERRORS = {"ENOENT", "ESTALE", "EIO", "ENOTCONN", "ENODEV"}


def tmpfs(test, size):
    """A fresh tmpfs of `size` (mount -o size=), unmounted (lazily if busy)
    after the test."""
    d = test.make_tempdir()
    harness.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=755" % size, "tmpfs", d],
                check=True)

    def cleanup():
        if any(m["mountpoint"] == d for m in harness.mounts()):
            if harness.run(["umount", d]).returncode != 0:
                harness.run(["umount", "-l", d])
    test.addCleanup(cleanup)
    return d


class FaultTestCase(LockfsTestCase):
    def setUp(self):
        harness.require_root()  # tmpfs mounts

    def bounded(self, code, cwd, timeout=15):
        """Runs a snippet (harness.outcome helpers) under a timeout: a hang
        fails the test instead of blocking it."""
        return harness.outcome(code, cwd, timeout=timeout)

    def assertDaemonUp(self, m):
        self.assertIsNone(m.proc.poll(), "the daemon died:\n" + m._read_stderr())
        self.assertTrue(harness.is_lockfs_mounted(m.mnt))

    def assertClean(self, m):
        """No sanitizer report in the daemon's output (sanitizer builds)."""
        self.assertEqual(harness.sanitizer_reports(m.stderr_text), [], m.stderr_text[-4000:])

    def assertFailedWith(self, result, allowed, what):
        self.assertIn("errno", result, "%s succeeded: %s" % (what, result))
        self.assertIn(result["errno"], allowed, "%s: %s" % (what, result))


class SourceFull(FaultTestCase):
    def test_enospc_releases_the_lock(self):
        src = tmpfs(self, "1m")
        with Mount(source=src) as m:
            # The first writer fills the source and fails, then stays alive
            # (its file closed) so a lock it kept by mistake would show.
            first = harness.spawn_py(r'''
                import errno, os, sys
                try:
                    with open("big", "wb") as f:
                        for _ in range(64):
                            f.write(b"x" * 65536)
                            f.flush()
                    print("ok", flush=True)
                except OSError as e:
                    print(errno.errorcode.get(e.errno, e.errno), flush=True)
                sys.stdin.read()
                ''', cwd=m.mnt)
            try:
                self.assertEqual(harness.read_line(first, 30).strip(), "ENOSPC")
                r = self.bounded(r'''
                    t0 = time.monotonic()
                    with open("big", "w") as f:
                        f.write("next\n")
                    R["seconds"] = time.monotonic() - t0
                    ''', m.mnt)
                self.assertLess(r["seconds"], 1.0, "the next writer waited: lock not released")
                with open(os.path.join(src, "big")) as f:
                    self.assertEqual(f.read(), "next\n")
                # Space is back: an ordinary write works.
                r = self.bounded('''R["w"] = attempt(lambda: open("g", "w").write("g"))''',
                                 m.mnt)
                self.assertEqual(r["w"], {"ok": 1})
                self.assertDaemonUp(m)
            finally:
                harness.stop_process(first)
        self.assertEqual(m.returncode, 0)
        self.assertClean(m)


class SourceGone(FaultTestCase):
    OPS = r'''
    R["create"] = attempt(lambda: open("new", "w").write("x"))
    R["open_old"] = attempt(lambda: open("f").read())
    R["append_old"] = attempt(lambda: open("f", "a").write("y"))
    R["mkdir"] = attempt(os.mkdir, "newdir")
    R["list"] = attempt(os.listdir, ".")
    R["list_sub"] = attempt(os.listdir, "sub")
    R["stat_old"] = attempt(lambda: os.stat("sub/g").st_size)
    R["rename"] = attempt(os.rename, "f", "f2")
    R["unlink"] = attempt(os.unlink, "sub/g")
    R["statvfs"] = attempt(lambda: os.statvfs(".").f_bsize > 0)
    '''

    def populate(self, d):
        with open(os.path.join(d, "f"), "w") as f:
            f.write("old")
        os.mkdir(os.path.join(d, "sub"))
        with open(os.path.join(d, "sub", "g"), "w") as f:
            f.write("gg")

    def hold_open(self, m):
        """A program that keeps sub/g open for reading across the fault and
        reads it when told to; returns its Popen."""
        p = harness.spawn_py(r'''
            import errno, os, sys
            fd = os.open("sub/g", os.O_RDONLY)
            print("open", flush=True)
            sys.stdin.readline()
            try:
                print("read", os.pread(fd, 10, 0).decode(), flush=True)
            except OSError as e:
                print("err", errno.errorcode.get(e.errno, e.errno), flush=True)
            os.close(fd)
            ''', cwd=m.mnt)
        self.assertEqual(harness.read_line(p).strip(), "open")
        return p

    def check_after(self, m, holder, source_gone):
        # Past the kernel's name cache (entry_timeout 1 s): the daemon is asked.
        time.sleep(1.2)
        r = self.bounded(self.OPS, m.mnt)
        if os.environ.get("LOCKFS_FAULTS_SHOW"):
            print(r)
        if source_gone:
            self.assertFailedWith(r["create"], GONE_ERRORS, "create in a removed source")
            self.assertFailedWith(r["mkdir"], GONE_ERRORS, "mkdir in a removed source")
            self.assertFailedWith(r["open_old"], GONE_ERRORS, "open of a removed file")
            self.assertFailedWith(r["stat_old"], GONE_ERRORS, "stat of a removed file")
            self.assertFailedWith(r["rename"], GONE_ERRORS, "rename of a removed file")
        for name, res in r.items():
            if "errno" in res:
                self.assertIn(res["errno"], GONE_ERRORS, "%s: %s" % (name, res))
        holder.stdin.write("go\n")
        holder.stdin.flush()
        line = harness.read_line(holder, 15).split()
        # The open handle still reaches its (unlinked) file, or reports why not.
        if line[0] == "read":
            self.assertEqual(line[1], "gg")
        else:
            self.assertIn(line[1], GONE_ERRORS)
        harness.stop_process(holder)
        self.assertDaemonUp(m)
        return r

    def test_source_directory_removed(self):
        top = self.make_tempdir()
        src = os.path.join(top, "src")
        os.mkdir(src)
        self.populate(src)
        with Mount(source=src) as m:
            holder = self.hold_open(m)
            try:
                harness.run(["rm", "-rf", src], check=True)
                self.check_after(m, holder, source_gone=True)
            finally:
                harness.stop_process(holder)
            self.assertEqual(m.stop(), 0)
        self.assertNotMounted(m.mnt)
        self.assertClean(m)

    def test_source_tmpfs_unmounted_lazily(self):
        src = tmpfs(self, "4m")
        self.populate(src)
        with Mount(source=src) as m:
            holder = self.hold_open(m)
            try:
                harness.run(["umount", "-l", src], check=True)
                self.assertFalse(any(x["mountpoint"] == src and x["fstype"] == "tmpfs"
                                     for x in harness.mounts()))
                # The daemon's descriptors keep the detached tmpfs alive:
                # operations may still succeed there, or fail with a clear
                # error; none may hang.
                r = self.check_after(m, holder, source_gone=False)
            finally:
                harness.stop_process(holder)
            self.assertEqual(m.stop(), 0)
        self.assertNotMounted(m.mnt)
        self.assertClean(m)
        # Whatever happened, it happened on the detached tmpfs, not on the
        # directory now visible at the source's path.
        self.assertEqual(sorted(os.listdir(src)), [])
        self.assertIsNotNone(r)


class DaemonKilled(FaultTestCase):
    WORKERS = 10

    def run_counters_and_kill(self, m):
        """Ten counters through the mount; the daemon is killed with
        SIGKILL mid-run. Returns every acknowledged value and the programs'
        exit codes and last lines, once all have ended (10 s at most)."""
        with open(m.src_path("counter"), "w") as f:
            f.write("0")
        script = os.path.join(self.make_tempdir(), "counter.py")
        with open(script, "w") as f:
            f.write(COUNTER)
        with Programs([[PYTHON, script]] * self.WORKERS, cwd=m.mnt) as g:
            deadline = time.monotonic() + 20
            # Kill once the run is well under way (some increments done).
            while time.monotonic() < deadline:
                with open(m.src_path("counter")) as f:
                    text = f.read()
                if text.isdigit() and int(text) >= 50:
                    break
                time.sleep(0.05)
            self.assertTrue(g.running(), "the counters ended before the kill")
            os.kill(m.pid, signal.SIGKILL)
            t0 = time.monotonic()
            m.proc.wait(timeout=10)
            codes = g.wait(10)
            ended = time.monotonic() - t0
            acked, last = [], []
            for i in range(self.WORKERS):
                out, err = g.output(i)
                acked += [int(x) for x in out.splitlines() if x.isdigit()]
                last.append(out.splitlines()[-1] if out.strip() else err[-200:])
        return acked, codes, last, ended

    def check_source(self, m, acked):
        self.assertTrue(acked, "no write was acknowledged before the kill")
        # Each increment held the lock: no value was written twice.
        self.assertEqual(len(acked), len(set(acked)), "lost updates before the kill")
        with open(m.src_path("counter")) as f:
            text = f.read()
        # Empty: a writer's O_TRUNC open went through and its write did not.
        if text:
            self.assertTrue(text.isdigit(), "torn counter %r" % text)
            self.assertGreaterEqual(int(text), max(acked),
                                    "an acknowledged write is not on the source")

    def test_sigkill_mid_counter_run(self):
        with Mount(check_exit=False) as m:
            acked, codes, last, ended = self.run_counters_and_kill(m)
            self.assertEqual(m.proc.returncode, -signal.SIGKILL)
            self.assertTrue(all(c != 0 for c in codes), (codes, last))
            for line in last:
                self.assertRegex(line, r"^ERR (ENOTCONN|ECONNABORTED|EIO)$")
            self.check_source(m, acked)
            # The dead mount: errors at once, then a clean unmount and a
            # new mount on the same mount point.
            r = harness.run(["cat", m.path("counter")], timeout=10)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not connected", r.stderr)
            r = harness.run(["fusermount3", "-u", m.mnt], timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotMounted(m.mnt)
            with Mount(source=m.src, mountpoint=m.mnt) as m2:
                r = harness.run(["sh", "-c", "n=$(cat counter); echo $((n+1)) > counter; "
                                 "cat counter"], cwd=m2.mnt, timeout=10, check=True)
                with open(m.src_path("counter")) as f:
                    self.assertEqual(int(r.stdout), int(f.read()))
            self.assertEqual(m2.returncode, 0)
            self.assertClean(m2)
        self.assertClean(m)
        self.assertLess(ended, 10.0)

    def test_sigkill_with_auto_unmount(self):
        with Mount(["auto_unmount"], check_exit=False) as m:
            acked, codes, last, ended = self.run_counters_and_kill(m)
            self.check_source(m, acked)
            self.assertTrue(all(c != 0 for c in codes), (codes, last))
            deadline = time.monotonic() + 5
            while harness.is_lockfs_mounted(m.mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertNotMounted(m.mnt)
        self.assertClean(m)
        self.assertLess(ended, 10.0)


class DaemonCannotSwitchGroups(FaultTestCase):
    """A daemon running as root without CAP_SETGID (a hardened unit file,
    a container) cannot take a caller's groups: setgroups and setfsgid
    fail. The request must then fail with EPERM rather than run with the
    caller's uid but the daemon's gid and groups (root's), which would read a
    file that only root's group may read."""

    def test_request_fails_instead_of_running_with_daemon_groups(self):
        wrapper = os.path.join(self.make_tempdir(), "lockfs-nosetgid")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec setpriv --bounding-set -setgid --inh-caps -setgid %s \"$@\"\n"
                    % harness.lockfs_bin())
        os.chmod(wrapper, 0o755)
        with Mount(["allow_other"], binary=wrapper) as m:
            with open("/proc/%d/status" % m.pid) as f:
                eff = int(re.search(r"^CapEff:\s+([0-9a-f]+)", f.read(), re.M).group(1), 16)
            self.assertFalse(eff & (1 << 6), "the daemon still has CAP_SETGID")
            os.chmod(m.tmp, 0o755)
            os.chmod(m.src, 0o755)
            with open(m.src_path("rootgroup"), "w") as f:
                f.write("only root's group")
            os.chmod(m.src_path("rootgroup"), 0o640)  # root:root
            r = harness.outcome('''
                R["read"] = attempt(lambda: open("rootgroup").read())
                R["create"] = attempt(lambda: open("new", "w").close())
                ''', m.mnt, user=(harness.NOBODY, harness.NOGROUP, []))
            self.assertEqual(r["read"], {"errno": "EPERM"})
            self.assertEqual(r["create"], {"errno": "EPERM"})
            self.assertFalse(os.path.exists(m.src_path("new")))
            self.assertIn("refusing a request with EPERM", m._read_stderr())
        self.assertClean(m)


if __name__ == "__main__":
    unittest.main()
