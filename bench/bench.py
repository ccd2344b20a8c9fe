#!/usr/bin/python3
"""The lockfs benchmark driver (run it through bench/run, which builds the
binaries, prepares a scratch directory and always cleans up).

    bench.py --work DIR --bin DIR --lockfs PATH [--quick] [--only LIST]

Every workload is measured against a baseline in the same run: the runs of
the variants being compared are interleaved (one run of each, then the next
round), so a slow spell of a shared machine hits all of them alike, and each
ratio is taken within one round. Results go to bench/out/results.json;
report.py turns them into docs/benchmarks.md.
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
LEASE_S = 0.25          # lockfs's default lease; see settle()
ZK_JAR = "/usr/share/java/zookeeper.jar"    # Debian's zookeeper package
CLK_TCK = os.sysconf("SC_CLK_TCK")

WORKLOADS = ["counter", "handoff", "meta", "fio", "grep", "readers", "hold", "waiters",
             "lease", "requests", "tree", "cluster", "inodes1m", "profile"]
# Run only when named in --only: they take minutes and a million files.
OPT_IN = ["inodes1m"]
TARGETS = ["plain", "pll", "lockfs-none", "lockfs"]


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.bin = os.path.abspath(args.bin)
        self.lockfs = os.path.abspath(args.lockfs)
        self.pll = os.path.join(self.bin, "passthrough_ll")
        self.quick = args.quick
        self.runs = 3 if args.quick else 5
        self.daemons = []
        self.commands = {}
        self.zk_port = None         # the cluster workload's ZooKeeper, while it runs
        self.results_path = args.results
        self.results = {}
        if args.merge and os.path.exists(self.results_path):
            with open(self.results_path) as f:
                self.results = json.load(f)
        self.run_id = datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
        self.logdir = os.path.join(self.work, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.policy_none = os.path.join(self.work, "none.policy")
        with open(self.policy_none, "w") as f:
            f.write("# every file passes through without a lock\n** none\n")

    # ---- bookkeeping -----------------------------------------------------

    def note_cmd(self, key, argv):
        """Remembers a command line for the report's reproduction section,
        with the scratch paths replaced by placeholders."""
        text = " ".join(str(a) for a in argv)
        text = text.replace(self.work, "$WORK").replace(self.bin, "bench/out")
        text = text.replace(ROOT + "/", "")
        if self.zk_port:
            text = text.replace(f"127.0.0.1:{self.zk_port}", "127.0.0.1:$ZKPORT")
        self.commands.setdefault(key, text)

    def log(self, msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def save(self):
        self.results.setdefault("commands", {}).update(self.commands)
        tmp = self.results_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.results, f, indent=1, sort_keys=True)
        os.replace(tmp, self.results_path)

    def section(self, name, data):
        data["run_id"] = self.run_id
        data["quick"] = self.quick
        self.results[name] = data
        self.save()

    # ---- daemons ---------------------------------------------------------

    def register(self, kind, value):
        # bench/run's EXIT trap reads these lists, so that a crash of this
        # driver still unmounts and stops exactly what it started.
        with open(os.path.join(self.work, kind), "a") as f:
            f.write(f"{value}\n")

    def mount(self, kind, src, mnt, debug=False, extra=()):
        os.makedirs(src, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        if is_mounted(mnt):
            raise RuntimeError(f"{mnt} is already a mount point")
        if kind == "pll":
            argv = [self.pll, "-f"] + (["-d"] if debug else []) + ["-o", f"source={src}", mnt]
        elif kind in ("lockfs", "lockfs-none"):
            argv = [self.lockfs, src, mnt, "-f"]
            if kind == "lockfs-none":
                argv += ["-o", f"policy={self.policy_none}"]
            if debug:
                argv += ["-o", "fuse_debug"]
        else:
            raise ValueError(kind)
        argv += list(extra)
        cluster = " (cluster)" if any("cluster=" in str(a) for a in extra) else ""
        self.note_cmd(f"mount {kind}{' (debug)' if debug else ''}{cluster}", argv)
        logpath = os.path.join(self.logdir, f"{os.path.basename(mnt)}.{len(self.daemons)}.log")
        logf = open(logpath, "w")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, cwd="/")
        logf.close()
        self.register("pids", proc.pid)
        self.register("mounts", mnt)
        d = Daemon(kind, src, mnt, proc, logpath)
        self.daemons.append(d)
        deadline = time.monotonic() + 15
        while not is_mounted(mnt):
            if proc.poll() is not None:
                self.daemons.remove(d)
                raise RuntimeError(f"{kind} exited with {proc.returncode} before mounting: "
                                   + open(logpath).read()[-2000:])
            if time.monotonic() > deadline:
                self.unmount(d)
                raise RuntimeError(f"{kind} did not mount {mnt}")
            time.sleep(0.02)
        # The first request waits for INIT; make sure it is done.
        os.stat(mnt)
        return d

    def unmount(self, d):
        for attempt in range(50):
            if not is_mounted(d.mnt):
                break
            r = subprocess.run(["fusermount3", "-u", d.mnt], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["fusermount3", "-uz", d.mnt], capture_output=True)
        try:
            d.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        if d in self.daemons:
            self.daemons.remove(d)

    def unmount_all(self):
        for d in list(self.daemons):
            try:
                self.unmount(d)
            except Exception as e:          # keep going: unmount the rest
                print(f"unmount {d.mnt}: {e}", file=sys.stderr)

    def settle(self, lease_s=LEASE_S):
        """Waits out any lease left behind by a previous command. A reader
        that exits hands its lease to its parent, this driver, for the
        rest of the lease; the next timed run must not start by waiting
        for it, nor by joining it (the driver's children join what it
        holds), and the same pause is taken before every target's run.
        lease_s: the lease of the mount in use (the lease sweep mounts
        lockfs with other leases)."""
        time.sleep(lease_s + 0.05)

    # ---- the four targets ------------------------------------------------

    def setup_targets(self, prepare, names=TARGETS):
        """Creates one source directory per target (of `names`, by default
        all four), fills each with prepare(src), and mounts the FUSE
        targets among them. Returns {target: (dir to work in, source dir,
        daemon or None)}."""
        t = {}
        for name in names:
            src = os.path.join(self.work, f"{name}-src")
            shutil.rmtree(src, ignore_errors=True)
            os.makedirs(src)
            prepare(src)
        if "plain" in names:
            t["plain"] = (os.path.join(self.work, "plain-src"), os.path.join(self.work, "plain-src"),
                          None)
        for name in (n for n in TARGETS[1:] if n in names):
            src = os.path.join(self.work, f"{name}-src")
            mnt = os.path.join(self.work, f"{name}-mnt")
            d = self.mount(name, src, mnt)
            t[name] = (mnt, src, d)
        return t

    def daemon_state(self, d):
        """What a failure report needs to know about the daemon behind it:
        whether it still runs, whether its mount is still there, and the
        end of its log."""
        if d is None:
            return ""
        try:
            with open(d.log) as f:
                tail = f.read()[-1500:]
        except OSError as e:
            tail = str(e)
        return (f"\n[{d.kind} daemon pid {d.proc.pid}: exit status {d.proc.poll()}, "
                f"mounted {is_mounted(d.mnt)}; log tail:]\n{tail}")

    def teardown_targets(self, t):
        for name, (_, src, d) in t.items():
            if d:
                self.unmount(d)
        for name in t:
            shutil.rmtree(os.path.join(self.work, f"{name}-src"), ignore_errors=True)

    # ---- 1. counter ------------------------------------------------------

    def counter_once(self, variant, dirpath, srcpath, n, iters, daemon=None, dirs=None):
        """n workers of iters increments on dirpath/c, all started at
        once; dirs, if given, names each worker's directory instead (the
        same file through several mounts)."""
        with open(os.path.join(srcpath, "c"), "w") as f:
            f.write("0")
        self.settle()
        r, w = os.pipe()
        procs = []
        for d in dirs or [dirpath] * n:
            argv = [PY, os.path.join(HERE, "counter.py"), variant, os.path.join(d, "c"), str(iters)]
            self.note_cmd(f"counter {variant}", argv)
            procs.append(subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, cwd=self.work))
        os.close(r)
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                os.close(w)
                raise RuntimeError(f"counter worker failed: {line} {p.stderr.read()}")
        os.close(w)
        starts, ends, torn = [], [], 0
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"counter worker exited {p.returncode}: {err}"
                                   + self.daemon_state(daemon))
            s, e, t = out.split()
            starts.append(float(s))
            ends.append(float(e))
            torn += int(t)
        with open(os.path.join(srcpath, "c")) as f:
            text = f.read()
        try:
            final = int(text)
        except ValueError:
            final = None
        done = n * iters - torn
        wall = max(ends) - min(starts)
        return {"rate": done / wall, "wall": wall, "final": final, "attempted": n * iters,
                "done": done, "torn": torn,
                "lost": (done - final) if final is not None else None}

    def bench_counter(self):
        total = 400 if self.quick else 2000
        ns = [1, 2, 4, 10]
        variants = {"lockfs": "bare", "plain": "bare", "filelock": "filelock",
                    "portalocker": "portalocker"}

        def prep(src):
            pass
        t = self.setup_targets(prep)
        res = {v: {str(n): [] for n in ns} for v in variants}
        try:
            for rep in range(self.runs):
                for n in ns:
                    iters = total // n
                    for v in rotated(variants, rep):
                        script = variants[v]
                        target = "lockfs" if v == "lockfs" else "plain"
                        dirpath, src, daemon = t[target]
                        r = self.counter_once(script, dirpath, src, n, iters, daemon)
                        res[v][str(n)].append(r)
                        self.log(f"counter rep {rep + 1} N={n} {v}: {r['rate']:.0f}/s "
                                 f"final {r['final']} of {r['done']} torn {r['torn']}")
        finally:
            self.teardown_targets(t)
        self.section("counter", {"total": total, "ns": ns, "runs": res})

    # ---- 2. handoff ------------------------------------------------------

    def bench_handoff(self):
        want = 300 if self.quick else 2000
        t = self.setup_targets(lambda src: None)
        res = {"lockfs": [], "flock": []}
        try:
            for rep in range(self.runs):
                for mode, target in rotated((("lockfs", "lockfs"), ("flock", "plain")), rep):
                    d = t[target][0]
                    self.settle()
                    argv = [os.path.join(self.bin, "handoff"), "-n", str(want),
                            "open" if mode == "lockfs" else "flock",
                            os.path.join(d, "handoff.dat")]
                    self.note_cmd(f"handoff {mode}", argv)
                    r = kv(run_out(argv))
                    res[mode].append(r)
                    self.log(f"handoff rep {rep + 1} {mode}: p50 {r['p50'] / 1000:.1f} us "
                             f"p99 {r['p99'] / 1000:.1f} us ({r['handoffs']} handoffs, "
                             f"{r['again']} re-acquired)")
        finally:
            self.teardown_targets(t)
        self.section("handoff", {"handoffs_per_run": want, "runs": res})

    # ---- 3. metadata -----------------------------------------------------

    def bench_meta(self):
        secs = 0.4 if self.quick else 1.0
        ops = ["openclose", "trunc", "stat"]
        t = self.setup_targets(lambda src: None)
        res = {op: {tg: [] for tg in TARGETS} for op in ops}
        try:
            for rep in range(self.runs):
                for op in ops:
                    for tg in rotated(TARGETS, rep):
                        d, _, daemon = t[tg]
                        self.settle()
                        argv = [os.path.join(self.bin, "metarate"), "-t", str(secs), d, op]
                        self.note_cmd(f"meta {op}", argv)
                        cpu0 = daemon.cpu_ticks() if daemon else None
                        r = kv(run_out(argv))
                        if daemon:
                            r["daemon_cpu_us"] = ((daemon.cpu_ticks() - cpu0) / CLK_TCK * 1e6
                                                  / r["ops"])
                        res[op][tg].append(r)
                    self.log(f"meta rep {rep + 1} {op}: " + ", ".join(
                        f"{tg} {res[op][tg][-1]['rate']:.0f}/s" for tg in TARGETS))
        finally:
            self.teardown_targets(t)
        self.section("meta", {"secs": secs, "ops": ops, "runs": res})

    # ---- 4. fio ----------------------------------------------------------

    def fio(self, key, directory, name, extra):
        argv = ["fio", "--name=" + name, "--directory=" + directory, "--ioengine=psync",
                "--direct=0", "--fallocate=none", "--output-format=json"] + extra
        self.note_cmd(key, argv)
        out = run_out(argv)
        job = json.loads(out[out.index("{"):])["jobs"][0]
        return job

    def prefault(self, size):
        """Writes and deletes a scratch file of `size` in the scratch
        directory, untimed. On this VM, page cache memory that was freed a
        while ago (drop_caches, deleted files) is slow to touch again: the
        first large write after it runs up to ten times slower, whichever
        target it goes to. Writing once first hands the next write memory
        that is ready, so the timed write measures the target."""
        self.fio("fio prefault", self.work, "prefault",
                 ["--rw=write", "--bs=1M", f"--size={size}", "--filename=prefault.dat"])
        os.unlink(os.path.join(self.work, "prefault.dat"))

    def bench_fio(self):
        seq = "128M" if self.quick else "1G"
        rsize = "64M" if self.quick else "256M"
        rio = "16M" if self.quick else "64M"
        can_drop = os.access("/proc/sys/vm/drop_caches", os.W_OK)

        def prep(src):
            with open(os.path.join(src, "rand.dat"), "wb") as f:
                block = bytes(range(256)) * 4096
                for _ in range(parse_size(rsize) // len(block)):
                    f.write(block)
        t = self.setup_targets(prep)
        jobs = ["seqwrite", "seqread_warm", "seqread_cold", "randread_warm"]
        res = {j: {tg: [] for tg in TARGETS} for j in jobs}
        try:
            for rep in range(self.runs):
                order = rotated(TARGETS, rep)
                # One phase at a time, so that each write follows the same
                # kind of step for every target (the page cache state left
                # by the step before changes write rates a lot here).
                for tg in order:
                    d = t[tg][0]
                    path = os.path.join(d, "seq.dat")
                    if os.path.exists(path):
                        os.unlink(path)
                    sync()
                    # Twice the size: a write through FUSE fills the mount's page
                    # cache and the source's.
                    self.prefault(f"{2 * parse_size(seq) // 2**20}M")
                    self.settle()
                    j = self.fio("fio seqwrite", d, "seqwrite",
                                 ["--rw=write", "--bs=1M", f"--size={seq}", "--filename=seq.dat"])
                    res["seqwrite"][tg].append(j["write"]["bw_bytes"] / 2**20)
                    sync()
                for tg in order:
                    # Warm: the file was just written and is read once more
                    # untimed, so every cache on the way holds it.
                    d = t[tg][0]
                    read_file(os.path.join(d, "seq.dat"))
                    self.settle()
                    j = self.fio("fio seqread warm", d, "seqread",
                                 ["--rw=read", "--bs=1M", f"--size={seq}", "--invalidate=0",
                                  "--filename=seq.dat"])
                    res["seqread_warm"][tg].append(j["read"]["bw_bytes"] / 2**20)
                for tg in order:
                    d = t[tg][0]
                    read_file(os.path.join(d, "rand.dat"))
                    self.settle()
                    j = self.fio("fio randread warm", d, "randread",
                                 ["--rw=randread", "--bs=4k", f"--size={rsize}", "--invalidate=0",
                                  f"--io_size={rio}", "--randrepeat=1", "--filename=rand.dat"])
                    res["randread_warm"][tg].append(j["read"]["iops"])
                for tg in order if can_drop else []:
                    d = t[tg][0]
                    drop_caches()
                    self.settle()
                    j = self.fio("fio seqread cold", d, "seqread",
                                 ["--rw=read", "--bs=1M", f"--size={seq}", "--filename=seq.dat"])
                    res["seqread_cold"][tg].append(j["read"]["bw_bytes"] / 2**20)
                self.log(f"fio rep {rep + 1}: " + "; ".join(
                    f"{jb} " + ", ".join(f"{tg} {res[jb][tg][-1]:.0f}" for tg in TARGETS
                                         if res[jb][tg]) for jb in jobs))
        finally:
            self.teardown_targets(t)
        self.section("fio", {"seq_size": seq, "rand_size": rsize, "rand_io": rio,
                             "cold": can_drop, "runs": res})

    # ---- 5. readers side by side -----------------------------------------

    GREP_VARIANTS = {
        # As people type it. GNU grep opens the files it finds while
        # recursing with O_NONBLOCK (so that a fifo cannot hang it).
        "plain": [],
        # The same with blocking opens: what reading every file costs when
        # the two greps wait for each other instead of skipping.
        "blocking": ["--devices=read"],
    }

    def grep_argv(self, d, variant="plain"):
        return (["grep", "-r", "-F", "-c"] + self.GREP_VARIANTS[variant]
                + ["needle-that-is-not-there", os.path.join(d, "tree")])

    def greps(self, argv, k, nfiles):
        """Runs k copies of grep at once; returns the wall time until the
        last exits and how many files they skipped in all. Their output
        goes to files: a grep blocked on a full pipe would keep its current
        file open (and locked) until this driver read the pipe."""
        outs = []
        for i in range(k):
            o = open(os.path.join(self.work, f"grep.{i}.out"), "w+")
            e = open(os.path.join(self.work, f"grep.{i}.err"), "w+")
            outs.append((o, e))
        t0 = time.monotonic()
        ps = [subprocess.Popen(argv, stdout=o, stderr=e) for o, e in outs]
        for p in ps:
            p.wait()
        wall = time.monotonic() - t0
        skipped = 0
        for p, (o, e) in zip(ps, outs):
            o.seek(0)
            e.seek(0)
            skipped += grep_skipped(subprocess.CompletedProcess(argv, p.returncode, o.read(), e.read()),
                                    nfiles)
            o.close()
            e.close()
        return wall, skipped

    def bench_grep(self):
        nfiles = 2000
        t = self.setup_targets(lambda src: make_tree(src, nfiles))
        res = {tg: {v: {"one": [], "two": [], "skipped_one": [], "skipped_two": []}
                    for v in self.GREP_VARIANTS} for tg in TARGETS}
        try:
            for tg in TARGETS:     # warm every cache once, untimed
                subprocess.run(self.grep_argv(t[tg][0]), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            for rep in range(self.runs):
                for v in self.GREP_VARIANTS:
                    for tg in rotated(TARGETS, rep):
                        argv = self.grep_argv(t[tg][0], v)
                        self.note_cmd(f"grep ({v})", argv)
                        r = res[tg][v]
                        for k, key in ((1, "one"), (2, "two")):
                            self.settle()
                            wall, skipped = self.greps(argv, k, nfiles)
                            r[key].append(wall)
                            r["skipped_" + key].append(skipped)
                    self.log(f"grep rep {rep + 1} ({v}): " + ", ".join(
                        f"{tg} {res[tg][v]['one'][-1] * 1000:.0f}/{res[tg][v]['two'][-1] * 1000:.0f} ms"
                        + (f" ({res[tg][v]['skipped_two'][-1]} skipped)"
                           if res[tg][v]['skipped_two'][-1] else "")
                        for tg in TARGETS))
        finally:
            self.teardown_targets(t)
        self.section("grep", {"files": nfiles, "variants": {k: " ".join(v) for k, v in
                                                            self.GREP_VARIANTS.items()},
                              "runs": res})

    # ---- readers of one file, and programs that lock for themselves ------

    CONFIG_JSON = '{"name": "lockfs-bench", "debug": "on", "threads": 8, "cache": "off"}\n'
    # The shell readers (one loop, or four at once): $1 iterations, $2 the file.
    READ_LOOP = ('f=$2; for ((i = 0; i < $1; i++)); do cat "$f" >/dev/null; '
                 'n=$(cat "$f"); grep -q on "$f"; done')
    GIT_LOOP = 'for ((i = 0; i < $1; i++)); do git rev-parse HEAD; done >/dev/null'
    FLOCK_LOOP = ('for ((i = 0; i < $1; i++)); do '
                  "flock c.lock -c 'n=$(cat c); echo $((n+1)) > c'; done")

    def shell_loops(self, d, script, k, args, key, daemon=None):
        """Runs k copies of `bash -c script key args...` in d at once;
        returns the wall time until the last exits."""
        argv = ["bash", "-c", script, key] + [str(a) for a in args]
        self.note_cmd(key, argv)
        t0 = time.monotonic()
        ps = [subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True) for _ in range(k)]
        errs = []
        for p in ps:
            _, err = p.communicate(timeout=900)
            if p.returncode != 0 or err.strip():
                errs.append(f"exit {p.returncode}: {err.strip()[:300]}")
        wall = time.monotonic() - t0
        if errs:
            raise RuntimeError(f"{key} in {d}: " + "; ".join(errs) + self.daemon_state(daemon))
        return wall

    def py_together(self, argv, n, key, daemon=None):
        """Starts n copies of a worker that prints "ready", waits for EOF on
        stdin, runs and prints START END BAD (bench/readers.py); lets them
        go at the same moment. Returns the wall time from the first start
        to the last end and the sum of BAD."""
        self.note_cmd(key, argv)
        r, w = os.pipe()
        procs = [subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=self.work) for _ in range(n)]
        os.close(r)
        try:
            for p in procs:
                line = p.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"{key} worker failed: {line} {p.stderr.read()}")
        finally:
            os.close(w)
        starts, ends, bad = [], [], 0
        for p in procs:
            out, err = p.communicate(timeout=900)
            if p.returncode != 0:
                raise RuntimeError(f"{key} worker exited {p.returncode}: {err}"
                                   + self.daemon_state(daemon))
            s, e, b = out.split()
            starts.append(float(s))
            ends.append(float(e))
            bad += int(b)
        return max(ends) - min(starts), bad

    def readers_prep(self, src):
        with open(os.path.join(src, "config.json"), "w") as f:
            f.write(self.CONFIG_JSON)
        if shutil.which("git"):
            repo = os.path.join(src, "repo")
            os.makedirs(repo)
            for i in range(5):
                with open(os.path.join(repo, f"file{i}.txt"), "w") as f:
                    f.write(f"file {i}\n" * (i + 1))
            git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                   "-c", "init.defaultBranch=main"]
            for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "one"]):
                run_out(git + cmd)

    def bench_readers(self):
        """Plain readers of one file, and programs that already coordinate,
        through lockfs against passthrough_ll (readers) or the plain
        directory (flock(1), the asyncio counter), interleaved round by
        round on one mount of each. The readers' figures are those of a
        file lockfs has seen read before (an untimed warm-up round first);
        the *first* variants read a file nobody has opened through the
        mount yet, so they include what lockfs does before it learns that
        the file is only read (docs/semantics.md: calm files)."""
        loop1_iters, loop4_iters = 100, 25
        per_thread, short = 200, 50
        git_n = 20
        flock_shells, flock_iters = 8, 25
        tt_procs, tt_iters = 5, 40
        has_git = shutil.which("git") is not None
        t = self.setup_targets(self.readers_prep, ("plain", "pll", "lockfs"))
        readers = ["loop1", "loop4", "loop4_first", "threads", "threads_first"] + (
            ["git"] if has_git else [])
        res = {w: {"lockfs": [], "pll": []} for w in readers}
        res.update({w: {"lockfs": [], "plain": []} for w in ("flock", "tothread")})
        # The same counter in one process: no contention, what each
        # increment costs through FUSE (passthrough_ll beside lockfs).
        res["tothread1"] = {"lockfs": [], "plain": [], "pll": []}
        threads_py = os.path.join(HERE, "readers.py")

        def fresh(src, rep, w):
            name = f"first-{rep}-{w}.json"
            with open(os.path.join(src, name), "w") as f:
                f.write(self.CONFIG_JSON)
            return name

        def run(w, tg, rep):
            d, src, daemon = t[tg]
            if w in ("loop4_first", "threads_first"):
                name = fresh(src, rep, w)   # written beside the mount, never through it
            else:
                name = "config.json"
            if w in ("flock", "tothread", "tothread1"):
                with open(os.path.join(src, "c"), "w") as f:
                    f.write("0")
            self.settle()
            if w == "loop1":
                return {"wall": self.shell_loops(d, self.READ_LOOP, 1, [loop1_iters, name],
                                                 "readers loop", daemon)}
            if w in ("loop4", "loop4_first"):
                return {"wall": self.shell_loops(d, self.READ_LOOP, 4, [loop4_iters, name],
                                                 "readers loop", daemon)}
            if w in ("threads", "threads_first"):
                wall, bad = self.py_together([PY, threads_py, "threads", os.path.join(d, name),
                                              str(per_thread), str(short)], 1,
                                             "readers threads", daemon)
                if bad:
                    raise RuntimeError(f"readers threads on {tg}: {bad} reads returned "
                                       "something else than the file")
                return {"wall": wall}
            if w == "git":
                return {"wall": self.shell_loops(os.path.join(d, "repo"), self.GIT_LOOP, 1,
                                                 [git_n], "readers git", daemon)}
            if w == "flock":
                wall = self.shell_loops(d, self.FLOCK_LOOP, flock_shells, [flock_iters],
                                        "readers flock", daemon)
                final = read_int(os.path.join(src, "c"))
                n = flock_shells * flock_iters
                return {"wall": wall, "final": final, "attempted": n,
                        "lost": n - final if final is not None else None}
            if w in ("tothread", "tothread1"):
                procs, iters = (tt_procs, tt_iters) if w == "tothread" else (1, tt_procs * tt_iters)
                wall, bad = self.py_together([PY, threads_py, "tothread", os.path.join(d, "c"),
                                              str(iters)], procs, "readers tothread", daemon)
                final = read_int(os.path.join(src, "c"))
                n = procs * iters
                return {"wall": wall, "final": final, "attempted": n, "torn": bad,
                        "lost": n - bad - final if final is not None else None}
            raise ValueError(w)

        stats = ""
        try:
            # Untimed warm-up: every cache on the way, the git repository's
            # files, and on lockfs whatever it learns of config.json from four
            # readers at once and of c.lock from flock(1).
            for tg in ("pll", "lockfs"):
                d, _, daemon = t[tg]
                self.shell_loops(d, self.READ_LOOP, 4, [3, "config.json"], "readers loop", daemon)
                if has_git:
                    self.shell_loops(os.path.join(d, "repo"), self.GIT_LOOP, 1, [2],
                                     "readers git", daemon)
            for tg in ("plain", "lockfs"):
                d, src, daemon = t[tg]
                with open(os.path.join(src, "c"), "w") as f:
                    f.write("0")
                self.shell_loops(d, self.FLOCK_LOOP, 2, [2], "readers flock", daemon)
            self.settle()
            for rep in range(self.runs):
                for w in res:
                    for tg in rotated(res[w], rep):
                        res[w][tg].append(run(w, tg, rep))
                    a, b = (res[w][tg][-1] for tg in list(res[w])[:2])
                    extra = ""
                    if "final" in a:
                        extra = " (final " + ", ".join(f"{tg} {res[w][tg][-1]['final']}"
                                                      for tg in res[w]) + ")"
                    self.log(f"readers rep {rep + 1} {w}: " + ", ".join(
                        f"{tg} {res[w][tg][-1]['wall'] * 1000:.0f} ms" for tg in res[w])
                        + f", ratio {a['wall'] / b['wall']:.2f}" + extra)
            stats = self.lockstat(t["lockfs"][0])
        finally:
            self.teardown_targets(t)
        self.section("readers", {
            "loop1_iters": loop1_iters, "loop4_iters": loop4_iters, "per_thread": per_thread,
            "short": short, "git_n": git_n if has_git else None, "flock_shells": flock_shells,
            "flock_iters": flock_iters, "tt_procs": tt_procs, "tt_iters": tt_iters,
            "lockstat": stats, "runs": res})

    def file_stats(self, mnt, path):
        """lockfs's statistics of one file of a mount (lockstat --json:
        waits, wait_total_ns, ... and whether it is calm), zeros for a file
        it has no statistics of, None when lockstat is not there."""
        exe = os.path.join(os.path.dirname(os.path.dirname(self.lockfs)), "tools", "lockstat")
        if not os.access(exe, os.X_OK):
            return None
        p = subprocess.run([exe, "--stats", "--json", "--top", "0", mnt], capture_output=True,
                           text=True)
        if p.returncode != 0:
            return None
        m = json.loads(p.stdout)["lockfs"][0]
        st = next((x for x in m.get("stats", []) if x["path"] == path),
                  {"waits": 0, "wait_total_ns": 0})
        fl = next((x for x in m.get("files", []) if x["path"] == path), {})
        return dict(st, calm=bool(fl.get("calm")))

    def lockstat(self, mnt):
        """lockstat's statistics of a mount (what lockfs learned of each
        file, joins, waits), as text for the report; "" when lockstat is
        not built."""
        exe = os.path.join(os.path.dirname(os.path.dirname(self.lockfs)), "tools", "lockstat")
        if not os.access(exe, os.X_OK):
            return ""
        argv = [exe, "--stats", "--top", "0", "-o", "+CALM-LEARNED,ADVISORY-PASSES", mnt]
        self.note_cmd("lockstat", argv)
        p = subprocess.run(argv, capture_output=True, text=True)
        return p.stdout if p.returncode == 0 else f"lockstat failed: {p.stderr.strip()}"

    # ---- 6a. many files held ---------------------------------------------

    def hold_once(self, kind, src, mnt, count, create, profile=False):
        d = self.mount(kind, src, mnt)
        argv = [os.path.join(self.bin, "holdmany")] + (["-c", src] if create else []) + [mnt, str(count)]
        self.note_cmd(f"hold {kind}", argv)
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        r = {"count": count}
        perf = None
        try:
            for step in ("ready", "statted", "opened", "closed"):
                line = p.stdout.readline().split()
                if not line or line[0] != step:
                    raise RuntimeError(f"holdmany on {kind}: expected {step}, got {line}: "
                                       + p.stderr.read())
                st = d.status()
                r[f"rss_kb_{step}"] = st["VmRSS"]
                r[f"threads_{step}"] = st["Threads"]
                r[f"fds_{step}"] = d.fd_count()
                if len(line) > 1:
                    r[f"secs_{step}"] = float(line[1])
                if profile and step == "opened":
                    # A few seconds of the closes are enough to see where
                    # the time goes.
                    perf = self.perf_start(d, "hold-close", ["--", "sleep", "8"])
                p.stdin.write("\n")
                p.stdin.flush()
                if perf:
                    perf[0].wait()
                    r["close_profile"] = self.perf_stop(perf, d)
                    perf = None
            p.wait(timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"holdmany exited {p.returncode}: {p.stderr.read()}")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            if perf:
                perf[0].kill()
                perf[0].wait()
            self.unmount(d)
        return r

    def bench_hold(self):
        want = 2000 if self.quick else 100000
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Each held file costs the daemon two descriptors (its inode's
        # O_PATH descriptor and the open file), and the holder one.
        fit = (hard - 300) // 2 // 1000 * 1000
        count = min(want, fit)
        src = os.path.join(self.work, "hold-src")
        mnt = os.path.join(self.work, "hold-mnt")
        res = {"lockfs": [], "pll": []}
        create = True
        try:
            for rep in range(self.runs):
                for kind in ("lockfs", "pll"):
                    # The last round of lockfs also profiles the closes.
                    r = self.hold_once(kind, src, mnt, count, create,
                                       profile=kind == "lockfs" and rep == self.runs - 1)
                    create = False
                    res[kind].append(r)
                    self.log(f"hold rep {rep + 1} {kind}: {count} files, RSS "
                             f"{r['rss_kb_ready']} -> {r['rss_kb_opened']} KiB")
        finally:
            shutil.rmtree(src, ignore_errors=True)
        self.section("hold", {"wanted": want, "count": count, "nofile_hard": hard,
                              "runs": res})

    # ---- 6b. many waiters ------------------------------------------------

    def bench_waiters(self):
        n = 200 if self.quick else 1000
        src = os.path.join(self.work, "wait-src")
        mnt = os.path.join(self.work, "wait-mnt")
        res = []
        try:
            for rep in range(self.runs):
                d = self.mount("lockfs", src, mnt)
                try:
                    argv = [os.path.join(self.bin, "waiters"), "-p", str(d.proc.pid), mnt, str(n)]
                    self.note_cmd("waiters", argv)
                    r = kv(run_out(argv, timeout=600))
                finally:
                    self.unmount(d)
                res.append(r)
                self.log(f"waiters rep {rep + 1}: threads {r['threads_1']} -> {r['threads_n']} "
                         f"(max {r['threads_max']}), RSS {r['rss_kb_1']} -> {r['rss_kb_n']} KiB, "
                         f"in order {r['in_order']}/{n}, parked by {r['parked_by']}")
        finally:
            shutil.rmtree(src, ignore_errors=True)
        self.section("waiters", {"n": n, "runs": res})

    # ---- lease sweep ------------------------------------------------------

    LEASES_MS = [0, 50, 100, 250, 500, 1000]
    SHELL_COUNTERS = {
        # The read is made by cat, a child of the shell; the write by the shell.
        "cat": ('for ((i = 0; i < $1; i++)); do n=$(cat c); '
                'echo $((n + 1)) > c; done'),
        # The same with the lease passed on twice: cat -> timeout -> shell.
        "timeout": ('for ((i = 0; i < $1; i++)); do n=$(timeout 60 cat c); '
                    'echo $((n + 1)) > c; done'),
    }
    HOGS = 2

    def bench_lease(self):
        """Which lease length. The shell counters (`n=$(cat c); echo
        $((n+1)) > c`, and the same through timeout(1)) are the workloads
        the lease exists for: lost updates show the shortest lease that
        still protects them. What a longer lease costs: reader throughput
        of four loops of cat/grep on a file nobody writes (the readers of
        bench_readers, on a fresh mount, so they include the waits before
        lockfs learns the file is calm, then once more), and the wait of a
        writer that comes after a reader which never writes back. Each
        lease on an idle machine and with two busy-looping processes
        (started and killed here, by pid), a fresh mount per lease and
        load, the leases in rotated order each round; rates are also given
        as ratios to lease 0 (no lease) of the same round and load."""
        procs, iters = (8, 15) if self.quick else (8, 25)
        rprocs, riters = (4, 10) if self.quick else (4, 25)
        src = os.path.join(self.work, "lease-src")
        mnt = os.path.join(self.work, "lease-mnt")
        loads = ("idle", "loaded")
        res = {load: {str(ms): [] for ms in self.LEASES_MS} for load in loads}
        try:
            for rep in range(self.runs):
                for load in loads:
                    for ms in rotated(self.LEASES_MS, rep):
                        r = self.lease_once(src, mnt, ms, load, procs, iters, rprocs, riters)
                        res[load][str(ms)].append(r)
                        self.log(f"lease rep {rep + 1} {load} {ms} ms: lost "
                                 f"{r['cat']['lost']}/{r['timeout']['lost']} of {procs * iters} "
                                 f"(cat/timeout), readers {r['reads_first']:.0f}/"
                                 f"{r['reads_again']:.0f} reads/s (first/again), writer after "
                                 f"a reader waited {r['writer_wait'] * 1000:.1f} ms")
        finally:
            shutil.rmtree(src, ignore_errors=True)
        data = {"procs": procs, "iters": iters, "rprocs": rprocs, "riters": riters,
                "hogs": self.HOGS, "leases_ms": self.LEASES_MS, "runs": res}
        self.section("lease", data)
        from report import lease_head, lease_rows
        for load in loads:
            print(f"lease sweep, {load}:", flush=True)
            print_table(lease_head(data), lease_rows(data, load))

    def lease_once(self, src, mnt, ms, load, procs, iters, rprocs, riters):
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        # Written beside the mount, never through it (a configuration file
        # written long ago).
        with open(os.path.join(src, "config.json"), "w") as f:
            f.write(self.CONFIG_JSON)
        d = self.mount("lockfs", src, mnt, extra=["-o", f"lease={ms}"])
        lease_s = ms / 1000
        hogs = []
        r = {}
        try:
            if load == "loaded":
                # A shell can now lose its CPU between its child's exit and
                # its own write. The scratch path in the command line lets
                # bench/run's cleanup recognize them.
                hogs = [subprocess.Popen([PY, "-c", "import sys\nwhile True: pass", self.work])
                        for _ in range(self.HOGS)]
                for h in hogs:
                    self.register("pids", h.pid)
            for variant, script in self.SHELL_COUNTERS.items():
                with open(os.path.join(src, "c"), "w") as f:
                    f.write("0")
                self.settle(lease_s)
                argv = ["bash", "-c", script, "counter", str(iters)]
                self.note_cmd(f"lease shell counter ({variant})", argv)
                t0 = time.monotonic()
                ps = [subprocess.Popen(argv, cwd=mnt, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                      for _ in range(procs)]
                errors = 0
                for p in ps:
                    _, err = p.communicate(timeout=900)
                    errors += len(err.splitlines())
                wall = time.monotonic() - t0
                final = read_int(os.path.join(src, "c"))
                r[variant] = {"wall": wall, "rate": procs * iters / wall, "final": final,
                              "lost": procs * iters - final if final is not None else None,
                              "stderr_lines": errors}
            before = self.file_stats(mnt, "config.json")
            for phase in ("first", "again"):
                self.settle(lease_s)
                wall = self.shell_loops(mnt, self.READ_LOOP, rprocs, [riters, "config.json"],
                                        "readers loop", d)
                r["reads_" + phase] = rprocs * riters * 3 / wall
                # What the readers waited for each other, from lockfs's own
                # statistics (exact, where the rate above is noisy).
                after = self.file_stats(mnt, "config.json")
                if after is not None and before is not None:
                    r["rwait_" + phase] = {
                        "waits": after["waits"] - before["waits"],
                        "total_ms": (after["wait_total_ns"] - before["wait_total_ns"]) / 1e6,
                        "calm": after["calm"]}
                before = after
            self.settle(lease_s)
            r["writer_wait"] = self.lease_cost(mnt)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
            self.unmount(d)
        return r

    def lease_cost(self, mnt):
        """What a lease costs: a process reads the file and then does
        nothing more with it (it stays alive); another process then opens
        the file for writing. Returns how long that open waited."""
        reader = subprocess.Popen(
            [PY, "-c", "import sys, time\nopen('c').read()\nprint('read', flush=True)\n"
             "sys.stdin.read()"],
            cwd=mnt, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if reader.stdout.readline().strip() != "read":
                raise RuntimeError("the lease reader failed")
            t0 = time.monotonic()
            fd = os.open(os.path.join(mnt, "c"), os.O_WRONLY)
            waited = time.monotonic() - t0
            os.close(fd)
        finally:
            reader.stdin.close()
            reader.wait(timeout=30)
        return waited

    # ---- requests per operation ------------------------------------------

    def bench_requests(self):
        """Counts the FUSE requests each operation sends, from the daemons'
        request traces: each workload runs twice with different sizes in
        one debug daemon, and the difference in requests over the
        difference in operations is the cost of one operation (start-up,
        warm-up and the first lookups cancel out)."""
        res = {}
        for tg in ("pll", "lockfs-none", "lockfs"):
            src = os.path.join(self.work, f"req-{tg}-src")
            mnt = os.path.join(self.work, f"req-{tg}-mnt")
            shutil.rmtree(src, ignore_errors=True)
            os.makedirs(src)
            make_tree(src, 2000)
            with open(os.path.join(src, "config.json"), "w") as f:
                f.write(self.CONFIG_JSON)
            with open(os.path.join(src, "rand.dat"), "wb") as f:
                f.write(bytes(range(256)) * 4096 * 16)     # 16 MiB
            d = self.mount(tg, src, mnt, debug=True)
            r = {}
            try:
                for op in ("openclose", "trunc", "stat"):
                    r[op] = self.count_requests(d, lambda n, op=op: self.req_meta(mnt, op, n), 200, 1000)
                r["counter"] = self.count_requests(d, lambda n: self.req_counter(mnt, src, n), 50, 250)
                r["seqwrite_MiB"] = self.count_requests(d, lambda n: self.req_fio(mnt, "write", n), 16, 64)
                # Warm reads are counted in one run each, not by difference:
                # whether the mount's page cache survives an open is the
                # very thing measured, and it need not be the same in two
                # runs. The opens and closes are included (a few requests
                # in 64 MiB).
                r["seqread_warm_MiB"] = self.count_requests_once(
                    d, lambda: self.req_fio(mnt, "read", 64),
                    prep=lambda: self.warm(os.path.join(mnt, "req.dat")))
                r["randread_warm_op"] = self.count_requests_once(
                    d, lambda: self.req_rand(mnt, 1280),
                    prep=lambda: self.warm(os.path.join(mnt, "rand.dat")))
                r["grep_file"] = self.count_requests(d, lambda n: self.req_grep(mnt, n), 100, 2000)
                r["cat"] = self.count_requests(d, lambda n: self.req_cat(mnt, n), 20, 100)
                if tg == "lockfs":
                    r["handoff"] = self.count_requests(d, lambda n: self.req_handoff(mnt, n), 100, 500)
            finally:
                self.unmount(d)
                shutil.rmtree(src, ignore_errors=True)
            res[tg] = r
            self.log(f"requests {tg}: " + ", ".join(f"{k} {v['total']:.2f}" for k, v in r.items()))
        self.section("requests", {"per_op": res})

    def count_requests(self, d, fn, small, big, prep=None):
        counts = []
        for n in (small, big):
            if prep:
                prep()
            self.settle()
            d.log_settle()
            off = os.path.getsize(d.log)
            ops = fn(n)
            d.log_settle()
            with open(d.log, errors="replace") as f:
                f.seek(off)
                counts.append((ops, count_opcodes(f.read())))
        (o1, c1), (o2, c2) = counts
        by = {k: (c2.get(k, 0) - c1.get(k, 0)) / (o2 - o1) for k in set(c1) | set(c2)}
        by = {k: v for k, v in by.items() if abs(v) >= 0.005}
        return {"total": sum(by.values()), "by_op": by}

    def count_requests_once(self, d, fn, prep):
        prep()
        self.settle()
        d.log_settle()
        off = os.path.getsize(d.log)
        ops = fn()
        d.log_settle()
        with open(d.log, errors="replace") as f:
            f.seek(off)
            c = count_opcodes(f.read())
        by = {k: v / ops for k, v in c.items() if v / ops >= 0.005}
        return {"total": sum(c.values()) / ops, "by_op": by}

    def warm(self, path):
        """Reads the file twice, the way the timed warm reads find it: once
        to fill the caches, once more in a new open."""
        read_file(path)
        self.settle()
        read_file(path)

    def req_meta(self, mnt, op, n):
        run_out([os.path.join(self.bin, "metarate"), "-n", str(n), "-w", "10", mnt, op])
        return n

    def req_counter(self, mnt, src, n):
        with open(os.path.join(src, "c"), "w") as f:
            f.write("0")
        p = subprocess.run([PY, os.path.join(HERE, "counter.py"), "bare", os.path.join(mnt, "c"), str(n)],
                           input="", capture_output=True, text=True, cwd=self.work)
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        return n

    def req_fio(self, mnt, rw, mib):
        self.fio("fio requests", mnt, "req", [f"--rw={rw}", "--bs=1M", f"--size={mib}M",
                                              "--invalidate=0", "--filename=req.dat"])
        return mib

    def req_rand(self, mnt, n):
        self.fio("fio requests", mnt, "req", ["--rw=randread", "--bs=4k", "--size=16M",
                                              "--invalidate=0", f"--io_size={n * 4}k",
                                              "--filename=rand.dat"])
        return n

    def req_grep(self, mnt, n):
        # n = 100: one directory of the tree; n = 2000: all of it.
        path = os.path.join(mnt, "tree", "d00") if n == 100 else os.path.join(mnt, "tree")
        subprocess.run(["grep", "-r", "-F", "-c", "needle-that-is-not-there", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return n

    def req_cat(self, mnt, n):
        argv = ["bash", "-c", 'for ((i = 0; i < $1; i++)); do cat config.json; done >/dev/null',
                "cat", str(n)]
        self.note_cmd("requests cat", argv)
        subprocess.run(argv, cwd=mnt, check=True, stdin=subprocess.DEVNULL)
        return n

    def req_handoff(self, mnt, n):
        r = kv(run_out([os.path.join(self.bin, "handoff"), "-n", str(n), "open",
                        os.path.join(mnt, "handoff.dat")]))
        return r["acquisitions"]

    # ---- big trees: tar, rsync, cp -a, find | xargs grep -------------------

    # Each step: (key, untimed preparation, timed command). $1 is the target's
    # directory; DOC and SMALL are tar files of /usr/share/doc and of the
    # small-file tree, TREE the same doc tree extracted on the plain
    # directory, OUT a scratch tar file on the plain directory. A copy is
    # removed as soon as no step needs it: passthrough_ll keeps a
    # descriptor for every inode the kernel knows, and three copies of
    # the doc tree would not fit under a 20,000 descriptor limit.
    TREE_STEPS = [
        ("tar_x_doc", 'rm -rf "$1/x"; mkdir "$1/x"', 'tar xf "$DOC" -C "$1/x"'),
        ("tar_x_small", 'rm -rf "$1/y"; mkdir "$1/y"', 'tar xf "$SMALL" -C "$1/y"'),
        ("tar_c", 'rm -rf "$OUT" "$1/y"', 'tar cf "$OUT" -C "$1/x" .'),
        ("rsync1", 'rm -rf "$1/r"', 'rsync -a "$TREE/" "$1/r/"'),
        ("rsync2", ':', 'rsync -a "$TREE/" "$1/r/"'),
        ("cp_a", 'rm -rf "$1/r" "$1/c"', 'cp -a "$TREE" "$1/c"'),
        # xargs exits 123 when a grep found nothing (status 1); a grep
        # that failed says so on stderr, which fails the run.
        ("find_grep", 'rm -rf "$1/c"', 'find "$1/x" -type f -print0 | xargs -0 -P4 grep -l '
                           'zzzz-matches-nothing; [ $? -eq 123 ]'),
    ]
    TREE_TARGETS = ["plain", "pll", "lockfs"]

    def tree_inputs(self, dirs, per_dir):
        """The tar files and the plain copy every step reads, made once."""
        env = dict(os.environ, DOC=os.path.join(self.work, "doc.tar"),
                   SMALL=os.path.join(self.work, "small.tar"),
                   TREE=os.path.join(self.work, "tree-doc"), OUT=os.path.join(self.work, "out.tar"))
        subprocess.run(["tar", "cf", env["DOC"], "-C", "/usr/share", "doc"], check=True,
                       stderr=subprocess.DEVNULL)
        os.makedirs(env["TREE"])
        subprocess.run(["tar", "xf", env["DOC"], "-C", env["TREE"]], check=True)
        gen = os.path.join(self.work, "small-gen")
        for d in range(dirs):
            os.makedirs(os.path.join(gen, f"d{d:03d}"))
            for i in range(per_dir):
                with open(os.path.join(gen, f"d{d:03d}", f"f{i:02d}.txt"), "w") as f:
                    f.write(f"line {d} {i}\n" * 20)
        subprocess.run(["tar", "cf", env["SMALL"], "-C", gen, "."], check=True)
        # A tenth of it, for counting requests by difference.
        env["SMALL10"] = os.path.join(self.work, "small10.tar")
        subprocess.run(["tar", "cf", env["SMALL10"], "-C", gen]
                       + [f"d{d:03d}" for d in range(dirs // 10)], check=True)
        shutil.rmtree(gen)
        nfiles = int(run_out(["bash", "-c", 'tar tf "$DOC" | grep -vc "/$"'], env=env))
        return env, nfiles

    def tree_step(self, env, d, prep, cmd, key, daemon):
        subprocess.run(["bash", "-c", prep, "prep", d], env=env, check=True)
        self.settle()
        argv = ["bash", "-c", cmd, "tree", d]
        self.note_cmd(f"tree {key}", argv)
        cpu0 = daemon.cpu_ticks() if daemon else None
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=1800)
        wall = time.monotonic() - t0
        if p.returncode != 0 or p.stderr.strip():
            raise RuntimeError(f"tree {key} in {d}: exit {p.returncode}: {p.stderr.strip()[:500]}"
                               + self.daemon_state(daemon))
        cpu = (daemon.cpu_ticks() - cpu0) / CLK_TCK if daemon else None
        return {"wall": wall, "daemon_cpu_s": cpu}

    def bench_tree(self):
        dirs, per_dir = (20, 50) if self.quick else (100, 50)
        env, doc_files = self.tree_inputs(dirs, per_dir)
        t = self.setup_targets(lambda src: None, names=self.TREE_TARGETS)
        keys = [s[0] for s in self.TREE_STEPS]
        res = {tg: {k: [] for k in keys} for tg in self.TREE_TARGETS}
        try:
            for rep in range(self.runs):
                for key, prep, cmd in self.TREE_STEPS:
                    for tg in rotated(self.TREE_TARGETS, rep):
                        d, _, daemon = t[tg]
                        res[tg][key].append(self.tree_step(env, d, prep, cmd, key, daemon))
                    self.log(f"tree rep {rep + 1} {key}: " + ", ".join(
                        f"{tg} {res[tg][key][-1]['wall']:.2f} s" for tg in self.TREE_TARGETS))
        finally:
            self.teardown_targets(t)
        # Requests per extracted small file: the whole tree and a tenth of
        # it in one traced daemon, by difference.
        small = dirs * per_dir
        requests = {}
        for tg in ("pll", "lockfs"):
            src = os.path.join(self.work, f"treq-{tg}-src")
            mnt = os.path.join(self.work, f"treq-{tg}-mnt")
            d = self.mount(tg, src, mnt, debug=True)
            try:
                def extract(n, mnt=mnt):
                    out = os.path.join(mnt, f"n{n}")
                    os.makedirs(out)
                    subprocess.run(["tar", "xf", env["SMALL10" if n < small else "SMALL"], "-C", out],
                                   check=True)
                    return n
                requests[tg] = self.count_requests(d, extract, small // 10, small)
            finally:
                self.unmount(d)
                shutil.rmtree(src, ignore_errors=True)
            self.log(f"tree requests per file {tg}: {requests[tg]['total']:.2f} "
                     f"{sorted(requests[tg]['by_op'].items())}")
        for k in ("DOC", "SMALL", "SMALL10", "OUT"):
            if os.path.exists(env[k]):
                os.unlink(env[k])
        shutil.rmtree(env["TREE"], ignore_errors=True)
        self.section("tree", {"small_files": small, "small_dirs": dirs, "doc_files": doc_files,
                              "steps": {k: c for k, _, c in self.TREE_STEPS},
                              "requests_per_file": requests, "runs": res})

    # ---- a million inodes known to the kernel ----------------------------

    # ---- cluster mode -------------------------------------------------------

    def zk_start(self):
        """A private standalone ZooKeeper on a free loopback port, its data
        in the scratch directory (so bench/run's cleanup knows its pid),
        every four-letter word allowed so that `srvr` can count the packets
        it received. tickTime 2000, the server's default."""
        if not os.path.exists(ZK_JAR) or shutil.which("java") is None:
            raise RuntimeError("no ZooKeeper server or java (Debian packages zookeeper, "
                               "default-jre-headless)")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        data = os.path.join(self.work, "zk-data")
        argv = ["java", "-Xmx256m", "-cp", ZK_JAR, "-Dzookeeper.admin.enableServer=false",
                "-Dzookeeper.4lw.commands.whitelist=*",
                "org.apache.zookeeper.server.ZooKeeperServerMain", str(port), data, "2000"]
        self.note_cmd("zookeeper", argv[:-3] + ["$ZKPORT"] + argv[-2:])
        logf = open(os.path.join(self.logdir, "zookeeper.log"), "w")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, cwd="/")
        logf.close()
        self.register("pids", proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if "Mode:" in zk_word(port, "srvr"):
                    return proc, port
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        zk_stop(proc)
        raise RuntimeError(f"ZooKeeper did not start on port {port}")

    def zk_idle_rate(self, port, secs):
        """Packets a second the server receives while nobody uses the
        mounts: the sessions' pings and the daemons' liveness reads, which
        the counts below subtract."""
        r0, t0 = zk_received(port), time.monotonic()
        time.sleep(secs)
        return (zk_received(port) - r0) / (time.monotonic() - t0)

    def zk_counted(self, port, idle, fn):
        """Runs fn(); returns its result and the packets the server
        received meanwhile beyond the idle rate."""
        r0, t0 = zk_received(port), time.monotonic()
        out = fn()
        return out, zk_received(port) - r0 - idle * (time.monotonic() - t0)

    def bench_cluster(self):
        """Cluster mode on one machine: two lockfs mounts of one source
        directory in one cluster stand for two hosts. (a) the counter on
        one mount, the other idle, against the same counter on a lockfs
        mount without the cluster; (b) the counter split over both mounts,
        and how many ZooKeeper requests each increment costs, counted by
        the server; (c) the handoff of a file between the two mounts next
        to one ZooKeeper write (create and delete of a persistent znode)
        on the same server."""
        n = 4
        total = 800 if self.quick else 2000
        iters = total // n
        handoffs = 200 if self.quick else 500
        pairs = 200 if self.quick else 500
        zk, port = self.zk_start()
        self.zk_port = port
        solo_src = os.path.join(self.work, "cluster-solo-src")
        clu_src = os.path.join(self.work, "cluster-src")
        mounted = []
        res = {"solo": [], "one": [], "split": [], "handoff": [], "zkwrite": []}
        try:
            for d in (solo_src, clu_src):
                shutil.rmtree(d, ignore_errors=True)
            solo = self.mount("lockfs", solo_src, os.path.join(self.work, "cluster-solo-mnt"))
            mounted.append(solo)
            opt = ["-o", f"cluster=127.0.0.1:{port}/bench"]
            a = self.mount("lockfs", clu_src, os.path.join(self.work, "cluster-a-mnt"), extra=opt)
            mounted.append(a)
            b = self.mount("lockfs", clu_src, os.path.join(self.work, "cluster-b-mnt"), extra=opt)
            mounted.append(b)
            idle = self.zk_idle_rate(port, 2.0 if self.quick else 5.0)
            self.log(f"cluster: ZooKeeper on port {port}, idle rate {idle:.1f} packets/s")
            zkw = os.path.join(self.bin, "zkwrite")
            hof = os.path.join(self.bin, "handoff")
            for rep in range(self.runs):
                for v in rotated(("solo", "one", "split"), rep):
                    if v == "solo":
                        r = self.counter_once("bare", solo.mnt, solo_src, n, iters, solo)
                    else:
                        dirs = [a.mnt] * n if v == "one" else [a.mnt, b.mnt] * (n // 2)
                        r, pk = self.zk_counted(port, idle, lambda: self.counter_once(
                            "bare", a.mnt, clu_src, n, iters, a, dirs=dirs))
                        r["zk_packets"] = pk
                        r["zk_per_increment"] = pk / r["done"] if r["done"] else None
                    if r["final"] != r["done"]:
                        raise RuntimeError(f"cluster counter {v}: ended at {r['final']} "
                                           f"of {r['done']}")
                    res[v].append(r)
                self.settle()
                argv = [hof, "-n", str(handoffs), "open", os.path.join(a.mnt, "handoff.dat"),
                        os.path.join(b.mnt, "handoff.dat")]
                self.note_cmd("handoff across two cluster mounts", argv)
                h, pk = self.zk_counted(port, idle, lambda: kv(run_out(argv, timeout=600)))
                h["zk_packets"] = pk
                res["handoff"].append(h)
                argv = [zkw, "-n", str(pairs), f"127.0.0.1:{port}", f"/bench-zkwrite-{rep}"]
                self.note_cmd("zkwrite", argv)
                z = kv(run_out(argv))
                res["zkwrite"].append(z)
                self.log(f"cluster rep {rep + 1}: counter {res['solo'][-1]['rate']:.0f}/s "
                         f"without, {res['one'][-1]['rate']:.0f}/s one cluster mount "
                         f"({res['one'][-1]['zk_per_increment']:.3f} ZooKeeper packets per "
                         f"increment), {res['split'][-1]['rate']:.0f}/s split "
                         f"({res['split'][-1]['zk_per_increment']:.2f}); handoff p50 "
                         f"{h['p50'] / 1e6:.2f} ms ({h['handoffs']} handoffs, {h['again']} "
                         f"re-acquired), ZooKeeper create+delete p50 {z['pair_p50'] / 1e6:.2f} ms")
        finally:
            for d in reversed(mounted):
                self.unmount(d)
            zk_stop(zk)
            self.zk_port = None
            for d in (solo_src, clu_src):
                shutil.rmtree(d, ignore_errors=True)
        self.section("cluster", {"n": n, "total": total, "handoffs_per_run": handoffs,
                                 "zk_pairs": pairs, "zk_idle_rate": idle, "runs": res})

    def bench_inodes1m(self):
        """Daemon memory and descriptors once the kernel knows every inode
        of a big tree (find stats every entry), against the same daemon
        idle just after mounting; with the default descriptor cache and
        with fd_cache=32. One run each: it takes minutes."""
        dirs, per_dir = (100, 100) if self.quick else (1000, 1000)
        src = os.path.join(self.work, "inodes-src")
        mnt = os.path.join(self.work, "inodes-mnt")
        shutil.rmtree(src, ignore_errors=True)
        t0 = time.monotonic()
        for d in range(dirs):
            dd = os.path.join(src, f"d{d:04d}")
            os.makedirs(dd)
            for i in range(per_dir):
                os.close(os.open(os.path.join(dd, f"f{i:04d}"), os.O_CREAT | os.O_WRONLY, 0o644))
        self.log(f"inodes1m: made {dirs * per_dir:,} files in {time.monotonic() - t0:.0f} s")
        res = {}
        try:
            for name, extra in (("default", ()), ("fd_cache=32", ("-o", "fd_cache=32"))):
                d = self.mount("lockfs", src, mnt, extra=extra)
                try:
                    time.sleep(1)
                    idle, fds_idle, slab0 = d.status(), d.fd_count(), fuse_inode_slab()
                    # %s needs each entry's attributes: a lookup, so the
                    # kernel makes (and keeps) an inode for every entry;
                    # %y would come from readdir's d_type alone.
                    argv = ["find", mnt, "-printf", "%s\\n"]
                    self.note_cmd("inodes1m find", argv)
                    t1 = time.monotonic()
                    entries = len(run_out(argv, timeout=3600).splitlines())
                    secs = time.monotonic() - t1
                    time.sleep(1)
                    busy, fds, slab1 = d.status(), d.fd_count(), fuse_inode_slab()
                finally:
                    self.unmount(d)
                r = {"entries": entries, "find_s": secs, "rss_kb_idle": idle["VmRSS"],
                     "rss_kb": busy["VmRSS"], "fds_idle": fds_idle, "fds": fds,
                     "threads": busy["Threads"],
                     "fuse_inode_slab": (slab1 - slab0) if slab0 is not None and slab1 is not None
                     else None,
                     "bytes_per_inode": (busy["VmRSS"] - idle["VmRSS"]) * 1024 / entries}
                res[name] = r
                self.log(f"inodes1m {name}: {entries:,} entries in {secs:.0f} s, RSS "
                         f"{idle['VmRSS']} -> {busy['VmRSS']} KiB ({r['bytes_per_inode']:.0f} "
                         f"B/inode), descriptors {fds_idle} -> {fds}, fuse_inode slab "
                         f"+{r['fuse_inode_slab']}")
        finally:
            shutil.rmtree(src, ignore_errors=True)
        self.section("inodes1m", {"dirs": dirs, "per_dir": per_dir, "runs": res})

    # ---- profiling ---------------------------------------------------------

    def bench_profile(self):
        """perf profiles of lockfs for the workloads behind the targets it
        misses (or all of them with --profile-all)."""
        from report import evaluate_targets
        targets = evaluate_targets({k: v for k, v in self.results.items()
                                    if not (isinstance(v, dict) and "error" in v)})
        wanted = [tg["id"] for tg in targets
                  if self.args.profile_all or tg.get("met") is False]
        res = {}
        if not wanted:
            self.section("profile", {"profiles": res})
            return
        t = self.setup_targets(lambda src: make_tree(src, 2000))
        try:
            for tid in wanted:
                works = self.profile_workload(tid, t)
                if not works:
                    continue
                res[tid] = {}
                for tg, work in works.items():
                    d = t[tg][2]
                    stop = threading.Event()
                    err = []

                    def loop(tg=tg, work=work):
                        try:
                            while not stop.is_set():
                                work(tg)
                        except Exception as e:      # reported below
                            err.append(e)
                    th = threading.Thread(target=loop)
                    th.start()
                    time.sleep(0.3)
                    res[tid][tg] = self.perf(d, tid, tg, 2.0 if self.quick else 4.0)
                    stop.set()
                    th.join()
                    if err:
                        raise err[0]
                self.log(f"profiled {tid}")
        finally:
            self.teardown_targets(t)
        self.section("profile", {"profiles": res})

    def profile_workload(self, tid, t):
        """{target: function running one round of the workload behind
        target tid}, lockfs and its baseline where the baseline has a
        daemon to look at."""
        metarate = os.path.join(self.bin, "metarate")
        if tid == "counter10":
            def counter(tg):
                self.counter_once("bare", t[tg][0], t[tg][1], 10, 20)
            return {"lockfs": counter}
        if tid == "openclose":
            def oc(tg):
                run_out([metarate, "-t", "0.5", t[tg][0], "openclose"])
            return {"lockfs": oc, "pll": oc}
        if tid == "seqread":
            def rd(tg):
                path = os.path.join(t[tg][0], "prof.dat")
                if not os.path.exists(path):
                    self.fio("fio profile", t[tg][0], "w", ["--rw=write", "--bs=1M",
                                                             "--size=256M", "--filename=prof.dat"])
                    read_file(path)
                    self.settle()
                self.fio("fio profile", t[tg][0], "r", ["--rw=read", "--bs=1M", "--size=256M",
                                                         "--invalidate=0", "--filename=prof.dat"])
            return {"lockfs": rd, "pll": rd}
        if tid == "seqwrite":
            def wr(tg):
                self.fio("fio profile", t[tg][0], "w", ["--rw=write", "--bs=1M", "--size=256M",
                                                         "--filename=profw.dat"])
            return {"lockfs": wr, "pll": wr}
        if tid == "handoff":
            def ho(tg):
                run_out([os.path.join(self.bin, "handoff"), "-n", "300", "open",
                         os.path.join(t[tg][0], "handoff.dat")])
            return {"lockfs": ho}
        if tid in ("readers_loop1", "readers_loop4", "readers_threads"):
            def rd(tg):
                d, src, daemon = t[tg]
                if not os.path.exists(os.path.join(src, "config.json")):
                    with open(os.path.join(src, "config.json"), "w") as f:
                        f.write(self.CONFIG_JSON)
                if tid == "readers_threads":
                    self.py_together([PY, os.path.join(HERE, "readers.py"), "threads",
                                      os.path.join(d, "config.json"), "200", "50"], 1,
                                     "readers threads", daemon)
                else:
                    k, n = (1, 100) if tid == "readers_loop1" else (4, 25)
                    self.shell_loops(d, self.READ_LOOP, k, [n, "config.json"], "readers loop",
                                     daemon)
                self.settle()
            return {"lockfs": rd, "pll": rd}
        if tid in ("readers_flock", "readers_tothread"):
            def co(tg):
                d, src, daemon = t[tg]
                with open(os.path.join(src, "c"), "w") as f:
                    f.write("0")
                self.settle()
                if tid == "readers_flock":
                    self.shell_loops(d, self.FLOCK_LOOP, 8, [25], "readers flock", daemon)
                else:
                    self.py_together([PY, os.path.join(HERE, "readers.py"), "tothread",
                                      os.path.join(d, "c"), "40"], 5, "readers tothread", daemon)
            return {"lockfs": co}
        if tid == "grep2":
            def g(tg):
                argv = self.grep_argv(t[tg][0])
                ps = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(2)]
                for p in ps:
                    p.wait()
                self.settle()
            return {"lockfs": g, "pll": g}
        return None

    def perf(self, d, tid, tg, secs):
        """Samples the daemon's threads only: the machine is shared, and a
        system-wide profile would mostly show other people's work."""
        rec = self.perf_start(d, f"{tid}-{tg}", ["--", "sleep", str(secs)])
        rec[0].wait()
        return self.perf_stop(rec, d)

    def perf_start(self, d, name, tail=()):
        data = os.path.join(self.work, f"perf-{name}.data")
        # DWARF unwinding: the daemon is built without frame pointers, and
        # the point is to see which of its functions the kernel time is
        # spent under.
        argv = ["perf", "record", "--call-graph", "dwarf,8192", "-F", "499", "-p", str(d.proc.pid),
                "-o", data] + list(tail)
        self.note_cmd("perf record", argv)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.register("pids", proc.pid)
        time.sleep(0.2)         # perf attaches to every thread first
        return (proc, data, time.monotonic(), d.cpu_ticks())

    def perf_stop(self, rec, d):
        proc, data, t0, cpu0 = rec
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait()
        secs = time.monotonic() - t0
        cpu = (d.cpu_ticks() - cpu0) / CLK_TCK
        by_dso = perf_report(data, ["--sort", "dso"], 8)
        by_sym = perf_report(data, ["--sort", "dso,sym"], 22)
        # Inclusive time of the daemon's own functions: which of them the
        # kernel time above is spent under.
        inclusive = [ln for ln in perf_report(data, ["--sort", "dso,sym"], 400, children=True)
                     if re.search(r"\s(lockfs|passthrough_ll|libfuse3\S*)\s", ln)
                     and "[.] 0x" not in ln][:14]
        self.note_cmd("perf report", ["perf", "report", "-i", "FILE", "--stdio", "--no-children",
                                      "-g", "none", "--sort", "dso,sym"])
        if os.path.exists(data):
            os.unlink(data)
        return {"secs": round(secs, 1), "cpu_s": cpu, "by_dso": by_dso, "by_sym": by_sym,
                "inclusive": inclusive}


class Daemon:
    def __init__(self, kind, src, mnt, proc, log):
        self.kind, self.src, self.mnt, self.proc, self.log = kind, src, mnt, proc, log

    def status(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "Threads", "VmHWM"):
                    out[k] = int(v.split()[0])
        return out

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def comm(self):
        with open(f"/proc/{self.proc.pid}/comm") as f:
            return f.read().strip()

    def log_settle(self):
        """Waits until the request trace stops growing (releases are
        sent asynchronously after close)."""
        last, still = -1, 0
        deadline = time.monotonic() + 10
        while still < 3 and time.monotonic() < deadline:
            size = os.path.getsize(self.log)
            still = still + 1 if size == last else 0
            last = size
            time.sleep(0.1)


# ---- helpers -------------------------------------------------------------

def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return True
    return False


def run_out(argv, timeout=300, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def kv(text):
    out = {}
    for item in text.split():
        k, _, v = item.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def rotated(seq, k):
    """seq started at its k-th element: each round of interleaved runs
    starts with a different variant, so none is always the one that runs
    right after the same other one."""
    seq = list(seq)
    k %= len(seq)
    return seq[k:] + seq[:k]


def parse_size(s):
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def zk_word(port, word):
    """A ZooKeeper four-letter word's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(word.encode())
        # The server answers, then closes the connection.
        with s.makefile("rb") as f:
            return f.read().decode(errors="replace")


def zk_received(port):
    """Packets the server received so far (`srvr`'s Received: line)."""
    for line in zk_word(port, "srvr").splitlines():
        if line.startswith("Received:"):
            return int(line.split(":")[1])
    raise RuntimeError("no Received: line in srvr's answer")


def zk_stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fuse_inode_slab():
    """Active fuse_inode objects on the machine (every FUSE mount's), None
    when /proc/slabinfo is not readable."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("fuse_inode "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sync():
    subprocess.run(["sync"], check=True)


def drop_caches():
    sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def print_table(head, rows):
    """A plain-text table on stdout (the log of a run)."""
    rows = [[str(x) for x in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(head)]
    for r in [list(map(str, head))] + rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip(), flush=True)


def read_int(path):
    """The integer in a counter file, None when it holds none."""
    with open(path) as f:
        text = f.read().strip()
    return int(text) if text.lstrip("-").isdigit() else None


def read_file(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def make_tree(src, nfiles):
    """nfiles small text files, 100 to a directory, 1 to 4 KiB each."""
    for i in range(nfiles):
        d = os.path.join(src, "tree", f"d{i // 100:02d}")
        os.makedirs(d, exist_ok=True)
        lines = 16 + (i * 37) % 48
        with open(os.path.join(d, f"f{i:04d}.txt"), "w") as f:
            for j in range(lines):
                f.write(f"file {i} line {j}: the quick brown fox jumps over the lazy dog {i * j}\n")


def grep_skipped(p, nfiles):
    """How many of the tree's files one grep -c did not read (it prints a
    count for each file it read; every count is 0, status 1)."""
    lines = p.stdout.splitlines()
    if p.returncode not in (1, 2) or any(not ln.endswith(":0") for ln in lines):
        raise RuntimeError(f"grep: status {p.returncode}: {p.stderr[:500]}")
    return nfiles - len(lines)


OPCODE = re.compile(r"opcode: ([A-Z_0-9]+) \(")


def count_opcodes(text):
    counts = {}
    for m in OPCODE.finditer(text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def perf_report(data, extra, limit, children=False):
    p = subprocess.run(["perf", "report", "-i", data, "--stdio",
                        "--children" if children else "--no-children", "-g", "none",
                        "--percent-limit", "0.7"] + extra, capture_output=True, text=True)
    lines = [ln.rstrip() for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[:limit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--lockfs", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(w for w in WORKLOADS if w not in OPT_IN))
    ap.add_argument("--merge", action="store_true",
                    help="keep sections of an earlier results file that this run does not redo")
    ap.add_argument("--profile-all", action="store_true")
    args = ap.parse_args()
    only = [w for w in args.only.split(",") if w]
    for w in only:
        if w not in WORKLOADS:
            sys.exit(f"unknown workload {w} (known: {', '.join(WORKLOADS)})")
    b = Bench(args)
    started = time.monotonic()

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.results["machine"] = machine_facts(b)
        for w in WORKLOADS:
            if w in only:
                b.log(f"== {w}")
                try:
                    getattr(b, f"bench_{w}")()
                except KeyboardInterrupt:
                    raise
                except Exception as e:
                    # One broken workload must not cost the others; the
                    # page says what failed.
                    traceback.print_exc()
                    b.unmount_all()
                    b.section(w, {"error": f"{type(e).__name__}: {e}"[:2000]})
        b.results["machine"]["elapsed_s"] = time.monotonic() - started
        b.save()
    finally:
        b.unmount_all()


def machine_facts(b):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = cmd(["git", "-C", ROOT, "rev-parse", "HEAD"])
    dirty = cmd(["git", "-C", ROOT, "status", "--porcelain", "--", "fs", "meson.build",
                 "meson_options.txt"])

    def deb(pkg):
        return cmd(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"
    return {
        "run_id": b.run_id,
        "quick": b.quick,
        "runs": b.runs,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": os.uname().release,
        "mem_gib": round(mem_kb / 2**20, 1),
        "commit": commit,
        "dirty": bool(dirty),
        "libfuse": cmd(["pkg-config", "--modversion", "fuse3"]),
        "fio": cmd(["fio", "--version"]),
        "python": cmd([PY, "--version"]),
        "filelock": deb("python3-filelock"),
        "portalocker": deb("python3-portalocker"),
        "fs": cmd(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", b.work]),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "only": b.args.only,
    }


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
