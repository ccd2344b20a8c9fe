"""Lock semantics version 2, end to end: the acceptance cases.

Version 2 of the contract (fs/locktable.h, "Programs (version 2 ...)") keeps
every read-modify-write exact and removes the waits nobody needs:

  * reads take update intent and the processes and sibling threads of one
    program join each other's holds, so a shell loop's children never wait
    for what the shell itself holds;
  * a file whose readers keep waiting for leases nobody uses is learned
    *calm* and its readers share it until its next write;
  * a file that programs lock themselves (flock, fcntl) is *advisory*: lockfs
    steps aside;
  * a read held open for long_read (tail -f) stops keeping other readers
    out, and a writer waits at most reader_wait for mere readers (then the
    read is *broken*), so nobody can hold a file against a writer for ever.

Each case runs real, unmodified programs through a real mount and asserts a
fact that could fail: an exact count, a lockstat counter, that a command
finished within a bound. Timing ratios against other file systems are not
tests here (they live in bench/). The safety cases (RMW) run the same
workload through the mount (exact) and on a plain directory, where it must
lose updates, so that the exact result proves lockfs is what fixes it. The
mount runs first, so a lockfs failure is reported whatever the plain run
does.

Small -o reader_wait and -o long_read values keep the suite fast; one test
keeps the defaults to prove the default bound (5 s).
"""

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import NOBODY, PYTHON, LockfsTestCase, Mount, read_line, run, spawn_py, stop_process
from test_locks import crashes, read_counter, run_group, write_file
from test_lockstat import LockstatRequired, lockstat_bin

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

# How many times a plain run is tried before concluding that it does not
# lose updates (the workloads lose in nearly every run: see the numbers the
# tests print; the retries only absorb a freak schedule).
PLAIN_ATTEMPTS = 3
# Bounds for commands that must not wait: generous, a stall is what they
# catch (the machine may be slow, and CI runs under load).
QUICK = 1.5
# Slack on top of reader_wait for a writer that breaks readers.
WRITER_SLACK = 2.0


def workload(name):
    return os.path.join(WORKLOADS, name)


def note(text):
    print("\n  " + text, file=sys.stderr, end="")


