"""lockstat and the control file, end to end.

Real programs hold and wait for locks in a real mount; lockstat must show
them with the right pids, in the table and in JSON (parsed and checked field
by field). The statistics are checked against a workload whose contention is
known exactly: one holder keeps a file while three writers queue for it.
The control file is also fed garbage, and the daemon must survive it.
"""

import errno
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import NOBODY, PYTHON, LockfsTestCase, Mount, read_line, run, spawn_py, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROL = ".lockfs-control"
POLL_TIMEOUT = 15.0


def lockstat_bin():
    """lockstat next to the daemon under test (env LOCKSTAT_BIN wins)."""
    path = os.environ.get("LOCKSTAT_BIN")
    if not path and os.environ.get("LOCKFS_BUILD_ROOT"):
        path = os.path.join(os.environ["LOCKFS_BUILD_ROOT"], "tools", "lockstat")
    if not path:
        path = os.path.join(os.path.dirname(os.path.dirname(harness.lockfs_bin())),
                            "tools", "lockstat")
    return os.path.abspath(path)


HOLD = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
print("held", flush=True)
sys.stdin.readline()
os.close(fd)
'''

# Opens, reports, closes. mode: "r" (read) or "w" (write, no truncation).
OPEN = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY if sys.argv[2] == "r" else os.O_RDWR)
print("got", flush=True)
os.close(fd)
'''

# A waiter in a second thread: prints its tid, then opens.
THREAD_OPEN = r'''
import os, sys, threading
def body():
    print(threading.get_native_id(), flush=True)
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print("got", flush=True)
    os.close(fd)
t = threading.Thread(target=body)
t.start()
t.join()
'''


