"""The lockfs command line: errors, --help, --version, in-place mounts,
shutdown by unmount and by signals, detached mode and mounting through
mount(8) / mount.fuse3 / fstab."""

import hashlib
import os
import re
import shutil
import subprocess
import textwrap
import unittest

from harness import (LockfsTestCase, Mount, PYTHON, REPO_ROOT, NOBODY, NOGROUP,
                     become_subreaper, find_daemons, fusermount_unmount, is_lockfs_mounted,
                     lockfs_bin, mounts, mounts_at, pid_alive, py, require_root, run,
                     stop_process, wait_pid)


def config_default_lease():
    """LOCKFS_DEFAULT_LEASE_MS from fs/config.h, the value --help must show."""
    with open(os.path.join(REPO_ROOT, "fs", "config.h")) as f:
        m = re.search(r"#define\s+LOCKFS_DEFAULT_LEASE_MS\s+(\d+)", f.read())
    assert m, "LOCKFS_DEFAULT_LEASE_MS not found in fs/config.h"
    return int(m.group(1))


def project_version():
    with open(os.path.join(REPO_ROOT, "meson.build")) as f:
        m = re.search(r"version\s*:\s*'([^']+)'", f.read())
    assert m, "no version in meson.build"
    return m.group(1)


WRITER = """
import os, sys
data = bytes((i * 7 + 3) % 251 for i in range(int(sys.argv[2])))
with open(sys.argv[1], "wb") as f:
    f.write(data)
"""


