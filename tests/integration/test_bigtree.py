"""Big trees under a low open file limit, and files changed behind the mount.

The daemon used to keep one descriptor for every inode the kernel knew, so a
few tens of thousands of files looked up through one mount exhausted its
open file limit and then every operation failed with EMFILE. Now entries hold
file handles and a bounded cache of descriptors (fs/inode.h). These tests run
the daemon under `prlimit --nofile=1024:1024` on a tree many times larger
than that and drive it with real programs (find, ls -l, du, stat, tar, rm -rf)
while a counter runs in the same mount; and they change files directly in the
source while the mount uses them, to check that a handle never serves the
wrong file.

Sizes: LOCKFS_BIGTREE_FLAT files in one directory and LOCKFS_BIGTREE_NESTED
more in nested directories (defaults 6000 and 3000, well beyond 1024; the
acceptance check uses 60000 and 20000).
"""

import errno
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
NOFILE = 1024
FLAT = int(os.environ.get("LOCKFS_BIGTREE_FLAT", "6000"))
NESTED = int(os.environ.get("LOCKFS_BIGTREE_NESTED", "3000"))
COUNTERS = 4
INCREMENTS = 1000
PLAIN_ATTEMPTS = 5


class LowLimitMount(Mount):
    """A lockfs whose open file limit is NOFILE, soft and hard, so that it
    cannot raise it either. prlimit execs the daemon: same pid."""

    def argv(self):
        return ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE)] + super().argv()