class BusyWatch:
    """Whether the machine was busy in the daemon's sense (more runnable
    tasks than CPUs, which lets a lease stretch) at some moment of a with
    block: /proc/stat's procs_running, sampled every 20 ms. It counts the
    sampler itself, as the daemon's own check counts the daemon."""

    def __enter__(self):
        self.seen = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        cpus = os.cpu_count() or 1
        while not self._stop.is_set():
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("procs_running "):
                        if int(line.split()[1]) > cpus:
                            self.seen = True
            self._stop.wait(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def timed_run(cmd, cwd, timeout=30, **kw):
    """harness.run(), also returning how long it took."""
    t0 = time.monotonic()
    r = run(cmd, cwd=cwd, timeout=timeout, **kw)
    return r, time.monotonic() - t0


def sh(script):
    return ["/bin/bash", "-c", script]


class SemanticsCase(LockstatRequired):

    # -- lockstat

    def lockstat(self, m, *args):
        """The mount's object of `lockstat -J ARGS MOUNT`."""
        r = run([lockstat_bin(), "-J"] + [str(a) for a in args] + [m.mnt], timeout=30)
        self.assertEqual(r.returncode, 0, "lockstat failed: %s" % r.stderr)
        doc = json.loads(r.stdout)["lockfs"]
        self.assertEqual(len(doc), 1)
        return doc[0]

    def stats_of(self, m, path):
        """lockstat --stats's record for `path` (None: no activity)."""
        for s in self.lockstat(m, "--stats", "--top", "0")["stats"]:
            if s["path"] == path:
                return s
        return None

    def flags_of(self, m, path):
        """What lockstat --stats learned of `path`: {"calm": .., "advisory": ..}."""
        for f in self.lockstat(m, "--stats", "--top", "0")["files"]:
            if f["path"] == path:
                return {"calm": f["calm"], "advisory": f["advisory"]}
        return {"calm": False, "advisory": False}

    def contentions(self, m):
        """{path: contentions} of every file with statistics (a replaced
        or removed file's path is None; such files are added up)."""
        out = {}
        for st in self.lockstat(m, "--stats", "--top", "0")["stats"]:
            out[st["path"]] = out.get(st["path"], 0) + st["contentions"]
        return out

    def show_stats(self, m, path):
        """stats_of(), which must exist, also printed."""
        s = self.stats_of(m, path)
        self.assertIsNotNone(s, "lockstat --stats has no record for %s" % path)
        if s:
            note("%s: acquisitions %d, contentions %d, joins %d, broken %d, calm_learned %d, "
                 "advisory_passes %d" % (path, s["acquisitions"], s["contentions"], s["joins"],
                                         s["broken"], s["calm_learned"], s["advisory_passes"]))
        return s

    def reset_stats(self, m):
        r = run([lockstat_bin(), "--reset", m.mnt], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- programs

    def spawn(self, cmd, cwd):
        """A background program, killed at cleanup if still running."""
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.addCleanup(stop_process, p)
        return p

    def assert_all_ok(self, res, where):
        bad = ["  exit %s: %s" % (rc, err.strip()[-800:]) for rc, _, err in res if rc]
        self.assertEqual(crashes(res), 0, "programs failed %s:\n%s" % (where, "\n".join(bad)))


class TailReader:
    """`tail -f FILE` in the background, its output collected by a thread."""

    def __init__(self, test, cwd, name):
        self.proc = test.spawn(["tail", "-f", name], cwd)
        self.lines = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        with contextlib.suppress(ValueError, OSError):  # closed by stop()
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, line, timeout=10):
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if time.monotonic() >= deadline:
                raise AssertionError("tail -f never printed %r (printed %r; running: %s)"
                                     % (line, self.lines, self.proc.poll() is None))
            time.sleep(0.02)

    def stop(self):
        stop_process(self.proc)


# ---------------------------------------------------------------- 1. readers

LOOP = ('for i in $(seq 25); do cat config.json > /dev/null; n=$(cat config.json); '
        'grep -q start config.json || exit 1; done')
CONFIG = '{"start": true, "name": "lockfs", "retries": 3}\n'


class ReaderTests(SemanticsCase):
    """Readers never wait for leases nobody uses."""

    def test_01a_shell_loop_never_contends(self):
        """One shell reads config.json 75 times through its children (cat,
        $(cat), grep -q): each child joins the lease the shell inherited
        from the child before, so not one open waits."""
        with Mount() as m:
            write_file(m.src_path("config.json"), CONFIG)
            r, secs = timed_run(sh(LOOP), m.mnt, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            note("one loop: %.2f s" % secs)
            s = self.show_stats(m, "config.json")
            self.assertEqual(s["acquisitions"], 75)
            self.assertEqual(s["contentions"], 0, "a reader in the loop waited: %s" % s)
            self.assertEqual(s["waits"], 0)
            self.assertEqual(s["eagain"], 0)
            self.assertGreater(s["joins"], 0, "the loop's children joined nothing: %s" % s)
            # Nothing to learn: nobody waited.
            self.assertEqual(s["calm_learned"], 0)

    def test_01b_four_loops_learn_calm(self):
        """Four such loops at once: they finish, and the readers' waits for
        each other's unused leases make config.json calm. From then on they
        share it: the same four loops again contend zero times.

        The defaults are kept on purpose. -o calm_after=0 would turn the
        learning off (lockfs --help: 0 = never), and it is not needed:
        config.json is written only through the source directory, so the
        mount has never seen a write to it and calm_after (2 s since the last
        write) does not hold the learning back."""
        four = sh("L() { %s; }; pids=; for j in 1 2 3 4; do L & pids=\"$pids $!\"; done; "
                  "rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc" % LOOP)
        with Mount() as m:
            write_file(m.src_path("config.json"), CONFIG)
            r, secs = timed_run(four, m.mnt, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            note("four loops: %.2f s" % secs)
            s = self.show_stats(m, "config.json")
            self.assertEqual(s["acquisitions"], 4 * 75, s)
            self.assertEqual(self.flags_of(m, "config.json"), {"calm": True, "advisory": False},
                             "four loops of readers did not make config.json calm")
            self.assertGreaterEqual(s["calm_learned"], 1)
            # Calm: the same readers now share the file.
            self.reset_stats(m)
            r, secs = timed_run(four, m.mnt, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            note("four loops on the calm file: %.2f s" % secs)
            s = self.show_stats(m, "config.json")
            self.assertEqual(s["acquisitions"], 4 * 75, s)
            self.assertEqual(s["contentions"], 0, "readers waited on a calm file: %s" % s)
            self.assertEqual(self.flags_of(m, "config.json")["calm"], True)

    def test_01c_thread_pool(self):
        """A Python thread pool (4 threads, 800 reads), then 50 short-lived
        threads reading once: all finish, every read sees the whole file."""
        with Mount() as m:
            write_file(m.src_path("config.json"), CONFIG)
            r, secs = timed_run([PYTHON, workload("thread_readers.py"), "config.json",
                                 "4", "800", "50"], m.mnt, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            note("thread pool: %.2f s" % secs)
            self.assertEqual(r.stdout.split(), ["pool", "800", "short", "50"])
            s = self.show_stats(m, "config.json")
            self.assertEqual(s["eagain"] + s["edeadlk"] + s["timeouts"] + s["eintr"], 0, s)

    def test_01d_reading_loop_does_not_starve_writer(self):
        """The other side of joins: a hold made by joining a lease cannot
        outlast that lease, so a shell whose children re-read config.json
        without pause keeps a writer out for one lease at most. reader_wait=0
        (wait for ever) so that the join bound alone is tested."""
        loop = sh("while :; do cat config.json > /dev/null; n=$(cat config.json); "
                  "grep -q start config.json; done")
        with Mount(["reader_wait=0"]) as m:
            write_file(m.src_path("config.json"), CONFIG)
            reader = self.spawn(loop, m.mnt)
            try:
                time.sleep(0.5)
                for i in range(3):
                    with BusyWatch() as busy:
                        r, secs = timed_run(sh("echo '{\"start\": %d}' > config.json" % i),
                                            m.mnt, timeout=30)
                    note("writer %d beside a reading loop: %.3f s (lease 250 ms; machine busy: %s)"
                         % (i, secs, busy.seen))
                    self.assertEqual(r.returncode, 0, r.stderr)
                    # One lease; on a busy machine the active loop's lease
                    # may be stretched, up to 20 times (docs/semantics.md).
                    bound = (20 if busy.seen else 1) * 0.25 + QUICK
                    self.assertLess(secs, bound, "the reading loop held the writer off")
                if reader.poll() is not None:
                    self.fail("the reading loop died: %s" % reader.stderr.read())
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(reader.pid, signal.SIGKILL)
                stop_process(reader)
            with open(m.src_path("config.json")) as f:
                self.assertEqual(f.read(), '{"start": 2}\n')


# ---------------------------------------------------- 2, 3. programs that lock

class CoordinatingTests(SemanticsCase):

    def test_02_flock_cli(self):
        """util-linux flock(1) around a shell RMW: exact, and c.lock is
        learned advisory. No plain-directory comparison: flock coordinates
        the shells by itself, so the plain directory is exact here too; what
        this shows is that lockfs does not get in its way."""
        body = "n=$(cat c); echo $((n+1)) > c"
        cmds = [sh("for i in $(seq 25); do flock c.lock -c '%s' || exit 1; done" % body)
                for _ in range(8)]
        with Mount() as m:
            write_file(m.src_path("c"), "0")
            write_file(m.src_path("c.lock"), "")
            res, secs = run_group(cmds, m.mnt, 120)
            note("8 x 25 under flock(1): %.2f s" % secs)
            self.assert_all_ok(res, "through the mount")
            self.assertEqual(read_counter(m.src_path("c")), 200)
            self.assertEqual(self.flags_of(m, "c.lock"), {"calm": False, "advisory": True})
            s = self.show_stats(m, "c.lock")
            self.assertGreater(s["advisory_passes"], 0)
            # c itself is still under the mandatory lock (nobody flocks it).
            self.assertEqual(self.flags_of(m, "c")["advisory"], False)

    def test_03_sqlite_idle_connection(self):
        """A Python program keeps an idle sqlite3 connection to a database in
        the mount; the sqlite3 command-line shell still writes and reads it
        at once, and the idle program then sees the new row."""
        if shutil.which("sqlite3") is None:
            harness._fail_or_skip("the sqlite3 command-line shell is not installed")
        with Mount() as m:
            r = run(["sqlite3", "db", "create table t (x); insert into t values (1);"],
                    cwd=m.mnt, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            idle = spawn_py('''
                import sqlite3, sys
                c = sqlite3.connect("db")
                print(c.execute("select count(*) from t").fetchone()[0], flush=True)
                sys.stdin.readline()         # idle, connection open
                print(c.execute("select count(*) from t").fetchone()[0], flush=True)
                c.close()
                ''', cwd=m.mnt)
            try:
                self.assertEqual(read_line(idle, 15).strip(), "1")
                r, secs = timed_run(["sqlite3", "db",
                                     "insert into t values (2); select count(*) from t;"],
                                    m.mnt, timeout=30)
                note("sqlite3 CLI beside an idle connection: %.2f s" % secs)
                self.assertEqual((r.returncode, r.stdout.strip(), r.stderr), (0, "2", ""))
                self.assertLess(secs, 5.0, "the CLI waited for the idle connection")
                idle.stdin.write("\n")
                idle.stdin.flush()
                self.assertEqual(read_line(idle, 15).strip(), "2")
                self.assertEqual(idle.wait(timeout=15), 0, idle.stderr.read())
                # sqlite locks the database itself (fcntl): lockfs steps aside.
                self.assertEqual(self.flags_of(m, "db"), {"calm": False, "advisory": True})
                self.assertEqual(set(self.contentions(m).values()), {0}, self.contentions(m))
            finally:
                stop_process(idle)


# ---------------------------------------------------------------- 4. tail -f

LOG = "start\nline 2\nline 3\n"


class TailTests(SemanticsCase):
    """tail -f keeps the log open for ever: readers pass it once it counts
    as a long read, writers once they have waited reader_wait."""

    READER_WAIT = 1

    def test_04a_readers_and_truncating_writer(self):
        with Mount(["reader_wait=%d" % self.READER_WAIT, "long_read=300"]) as m:
            write_file(m.src_path("log"), LOG)
            tail = TailReader(self, m.mnt, "log")
            try:
                tail.wait_for("line 3")
                for cmd in ("cat log", "grep -q start log", "cp log log.copy", "wc -l log",
                            "tail -n1 log"):
                    r, secs = timed_run(sh(cmd), m.mnt, timeout=30)
                    note("%-18s %.3f s beside tail -f" % (cmd, secs))
                    self.assertEqual(r.returncode, 0, "%s: %s" % (cmd, r.stderr))
                    self.assertLess(secs, QUICK, "%s waited for tail -f" % cmd)
                    if cmd == "wc -l log":
                        self.assertEqual(r.stdout.split()[0], "3")
                    if cmd == "tail -n1 log":
                        self.assertEqual(r.stdout, "line 3\n")
                with open(m.src_path("log.copy")) as f:
                    self.assertEqual(f.read(), LOG)
                # A truncating writer: waits reader_wait for tail, then goes.
                r, secs = timed_run(sh("echo new > log"), m.mnt, timeout=30)
                note("echo new > log: %.2f s (reader_wait=%d)" % (secs, self.READER_WAIT))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(secs, self.READER_WAIT + WRITER_SLACK)
                with open(m.src_path("log")) as f:
                    self.assertEqual(f.read(), "new\n")
                s = self.show_stats(m, "log")
                self.assertGreaterEqual(s["broken"], 1, s)
                holds = [lk for lk in self.lockstat(m)["locks"]
                         if lk["path"] == "log" and lk["pid"] == tail.proc.pid]
                self.assertEqual([lk["hold"] for lk in holds], ["broken"], holds)
                # tail -f itself goes on: it sees the truncation and the line.
                tail.wait_for("new")
            finally:
                tail.stop()

    def test_04b_copytruncate(self):
        """logrotate's copytruncate: cp log log.1, then truncate -s 0 log,
        while tail -f follows the log. coreutils truncate opens the file
        O_WRONLY|O_CREAT|O_NONBLOCK (O_NONBLOCK only so that a fifo cannot
        hang it), so this is also a non-blocking writer beside a reader: like
        any writer it must not be kept out for longer than reader_wait."""
        with Mount(["reader_wait=%d" % self.READER_WAIT, "long_read=300"]) as m:
            write_file(m.src_path("log"), LOG)
            tail = TailReader(self, m.mnt, "log")
            try:
                tail.wait_for("line 3")
                r, secs = timed_run(sh("cp log log.1 && truncate -s 0 log"), m.mnt, timeout=30)
                note("cp log log.1 && truncate -s 0 log: %.2f s" % secs)
                self.assertEqual(r.returncode, 0, "copytruncate failed while tail -f reads the "
                                 "log (%.2f s): %s" % (secs, r.stderr.strip()))
                self.assertLess(secs, self.READER_WAIT + WRITER_SLACK)
                with open(m.src_path("log.1")) as f:
                    self.assertEqual(f.read(), LOG)
                self.assertEqual(os.path.getsize(m.src_path("log")), 0)
                s = self.show_stats(m, "log")
                self.assertGreaterEqual(s["broken"], 1, s)
            finally:
                tail.stop()

    def test_04c_default_reader_wait(self):
        """With the default options a writer waits for tail -f at most the
        default reader_wait, 5 s."""
        with Mount() as m:
            doc = self.lockstat(m)
            self.assertEqual((doc["reader_wait_ms"], doc["long_read_ms"]), (5000, 1000))
            write_file(m.src_path("log"), LOG)
            tail = TailReader(self, m.mnt, "log")
            try:
                tail.wait_for("line 3")
                r, secs = timed_run(sh("echo new > log"), m.mnt, timeout=30)
                note("echo new > log with the defaults: %.2f s" % secs)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(secs, 5 + WRITER_SLACK)
                with open(m.src_path("log")) as f:
                    self.assertEqual(f.read(), "new\n")
                self.assertGreaterEqual(self.show_stats(m, "log")["broken"], 1)
            finally:
                tail.stop()


# ---------------------------------------------------------------- 5. no hang

class NoHangTests(SemanticsCase):

    def test_05a_while_read_sed(self):
        """The shell holds wr.txt open (the loop's stdin) while its children
        (sed -i) rewrite it: they join the shell's hold instead of waiting
        for it for ever."""
        script = 'while read l; do sed -i "s/^$l\\$/X$l/" wr.txt; done < wr.txt'
        with Mount() as m:
            write_file(m.src_path("wr.txt"), "a\nb\nc\n")
            r, secs = timed_run(sh(script), m.mnt, timeout=30)
            note("while read ... sed -i: %.2f s" % secs)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(m.src_path("wr.txt")) as f:
                self.assertEqual(f.read(), "Xa\nXb\nXc\n")
            # Nobody waited, on wr.txt nor on the files sed renamed over it.
            self.assertEqual(set(self.contentions(m).values()), {0}, self.contentions(m))

    def test_05b_reader_thread_joins_writer_thread(self):
        """Thread A reads f and joins thread B, which writes f: B's write is
        served (a sibling's write joins A's read)."""
        with Mount() as m:
            write_file(m.src_path("f"), "old\n")
            r, secs = timed_run([PYTHON, workload("read_then_join_writer.py"), "f"], m.mnt,
                                timeout=30)
            note("read, join a writer thread: %.2f s" % secs)
            self.assertEqual(r.returncode, 0, r.stderr)
            # A then reads B's text through its still open descriptor.
            self.assertEqual(r.stdout, "wrote 'written by thread B\\n'\n")
            with open(m.src_path("f")) as f:
                self.assertEqual(f.read(), "written by thread B\n")
            s = self.show_stats(m, "f")
            self.assertEqual((s["contentions"], s["joins"]), (0, 1),
                             "B's write did not join A's read at once: %s" % s)


# ---------------------------------------------------------------- 6. RMW

SHELL_RMW = "for i in $(seq 25); do n=$(cat counter.txt); echo $((n+1)) > counter.txt; done"
SHELL_TIMEOUT_RMW = ("for i in $(seq 25); do n=$(timeout 60 cat counter.txt); "
                     "echo $((n+1)) > counter.txt; done")


def count_lines(path, line):
    with open(path) as f:
        return sum(1 for x in f.read().splitlines() if x == line)


def json_count(path):
    try:
        with open(path) as f:
            return json.load(f)["count"]
    except (ValueError, KeyError, TypeError):
        return None


class RmwTests(SemanticsCase):
    """Read-modify-write by unmodified programs: exact through the mount,
    lost updates on a plain directory."""

    def rmw(self, cmds, setup, count, expected, opts=(), timeout=180):
        """Runs `cmds` at once through a fresh mount (the count must be
        exactly `expected`), then on plain directories until one run loses
        updates (a count below `expected`, or no count left at all: a copy
        read a half-written file and died, or the file is garbage). `setup`
        prepares a base directory; `count` reads the result in one. Returns
        the plain results."""
        with Mount(list(opts)) as m:
            setup(m.src)
            try:
                res, secs = run_group(cmds, m.mnt, timeout)
            except AssertionError as e:
                raise AssertionError("through the mount the count stood at %s of %d when the "
                                     "time ran out:\n%s" % (count(m.src), expected, e)) from None
            got = count(m.src)
            note("through the mount: %s of %d in %.1f s" % (got, expected, secs))
            self.assert_all_ok(res, "through the mount")
            self.assertEqual(got, expected, "lost updates through the mount")
        seen = []
        for attempt in range(PLAIN_ATTEMPTS):
            d = self.make_tempdir()
            setup(d)
            res, secs = run_group(cmds, d, timeout)
            got = count(d)
            seen.append("%s (%d of %d programs died)" % (got, crashes(res), len(cmds)))
            note("plain directory, attempt %d: %s of %d in %.1f s, %d of %d programs died"
                 % (attempt + 1, got, expected, secs, crashes(res), len(cmds)))
            if got is None or got < expected:
                return seen
        self.fail("the workload never lost an update on the plain directory in %d attempts "
                  "(%s): it cannot show that the mount protects anything"
                  % (PLAIN_ATTEMPTS, ", ".join(seen)))

    def counter(self, cmds, expected, opts=()):
        setup = lambda d: write_file(os.path.join(d, "counter.txt"), "0")
        count = lambda d: read_counter(os.path.join(d, "counter.txt"))
        return self.rmw(cmds, setup, count, expected, opts)

    def test_06a_asyncio_to_thread(self):
        """v = await asyncio.to_thread(read); await asyncio.to_thread(write,
        v + 1): the read and the write run on different pool threads of one
        process; 5 processes x 40."""
        self.counter([[PYTHON, workload("counter_asyncio.py"), "40"] for _ in range(5)], 200)

    def test_06b_shell(self):
        """n=$(cat c); echo $((n+1)) > c, 8 shells x 25."""
        self.counter([sh(SHELL_RMW) for _ in range(8)], 200)

    def test_06b_shell_timeout_cat(self):
        """n=$(timeout 60 cat c): the lease passes cat -> timeout -> shell."""
        self.counter([sh(SHELL_TIMEOUT_RMW) for _ in range(8)], 200)

    def test_06c_sed_append(self):
        """sed -i '$a x' f (a temporary file renamed over f), 8 x 15: every
        run must add its line."""
        cmds = [sh("for i in $(seq 15); do sed -i '$a x' f || exit 1; done") for _ in range(8)]
        self.rmw(cmds, lambda d: write_file(os.path.join(d, "f"), "head\n"),
                 lambda d: count_lines(os.path.join(d, "f"), "x"), 8 * 15)

    def test_06d_tempfile_replace(self):
        """Read, write a mkstemp file beside it, os.replace over, 8 x 25."""
        self.counter([[PYTHON, workload("counter_replace.py"), "25"] for _ in range(8)], 200)

    def test_06e_perl_inplace(self):
        """perl -pi -e 's/(\\d+)/$1+1/e' counter.txt, 8 x 25."""
        body = "perl -pi -e 's/(\\d+)/$1+1/e' counter.txt || exit 1"
        self.counter([sh("for i in $(seq 25); do %s; done" % body) for _ in range(8)], 200)

    def test_06f_gawk_inplace(self):
        """gawk -i inplace '{print $1+1}' counter.txt, 8 x 25."""
        if shutil.which("gawk") is None:
            harness._fail_or_skip("gawk is not installed (apt-get install gawk)")
        body = "gawk -i inplace '{print $1+1}' counter.txt || exit 1"
        self.counter([sh("for i in $(seq 25); do %s; done" % body) for _ in range(8)], 200)

    def test_06g_multiprocessing_pool_json(self):
        """multiprocessing.Pool(8) mapping 200 tasks that each read a JSON
        file, increment a field and write it back."""
        setup = lambda d: write_file(os.path.join(d, "state.json"),
                                     json.dumps({"count": 0, "name": "lockfs"}))
        self.rmw([[PYTHON, workload("json_pool.py"), "200"]], setup,
                 lambda d: json_count(os.path.join(d, "state.json")), 200)

    def test_06h_under_load(self):
        """Both shell counters (8 x 25 each), the 10-process counter
        (counter_rmw.py, 10 x 100) and the 15-thread counter
        (counter_threads.py, 15 x 100) at once, each on its own counter,
        while two busy loops take the CPUs: all exact."""
        parts = {
            "sh": ([sh(SHELL_RMW)] * 8, 200),
            "sh_timeout": ([sh(SHELL_TIMEOUT_RMW)] * 8, 200),
            "procs": ([[PYTHON, workload("counter_rmw.py"), "100"]] * 10, 1000),
            "threads": ([[PYTHON, workload("counter_threads.py"), "15", "100"]], 1500),
        }
        cmds = []
        for name, (cs, _) in parts.items():
            for c in cs:
                cmds.append(sh("cd %s && exec %s" % (name, shlex.join(c))))
        expected = {name: n for name, (_, n) in parts.items()}

        def setup(d):
            for name in parts:
                os.mkdir(os.path.join(d, name))
                write_file(os.path.join(d, name, "counter.txt"), "0")

        def count(d):
            return {name: read_counter(os.path.join(d, name, "counter.txt")) for name in parts}

        busy = []
        try:
            for _ in range(2):
                busy.append(subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"],
                                             stdin=subprocess.DEVNULL))
            with Mount() as m:
                setup(m.src)
                try:
                    res, secs = run_group(cmds, m.mnt, 240)
                except AssertionError as e:
                    raise AssertionError("through the mount the counters stood at %s when the "
                                         "time ran out:\n%s" % (count(m.src), e)) from None
                got = count(m.src)
                note("under load, through the mount: %s in %.1f s" % (got, secs))
                self.assert_all_ok(res, "through the mount")
                self.assertEqual(got, expected, "lost updates through the mount under load")
            # Plain: every workload must lose in some attempt.
            lost = set()
            for attempt in range(PLAIN_ATTEMPTS):
                d = self.make_tempdir()
                setup(d)
                res, secs = run_group(cmds, d, 240)
                got = count(d)
                note("under load, plain directory, attempt %d: %s in %.1f s, %d of %d "
                     "programs died" % (attempt + 1, got, secs, crashes(res), len(cmds)))
                lost |= {n for n, v in got.items() if v is None or v < expected[n]}
                if lost == set(parts):
                    break
            self.assertEqual(lost, set(parts), "some workloads never lost an update on the "
                             "plain directory in %d attempts" % PLAIN_ATTEMPTS)
        finally:
            for p in busy:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- 7. DoS

HOLD_READ = r'''
import os, sys, time
fd = os.open("f", os.O_RDONLY)
print("open", flush=True)
time.sleep(30)
'''


class DosTests(SemanticsCase):

    def test_07_other_user_cannot_hold_off_writer(self):
        """User nobody holds root's 0644 file open read-only for 30 s; root's
        truncating write still gets through within reader_wait, and the
        read shows as broken."""
        harness.require_root()
        with Mount(["allow_other", "reader_wait=1"]) as m:
            # nobody must reach the mount point (and the source, through it).
            os.chmod(m.tmp, 0o755)
            os.chmod(m.src, 0o755)
            write_file(m.src_path("f"), "root's data\n")
            os.chmod(m.src_path("f"), 0o644)
            reader = spawn_py(HOLD_READ, cwd=m.mnt, user=NOBODY)
            try:
                self.assertEqual(read_line(reader, 15).strip(), "open")
                r, secs = timed_run(sh("echo new > f"), m.mnt, timeout=30)
                note("root's echo new > f beside nobody's read: %.2f s" % secs)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(secs, 1 + WRITER_SLACK)
                with open(m.src_path("f")) as f:
                    self.assertEqual(f.read(), "new\n")
                holds = [lk for lk in self.lockstat(m)["locks"]
                         if lk["path"] == "f" and lk["pid"] == reader.pid]
                self.assertEqual([(lk["uid"], lk["hold"]) for lk in holds],
                                 [(NOBODY, "broken")], holds)
                s = self.show_stats(m, "f")
                self.assertGreaterEqual(s["broken"], 1, s)
                self.assertIsNone(reader.poll(), "the reader died")
            finally:
                stop_process(reader)


if __name__ == "__main__":
    unittest.main()
