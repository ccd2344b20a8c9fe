"""Shared machinery for lockfs's integration tests.

Every integration test mounts a real lockfs and drives it with real programs.
This module gives them:

  * ``lockfs_bin()``: the daemon under test (env LOCKFS_BIN, which meson sets,
    else ../../build/fs/lockfs next to this file).
  * ``require_fuse()`` / ``require_root()``: skip with a reason when the
    machine cannot run the tests. When CI=true they fail instead: CI has
    /dev/fuse and root, so a skip there would hide breakage.
  * ``Mount``: one lockfs daemon on a fresh (or given) SOURCE and MOUNTPOINT,
    a context manager that always unmounts, reaps the daemon and removes its
    temporary directories, whatever the test did.
  * ``run()``, ``py()``, ``spawn_py()``: run a program or a Python snippet in
    a directory, with a timeout, optionally as another user.
  * ``outcome()`` / ``compare_outcomes()``: run one snippet in a plain
    directory and through a mount and return both results (return values,
    errno names, stat summaries) for comparison.

A warning for test authors: lockfs makes opens wait for each other. A test
process must not keep a file in a mount open while it waits for a child that
opens the same file, or both wait for ever (only the timeouts here end it).
Reading a file in the mount from the test process itself also leaves the test
process holding a short lease on it (see docs/semantics.md).
"""

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PYTHON = "/usr/bin/python3"
NOBODY = 65534
NOGROUP = 65534
TMP_PREFIX = "lockfs-it-"
DEFAULT_TIMEOUT = 30.0


def lockfs_bin():
    """The daemon binary under test."""
    path = os.environ.get("LOCKFS_BIN")
    if not path:
        path = os.path.join(REPO_ROOT, "build", "fs", "lockfs")
    return os.path.abspath(path)


def in_ci():
    return os.environ.get("CI") == "true"


def _fail_or_skip(reason):
    if in_ci():
        raise AssertionError(reason + " (CI=true: failing instead of skipping)")
    raise unittest.SkipTest(reason)


def fuse_problem():
    """Why FUSE mounts cannot work here, or None when they can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "cannot open /dev/fuse: %s" % e.strerror
    os.close(fd)
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    return None


def require_fuse():
    """Skips (fails under CI=true) the calling test when FUSE is missing.
    A missing lockfs binary always fails: that is a build problem."""
    reason = fuse_problem()
    if reason:
        _fail_or_skip(reason)
    path = lockfs_bin()
    if not os.access(path, os.X_OK):
        raise AssertionError("lockfs binary not found at %s (set LOCKFS_BIN or "
                             "build with meson into build/)" % path)


def require_root():
    if os.geteuid() != 0:
        _fail_or_skip("needs root")


# ---------------------------------------------------------------- mounts

def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """The mount table of this process, as a list of dicts with id,
    mountpoint, fstype, source and options (unescaped)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            rfields = right.split(" ")
            out.append({
                "id": int(fields[0]),
                "parent": int(fields[1]),
                "mountpoint": _unescape_mountinfo(fields[4]),
                "mount_options": fields[5],
                "fstype": rfields[0],
                "source": _unescape_mountinfo(rfields[1]) if len(rfields) > 1 else "",
                "options": rfields[2] if len(rfields) > 2 else "",
            })
    return out


def mounts_at(path, fstype=None):
    """Mounts whose mount point is `path`, oldest first."""
    path = os.path.abspath(path)
    return [m for m in mounts()
            if m["mountpoint"] == path and (fstype is None or m["fstype"] == fstype)]


def is_lockfs_mounted(path):
    return bool(mounts_at(path, "fuse.lockfs"))