def make_tree(src):
    """FLAT empty files in flat/, NESTED one-byte files in tree/dA/eB/ (100
    per leaf directory). Returns how many entries find(1) shows under src
    besides src itself."""
    os.makedirs(os.path.join(src, "flat"))
    for i in range(FLAT):
        open(os.path.join(src, "flat", "f%d" % i), "w").close()
    leaves = max(1, NESTED // 100)
    parents = set()
    for d in range(leaves):
        parent = os.path.join(src, "tree", "d%d" % (d // 20))
        leaf = os.path.join(parent, "e%d" % d)
        os.makedirs(leaf)
        parents.add(parent)
        for i in range(NESTED // leaves):
            with open(os.path.join(leaf, "g%d" % i), "w") as f:
                f.write("x")
    return 2 + FLAT + len(parents) + leaves + (NESTED // leaves) * leaves


def daemon_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def run_checked(test, cmd, cwd, timeout=600):
    """Runs cmd; it must succeed without a word on stderr."""
    r = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    test.assertEqual(r.returncode, 0, "%s failed: %s" % (" ".join(cmd), r.stderr[-500:]))
    test.assertEqual(r.stderr, b"", "%s complained: %s" % (" ".join(cmd), r.stderr[-500:]))
    return r.stdout


def start_counters(d):
    with open(os.path.join(d, "counter.txt"), "w") as f:
        f.write("0")
    return [subprocess.Popen([PYTHON, os.path.join(WORKLOADS, "counter_rmw.py"), str(INCREMENTS)],
                             cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
            for _ in range(COUNTERS)]


def finish_counters(procs, d, timeout=600):
    """Waits for the counters; returns (counter value or None, how many died)."""
    deadline = time.monotonic() + timeout
    died = 0
    try:
        for p in procs:
            p.wait(timeout=max(1, deadline - time.monotonic()))
            died += p.returncode != 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
    try:
        with open(os.path.join(d, "counter.txt")) as f:
            return int(f.read()), died
    except ValueError:
        return None, died


class BigTreeTests(LockfsTestCase):

    def plain_counter_goes_wrong(self):
        """The same counter on a plain directory loses updates (or copies
        die reading a file another copy just truncated): so an exact count
        through the mount means the locks worked meanwhile."""
        expected = COUNTERS * INCREMENTS
        for attempt in range(PLAIN_ATTEMPTS):
            d = self.make_tempdir()
            value, died = finish_counters(start_counters(d), d)
            if value != expected or died:
                print("\n  plain directory: counter %s of %d, %d copies died"
                      % (value, expected, died), file=sys.stderr)
                return
        self.fail("the counter never went wrong on the plain directory")

    def test_big_tree_low_limit(self):
        """find, ls -l, du, stat of every file, tar and rm -rf over a tree
        many times larger than the daemon's open file limit: no error at
        all, the daemon's descriptors stay bounded, and a counter running in
        the same mount meanwhile stays exact."""
        self.plain_counter_goes_wrong()
        with LowLimitMount(["fd_cache=200"]) as m:
            entries = make_tree(m.src)
            counters = start_counters(m.mnt)
            try:
                out = run_checked(self, ["find", "."], m.mnt)
                self.assertEqual(len(out.splitlines()) - 1, entries + 1)  # + counter.txt
                run_checked(self, ["ls", "-l", "flat"], m.mnt)
                run_checked(self, ["du", "-s", "."], m.mnt)
                out = run_checked(self, ["find", "tree", "-type", "f", "-exec",
                                         "stat", "-c", "%s", "{}", "+"], m.mnt)
                sizes = out.split()
                self.assertEqual(len(sizes), (NESTED // max(1, NESTED // 100)) *
                                 max(1, NESTED // 100))
                self.assertEqual(set(sizes), {b"1"})
                fds = daemon_fds(m.pid)
                print("\n  daemon descriptors after the walk: %d" % fds, file=sys.stderr)
                self.assertLess(fds, 200 + 100)
                tar = os.path.join(m.tmp, "t.tar")
                run_checked(self, ["tar", "cf", tar, "tree", "flat"], m.mnt)
                listed = subprocess.run(["tar", "tf", tar], stdout=subprocess.PIPE,
                                        check=True).stdout.splitlines()
                self.assertEqual(len(listed), entries)
            finally:
                value, died = finish_counters(counters, m.mnt)
            self.assertEqual(died, 0)
            self.assertEqual(value, COUNTERS * INCREMENTS)
            run_checked(self, ["rm", "-rf", "flat", "tree"], m.mnt)
            self.assertEqual(sorted(os.listdir(m.src)), ["counter.txt"])
            self.assertLess(daemon_fds(m.pid), 200 + 100)
        self.assertNotIn("Too many open files", m.stderr_text)


# The reader: opens names through the mount again and again and records what
# it read, or the errno. Output: one JSON list of [name, content-or-errno].
READER = r"""
import errno, json, os, sys, time
names = sys.argv[1].split(",")
until = time.monotonic() + float(sys.argv[2])
seen = []
while time.monotonic() < until:
    for n in names:
        try:
            with open(n) as f:
                seen.append([n, f.read()])
        except OSError as e:
            seen.append([n, errno.errorcode.get(e.errno, str(e.errno))])
print(json.dumps(seen))
"""


class BehindTheBackTests(LockfsTestCase):

    def test_renames_and_recreations_in_the_source(self):
        """Files renamed, unlinked and recreated directly in the source while
        a program reads them through the mount (with a descriptor cache so
        small that entries are reopened by handle all the time): every read
        of a name returns contents that name once had, errors are only
        ENOENT or ESTALE, and once the source is quiet every name reads its
        current contents and removed names give ENOENT."""
        n = 40
        names = ["f%d" % i for i in range(n)] + ["m%d" % i for i in range(n)]
        # history[name]: every content the source ever had under that name
        history = {name: set() for name in names}
        with Mount(["fd_cache=8", "entry_timeout=0.2", "attr_timeout=0.2"]) as m:
            def put(name, text):
                tmp = m.src_path(".tmp")
                with open(tmp, "w") as f:
                    f.write(text)
                history[name].add(text)
                os.rename(tmp, m.src_path(name))

            for i in range(n):
                put("f%d" % i, "f%d gen0" % i)
            reader = subprocess.Popen([PYTHON, "-c", READER, ",".join(names), "4"],
                                      cwd=m.mnt, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True)
            try:
                gen = 0
                deadline = time.monotonic() + 3.5
                while time.monotonic() < deadline:
                    gen += 1
                    for i in range(n):
                        f, mv = m.src_path("f%d" % i), m.src_path("m%d" % i)
                        step = (gen + i) % 3
                        if step == 0 and os.path.exists(f):
                            # renamed: the moved file keeps its contents
                            with open(f) as fh:
                                history["m%d" % i].add(fh.read())
                            os.rename(f, mv)
                        elif step == 1 and os.path.exists(mv):
                            os.unlink(mv)
                        else:
                            # recreated: unlink first, so that the new file
                            # may get the old inode number (written whole
                            # before it takes the name)
                            if os.path.exists(f):
                                os.unlink(f)
                            put("f%d" % i, "f%d gen%d" % (i, gen))
                    time.sleep(0.01)
                out, err = reader.communicate(timeout=60)
            finally:
                if reader.poll() is None:
                    reader.kill()
                    reader.wait()
            self.assertEqual(reader.returncode, 0, err[-500:])
            seen = json.loads(out)
            self.assertGreater(len(seen), 10 * len(names))
            errors = {}
            for name, got in seen:
                if got in ("ENOENT", "ESTALE"):
                    errors[got] = errors.get(got, 0) + 1
                    continue
                self.assertIn(got, history[name],
                              "%s read as %r, which that name never held" % (name, got))
            print("\n  %d reads, errors: %s" % (len(seen), errors), file=sys.stderr)
            # Quiet now: after the kernel's caches expire, every name reads
            # its current contents, and a removed one is simply not there.
            time.sleep(0.5)
            for name in names:
                path = m.path(name)
                if os.path.exists(m.src_path(name)):
                    with open(m.src_path(name)) as fh:
                        want = fh.read()
                    with open(path) as fh:
                        self.assertEqual(fh.read(), want)
                else:
                    with self.assertRaises(FileNotFoundError):
                        open(path).close()


class RecreateTests(LockfsTestCase):

    def test_exclusive_creates_after_rm_rf(self):
        """Files removed through the mount with rm -rf, then as many created
        again with O_CREAT|O_EXCL (Python's open(path, "x")), several times:
        the source file system gives the new files the numbers of the
        removed ones, often before the kernel has told the daemon it forgot
        the removed inodes. Every exclusive create of a name that is not
        there must succeed (the daemon used to answer some of them ESTALE,
        whose retry by the kernel found the file just made: EEXIST)."""
        n, rounds = 2000, 4
        create = """
            import errno, os, sys
            d, n = sys.argv[1], int(sys.argv[2])
            os.makedirs(d)
            failed = {}
            for i in range(n):
                try:
                    with open(os.path.join(d, "f%d" % i), "x") as f:
                        f.write("x" * 100)
                except OSError as e:
                    name = errno.errorcode.get(e.errno, str(e.errno))
                    failed[name] = failed.get(name, 0) + 1
            print(failed)
        """
        with Mount() as m:
            for r in range(rounds):
                d = m.path("t")
                res = harness.py(create, d, n, timeout=300)
                self.assertEqual(res.returncode, 0, res.stderr[-500:])
                self.assertEqual(res.stdout.strip(), "{}",
                                 "round %d: failed creates by errno" % (r + 1))
                harness.run(["rm", "-rf", d], check=True, timeout=300)


if __name__ == "__main__":
    unittest.main()
