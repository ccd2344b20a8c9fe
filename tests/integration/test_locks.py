"""Mandatory locks, end to end: real programs through a real lockfs mount.

Every safety test runs the same unmodified workload twice: on a plain
directory, where it must go wrong (lost updates, or copies dying with
ValueError after reading a file another copy had just truncated), and through
the mount, where the result must be exact. The plain run shows the workload
is heavy enough to expose the race, so an exact result through the mount
means something.

docs/semantics.md is the contract checked here. Every wait is bounded: each
program runs under a timeout, and a test that times out kills what it started
and fails with the daemon's stderr (harness.Mount prints it).
"""

import errno
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


def workload(name):
    return os.path.join(WORKLOADS, name)


# ---------------------------------------------------------------- helpers

class Group:
    """Several programs started at once, each in its own session so that a
    timeout can kill its children too (a shell and its cat)."""

    def __init__(self, cmds, cwd, env=None):
        self.cmds = cmds
        self.procs = []
        self.outs = []
        for cmd in cmds:
            out = tempfile.TemporaryFile()
            err = tempfile.TemporaryFile()
            self.outs.append((out, err))
            self.procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                               stdout=out, stderr=err,
                                               start_new_session=True))

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait()

    def wait(self, timeout):
        """Waits for all; returns [(returncode, stdout, stderr)]. On timeout
        kills everything and raises AssertionError with what they printed."""
        deadline = time.monotonic() + timeout
        timed_out = False
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
        if timed_out:
            running = [p.pid for p in self.procs if p.poll() is None]
            self.kill()
            raise AssertionError("timed out after %.0f s; still running: %s\n%s"
                                 % (timeout, running, self.describe()))
        return self.results()

    def results(self):
        res = []
        for p, (out, err) in zip(self.procs, self.outs):
            out.seek(0)
            err.seek(0)
            res.append((p.returncode, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace")))
        return res

    def describe(self, limit=3):
        lines = []
        for cmd, (rc, out, err) in list(zip(self.cmds, self.results()))[:limit]:
            lines.append("  %s -> %s\n    stdout: %s\n    stderr: %s"
                         % (" ".join(cmd), rc, out.strip()[-500:], err.strip()[-800:]))
        return "\n".join(lines)

    def close(self):
        self.kill()
        for out, err in self.outs:
            out.close()
            err.close()


def run_group(cmds, cwd, timeout):
    """Runs `cmds` concurrently; returns (results, seconds)."""
    t0 = time.monotonic()
    g = Group(cmds, cwd)
    try:
        res = g.wait(timeout)
        return res, time.monotonic() - t0
    finally:
        g.close()


class Actor:
    """workloads/actor.py: a process that opens and closes files on command,
    answering each command with a JSON line. Lets a test hold a file, make
    another process wait for it, and see exactly when that wait ends."""

    def __init__(self, test, cwd, name="actor"):
        self.name = name
        self.proc = subprocess.Popen([PYTHON, workload("actor.py")], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.answers = queue.Queue()
        self.stderr_lines = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        test.addCleanup(self.stop)
        hello = self.next(10)
        self.pid = hello["pid"]

    def _read_stdout(self):
        for line in self.proc.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                self.answers.put({"garbage": line})
        self.answers.put(None)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def stderr(self):
        return "".join(self.stderr_lines)

    def next(self, timeout):
        """The next answer; AssertionError when none comes in time."""
        try:
            a = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%s (pid %d) gave no answer within %.1f s"
                                 % (self.name, self.proc.pid, timeout)) from None
        if a is None:
            raise AssertionError("%s (pid %d) exited (status %s) without answering\n%s"
                                 % (self.name, self.proc.pid, self.proc.poll(), self.stderr()))
        return a

    def poll(self, timeout):
        """The next answer, or None when none comes within `timeout`."""
        try:
            a = self.answers.get(timeout=timeout)
        except queue.Empty:
            return None
        if a is None:
            raise AssertionError("%s (pid %d) exited (status %s) without answering\n%s"
                                 % (self.name, self.proc.pid, self.proc.poll(), self.stderr()))
        return a

    def start(self, command, timeout=10):
        """Sends a command and waits until the actor has begun it; returns
        the time it began (time.monotonic())."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        b = self.next(timeout)
        assert b.get("begin"), b
        return b["t"]

    def do(self, command, timeout=10):
        """Runs a command to completion and returns its answer."""
        self.start(command, timeout)
        return self.next(timeout)

    def ok(self, command, timeout=10):
        a = self.do(command, timeout)
        if not a.get("ok"):
            raise AssertionError("%s: %r failed: %s" % (self.name, command, a))
        return a

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass


class Actors:
    """Makes actors and stops them all on leaving the block. Use it inside
    the Mount's block (`with Mount() as m, Actors(self) as actor:`) so that
    no actor still has a file open in the mount when it is unmounted."""

    def __init__(self, test):
        self.test = test
        self.made = []

    def __call__(self, cwd, name="actor"):
        a = Actor(self.test, cwd, name)
        self.made.append(a)
        return a

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for a in self.made:
            a.stop()
        return False


def read_counter(path):
    """The counter's value, or None when the file does not hold a number
    (a plain run can leave it empty)."""
    with open(path) as f:
        text = f.read()
    try:
        return int(text)
    except ValueError:
        return None


def crashes(results):
    """How many programs died; the plain runs typically die of ValueError on
    an empty file."""
    return sum(1 for rc, _, _ in results if rc != 0)


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


# How many times a plain run is tried before concluding that it does not
# lose updates. Every workload here loses a large share of its updates on
# the plain directory in practice (measured: a 10 x 100 counter ends between
# 100 and 250, not 1000), so one attempt nearly always suffices; the retries
# only guard against a freak schedule where no two copies ever overlap.
PLAIN_ATTEMPTS = 5


class CounterTests(LockfsTestCase):
    """Read-modify-write of one counter by many unmodified programs."""

    def plain_goes_wrong(self, setup, cmds, expected, timeout=120):
        """Runs the workload on fresh plain directories until it loses an
        update or a copy crashes; fails the test if it never does in
        PLAIN_ATTEMPTS attempts. Returns a description of what went wrong."""
        for attempt in range(PLAIN_ATTEMPTS):
            d = self.make_tempdir()
            setup(d)
            res, secs = run_group(cmds, d, timeout)
            final = read_counter(os.path.join(d, "counter.txt"))
            died = crashes(res)
            if final != expected or died:
                what = ("plain directory, attempt %d: counter %s of %d, %d of %d copies died "
                        "(%.1f s)" % (attempt + 1, final, expected, died, len(cmds), secs))
                print("\n  " + what, file=sys.stderr)
                return what
        self.fail("the workload never went wrong on the plain directory in %d attempts: "
                  "it cannot show that the mount protects anything" % PLAIN_ATTEMPTS)

    def through_mount_exact(self, m, cmds, expected, timeout=90):
        # Through the mount these workloads take a few seconds; the timeout
        # only bounds a stall.
        write_file(m.src_path("counter.txt"), "0")
        try:
            res, secs = run_group(cmds, m.mnt, timeout)
        except AssertionError as e:
            raise AssertionError("through the mount, the counter stood at %s of %d when the "
                                 "time ran out:\n%s"
                                 % (read_counter(m.src_path("counter.txt")), expected, e)) from None
        print("  through the mount: %.1f s" % secs, file=sys.stderr)
        died = crashes(res)
        g = "\n".join("  exit %s: %s" % (rc, err.strip()[-600:]) for rc, _, err in res if rc)
        self.assertEqual(died, 0, "copies failed through the mount:\n" + g)
        self.assertEqual(read_counter(m.src_path("counter.txt")), expected)

    def counter_test(self, cmds, expected, opts=()):
        self.plain_goes_wrong(lambda d: write_file(os.path.join(d, "counter.txt"), "0"),
                              cmds, expected)
        with Mount(list(opts)) as m:
            self.through_mount_exact(m, cmds, expected)

    def test_01_ten_processes(self):
        """10 copies of the classic counter script, 100 increments each."""
        cmds = [[PYTHON, workload("counter_rmw.py"), "100"] for _ in range(10)]
        self.counter_test(cmds, 1000)

    def test_02_fifteen_threads(self):
        """The same loop in 15 threads of one process: each thread is an
        owner of its own."""
        cmds = [[PYTHON, workload("counter_threads.py"), "15", "100"]]
        self.counter_test(cmds, 1500)

    def test_03_shell(self):
        """n=$(cat counter.txt); echo $((n+1)) > counter.txt in several
        shells: the read is in cat (a child), the write in the shell, so the
        lease must pass from cat to its parent."""
        cmds = [["/bin/bash", workload("counter_shell.sh"), "40"] for _ in range(5)]
        self.counter_test(cmds, 200)

    def test_04_rename_over(self):
        """Read, write a temporary file beside it, rename over the counter
        (how editors and sed -i save)."""
        cmds = [[PYTHON, workload("counter_rename.py"), "50"] for _ in range(10)]
        self.counter_test(cmds, 500)


class HoldTests(LockfsTestCase):
    """One process holds a file; what others get."""

    def assert_waits(self, actor, seconds=0.5):
        """The actor's current command is still waiting after `seconds`."""
        a = actor.poll(seconds)
        self.assertIsNone(a, "%s was expected to wait, got %s" % (actor.name, a))

    def test_05_nonblock(self):
        plain = self.make_tempdir()
        with Mount() as m, Actors(self) as actor:
            for base, setup, locked in ((plain, plain, False), (m.mnt, m.src, True)):
                with self.subTest(where="mount" if locked else "plain"):
                    write_file(os.path.join(setup, "f"), "data")
                    holder = actor(base, "holder")
                    other = actor(base, "other")
                    holder.ok("open h f rw")
                    for mode in ("r", "rw", "w"):
                        t0 = time.monotonic()
                        a = other.do("open x%s f %s nonblock" % (mode, mode), timeout=5)
                        took = a["t"] - t0
                        if locked:
                            self.assertFalse(a["ok"], "O_NONBLOCK open (%s) of a held file "
                                             "succeeded through the mount" % mode)
                            self.assertEqual(a["errno"], errno.EAGAIN, a)
                            self.assertLess(took, 1.0, "EAGAIN must come at once")
                        else:
                            self.assertTrue(a["ok"], a)
                            other.ok("close x%s" % mode)
                    holder.ok("close h")
                    if locked:
                        # The holder closed a write: the lock is handed on at
                        # once, so a blocking open gets it without delay.
                        t0 = time.monotonic()
                        a = other.ok("open y f rw", timeout=5)
                        self.assertLess(a["t"] - t0, 1.0)
                        other.ok("close y")
                    holder.stop()
                    other.stop()

    def test_05b_free_right_after_write_close(self):
        """A write's close ends the critical section: once close(2) has
        returned, another process's O_NONBLOCK open must not be refused.
        (Programs that chain locks, such as filelock's lock file followed by
        the data file, otherwise see false EDEADLKs.)"""
        with Mount() as m:
            write_file(m.src_path("other"), "")
            r = harness.run([PYTHON, workload("close_then_probe.py"), "f", "other", "300"],
                            cwd=m.mnt, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            print("\n  " + r.stdout.strip(), file=sys.stderr)
            self.assertEqual(r.stdout.split()[:2], ["refused", "0"],
                             "a file was still locked after its writer had closed it")

    def test_05d_writable_mapping_keeps_lock(self):
        """A file mapped shared and writable can still be written after its
        descriptor is closed: its write lock stays until the mapping goes."""
        plain = self.make_tempdir()
        with Mount() as m, Actors(self) as actor:
            for base, setup, locked in ((plain, plain, False), (m.mnt, m.src, True)):
                with self.subTest(where="mount" if locked else "plain"):
                    write_file(os.path.join(setup, "f"), "data" * 1024)
                    holder = actor(base, "holder")
                    other = actor(base, "other")
                    holder.ok("open h f rw")
                    holder.ok("map h")
                    holder.ok("close h")
                    other.start("open o f rw")
                    if not locked:
                        # Nothing stops the second writer on a plain directory.
                        self.assertTrue(other.next(5)["ok"])
                    else:
                        self.assert_waits(other)
                        t0 = time.monotonic()
                        holder.ok("unmap h")
                        a = other.next(5)
                        self.assertTrue(a["ok"], a)
                        self.assertLess(a["t"] - t0, 1.0, "the lock outlived the mapping")
                    other.ok("close o")
                    holder.stop()
                    other.stop()

    def test_05e_many_descriptors(self):
        """A process with hundreds of descriptors is not searched at close:
        its write lock still goes as soon as the handle is closed."""
        with Mount() as m, Actors(self) as actor:
            write_file(m.src_path("f"), "data")
            holder = actor(m.mnt, "holder")
            other = actor(m.mnt, "other")
            holder.ok("spare 400")
            holder.ok("open h f rw")
            other.start("open o f rw")
            self.assert_waits(other)
            t0 = time.monotonic()
            holder.ok("close h")
            a = other.next(5)
            self.assertTrue(a["ok"], a)
            self.assertLess(a["t"] - t0, 1.0, "the lock outlived the close")
            other.ok("close o")

    def test_05c_nonblock_read_peeks(self):
        """An O_NONBLOCK read of a file that others only read (grep -r opens
        every file so) goes ahead without a hold (fs/locktable.h, "Peeks"):
        it is not refused, and it holds nobody back while its descriptor
        stays open."""
        with Mount() as m, Actors(self) as actor:
            write_file(m.src_path("f"), "data")
            reader = actor(m.mnt, "reader")
            peeker = actor(m.mnt, "peeker")
            writer = actor(m.mnt, "writer")
            reader.ok("open r f r")
            peeker.ok("open p f r nonblock")
            t_close = reader.ok("close r")["t"]
            # The reader keeps its lease (250 ms); the peeker's open
            # descriptor must not add to the wait.
            a = writer.ok("open w f rw", timeout=10)
            waited = a["t"] - t_close
            print("\n  writer waited %.3f s with a peeker's descriptor open" % waited,
                  file=sys.stderr)
            self.assertLess(waited, 1.0, "the O_NONBLOCK reader held the file")
            # A writer holding the file still refuses non-blocking reads.
            a = peeker.do("open q f r nonblock")
            self.assertEqual(a.get("errno"), errno.EAGAIN, a)
            writer.ok("close w")
            peeker.ok("close p")

    def test_06_sigint_waiter(self):
        with Mount() as m, Actors(self) as actor:
            write_file(m.src_path("f"), "data")
            holder = actor(m.mnt, "holder")
            waiter = actor(m.mnt, "waiter")
            holder.ok("open h f rw")
            waiter.start("open w f r")
            self.assert_waits(waiter)
            t_sig = time.monotonic()
            os.kill(waiter.pid, signal.SIGINT)
            try:
                rc = waiter.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.fail("the waiter did not exit within 2 s of SIGINT: the waiting open "
                          "was not interrupted")
            took = time.monotonic() - t_sig
            print("\n  waiter exited %.3f s after SIGINT (status %s)" % (took, rc),
                  file=sys.stderr)
            # Python ends an unhandled KeyboardInterrupt by killing itself
            # with SIGINT, after printing the traceback.
            self.assertEqual(rc, -signal.SIGINT, waiter.stderr())
            self.assertIn("KeyboardInterrupt", waiter.stderr())
            # The open was interrupted, not granted: the holder still holds.
            probe = actor(m.mnt, "probe")
            a = probe.do("open p f r nonblock")
            self.assertEqual(a.get("errno"), errno.EAGAIN, a)
            # After the holder closes, a fresh open is served at once: the
            # cancelled waiter kept no place in the queue.
            holder.ok("close h")
            t0 = time.monotonic()
            a = probe.ok("open q f rw", timeout=5)
            self.assertLess(a["t"] - t0, 1.0, "the next open waited after the cancelled waiter")
            probe.ok("close q")

    def kill_holder(self, m, actor, hold_commands, waiter_command):
        write_file(m.src_path("f"), "data")
        holder = actor(m.mnt, "holder")
        waiter = actor(m.mnt, "waiter")
        for c in hold_commands:
            holder.ok(c)
        waiter.start(waiter_command)
        self.assert_waits(waiter)
        t_kill = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        a = waiter.next(10)
        self.assertTrue(a["ok"], a)
        took = a["t"] - t_kill
        print("\n  waiter served %.3f s after kill -9" % took, file=sys.stderr)
        self.assertLess(took, 1.0, "the killed holder's lock was not released at once")
        waiter.ok("close w")

    def test_07a_kill_writer(self):
        with Mount(["lease=5000"]) as m, Actors(self) as actor:
            self.kill_holder(m, actor, ["open h f rw"], "open w f r")

    def test_07b_kill_lease_holder(self):
        # The holder read the file and closed it: it keeps a 5 s lease. A
        # killed owner has no heir, so the lease must end at the kill, not
        # pass to the test process and run its 5 s.
        with Mount(["lease=5000"]) as m, Actors(self) as actor:
            self.kill_holder(m, actor, ["read f"], "open w f rw")

    def test_08_deadlock(self):
        with Mount() as m, Actors(self) as actor:
            write_file(m.src_path("f"), "f")
            write_file(m.src_path("g"), "g")
            a = actor(m.mnt, "A")
            b = actor(m.mnt, "B")
            a.ok("open f f rw")
            b.ok("open g g rw")
            a.start("open g g rw")
            b.start("open f f rw")
            # One of the two must be refused at once; the other waits.
            first = None
            deadline = time.monotonic() + 5
            while first is None and time.monotonic() < deadline:
                for x in (a, b):
                    ans = x.poll(0.05)
                    if ans is not None:
                        first = (x, ans)
                        break
            self.assertIsNotNone(first, "neither open came back: a deadlock was not detected")
            loser, ans = first
            winner = b if loser is a else a
            self.assertFalse(ans["ok"], "%s's open closed a cycle but succeeded" % loser.name)
            self.assertEqual(ans["errno"], errno.EDEADLK, ans)
            # The other is still waiting, not refused too.
            self.assert_waits(winner, 0.3)
            # The refused one gives up its file; the other then completes.
            t0 = time.monotonic()
            loser.ok("close %s" % ("f" if loser is a else "g"))
            w = winner.next(5)
            self.assertTrue(w["ok"], w)
            self.assertLess(w["t"] - t0, 1.0)
            print("\n  %s got EDEADLK, %s completed" % (loser.name, winner.name), file=sys.stderr)
            winner.ok("close f")
            winner.ok("close g")

    def test_09_lock_timeout(self):
        with Mount(["lock_timeout=1"]) as m, Actors(self) as actor:
            write_file(m.src_path("f"), "data")
            holder = actor(m.mnt, "holder")
            waiter = actor(m.mnt, "waiter")
            holder.ok("open h f rw")
            t0 = waiter.start("open w f r")
            a = waiter.next(10)
            took = a["t"] - t0
            print("\n  gave up after %.2f s" % took, file=sys.stderr)
            self.assertFalse(a["ok"], a)
            self.assertEqual(a["errno"], errno.ENOLCK, a)
            self.assertGreaterEqual(took, 0.8)
            self.assertLessEqual(took, 5.0)
            # The holder was not disturbed.
            holder.ok("close h")

    def test_12_reentry(self):
        """One thread opening a file it already holds never waits for
        itself, whatever the order of reads and writes."""
        with Mount() as m, Actors(self) as actor:
            write_file(m.src_path("f"), "data")
            write_file(m.src_path("g"), "data")
            t = actor(m.mnt, "thread")
            other = actor(m.mnt, "other")
            t.ok("open 1 f rw")
            t.ok("open 2 f r", timeout=5)
            t.ok("open 3 f r nonblock", timeout=5)
            t.ok("open 4 f w", timeout=5)
            t.ok("read f", timeout=5)
            t.ok("open 5 g r")
            t.ok("open 6 g rw", timeout=5)
            t.ok("open 7 g w nonblock", timeout=5)
            # Held for real: another process cannot have either.
            for name in ("f", "g"):
                a = other.do("open x %s r nonblock" % name)
                self.assertEqual(a.get("errno"), errno.EAGAIN, a)
            for i in range(1, 8):
                t.ok("close %d" % i)

    def test_12b_two_threads_are_two_owners(self):
        """Two threads of one process are two owners of one program: a
        sibling's read waits for the other's hold, a sibling's write joins."""
        with Mount() as m:
            write_file(m.src_path("f"), "data")
            r = harness.run([PYTHON, workload("two_threads.py"), "f"], cwd=m.mnt, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.split()
            self.assertEqual(out[0], "EAGAIN", r.stdout)
            # The write joined the main thread's hold at once ...
            self.assertLess(float(out[1]), 0.3, r.stdout)
            # ... the read waited for the main thread's close.
            self.assertGreaterEqual(float(out[2]), 0.3, r.stdout)


class PolicyTests(LockfsTestCase):

    POLICY = ("# test policy\n"
              "free/*      none\n"
              "shared/*    readers-writer\n"
              "slow/*      exclusive lease=3000\n")

    def policy_mount(self, text):
        d = self.make_tempdir()
        path = os.path.join(d, "policy")
        write_file(path, text)
        return Mount(["policy=" + path])

    def test_10a_none(self):
        with self.policy_mount(self.POLICY) as m, Actors(self) as actor:
            os.mkdir(m.src_path("free"))
            write_file(m.src_path("free", "x"), "data")
            write_file(m.src_path("f"), "data")
            holder = actor(m.mnt, "holder")
            other = actor(m.mnt, "other")
            holder.ok("open h free/x rw")
            holder.ok("open h2 f rw")
            other.ok("open a free/x r nonblock")
            other.ok("open b free/x rw nonblock")
            # Control: a file outside the `none` rule is locked.
            a = other.do("open c f r nonblock")
            self.assertEqual(a.get("errno"), errno.EAGAIN, a)

    def test_10b_readers_writer(self):
        with self.policy_mount(self.POLICY) as m, Actors(self) as actor:
            os.mkdir(m.src_path("shared"))
            write_file(m.src_path("shared", "x"), "data")
            r1 = actor(m.mnt, "reader1")
            r2 = actor(m.mnt, "reader2")
            w = actor(m.mnt, "writer")
            r1.ok("open r shared/x r")
            # Shared: the second reader is granted while the first holds.
            r2.ok("open r shared/x r nonblock")
            w.start("open w shared/x rw")
            self.assertIsNone(w.poll(0.5), "the writer got in while two readers held the file")
            r1.ok("close r")
            self.assertIsNone(w.poll(0.5), "the writer got in while a reader held the file")
            t0 = time.monotonic()
            r2.ok("close r")
            a = w.next(5)
            self.assertTrue(a["ok"], a)
            self.assertLess(a["t"] - t0, 1.0, "readers-writer mode has no lease")
            # And the writer excludes readers.
            a = r1.do("open r shared/x r nonblock")
            self.assertEqual(a.get("errno"), errno.EAGAIN, a)
            w.ok("close w")

    def test_10c_exclusive_lease(self):
        with self.policy_mount(self.POLICY) as m, Actors(self) as actor:
            os.mkdir(m.src_path("slow"))
            write_file(m.src_path("slow", "x"), "data")
            write_file(m.src_path("y"), "data")
            reader = actor(m.mnt, "reader")
            waiter = actor(m.mnt, "waiter")
            waits = {}
            for path in ("slow/x", "y"):
                t_read = reader.ok("read %s" % path)["t"]
                a = waiter.ok("open w %s rw" % path, timeout=15)
                waits[path] = a["t"] - t_read
                waiter.ok("close w")
            print("\n  waited %.2f s behind a lease=3000 rule, %.2f s behind the default"
                  % (waits["slow/x"], waits["y"]), file=sys.stderr)
            self.assertGreaterEqual(waits["slow/x"], 2.5)
            self.assertLess(waits["slow/x"], 6.0)
            self.assertLess(waits["y"], 1.5)

    def test_10d_malformed(self):
        d = self.make_tempdir()
        policy = os.path.join(d, "bad.policy")
        write_file(policy, "# comment\nlogs/** none\ndata/* sometimes\n")
        src = os.path.join(d, "src")
        mnt = os.path.join(d, "mnt")
        os.mkdir(src)
        os.mkdir(mnt)
        try:
            r = harness.run([harness.lockfs_bin(), "-f", src, mnt, "-o", "policy=" + policy],
                            timeout=10)
        finally:
            mounted = harness.is_lockfs_mounted(mnt)
            if mounted:
                harness.fusermount_unmount(mnt)
        self.assertFalse(mounted, "a malformed policy was mounted")
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.strip()
        print("\n  lockfs said: %s" % err, file=sys.stderr)
        self.assertIn("%s:3:" % policy, err)
        self.assertNotIn("\n", err, "the error is not one line")


class NoSurpriseHangTests(LockfsTestCase):

    def test_11a_exec_copies(self):
        with Mount() as m:
            shutil.copy("/bin/sleep", m.path("sleep"))
            os.chmod(m.path("sleep"), 0o755)
            res, secs = run_group([[m.path("sleep"), "2"] for _ in range(3)], m.mnt, 30)
            print("\n  3 concurrent sleep 2 from the mount: %.2f s" % secs, file=sys.stderr)
            self.assertEqual([rc for rc, _, _ in res], [0, 0, 0], res)
            self.assertGreaterEqual(secs, 2.0)
            self.assertLess(secs, 4.0, "copies of one program ran one after another")

    def test_11b_shared_library(self):
        lib = None
        for cand in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1",
                     "/usr/lib/x86_64-linux-gnu/libbz2.so.1.0"):
            if os.path.exists(cand):
                lib = cand
                break
        if lib is None:
            self.skipTest("no small shared library found to copy")
        with Mount() as m:
            shutil.copy(lib, m.path("libtest.so"))
            cmds = [[PYTHON, workload("load_library.py"), m.path("libtest.so"), "3"]
                    for _ in range(2)]
            res, secs = run_group(cmds, m.mnt, 30)
            self.assertEqual([rc for rc, _, _ in res], [0, 0], res)
            loaded = sorted(float(out.split()[1]) for _, out, _ in res)
            gap = loaded[1] - loaded[0]
            print("\n  second load %.3f s after the first" % gap, file=sys.stderr)
            self.assertLess(gap, 1.0, "a mapped library held back the next program")

    def test_11c_appenders(self):
        with Mount() as m:
            # The log does not exist yet: the appenders create it with
            # open(..., "a"), O_CREAT included, and must still not wait.
            log = m.path("app.log")
            cmds = [[PYTHON, workload("appender.py"), log, "w%d" % i, "200", "0.005"]
                    for i in range(3)]
            g = Group(cmds, m.mnt)
            try:
                # Wait until the appenders are writing, then read the log.
                deadline = time.monotonic() + 10
                while (not os.path.exists(m.src_path("app.log")) or
                       os.path.getsize(m.src_path("app.log")) == 0):
                    self.assertLess(time.monotonic(), deadline, "the appenders never wrote")
                    time.sleep(0.02)
                t0 = time.monotonic()
                r = harness.run(["cat", log], timeout=10)
                cat_secs = time.monotonic() - t0
                running = sum(1 for p in g.procs if p.poll() is None)
                res = g.wait(60)
            finally:
                g.close()
            print("\n  cat took %.3f s with %d appenders running" % (cat_secs, running),
                  file=sys.stderr)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertLess(cat_secs, 1.0, "a reader was held up by appenders")
            self.assertEqual([rc for rc, _, _ in res], [0, 0, 0], res)
            with open(m.src_path("app.log")) as f:
                text = f.read()
            self.assertTrue(text.endswith("\n"))
            lines = text.splitlines()
            self.assertEqual(len(lines), 600)
            self.assertEqual(sorted(lines),
                             sorted("w%d %d" % (i, n) for i in range(3) for n in range(200)))

    def test_13_two_greps(self):
        with Mount() as m:
            expected = 0
            for d in range(20):
                os.mkdir(m.src_path("d%02d" % d))
                for i in range(100):
                    with open(m.src_path("d%02d" % d, "f%03d" % i), "w") as f:
                        if i % 10 == 0:
                            f.write("line one\nneedle %d %d\n" % (d, i))
                            expected += 1
                        else:
                            f.write("line one\nhay %d %d\n" % (d, i))
            grep = ["grep", "-r", "needle", "."]
            # Warm the caches so the single run is not slowed by the first
            # lookups alone.
            res, _ = run_group([grep], m.mnt, 60)
            self.assertEqual(len(res[0][1].splitlines()), expected, res[0][2])
            res, single = run_group([grep], m.mnt, 60)
            self.assertEqual(len(res[0][1].splitlines()), expected, res[0][2])
            res, pair = run_group([grep, grep], m.mnt, 120)
            for rc, out, err in res:
                # GNU grep -r opens every file with O_NONBLOCK (so that a
                # fifo cannot hang it); an EAGAIN here means a plain reader
                # was refused instead of waiting its turn.
                self.assertEqual(rc, 0, "grep failed (%d) with two greps running:\n%s"
                                 % (rc, err[-1500:]))
                self.assertEqual(len(out.splitlines()), expected)
            print("\n  one grep -r over 2000 files: %.2f s, two at once: %.2f s"
                  % (single, pair), file=sys.stderr)
            # A loose bound: the two readers must overlap, not take turns
            # file by file behind full leases (2000 x 250 ms).
            self.assertLessEqual(pair, 3 * single + 0.5)


if __name__ == "__main__":
    unittest.main()