def expected_data(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


class CliErrors(LockfsTestCase):
    """Each mistake: non-zero exit, exactly one line on stderr naming the
    problem, nothing mounted, no daemon left."""

    def setUp(self):
        self.tmp = self.make_tempdir()
        self.src = os.path.join(self.tmp, "src")
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.src)
        os.mkdir(self.mnt)

    def expect_error(self, args, *needles, argv0=None, wrap=None, user=None, cwd=None):
        argv = [argv0 or lockfs_bin()] + list(args)
        if wrap:
            argv = wrap + argv
        before = {m["id"] for m in mounts()}
        r = run(argv, cwd=cwd, user=user, timeout=30)
        lines = r.stderr.splitlines()
        self.assertNotEqual(r.returncode, 0, "%s succeeded" % args)
        self.assertEqual(len(lines), 1, "expected one line on stderr, got:\n%s" % r.stderr)
        line = lines[0]
        self.assertTrue(line.startswith("lockfs: "), line)
        for n in needles:
            self.assertIn(n, line)
        self.assertEqual(r.stdout, "")
        # Only this test's own directory: other lockfs mounts on the machine
        # come and go while it runs.
        after = [m for m in mounts() if m["id"] not in before and m["fstype"] == "fuse.lockfs"
                 and (m["mountpoint"] + "/").startswith(self.tmp.rstrip("/") + "/")]
        self.assertEqual(after, [], "something got mounted")
        self.assertEqual(find_daemons(self.mnt), [], "a daemon was left running")
        return line

    def test_missing_source(self):
        self.expect_error([], "SOURCE")

    def test_missing_mountpoint(self):
        self.expect_error([self.src], "MOUNTPOINT")

    def test_source_does_not_exist(self):
        nope = os.path.join(self.tmp, "nope")
        line = self.expect_error([nope, self.mnt], nope, "No such file or directory")
        self.assertIn("source", line)

    def test_source_not_a_directory(self):
        f = os.path.join(self.tmp, "file")
        open(f, "w").close()
        self.expect_error([f, self.mnt], f, "not a directory")

    def test_mountpoint_does_not_exist(self):
        nope = os.path.join(self.tmp, "nope")
        line = self.expect_error([self.src, nope], nope, "No such file or directory")
        self.assertIn("mountpoint", line)

    def test_mountpoint_not_a_directory(self):
        f = os.path.join(self.tmp, "file")
        open(f, "w").close()
        self.expect_error([self.src, f], f, "not a directory")

    def test_extra_argument(self):
        self.expect_error([self.src, self.mnt, "surplus"], "surplus")

    def test_mountpoint_inside_source(self):
        sub = os.path.join(self.src, "sub")
        os.mkdir(sub)
        self.expect_error([self.src, sub], "inside")

    def test_mountpoint_already_lockfs(self):
        with Mount() as m:
            # Another source onto the same mount point.
            line = self.expect_error([self.src, m.mnt], m.mnt, "already")
            self.assertIn("mount point", line)
            # In place on top of a lockfs mount: a repeated mount.
            self.expect_error([m.mnt, m.mnt], m.mnt, "already mounted by lockfs")
            self.assertEqual(len(mounts_at(m.mnt, "fuse.lockfs")), 1)

    def test_mountpoint_root_of_other_filesystem(self):
        """A mount root is refused as MOUNTPOINT, except in place: lockfs
        over the root of a plain file system is what in-place mode is for."""
        require_root()
        run(["mount", "-t", "tmpfs", "-o", "size=8m", "lockfs-test", self.mnt], check=True)
        try:
            self.expect_error([self.src, self.mnt], self.mnt, "already a mount point", "tmpfs")
            with open(os.path.join(self.mnt, "on-tmpfs"), "w") as f:
                f.write("tmpfs data")
            with Mount(source=self.mnt, inplace=True) as m:
                r = py("print(open('on-tmpfs').read()); open('new', 'w').write('via lockfs')",
                       cwd=m.mnt, check=True)
                self.assertEqual(r.stdout.strip(), "tmpfs data")
                self.assertEqual(mounts_at(self.mnt)[-1]["fstype"], "fuse.lockfs")
            self.assertEqual(mounts_at(self.mnt)[-1]["fstype"], "tmpfs")
            with open(os.path.join(self.mnt, "new")) as f:
                self.assertEqual(f.read(), "via lockfs")
        finally:
            run(["umount", self.mnt])

    def test_bad_numbers(self):
        cases = {
            "lease": ["abc", "-1", "1.5", "4294967296", "", " 5", "0x10", "1e3",
                      "99999999999999999999999"],
            "lock_timeout": ["abc", "-1", "1e3", "inf", "nan", "4294968", "1.2.3", "", "5s"],
            "entry_timeout": ["x", "-0.5", "inf", "1e400", "5s", ""],
            "attr_timeout": ["nan", "-1", "2;5", "1" + "0" * 400],
            "threads": ["0", "-4", "abc", "1.5", "1025", "99999999999999999999999"],
        }
        for name, values in cases.items():
            for v in values:
                with self.subTest(option=name, value=v):
                    line = self.expect_error([self.src, self.mnt, "-o", "%s=%s" % (name, v)],
                                             "-o " + name)
                    if v:
                        self.assertIn("'%s'" % v, line)

    def test_lockfs_option_without_value(self):
        for name in ["lease", "lock_timeout", "policy", "entry_timeout", "attr_timeout",
                     "threads"]:
            with self.subTest(option=name):
                self.expect_error([self.src, self.mnt, "-o", name], name, "value")

    def test_unknown_mount_option(self):
        line = self.expect_error([self.src, self.mnt, "-o", "bogus_opt"], "bogus_opt")
        self.assertIn("unknown", line)
        # Known options around it are not blamed.
        line = self.expect_error([self.src, self.mnt, "-o",
                                  "allow_other,lease=5,frobnicate=3,ro"], "frobnicate=3")
        self.assertNotIn("allow_other", line)
        self.assertNotIn("lease", line)

    def test_unknown_dash_option(self):
        self.expect_error([self.src, self.mnt, "--frobnicate"], "--frobnicate")
        self.expect_error(["-x", self.src, self.mnt], "-x")

    def test_o_without_argument(self):
        self.expect_error([self.src, self.mnt, "-o"], "-o")

    def test_policy_file_missing(self):
        nope = os.path.join(self.tmp, "no-such-policy")
        self.expect_error([self.src, self.mnt, "-o", "policy=" + nope], nope)

    def test_bad_policy_names_file_and_line(self):
        pol = os.path.join(self.tmp, "policy")
        with open(pol, "w") as f:
            f.write("# rules\n*.log  none\n*.db  sometimes\n")
        self.expect_error([self.src, self.mnt, "-o", "policy=" + pol], pol + ":3:")

    def _in_private_namespace(self, setup, user_prefix=""):
        """Runs lockfs in a private mount namespace after `setup` (shell),
        so /dev can be replaced without touching the machine."""
        require_root()
        if shutil.which("unshare") is None:
            self.fail("unshare (util-linux) is needed")
        # The binary and the directories must be reachable for nobody too.
        bindir = self.make_tempdir()
        binary = os.path.join(bindir, "lockfs")
        shutil.copy2(lockfs_bin(), binary)
        for d in (bindir, self.tmp, self.src, self.mnt):
            os.chmod(d, 0o755)
        script = "%s && exec %s %s %s %s" % (setup, user_prefix, binary, self.src, self.mnt)
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def test_no_dev_fuse(self):
        argv = self._in_private_namespace("mount -t tmpfs none /dev")
        before = {m["id"] for m in mounts()}
        r = run(argv, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("/dev/fuse", lines[0])
        self.assertTrue(lines[0].startswith("lockfs: "), lines[0])
        self.assertEqual([m for m in mounts() if m["id"] not in before], [])

    def test_dev_fuse_permission_denied(self):
        argv = self._in_private_namespace(
            "mount -t tmpfs none /dev && mknod -m 600 /dev/fuse c 10 229 && "
            "mknod -m 666 /dev/null c 1 3",
            user_prefix="setpriv --reuid=%d --regid=%d --clear-groups" % (NOBODY, NOGROUP))
        before = {m["id"] for m in mounts()}
        r = run(argv, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("/dev/fuse", lines[0])
        self.assertIn("Permission denied", lines[0])
        self.assertEqual([m for m in mounts() if m["id"] not in before], [])


class CliInfo(LockfsTestCase):

    @classmethod
    def setUpClass(cls):
        # --help and --version need no FUSE.
        pass

    def help_blocks(self, text):
        """{"lease": "the option's text including continuation lines"}."""
        blocks = {}
        current = None
        for line in text.splitlines():
            m = re.match(r"^\s+-o (\w+)", line)
            if m:
                current = m.group(1)
                blocks[current] = line
            elif current and re.match(r"^\s{10,}\S", line):
                blocks[current] += " " + line.strip()
            else:
                current = None
        return blocks

    def test_help_lists_every_option_with_default(self):
        r = run([lockfs_bin(), "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        out = r.stdout
        self.assertIn("usage: lockfs SOURCE MOUNTPOINT", out)
        blocks = self.help_blocks(out)
        expected = {
            "lease": str(config_default_lease()),
            "lock_timeout": "0",
            "policy": "none",
            "entry_timeout": "1.0",
            "attr_timeout": "1.0",
            "threads": "8",
            "fuse_debug": "off",
            "fsname": "SOURCE",
            "subtype": "lockfs",
        }
        for name, default in expected.items():
            with self.subTest(option=name):
                self.assertIn(name, blocks, "option %s missing from --help" % name)
                m = re.search(r"\(default: ([^)]*)\)", blocks[name])
                self.assertIsNotNone(m, "no default for %s: %s" % (name, blocks[name]))
                self.assertIn(default, m.group(1))
        for flag in ["-h", "--help", "-V", "--version", "-f", "-d", "-s"]:
            self.assertRegex(out, r"(?m)^\s+.*%s\b" % re.escape(flag))
        # libfuse's own list is there too.
        for name in ["allow_other", "allow_root", "auto_unmount", "default_permissions"]:
            self.assertIn("-o " + name, out)
        self.assertEqual(run([lockfs_bin(), "-h"]).stdout, out)

    def test_help_wins_over_missing_arguments(self):
        r = run([lockfs_bin(), "-o", "lease=5", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage:", r.stdout)

    def test_version(self):
        for flag in ["-V", "--version"]:
            with self.subTest(flag=flag):
                r = run([lockfs_bin(), flag])
                self.assertEqual(r.returncode, 0, r.stderr)
                lines = r.stdout.splitlines()
                self.assertEqual(lines[0], "lockfs version " + project_version())
                self.assertRegex(r.stdout, r"libfuse version 3\.\d+")


class CliMounting(LockfsTestCase):

    def write_through(self, m, name, size):
        py(WRITER, m.path(name), size, check=True)

    def check_source(self, path, size):
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(len(data), size)
        self.assertEqual(hashlib.sha256(data).digest(),
                         hashlib.sha256(expected_data(size)).digest())

    def test_mount_table_entry(self):
        with Mount() as m:
            entry = mounts_at(m.mnt, "fuse.lockfs")[-1]
            self.assertEqual(entry["source"], os.path.realpath(m.src))
            self.assertIn("nosuid", entry["mount_options"])

    def test_relative_paths_and_detached(self):
        """Relative SOURCE and MOUNTPOINT from another working directory,
        without -f: the mount table shows absolute paths and the detached
        daemon ends with 0 after fusermount3 -u."""
        tmp = self.make_tempdir()
        os.mkdir(os.path.join(tmp, "rel-src"))
        os.mkdir(os.path.join(tmp, "rel-mnt"))
        mnt = os.path.join(tmp, "rel-mnt")
        become_subreaper()
        r = run([lockfs_bin(), "rel-src", "rel-mnt"], cwd=tmp)
        try:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "")
            entry = mounts_at(mnt, "fuse.lockfs")
            self.assertEqual(len(entry), 1)
            self.assertEqual(entry[0]["source"], os.path.join(os.path.realpath(tmp), "rel-src"))
            pids = find_daemons("rel-mnt")
            self.assertEqual(len(pids), 1)
            pid = pids[0]
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            self.assertEqual(int(fields[3]), pid, "the daemon is not a session leader")
            self.assertEqual(os.readlink("/proc/%d/fd/2" % pid), "/dev/null")
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), "/")
            py(WRITER, os.path.join(mnt, "f"), 5000, check=True)
            self.assertTrue(fusermount_unmount(mnt, lazy_last=False))
            self.assertEqual(wait_pid(pid, 15), 0)
            self.check_source(os.path.join(tmp, "rel-src", "f"), 5000)
        finally:
            for pid in find_daemons("rel-mnt"):
                fusermount_unmount(mnt)
                if wait_pid(pid, 5) is None:
                    os.kill(pid, 9)

    def test_quiet_by_default_and_debug_with_d(self):
        with Mount() as m:
            self.write_through(m, "f", 10)
        self.assertEqual(m.stderr_text, "")
        with Mount(debug=True) as m:
            self.write_through(m, "f", 10)
        self.assertIn(m.mnt, m.stderr_text)

    def test_valid_options_accepted(self):
        opts = ["lease=0", "lock_timeout=0.5", "entry_timeout=0", "attr_timeout=2.5",
                "threads=1", "fsname=my-fs", "noatime", "rw", "dev", "suid",
                "noauto", "_netdev", "x-systemd.automount", "default_permissions"]
        for args in ([], ["-s"]):
            with self.subTest(args=args):
                with Mount(opts, args=args) as m:
                    entry = mounts_at(m.mnt, "fuse.lockfs")[-1]
                    self.assertEqual(entry["source"], "my-fs")
                    self.assertIn("noatime", entry["mount_options"])
                    self.assertIn("default_permissions", entry["options"])
                    self.write_through(m, "f", 4096)
                    self.check_source(m.src_path("f"), 4096)

    def test_good_policy_accepted(self):
        tmp = self.make_tempdir()
        pol = os.path.join(tmp, "policy")
        with open(pol, "w") as f:
            f.write("# test\n*.log none\ndata/** readers-writer\n")
        with Mount(["policy=" + pol]) as m:
            self.write_through(m, "a.log", 100)
            self.check_source(m.src_path("a.log"), 100)

    def test_in_place(self):
        tmp = self.make_tempdir()
        d = os.path.join(tmp, "in place, dir")
        os.mkdir(d)
        with open(os.path.join(d, "old.txt"), "w") as f:
            f.write("before the mount")
        under = os.open(d, os.O_PATH | os.O_DIRECTORY)
        self.addCleanup(os.close, under)
        with Mount(source=d, inplace=True) as m:
            self.assertEqual(m.mnt, d)
            entry = mounts_at(d, "fuse.lockfs")[-1]
            self.assertEqual(entry["source"], d)
            r = py("import os; print(open('old.txt').read()); "
                   "open('new.txt', 'w').write('through the mount'); "
                   "print(sorted(os.listdir('.')))", cwd=d, check=True)
            self.assertEqual(r.stdout.splitlines(),
                             ["before the mount", "['new.txt', 'old.txt']"])
            # It landed in the directory underneath, not in some cache.
            fd = os.open("new.txt", os.O_RDONLY, dir_fd=under)
            try:
                self.assertEqual(os.read(fd, 100), b"through the mount")
            finally:
                os.close(fd)
        self.assertFalse(is_lockfs_mounted(d))
        self.assertEqual(sorted(os.listdir(d)), ["new.txt", "old.txt"])
        with open(os.path.join(d, "new.txt")) as f:
            self.assertEqual(f.read(), "through the mount")

    def test_shutdown_keeps_data(self):
        """Every way of stopping: exit status 0, mount gone, every write
        that returned success is in SOURCE (no fsync)."""
        for how in ["fusermount", "umount", "SIGINT", "SIGTERM", "SIGHUP"]:
            with self.subTest(how=how):
                with Mount() as m:
                    self.write_through(m, "big", 3 * 1024 * 1024 + 17)
                    self.write_through(m, "small", 5)
                    pid = m.pid
                    self.assertEqual(m.stop(how), 0, m.stderr_text)
                    self.assertFalse(pid_alive(pid))
                    self.check_source(m.src_path("big"), 3 * 1024 * 1024 + 17)
                    self.check_source(m.src_path("small"), 5)

    def test_sigterm_with_file_still_open(self):
        """A writer still holding its file open does not stop the daemon
        from ending, and what it wrote is in SOURCE."""
        with Mount() as m:
            holder = subprocess.Popen(
                [PYTHON, "-c", textwrap.dedent("""
                    import os, sys
                    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
                    os.write(fd, b"x" * 100000)
                    print("written", flush=True)
                    sys.stdin.read()
                    try:
                        os.write(fd, b"y")
                        print("write-after-unmount-ok")
                    except OSError as e:
                        print("errno", e.errno)
                    """), m.path("held")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                self.assertEqual(holder.stdout.readline().strip(), "written")
                self.assertEqual(m.stop("SIGTERM"), 0, m.stderr_text)
                with open(m.src_path("held"), "rb") as f:
                    self.assertEqual(f.read(), b"x" * 100000)
                out, _ = holder.communicate("", timeout=30)
                self.assertTrue(out.startswith("errno"), out)
            finally:
                if holder.poll() is None:
                    holder.kill()
                    holder.wait()

    def test_close_while_busy(self):
        """Leaving a Mount while a process still has a file open in it (so
        fusermount3 -u says busy) still ends the daemon cleanly."""
        holder = None
        with Mount() as m:
            holder = subprocess.Popen(
                [PYTHON, "-c", "import sys; f = open(sys.argv[1], 'w'); f.write('x'); "
                 "f.flush(); print('open', flush=True); sys.stdin.read()", m.path("busy")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.assertEqual(holder.stdout.readline().strip(), "open")
            r = run(["fusermount3", "-u", m.mnt])
            self.assertNotEqual(r.returncode, 0, "unmount of a busy mount succeeded")
        try:
            self.assertEqual(m.returncode, 0)
            self.assertFalse(is_lockfs_mounted(m.mnt))
            self.assertFalse(pid_alive(m.pid))
        finally:
            stop_process(holder)

    def test_detached_mode(self):
        with Mount(foreground=False) as m:
            self.assertNotEqual(m.pid, m.proc.pid)
            self.assertEqual(m.proc.returncode, 0)
            self.write_through(m, "f", 70000)
            self.assertEqual(m.stop("fusermount"), 0)
            self.check_source(m.src_path("f"), 70000)

    def _helper_dir(self):
        """A directory holding `lockfs`, a symlink to the binary under test."""
        d = self.make_tempdir()
        os.chmod(d, 0o755)
        os.symlink(lockfs_bin(), os.path.join(d, "lockfs"))
        return d

    def test_mount_fuse3_helper(self):
        """mount.fuse3 as mount(8) calls it for type fuse.lockfs: it finds
        `lockfs` on PATH and passes -o with its own additions (dev, suid)."""
        require_root()
        helper = shutil.which("mount.fuse3") or "/sbin/mount.fuse3"
        bindir = self._helper_dir()
        tmp = self.make_tempdir()
        src, mnt = os.path.join(tmp, "src"), os.path.join(tmp, "mnt")
        os.mkdir(src)
        os.mkdir(mnt)
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        become_subreaper()
        try:
            r = run([helper, src, mnt, "-t", "fuse.lockfs", "-o",
                     "noauto,_netdev,nofail,lease=100,lock_timeout=2"], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            entry = mounts_at(mnt, "fuse.lockfs")
            self.assertEqual(len(entry), 1, r.stderr)
            self.assertEqual(entry[0]["source"], src)
            pids = find_daemons(mnt)
            self.assertEqual(len(pids), 1)
            py(WRITER, os.path.join(mnt, "f"), 1234, check=True)
            r = run(["umount", mnt])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(wait_pid(pids[0], 15), 0)
            self.check_source(os.path.join(src, "f"), 1234)
        finally:
            for pid in find_daemons(mnt):
                fusermount_unmount(mnt)
                if wait_pid(pid, 5) is None:
                    os.kill(pid, 9)

    def test_fstab(self):
        """A real fstab line of type fuse.lockfs, mounted with mount(8).
        mount(8) clears PATH for its helpers, so `lockfs` must be in a
        standard directory: a private mount namespace puts it in
        /usr/local/sbin without touching the machine."""
        require_root()
        bindir = self._helper_dir()
        tmp = self.make_tempdir()
        src, mnt = os.path.join(tmp, "src"), os.path.join(tmp, "mnt")
        os.mkdir(src)
        os.mkdir(mnt)
        fstab = os.path.join(tmp, "fstab")
        with open(fstab, "w") as f:
            f.write("# lockfs test\n%s %s fuse.lockfs "
                    "noauto,nofail,_netdev,x-systemd.automount,lease=100,allow_other 0 0\n"
                    % (src, mnt))
        script = textwrap.dedent(r"""
            import ctypes, os, subprocess, sys, time
            bindir, fstab, src, mnt, binary = sys.argv[1:6]
            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # reap the detached daemon
            subprocess.run(["mount", "--bind", bindir, "/usr/local/sbin"], check=True)
            pid = None
            def fail(msg):
                print("FAIL", msg, flush=True)
                sys.exit(1)
            try:
                r = subprocess.run(["mount", "-T", fstab, mnt], capture_output=True, text=True,
                                   env={"LANG": "C"})
                if r.returncode != 0:
                    fail("mount: %r" % r.stderr)
                with open("/proc/self/mountinfo") as f:
                    lines = [l for l in f if (" %s " % mnt) in l]
                if not lines or " - fuse.lockfs %s " % src not in lines[-1]:
                    fail("mountinfo: %r" % lines)
                for p in os.listdir("/proc"):
                    if p.isdigit():
                        try:
                            argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
                            exe = os.readlink("/proc/%s/exe" % p)
                        except OSError:
                            continue
                        if exe == binary and mnt.encode() in argv:
                            pid = int(p)
                            print("ARGV", [a.decode() for a in argv if a], flush=True)
                with open(os.path.join(mnt, "f"), "w") as f:
                    f.write("fstab")
                r = subprocess.run(["umount", mnt], capture_output=True, text=True)
                if r.returncode != 0:
                    fail("umount: %r" % r.stderr)
                deadline = time.time() + 15
                status = None
                while time.time() < deadline:
                    w, st = os.waitpid(-1, os.WNOHANG)
                    if w == pid:
                        status = os.waitstatus_to_exitcode(st)
                        break
                    time.sleep(0.05)
                print("EXIT", status, flush=True)
                print("DATA", open(os.path.join(src, "f")).read(), flush=True)
            finally:
                if pid and os.path.exists("/proc/%d" % pid):
                    subprocess.run(["umount", "-l", mnt])
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
            """)
        r = run(["unshare", "--mount", "--propagation", "private", PYTHON, "-c", script,
                 bindir, fstab, src, mnt, os.path.realpath(lockfs_bin())], timeout=60)
        for pid in find_daemons(mnt):  # only if the script itself died
            os.kill(pid, 9)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout.splitlines()
        argv = [l for l in out if l.startswith("ARGV")]
        self.assertEqual(len(argv), 1, r.stdout)
        # mount.fuse3 stripped what only mount(8) understands.
        self.assertNotIn("noauto", argv[0])
        self.assertIn("lease=100", argv[0])
        self.assertIn("EXIT 0", out)
        self.assertIn("DATA fstab", out)
        self.assertFalse(is_lockfs_mounted(mnt))


if __name__ == "__main__":
    unittest.main()