def pid_alive(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


_subreaper = False


def become_subreaper():
    """Makes this process the reaper of its orphaned descendants, so that a
    daemonized lockfs (whose parent exits) can still be waited for and its
    exit status read."""
    global _subreaper
    if _subreaper:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    _subreaper = True


def wait_pid(pid, timeout):
    """Waits for `pid` to exit; returns its exit status (negative for a
    signal) when it is our child, 0 when it is not ours and just vanished,
    None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            if not pid_alive(pid):
                return 0
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def find_daemons(mountpoint, binary=None):
    """Pids of running lockfs processes whose command line names
    `mountpoint` (used for daemons this test started through mount(8) or in
    the background, which have no Popen)."""
    binary = os.path.realpath(binary or lockfs_bin())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if exe != binary or not pid_alive(pid):
            continue
        if os.fsencode(mountpoint) in argv:
            found.append(pid)
    return found


def fusermount_unmount(mountpoint, attempts=10, lazy_last=True):
    """Unmounts with fusermount3 -u, retrying while busy; a lazy unmount
    only as the last resort. True when it is unmounted."""
    for i in range(attempts):
        if not is_lockfs_mounted(mountpoint):
            return True
        r = subprocess.run(["fusermount3", "-u", mountpoint], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode == 0 and not is_lockfs_mounted(mountpoint):
            return True
        time.sleep(0.05 * (i + 1))
    if lazy_last and is_lockfs_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return not is_lockfs_mounted(mountpoint)


class MountError(AssertionError):
    pass


class Mount:
    """One lockfs daemon.

        with Mount(["lease=100"]) as m:
            run(["sh", "-c", "echo hi > f"], cwd=m.mnt)
            assert open(m.src_path("f")).read() == "hi\\n"

    extra_opts  -o options (a list of strings)
    source      an existing SOURCE directory (else a fresh temporary one)
    mountpoint  an existing MOUNTPOINT (else a fresh temporary one)
    inplace     mount SOURCE on itself
    args        further command-line arguments (e.g. ["-s"])
    foreground  run with -f (the default); False lets lockfs detach
    debug       pass -d
    check_exit  after a clean unmount the daemon must have exited with 0;
                otherwise leaving the `with` block raises (unless the test
                already failed), with the daemon's stderr.

    After leaving the block: `returncode` holds the daemon's exit status and
    `stderr_text` what it printed.
    """

    START_TIMEOUT = 15.0
    STOP_TIMEOUT = 15.0

    def __init__(self, extra_opts=(), source=None, mountpoint=None, *, inplace=False,
                 args=(), foreground=True, debug=False, check_exit=True, env=None,
                 binary=None):
        self.extra_opts = list(extra_opts)
        self.given_source = source
        self.given_mountpoint = mountpoint
        self.inplace = inplace
        self.args = list(args)
        self.foreground = foreground
        self.debug = debug
        self.check_exit = check_exit
        self.env = env
        self.binary = binary or lockfs_bin()
        self.tmp = None
        self.src = None
        self.mnt = None
        self.proc = None
        self.pid = None
        self.returncode = None
        self.stderr_text = ""
        self.stderr_path = None
        self._stderr_file = None
        self._closed = False

    # -- life cycle

    def argv(self):
        argv = [self.binary]
        if self.foreground:
            argv.append("-f")
        if self.debug:
            argv.append("-d")
        argv += self.args
        argv += [self.src, self.mnt]
        if self.extra_opts:
            argv += ["-o", ",".join(self.extra_opts)]
        return argv

    def start(self):
        require_fuse()
        self.tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
        try:
            if self.given_source is not None:
                self.src = os.path.abspath(self.given_source)
            else:
                self.src = os.path.join(self.tmp, "src")
                os.mkdir(self.src)
            if self.inplace:
                self.mnt = self.src
            elif self.given_mountpoint is not None:
                self.mnt = os.path.abspath(self.given_mountpoint)
            else:
                self.mnt = os.path.join(self.tmp, "mnt")
                os.mkdir(self.mnt)
            self.stderr_path = os.path.join(self.tmp, "daemon.stderr")
            self._stderr_file = open(self.stderr_path, "wb")
            before = {m["id"] for m in mounts_at(self.mnt)}
            if not self.foreground:
                become_subreaper()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self._stderr_file, stderr=self._stderr_file,
                                         env=self.env, start_new_session=True)
            self.pid = self.proc.pid if self.foreground else None
            self._wait_mounted(before)
        except BaseException:
            self.close(raise_errors=False)
            raise
        return self

    def _wait_mounted(self, before):
        deadline = time.monotonic() + self.START_TIMEOUT
        launcher_done = False
        while True:
            new = [m for m in mounts_at(self.mnt, "fuse.lockfs") if m["id"] not in before]
            if new and (self.foreground or launcher_done):
                self.mount_entry = new[-1]
                break
            rc = self.proc.poll()
            if rc is not None:
                if self.foreground or rc != 0:
                    raise MountError("lockfs exited with %d before mounting\n  argv: %s\n%s"
                                     % (rc, self.argv(), self._read_stderr()))
                launcher_done = True
            if time.monotonic() >= deadline:
                raise MountError("lockfs did not mount %s within %.0f s\n  argv: %s\n%s"
                                 % (self.mnt, self.START_TIMEOUT, self.argv(),
                                    self._read_stderr()))
            time.sleep(0.02)
        if not self.foreground:
            pids = find_daemons(self.mnt, self.binary)
            if len(pids) != 1:
                raise MountError("expected one detached lockfs daemon for %s, found %s"
                                 % (self.mnt, pids))
            self.pid = pids[0]

    def _read_stderr(self):
        if self.stderr_path and os.path.exists(self.stderr_path):
            with open(self.stderr_path, "rb") as f:
                self.stderr_text = f.read().decode(errors="replace")
        return "  daemon stderr:\n" + textwrap.indent(self.stderr_text or "(empty)", "    ")

    def _wait_daemon(self, timeout):
        if self.pid is None:
            return 0
        if self.proc is not None and self.pid == self.proc.pid:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        return wait_pid(self.pid, timeout)

    def stop(self, how="fusermount", timeout=None):
        """Ends the daemon: how is "fusermount" (fusermount3 -u), "umount"
        (umount(8)), or a signal number / name ("SIGTERM"). Returns the
        daemon's exit status; the mount must be gone afterwards."""
        timeout = timeout or self.STOP_TIMEOUT
        if how == "fusermount":
            r = subprocess.run(["fusermount3", "-u", self.mnt], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise MountError("fusermount3 -u %s failed: %s" % (self.mnt, r.stderr.strip()))
        elif how == "umount":
            r = subprocess.run(["umount", self.mnt], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise MountError("umount %s failed: %s" % (self.mnt, r.stderr.strip()))
        else:
            sig = getattr(signal, how) if isinstance(how, str) else how
            os.kill(self.pid, sig)
        rc = self._wait_daemon(timeout)
        if rc is None:
            raise MountError("lockfs (pid %d) still running %.0f s after %s\n%s"
                             % (self.pid, timeout, how, self._read_stderr()))
        self.returncode = rc
        self._read_stderr()
        if self.mount_entry["id"] in {m["id"] for m in mounts_at(self.mnt)}:
            raise MountError("%s still mounted after the daemon exited (%s)" % (self.mnt, how))
        return rc

    def close(self, raise_errors=True):
        """Unmounts, reaps and cleans up; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        problems = []
        try:
            if self.mnt and self.proc is not None and self._ours_mounted():
                # A process that still has a file open in the mount makes
                # fusermount3 -u fail with EBUSY. SIGTERM is then the clean
                # way out: lockfs detaches the mount itself and exits, and
                # the open files report ENOTCONN from then on.
                if not fusermount_unmount(self.mnt, attempts=5, lazy_last=False) and \
                        self.pid is not None and pid_alive(self.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGTERM)
                    self.returncode = self._wait_daemon(self.STOP_TIMEOUT)
                if self._ours_mounted() and not fusermount_unmount(self.mnt, attempts=3):
                    problems.append("could not unmount %s" % self.mnt)
            if self.pid is not None and self.returncode is None:
                rc = self._wait_daemon(self.STOP_TIMEOUT)
                if rc is None:
                    problems.append("lockfs (pid %d) did not exit after unmount; killed"
                                    % self.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    rc = self._wait_daemon(5.0)
                    if self._ours_mounted():
                        fusermount_unmount(self.mnt)
                self.returncode = rc
            if self.proc is not None and self.proc.returncode is None:
                # The launcher of a detached daemon: it exits by itself.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
                if self.proc.returncode is None:
                    self.proc.kill()
                    self.proc.wait()
            if self.check_exit and self.proc is not None and self.returncode not in (0, None):
                problems.append("lockfs exited with status %s" % self.returncode)
        finally:
            if self._stderr_file:
                self._stderr_file.close()
            self._read_stderr()
            if self.tmp and not any(m["mountpoint"].startswith(self.tmp + "/") or
                                    m["mountpoint"] == self.tmp for m in mounts()):
                shutil.rmtree(self.tmp, ignore_errors=True)
        if problems and raise_errors:
            raise MountError("; ".join(problems) + "\n" + self._read_stderr())

    def _ours_mounted(self):
        ours = getattr(self, "mount_entry", None)
        return bool(ours) and ours["id"] in {m["id"] for m in mounts_at(self.mnt)}

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        # A failing test keeps its own exception; cleanup problems are then
        # only printed.
        try:
            self.close(raise_errors=exc_type is None)
        except MountError:
            if exc_type is None:
                raise
        if exc_type is not None and self.stderr_text:
            sys.stderr.write("\n[lockfs stderr for %s]\n%s\n" % (self.mnt, self.stderr_text))
        return False

    # -- paths

    def path(self, *parts):
        """A path inside the mount."""
        return os.path.join(self.mnt, *parts)

    def src_path(self, *parts):
        """The same path in SOURCE, bypassing the mount (not usable for an
        in-place mount, where SOURCE is hidden under it)."""
        if self.inplace:
            raise ValueError("SOURCE is under the mount in place")
        return os.path.join(self.src, *parts)


# ---------------------------------------------------------------- programs

def _creds(user):
    """`user` is None, a uid, or (uid, gid[, [groups]])."""
    if user is None:
        return {}
    if isinstance(user, int):
        user = (user, user)
    uid, gid = user[0], user[1]
    groups = list(user[2]) if len(user) > 2 else []
    return {"user": uid, "group": gid, "extra_groups": groups}


def run(cmd, cwd=None, timeout=DEFAULT_TIMEOUT, input=None, user=None, env=None,
        check=False, shell=False):
    """Runs a program; returns subprocess.CompletedProcess with text stdout
    and stderr. A timeout kills the program and raises AssertionError."""
    try:
        r = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, text=True,
                           timeout=timeout, env=env, shell=shell,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           **_creds(user))
    except subprocess.TimeoutExpired as e:
        raise AssertionError("timed out after %.0f s: %s\n  stdout: %s\n  stderr: %s"
                             % (timeout, cmd, e.stdout, e.stderr)) from None
    if check and r.returncode != 0:
        raise AssertionError("%s failed with %d\n  stdout: %s\n  stderr: %s"
                             % (cmd, r.returncode, r.stdout, r.stderr))
    return r


def py(code, *args, cwd=None, timeout=DEFAULT_TIMEOUT, user=None, check=False, env=None):
    """Runs a Python snippet in a fresh Debian python3."""
    return run([PYTHON, "-c", textwrap.dedent(code)] + [str(a) for a in args],
               cwd=cwd, timeout=timeout, user=user, check=check, env=env)


def spawn_py(code, *args, cwd=None, user=None, env=None):
    """Starts a Python snippet in the background (stdin, stdout and stderr are
    pipes, text mode) and returns its Popen."""
    return subprocess.Popen([PYTHON, "-c", textwrap.dedent(code)] + [str(a) for a in args],
                            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **_creds(user))


def read_line(proc, timeout=DEFAULT_TIMEOUT):
    """The next line a spawned process prints, or AssertionError when it
    prints none within `timeout` (the process is left running)."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("no output from pid %d within %.0f s" % (proc.pid, timeout))
        return proc.stdout.readline()
    finally:
        sel.close()


def stop_process(proc, timeout=10.0):
    """Kills a spawned process if it still runs and reaps it."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f:
            with contextlib.suppress(Exception):
                f.close()


# ------------------------------------------------------- outcome comparison

# Prepended to every outcome snippet. The snippet runs with its working
# directory at the base directory (plain or mount) and fills R; the epilogue
# prints R as JSON.
SNIPPET_PRELUDE = r'''
import ctypes, errno, json, os, socket, stat, subprocess, sys, time
os.umask(0o022)
R = {}
libc = ctypes.CDLL(None, use_errno=True)

def ename(e):
    return errno.errorcode.get(e, str(e))

def attempt(fn, *a, **kw):
    """{"ok": result} or {"errno": "ENAME"}."""
    try:
        r = fn(*a, **kw)
    except OSError as e:
        return {"errno": ename(e.errno)}
    if isinstance(r, bytes):
        r = r.decode("latin-1")
    if not isinstance(r, (int, float, str, bool, list, dict, type(None))):
        r = repr(r)
    return {"ok": r}

def cerr(res):
    """For a ctypes libc call: {"ok": res} or {"errno": ...}."""
    if res == -1:
        return {"errno": ename(ctypes.get_errno())}
    return {"ok": res}

def kind(mode):
    for name in ("REG", "DIR", "LNK", "FIFO", "SOCK", "CHR", "BLK"):
        if getattr(stat, "S_IS" + name)(mode):
            return name
    return "?"

def st(path, follow=False, times=False, blocks=False, ino=False):
    """What must match between a plain directory and the mount."""
    try:
        s = os.stat(path, follow_symlinks=follow)
    except OSError as e:
        return {"errno": ename(e.errno)}
    d = {"kind": kind(s.st_mode), "mode": oct(stat.S_IMODE(s.st_mode)),
         "nlink": s.st_nlink, "uid": s.st_uid, "gid": s.st_gid}
    if not stat.S_ISDIR(s.st_mode):
        d["size"] = s.st_size
    if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
        d["rdev"] = s.st_rdev
    if times:
        d["atime_ns"] = s.st_atime_ns
        d["mtime_ns"] = s.st_mtime_ns
    if blocks:
        d["blocks"] = s.st_blocks
    if ino:
        d["ino"] = s.st_ino
    return d

def content(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return {"errno": ename(e.errno)}
    if len(data) > limit:
        import hashlib
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return data.decode("latin-1")

def tree(top="."):
    """Every name below `top` with its st() and, for files, content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)
            entry = st(p)
            if entry.get("kind") == "REG":
                entry["content"] = content(p)
            elif entry.get("kind") == "LNK":
                entry["target"] = os.readlink(p)
            out[rel] = entry
    return out

def xattrs(path, follow=False):
    try:
        names = sorted(n for n in os.listxattr(path, follow_symlinks=follow)
                       if n.startswith("user."))
    except OSError as e:
        return {"errno": ename(e.errno)}
    return {n: os.getxattr(path, n, follow_symlinks=follow).decode("latin-1") for n in names}
'''

SNIPPET_EPILOGUE = r'''
sys.stdout.write("\n@@RESULT@@" + json.dumps(R, sort_keys=True) + "\n")
'''


def outcome(code, base, user=None, timeout=DEFAULT_TIMEOUT, args=()):
    """Runs `code` (with SNIPPET_PRELUDE's helpers) in a fresh python3 with
    its working directory at `base`; returns the dict it left in R. A
    snippet that raises fails the test with its traceback."""
    full = SNIPPET_PRELUDE + "\n" + textwrap.dedent(code) + "\n" + SNIPPET_EPILOGUE
    r = run([PYTHON, "-c", full] + [str(a) for a in args], cwd=base, timeout=timeout,
            user=user)
    marker = "@@RESULT@@"
    if r.returncode != 0 or marker not in r.stdout:
        raise AssertionError("snippet failed in %s (exit %d)\n--- stderr\n%s--- stdout\n%s"
                             % (base, r.returncode, r.stderr, r.stdout))
    return json.loads(r.stdout.rsplit(marker, 1)[1])


def compare_outcomes(code, plain, mounted, user=None, timeout=DEFAULT_TIMEOUT, args=()):
    """The same snippet on a plain directory and on a directory in a mount:
    returns (plain_result, mount_result)."""
    a = outcome(code, plain, user=user, timeout=timeout, args=args)
    b = outcome(code, mounted, user=user, timeout=timeout, args=args)
    return a, b


def tree_of(base, user=None):
    """tree() of `base`, computed in a child process."""
    return outcome("R['tree'] = tree('.')", base, user=user)["tree"]


class LockfsTestCase(unittest.TestCase):
    """Base class: checks for FUSE once per class and adds assertions."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_fuse()

    def make_tempdir(self):
        """A temporary directory removed after the test."""
        d = tempfile.mkdtemp(prefix=TMP_PREFIX)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def assertSameOutcome(self, plain_result, mount_result, what=""):
        if plain_result != mount_result:
            diff = []
            keys = sorted(set(plain_result) | set(mount_result))
            for k in keys:
                pa, pb = plain_result.get(k, "<missing>"), mount_result.get(k, "<missing>")
                if pa != pb:
                    diff.append("  %s:\n    plain: %s\n    mount: %s" % (k, pa, pb))
            self.fail("outcome differs between a plain directory and the mount%s:\n%s"
                      % (" (" + what + ")" if what else "", "\n".join(diff)))

    def assertNotMounted(self, path):
        self.assertFalse(is_lockfs_mounted(path), "%s is still mounted" % path)


# ------------------------------------------------- faults, stress, leaks

def daemon_usage(pid):
    """What a daemon holds now: {"rss_kib": VmRSS, "fds": count, "kinds":
    {kind: count}}, the descriptors sorted by kind: "pidfd", "path" (O_PATH,
    the inode table), "file" (open handles on the source), "pipe" (libfuse
    keeps one pipe per request thread for spliced replies), "proc" (the
    /proc files FLUSH's check keeps for the last programs that closed
    files), "other"."""
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    kinds = {"pidfd": 0, "path": 0, "file": 0, "pipe": 0, "proc": 0, "other": 0}
    fddir = "/proc/%d/fd" % pid
    for name in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, name))
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                flags = int(re.search(r"^flags:\s+([0-7]+)", f.read(), re.M).group(1), 8)
        except (OSError, AttributeError):
            continue  # closed meanwhile
        if "pidfd" in target:
            kinds["pidfd"] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif flags & 0o10000000:  # O_PATH
            kinds["path"] += 1
        elif target.startswith("/proc/"):
            kinds["proc"] += 1
        elif target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            kinds["file"] += 1
        else:
            kinds["other"] += 1
    return {"rss_kib": rss, "fds": sum(kinds.values()), "kinds": kinds}


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer",
                   "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_reports(text):
    """The lines of a daemon's output that are sanitizer reports."""
    return [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKS)]


class Programs:
    """Programs started at once, each in its own session (a timeout kills
    its children too), with its output in temporary files.

        with Programs([[PYTHON, "w.py"]] * 10, cwd=d) as g:
            g.wait(30)          # AssertionError naming those still running
            out, err = g.output(0)
    """

    def __init__(self, cmds, cwd=None, env=None):
        self.procs, self.files = [], []
        try:
            for cmd in cmds:
                out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
                self.files.append((out, err))
                self.procs.append(subprocess.Popen(cmd, cwd=cwd, env=env,
                                                   stdin=subprocess.DEVNULL, stdout=out,
                                                   stderr=err, start_new_session=True))
        except BaseException:
            self.kill()
            raise

    def running(self):
        return [i for i, p in enumerate(self.procs) if p.poll() is None]

    def wait(self, timeout):
        """Waits for all; returns their exit codes. Those still running
        after `timeout` are killed and reported as an AssertionError."""
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        stuck = self.running()
        if stuck:
            self.kill()
            raise AssertionError("%d of %d programs still running after %.0f s: %s"
                                 % (len(stuck), len(self.procs), timeout,
                                    [self.procs[i].args for i in stuck[:3]]))
        return [p.returncode for p in self.procs]

    def output(self, i):
        out, err = self.files[i]
        res = []
        for f in (out, err):
            f.seek(0)
            res.append(f.read().decode(errors="replace"))
        return tuple(res)

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        for out, err in self.files:
            out.close()
            err.close()
        self.files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.files:
            self.kill()
        return False
