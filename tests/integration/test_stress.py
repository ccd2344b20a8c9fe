"""Stress: fifty programs doing everything at once through one mount.

Each worker runs for LOCKFS_STRESS_SECONDS (default 60) a random mix of what
programs do to shared files: read-modify-write of a few shared counters,
appends, creates, renames over shared names, unlinks, truncates, sections
under flock(1), running a script that lives in the mount, and plain reads,
while `lockstat --watch` redraws the lock table. Every worker counts what it
did; at the end every counter must be exact, every appended line there, no
worker stuck, the daemon back to its idle descriptors and memory, and its
log free of sanitizer reports.

The counter part alone runs on a plain directory first and must lose
updates there: the load is heavy enough to expose the race.
"""

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import unittest

import harness
from harness import PYTHON, LockfsTestCase, Mount, Programs

WORKERS = 50
COUNTERS = 4
TARGETS = 3
RSS_SLACK_KIB = 8 * 1024
THREADS = 8  # the daemon's request threads (-o threads, default)
PROC_PROBES = 64  # /proc descriptors FLUSH may keep: half of fd_cache, at most 64
SECONDS = float(os.environ.get("LOCKFS_STRESS_SECONDS", "60"))
PLAIN_SECONDS = min(SECONDS, 8.0)
WARMUP_SECONDS = min(SECONDS, 4.0)

# argv: index, seconds, mode ("all", or operations by name: "rmw,read"). Prints one JSON line.
WORKER = textwrap.dedent(r'''
    import errno, fcntl, json, os, random, subprocess, sys, time

    idx, seconds, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    rnd = random.Random(idx * 7919 + 1)
    COUNTERS, TARGETS = %(counters)d, %(targets)d
    counts = {"counter-%%d" %% k: 0 for k in range(COUNTERS)}
    done = {"flock": 0, "appends": 0, "ops": 0}
    errors, mine = [], []

    def err(what, e):
        if len(errors) < 20:
            errors.append("%%s: %%s" %% (what, errno.errorcode.get(getattr(e, "errno", 0), repr(e))))

    def rmw():
        name = "counter-%%d" %% rnd.randrange(COUNTERS)
        with open(name) as f:
            text = f.read()
        try:
            n = int(text)
        except ValueError:
            errors.append("torn %%s: %%r" %% (name, text))
            return
        with open(name, "w") as f:
            f.write(str(n + 1))
        counts[name] += 1

    def append():
        fd = os.open("log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"%%d %%d\n" %% (idx, done["ops"]))
        finally:
            os.close(fd)
        done["appends"] += 1

    def create():
        name = "tmp-%%d-%%d" %% (idx, done["ops"])
        with open(name, "w") as f:
            f.write("x" * rnd.randrange(1, 4096))
        mine.append(name)

    def unlink():
        if mine:
            os.unlink(mine.pop(rnd.randrange(len(mine))))

    def rename_over():
        tmp = "new-%%d-%%d" %% (idx, done["ops"])
        with open(tmp, "w") as f:
            f.write("%%d %%d\n" %% (idx, done["ops"]))
        os.rename(tmp, "target-%%d" %% rnd.randrange(TARGETS))

    def truncate():
        os.truncate("trunc-%%d" %% rnd.randrange(TARGETS), rnd.randrange(8192))

    def flock_section():
        r = subprocess.run(["flock", "flocklock", "sh", "-c",
                            "n=$(cat flockcounter); echo $((n+1)) > flockcounter"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if r.returncode != 0:
            errors.append("flock: %%d %%s" %% (r.returncode, r.stderr[-200:]))
        else:
            done["flock"] += 1

    def run_script():
        r = subprocess.run(["./prog.sh", str(idx)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        if r.returncode != 0 or r.stdout != b"prog %%d\n" %% idx:
            errors.append("exec: %%d %%r %%r" %% (r.returncode, r.stdout, r.stderr[-200:]))

    def read():
        name = rnd.choice(["target-%%d" %% rnd.randrange(TARGETS), "log",
                           "trunc-%%d" %% rnd.randrange(TARGETS)])
        with open(name, "rb") as f:
            data = f.read()
        if name.startswith("target-") and not (data == b"" or
                                               (data.endswith(b"\n") and data.count(b"\n") == 1)):
            errors.append("torn %%s: %%r" %% (name, data[:80]))

    mix = [(rmw, 30), (append, 15), (create, 10), (unlink, 8), (rename_over, 10),
           (truncate, 7), (flock_section, 4), (run_script, 4), (read, 12)]
    if mode != "all":  # a comma-separated choice, e.g. "rmw" for the counters
        mix = [(f, w) for f, w in mix if f.__name__ in mode.split(",")]
    funcs = [f for f, _ in mix]
    weights = [w for _, w in mix]
    deadline = time.monotonic() + seconds
    timing = {}  # operation: [count, total seconds, max seconds]
    while time.monotonic() < deadline:
        op = rnd.choices(funcs, weights)[0]
        t0 = time.monotonic()
        try:
            op()
        except (OSError, subprocess.SubprocessError) as e:
            err(op.__name__, e)
        t = timing.setdefault(op.__name__, [0, 0.0, 0.0])
        dt = time.monotonic() - t0
        t[0] += 1
        t[1] += dt
        t[2] = max(t[2], dt)
        done["ops"] += 1
    for name in mine:
        try:
            os.unlink(name)
        except OSError as e:
            err("cleanup", e)
    print(json.dumps({"counts": counts, "done": done, "errors": errors, "timing": timing}),
          flush=True)
''') % {"counters": COUNTERS, "targets": TARGETS}

