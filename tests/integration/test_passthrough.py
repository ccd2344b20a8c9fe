"""Every file-system operation through lockfs behaves exactly as on a plain
directory.

Each test runs one Python snippet (in a fresh process, with real system calls
and sometimes coreutils) twice: in a plain directory and in a directory of
the mount. The results (return values, errno names, stat summaries,
contents, xattrs) must be equal, and afterwards the plain directory, the
same directory in SOURCE (read directly) and the mount must hold the same
tree. Sanity checks on the plain result make sure each snippet really did
what it claims, so that two identical failures cannot pass.

The same file is never opened by two processes at once here, so the
mandatory locks never make a snippet wait for long.
"""

import os
import shutil
import tempfile
import unittest

from harness import (LockfsTestCase, Mount, NOBODY, NOGROUP, TMP_PREFIX, outcome, py,
                     require_root, run, tree_of)


class PassthroughCase(LockfsTestCase):
    mount_opts = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_root()
        cls.plain_root = tempfile.mkdtemp(prefix=TMP_PREFIX)
        os.chmod(cls.plain_root, 0o755)
        cls.m = Mount(cls.mount_opts)
        cls.m.start()
        # Other users must be able to reach both test areas.
        os.chmod(cls.m.tmp, 0o755)
        os.chmod(cls.m.src, 0o755)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.m.close()
        finally:
            shutil.rmtree(cls.plain_root, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        name = self._testMethodName
        self.plain = os.path.join(self.plain_root, name)
        os.mkdir(self.plain)
        self.mdir = self.m.path(name)
        os.mkdir(self.mdir)
        self.sdir = self.m.src_path(name)
        for d in (self.plain, self.sdir):
            os.chmod(d, 0o755)

    def both(self, code, user=None, check_trees=True):
        """Runs `code` in the plain directory and in the mount; returns the
        plain result after asserting both are equal."""
        a = outcome(code, self.plain, user=user)
        b = outcome(code, self.mdir, user=user)
        self.assertSameOutcome(a, b)
        if check_trees:
            tp = tree_of(self.plain)
            self.assertSameOutcome(tp, tree_of(self.sdir), "SOURCE afterwards")
            self.assertSameOutcome(tp, tree_of(self.mdir), "the mount afterwards")
        return a


class Operations(PassthroughCase):

    def test_lookup_getattr(self):
        a = self.both("""
            os.mkdir("d")
            with open("f", "w") as f:
                f.write("hello")
            os.symlink("f", "l")
            os.symlink("nowhere", "dangling")
            os.utime("f", ns=(1_000_000_123, 2_000_000_456))
            R["f"] = st("f", times=True)
            R["d"] = st("d")
            R["l"] = st("l")
            R["l_follow"] = st("l", follow=True)
            R["dangling_follow"] = st("dangling", follow=True)
            R["missing"] = st("missing")
            R["through_file"] = st("f/x")
            R["exists"] = [os.path.exists(p) for p in ("f", "d", "l", "dangling", "missing")]
            R["dot"] = st(".")
            R["fstat"] = attempt(lambda: kind(os.fstat(os.open("d", os.O_RDONLY)).st_mode))
            """)
        self.assertEqual(a["f"]["size"], 5)
        self.assertEqual(a["f"]["mtime_ns"], 2_000_000_456)
        self.assertEqual(a["f"]["atime_ns"], 1_000_000_123)
        self.assertEqual(a["l"]["kind"], "LNK")
        self.assertEqual(a["l_follow"]["kind"], "REG")
        self.assertEqual(a["dangling_follow"], {"errno": "ENOENT"})
        self.assertEqual(a["through_file"], {"errno": "ENOTDIR"})
        self.assertEqual(a["exists"], [True, True, True, False, False])
        self.assertEqual(a["dot"]["nlink"], 3)

    def test_chmod(self):
        a = self.both("""
            open("f", "w").close()
            os.mkdir("d")
            os.symlink("f", "l")
            R["chmod"] = attempt(os.chmod, "f", 0o640)
            R["f1"] = st("f")
            R["setuid"] = attempt(os.chmod, "f", 0o4755)
            R["f2"] = st("f")
            R["dir"] = attempt(os.chmod, "d", 0o1700)
            R["d"] = st("d")
            R["via_link"] = attempt(os.chmod, "l", 0o600)
            R["f3"] = st("f")
            R["l"] = st("l")
            fd = os.open("f", os.O_RDONLY)
            R["fchmod"] = attempt(os.fchmod, fd, 0o444)
            os.close(fd)
            R["f4"] = st("f")
            R["missing"] = attempt(os.chmod, "nope", 0o600)
            R["chmod_cmd"] = run_rc = subprocess.run(["chmod", "u=rwx,g=,o=x", "f"]).returncode
            R["f5"] = st("f")
            """)
        self.assertEqual(a["f1"]["mode"], "0o640")
        self.assertEqual(a["f2"]["mode"], "0o4755")
        self.assertEqual(a["d"]["mode"], "0o1700")
        self.assertEqual(a["f3"]["mode"], "0o600")
        self.assertEqual(a["f4"]["mode"], "0o444")
        self.assertEqual(a["f5"]["mode"], "0o701")
        self.assertEqual(a["missing"], {"errno": "ENOENT"})

    def test_chown(self):
        a = self.both("""
            open("f", "w").close()
            os.symlink("f", "l")
            R["chown"] = attempt(os.chown, "f", 12345, 23456)
            R["f1"] = st("f")
            R["gid_only"] = attempt(os.chown, "f", -1, 777)
            R["f2"] = st("f")
            R["lchown"] = attempt(os.chown, "l", 4242, 4343, follow_symlinks=False)
            R["l"] = st("l")
            R["f3"] = st("f")
            fd = os.open("f", os.O_RDONLY)
            R["fchown"] = attempt(os.fchown, fd, 0, 0)
            os.close(fd)
            R["f4"] = st("f")
            os.chmod("f", 0o6755)
            R["chown_clears_suid"] = attempt(os.chown, "f", 1000, 1000)
            R["f5"] = st("f")
            R["missing"] = attempt(os.chown, "nope", 1, 1)
            R["cmd"] = subprocess.run(["chown", "65534:65534", "f"]).returncode
            R["f6"] = st("f")
            """)
        self.assertEqual((a["f1"]["uid"], a["f1"]["gid"]), (12345, 23456))
        self.assertEqual((a["f2"]["uid"], a["f2"]["gid"]), (12345, 777))
        self.assertEqual((a["l"]["uid"], a["l"]["gid"]), (4242, 4343))
        self.assertEqual(a["f3"]["uid"], 12345)
        self.assertEqual((a["f4"]["uid"], a["f4"]["gid"]), (0, 0))
        self.assertEqual(a["f5"]["mode"], "0o755")
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual((a["f6"]["uid"], a["f6"]["gid"]), (NOBODY, NOGROUP))

    def test_truncate(self):
        a = self.both("""
            with open("f", "wb") as f:
                f.write(b"0123456789")
            R["grow"] = attempt(os.truncate, "f", 100000)
            R["f1"] = st("f", blocks=True)
            R["c1"] = content("f")[:12] + "|" + str(content("f").count(chr(0)))
            R["shrink"] = attempt(os.truncate, "f", 3)
            R["c2"] = content("f")
            fd = os.open("f", os.O_RDWR)
            R["ftruncate"] = attempt(os.ftruncate, fd, 7)
            R["fstat_size"] = os.fstat(fd).st_size
            os.close(fd)
            R["c3"] = content("f")
            fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
            R["after_o_trunc"] = os.fstat(fd).st_size
            os.close(fd)
            R["cmd"] = subprocess.run(["truncate", "-s", "50", "g"]).returncode
            R["g"] = st("g")
            R["missing"] = attempt(os.truncate, "nope", 1)
            os.mkdir("d")
            R["dir"] = attempt(os.truncate, "d", 1)
            R["negative"] = attempt(os.truncate, "g", -1)
            """)
        self.assertEqual(a["f1"]["size"], 100000)
        self.assertEqual(a["c1"], "0123456789" + "\0\0|99990")
        self.assertEqual(a["c2"], "012")
        self.assertEqual(a["c3"], "012\0\0\0\0")
        self.assertEqual(a["after_o_trunc"], 0)
        self.assertEqual(a["g"]["size"], 50)
        self.assertEqual(a["dir"], {"errno": "EISDIR"})
        self.assertEqual(a["negative"], {"errno": "EINVAL"})

    def test_utimens(self):
        a = self.both("""
            class ts(ctypes.Structure):
                _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
            UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
            AT_FDCWD, AT_SYMLINK_NOFOLLOW = -100, 0x100
            def utimensat(path, at, mt, flags=0):
                times = (ts * 2)(ts(*at), ts(*mt))
                return cerr(libc.utimensat(AT_FDCWD, path.encode(), times, flags))
            open("f", "w").close()
            os.symlink("f", "l")
            R["explicit"] = attempt(os.utime, "f", ns=(111_000_000_001, 222_000_000_002))
            R["t1"] = st("f", times=True)
            before = time.time_ns()
            R["now"] = attempt(os.utime, "f")
            after = time.time_ns()
            s = os.stat("f")
            R["now_in_range"] = [before - 10**9 <= s.st_atime_ns <= after + 10**9,
                                 before - 10**9 <= s.st_mtime_ns <= after + 10**9]
            os.utime("f", ns=(5_000_000_000, 6_000_000_000))
            R["omit_mtime"] = utimensat("f", (333, 7), (0, UTIME_OMIT))
            R["t2"] = st("f", times=True)
            R["omit_atime"] = utimensat("f", (0, UTIME_OMIT), (444, 8))
            R["t3"] = st("f", times=True)
            before = time.time_ns()
            R["now_and_omit"] = utimensat("f", (0, UTIME_NOW), (0, UTIME_OMIT))
            s = os.stat("f")
            R["now_atime_only"] = [s.st_atime_ns >= before - 10**9, s.st_mtime_ns == 444_000_000_008]
            R["link_itself"] = utimensat("l", (10, 0), (20, 0), AT_SYMLINK_NOFOLLOW)
            R["l"] = st("l", times=True)
            R["touch_a"] = subprocess.run(["touch", "-a", "-d", "@555", "f"]).returncode
            R["touch_m"] = subprocess.run(["touch", "-m", "-d", "@666", "f"]).returncode
            R["t4"] = st("f", times=True)
            R["touch_new"] = subprocess.run(["touch", "-d", "@777.5", "g"]).returncode
            R["g"] = st("g", times=True)
            R["missing"] = attempt(os.utime, "nope", ns=(1, 1))
            """)
        self.assertEqual(a["t1"]["mtime_ns"], 222_000_000_002)
        self.assertEqual(a["now_in_range"], [True, True])
        self.assertEqual((a["t2"]["atime_ns"], a["t2"]["mtime_ns"]), (333_000_000_007, 6_000_000_000))
        self.assertEqual((a["t3"]["atime_ns"], a["t3"]["mtime_ns"]), (333_000_000_007, 444_000_000_008))
        self.assertEqual(a["now_atime_only"], [True, True])
        self.assertEqual(a["l"]["mtime_ns"], 20_000_000_000)
        self.assertEqual((a["t4"]["atime_ns"], a["t4"]["mtime_ns"]), (555 * 10**9, 666 * 10**9))
        self.assertEqual(a["g"]["mtime_ns"], 777_500_000_000)
        self.assertEqual(a["missing"], {"errno": "ENOENT"})

    def test_readlink(self):
        a = self.both("""
            targets = {"rel": "f", "up": "../up/x", "abs": "/abs/path/nowhere",
                       "long": "a" * 1000, "space": "sp ace/\\u00e9", "dot": "."}
            for name, t in targets.items():
                os.symlink(t, name)
            R["targets"] = {name: attempt(os.readlink, name) for name in targets}
            open("f", "w").close()
            R["file"] = attempt(os.readlink, "f")
            R["missing"] = attempt(os.readlink, "nope")
            R["cmd"] = subprocess.run(["readlink", "up"], capture_output=True, text=True).stdout
            """)
        self.assertEqual(a["targets"]["long"], {"ok": "a" * 1000})
        self.assertEqual(a["targets"]["abs"], {"ok": "/abs/path/nowhere"})
        self.assertEqual(a["file"], {"errno": "EINVAL"})
        self.assertEqual(a["cmd"], "../up/x\n")

    def test_mknod_fifo_and_socket(self):
        a = self.both("""
            R["mkfifo"] = attempt(os.mkfifo, "p", 0o640)
            R["p"] = st("p")
            R["mknod_fifo"] = attempt(os.mknod, "p2", stat.S_IFIFO | 0o600)
            R["p2"] = st("p2")
            R["again"] = attempt(os.mkfifo, "p", 0o640)
            R["cmd"] = subprocess.run(["mkfifo", "-m", "604", "p3"]).returncode
            R["p3"] = st("p3")
            rfd = os.open("p", os.O_RDONLY | os.O_NONBLOCK)
            wfd = os.open("p", os.O_WRONLY | os.O_NONBLOCK)
            os.write(wfd, b"ping")
            R["fifo_io"] = os.read(rfd, 10).decode()
            os.close(wfd); os.close(rfd)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            R["bind"] = attempt(srv.bind, "sock")
            R["sock"] = st("sock")
            srv.listen(1)
            cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            R["connect"] = attempt(cli.connect, "sock")
            if "ok" in R["connect"]:
                conn, _ = srv.accept()
                cli.sendall(b"hello")
                R["sock_io"] = conn.recv(10).decode()
                conn.close()
            cli.close(); srv.close()
            dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            R["bind_dgram"] = attempt(dg.bind, "dgram")
            dg.close()
            R["dgram"] = st("dgram")
            R["bind_existing"] = attempt(socket.socket(socket.AF_UNIX).bind, "p")
            R["missing_dir"] = attempt(os.mkfifo, "nope/p")
            """)
        self.assertEqual(a["p"], {"kind": "FIFO", "mode": "0o640", "nlink": 1, "uid": 0,
                                  "gid": a["p"]["gid"], "size": 0})
        self.assertEqual(a["p2"]["kind"], "FIFO")
        self.assertEqual(a["p3"]["mode"], "0o604")
        self.assertEqual(a["again"], {"errno": "EEXIST"})
        self.assertEqual(a["fifo_io"], "ping")
        self.assertEqual(a["sock"]["kind"], "SOCK")
        self.assertEqual(a["sock_io"], "hello")
        self.assertEqual(a["bind_existing"], {"errno": "EADDRINUSE"})
        self.assertEqual(a["missing_dir"], {"errno": "ENOENT"})

    def test_mkdir(self):
        a = self.both("""
            R["nlink0"] = os.stat(".").st_nlink
            R["mkdir"] = attempt(os.mkdir, "d", 0o750)
            R["d"] = st("d")
            R["nlink1"] = os.stat(".").st_nlink
            R["umask"] = attempt(os.mkdir, "e", 0o777)
            R["e"] = st("e")
            R["again"] = attempt(os.mkdir, "d")
            R["no_parent"] = attempt(os.mkdir, "nope/d")
            open("f", "w").close()
            R["under_file"] = attempt(os.mkdir, "f/d")
            R["cmd"] = subprocess.run(["mkdir", "-p", "a/b/c"]).returncode
            R["abc"] = st("a/b/c")
            os.chown("d", 0, 100)
            os.chmod("d", 0o2775)
            R["sgid_child"] = attempt(os.mkdir, "d/child")
            R["d_child"] = st("d/child")
            R["long"] = attempt(os.mkdir, "x" * 256)
            """)
        self.assertEqual(a["d"]["mode"], "0o750")
        self.assertEqual(a["nlink1"], a["nlink0"] + 1)
        self.assertEqual(a["e"]["mode"], "0o755")
        self.assertEqual(a["again"], {"errno": "EEXIST"})
        self.assertEqual(a["no_parent"], {"errno": "ENOENT"})
        self.assertEqual(a["under_file"], {"errno": "ENOTDIR"})
        self.assertEqual(a["abc"]["kind"], "DIR")
        self.assertEqual((a["d_child"]["gid"], a["d_child"]["mode"]), (100, "0o2755"))
        self.assertEqual(a["long"], {"errno": "ENAMETOOLONG"})

    def test_unlink(self):
        a = self.both("""
            with open("f", "w") as f:
                f.write("data")
            R["unlink"] = attempt(os.unlink, "f")
            R["gone"] = st("f")
            R["missing"] = attempt(os.unlink, "f")
            os.mkdir("d")
            R["dir"] = attempt(os.unlink, "d")
            with open("g", "w") as f:
                f.write("still here")
            fd = os.open("g", os.O_RDWR)
            R["unlink_open"] = attempt(os.unlink, "g")
            R["read_after"] = os.pread(fd, 100, 0).decode()
            R["nlink_after"] = os.fstat(fd).st_nlink
            R["write_after"] = attempt(os.pwrite, fd, b"!", 10)
            R["size_after"] = os.fstat(fd).st_size
            os.close(fd)
            R["g"] = st("g")
            os.symlink("d", "l")
            R["symlink"] = attempt(os.unlink, "l")
            R["d_still"] = st("d")
            open("h", "w").close()
            R["cmd"] = subprocess.run(["rm", "h"]).returncode
            R["listing"] = sorted(os.listdir("."))
            """)
        self.assertEqual(a["gone"], {"errno": "ENOENT"})
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["dir"], {"errno": "EISDIR"})
        self.assertEqual(a["read_after"], "still here")
        self.assertEqual(a["nlink_after"], 0)
        self.assertEqual(a["size_after"], 11)
        self.assertEqual(a["listing"], ["d"])

    def test_rmdir(self):
        a = self.both("""
            os.mkdir("empty")
            R["rmdir"] = attempt(os.rmdir, "empty")
            R["gone"] = st("empty")
            os.makedirs("full/sub")
            R["nonempty"] = attempt(os.rmdir, "full")
            open("full/sub/f", "w").close()
            R["nonempty2"] = attempt(os.rmdir, "full/sub")
            open("f", "w").close()
            R["file"] = attempt(os.rmdir, "f")
            R["missing"] = attempt(os.rmdir, "nope")
            R["dot"] = attempt(os.rmdir, "full/.")
            R["nlink"] = os.stat(".").st_nlink
            R["cmd"] = subprocess.run(["rm", "-r", "full"]).returncode
            R["nlink2"] = os.stat(".").st_nlink
            """)
        self.assertEqual(a["gone"], {"errno": "ENOENT"})
        self.assertEqual(a["nonempty"], {"errno": "ENOTEMPTY"})
        self.assertEqual(a["nonempty2"], {"errno": "ENOTEMPTY"})
        self.assertEqual(a["file"], {"errno": "ENOTDIR"})
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["dot"], {"errno": "EINVAL"})
        self.assertEqual(a["nlink2"], a["nlink"] - 1)

    def test_symlink(self):
        a = self.both("""
            with open("target", "w") as f:
                f.write("t")
            R["symlink"] = attempt(os.symlink, "target", "l")
            R["l"] = st("l")
            R["read"] = content("l")
            R["exists"] = attempt(os.symlink, "x", "l")
            R["no_dir"] = attempt(os.symlink, "x", "nope/l")
            R["cmd"] = subprocess.run(["ln", "-s", "/etc/hostname-nope", "abs"]).returncode
            R["abs"] = st("abs")
            os.mkdir("d")
            os.symlink("d", "dl")
            R["through_dir_link"] = attempt(lambda: open("dl/new", "w").close())
            R["d_list"] = os.listdir("d")
            """)
        self.assertEqual(a["l"]["kind"], "LNK")
        self.assertEqual(a["l"]["size"], len("target"))
        self.assertEqual(a["read"], "t")
        self.assertEqual(a["exists"], {"errno": "EEXIST"})
        self.assertEqual(a["no_dir"], {"errno": "ENOENT"})
        self.assertEqual(a["d_list"], ["new"])

    def test_link(self):
        a = self.both("""
            with open("f", "w") as f:
                f.write("one")
            R["n1"] = os.stat("f").st_nlink
            R["link"] = attempt(os.link, "f", "g")
            R["n2"] = [os.stat(p).st_nlink for p in ("f", "g")]
            R["link2"] = attempt(os.link, "f", "h")
            R["n3"] = [os.stat(p).st_nlink for p in ("f", "g", "h")]
            R["same_ino"] = len({os.stat(p).st_ino for p in ("f", "g", "h")}) == 1
            with open("g", "a") as f:
                f.write(" two")
            R["via_h"] = content("h")
            R["unlink"] = attempt(os.unlink, "g")
            R["n4"] = [os.stat(p).st_nlink for p in ("f", "h")]
            os.mkdir("d")
            R["dir"] = attempt(os.link, "d", "d2")
            R["missing"] = attempt(os.link, "nope", "x")
            R["exists"] = attempt(os.link, "f", "h")
            R["cmd"] = subprocess.run(["ln", "f", "k"]).returncode
            R["n5"] = os.stat("f").st_nlink
            os.symlink("f", "sl")
            R["link_symlink"] = attempt(os.link, "sl", "sl2", follow_symlinks=False)
            R["sl2"] = st("sl2")
            """)
        self.assertEqual(a["n2"], [2, 2])
        self.assertEqual(a["n3"], [3, 3, 3])
        self.assertTrue(a["same_ino"])
        self.assertEqual(a["via_h"], "one two")
        self.assertEqual(a["n4"], [2, 2])
        self.assertEqual(a["dir"], {"errno": "EPERM"})
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["exists"], {"errno": "EEXIST"})
        self.assertEqual(a["n5"], 3)
        self.assertEqual(a["sl2"]["kind"], "LNK")

    def test_rename(self):
        a = self.both("""
            AT_FDCWD = -100
            RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
            def renameat2(a, b, flags):
                return cerr(libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags))
            def put(p, s):
                with open(p, "w") as f:
                    f.write(s)
            put("f", "F")
            R["plain"] = attempt(os.rename, "f", "g")
            R["after_plain"] = [st("f"), content("g")]
            put("h", "H")
            R["over"] = attempt(os.rename, "h", "g")
            R["after_over"] = [st("h"), content("g")]
            os.makedirs("d/sub")
            put("d/sub/x", "X")
            R["dir"] = attempt(os.rename, "d", "e")
            R["after_dir"] = [st("d"), content("e/sub/x")]
            os.mkdir("empty")
            R["dir_over_empty"] = attempt(os.rename, "e", "empty")
            os.makedirs("full/y")
            R["dir_over_nonempty"] = attempt(os.rename, "empty", "full")
            R["file_over_dir"] = attempt(os.rename, "g", "full")
            R["dir_over_file"] = attempt(os.rename, "full", "g")
            R["missing"] = attempt(os.rename, "nope", "x")
            R["into_itself"] = attempt(os.rename, "full", "full/y/z")
            put("a", "A"); put("b", "B")
            R["noreplace_exists"] = renameat2("a", "b", RENAME_NOREPLACE)
            R["noreplace_new"] = renameat2("a", "c", RENAME_NOREPLACE)
            R["exchange"] = renameat2("b", "c", RENAME_EXCHANGE)
            R["after_exchange"] = [content("b"), content("c")]
            R["exchange_missing"] = renameat2("b", "nope", RENAME_EXCHANGE)
            os.mkdir("xd")
            R["exchange_file_dir"] = renameat2("b", "xd", RENAME_EXCHANGE)
            R["after_exchange_file_dir"] = [st("b")["kind"], content("xd")]
            R["mv"] = subprocess.run(["mv", "c", "full/y/moved"]).returncode
            R["moved"] = content("full/y/moved")
            R["same_name"] = attempt(os.rename, "full", "full")
            """)
        self.assertEqual(a["after_plain"], [{"errno": "ENOENT"}, "F"])
        self.assertEqual(a["after_over"], [{"errno": "ENOENT"}, "H"])
        self.assertEqual(a["after_dir"][1], "X")
        self.assertEqual(a["dir_over_nonempty"], {"errno": "ENOTEMPTY"})
        self.assertEqual(a["file_over_dir"], {"errno": "EISDIR"})
        self.assertEqual(a["dir_over_file"], {"errno": "ENOTDIR"})
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["into_itself"], {"errno": "EINVAL"})
        self.assertEqual(a["noreplace_exists"], {"errno": "EEXIST"})
        self.assertEqual(a["noreplace_new"], {"ok": 0})
        self.assertEqual(a["exchange"], {"ok": 0})
        self.assertEqual(a["after_exchange"], ["A", "B"])
        self.assertEqual(a["exchange_missing"], {"errno": "ENOENT"})
        self.assertEqual(a["after_exchange_file_dir"], ["DIR", "A"])
        self.assertEqual(a["moved"], "B")

    def test_open_create_read_write_fsync(self):
        a = self.both("""
            import hashlib
            fd = os.open("f", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640)
            R["write"] = os.write(fd, b"hello world")
            R["fsync"] = attempt(os.fsync, fd)
            R["fdatasync"] = attempt(os.fdatasync, fd)
            R["close"] = attempt(os.close, fd)
            R["f"] = st("f")
            fd = os.open("f", os.O_RDONLY)
            R["read"] = os.read(fd, 100).decode()
            R["pread"] = os.pread(fd, 5, 6).decode()
            R["read_eof"] = os.read(fd, 100).decode()
            R["write_rdonly"] = attempt(os.write, fd, b"x")
            os.close(fd)
            fd = os.open("f", os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"!!")
            os.close(fd)
            R["append"] = content("f")
            fd = os.open("f", os.O_RDWR)
            os.pwrite(fd, b"J", 6)
            R["pwrite"] = os.pread(fd, 100, 0).decode()
            R["sparse_write"] = os.pwrite(fd, b"end", 1 << 20)
            R["sparse_size"] = os.fstat(fd).st_size
            os.close(fd)
            R["sparse_tail"] = content("f")
            data = bytes((i * 31 + 7) % 256 for i in range(5 << 20))
            with open("big", "wb") as f:
                R["big_write"] = f.write(data)
            with open("big", "rb") as f:
                back = f.read()
            R["big_ok"] = back == data
            fd = os.open("small", os.O_CREAT | os.O_WRONLY, 0o600)
            for i in range(1000):
                os.write(fd, bytes([48 + i % 10]))
            os.close(fd)
            R["small"] = hashlib.sha256(open("small", "rb").read()).hexdigest()
            fd = os.open("f", os.O_WRONLY | os.O_TRUNC)
            os.close(fd)
            R["trunc"] = st("f")
            R["missing"] = attempt(os.open, "nope", os.O_RDONLY)
            R["excl"] = attempt(os.open, "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.mkdir("d")
            R["dir_write"] = attempt(os.open, "d", os.O_WRONLY)
            R["directory_flag"] = attempt(os.open, "f", os.O_RDONLY | os.O_DIRECTORY)
            R["through_file"] = attempt(os.open, "f/x", os.O_RDONLY)
            os.symlink("f", "l")
            R["nofollow"] = attempt(os.open, "l", os.O_RDONLY | os.O_NOFOLLOW)
            fd = os.open("umask", os.O_CREAT | os.O_RDWR, 0o777)
            R["new_read"] = os.read(fd, 10).decode()
            os.close(fd)
            R["umask"] = st("umask")
            R["cp"] = subprocess.run(["cp", "big", "big.copy"]).returncode
            R["cat"] = subprocess.run(["cat", "small"], capture_output=True).stdout[:20].decode()
            """)
        self.assertEqual(a["write"], 11)
        self.assertEqual(a["f"]["mode"], "0o640")
        self.assertEqual(a["read"], "hello world")
        self.assertEqual(a["pread"], "world")
        self.assertEqual(a["write_rdonly"], {"errno": "EBADF"})
        self.assertEqual(a["append"], "hello world!!")
        self.assertEqual(a["pwrite"], "hello Jorld!!")
        self.assertEqual(a["sparse_size"], (1 << 20) + 3)
        self.assertTrue(a["big_ok"])
        self.assertEqual(a["trunc"]["size"], 0)
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["excl"], {"errno": "EEXIST"})
        self.assertEqual(a["dir_write"], {"errno": "EISDIR"})
        self.assertEqual(a["directory_flag"], {"errno": "ENOTDIR"})
        self.assertEqual(a["through_file"], {"errno": "ENOTDIR"})
        self.assertEqual(a["nofollow"], {"errno": "ELOOP"})
        self.assertEqual(a["umask"]["mode"], "0o755")
        self.assertEqual(a["cat"], "01234567890123456789")

    def test_readdir(self):
        a = self.both("""
            for i in range(1000):
                open("f%04d" % i, "w").close()
            os.mkdir("sub")
            os.symlink("f0001", "link")
            os.mkfifo("fifo")
            odd = ["new\\nline", "\\u00e9t\\u00e9", "x" * 255, "-dash", " space "]
            for n in odd:
                open(n, "w").close()
            for n in os.listdir("."):
                os.utime(n, ns=(10**18, 10**18), follow_symlinks=False)
            names = os.listdir(".")
            R["count"] = len(names)
            R["names"] = sorted(names)
            R["types"] = sorted((e.name, e.is_dir(follow_symlinks=False),
                                 e.is_file(follow_symlinks=False), e.is_symlink())
                                for e in os.scandir("."))
            R["ls_f"] = sorted(subprocess.run(["ls", "-f", "-a"], capture_output=True,
                                              text=True).stdout.splitlines())
            R["ls_l"] = subprocess.run(["ls", "-ln", "--time-style=+%s", "--quoting-style=c"],
                                       capture_output=True, text=True).stdout
            R["empty"] = attempt(os.listdir, "sub")
            R["missing"] = attempt(os.listdir, "nope")
            R["file"] = attempt(os.listdir, "f0001")
            R["find"] = len(subprocess.run(["find", "."], capture_output=True,
                                           text=True).stdout.splitlines())
            """)
        self.assertEqual(a["count"], 1000 + 3 + 5)
        self.assertIn(". ", " ".join(a["ls_f"]) + " ")
        self.assertEqual(a["empty"], {"ok": []})
        self.assertEqual(a["missing"], {"errno": "ENOENT"})
        self.assertEqual(a["file"], {"errno": "ENOTDIR"})
        self.assertEqual(len(a["ls_l"].splitlines()), 1 + 1008)

    def test_releasedir_fsyncdir_no_leaks(self):
        def daemon_fds():
            return len(os.listdir("/proc/%d/fd" % self.m.pid))
        code = """
            os.mkdir("d")
            with open("d/f", "w") as f:
                f.write("x")
            for i in range(300):
                fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
                if i == 0:
                    R["fsyncdir"] = attempt(os.fsync, fd)
                os.close(fd)
                fd = os.open("d/f", os.O_RDONLY)
                os.close(fd)
                os.listdir("d")
            R["ok"] = True
            """
        outcome(code, self.mdir)  # warm up: the daemon may cache inodes
        run(["rm", "-r", os.path.join(self.mdir, "d")], check=True)
        before = daemon_fds()
        a = self.both(code)
        after = daemon_fds()
        self.assertEqual(a["fsyncdir"], {"ok": None})
        self.assertLessEqual(after, before + 10,
                             "the daemon keeps file descriptors after opendir/open + close")

    def test_statfs(self):
        code = "R['v'] = list(os.statvfs('.')); R['name_max'] = os.pathconf('.', 'PC_NAME_MAX')"
        s = outcome(code, self.sdir)
        m = outcome(code, self.mdir)
        p = outcome(code, self.plain)
        names = ["bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail",
                 "flag", "namemax"]
        sv, mv, pv = (dict(zip(names, x["v"])) for x in (s, m, p))
        for k in ["bsize", "frsize", "blocks", "files", "namemax"]:
            self.assertEqual(mv[k], sv[k], k)
            self.assertEqual(pv[k], sv[k], k)
        for k in ["bfree", "bavail", "ffree", "favail"]:
            # Other programs use the same file system meanwhile.
            self.assertAlmostEqual(mv[k], sv[k], delta=max(sv["blocks"], sv["files"]) // 100, msg=k)
        self.assertEqual(m["name_max"], s["name_max"])
        r = run(["stat", "-f", "-c", "%S %b %c", "."], cwd=self.mdir, check=True)
        r2 = run(["stat", "-f", "-c", "%S %b %c", "."], cwd=self.sdir, check=True)
        self.assertEqual(r.stdout, r2.stdout)

    def test_xattrs(self):
        a = self.both("""
            XATTR_CREATE, XATTR_REPLACE = 1, 2
            open("f", "w").close()
            os.mkdir("d")
            os.symlink("f", "l")
            R["set"] = attempt(os.setxattr, "f", "user.a", b"1")
            big = bytes(range(256)) * 12
            R["set_big"] = attempt(os.setxattr, "f", "user.big", big)
            R["set_empty"] = attempt(os.setxattr, "f", "user.empty", b"")
            R["set_binary"] = attempt(os.setxattr, "f", "user.bin", b"a\\0b\\xff")
            R["list"] = sorted(os.listxattr("f"))
            R["get"] = attempt(os.getxattr, "f", "user.a")
            R["get_big_ok"] = os.getxattr("f", "user.big") == big
            R["get_empty"] = attempt(os.getxattr, "f", "user.empty")
            R["get_binary"] = attempt(os.getxattr, "f", "user.bin")
            R["missing"] = attempt(os.getxattr, "f", "user.nope")
            R["create_existing"] = attempt(os.setxattr, "f", "user.a", b"2", XATTR_CREATE)
            R["replace_missing"] = attempt(os.setxattr, "f", "user.new", b"2", XATTR_REPLACE)
            R["replace"] = attempt(os.setxattr, "f", "user.a", b"22", XATTR_REPLACE)
            R["after_replace"] = attempt(os.getxattr, "f", "user.a")
            size_probe = libc.getxattr(b"f", b"user.big", None, ctypes.c_size_t(0))
            R["size_probe"] = size_probe
            buf = ctypes.create_string_buffer(10)
            R["small_buffer"] = cerr(libc.getxattr(b"f", b"user.big", buf, ctypes.c_size_t(10)))
            R["list_size_probe"] = libc.listxattr(b"f", None, ctypes.c_size_t(0))
            R["list_small_buffer"] = cerr(libc.listxattr(b"f", buf, ctypes.c_size_t(3)))
            R["remove"] = attempt(os.removexattr, "f", "user.empty")
            R["remove_missing"] = attempt(os.removexattr, "f", "user.empty")
            R["after_remove"] = xattrs("f")
            R["dir"] = attempt(os.setxattr, "d", "user.dir", b"yes")
            R["dir_get"] = xattrs("d")
            R["symlink_user"] = attempt(os.setxattr, "l", "user.x", b"1", follow_symlinks=False)
            R["via_symlink"] = attempt(os.getxattr, "l", "user.a")
            R["trusted"] = attempt(os.setxattr, "f", "trusted.t", b"root only")
            R["trusted_get"] = attempt(os.getxattr, "f", "trusted.t")
            R["long_name"] = attempt(os.setxattr, "f", "user." + "n" * 256, b"1")
            R["no_file"] = attempt(os.setxattr, "nope", "user.a", b"1")
            R["no_namespace"] = attempt(os.setxattr, "f", "bogus.a", b"1")
            fd = os.open("f", os.O_RDONLY)
            R["fgetxattr"] = attempt(os.getxattr, fd, "user.a")
            R["fsetxattr"] = attempt(os.setxattr, fd, "user.f", b"via fd")
            os.close(fd)
            R["final"] = xattrs("f")
            """)
        self.assertEqual(a["get"], {"ok": "1"})
        self.assertTrue(a["get_big_ok"])
        self.assertEqual(a["get_binary"], {"ok": "a\0b\xff"})
        self.assertEqual(a["missing"], {"errno": "ENODATA"})
        self.assertEqual(a["create_existing"], {"errno": "EEXIST"})
        self.assertEqual(a["replace_missing"], {"errno": "ENODATA"})
        self.assertEqual(a["after_replace"], {"ok": "22"})
        self.assertEqual(a["size_probe"], 3072)
        self.assertEqual(a["small_buffer"], {"errno": "ERANGE"})
        self.assertEqual(a["list_small_buffer"], {"errno": "ERANGE"})
        self.assertEqual(a["remove_missing"], {"errno": "ENODATA"})
        self.assertNotIn("user.empty", a["after_remove"])
        self.assertEqual(a["dir_get"], {"user.dir": "yes"})
        self.assertEqual(a["symlink_user"], {"errno": "EPERM"})
        self.assertEqual(a["via_symlink"], {"ok": "22"})
        self.assertEqual(a["trusted_get"], {"ok": "root only"})
        self.assertEqual(a["long_name"], {"errno": "ERANGE"})
        self.assertEqual(a["no_file"], {"errno": "ENOENT"})
        self.assertEqual(a["final"]["user.f"], "via fd")

    def test_access_as_root(self):
        a = self.both("""
            modes = {"m000": 0o000, "m644": 0o644, "m755": 0o755, "m100": 0o100, "m010": 0o010}
            for n, mode in modes.items():
                open(n, "w").close()
                os.chmod(n, mode)
            os.mkdir("d000")
            os.chmod("d000", 0)
            R["access"] = {n: [os.access(n, m) for m in (os.F_OK, os.R_OK, os.W_OK, os.X_OK)]
                           for n in list(modes) + ["d000", "missing"]}
            R["errno"] = {n: cerr(libc.access(n.encode(), os.X_OK)) for n in ("m644", "missing")}
            R["eaccess"] = os.access("m644", os.X_OK, effective_ids=True)
            """)
        self.assertEqual(a["access"]["m000"], [True, True, True, False])
        self.assertEqual(a["access"]["m100"], [True, True, True, True])
        self.assertEqual(a["access"]["d000"], [True, True, True, True])
        self.assertEqual(a["access"]["missing"], [False] * 4)
        self.assertEqual(a["errno"], {"m644": {"errno": "EACCES"}, "missing": {"errno": "ENOENT"}})

    def test_fallocate(self):
        a = self.both("""
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
            KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
            MiB = 1 << 20
            fd = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
            R["posix_fallocate"] = attempt(os.posix_fallocate, fd, 0, MiB)
            R["f1"] = st("f", blocks=True)
            R["plain_mode"] = cerr(libc.fallocate(fd, 0, MiB, MiB))
            R["f2"] = st("f", blocks=True)
            R["keep_size"] = cerr(libc.fallocate(fd, KEEP_SIZE, 2 * MiB, MiB))
            R["f3"] = st("f", blocks=True)
            os.pwrite(fd, b"x" * 65536, 0)
            R["punch"] = cerr(libc.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 4096, 8192))
            data = os.pread(fd, 65536, 0)
            R["punched"] = [data[:4096] == b"x" * 4096, data[4096:12288] == bytes(8192),
                            data[12288:] == b"x" * (65536 - 12288)]
            R["f4"] = st("f", blocks=True)
            R["punch_without_keep"] = cerr(libc.fallocate(fd, PUNCH_HOLE, 0, 4096))
            R["zero_range"] = cerr(libc.fallocate(fd, ZERO_RANGE, 16384, 4096))
            data = os.pread(fd, 65536, 0)
            R["zeroed"] = data[16384:20480] == bytes(4096) and data[20480:20490] == b"x" * 10
            R["bad_len"] = cerr(libc.fallocate(fd, 0, 0, -1))
            os.close(fd)
            fd = os.open("f", os.O_RDONLY)
            R["rdonly"] = cerr(libc.fallocate(fd, 0, 0, 4096))
            os.close(fd)
            R["cmd"] = subprocess.run(["fallocate", "-l", "123456", "g"]).returncode
            R["g"] = st("g", blocks=True)
            """)
        self.assertEqual(a["posix_fallocate"], {"ok": None})
        self.assertEqual(a["f1"]["size"], 1 << 20)
        self.assertEqual(a["f2"]["size"], 2 << 20)
        self.assertEqual(a["f3"]["size"], 2 << 20)
        self.assertGreater(a["f3"]["blocks"], a["f2"]["blocks"])
        self.assertEqual(a["punched"], [True, True, True])
        self.assertLess(a["f4"]["blocks"], a["f3"]["blocks"])
        self.assertEqual(a["punch_without_keep"], {"errno": "ENOTSUP"})
        self.assertTrue(a["zeroed"])
        self.assertEqual(a["bad_len"], {"errno": "EINVAL"})
        self.assertEqual(a["rdonly"], {"errno": "EBADF"})
        self.assertEqual(a["g"]["size"], 123456)

    def test_copy_file_range(self):
        a = self.both("""
            data = bytes((i * 13) % 251 for i in range(100000))
            with open("a", "wb") as f:
                f.write(data)
            fa = os.open("a", os.O_RDONLY)
            fb = os.open("b", os.O_WRONLY | os.O_CREAT, 0o644)
            R["copy"] = attempt(os.copy_file_range, fa, fb, 50000, 1000, 0)
            R["past_eof"] = attempt(os.copy_file_range, fa, fb, 10**6, 90000, 50000)
            R["at_eof"] = attempt(os.copy_file_range, fa, fb, 100, 100000, 0)
            R["positions"] = attempt(os.copy_file_range, fa, fb, 10)
            R["pos_after"] = [os.lseek(fa, 0, os.SEEK_CUR), os.lseek(fb, 0, os.SEEK_CUR)]
            R["to_rdonly"] = attempt(os.copy_file_range, fb, fa, 10, 0, 0)
            os.close(fb)
            fa2 = os.open("a", os.O_RDWR)
            R["overlap"] = attempt(os.copy_file_range, fa2, fa2, 1000, 0, 500)
            os.close(fa2)
            os.close(fa)
            b = open("b", "rb").read()
            R["b_ok"] = [len(b), b[10:50000] == data[1010:51000], b[50000:] == data[90000:],
                         b[:10] == data[:10]]
            """)
        self.assertEqual(a["copy"], {"ok": 50000})
        self.assertEqual(a["past_eof"], {"ok": 10000})
        self.assertEqual(a["at_eof"], {"ok": 0})
        self.assertEqual(a["positions"], {"ok": 10})
        self.assertEqual(a["pos_after"], [10, 10])
        self.assertEqual(a["to_rdonly"], {"errno": "EBADF"})
        self.assertEqual(a["overlap"], {"errno": "EINVAL"})
        self.assertEqual(a["b_ok"], [60000, True, True, True])

    def test_lseek_data_hole(self):
        a = self.both("""
            MiB = 1 << 20
            fd = os.open("sparse", os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(fd, b"a" * 4096, 0)
            os.pwrite(fd, b"b" * 4096, MiB)
            os.ftruncate(fd, 2 * MiB)
            def seek(off, whence):
                return attempt(os.lseek, fd, off, whence)
            R["data0"] = seek(0, os.SEEK_DATA)
            R["hole0"] = seek(0, os.SEEK_HOLE)
            R["data1"] = seek(4096, os.SEEK_DATA)
            R["hole1"] = seek(MiB, os.SEEK_HOLE)
            R["data_tail"] = seek(MiB + MiB // 2, os.SEEK_DATA)
            R["hole_tail"] = seek(MiB + MiB // 2, os.SEEK_HOLE)
            R["data_past_eof"] = seek(3 * MiB, os.SEEK_DATA)
            R["end"] = seek(0, os.SEEK_END)
            R["cur"] = seek(-10, os.SEEK_CUR)
            R["negative"] = seek(-1, os.SEEK_SET)
            os.close(fd)
            R["sparse"] = st("sparse", blocks=True)
            """)
        mib = 1 << 20
        self.assertEqual(a["data0"], {"ok": 0})
        self.assertEqual(a["hole0"], {"ok": 4096})
        self.assertEqual(a["data1"], {"ok": mib})
        self.assertEqual(a["hole1"], {"ok": mib + 4096})
        self.assertEqual(a["data_tail"], {"errno": "ENXIO"})
        self.assertEqual(a["hole_tail"], {"ok": mib + mib // 2})
        self.assertEqual(a["data_past_eof"], {"errno": "ENXIO"})
        self.assertEqual(a["end"], {"ok": 2 * mib})
        self.assertEqual(a["negative"], {"errno": "EINVAL"})

    def test_errors(self):
        a = self.both("""
            os.mkdir("d")
            open("f", "w").close()
            R["enoent_stat"] = attempt(os.stat, "nope")
            R["enoent_open_in_missing_dir"] = attempt(os.open, "nope/f", os.O_CREAT | os.O_WRONLY)
            R["eisdir_open"] = attempt(os.open, "d", os.O_RDWR)
            R["eisdir_read"] = attempt(lambda: os.read(os.open("d", os.O_RDONLY), 10))
            R["enotdir"] = attempt(os.stat, "f/x")
            R["enotdir_listdir"] = attempt(os.listdir, "f")
            R["eexist_mkdir"] = attempt(os.mkdir, "f")
            R["eexist_symlink"] = attempt(os.symlink, "x", "d")
            R["enametoolong"] = attempt(os.open, "y" * 256, os.O_CREAT | os.O_WRONLY)
            R["einval_readlink"] = attempt(os.readlink, "d")
            R["eisdir_unlink"] = attempt(os.unlink, "d")
            R["enotempty"] = attempt(lambda: (open("d/x", "w").close(), os.rmdir("d")))
            R["cat_missing"] = subprocess.run(["cat", "nope"], capture_output=True).returncode
            """)
        self.assertEqual(a["enoent_stat"], {"errno": "ENOENT"})
        self.assertEqual(a["enoent_open_in_missing_dir"], {"errno": "ENOENT"})
        self.assertEqual(a["eisdir_open"], {"errno": "EISDIR"})
        self.assertEqual(a["eisdir_read"], {"errno": "EISDIR"})
        self.assertEqual(a["enotdir"], {"errno": "ENOTDIR"})
        self.assertEqual(a["enotdir_listdir"], {"errno": "ENOTDIR"})
        self.assertEqual(a["eexist_mkdir"], {"errno": "EEXIST"})
        self.assertEqual(a["eexist_symlink"], {"errno": "EEXIST"})
        self.assertEqual(a["enametoolong"], {"errno": "ENAMETOOLONG"})
        self.assertEqual(a["einval_readlink"], {"errno": "EINVAL"})
        self.assertEqual(a["eisdir_unlink"], {"errno": "EISDIR"})
        self.assertEqual(a["enotempty"], {"errno": "ENOTEMPTY"})
        self.assertEqual(a["cat_missing"], 1)


class MultiUser(PassthroughCase):
    """-o allow_other: each caller acts with its own credentials."""

    mount_opts = ["allow_other"]
    SETUP = """
        def put(p, s, mode, uid=0, gid=0):
            with open(p, "w") as f:
                f.write(s)
            os.chown(p, uid, gid)
            os.chmod(p, mode)
        put("secret", "s", 0o600)
        put("pub", "p", 0o644)
        put("grp", "g", 0o640, 0, 65534)
        put("other_only", "o", 0o604, 0, 65534)
        put("sgrp", "sg", 0o640, 0, 100)
        put("mine", "m", 0o644, 65534, 65534)
        put("exe", "#!/bin/sh\\necho ran\\n", 0o750, 0, 65534)
        os.mkdir("private", 0o700)
        put("private/f", "x", 0o644)
        os.mkdir("world")
        os.chmod("world", 0o1777)
        put("world/roots", "r", 0o666)
        os.mkdir("setgid")
        os.chown("setgid", 0, 100)
        os.chmod("setgid", 0o2777)
        os.mkdir("rootdir", 0o755)
        os.mkdir("grpdir")
        os.chown("grpdir", 0, 100)
        os.chmod("grpdir", 0o770)
        R["setup"] = True
        """

    def setUp(self):
        super().setUp()
        for base in (self.plain, self.mdir):
            outcome(self.SETUP, base)

    ACTIONS = """
        R["id"] = [os.getuid(), os.getgid(), sorted(os.getgroups())]
        def read(p):
            with open(p) as f:
                return f.read()
        for p in ("secret", "pub", "grp", "other_only", "sgrp", "mine", "private/f"):
            R["read " + p] = attempt(read, p)
            R["access " + p] = [os.access(p, m) for m in (os.R_OK, os.W_OK, os.X_OK)]
        R["write pub"] = attempt(os.open, "pub", os.O_WRONLY)
        R["write mine"] = attempt(lambda: open("mine", "a").write("+"))
        R["exec"] = attempt(lambda: subprocess.run(["./exe"], capture_output=True, text=True).stdout)
        R["list private"] = attempt(os.listdir, "private")
        R["truncate secret"] = attempt(os.truncate, "secret", 0)
        R["chmod pub"] = attempt(os.chmod, "pub", 0o666)
        R["chown mine"] = attempt(os.chown, "mine", 0, 0)
        R["utime now pub"] = attempt(os.utime, "pub")
        R["utime explicit pub"] = attempt(os.utime, "pub", (1, 1))
        R["utime now mine"] = attempt(os.utime, "mine")
        R["xattr pub"] = attempt(os.setxattr, "pub", "user.x", b"1")
        R["xattr mine"] = attempt(os.setxattr, "mine", "user.x", b"1")
        R["mkdir rootdir"] = attempt(os.mkdir, "rootdir/x")
        R["create rootdir"] = attempt(os.open, "rootdir/f", os.O_CREAT | os.O_WRONLY)
        R["create grpdir"] = attempt(os.open, "grpdir/f", os.O_CREAT | os.O_WRONLY)
        R["create"] = attempt(lambda: open("world/f", "w").write("by caller"))
        R["mkdir"] = attempt(os.mkdir, "world/d")
        R["symlink"] = attempt(os.symlink, "f", "world/l")
        R["mkfifo"] = attempt(os.mkfifo, "world/p")
        R["link"] = attempt(os.link, "world/f", "world/f2")
        R["sgid create"] = attempt(lambda: open("setgid/f", "w").close())
        R["created"] = {p: st(p) for p in ("world/f", "world/d", "world/l", "world/p", "setgid/f")}
        R["unlink roots"] = attempt(os.unlink, "world/roots")
        R["rename roots"] = attempt(os.rename, "world/roots", "world/mine-now")
        R["rename own"] = attempt(os.rename, "world/f", "world/g")
        R["unlink own"] = attempt(os.unlink, "world/f2")
        R["rmdir own"] = attempt(os.rmdir, "world/d")
        """

    def test_permissions_and_ownership_of_caller(self):
        a = self.both(self.ACTIONS, user=(NOBODY, NOGROUP, []))
        self.assertEqual(a["id"], [NOBODY, NOGROUP, []])
        self.assertEqual(a["read secret"], {"errno": "EACCES"})
        self.assertEqual(a["read pub"], {"ok": "p"})
        self.assertEqual(a["read grp"], {"ok": "g"})
        self.assertEqual(a["read other_only"], {"errno": "EACCES"})
        self.assertEqual(a["read sgrp"], {"errno": "EACCES"})
        self.assertEqual(a["read private/f"], {"errno": "EACCES"})
        self.assertEqual(a["access secret"], [False, False, False])
        self.assertEqual(a["access mine"], [True, True, False])
        self.assertEqual(a["write pub"], {"errno": "EACCES"})
        self.assertEqual(a["exec"], {"ok": "ran\n"})
        self.assertEqual(a["chmod pub"], {"errno": "EPERM"})
        self.assertEqual(a["chown mine"], {"errno": "EPERM"})
        self.assertEqual(a["utime now pub"], {"errno": "EACCES"})
        self.assertEqual(a["utime explicit pub"], {"errno": "EPERM"})
        self.assertEqual(a["xattr pub"], {"errno": "EACCES"})
        self.assertEqual(a["create rootdir"], {"errno": "EACCES"})
        self.assertEqual(a["create grpdir"], {"errno": "EACCES"})
        for p, s in a["created"].items():
            self.assertEqual(s["uid"], NOBODY, p)
        self.assertEqual(a["created"]["world/f"]["gid"], NOGROUP)
        self.assertEqual(a["created"]["setgid/f"]["gid"], 100)
        self.assertEqual(a["unlink roots"], {"errno": "EPERM"})
        self.assertEqual(a["rename roots"], {"errno": "EPERM"})
        self.assertEqual(a["rename own"], {"ok": None})

    def test_supplementary_groups_count(self):
        a = self.both("""
            R["id"] = sorted(os.getgroups())
            R["read sgrp"] = attempt(lambda: open("sgrp").read())
            R["access sgrp"] = os.access("sgrp", os.R_OK)
            R["create grpdir"] = attempt(lambda: open("grpdir/g", "w").close())
            R["g"] = st("grpdir/g")
            """, user=(NOBODY, NOGROUP, [100]))
        self.assertEqual(a["id"], [100])
        self.assertEqual(a["read sgrp"], {"ok": "sg"})
        self.assertTrue(a["access sgrp"])
        self.assertEqual((a["g"]["uid"], a["g"]["gid"]), (NOBODY, NOGROUP))

    def test_root_still_root(self):
        a = self.both("""
            R["read secret"] = attempt(lambda: open("secret").read())
            R["list private"] = attempt(os.listdir, "private")
            R["create"] = attempt(lambda: open("private/new", "w").close())
            R["new"] = st("private/new")
            """)
        self.assertEqual(a["read secret"], {"ok": "s"})
        self.assertEqual(a["new"]["uid"], 0)

    def test_write_by_another_user_clears_setid_bits(self):
        """The kernel asks lockfs to clear set-user-ID and set-group-ID as
        the writing user, who does not own the file (libfuse 3.14 cannot
        leave it to the source): the bits go as on the plain directory."""
        for d in (self.plain, self.mdir):
            p = os.path.join(d, "f")
            with open(p, "w") as f:
                f.write("x")
            os.chmod(p, 0o6777)
        a = self.both("""
            R["write"] = attempt(lambda: open("f", "a").write("y"))
            R["mode"] = oct(os.stat("f").st_mode & 0o7777)
            """, user=(NOBODY, NOGROUP, []))
        self.assertEqual(a["write"], {"ok": 1})
        self.assertEqual(a["mode"], "0o777")

    def test_directory_closed_after_a_walk(self):
        """Names another user walked through stay no way in once their
        directory is closed to that user: without default_permissions the
        kernel checks no search permission, so no name may stay cached."""
        code = """
            R["read"] = attempt(lambda: open("d/f").read())
            """
        for d in (self.plain, self.mdir):
            os.mkdir(os.path.join(d, "d"), 0o755)
            with open(os.path.join(d, "d", "f"), "w") as f:
                f.write("x")
        before = [outcome(code, d, user=(NOBODY, NOGROUP, [])) for d in (self.plain, self.mdir)]
        for d in (self.plain, self.mdir):
            os.chmod(os.path.join(d, "d"), 0o700)
        after = [outcome(code, d, user=(NOBODY, NOGROUP, [])) for d in (self.plain, self.mdir)]
        self.assertEqual(before, [{"read": {"ok": "x"}}] * 2)
        self.assertEqual(after, [{"read": {"errno": "EACCES"}}] * 2)

    def test_chmod_by_another_user_only_drops_setid_bits(self):
        """The one difference that clearing costs: the kernel's request
        looks like the writer's own chmod, so a writer who does not own the
        file may drop exactly those bits (as its next write would); any
        other change of mode stays refused."""
        p = os.path.join(self.mdir, "g")
        with open(p, "w") as f:
            f.write("x")
        os.chmod(p, 0o6777)
        a = outcome("""
            R["more"] = attempt(os.chmod, "g", 0o6666)
            R["setid only"] = attempt(os.chmod, "g", 0o0777)
            R["mode"] = oct(os.stat("g").st_mode & 0o7777)
            """, self.mdir, user=(NOBODY, NOGROUP, []))
        self.assertEqual(a["more"], {"errno": "EPERM"})
        self.assertEqual(a["setid only"], {"ok": None})
        self.assertEqual(a["mode"], "0o777")


class ReadOnlyMount(PassthroughCase):
    mount_opts = ["ro"]

    def setUp(self):
        self.plain = None
        name = self._testMethodName
        self.sdir = self.m.src_path(name)
        os.mkdir(self.sdir)
        with open(os.path.join(self.sdir, "f"), "w") as f:
            f.write("data")
        self.mdir = self.m.path(name)

    def test_writes_refused_reads_work(self):
        r = outcome("""
            R["read"] = attempt(lambda: open("f").read())
            R["write"] = attempt(os.open, "f", os.O_WRONLY)
            R["create"] = attempt(os.open, "g", os.O_CREAT | os.O_WRONLY)
            R["mkdir"] = attempt(os.mkdir, "d")
            R["unlink"] = attempt(os.unlink, "f")
            R["chmod"] = attempt(os.chmod, "f", 0o600)
            R["setxattr"] = attempt(os.setxattr, "f", "user.a", b"1")
            """, self.mdir)
        self.assertEqual(r["read"], {"ok": "data"})
        for k in ["write", "create", "mkdir", "unlink", "chmod", "setxattr"]:
            self.assertEqual(r[k], {"errno": "EROFS"}, k)
        self.assertEqual(os.listdir(self.sdir), ["f"])


class CacheCoherence(LockfsTestCase):
    """What the mount shows follows SOURCE at the next open, even within the
    attribute and entry cache timeouts."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.m = Mount(["attr_timeout=1.0", "entry_timeout=1.0"])
        cls.m.start()

    @classmethod
    def tearDownClass(cls):
        cls.m.close()
        super().tearDownClass()

    def read_via_mount(self, name):
        r = py("import sys; sys.stdout.write(open(sys.argv[1]).read())", self.m.path(name),
               check=True)
        return r.stdout

    def write_via_mount(self, name, text):
        py("import sys; open(sys.argv[1], 'w').write(sys.argv[2])", self.m.path(name), text,
           check=True)

    def write_source(self, name, text):
        with open(self.m.src_path(name), "w") as f:
            f.write(text)

    def test_write_then_read_back(self):
        self.write_via_mount("wr", "written through the mount")
        self.assertEqual(self.read_via_mount("wr"), "written through the mount")
        with open(self.m.src_path("wr")) as f:
            self.assertEqual(f.read(), "written through the mount")
        self.write_via_mount("wr", "second")
        self.assertEqual(self.read_via_mount("wr"), "second")

    def test_source_changed_same_size(self):
        self.write_via_mount("same", "aaaa")
        self.assertEqual(self.read_via_mount("same"), "aaaa")
        with open(self.m.src_path("same"), "r+") as f:
            f.write("bbbb")
        self.assertEqual(self.read_via_mount("same"), "bbbb")

    def test_source_changed_size(self):
        self.write_via_mount("grow", "short")
        self.assertEqual(self.read_via_mount("grow"), "short")
        self.write_source("grow", "a much longer content than before")
        self.assertEqual(self.read_via_mount("grow"), "a much longer content than before")
        self.write_source("grow", "tiny")
        self.assertEqual(self.read_via_mount("grow"), "tiny")

    def test_source_replaced_by_rename(self):
        self.write_via_mount("replaced", "old")
        self.assertEqual(self.read_via_mount("replaced"), "old")
        tmp = self.m.src_path(".replaced.tmp")
        with open(tmp, "w") as f:
            f.write("new content")
        os.rename(tmp, self.m.src_path("replaced"))
        self.assertEqual(self.read_via_mount("replaced"), "new content")
        r = py("import os, sys; print(os.stat(sys.argv[1]).st_size)", self.m.path("replaced"),
               check=True)
        self.assertEqual(r.stdout.strip(), "11")

    def test_source_deleted(self):
        self.write_via_mount("deleted", "x")
        self.assertEqual(self.read_via_mount("deleted"), "x")
        os.unlink(self.m.src_path("deleted"))
        r = py("import sys; open(sys.argv[1])", self.m.path("deleted"))
        self.assertIn("FileNotFoundError", r.stderr)

    def test_created_in_source(self):
        self.write_source("fresh", "made in SOURCE")
        self.assertEqual(self.read_via_mount("fresh"), "made in SOURCE")

    def test_created_in_source_after_failed_lookup(self):
        r = py("import os, sys; print(os.path.exists(sys.argv[1]))", self.m.path("later"),
               check=True)
        self.assertEqual(r.stdout.strip(), "False")
        self.write_source("later", "appeared")
        self.assertEqual(self.read_via_mount("later"), "appeared")


if __name__ == "__main__":
    unittest.main()
