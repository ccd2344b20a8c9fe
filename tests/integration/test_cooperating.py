"""Programs that already coordinate keep working through a lockfs mount.

filelock and portalocker take flock() locks on a lock file before touching
the data file; the sqlite3 shell takes fcntl() locks on its database. The
mount adds mandatory locks on top: these tests check that the two kinds of
lock compose without a hang, a deadlock or a lost update (docs/semantics.md,
"Programs that already coordinate").

Each workload is also run on a plain directory first, where it must be
exact too: that shows the workload itself is correct, so a wrong result
through the mount is the mount's fault.
"""

import os
import sys
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount
from test_locks import crashes, read_counter, run_group, workload, write_file


class CooperatingTests(LockfsTestCase):

    def counter_exact(self, base, setup, cmds, expected, timeout):
        write_file(os.path.join(setup, "counter.txt"), "0")
        res, secs = run_group(cmds, base, timeout)
        bad = "\n".join("  exit %s: %s" % (rc, err.strip()[-800:]) for rc, _, err in res if rc)
        self.assertEqual(crashes(res), 0, "copies failed in %s:\n%s" % (base, bad))
        self.assertEqual(read_counter(os.path.join(setup, "counter.txt")), expected)
        return secs

    def cooperating_counter(self, script, procs=10, iterations=50):
        cmds = [[PYTHON, workload(script), str(iterations)] for _ in range(procs)]
        plain = self.make_tempdir()
        t_plain = self.counter_exact(plain, plain, cmds, procs * iterations, 120)
        with Mount() as m:
            t_mount = self.counter_exact(m.mnt, m.src, cmds, procs * iterations, 180)
        print("\n  %s: plain %.1f s, through the mount %.1f s" % (script, t_plain, t_mount),
              file=sys.stderr)

    def test_filelock(self):
        self.cooperating_counter("filelock_counter.py")

    def test_portalocker(self):
        self.cooperating_counter("portalocker_counter.py")

    def sqlite_rows(self, base, setup, writers=5, rows=20):
        db = os.path.join(base, "test.db")
        r = harness.run(["sqlite3", "-bail", db, "CREATE TABLE t(who TEXT, n INTEGER);"],
                        timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        cmds = [["/bin/bash", workload("sqlite_insert.sh"), db, "w%d" % i, str(rows)]
                for i in range(writers)]
        res, secs = run_group(cmds, base, 180)
        for rc, out, err in res:
            self.assertEqual(rc, 0, "sqlite3 failed in %s: %s" % (base, err))
            self.assertEqual(err.strip(), "", "sqlite3 complained in %s" % base)
        r = harness.run(["sqlite3", "-bail", os.path.join(setup, "test.db"),
                         "SELECT count(*), count(DISTINCT who || ':' || n) FROM t;"],
                        timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "%d|%d" % (writers * rows, writers * rows))
        return secs

    def test_sqlite3_shell(self):
        plain = self.make_tempdir()
        t_plain = self.sqlite_rows(plain, plain)
        with Mount() as m:
            t_mount = self.sqlite_rows(m.mnt, m.src)
        print("\n  sqlite3: plain %.1f s, through the mount %.1f s" % (t_plain, t_mount),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