class LockstatRequired(LockfsTestCase):
    """Tests that read lockstat's output: they fail loudly without it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(lockstat_bin(), os.X_OK):
            raise AssertionError("lockstat not found at %s (build it, or set LOCKSTAT_BIN)"
                                 % lockstat_bin())


class LockstatCase(LockstatRequired):

    # -- running lockstat

    def lockstat(self, *args, user=None, timeout=30):
        return run([lockstat_bin()] + [str(a) for a in args], user=user, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.lockstat(*args, **kw)
        self.assertEqual(r.returncode, 0, "lockstat %s failed (%d): %s"
                         % (" ".join(map(str, args)), r.returncode, r.stderr))
        self.assertEqual(r.stderr, "")
        return r.stdout

    def doc(self, *args, **kw):
        """lockstat -J ... parsed."""
        return json.loads(self.ok("-J", *args, **kw))

    def mount_doc(self, m, *args):
        """The JSON object of mount m."""
        d = self.doc(*args, m.mnt)
        self.assertEqual(len(d["lockfs"]), 1)
        self.assertEqual(d["lockfs"][0]["mount"], m.mnt)
        return d["lockfs"][0]

    def table(self, *args):
        """lockstat's aligned table as a list of dicts keyed by the header.
        (The tests use names without spaces, so cells split on blanks.)"""
        lines = self.ok(*args).splitlines()
        self.assertTrue(lines, "no header line")
        head = lines[0].split()
        rows = []
        for line in lines[1:]:
            cells = line.split()
            self.assertEqual(len(cells), len(head), "row does not match the header: %r" % line)
            rows.append(dict(zip(head, cells)))
        return head, rows

    def poll(self, m, pred, what, *args):
        """Polls lockstat -J until pred(mount object) holds."""
        deadline = time.monotonic() + POLL_TIMEOUT
        while True:
            doc = self.mount_doc(m, *args)
            if pred(doc):
                return doc
            if time.monotonic() >= deadline:
                self.fail("lockstat never showed %s; last: %s" % (what, json.dumps(doc)))
            time.sleep(0.05)

    # -- programs

    def spawn(self, code, *args, cwd):
        p = spawn_py(code, *args, cwd=cwd)
        self.addCleanup(stop_process, p)
        return p

    def hold(self, m, name):
        """A process that holds `name` open for writing until released."""
        p = self.spawn(HOLD, name, cwd=m.mnt)
        self.assertEqual(read_line(p).strip(), "held")
        return p

    def release(self, p):
        p.stdin.write("\n")
        p.stdin.flush()

    def finish(self, p, expect_line="got"):
        self.assertEqual(read_line(p).strip(), expect_line)
        self.assertEqual(p.wait(timeout=30), 0, p.stderr.read())


class TestHoldersAndWaiters(LockstatCase):

    def test_holder_and_waiter_in_table_and_json(self):
        with Mount() as m:
            with open(m.src_path("data.txt"), "w") as f:
                f.write("x")
            holder = self.hold(m, "data.txt")
            waiter = self.spawn(OPEN, "data.txt", "r", cwd=m.mnt)
            doc = self.poll(m, lambda d: len(d["waiters"]) == 1, "the waiter")

            # JSON, field by field.
            self.assertEqual(doc["source"], m.src)
            self.assertEqual(doc["daemon_pid"], m.pid)
            # The mount's defaults (lockfs(8)).
            self.assertEqual(doc["long_read_ms"], 1000)
            self.assertEqual(doc["reader_wait_ms"], 5000)
            self.assertEqual(doc["calm_after_ms"], 2000)
            self.assertEqual(doc["files"], [])
            self.assertEqual(len(doc["locks"]), 1)
            lk = doc["locks"][0]
            self.assertEqual(lk["path"], "data.txt")
            self.assertEqual(lk["mode"], "exclusive")
            self.assertEqual(lk["state"], "held")
            self.assertEqual(lk["hold"], "normal")
            self.assertIs(lk["inherited"], False)
            self.assertIs(lk["joined"], False)
            self.assertEqual(lk["pid"], holder.pid)
            self.assertEqual(lk["tid"], holder.pid)
            self.assertEqual(lk["command"], "python3")
            self.assertEqual(lk["uid"], os.geteuid())
            self.assertEqual(lk["user"], pwd.getpwuid(os.geteuid()).pw_name)
            self.assertEqual(lk["handles"], 1)
            self.assertEqual(lk["waiters"], 1)
            self.assertIsNone(lk["lease_left_ns"])
            self.assertIsInstance(lk["held_ns"], int)
            self.assertGreater(lk["held_ns"], 0)
            self.assertLess(lk["held_ns"], 120 * 10**9)
            wt = doc["waiters"][0]
            self.assertEqual(wt["path"], "data.txt")
            # A read by a caller that may write the file: update intent.
            self.assertEqual(wt["mode"], "update")
            self.assertEqual(wt["wants"], "read")
            self.assertEqual(wt["pid"], waiter.pid)
            self.assertEqual(wt["tid"], waiter.pid)
            self.assertEqual(wt["command"], "python3")
            self.assertEqual(wt["uid"], os.geteuid())
            self.assertEqual(wt["blocker"], holder.pid)
            self.assertIsInstance(wt["waited_ns"], int)
            self.assertGreater(wt["waited_ns"], 0)
            self.assertNotIn("stats", doc)

            # The default table: one row, the holder.
            head, rows = self.table(m.mnt)
            self.assertEqual(head, ["PATH", "MODE", "STATE", "PID", "TID", "COMMAND", "USER",
                                    "HELD", "WAITERS"])
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["PATH"], "data.txt")
            self.assertEqual(rows[0]["MODE"], "exclusive")
            self.assertEqual(rows[0]["STATE"], "held")
            self.assertEqual(rows[0]["PID"], str(holder.pid))
            self.assertEqual(rows[0]["TID"], str(holder.pid))
            self.assertEqual(rows[0]["COMMAND"], "python3")
            self.assertEqual(rows[0]["WAITERS"], "1")
            self.assertRegex(rows[0]["HELD"], r"^[0-9.]+(ns|us|ms|s)$|^[0-9]+m[0-9]{2}s$")

            # -w: the waiter gets its own row, blocked by the holder.
            head, rows = self.table("-w", m.mnt)
            self.assertEqual(head[-5:], ["WANTS", "WAITED", "BLOCKER", "ORIGIN", "FLAGS"])
            self.assertEqual([r["STATE"] for r in rows], ["held", "waiting"])
            self.assertEqual([r["MODE"] for r in rows], ["exclusive", "update"])
            self.assertEqual([r["ORIGIN"] for r in rows], ["own", "-"])
            self.assertEqual([r["FLAGS"] for r in rows], ["-", "-"])
            self.assertEqual(rows[0]["PID"], str(holder.pid))
            self.assertEqual(rows[0]["BLOCKER"], "-")
            self.assertEqual(rows[1]["PID"], str(waiter.pid))
            self.assertEqual(rows[1]["WANTS"], "read")
            self.assertEqual(rows[1]["BLOCKER"], str(holder.pid))
            self.assertEqual(rows[1]["HELD"], "-")
            self.assertNotEqual(rows[1]["WAITED"], "-")

            # -p filters on the row's process.
            _, rows = self.table("-w", "-p", waiter.pid, m.mnt)
            self.assertEqual([(r["STATE"], r["PID"]) for r in rows], [("waiting", str(waiter.pid))])
            _, rows = self.table("-p", holder.pid, m.mnt)
            self.assertEqual([r["PID"] for r in rows], [str(holder.pid)])
            _, rows = self.table("-w", "-p", "%d,%d" % (holder.pid, waiter.pid), m.mnt)
            self.assertEqual(len(rows), 2)
            _, rows = self.table("-w", "-p", os.getpid(), m.mnt)
            self.assertEqual(rows, [])
            d = self.mount_doc(m, "-p", waiter.pid)
            self.assertEqual(d["locks"], [])
            self.assertEqual([w["pid"] for w in d["waiters"]], [waiter.pid])

            # --path globs.
            _, rows = self.table("-w", "--path", "*.txt", m.mnt)
            self.assertEqual(len(rows), 2)
            _, rows = self.table("-w", "--path", "other*", m.mnt)
            self.assertEqual(rows, [])

            # -o, -n, -r.
            head, rows = self.table("-o", "pid,path,blocker", "-w", m.mnt)
            self.assertEqual(head, ["PID", "PATH", "BLOCKER"])
            self.assertEqual(rows[1], {"PID": str(waiter.pid), "PATH": "data.txt",
                                       "BLOCKER": str(holder.pid)})
            head, rows = self.table("-o", "+TID,LEASE,HANDLES,UID", m.mnt)
            self.assertEqual(head[-4:], ["TID", "LEASE", "HANDLES", "UID"])
            self.assertEqual(rows[0]["HANDLES"], "1")
            out = self.ok("-n", "-r", "-o", "PID,STATE", "-w", m.mnt)
            self.assertEqual(out, "%d held\n%d waiting\n" % (holder.pid, waiter.pid))

            # Without a mount point: every lockfs mount, ours among them.
            r = self.lockstat("-J")
            self.assertIn(r.returncode, (0, 1), r.stderr)
            mine = [x for x in json.loads(r.stdout)["lockfs"] if x["mount"] == m.mnt]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0]["locks"][0]["pid"], holder.pid)

            # Let go: the waiter gets the file, and lockstat stops showing it.
            self.release(holder)
            self.assertEqual(holder.wait(timeout=30), 0)
            self.finish(waiter)
            doc = self.poll(m, lambda d: not d["waiters"] and
                            all(lk["pid"] != holder.pid for lk in d["locks"]), "the release")
            # The reader's close leaves a lease (or it has already run out),
            # which passed to its parent, this test, when it exited.
            for lk in doc["locks"]:
                self.assertIn(lk["pid"], (waiter.pid, os.getpid()))
                self.assertEqual(lk["state"], "lease")
                self.assertEqual(lk["handles"], 0)
                self.assertLessEqual(lk["lease_left_ns"], 250 * 10**6)
                self.assertEqual(lk["inherited"], lk["pid"] == os.getpid())

    def test_waiting_thread_shows_its_tid(self):
        with Mount() as m:
            with open(m.src_path("t.txt"), "w") as f:
                f.write("x")
            holder = self.hold(m, "t.txt")
            waiter = self.spawn(THREAD_OPEN, "t.txt", cwd=m.mnt)
            tid = int(read_line(waiter))
            self.assertNotEqual(tid, waiter.pid)
            doc = self.poll(m, lambda d: len(d["waiters"]) == 1, "the waiting thread")
            self.assertEqual(doc["waiters"][0]["pid"], waiter.pid)
            self.assertEqual(doc["waiters"][0]["tid"], tid)
            self.assertEqual(doc["waiters"][0]["blocker"], holder.pid)
            _, rows = self.table("-w", "-o", "STATE,PID,TID", m.mnt)
            self.assertIn({"STATE": "waiting", "PID": str(waiter.pid), "TID": str(tid)}, rows)
            self.release(holder)
            self.finish(waiter)

    def test_counter_caught_mid_run(self):
        """The ten-process counter of docs/semantics.md, looked at while it
        runs: one holder, the others queued behind it."""
        iterations = 200
        with Mount() as m:
            with open(m.src_path("counter.txt"), "w") as f:
                f.write("0")
            script = os.path.join(HERE, "workloads", "counter_rmw.py")
            procs = [subprocess.Popen([PYTHON, script, str(iterations)], cwd=m.mnt,
                                      stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(10)]
            for p in procs:
                self.addCleanup(stop_process, p)
            pids = {p.pid for p in procs}
            doc = self.poll(m, lambda d: len(d["locks"]) == 1 and len(d["waiters"]) >= 3,
                            "a holder with waiters", "-w")
            lk = doc["locks"][0]
            self.assertEqual(lk["path"], "counter.txt")
            self.assertIn(lk["pid"], pids)
            self.assertEqual(lk["waiters"], len(doc["waiters"]))
            for w in doc["waiters"]:
                self.assertEqual(w["path"], "counter.txt")
                self.assertIn(w["pid"], pids)
                self.assertNotEqual(w["pid"], lk["pid"])
                self.assertEqual(w["blocker"], lk["pid"])
            # The table while it runs, for the record.
            table = self.lockstat("-w", m.mnt)
            sys.stderr.write("\n[lockstat -w during the 10-process counter]\n%s" % table.stdout)
            for p in procs:
                self.assertEqual(p.wait(timeout=300), 0, p.stderr.read())
            with open(m.src_path("counter.txt")) as f:
                self.assertEqual(int(f.read()), 10 * iterations)
            stats = self.mount_doc(m, "--stats")["stats"]
            sys.stderr.write("%s" % self.lockstat("--stats", m.mnt).stdout)
            counter = [s for s in stats if s["path"] == "counter.txt"]
            self.assertEqual(len(counter), 1)
            # Every iteration opens twice; every open is one acquisition.
            self.assertEqual(counter[0]["acquisitions"], 2 * 10 * iterations)
            self.assertGreater(counter[0]["contentions"], 0)


# n threads of one process each open the file to read (each thread is an
# owner of its own, so each is a waiter while the file is held), then close.
MANY_READERS = r'''
import os, sys, threading
def body():
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.close(fd)
ts = [threading.Thread(target=body) for _ in range(int(sys.argv[2]))]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("done", len(ts), flush=True)
'''


class TestThreads(LockstatCase):

    @staticmethod
    def daemon_threads(m):
        with open("/proc/%d/status" % m.pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        raise AssertionError("no Threads line for pid %d" % m.pid)

    def test_waiters_cost_no_threads(self):
        """A hundred opens waiting on one file leave the daemon with exactly
        the threads it had before they came: they wait in the lock table,
        and the request threads (-o threads=N) are all started at mount."""
        idle = {}
        for n in (2, 5):
            with self.subTest(threads=n), Mount(["threads=%d" % n, "lease=0"]) as m:
                # Served through the mount, so the pool is running.
                with open(m.path("data.txt"), "w") as f:
                    f.write("x")
                idle[n] = self.daemon_threads(m)
                holder = self.hold(m, "data.txt")
                readers = self.spawn(MANY_READERS, "data.txt", "100", cwd=m.mnt)
                self.poll(m, lambda d: len(d["waiters"]) == 100, "100 waiters")
                self.assertEqual(self.daemon_threads(m), idle[n])
                self.release(holder)
                self.assertEqual(holder.wait(timeout=30), 0)
                self.finish(readers, "done 100")
                self.assertEqual(self.daemon_threads(m), idle[n])
        self.assertEqual(idle[5] - idle[2], 3)


class TestStatistics(LockstatCase):

    def contended_run(self, m, name, hold_extra=0.5):
        """One holder keeps `name` while three writers queue for it; once all
        three wait, the holder keeps it `hold_extra` seconds longer. Returns
        the time the holder held it (a lower bound)."""
        holder = self.hold(m, name)
        t0 = time.monotonic()
        writers = [self.spawn(OPEN, name, "w", cwd=m.mnt) for _ in range(3)]
        self.poll(m, lambda d: len([w for w in d["waiters"] if w["path"] == name]) == 3,
                  "three writers waiting")
        time.sleep(hold_extra)
        held = time.monotonic() - t0
        self.release(holder)
        self.assertEqual(holder.wait(timeout=30), 0)
        for w in writers:
            self.finish(w)
        return held

    def test_known_contention(self):
        with Mount() as m:
            for name in ("busy.txt", "calm.txt"):
                with open(m.src_path(name), "w") as f:
                    f.write("x")
            # Five uncontended writes to calm.txt.
            for _ in range(5):
                w = self.spawn(OPEN, "calm.txt", "w", cwd=m.mnt)
                self.finish(w)
            held = self.contended_run(m, "busy.txt")
            self.poll(m, lambda d: not d["waiters"] and not d["locks"], "the end of the run")

            stats = {s["path"]: s for s in self.mount_doc(m, "--stats", "--top", "0")["stats"]}
            self.assertEqual(set(stats), {"busy.txt", "calm.txt"})
            busy, calm = stats["busy.txt"], stats["calm.txt"]
            self.assertEqual(busy["acquisitions"], 4)
            self.assertEqual(busy["contentions"], 3)
            self.assertEqual(busy["waits"], 3)
            self.assertEqual(busy["holds"], 4)
            # Every writer waited at least the extra half second.
            self.assertGreaterEqual(busy["wait_min_ns"], 0.45e9)
            self.assertGreaterEqual(busy["wait_max_ns"], busy["wait_mean_ns"])
            self.assertGreaterEqual(busy["wait_mean_ns"], busy["wait_min_ns"])
            self.assertLessEqual(busy["wait_max_ns"], (held + 5) * 1e9)
            self.assertAlmostEqual(busy["wait_total_ns"], 3 * busy["wait_mean_ns"], delta=3)
            # p99 of three waits is the longest: the histogram's bucket bound
            # above it would read up to twice what WAIT-MAX says.
            self.assertEqual(busy["wait_p99_ns"], busy["wait_max_ns"])
            self.assertGreaterEqual(busy["hold_max_ns"], held * 1e9 * 0.9)
            self.assertGreaterEqual(busy["hold_max_ns"], busy["hold_mean_ns"])
            for k in ("eagain", "edeadlk", "timeouts", "eintr", "joins", "broken",
                      "calm_learned", "advisory_passes"):
                self.assertEqual(busy[k], 0, k)
            self.assertEqual(calm["acquisitions"], 5)
            self.assertEqual(calm["contentions"], 0)
            self.assertEqual(calm["waits"], 0)
            self.assertEqual(calm["wait_max_ns"], 0)

            # The table, its order and --top/--sort.
            head, rows = self.table("--stats", m.mnt)
            self.assertEqual(head[:3], ["PATH", "ACQUISITIONS", "CONTENTIONS"])
            self.assertEqual(head[-3:], ["JOINS", "BROKEN", "FLAGS"])
            self.assertEqual([(r["PATH"], r["ACQUISITIONS"], r["CONTENTIONS"]) for r in rows],
                             [("busy.txt", "4", "3"), ("calm.txt", "5", "0")])
            _, rows = self.table("--stats", "--top", "1", m.mnt)
            self.assertEqual([r["PATH"] for r in rows], ["busy.txt"])
            _, rows = self.table("--stats", "--top", "1", "--sort", "acquisitions", m.mnt)
            self.assertEqual([r["PATH"] for r in rows], ["calm.txt"])
            _, rows = self.table("--stats", "--sort", "wait", m.mnt)
            self.assertEqual([r["PATH"] for r in rows], ["busy.txt", "calm.txt"])
            _, rows = self.table("--stats", "--path", "calm*", m.mnt)
            self.assertEqual([r["PATH"] for r in rows], ["calm.txt"])

            # --reset zeroes them.
            self.assertEqual(self.ok("--reset", m.mnt), "")
            self.assertEqual(self.mount_doc(m, "--stats")["stats"], [])
            _, rows = self.table("--stats", m.mnt)
            self.assertEqual(rows, [])
            # ... and counting starts again from zero.
            self.contended_run(m, "busy.txt", hold_extra=0.2)
            stats = self.mount_doc(m, "--stats")["stats"]
            self.assertEqual([(s["path"], s["acquisitions"], s["contentions"]) for s in stats],
                             [("busy.txt", 4, 3)])
            # --stats --reset shows the figures, then zeroes them.
            _, rows = self.table("--stats", "--reset", m.mnt)
            self.assertEqual([(r["PATH"], r["CONTENTIONS"]) for r in rows], [("busy.txt", "3")])
            self.assertEqual(self.mount_doc(m, "--stats")["stats"], [])

    def test_new_file_on_a_removed_files_inode_starts_clean(self):
        # Statistics are kept per inode. Once a file removed through the
        # mount is forgotten, the source may give its inode number to a new
        # file, which must not show the old file's contention.
        with Mount() as m:
            with open(m.src_path("old.txt"), "w") as f:
                f.write("x")
            self.contended_run(m, "old.txt", hold_extra=0)
            self.poll(m, lambda d: not d["waiters"] and not d["locks"], "the end of the run")
            old = {s["path"]: s for s in self.mount_doc(m, "--stats")["stats"]}["old.txt"]
            self.assertEqual(old["contentions"], 3)
            ino = os.stat(m.src_path("old.txt")).st_ino
            os.unlink(os.path.join(m.mnt, "old.txt"))
            reused = None
            # The kernel forgets the removed inode a little later; until then
            # lockfs keeps it, and the number, in use.
            for i in range(300):
                name = "new%d.txt" % i
                with open(os.path.join(m.mnt, name), "w"):
                    pass
                if os.stat(m.src_path(name)).st_ino == ino:
                    reused = name
                    break
            if reused is None:
                self.skipTest("the source file system gave no new file inode %d again" % ino)
            with open(os.path.join(m.mnt, reused)) as f:
                f.read()
            stats = {s["path"]: s for s in self.mount_doc(m, "--stats", "--top", "0")["stats"]}
            self.assertIn(reused, stats)
            new = stats[reused]
            self.assertEqual((new["contentions"], new["waits"], new["wait_max_ns"]), (0, 0, 0),
                             "%s inherited old.txt's statistics: %s" % (reused, new))
            self.assertLessEqual(new["acquisitions"], 2, new)
            # Nor do the old figures stay under the removed file's key.
            self.assertEqual([s for s in stats.values() if s["contentions"]], [])
            _, rows = self.table("--stats", "-o", "PATH,ACQUISITIONS,CONTENTIONS", m.mnt)
            row = [r for r in rows if r["PATH"] == reused]
            self.assertEqual(len(row), 1)
            self.assertEqual(row[0]["CONTENTIONS"], "0")

    def test_nonblocking_failures_are_counted(self):
        with Mount() as m:
            with open(m.src_path("f.txt"), "w") as f:
                f.write("x")
            holder = self.hold(m, "f.txt")
            r = harness.py(r'''
import errno, os
for _ in range(4):
    try:
        os.open("f.txt", os.O_RDONLY | os.O_NONBLOCK)
        print("opened")
    except OSError as e:
        print(errno.errorcode[e.errno])
''', cwd=m.mnt)
            self.assertEqual(r.stdout.split(), ["EAGAIN"] * 4, r.stderr)
            stats = self.mount_doc(m, "--stats")["stats"]
            self.assertEqual(len(stats), 1)
            self.assertEqual(stats[0]["eagain"], 4)
            self.assertEqual(stats[0]["contentions"], 0)
            self.assertEqual(stats[0]["acquisitions"], 1)
            _, rows = self.table("--stats", "-o", "PATH,EAGAIN,EDEADLK,TIMEOUT", m.mnt)
            self.assertEqual(rows, [{"PATH": "f.txt", "EAGAIN": "4", "EDEADLK": "0",
                                     "TIMEOUT": "0"}])
            self.release(holder)
            self.assertEqual(holder.wait(timeout=30), 0)

    def test_reset_needs_the_owner(self):
        harness.require_root()
        with Mount(["allow_other"]) as m:
            os.chmod(m.tmp, 0o755)
            # A copy nobody can run, wherever the build tree is.
            tool = os.path.join(m.tmp, "lockstat")
            shutil.copy(lockstat_bin(), tool)
            os.chmod(tool, 0o755)
            with open(m.src_path("f.txt"), "w") as f:
                f.write("x")
            w = self.spawn(OPEN, "f.txt", "w", cwd=m.mnt)
            self.finish(w)
            # Anybody who can use the mount reads the state...
            r = run([tool, "-J", "--stats", m.mnt], user=NOBODY)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            doc = json.loads(r.stdout)
            self.assertEqual(doc["lockfs"][0]["stats"][0]["acquisitions"], 1)
            # ... but only the mount's owner (or root) resets it.
            r = run([tool, "--reset", m.mnt], user=NOBODY)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, "")
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertIn("permission denied", r.stderr)
            self.assertEqual(self.mount_doc(m, "--stats")["stats"][0]["acquisitions"], 1)
            self.assertEqual(self.ok("--reset", m.mnt), "")
            self.assertEqual(self.mount_doc(m, "--stats")["stats"], [])


# Holds a file open for reading until told.
READ_HOLD = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
sys.stdin.readline()
os.close(fd)
'''

# Opens a file for reading, then takes flock() on it when told.
FLOCK_HOLD = r'''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
sys.stdin.readline()
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
os.close(fd)
'''

# Holds a file open for writing and starts a child that opens it to read:
# one program (the child joins its parent's hold). Prints the child's pid.
PARENT_AND_CHILD = r'''
import os, subprocess, sys
CHILD = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("joined", flush=True)
sys.stdin.readline()
os.close(fd)
"""
fd = os.open(sys.argv[1], os.O_RDWR)
child = subprocess.Popen([sys.executable, "-c", CHILD, sys.argv[1]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
line = child.stdout.readline().strip()
print(child.pid, line, flush=True)
sys.stdin.readline()
child.stdin.write("\n")
child.stdin.flush()
child.wait()
os.close(fd)
print("done", flush=True)
'''


class TestProgramsAndLearning(LockstatCase):
    """The lock table's version 2 states, made by real programs: update
    intent, long reads, broken readers, joined and inherited holds, and
    advisory files."""

    def lock_rows(self, doc, path):
        return [lk for lk in doc["locks"] if lk["path"] == path]

    def test_update_read_turns_long(self):
        with Mount(["long_read=500"]) as m:
            with open(m.src_path("r.txt"), "w") as f:
                f.write("x")
            reader = self.spawn(READ_HOLD, "r.txt", cwd=m.mnt)
            self.assertEqual(read_line(reader).strip(), "open")
            # A read by a caller that could write the file: update intent.
            # (Well within long_read of the open.)
            _, rows = self.table("-o", "PATH,MODE,STATE,PID,ORIGIN,FLAGS", m.mnt)
            self.assertEqual(rows, [{"PATH": "r.txt", "MODE": "update", "STATE": "held",
                                     "PID": str(reader.pid), "ORIGIN": "own", "FLAGS": "-"}])
            seen = []

            def is_long(d):
                rows = self.lock_rows(d, "r.txt")
                self.assertEqual(len(rows), 1)
                seen.append((rows[0]["mode"], rows[0]["hold"]))
                return rows[0]["hold"] == "long"
            doc = self.poll(m, is_long, "the read held long")
            self.assertEqual(doc["long_read_ms"], 500)
            # Until long_read it was an update-intent read; from then on it
            # shares with other readers.
            self.assertEqual(set(seen[:-1]), {("update", "normal")} if seen[:-1] else set())
            lk = self.lock_rows(doc, "r.txt")[0]
            self.assertEqual((lk["mode"], lk["state"], lk["hold"]), ("shared", "held", "long"))
            self.assertEqual(lk["pid"], reader.pid)
            self.assertEqual(lk["handles"], 1)
            self.assertGreaterEqual(lk["held_ns"], 500 * 10**6)
            _, rows = self.table("-o", "PATH,MODE,STATE,PID", m.mnt)
            self.assertEqual(rows, [{"PATH": "r.txt", "MODE": "shared", "STATE": "long",
                                     "PID": str(reader.pid)}])
            # It really shares: another update-intent read gets in at once.
            other = self.spawn(OPEN, "r.txt", "r", cwd=m.mnt)
            self.assertEqual(read_line(other, timeout=10).strip(), "got")
            self.assertEqual(other.wait(timeout=30), 0)
            self.release(reader)
            self.assertEqual(reader.wait(timeout=30), 0)

    def test_flock_makes_file_advisory(self):
        with Mount() as m:
            with open(m.src_path("f.txt"), "w") as f:
                f.write("x")
            locker = self.spawn(FLOCK_HOLD, "f.txt", cwd=m.mnt)
            self.assertEqual(read_line(locker).strip(), "open")
            doc = self.mount_doc(m)
            self.assertEqual(doc["files"], [])
            _, rows = self.table("-o", "PATH,PID,FLAGS", m.mnt)
            self.assertEqual(rows, [{"PATH": "f.txt", "PID": str(locker.pid), "FLAGS": "-"}])

            self.release(locker)
            self.assertEqual(read_line(locker).strip(), "locked")
            doc = self.mount_doc(m)
            self.assertEqual(len(doc["files"]), 1, doc)
            fi = doc["files"][0]
            self.assertEqual((fi["path"], fi["advisory"], fi["calm"]), ("f.txt", True, False))
            self.assertIsNone(fi["written_ns"])
            _, rows = self.table("-w", m.mnt)
            self.assertEqual([(r["PATH"], r["PID"], r["FLAGS"]) for r in rows],
                             [("f.txt", str(locker.pid), "advisory")])
            # The mandatory lock steps aside: a writer gets in while the
            # locker still has the file open.
            writer = self.spawn(OPEN, "f.txt", "w", cwd=m.mnt)
            self.assertEqual(read_line(writer, timeout=10).strip(), "got")
            self.assertEqual(writer.wait(timeout=30), 0)
            stats = {s["path"]: s for s in self.mount_doc(m, "--stats")["stats"]}
            self.assertGreaterEqual(stats["f.txt"]["advisory_passes"], 1)
            _, rows = self.table("--stats", "-o", "PATH,ADVISORY-PASSES,FLAGS", m.mnt)
            self.assertEqual(len(rows), 1)
            self.assertEqual(rows[0]["FLAGS"], "advisory")
            self.assertGreaterEqual(int(rows[0]["ADVISORY-PASSES"]), 1)
            self.release(locker)
            self.assertEqual(locker.wait(timeout=30), 0)
            # With no holder left, a snapshot no longer lists the file, but
            # the statistics still know it is advisory.
            self.poll(m, lambda d: not d["locks"], "the locker gone")
            self.assertEqual(self.mount_doc(m)["files"], [])
            self.assertEqual([(f["path"], f["advisory"]) for f in
                              self.mount_doc(m, "--stats")["files"]], [("f.txt", True)])

    def test_joined_and_inherited(self):
        # A long lease, so that the inherited one is still there to see.
        with Mount(["lease=5000"]) as m:
            for name in ("j.txt", "i.txt"):
                with open(m.src_path(name), "w") as f:
                    f.write("x")
            parent = self.spawn(PARENT_AND_CHILD, "j.txt", cwd=m.mnt)
            child_pid, word = read_line(parent).split()
            self.assertEqual(word, "joined")
            doc = self.mount_doc(m)
            by_pid = {lk["pid"]: lk for lk in self.lock_rows(doc, "j.txt")}
            self.assertEqual(set(by_pid), {parent.pid, int(child_pid)})
            self.assertEqual((by_pid[parent.pid]["mode"], by_pid[parent.pid]["joined"]),
                             ("exclusive", False))
            ch = by_pid[int(child_pid)]
            self.assertEqual((ch["mode"], ch["state"], ch["joined"], ch["inherited"]),
                             ("update", "held", True, False))
            _, rows = self.table("-w", "-o", "PID,STATE,ORIGIN", m.mnt)
            self.assertIn({"PID": child_pid, "STATE": "held*", "ORIGIN": "joined"}, rows)
            self.assertIn({"PID": str(parent.pid), "STATE": "held", "ORIGIN": "own"}, rows)
            stats = {s["path"]: s for s in self.mount_doc(m, "--stats")["stats"]}
            self.assertEqual(stats["j.txt"]["joins"], 1)
            _, rows = self.table("--stats", "-o", "PATH,JOINS", m.mnt)
            self.assertIn({"PATH": "j.txt", "JOINS": "1"}, rows)
            self.release(parent)
            self.finish(parent, "done")

            # A child reads and exits: its lease passes to its parent, this
            # test, as an inherited hold.
            reader = self.spawn(OPEN, "i.txt", "r", cwd=m.mnt)
            self.finish(reader)
            doc = self.poll(m, lambda d: any(lk["pid"] == os.getpid()
                                             for lk in self.lock_rows(d, "i.txt")),
                            "the lease inherited by the test process")
            lk = [lk for lk in self.lock_rows(doc, "i.txt") if lk["pid"] == os.getpid()][0]
            self.assertEqual((lk["mode"], lk["state"], lk["inherited"], lk["joined"]),
                             ("update", "lease", True, False))
            self.assertGreater(lk["lease_left_ns"], 0)
            _, rows = self.table("-w", "-o", "PATH,PID,STATE,ORIGIN", m.mnt)
            self.assertIn({"PATH": "i.txt", "PID": str(os.getpid()), "STATE": "lease*",
                           "ORIGIN": "inherited"}, rows)

    def test_writer_breaks_reader(self):
        with Mount(["reader_wait=0.5", "long_read=0"]) as m:
            with open(m.src_path("b.txt"), "w") as f:
                f.write("x")
            reader = self.spawn(READ_HOLD, "b.txt", cwd=m.mnt)
            self.assertEqual(read_line(reader).strip(), "open")
            # A writer waits for the reader at most reader_wait, then goes
            # ahead; the reader's hold is broken.
            writer = self.spawn(HOLD, "b.txt", cwd=m.mnt)
            self.assertEqual(read_line(writer, timeout=10).strip(), "held")
            doc = self.mount_doc(m)
            self.assertEqual(doc["reader_wait_ms"], 500)
            self.assertEqual(doc["long_read_ms"], 0)
            by_pid = {lk["pid"]: lk for lk in self.lock_rows(doc, "b.txt")}
            self.assertEqual((by_pid[reader.pid]["mode"], by_pid[reader.pid]["hold"]),
                             ("update", "broken"))
            self.assertEqual((by_pid[writer.pid]["mode"], by_pid[writer.pid]["hold"]),
                             ("exclusive", "normal"))
            _, rows = self.table("-o", "PID,STATE", m.mnt)
            self.assertIn({"PID": str(reader.pid), "STATE": "broken"}, rows)
            self.assertIn({"PID": str(writer.pid), "STATE": "held"}, rows)
            stats = {s["path"]: s for s in self.mount_doc(m, "--stats")["stats"]}
            self.assertEqual(stats["b.txt"]["broken"], 1)
            self.assertEqual(stats["b.txt"]["contentions"], 1)
            _, rows = self.table("--stats", "-o", "PATH,BROKEN", m.mnt)
            self.assertEqual(rows, [{"PATH": "b.txt", "BROKEN": "1"}])
            self.release(writer)
            self.assertEqual(writer.wait(timeout=30), 0)
            self.release(reader)
            self.assertEqual(reader.wait(timeout=30), 0)


class TestErrors(LockstatCase):

    def test_not_a_lockfs_mount(self):
        d = self.make_tempdir()
        for path in (d, "/proc"):
            r = self.lockstat(path)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr, "lockstat: %s: not a lockfs mount\n" % path)
        r = self.lockstat(os.path.join(d, "missing"))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.splitlines()), 1)
        self.assertIn("No such file or directory", r.stderr)
        # One bad argument does not hide a good one.
        with Mount() as m:
            r = self.lockstat("-J", d, m.mnt)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr, "lockstat: %s: not a lockfs mount\n" % d)
            self.assertEqual([x["mount"] for x in json.loads(r.stdout)["lockfs"]], [m.mnt])
            # A directory inside the mount names the mount.
            os.mkdir(m.path("sub"))
            self.assertEqual(self.mount_doc(m)["mount"], m.mnt)
            d2 = self.doc(m.path("sub"))
            self.assertEqual(d2["lockfs"][0]["mount"], m.mnt)

    def test_daemon_gone(self):
        with Mount(check_exit=False) as m:
            os.kill(m.pid, signal.SIGKILL)
            self.assertEqual(m.proc.wait(timeout=30), -signal.SIGKILL)
            m.returncode = -signal.SIGKILL
            try:
                for args in ([m.mnt], ["--stats", m.mnt], ["-J", m.mnt]):
                    r = self.lockstat(*args)
                    self.assertEqual(r.returncode, 1, args)
                    if "-J" in args:
                        self.assertEqual(json.loads(r.stdout), {"lockfs": []})
                    else:
                        self.assertEqual(r.stdout, "")
                    lines = r.stderr.splitlines()
                    self.assertEqual(len(lines), 1, r.stderr)
                    self.assertTrue(lines[0].startswith("lockstat: %s: " % m.mnt), lines[0])
                    self.assertIn("gone away", lines[0])
                # Without arguments the dead mount is reported among the others.
                r = self.lockstat()
                self.assertEqual(r.returncode, 1)
                self.assertIn("lockstat: %s: the lockfs daemon has gone away" % m.mnt, r.stderr)
            finally:
                self.assertTrue(harness.fusermount_unmount(m.mnt))
        self.assertNotMounted(m.mnt)

    def test_usage_errors(self):
        for args in (["--bogus"], ["-x"], ["-o", "NOPE"], ["-o", "ACQUISITIONS"],
                     ["--stats", "-o", "STATE"], ["--top", "3"], ["--stats", "--top", "-1"],
                     ["--stats", "--sort", "size"], ["--watch=0"], ["--watch=abc"],
                     ["-p", "abc"], ["-p", "0"], ["-J", "-r"], ["--reset", "--watch"],
                     ["-o"]):
            r = self.lockstat(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, "", args)
            self.assertTrue(r.stderr.startswith("lockstat: "), (args, r.stderr))
            self.assertIn("--help", r.stderr)
        r = self.lockstat("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--waiters", "--output", "--list-columns", "--json", "--raw",
                    "--noheadings", "--watch", "--pid", "--path", "--stats", "--top",
                    "--sort", "--reset", "--version"):
            self.assertIn(opt, r.stdout)
        r = self.lockstat("-V")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^lockstat \(lockfs\) \d+\.\d+")
        r = self.lockstat("--list-columns")
        self.assertEqual(r.returncode, 0)
        for col in ("PATH", "MODE", "STATE", "PID", "TID", "COMMAND", "USER", "HELD",
                    "WAITERS", "BLOCKER", "WANTS", "WAITED", "ORIGIN", "FLAGS",
                    "ACQUISITIONS", "CONTENTIONS", "WAIT-P99", "HOLD-MAX", "EAGAIN", "EDEADLK",
                    "TIMEOUT", "JOINS", "BROKEN", "CALM-LEARNED", "ADVISORY-PASSES"):
            self.assertRegex(r.stdout, r"\n  %s +\S" % col)


class TestWatch(LockstatCase):

    def test_watch_redraws_until_sigint(self):
        with Mount() as m:
            with open(m.src_path("w.txt"), "w") as f:
                f.write("x")
            holder = self.hold(m, "w.txt")
            p = subprocess.Popen([lockstat_bin(), "--watch=0.2", "-o", "PATH,PID", m.mnt],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            self.addCleanup(stop_process, p)
            time.sleep(1.2)
            self.assertIsNone(p.poll(), "lockstat --watch exited by itself")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(err, "")
            frames = [f for f in out.split("\n\n") if f.strip()]
            self.assertGreaterEqual(len(frames), 3)
            for f in frames:
                self.assertEqual([line.split() for line in f.splitlines()],
                                 [["PATH", "PID"], ["w.txt", str(holder.pid)]])
            self.release(holder)
            self.assertEqual(holder.wait(timeout=30), 0)


class TestControlFile(LockstatCase):

    def test_hidden_and_readable(self):
        with Mount() as m:
            path = m.path(CONTROL)
            self.assertNotIn(CONTROL, os.listdir(m.mnt))
            self.assertFalse(os.path.exists(m.src_path(CONTROL)))
            with open(path) as f:
                text = f.read()
            lines = text.splitlines()
            self.assertEqual(lines[0], "lockfs-control 1")
            self.assertEqual(lines[1].split("\t")[:4], ["mount", m.mnt, m.src, str(m.pid)])
            self.assertEqual(lines[-1], "end\t0\t0\t0\t0\t0")
            # The mount's long_read, reader_wait and calm_after (defaults),
            # and no cluster.
            self.assertEqual(lines[1].split("\t")[6:], ["1000", "5000", "2000", "-"])
            # Nothing of this reaches the source.
            self.assertFalse(os.path.exists(m.src_path(CONTROL)))

    def test_garbage_writes(self):
        rng = random.Random(4)
        with Mount() as m:
            with open(m.src_path("g.txt"), "w") as f:
                f.write("x")
            holder = self.hold(m, "g.txt")
            path = m.path(CONTROL)
            junk = [b"", b"\n", b"stats\n\n", b"STATS\n", b"stats \n", b"reset\r\n",
                    b"stats\0\n", b"snapshot\nstats\n", b"x" * (1 << 20),
                    b"stats" + b" " * 100000 + b"\n", b"\\x00\t\t\n"]
            junk += [rng.randbytes(rng.randrange(1, 5000)) for _ in range(300)]
            refused = 0
            for data in junk:
                fd = os.open(path, os.O_RDWR)
                try:
                    if not data:
                        os.write(fd, data)
                        continue
                    with self.assertRaises(OSError) as cm:
                        os.write(fd, data)
                    self.assertEqual(cm.exception.errno, errno.EINVAL, data[:40])
                    refused += 1
                    reply = os.pread(fd, 1 << 16, 0).decode()
                    self.assertTrue(reply.startswith("lockfs-control 1\nerror\t"), reply)
                    self.assertTrue(reply.endswith("\nend\t0\t0\t0\t0\n"), reply)
                finally:
                    os.close(fd)
            self.assertEqual(refused, len(junk) - 1)
            # Reads at odd offsets and sizes.
            fd = os.open(path, os.O_RDONLY)
            whole = os.pread(fd, 1 << 20, 0)
            self.assertEqual(os.pread(fd, 100, len(whole) + 4096), b"")
            pieces = b"".join(os.pread(fd, 3, off) for off in range(0, len(whole), 3))
            self.assertEqual(pieces, whole)
            os.close(fd)
            # Many readers at once while locks come and go.
            errors = []

            def reader():
                try:
                    for _ in range(100):
                        with open(path, "rb") as f:
                            self.assertTrue(f.read().endswith(b"\n"))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
            threads = [threading.Thread(target=reader) for _ in range(4)]
            for t in threads:
                t.start()
            for _ in range(20):
                # A waiter that is killed while it waits.
                w = self.spawn(OPEN, "g.txt", "r", cwd=m.mnt)
                time.sleep(0.05)
                stop_process(w)
            for t in threads:
                t.join(timeout=60)
            self.assertEqual(errors, [])
            # The daemon is alive and still answers properly.
            self.assertIsNone(m.proc.poll())
            doc = self.mount_doc(m, "-w")
            self.assertEqual([lk["pid"] for lk in doc["locks"]], [holder.pid])
            self.release(holder)
            self.assertEqual(holder.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()