PROG = "#!/bin/sh\necho prog \"$1\"\n"


def setup_files(d):
    """The shared files, written directly (plain) or through the mount."""
    for k in range(COUNTERS):
        with open(os.path.join(d, "counter-%d" % k), "w") as f:
            f.write("0")
    for k in range(TARGETS):
        with open(os.path.join(d, "target-%d" % k), "w") as f:
            f.write("0 0\n")
        with open(os.path.join(d, "trunc-%d" % k), "w") as f:
            f.write("")
    for name, text in (("flockcounter", "0"), ("flocklock", ""), ("log", "")):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    with open(os.path.join(d, "prog.sh"), "w") as f:
        f.write(PROG)
    os.chmod(os.path.join(d, "prog.sh"), 0o755)


def read_int(path):
    with open(path) as f:
        return int(f.read())


def asan_daemon(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


class Stress(LockfsTestCase):
    def run_workers(self, d, seconds, mode):
        script = os.path.join(self.make_tempdir(), "worker.py")
        with open(script, "w") as f:
            f.write(WORKER)
        cmds = [[PYTHON, script, str(i), str(seconds), mode] for i in range(WORKERS)]
        results = []
        with Programs(cmds, cwd=d) as g:
            # Every worker stops by itself at `seconds`; a minute more for
            # the last operations and the exit is "stuck".
            codes = g.wait(seconds + 60)
            for i, code in enumerate(codes):
                out, err = g.output(i)
                self.assertEqual(code, 0, "worker %d failed:\n%s" % (i, err[-2000:]))
                results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    def totals(self, results):
        counts = {"counter-%d" % k: 0 for k in range(COUNTERS)}
        flock = appends = ops = 0
        for r in results:
            for k, v in r["counts"].items():
                counts[k] += v
            flock += r["done"]["flock"]
            appends += r["done"]["appends"]
            ops += r["done"]["ops"]
        return counts, flock, appends, ops

    def print_timing(self, results):
        """Per operation: how many, mean and worst latency (for the log)."""
        agg = {}
        for r in results:
            for op, (n, total, worst) in r["timing"].items():
                a = agg.setdefault(op, [0, 0.0, 0.0])
                a[0] += n
                a[1] += total
                a[2] = max(a[2], worst)
        for op, (n, total, worst) in sorted(agg.items()):
            print("  %-14s %6d  mean %7.1f ms  max %7.1f ms"
                  % (op, n, 1000 * total / max(n, 1), 1000 * worst))

    def test_plain_directory_loses_updates(self):
        """The counter part on a plain directory: increments are lost (or
        a reader meets a truncated file)."""
        d = self.make_tempdir()
        setup_files(d)
        results = self.run_workers(d, PLAIN_SECONDS, "rmw")
        counts, _, _, _ = self.totals(results)
        final = {}
        for k in counts:
            with open(os.path.join(d, k)) as f:
                final[k] = f.read()
        # Lost updates leave a counter below its count; two writers
        # overwriting each other's digits ("99" over "100": "990") leave
        # it anywhere, or not a number at all.
        wrong = [k for k in counts if final[k] != str(counts[k])]
        torn = sum(len([e for e in r["errors"] if e.startswith("torn")]) for r in results)
        print("\nplain directory, %d workers for %.0f s: counted %s, files hold %s, "
              "%d torn reads" % (WORKERS, PLAIN_SECONDS, counts, final, torn))
        self.assertTrue(wrong or torn, "the plain directory lost nothing: load too light")

    def test_fifty_programs_through_the_mount(self):
        with Mount() as m:
            setup_files(m.mnt)
            # Idle is measured after a short warm-up, once every request
            # thread has grown its malloc arena and its splice pipe: what
            # grows after that grows with the work.
            warm = self.run_workers(m.mnt, WARMUP_SECONDS, "rmw,append,create,unlink,run_script")
            time.sleep(1.5)
            idle = harness.daemon_usage(m.pid)
            out = open(os.path.join(self.make_tempdir(), "lockstat.out"), "w+")
            self.addCleanup(out.close)
            lockstat = os.path.join(os.environ.get("LOCKFS_BUILD_ROOT",
                                                   os.path.join(harness.REPO_ROOT, "build")),
                                    "tools", "lockstat")
            watch = subprocess.Popen([lockstat, "--watch=1", m.mnt],
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
            try:
                t0 = time.monotonic()
                results = self.run_workers(m.mnt, SECONDS, "all")
                elapsed = time.monotonic() - t0
                self.assertIsNone(watch.poll(), "lockstat --watch ended during the run")
            finally:
                if watch.poll() is None:
                    watch.send_signal(signal.SIGINT)
                try:
                    watch.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    watch.kill()
                    watch.wait()
            out.seek(0)
            shown = out.read()
            self.assertIn(watch.returncode, (0, -signal.SIGINT, 130), shown[-2000:])
            self.assertRegex(shown, r"counter-\d", "lockstat never showed a counter's lock")

            counts, flock, appends, ops = self.totals(results + warm)
            errors = [e for r in results + warm for e in r["errors"]]
            print("\nmount, %d workers for %.0f s (%.1f s wall): %d operations, %s, flock %d, "
                  "appends %d, errors %d" % (WORKERS, SECONDS, elapsed, ops, counts, flock,
                                            appends, len(errors)))
            self.print_timing(results)
            print(harness.run([lockstat, "--stats", "--top", "12", m.mnt]).stdout)
            # A read open racing two renames over the same name can still
            # get ESTALE: the daemon's ESTALE (look the name up again) meets
            # the second rename within the kernel's single retry. Known and
            # documented (docs/semantics.md); rare (a few in tens of
            # thousands of reads), so a handful is let through here and
            # counted, while every other error fails the test.
            stale_reads = [e for e in errors if e == "read: ESTALE"]
            if stale_reads:
                print("reads that got ESTALE: %d" % len(stale_reads))
            self.assertLessEqual(len(stale_reads), 3)
            self.assertEqual([e for e in errors if e != "read: ESTALE"], [])
            for k, v in counts.items():
                self.assertEqual(read_int(m.src_path(k)), v, k)
            self.assertEqual(read_int(m.src_path("flockcounter")), flock)
            with open(m.src_path("log"), "rb") as f:
                self.assertEqual(f.read().count(b"\n"), appends)
            leftovers = [n for n in os.listdir(m.src) if re.match(r"(tmp|new)-", n)]
            self.assertEqual(leftovers, [])

            # Back to idle once the kernel has forgotten the removed files:
            # no owner (pidfd) or handle left, no more inode descriptors
            # than names (a few kept by the kernel's cache are allowed).
            # The names: every entry of the source, and its root. The
            # warm-up did not touch every file, so idle may have fewer.
            names = 1 + sum(len(ds) + len(fs) for _, ds, fs in os.walk(m.src))
            deadline = time.monotonic() + 20
            while True:
                after = harness.daemon_usage(m.pid)
                k, i = after["kinds"], idle["kinds"]
                settled = (k["pidfd"] <= i["pidfd"] and k["file"] <= i["file"] and
                           k["other"] <= i["other"] and
                           k["path"] <= max(i["path"], names) + 4 and
                           k["pipe"] <= 2 * THREADS and k["proc"] <= PROC_PROBES)
                if settled or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            print("daemon idle %s, after %s, %d names" % (idle, after, names))
            self.assertTrue(settled, "descriptors leaked: idle %s, after %s" % (idle, after))
            # Memory: after the warm-up the arenas exist, but glibc keeps
            # freed memory in them and their heaps grow in steps, so RSS
            # may end a little above idle (about 1 MiB measured over a
            # minute's run, warm-up included). RSS_SLACK_KIB is 8 times
            # that; a leak below it shows in ASan's LeakSanitizer at exit
            # instead (run this test against the sanitizer build), which
            # is also why RSS is not checked there: ASan holds freed
            # memory in its quarantine (256 MiB) by design.
            if not asan_daemon(m.pid):
                growth = after["rss_kib"] - idle["rss_kib"]
                self.assertLess(growth, RSS_SLACK_KIB,
                                "daemon RSS grew by %d KiB over %d operations" % (growth, ops))
            self.assertEqual(m.stop(), 0)
        reports = harness.sanitizer_reports(m.stderr_text)
        self.assertEqual(reports, [], m.stderr_text[-4000:])


if __name__ == "__main__":
    unittest.main()
