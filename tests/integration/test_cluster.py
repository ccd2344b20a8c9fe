"""Cluster mode: two lockfs mounts of one source directory, each with its own
ZooKeeper session, stand for two hosts sharing a file system. The test
starts its own standalone ZooKeeper on a free loopback port (Debian's
zookeeper package and a JRE; skipped without them, failing under CI)."""
import errno
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount
from test_locks import Group, crashes, read_counter, run_group, workload, write_file
from test_lockstat import OPEN, LockstatCase, lockstat_bin

# What an open may wait beyond the session timeout once ZooKeeper serves
# again (docs/cluster.md, "When ZooKeeper is unreachable"): the client's
# reconnection and the new request round trips.
RECONNECT_S = 2.0
# How long the restart test keeps ZooKeeper down before starting it again.
DOWN_S = 1.5

ZK_JAR = "/usr/share/java/zookeeper.jar"


def zk_command(sock, word):
    """A ZooKeeper four-letter word ('srvr' is allowed by default)."""
    with socket.create_connection(sock, timeout=2) as s:
        s.sendall(word.encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


class ZooKeeper:
    """A private standalone server, its data under a temporary directory."""

    def __init__(self):
        if not os.path.exists(ZK_JAR) or shutil.which("java") is None:
            harness._fail_or_skip("no ZooKeeper server or java (Debian packages zookeeper, "
                                  "default-jre-headless)")
        self.tmp = tempfile.mkdtemp(prefix=harness.TMP_PREFIX + "zk-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.log = open(os.path.join(self.tmp, "zk.log"), "w")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["java", "-cp", ZK_JAR, "-Dzookeeper.admin.enableServer=false",
             "org.apache.zookeeper.server.ZooKeeperServerMain", str(self.port),
             os.path.join(self.tmp, "data"), "500"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if "Mode" in zk_command(self.addr, "srvr"):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("ZooKeeper did not start on port %d" % self.port)

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def received(self):
        """Packets the server received so far (requests and pings)."""
        for line in zk_command(self.addr, "srvr").splitlines():
            if line.startswith("Received:"):
                return int(line.split(":")[1])
        raise AssertionError("no Received: line from srvr")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, True)


def free_ports(n):
    """n distinct free loopback ports (held open together so that none is
    handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_serving(addr, deadline, proc=None):
    """Waits until the server at addr serves clients ('srvr' names its
    mode; an ensemble member without a quorum says it is not serving).
    Returns the mode, or None at the deadline or if proc exits."""
    while time.monotonic() < deadline:
        try:
            for line in zk_command(addr, "srvr").splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


class Ensemble:
    """Three QuorumPeerMain servers on loopback, each with its own zoo.cfg,
    myid and data directory. Heavy (three JVMs): stop() it in a finally."""

    def __init__(self, tick_ms=500):
        if not os.path.exists(ZK_JAR) or shutil.which("java") is None:
            harness._fail_or_skip("no ZooKeeper server or java (Debian packages zookeeper, "
                                  "default-jre-headless)")
        self.tmp = tempfile.mkdtemp(prefix=harness.TMP_PREFIX + "zk3-")
        ports = free_ports(9)
        self.client_ports = ports[0:3]
        peers = "".join("server.%d=127.0.0.1:%d:%d\n" % (i + 1, ports[3 + i], ports[6 + i])
                        for i in range(3))
        self.procs = [None] * 3
        self.logs = []
        self.cfgs = []
        for i in range(3):
            d = os.path.join(self.tmp, "s%d" % (i + 1))
            os.makedirs(os.path.join(d, "data"))
            write_file(os.path.join(d, "data", "myid"), "%d\n" % (i + 1))
            cfg = os.path.join(d, "zoo.cfg")
            write_file(cfg, "tickTime=%d\ninitLimit=20\nsyncLimit=10\n"
                       "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                       "admin.enableServer=false\n4lw.commands.whitelist=srvr,mntr\n%s"
                       % (tick_ms, os.path.join(d, "data"), self.client_ports[i], peers))
            self.cfgs.append(cfg)
            self.logs.append(open(os.path.join(d, "zk.log"), "w"))

    def start(self):
        for i in range(3):
            # A small heap: three of them share a small machine.
            self.procs[i] = subprocess.Popen(
                ["java", "-Xmx192m", "-cp", ZK_JAR,
                 "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfgs[i]],
                stdout=self.logs[i], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        for i in range(3):
            if wait_serving(self.addr(i), deadline, self.procs[i]) is None:
                raise AssertionError("ensemble server %d did not start serving:\n%s"
                                     % (i + 1, self.log_tail(i)))

    def addr(self, i):
        return ("127.0.0.1", self.client_ports[i])

    @property
    def servers(self):
        return "+".join("127.0.0.1:%d" % p for p in self.client_ports)

    def mode(self, i):
        return wait_serving(self.addr(i), time.monotonic() + 5, self.procs[i])

    def leader(self):
        for i in range(3):
            if self.procs[i].poll() is None and self.mode(i) == "leader":
                return i
        return None

    def log_tail(self, i):
        with open(self.logs[i].name, errors="replace") as f:
            return f.read()[-2000:]

    def kill(self, i):
        """kill -9 of server i, by its pid."""
        if self.procs[i].poll() is None:
            os.kill(self.procs[i].pid, 9)
            self.procs[i].wait()

    def stop(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.tmp, True)


def in_dir(d, *argv):
    """A command run in directory d (Group runs every command in one cwd)."""
    return ["/bin/sh", "-c", 'cd "$0" && exec "$@"', d] + list(argv)


def workloads(dirs, counters=5, counter_n=100, shells=4, shell_n=25):
    """The acceptance workload: on every directory, `counters` seed counters
    on counter.txt and `shells` shell read-modify-write loops on s/counter.txt."""
    cmds = []
    for d in dirs:
        cmds += [in_dir(d, PYTHON, workload("counter_rmw.py"), str(counter_n))
                 for _ in range(counters)]
        cmds += [in_dir(os.path.join(d, "s"), "bash", workload("counter_shell.sh"), str(shell_n))
                 for _ in range(shells)]
    return cmds


def timed_counters(dirs, copies, n):
    """`copies` timed seed counters of n increments on each directory."""
    return [in_dir(d, PYTHON, workload("counter_timed.py"), str(n))
            for d in dirs for _ in range(copies)]


def longest_increment(res):
    """The longest single increment of timed counters' results (seconds)
    and the CLOCK_MONOTONIC time it ended at."""
    best = (0.0, 0.0)
    for rc, out, _ in res:
        if rc == 0:
            f = dict(kv.split("=") for kv in out.split())
            best = max(best, (float(f["max"]), float(f["at"])))
    return best


def wait_count(path, at_least, g, timeout=120):
    """Waits until the counter file holds at least at_least (the run is
    under way); fails if the programs all ended or time ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = read_counter(path)
        if n is not None and n >= at_least:
            return n
        if all(p.poll() is not None for p in g.procs):
            raise AssertionError("the counters ended at %s before reaching %d:\n%s"
                                 % (n, at_least, g.describe()))
        time.sleep(0.02)
    raise AssertionError("the counter did not reach %d in %d s" % (at_least, timeout))


def rewrite_initial(path):
    sys.path.insert(0, os.path.dirname(workload("rewrite_turns.py")))
    import rewrite_turns
    with open(path, "wb") as f:
        f.write(rewrite_turns.contents(0))


def rewrite_runs(dir_a, dir_b, last, limit=240):
    """rewrite_turns.py with role 0 in dir_a and role 1 in dir_b, each
    giving up after `limit` seconds; returns [(exit status, counts)]."""
    env = dict(os.environ, REWRITE_LIMIT=str(limit))
    g = Group([[PYTHON, workload("rewrite_turns.py"), "0", str(last),
                os.path.join(dir_a, "big.dat")],
               [PYTHON, workload("rewrite_turns.py"), "1", str(last),
                os.path.join(dir_b, "big.dat")]], dir_a, env=env)
    try:
        res = g.wait(limit + 60)
    finally:
        g.close()
    out = []
    for rc, stdout, stderr in res:
        try:
            counts = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            counts = {"error": stderr.strip()[-800:]}
        out.append((rc, counts))
    return out


def prepare(src):
    os.makedirs(os.path.join(src, "s"), exist_ok=True)
    write_file(os.path.join(src, "counter.txt"), "0")
    write_file(os.path.join(src, "s", "counter.txt"), "0")


def outcome(src):
    return (read_counter(os.path.join(src, "counter.txt")),
            read_counter(os.path.join(src, "s", "counter.txt")))


STALE_HOLDER = r"""
import os, sys, time
f = open(sys.argv[1], "r+")
f.write("A1"); f.flush()
print("held", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
try:
    f.seek(0); f.write("A-late"); f.flush(); os.fsync(f.fileno())
    print("accepted", flush=True)
except OSError as e:
    print("refused %d" % e.errno, flush=True)
"""


class WithZooKeeper:
    """A test class's own ZooKeeper, and mounts that join it (a mixin
    before the TestCase base)."""
    TIMEOUT = 4      # -o cluster_timeout

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.zk = ZooKeeper()

    @classmethod
    def tearDownClass(cls):
        cls.zk.stop()
        super().tearDownClass()

    def opts(self, path, timeout=None):
        return ["cluster=127.0.0.1:%d/%s" % (self.zk.port, path),
                "cluster_timeout=%d" % (timeout or self.TIMEOUT)]

    def two_mounts(self, src, opts):
        a = Mount(opts, source=src)
        b = Mount(opts, source=src)
        a.start()
        self.addCleanup(a.close, False)
        b.start()
        self.addCleanup(b.close, False)
        return a, b


class ClusterTests(WithZooKeeper, LockfsTestCase):

    def test_counters_exact_across_two_mounts(self):
        """5 seed counters x 100 on each mount = 1000, 4 shell loops x 25 on
        each = 200: the two daemons share one lock table."""
        src = self.make_tempdir()
        prepare(src)
        a, b = self.two_mounts(src, self.opts("exact"))
        res, secs = run_group(workloads([a.mnt, b.mnt]), a.mnt, 300)
        errs = "\n".join("  exit %s: %s" % (rc, err.strip()[-400:]) for rc, _, err in res if rc)
        print("\n  two mounts, one cluster: %.1f s" % secs, file=sys.stderr)
        self.assertEqual(crashes(res), 0, "copies failed:\n" + errs)
        self.assertEqual(outcome(src), (1000, 200))
        a.close()
        b.close()
        self.assertEqual((a.returncode, b.returncode), (0, 0),
                         a.stderr_text + b.stderr_text)

    def test_updates_lost_without_the_cluster(self):
        """The same workload loses updates on the plain directory and on two
        mounts without the cluster (two lock tables): what the cluster is for."""
        expected = (1000, 200)
        plain = None
        for attempt in range(3):
            d = self.make_tempdir()
            prepare(d)
            res, _ = run_group(workloads([d, d]), d, 300)
            if outcome(d) != expected or crashes(res):
                plain = outcome(d)
                break
        self.assertIsNotNone(plain, "the plain directory never lost an update")
        apart = None
        for attempt in range(3):
            src = self.make_tempdir()
            prepare(src)
            with Mount([], source=src) as a, Mount([], source=src) as b:
                res, _ = run_group(workloads([a.mnt, b.mnt]), a.mnt, 300)
            if outcome(src) != expected or crashes(res):
                apart = outcome(src)
                break
        self.assertIsNotNone(apart, "two mounts without the cluster never lost an update")
        print("\n  plain: %s, two mounts without cluster: %s (of %s)" % (plain, apart, expected),
              file=sys.stderr)

    def test_idle_host_keeps_its_lock(self):
        """Host-level caching: once a mount holds a file's cluster lock, a
        counter on that mount alone sends ZooKeeper nothing per open (only
        the session's pings)."""
        src = self.make_tempdir()
        prepare(src)
        a, b = self.two_mounts(src, self.opts("cache"))
        # The first open takes the cluster lock.
        res, _ = run_group([in_dir(a.mnt, PYTHON, workload("counter_rmw.py"), "1")], a.mnt, 60)
        self.assertEqual(crashes(res), 0)
        before = self.zk.received()
        t0 = time.monotonic()
        res, secs = run_group([in_dir(a.mnt, PYTHON, workload("counter_rmw.py"), "200")
                               for _ in range(2)], a.mnt, 120)
        received = self.zk.received() - before
        self.assertEqual(crashes(res), 0)
        self.assertEqual(outcome(src)[0], 401)
        # 800 opens; the pings of two sessions are a few per second each.
        pings = 2 * 8 * (time.monotonic() - t0 + 1)
        print("\n  800 opens on one mount: %d ZooKeeper packets in %.1f s" % (received, secs),
              file=sys.stderr)
        self.assertLess(received, pings, "ZooKeeper heard about every open")

    def test_zookeeper_restart_mid_run(self):
        """The server is killed and restarted (same data, so sessions live
        on) while counters run on both mounts: the daemons wait for it
        (their cached locks declared lost by their own clocks if the outage
        lasts), the counter ends exact, and no increment takes longer than
        the bound docs/cluster.md gives: the outage, plus the session
        timeout, plus a reconnection. The session timeout is longer than a
        restart takes (a JVM starting on a loaded machine): past it the
        daemons' clocks would fence the writes in flight with EIO, by
        design, and the counters would die of it."""
        timeout = 8
        src = self.make_tempdir()
        prepare(src)
        a, b = self.two_mounts(src, self.opts("restart", timeout=timeout))
        copies, n = 3, 300
        total = 2 * copies * n
        counter = os.path.join(src, "counter.txt")
        g = Group(timed_counters([a.mnt, b.mnt], copies, n), a.mnt)
        try:
            at_kill = wait_count(counter, 150, g)
            t_kill = time.monotonic()
            self.zk.kill()
            time.sleep(DOWN_S)
            self.zk.start()
            t_back = time.monotonic()
            at_back = read_counter(counter)
            res = g.wait(300)
        finally:
            g.close()
        errs = "\n".join("  exit %s: %s" % (rc, err.strip()[-400:]) for rc, _, err in res if rc)
        self.assertEqual(crashes(res), 0, "copies failed:\n" + errs)
        self.assertEqual(outcome(src)[0], total)
        outage = t_back - t_kill
        longest, ended = longest_increment(res)
        # The restart fell in the middle of the run: an increment waited
        # while the server was surely down and ended after it was back.
        # (Not "the counter was short of its total when the server served
        # again": on a loaded machine this process may see the server
        # back seconds after the daemons did.)
        self.assertGreater(ended, t_kill + DOWN_S, "no increment waited for the server")
        print("\n  counter at %d of %d when the server was killed, %s when it served again "
              "%.1f s later; longest increment %.2f s, ended %.2f s after the kill"
              % (at_kill, total, at_back, outage, longest, ended - t_kill), file=sys.stderr)
        self.assertLessEqual(longest, outage + timeout + RECONNECT_S)

    def test_ensemble_member_killed_mid_run(self):
        """A three-server ensemble; the leader is killed (kill -9 of its
        pid) in the middle of a counter run on two mounts. Every client
        loses its connection (followers drop theirs until a new leader is
        elected); the counter ends exact and no increment takes longer than
        the session timeout plus a reconnection."""
        ens = Ensemble()
        try:
            ens.start()
            src = self.make_tempdir()
            prepare(src)
            opts = ["cluster=%s/ensemble" % ens.servers, "cluster_timeout=%d" % self.TIMEOUT]
            copies, n = 3, 300
            total = 2 * copies * n
            counter = os.path.join(src, "counter.txt")
            with Mount(opts, source=src) as a, Mount(opts, source=src) as b:
                g = Group(timed_counters([a.mnt, b.mnt], copies, n), a.mnt)
                try:
                    at_kill = wait_count(counter, 150, g)
                    victim = ens.leader()
                    self.assertIsNotNone(victim, "no server of the ensemble says it leads")
                    t_kill = time.monotonic()
                    ens.kill(victim)
                    res = g.wait(120)
                finally:
                    g.close()
                others = [ens.mode(i) for i in range(3) if i != victim]
        finally:
            ens.stop()
        errs = "\n".join("  exit %s: %s" % (rc, err.strip()[-400:]) for rc, _, err in res if rc)
        self.assertEqual(crashes(res), 0, "copies failed:\n" + errs)
        self.assertEqual(outcome(src)[0], total)
        self.assertIn("leader", others, "the two servers left did not elect a leader")
        longest, ended = longest_increment(res)
        print("\n  counter at %d of %d when the leader (server %d) was killed; longest "
              "increment %.2f s, ended %.2f s after the kill"
              % (at_kill, total, victim + 1, longest, ended - t_kill), file=sys.stderr)
        self.assertGreater(ended, t_kill, "the longest increment came before the kill")
        self.assertLessEqual(longest, self.TIMEOUT + RECONNECT_S)

    def test_1mib_rewritten_in_turns(self):
        """Programs on the two mounts take turns rewriting a 1 MiB file, a
        distinct pattern each round, each reading the other's round back
        through its own mount: every read is whole and the last write."""
        src = self.make_tempdir()
        rewrite_initial(os.path.join(src, "big.dat"))
        a, b = self.two_mounts(src, self.opts("rewrite"))
        last = 40
        for role, (rc, counts) in enumerate(rewrite_runs(a.mnt, b.mnt, last)):
            self.assertEqual(rc, 0, "role %d: %s" % (role, counts))
            self.assertEqual((counts["torn"], counts["stale"]), (0, 0),
                             "role %d: %s" % (role, counts))
            self.assertEqual((counts["written"], counts["theirs"]), (last // 2, last // 2),
                             "role %d: %s" % (role, counts))
        sys.path.insert(0, os.path.dirname(workload("rewrite_turns.py")))
        import rewrite_turns
        with open(os.path.join(src, "big.dat"), "rb") as f:
            self.assertEqual(rewrite_turns.round_of(f.read()), last)

    def test_1mib_rewrite_torn_without_the_cluster(self):
        """The same turns on the plain directory, and on two mounts without
        the cluster, read files half-written (a rewrite truncates first)."""
        found = {}
        # Torn reads need the reader to fall inside a rewrite: on a quiet
        # machine that may take a few runs of 40 rounds.
        attempts = 8
        for name in ("plain", "apart"):
            for attempt in range(attempts):
                src = self.make_tempdir()
                rewrite_initial(os.path.join(src, "big.dat"))
                if name == "plain":
                    out = rewrite_runs(src, src, 40, limit=60)
                else:
                    with Mount([], source=src) as a, Mount([], source=src) as b:
                        out = rewrite_runs(a.mnt, b.mnt, 40, limit=60)
                bad = sum(c.get("torn", 0) + c.get("stale", 0) for _, c in out)
                if bad or any(rc for rc, _ in out):
                    found[name] = [c for _, c in out]
                    break
            self.assertIn(name, found, "%s: every read was whole in %d attempts" % (name, attempts))
        print("\n  plain: %s; two mounts without cluster: %s"
              % ([(c.get("torn"), c.get("stale")) for c in found["plain"]],
                 [(c.get("torn"), c.get("stale")) for c in found["apart"]]), file=sys.stderr)

    def stale_holder(self, holder_dir, writer_dir, src, pause=None):
        """A program on holder_dir holds f open for writing; (optionally the
        holder's daemon is paused;) a writer on writer_dir writes "B"; then
        the holder writes through its old descriptor. Returns (what the
        holder was told, seconds the writer waited, the file's contents)."""
        tmp = self.make_tempdir()
        go = os.path.join(tmp, "go")
        write_file(os.path.join(src, "f"), "0")
        holder = subprocess.Popen([PYTHON, "-c", STALE_HOLDER, os.path.join(holder_dir, "f"), go],
                                  stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "held")
            if pause:
                pause[0]()
            t0 = time.monotonic()
            try:
                w = subprocess.run(["bash", "-c", 'printf B > "$1"', "_",
                                    os.path.join(writer_dir, "f")], timeout=20)
            finally:
                if pause:
                    pause[1]()
            waited = time.monotonic() - t0
            self.assertEqual(w.returncode, 0)
            time.sleep(0.2)
            write_file(go, "")
            told = holder.stdout.readline().strip()
            holder.wait(20)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            holder.stdout.close()
        with open(os.path.join(src, "f")) as f:
            return told, waited, f.read()

    def test_stale_holder_is_fenced(self):
        """The daemon whose program holds a file is stopped (SIGSTOP) past
        its session timeout; the other mount's writer gets the file and
        writes. After SIGCONT the stale holder's write through its old
        descriptor fails with EIO and the file keeps the other side's data.
        On the plain directory the same stale write lands over it."""
        plain = self.make_tempdir()
        told, _, content = self.stale_holder(plain, plain, plain)
        self.assertEqual((told, content), ("accepted", "A-late"))

        src = self.make_tempdir()
        a, b = self.two_mounts(src, self.opts("fence", timeout=2))
        told, waited, content = self.stale_holder(
            a.mnt, b.mnt, src,
            pause=(lambda: os.kill(a.pid, signal.SIGSTOP), lambda: os.kill(a.pid, signal.SIGCONT)))
        print("\n  the other mount wrote after %.1f s; the stale holder was told %r" %
              (waited, told), file=sys.stderr)
        self.assertEqual(told, "refused %d" % errno.EIO)
        self.assertEqual(content, "B")
        # The writer got the file once the stopped daemon's session was
        # gone: the session timeout, not the 20 s limit.
        self.assertLess(waited, 2 + 3)
        # lockstat counts the loss and the refused write (Python's file
        # may try its buffered write again at exit: at least one).
        r = subprocess.run([lockstat_bin(), "-J", "--stats", a.mnt], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)["lockfs"][0]["cluster"]["stats"]
        self.assertGreaterEqual(st["losses"], 1, st)
        self.assertGreaterEqual(st["fenced_writes"], 1, st)
        # The mount that lost its lock recovers: it takes the file again.
        write_file(os.path.join(a.mnt, "f"), "A2")
        with open(os.path.join(b.mnt, "f")) as f:
            self.assertEqual(f.read(), "A2")
        a.close()
        self.assertIn("lost", a.stderr_text)

    def test_nonblocking_reads_of_files_another_host_caches(self):
        """grep -r opens every file with O_NONBLOCK. Files the other mount
        wrote and keeps cached are read after a recall, not refused; a file
        a program on the other mount is writing is refused with EAGAIN
        after a bounded wait (LK_CLUSTER_NONBLOCK_NS, 1 s)."""
        src = self.make_tempdir()
        a, b = self.two_mounts(src, self.opts("peek"))
        os.makedirs(os.path.join(a.mnt, "t"))
        for i in range(20):
            write_file(os.path.join(a.mnt, "t", "f%d" % i), "line %d\n" % i)
        r = subprocess.run(["grep", "-r", "line 1", os.path.join(b.mnt, "t")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stderr, "")
        self.assertEqual(len(r.stdout.splitlines()), 11, r.stdout)   # f1, f10..f19
        # Busy on the other host: a writer holds f0 open there (read-write:
        # appends take no lock, docs/semantics.md).
        with open(os.path.join(a.mnt, "t", "f0"), "r+") as held:
            held.seek(0, os.SEEK_END)
            held.write("more\n")
            held.flush()
            t0 = time.monotonic()
            r = subprocess.run(["grep", "-r", "more", os.path.join(b.mnt, "t")],
                               capture_output=True, text=True, timeout=60)
            waited = time.monotonic() - t0
        self.assertIn("Resource temporarily unavailable", r.stderr, (r.returncode, r.stdout))
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertGreater(waited, 0.9)     # waited for the cluster, bounded
        self.assertLess(waited, 10)
        # Closed: the next grep reads it.
        r = subprocess.run(["grep", "-r", "more", os.path.join(b.mnt, "t")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_killed_daemon_frees_its_files(self):
        """kill -9 of the daemon whose program holds a file, with a waiter
        on the other mount: the waiter gets the file within the session
        timeout plus 1 s, and every write the holder was told was done is
        in the file."""
        src = self.make_tempdir()
        write_file(os.path.join(src, "f"), "")
        a = Mount(self.opts("crash", timeout=2), source=src, check_exit=False)
        a.start()
        self.addCleanup(a.close, False)
        b = Mount(self.opts("crash", timeout=2), source=src)
        b.start()
        self.addCleanup(b.close, False)
        holder = subprocess.Popen(
            [PYTHON, "-c", "import os, sys, time\n"
             "f = open(sys.argv[1], 'r+')\n"
             "for i in range(5):\n"
             "    f.write('line %d\\n' % i); f.flush()\n"
             "print('held', flush=True)\n"
             "time.sleep(120)\n", os.path.join(a.mnt, "f")],
            stdout=subprocess.PIPE, text=True)
        waiter = None
        try:
            self.assertEqual(holder.stdout.readline().strip(), "held")
            waiter = subprocess.Popen(
                [PYTHON, "-c", "import sys, time\n"
                 "f = open(sys.argv[1], 'r+')\n"
                 "print(time.monotonic(), flush=True)\n"
                 "print(f.read(), end='', flush=True)\n", os.path.join(b.mnt, "f")],
                stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            self.assertIsNone(waiter.poll(), "the other mount's open did not wait")
            t0 = time.monotonic()
            os.kill(a.pid, signal.SIGKILL)
            out, _ = waiter.communicate(timeout=30)
        finally:
            holder.kill()
            holder.wait()
            holder.stdout.close()
            if waiter and waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
        lines = out.splitlines()
        served = float(lines[0]) - t0
        print("\n  the waiter on the other mount got the file %.1f s after kill -9" % served,
              file=sys.stderr)
        self.assertLess(served, 2 + 1)
        self.assertEqual(lines[1:], ["line %d" % i for i in range(5)])

    def test_bad_cluster_options(self):
        """A bad -o cluster or cluster_timeout is refused before mounting,
        with a message that says what is wrong."""
        for opts, words in [(["cluster=zk1/lockfs"], "HOST:PORT"),
                            (["cluster=zk1:99999/lockfs"], "port"),
                            (["cluster=zk1:2181/a//b"], "PATH"),
                            (["cluster=127.0.0.1:1/x", "cluster_timeout=0"], "cluster_timeout")]:
            src, mnt = self.make_tempdir(), self.make_tempdir()
            r = subprocess.run([harness.lockfs_bin(), "-f", src, mnt, "-o", ",".join(opts)],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, opts)
            self.assertIn(words, r.stderr, opts)
            self.assertNotMounted(mnt)

    def test_unreachable_zookeeper(self):
        """No server answers: the daemon gives up after the session timeout,
        says why, and leaves no mount behind."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        src, mnt = self.make_tempdir(), self.make_tempdir()
        t0 = time.monotonic()
        r = subprocess.run([harness.lockfs_bin(), "-f", src, mnt, "-o",
                            "cluster=127.0.0.1:%d/x,cluster_timeout=1" % port],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ZooKeeper", r.stderr)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertNotMounted(mnt)


class ClusterLockstatTests(WithZooKeeper, LockstatCase):
    """lockstat on two mounts of one cluster."""

    def lock_of(self, doc, path):
        """The cluster record of path in a mount's JSON object, or None."""
        found = [k for k in doc["cluster"]["locks"] if k["path"] == path]
        self.assertLessEqual(len(found), 1, doc)
        return found[0] if found else None

    def wait_lock(self, m, path, pred, what, *args):
        """Polls m's lockstat until path's cluster record satisfies pred."""
        def ok(doc):
            k = self.lock_of(doc, path)
            return k is not None and pred(k)
        return self.lock_of(self.poll(m, ok, what, *args), path)

    def counters(self, m):
        return self.mount_doc(m, "--stats")["cluster"]["stats"]

    def test_holder_token_and_remote_waiters(self):
        """The lock moves from a to b: each side shows which daemon holds it
        (host and pid), in which state, with which fencing token (larger
        after the move), and the daemon waiting behind the holder; the
        counters count the recall and ZooKeeper's requests."""
        src = self.make_tempdir()
        write_file(os.path.join(src, "f.txt"), "0")
        a, b = self.two_mounts(src, self.opts("lockstat"))
        host = socket.gethostname()
        for m in (a, b):
            doc = self.mount_doc(m)
            self.assertEqual(doc["cluster"]["spec"], "127.0.0.1:%d/lockstat" % self.zk.port)
            self.assertEqual(doc["cluster"]["locks"], [])
        start = {m: self.counters(m) for m in (a, b)}

        # A program on a holds the file: a's daemon holds the cluster lock.
        holder = self.hold(a, "f.txt")
        ka = self.lock_of(self.mount_doc(a), "f.txt")
        self.assertEqual((ka["state"], ka["host"], ka["daemon_pid"], ka["remote_waiters"]),
                         ("held", host, a.pid, 0), ka)
        t1 = ka["token"]
        self.assertIsInstance(t1, int)
        self.assertGreater(t1, 0)

        # A program on b waits: b queues behind a, a is being recalled.
        waiter = self.spawn(OPEN, "f.txt", "w", cwd=b.mnt)
        ka = self.wait_lock(a, "f.txt", lambda k: k["remote_waiters"] == 1, "a remote waiter")
        self.assertEqual((ka["state"], ka["daemon_pid"], ka["token"]), ("recalled", a.pid, t1))
        kb = self.wait_lock(b, "f.txt", lambda k: k["daemon_pid"] == a.pid, "a as the holder")
        self.assertEqual((kb["state"], kb["host"], kb["token"], kb["remote_waiters"]),
                         ("acquiring", host, t1, 0), kb)
        # The same in the table.
        head, rows = self.table("--cluster", a.mnt)
        self.assertEqual(head, ["PATH", "STATE", "HOST", "DAEMON", "TOKEN", "REMOTE-WAITERS"])
        self.assertEqual(rows, [{"PATH": "f.txt", "STATE": "recalled", "HOST": host,
                                 "DAEMON": str(a.pid), "TOKEN": str(t1), "REMOTE-WAITERS": "1"}])
        print("\n[lockstat --cluster while b waits]\n" + self.ok("--cluster", a.mnt, b.mnt),
              file=sys.stderr)

        # a lets go: b gets the file under a larger token; once its program
        # closed, b keeps the lock cached.
        self.release(holder)
        self.assertEqual(holder.wait(timeout=30), 0)
        self.finish(waiter)
        kb = self.wait_lock(b, "f.txt", lambda k: k["state"] == "cached", "the lock cached")
        self.assertEqual((kb["host"], kb["daemon_pid"], kb["remote_waiters"]),
                         (host, b.pid, 0), kb)
        t2 = kb["token"]
        self.assertGreater(t2, t1)
        # a saw who took it; it follows the file no more.
        ka = self.lock_of(self.mount_doc(a), "f.txt")
        self.assertEqual((ka["state"], ka["host"], ka["daemon_pid"], ka["token"],
                          ka["remote_waiters"]), ("remote", host, b.pid, t2, None), ka)

        # The counters: a granted once and recalled once, b granted once.
        end = {m: self.counters(m) for m in (a, b)}
        delta = {m: {k: end[m][k] - start[m][k] for k in end[m]} for m in (a, b)}
        self.assertEqual((delta[a]["grants"], delta[a]["recalls"], delta[a]["losses"]),
                         (1, 1, 0), delta[a])
        self.assertEqual((delta[b]["grants"], delta[b]["recalls"], delta[b]["losses"]),
                         (1, 0, 0), delta[b])
        self.assertEqual((end[a]["fenced_writes"], end[b]["fenced_writes"]), (0, 0))
        # a: its create, listings, the read of b's znode, the delete; b
        # the same but no delete.
        self.assertGreaterEqual(delta[a]["requests"], 4, delta[a])
        self.assertGreaterEqual(delta[b]["requests"], 3, delta[b])
        out = self.ok("--stats", a.mnt, b.mnt)
        self.assertIn("ZK-REQUESTS GRANTS RECALLS LOSSES FENCED-WRITES", out)
        print("[lockstat --stats after the move]\n" + out, file=sys.stderr)
        print("\n  ZooKeeper requests for one move, with pings: a %d, b %d"
              % (delta[a]["requests"], delta[b]["requests"]), file=sys.stderr)

    def test_lockstat_asks_zookeeper_nothing(self):
        """lockstat reads what the daemon knows: with 30 files cached, ten
        snapshots cost ZooKeeper no request beyond the session's pings."""
        src = self.make_tempdir()
        a, b = self.two_mounts(src, self.opts("quiet"))
        for i in range(30):
            write_file(os.path.join(a.mnt, "g%02d" % i), "x")
        self.wait_lock(a, "g29", lambda k: k["state"] == "cached", "g29 cached")
        self.assertEqual(len(self.mount_doc(a)["cluster"]["locks"]), 30)
        before, t0 = self.counters(a)["requests"], time.monotonic()
        for _ in range(10):
            self.assertEqual(len(self.mount_doc(a, "--cluster")["cluster"]["locks"]), 30)
        sent = self.counters(a)["requests"] - before
        # A ping every sixth of the session timeout.
        pings = (time.monotonic() - t0) / (self.TIMEOUT / 6) + 2
        self.assertLessEqual(sent, pings, "lockstat made the daemon ask ZooKeeper")

    def test_nothing_new_without_the_cluster(self):
        """Without -o cluster, lockstat shows nothing of it."""
        with Mount([]) as m:
            write_file(m.path("f.txt"), "x")
            holder = self.hold(m, "f.txt")
            self.assertNotIn("cluster", self.mount_doc(m, "--stats"))
            self.assertNotIn("ZK-REQUESTS", self.ok("--stats", m.mnt))
            self.assertEqual(self.ok("--cluster", m.mnt).splitlines(),
                             ["PATH STATE HOST DAEMON TOKEN REMOTE-WAITERS"])
            self.release(holder)


if __name__ == "__main__":
    unittest.main()

