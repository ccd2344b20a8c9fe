#!/usr/bin/python3
"""Turns bench/out/results.json into docs/benchmarks.md and its plots.

    report.py --results FILE --out MARKDOWN [--notes bench/notes.md]

Each figure is quoted as the median over the runs with the minimum and
maximum beside it; each ratio is taken within one round of interleaved runs
and then summarized the same way. The verdicts against the issue's targets are
computed here, from the same numbers the tables show.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

TARGET_NAMES = {"plain": "plain directory", "pll": "passthrough_ll",
                "lockfs-none": "lockfs, every path policy none", "lockfs": "lockfs (default)"}
TARGETS = ["plain", "pll", "lockfs-none", "lockfs"]
FIO_JOBS = [("seqwrite", "sequential write, 1 MiB blocks", "MiB/s"),
            ("seqread_warm", "sequential read, warm (file in the page cache)", "MiB/s"),
            ("seqread_cold", "sequential read, cold (caches dropped before each run)", "MiB/s"),
            ("randread_warm", "random read, 4 KiB blocks, warm", "IOPS")]


# ---- statistics ----------------------------------------------------------

def mmm(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return (statistics.median(values), min(values), max(values))


def ratios(a, b):
    """Per-round ratios a[i] / b[i]."""
    return [x / y for x, y in zip(a, b) if x is not None and y]


def fmt_num(v, unit=""):
    if v is None:
        return "—"
    if float(v).is_integer():
        return f"{int(v):,}{unit}"      # counts, and medians of them
    a = abs(v)
    if a >= 100:
        s = f"{v:,.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3f}"
    return s + unit


def fmt_mmm(m, unit=""):
    if m is None:
        return "—"
    return f"{fmt_num(m[0], unit)} ({fmt_num(m[1])}–{fmt_num(m[2])})"


def fmt_ratio(m):
    if m is None:
        return "—"
    return f"{m[0]:.2f}× ({m[1]:.2f}–{m[2]:.2f})"


# ---- targets -------------------------------------------------------------

def evaluate_targets(res):
    """The issue's targets, each with the measured value and whether it is
    met (True/False, None when not measured)."""
    out = []

    def add(tid, metric, target, value, met, note=""):
        out.append({"id": tid, "metric": metric, "target": target, "value": value,
                    "met": met, "note": note})

    c = res.get("counter")
    if c:
        lf = [r["wall"] for r in c["runs"]["lockfs"]["10"]]
        fl = [r["wall"] for r in c["runs"]["filelock"]["10"]]
        m = mmm(ratios(lf, fl))
        add("counter10", "unmodified counter, 10 procs, lockfs vs filelock-protected counter "
            "on the plain directory (wall time)", "≤ 1.0×", fmt_ratio(m), m[0] <= 1.0 if m else None)
    else:
        add("counter10", "unmodified counter, 10 procs, lockfs vs filelock (wall time)",
            "≤ 1.0×", "not measured", None)

    mt = res.get("meta")
    if mt:
        lf = [r["rate"] for r in mt["runs"]["openclose"]["lockfs"]]
        pl = [r["rate"] for r in mt["runs"]["openclose"]["pll"]]
        m = mmm(ratios(lf, pl))
        add("openclose", "open+close rate, lockfs default vs passthrough_ll", "≥ 2×",
            fmt_ratio(m), m[0] >= 2.0 if m else None)
    else:
        add("openclose", "open+close rate, lockfs default vs passthrough_ll", "≥ 2×",
            "not measured", None)

    fio = res.get("fio")
    for tid, job, metric, goal, cmp in (
            ("seqread", "seqread_warm", "fio seq read (warm), lockfs vs passthrough_ll", 3.0, "ge"),
            ("seqwrite", "seqwrite", "fio seq write, lockfs vs passthrough_ll", 1.0, "ge")):
        if fio and fio["runs"][job]["lockfs"]:
            m = mmm(ratios(fio["runs"][job]["lockfs"], fio["runs"][job]["pll"]))
            add(tid, metric, f"≥ {goal:.1f}×", fmt_ratio(m), m[0] >= goal if m else None)
        else:
            add(tid, metric, f"≥ {goal:.1f}×", "not measured", None)

    h = res.get("handoff")
    if h:
        m = mmm(ratios([r["p50"] for r in h["runs"]["lockfs"]], [r["p50"] for r in h["runs"]["flock"]]))
        add("handoff", "handoff p50, lockfs vs flock on the plain directory", "≤ 2×",
            fmt_ratio(m), m[0] <= 2.0 if m else None)
    else:
        add("handoff", "handoff p50, lockfs vs flock on the plain directory", "≤ 2×",
            "not measured", None)

    g = res.get("grep")
    if g:
        lf, pl = g["runs"]["lockfs"]["plain"], g["runs"]["pll"]["plain"]
        m = mmm(ratios(lf["two"], pl["two"]))
        skipped = mmm(lf["skipped_two"])
        value = fmt_ratio(m)
        note = ""
        if skipped[2]:
            value += f"; the two greps skipped {fmt_mmm(skipped)} files (EAGAIN)"
            note = "greps through lockfs did not read every file"
        add("grep2", "2 greps through lockfs vs 2 greps through passthrough_ll (wall time)",
            "≤ 1.3×", value, (m[0] <= 1.3 and not skipped[2]) if m else None, note=note)
    else:
        add("grep2", "2 greps through lockfs vs 2 greps through passthrough_ll", "≤ 1.3×",
            "not measured", None)

    readers_targets(res, add)
    tree_targets(res, add)

    cl = res.get("cluster")
    metric = ("counter (4 processes) on one mount of a cluster, the other mount idle, vs a "
              "lockfs mount without the cluster (rate)")
    if cl:
        m = mmm(cluster_local_ratios(cl))
        add("cluster_local", metric, "≥ 0.8×", fmt_ratio(m), m[0] >= 0.8 if m else None)
    else:
        add("cluster_local", metric, "≥ 0.8×", "not measured", None)

    ho = res.get("hold")
    if ho and ho["runs"]["lockfs"]:
        held = mmm([r["rss_kb_opened"] / 1024 for r in ho["runs"]["lockfs"]])
        if ho["count"] >= 100000:
            add("rss100k", "100k locked files: daemon RSS", "≤ 64 MiB",
                fmt_mmm(held, " MiB"), held[0] <= 64)
        else:
            proj = mmm([project_rss(r, 100000) / 1024 for r in ho["runs"]["lockfs"]])
            add("rss100k", "100k locked files: daemon RSS", "≤ 64 MiB",
                f"{fmt_mmm(held, ' MiB')} with {ho['count']:,} files; "
                f"{fmt_num(proj[0], ' MiB')} projected for 100,000",
                None, note=f"only {ho['count']:,} files fit under RLIMIT_NOFILE "
                f"{ho['nofile_hard']} (projection {'within' if proj[0] <= 64 else 'over'} target)")
    else:
        add("rss100k", "100k locked files: daemon RSS", "≤ 64 MiB", "not measured", None)

    w = res.get("waiters")
    if w and w["runs"]:
        one = mmm([r["threads_1"] for r in w["runs"]])
        many = mmm([r["threads_n"] for r in w["runs"]])
        peak = mmm([r["threads_max"] for r in w["runs"]])
        # The verdict compares the daemon with all waiters parked against
        # the daemon with one parked, each measured once the arrivals have
        # settled; the peak (libfuse's worker pool growing for a moment
        # while requests arrive faster than its workers take them) is
        # shown beside it.
        worst = max(r["threads_n"] - r["threads_1"] for r in w["runs"])
        add("threads1000", f"{w['n']:,} waiters: daemon threads", "no more than with 1 waiter",
            f"{fmt_num(many[0])} with {w['n']:,} vs {fmt_num(one[0])} with 1 "
            f"(peak while they arrived {fmt_num(peak[2])})", worst <= 0 if w["n"] >= 1000 else None,
            note="" if w["n"] >= 1000 else f"only {w['n']} waiters (quick run)")
    else:
        add("threads1000", "1,000 waiters: daemon threads", "no more than with 1 waiter",
            "not measured", None)
    return out


# The readers workload's targets: (target id, workload, baseline, metric,
# goal, variant of first contention or None).
READERS_TARGETS = [
    ("readers_loop1", "loop1", "pll",
     "one shell loop of 100 × `cat f >/dev/null; n=$(cat f); grep -q on f`, lockfs vs "
     "passthrough_ll (wall time)", 2.0, None),
    ("readers_loop4", "loop4", "pll",
     "four such shell loops of 25 at once, lockfs vs passthrough_ll (wall time)", 2.0,
     "loop4_first"),
    ("readers_threads", "threads", "pll",
     "Python: 4 threads × 200 reads of one file, then 50 short-lived threads reading once, "
     "lockfs vs passthrough_ll (wall time)", 3.0, "threads_first"),
    ("readers_flock", "flock", "plain",
     "flock(1): 8 shells × 25 `flock c.lock -c 'n=$(cat c); echo $((n+1)) > c'`, lockfs vs "
     "the plain directory (wall time; the count must be exact)", 1.5, None),
    ("readers_tothread", "tothread", "plain",
     "asyncio.to_thread counter, 5 processes × 40 increments, lockfs vs the plain directory "
     "(wall time; lockfs must be exact)", 3.0, None),
]


def readers_ratio(runs, w, base):
    r = runs.get(w)
    if not r or not r["lockfs"]:
        return None
    return mmm(ratios([x["wall"] for x in r["lockfs"]], [x["wall"] for x in r[base]]))


def per_increment_ratio(r):
    """Time per increment actually made (torn reads skipped), lockfs over
    the plain directory, per round."""
    def per(x):
        done = x["attempted"] - x.get("torn", 0)
        return x["wall"] / done if done else None
    return mmm(ratios([per(x) for x in r["lockfs"]], [per(x) for x in r["plain"]]))


def readers_targets(res, add):
    rd = res.get("readers")
    for tid, w, base, metric, goal, first in READERS_TARGETS:
        m = readers_ratio(rd["runs"], w, base) if rd else None
        if m is None:
            add(tid, metric, f"≤ {goal:g}×", "not measured", None)
            continue
        value, met, note = fmt_ratio(m), m[0] <= goal, ""
        if first:
            mf = readers_ratio(rd["runs"], first, base)
            if mf:
                value += (f" on a file lockfs has seen read before; {fmt_ratio(mf)} on a file "
                          "read through the mount for the first time")
                if mf[0] > goal:
                    note = "over the target on a file's first contention"
        if w in ("flock", "tothread"):
            lf = rd["runs"][w]["lockfs"]
            bad = [x for x in lf if x["final"] != x["attempted"]]
            if bad:
                met = False
                value += ("; lockfs's count was not exact in "
                          f"{len(bad)} of {len(lf)} runs (finals {', '.join(str(x['final']) for x in bad)})")
            else:
                value += f"; lockfs exact in every run ({lf[0]['attempted']})"
            if w == "flock":
                pl = rd["runs"][w]["plain"]
                if any(x["final"] != x["attempted"] for x in pl):
                    value += "; flock on the plain directory was not exact either"
            else:
                pl = rd["runs"][w]["plain"]
                if any(x["final"] != x["attempted"] for x in pl):
                    value += "; the plain directory: " + counter_outcome(pl)
                if any(x.get("torn") for x in pl):
                    value += ("; per increment made (the plain directory skips its torn reads): "
                              + fmt_ratio(per_increment_ratio(rd["runs"][w])))
        add(tid, metric, f"≤ {goal:g}×", value, met, note=note)


def project_rss(r, n):
    """Linear projection of the held RSS to n files from the measured
    cost per file."""
    per_file = (r["rss_kb_opened"] - r["rss_kb_ready"]) / r["count"]
    return r["rss_kb_ready"] + per_file * n


def cluster_local_ratios(cl):
    return ratios([r["rate"] for r in cl["runs"]["one"]], [r["rate"] for r in cl["runs"]["solo"]])


# ---- sections --------------------------------------------------------------

class Doc:
    def __init__(self, res, outdir, notes):
        self.res = res
        self.outdir = outdir
        self.notes = notes
        self.lines = []
        self.pngs = []

    def p(self, text=""):
        self.lines.append(text)

    def table(self, head, rows):
        self.p("| " + " | ".join(head) + " |")
        self.p("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            self.p("| " + " | ".join(str(x) for x in r) + " |")
        self.p()

    def req(self, key, tg):
        rq = self.res.get("requests", {}).get("per_op", {}).get(tg, {}).get(key)
        if rq is None:
            return "—" if tg in ("pll", "lockfs-none", "lockfs") else "0 (no FUSE)"
        return f"{rq['total']:.2f}"


def machine(doc):
    m = doc.res["machine"]
    doc.p("## Machine")
    doc.p()
    commit = m["commit"][:12] + (" + uncommitted changes in fs/" if m["dirty"] else "")
    doc.table(["fact", "value"], [
        ("date", m["date"]),
        ("lockfs commit", f"`{commit}`"),
        ("CPU", f"{m['cpu']}, {m['nproc']} CPUs (nproc)"),
        ("memory", f"{m['mem_gib']} GiB"),
        ("kernel", m["kernel"]),
        ("libfuse", m["libfuse"]),
        ("file system under every target", m["fs"]),
        ("RLIMIT_NOFILE (soft, hard)", f"{m['nofile'][0]}, {m['nofile'][1]}"),
        ("fio", m["fio"]),
        ("Python", f"{m['python']} (/usr/bin/python3), python3-filelock {m['filelock']}, "
                   f"python3-portalocker {m['portalocker']}"),
        ("runs per figure", f"{m['runs']}" + (" (quick run)" if m["quick"] else "")),
        ("total time of the run", f"{m.get('elapsed_s', 0) / 60:.1f} min"),
    ])


def targets_section(doc):
    doc.p("## Targets")
    doc.p()
    doc.p("Medians over the runs, minimum–maximum in brackets. A ratio compares lockfs with "
          "the baseline named in the row, measured in the same round of runs.")
    doc.p()
    rows = []
    for t in evaluate_targets(doc.res):
        verdict = {True: "**met**", False: "**missed**", None: "not measured"}[t["met"]]
        if t["note"]:
            verdict += f" ({t['note']})"
        rows.append((t["metric"], t["target"], t["value"], verdict))
    doc.table(["metric", "target", "measured", "verdict"], rows)


def counter_section(doc):
    c = doc.res.get("counter")
    if not c:
        return
    runs = c["runs"]
    doc.p("## 1. Counter: ten copies of an unmodified script")
    doc.p()
    doc.p(f"Each of N processes runs the read-close-reopen-write loop of the README "
          f"({c['total']} increments in all, split evenly). Workers start their loops together "
          "after the interpreter has started, and the time runs from the first loop's start to "
          "the last loop's end. `filelock` wraps each read-modify-write in "
          "`filelock.FileLock(\"c.lock\")`, `portalocker` in "
          "`portalocker.Lock(\"c.lock\", timeout=600)`, both on the plain directory; both "
          "libraries poll (`LOCK_NB` and a sleep: 50 ms for filelock, 250 ms for portalocker). "
          "A *torn read* is a read that found the file empty or cut short by another process's "
          "truncation: the unmodified script dies of `ValueError` there, the benchmark counts it "
          "and goes on. *Lost* = increments done − final value.")
    doc.p()
    rows = []
    for n in c["ns"]:
        fl = [r["rate"] for r in runs["filelock"][str(n)]]
        for v in ("lockfs", "plain", "filelock", "portalocker"):
            rs = runs[v][str(n)]
            rate = mmm([r["rate"] for r in rs])
            vs = mmm(ratios([r["rate"] for r in rs], fl))
            finals = [r["final"] for r in rs]
            lost = mmm([r["lost"] for r in rs if r["lost"] is not None])
            torn = mmm([r["torn"] for r in rs])
            exact = all(r["final"] == r["attempted"] and r["torn"] == 0 for r in rs)
            name = {"lockfs": "unmodified, on lockfs", "plain": "unmodified, plain directory",
                    "filelock": "filelock.FileLock, plain", "portalocker": "portalocker.Lock, plain"}[v]
            verdict = "exact in every run" if exact else (
                f"lost {fmt_mmm(lost)}, torn reads {fmt_mmm(torn)}")
            if not exact and None in finals:
                verdict += "; file left unreadable in some runs"
            rows.append((n, name, fmt_mmm(rate), fmt_ratio(vs), verdict))
    doc.table(["N", "variant", "increments/s", "rate vs filelock", "final value"], rows)
    rq = doc.res.get("requests", {}).get("per_op", {})
    if rq:
        doc.p("FUSE requests per increment (one process): " + ", ".join(
            f"{TARGET_NAMES[tg]} {rq[tg]['counter']['total']:.2f}" for tg in ("pll", "lockfs-none", "lockfs")
            if tg in rq and "counter" in rq[tg]) + ".")
        doc.p()
    png = plot_counter(doc, c)
    if png:
        doc.p(f"![increments per second against N]({png})")
        doc.p()


def plot_counter(doc, c):
    name = "bench-counter.png"
    dat = os.path.join(doc.outdir, ".bench-counter.dat")
    variants = [("lockfs", "unmodified on lockfs"), ("plain", "unmodified on plain dir (loses updates)"),
                ("filelock", "filelock on plain dir"), ("portalocker", "portalocker on plain dir")]
    with open(dat, "w") as f:
        for i, (v, _) in enumerate(variants):
            for n in c["ns"]:
                m = mmm([r["rate"] for r in c["runs"][v][str(n)]])
                f.write(f"{n} {m[0]} {m[1]} {m[2]}\n")
            f.write("\n\n")
    plots = ", ".join(f"'{dat}' index {i} using 1:2:3:4 with yerrorlines lw 2 pt 7 title '{t}'"
                      for i, (_, t) in enumerate(variants))
    script = f"""
set terminal pngcairo size 900,560 font 'sans,11' noenhanced
set output '{os.path.join(doc.outdir, name)}'
set title 'Counter: increments per second against processes (median, min-max bars)'
set xlabel 'processes (N)'
set ylabel 'increments/s'
set logscale y
set xtics (1, 2, 4, 10)
set xrange [0.5:10.5]
set key outside bottom center horizontal maxrows 2
set grid ytics
plot {plots}
"""
    ok = gnuplot(script)
    os.unlink(dat)
    return name if ok else None


def gnuplot(script):
    try:
        p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    except OSError:
        return False
    if p.returncode != 0:
        print(f"gnuplot: {p.stderr}", file=sys.stderr)
    return p.returncode == 0


def handoff_section(doc):
    h = doc.res.get("handoff")
    if not h:
        return
    doc.p("## 2. Lock handoff latency")
    doc.p()
    doc.p(f"Two processes pass one file back and forth ({h['handoffs_per_run']} handoffs per run, "
          "`bench/handoff.c`): each opens it `O_RDWR`, reads the previous holder's token, writes its "
          "own and closes. Through lockfs the other process waits inside `open()`; on the plain "
          "directory it waits in `flock(LOCK_EX)` after opening. Latency is from the moment the "
          "holder starts `close()` to the moment the waiter's `open()` (or `flock()`) returns, "
          "counted only when the waiter was already waiting. *Re-acquired* counts the times the "
          "releasing process got the lock straight back instead (flock is not fair).")
    doc.p()
    rows = []
    for mode, name in (("lockfs", "lockfs lock (open blocks)"), ("flock", "flock(), plain directory")):
        rs = h["runs"][mode]
        rows.append((name,
                     fmt_mmm(mmm([r["p50"] / 1000 for r in rs])),
                     fmt_mmm(mmm([r["p90"] / 1000 for r in rs])),
                     fmt_mmm(mmm([r["p99"] / 1000 for r in rs])),
                     fmt_ratio(mmm(ratios([r["p50"] for r in rs], [r["p50"] for r in h["runs"]["flock"]]))),
                     fmt_ratio(mmm(ratios([r["p99"] for r in rs], [r["p99"] for r in h["runs"]["flock"]]))),
                     fmt_mmm(mmm([r["again"] / (r["handoffs"] + r["again"]) * 100 for r in rs]), " %")))
    doc.table(["mechanism", "p50 µs", "p90 µs", "p99 µs", "p50 vs flock", "p99 vs flock",
               "re-acquired"], rows)
    rq = doc.res.get("requests", {}).get("per_op", {}).get("lockfs", {}).get("handoff")
    if rq:
        doc.p(f"FUSE requests per acquisition through lockfs: {rq['total']:.2f} "
              f"({by_op(rq)}).")
        doc.p()


def by_op(rq):
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(rq["by_op"].items(), key=lambda kv: -kv[1]))


def meta_section(doc):
    mt = doc.res.get("meta")
    if not mt:
        return
    doc.p("## 3. Metadata rates")
    doc.p()
    doc.p(f"One process, one 8-byte file, {mt['secs']} s per run (`bench/metarate.c`). "
          "*Daemon CPU* is the daemon's user+system time per operation (from /proc/PID/stat). "
          "passthrough_ll is libfuse's example built from Debian's libfuse3-dev with default "
          "options (1 s entry and attribute timeouts, no writeback cache, like lockfs's defaults).")
    doc.p()
    names = {"openclose": "open `O_RDONLY` + close", "trunc": "open `O_TRUNC` + write 8 bytes + close",
             "stat": "stat"}
    for op in mt["ops"]:
        runs = mt["runs"][op]
        rows = []
        for tg in TARGETS:
            rates = [r["rate"] for r in runs[tg]]
            cpu = mmm([r.get("daemon_cpu_us") for r in runs[tg]])
            rows.append((TARGET_NAMES[tg], fmt_mmm(mmm(rates)),
                         fmt_ratio(mmm(ratios(rates, [r["rate"] for r in runs["plain"]]))),
                         fmt_ratio(mmm(ratios(rates, [r["rate"] for r in runs["pll"]]))),
                         doc.req(op, tg), fmt_mmm(cpu) if cpu else "—"))
        doc.p(f"**{names[op]}**")
        doc.p()
        doc.table(["target", "ops/s", "vs plain", "vs passthrough_ll", "FUSE requests/op",
                   "daemon CPU µs/op"], rows)
    png = plot_meta(doc, mt)
    if png:
        doc.p(f"![metadata rates]({png})")
        doc.p()


def plot_meta(doc, mt):
    name = "bench-meta.png"
    dat = os.path.join(doc.outdir, ".bench-meta.dat")
    with open(dat, "w") as f:
        f.write("op " + " ".join(f'"{TARGET_NAMES[t].replace("`", "")}"' for t in TARGETS) + "\n")
        for op in mt["ops"]:
            f.write(op + " " + " ".join(str(mmm([r["rate"] for r in mt["runs"][op][t]])[0])
                                        for t in TARGETS) + "\n")
    script = f"""
set terminal pngcairo size 900,520 font 'sans,11' noenhanced
set output '{os.path.join(doc.outdir, name)}'
set title 'Metadata operations per second (median of runs)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'operations/s'
set key outside bottom center horizontal
set grid ytics
plot for [i=2:5] '{dat}' using i:xtic(1) title columnheader(i)
"""
    ok = gnuplot(script)
    os.unlink(dat)
    return name if ok else None


def fio_section(doc):
    fio = doc.res.get("fio")
    if not fio:
        return
    doc.p("## 4. Data throughput (fio)")
    doc.p()
    doc.p(f"`fio --ioengine=psync --direct=0`, one job. Sequential jobs use a {fio['seq_size']} file "
          f"and 1 MiB blocks; random reads read {fio['rand_io']} in 4 KiB blocks from a "
          f"{fio['rand_size']} file. *Warm*: the file was just written (or read once, untimed) "
          "through the same target, so it is in the page cache; lockfs and passthrough_ll then "
          "differ in whether the kernel keeps the mount's own cached pages across opens. *Cold*: "
          "`sync; echo 3 > /proc/sys/vm/drop_caches` before the run, so the data comes from the "
          "disk." + ("" if fio["cold"] else " (Not run: /proc/sys/vm/drop_caches was not writable.)")
          + " The write job is not followed by fsync (the data lands in the page cache; `sync` "
          "runs untimed between jobs). Before each timed write an untimed write of the same size "
          "to a scratch file of the plain directory, deleted at once, makes sure the memory the "
          "timed write gets is ready: on this VM the first large write after memory was freed "
          "(by `drop_caches` or a deleted file) runs up to ten times slower whatever its target. "
          "Each round runs all writes, then all warm reads, then all random reads, then all cold "
          "reads, starting with a different target each round.")
    doc.p()
    req_key = {"seqwrite": ("seqwrite_MiB", "per MiB"), "seqread_warm": ("seqread_warm_MiB", "per MiB"),
               "randread_warm": ("randread_warm_op", "per 4 KiB read")}
    for job, title, unit in FIO_JOBS:
        runs = fio["runs"][job]
        if not runs["plain"]:
            continue
        rows = []
        for tg in TARGETS:
            rows.append((TARGET_NAMES[tg], fmt_mmm(mmm(runs[tg])),
                         fmt_ratio(mmm(ratios(runs[tg], runs["plain"]))),
                         fmt_ratio(mmm(ratios(runs[tg], runs["pll"]))),
                         doc.req(req_key[job][0], tg) if job in req_key else "—"))
        doc.p(f"**{title}**")
        doc.p()
        rq_head = f"FUSE requests {req_key[job][1]}" if job in req_key else "FUSE requests"
        doc.table(["target", unit, "vs plain", "vs passthrough_ll", rq_head], rows)


def grep_section(doc):
    g = doc.res.get("grep")
    if not g:
        return
    doc.p("## 5. Readers side by side")
    doc.p()
    doc.p(f"`grep -r -F -c NEEDLE tree` over {g['files']:,} files of 1–4 KiB in 20 directories "
          "(no match, so every byte is read), once alone and twice at the same time; wall time "
          "until the last grep exits. Every cache was warmed by one untimed grep. *Skipped* counts "
          "the files a grep could not open (with both greps together: out of "
          f"{2 * g['files']:,}). GNU grep opens the files it finds while recursing with "
          "`O_NONBLOCK` (so that a fifo cannot hang it); lockfs lets such a read open in beside "
          "other readers without taking a lock (a *peek*, docs/semantics.md) and answers it "
          "`EAGAIN` only while a writer holds the file, so two greps skip nothing. The second "
          "table forces blocking opens (`--devices=read`): each file is then locked in turn, "
          "and the two greps take turns on the files they both want.")
    doc.p()
    for v, title in (("plain", "`grep -r` as typed"),
                     ("blocking", "`grep -r --devices=read` (blocking opens)")):
        if v not in g["runs"]["plain"]:
            continue
        rows = []
        for tg in TARGETS:
            r = g["runs"][tg][v]
            rows.append((TARGET_NAMES[tg], fmt_mmm(mmm([x * 1000 for x in r["one"]])),
                         fmt_mmm(mmm([x * 1000 for x in r["two"]])),
                         fmt_ratio(mmm(ratios(r["two"], r["one"]))),
                         fmt_ratio(mmm(ratios(r["two"], g["runs"]["pll"][v]["two"]))),
                         fmt_mmm(mmm(r["skipped_one"])), fmt_mmm(mmm(r["skipped_two"])),
                         doc.req("grep_file", tg) if v == "plain" else "—"))
        doc.p(f"**{title}**")
        doc.p()
        doc.table(["target", "1 grep, ms", "2 greps, ms", "2 greps vs 1", "2 greps vs passthrough_ll",
                   "skipped, 1 grep", "skipped, 2 greps", "FUSE requests per file"], rows)


def lease_head(ls):
    total = ls["procs"] * ls["iters"]
    return ["lease", f"lost of {total}, `$(cat c)`", f"lost of {total}, `$(timeout 60 cat c)`",
            "`$(cat c)` counter vs lease 0 (rate)", "readers, reads/s, first (fresh mount)",
            "vs lease 0", "readers' waits, first (count, total)", "readers, reads/s, again",
            "vs lease 0", "readers' waits, again", "a writer after a reader waited"]


def lease_rows(ls, load):
    """One row per lease of the sweep, for one load (report.py's table,
    and the table bench.py prints)."""
    runs = ls["runs"][load]
    base = runs["0"] if "0" in runs else None
    rows = []
    for ms in ls["leases_ms"]:
        rs = runs[str(ms)]
        if not rs:
            continue
        row = [f"{ms} ms" + (" (default)" if ms == 250 else "")]
        for v in ("cat", "timeout"):
            lost = [r[v]["lost"] for r in rs if r[v]["lost"] is not None]
            cell = fmt_mmm(mmm(lost)) if lost else "—"
            if len(lost) < len(rs):
                cell += f"; left unreadable in {len(rs) - len(lost)} runs"
            if any(r[v]["stderr_lines"] for r in rs):
                cell += f"; {sum(r[v]['stderr_lines'] for r in rs)} lines on stderr"
            row.append(cell)
        row.append(fmt_ratio(mmm(ratios([r["cat"]["rate"] for r in rs],
                                        [r["cat"]["rate"] for r in base]))) if base else "—")
        for ph in ("first", "again"):
            row.append(fmt_mmm(mmm([r["reads_" + ph] for r in rs])))
            row.append(fmt_ratio(mmm(ratios([r["reads_" + ph] for r in rs],
                                            [r["reads_" + ph] for r in base]))) if base else "—")
            ws = [r["rwait_" + ph] for r in rs if "rwait_" + ph in r]
            if ws:
                cell = (f"{fmt_mmm(mmm([w['waits'] for w in ws]))}, "
                        f"{fmt_mmm(mmm([w['total_ms'] for w in ws]), ' ms')}")
                calm = sum(w["calm"] for w in ws)
                if ph == "first":
                    cell += ("; then calm in every run" if calm == len(ws) else
                             f"; then calm in {calm} of {len(ws)} runs")
                row.append(cell)
            else:
                row.append("—")
        row.append(fmt_mmm(mmm([r["writer_wait"] * 1000 for r in rs]), " ms"))
        rows.append(row)
    return rows


def lease_section(doc):
    ls = doc.res.get("lease")
    if not ls:
        return
    if "rprocs" not in ls:          # results of the sweep before the readers were added
        return
    total = ls["procs"] * ls["iters"]
    doc.p("## 7. Which lease length")
    doc.p()
    doc.p(f"lockfs mounted with `-o lease=MS`, a fresh mount for every lease and load, the leases "
          "in a different order each round. *Lost*: {p} copies of the shell counter "
          "`n=$(cat c); echo $((n + 1)) > c`, {i} increments each ({t} in all), and the same with "
          "`n=$(timeout 60 cat c)`: the read is made by `cat`, a child (or grandchild) of the shell, "
          "and the write by the shell, so only the lease, passed on at each exit, keeps another "
          "copy from reading in between. *Readers*: {rp} loops of {ri} × `cat f >/dev/null; "
          "n=$(cat f); grep -q on f` at once on a file nobody writes (the readers of section 8), "
          "reads per second; *first* is their first run on the fresh mount, so it includes the "
          "waits for other loops' leases before lockfs learns the file is calm, *again* the next "
          "run. *A writer after a reader waited*: a process reads the file and does nothing more "
          "(it stays alive), and another process then opens it for writing. *Loaded*: the same "
          "with {h} busy-looping processes on this {n}-CPU machine, so that a shell can lose its "
          "CPU between its child's exit and its own write. Ratios are to lease 0 (no lease) in "
          "the same round and load.".format(p=ls["procs"], i=ls["iters"], t=total,
                                            rp=ls["rprocs"], ri=ls["riters"], h=ls["hogs"],
                                            n=doc.res.get("machine", {}).get("nproc", "?")))
    doc.p()
    for load in ("idle", "loaded"):
        doc.p(f"**{load}**")
        doc.p()
        doc.table(lease_head(ls), lease_rows(ls, load))
    note = doc.notes.get("lease", "").strip()
    if note:
        doc.p(note)
        doc.p()


READERS_ROWS = [
    # (workload, what, baseline)
    ("loop1", "1 shell loop of {loop1_iters}", "pll"),
    ("loop4", "4 shell loops of {loop4_iters} at once", "pll"),
    ("loop4_first", "4 shell loops of {loop4_iters} at once, file's first contention", "pll"),
    ("threads", "Python, 4 threads × {per_thread} reads, then {short} short-lived threads", "pll"),
    ("threads_first", "the same, file's first contention", "pll"),
    ("git", "{git_n} × `git rev-parse HEAD`", "pll"),
    ("flock", "flock(1), {flock_shells} shells × {flock_iters} increments", "plain"),
    ("tothread", "asyncio.to_thread counter, {tt_procs} processes × {tt_iters}", "plain"),
    ("tothread1", "the same counter in 1 process, {tt_total} increments", "plain"),
]


def counter_outcome(xs):
    """What became of a counter that is not exact: its final values (a
    torn write can also leave a number larger than the increments made, when
    one process's digits land on another's), the updates lost where the
    final value is below what was done, and the torn reads."""
    finals = [x["final"] for x in xs]
    out = "final " + ", ".join("unreadable" if f is None else str(f) for f in finals)
    out += f" of {xs[0]['attempted']}"
    lost = [x["lost"] for x in xs if x["lost"] is not None and x["lost"] >= 0]
    if lost:
        out += f" (lost {fmt_mmm(mmm(lost))})"
    if "torn" in xs[0]:
        out += f", torn reads {fmt_mmm(mmm([x['torn'] for x in xs]))}"
    return out


def readers_section(doc):
    rd = doc.res.get("readers")
    if not rd:
        return
    runs = rd["runs"]
    doc.p("## 8. Readers of one file, and programs that lock for themselves")
    doc.p()
    doc.p(("Plain readers of one small file (`config.json`), through lockfs and through "
           "passthrough_ll: shell loops whose iterations run `cat f >/dev/null; n=$(cat f); "
           "grep -q on f` (one loop of {loop1_iters}, or four loops of {loop4_iters} at once); one "
           "Python process whose 4 threads read the file {per_thread} times each, then starts "
           "{short} threads that read it once each (timed inside the process); and "
           "`git rev-parse HEAD` run {git_n} times in a small repository in the mount. Both "
           "mounts live through all rounds, and an untimed warm-up ran every reader once, so "
           "these rows show a file lockfs has seen read before (once four readers have waited "
           "for one another's leases on a file nobody writes, lockfs learns it is *calm* and "
           "lets readers share it, docs/semantics.md). The *first contention* rows read a file "
           "created beside the mount just before the run, which nobody has read through it: "
           "they include the waits before lockfs learns that. Then two programs that coordinate "
           "themselves, against the plain directory: {flock_shells} shells each running "
           "{flock_iters} × `flock c.lock -c 'n=$(cat c); echo $((n+1)) > c'` (util-linux "
           "flock(1); lockfs treats a file that carries flock or fcntl locks as advisory and "
           "steps aside for it, and the counter `c` itself is still locked), and {tt_procs} "
           "Python processes each incrementing a counter {tt_iters} times with "
           "`v = await asyncio.to_thread(read)` then `await asyncio.to_thread(write, v + 1)` "
           "(the read and the write may run on two threads of the default executor; the "
           "processes start their loops together after the interpreter has started; "
           "*torn*: a read that found the file empty or cut short, skipped), and the same counter "
           "in one process, where nothing contends (what the FUSE round trips of an increment "
           "cost; passthrough_ll beside). Wall times; the ratio is taken within each round.").format(**{k: rd.get(k) for k in (
               "loop1_iters", "loop4_iters", "per_thread", "short", "git_n", "flock_shells",
               "flock_iters", "tt_procs", "tt_iters")}))
    doc.p()
    rows = []
    for w, what, base in READERS_ROWS:
        r = runs.get(w)
        if not r:
            if w == "git":
                rows.append(("`git rev-parse HEAD`", "—", "—", "—", "not run: git is not installed"))
            continue
        lf = [x["wall"] * 1000 for x in r["lockfs"]]
        bs = [x["wall"] * 1000 for x in r[base]]
        result = ""
        if "final" in r["lockfs"][0]:
            parts = []
            for tg in ("lockfs", base):
                xs = r[tg]
                if all(x["final"] == x["attempted"] for x in xs):
                    parts.append(f"{TARGET_NAMES[tg]}: exact in every run")
                else:
                    parts.append(f"{TARGET_NAMES[tg]}: " + counter_outcome(xs))
            if any(x.get("torn") for x in r["plain"] if base == "plain"):
                parts.append("time per increment made, lockfs vs plain: "
                             + fmt_ratio(per_increment_ratio(r)))
            if "pll" in r and base != "pll":
                pl = [x["wall"] * 1000 for x in r["pll"]]
                parts.append(f"passthrough_ll {fmt_mmm(mmm(pl))} ms, vs plain "
                             f"{fmt_ratio(mmm(ratios(pl, bs)))}, lockfs vs passthrough_ll "
                             f"{fmt_ratio(mmm(ratios(lf, pl)))}")
            result = "; ".join(parts)
        rows.append((what.format(tt_total=(rd.get("tt_procs") or 0) * (rd.get("tt_iters") or 0),
                                 **rd), fmt_mmm(mmm(lf)), fmt_mmm(mmm(bs)), TARGET_NAMES[base],
                     fmt_ratio(mmm(ratios(lf, bs))), result))
    doc.table(["workload", "lockfs, ms", "baseline, ms", "baseline", "lockfs vs baseline",
               "count"], rows)
    rq = doc.res.get("requests", {}).get("per_op", {})
    if any("cat" in rq.get(tg, {}) for tg in rq):
        doc.p("FUSE requests per `cat` of the file in a shell loop: " + ", ".join(
            f"{TARGET_NAMES[tg]} {rq[tg]['cat']['total']:.2f} ({by_op(rq[tg]['cat'])})"
            for tg in ("pll", "lockfs-none", "lockfs") if "cat" in rq.get(tg, {})) + ".")
        doc.p()
    note = doc.notes.get("readers", "").strip()
    if note:
        doc.p(note)
        doc.p()
    if rd.get("lockstat"):
        doc.p("<details><summary>lockstat --stats of the lockfs mount after the rounds "
              "(what it learned of each file)</summary>")
        doc.p()
        doc.p("```")
        for ln in rd["lockstat"].rstrip().splitlines():
            doc.p(ln)
        doc.p("```")
        doc.p()
        doc.p("</details>")
        doc.p()


def scale_section(doc):
    ho = doc.res.get("hold")
    w = doc.res.get("waiters")
    if not ho and not w:
        return
    doc.p("## 6. Scale")
    doc.p()
    if ho:
        doc.p("### Many files held locked")
        doc.p()
        short = ho["count"] < ho["wanted"]
        doc.p(f"One process (`bench/holdmany.c`) stats {ho['count']:,} distinct empty files through the "
              "mount, then opens every one `O_RDWR` and holds them all, then closes them. The daemon's "
              "VmRSS is read from /proc/PID/status after each step, each run on a freshly mounted "
              "daemon." + (f" **Only {ho['count']:,} of the {ho['wanted']:,} files wanted:** the hard "
                           f"RLIMIT_NOFILE on this machine is {ho['nofile_hard']:,} and cannot be "
                           "raised here, and each held file costs a passthrough daemon two "
                           "descriptors (the inode's O_PATH descriptor and the open file). The "
                           "100,000-file figure is a linear projection from the measured cost per "
                           "file." if short else ""))
        doc.p()
        rows = []
        for kind, name in (("lockfs", "lockfs (default)"), ("pll", "passthrough_ll")):
            rs = ho["runs"][kind]
            if not rs:
                continue
            per = mmm([(r["rss_kb_opened"] - r["rss_kb_ready"]) * 1024 / r["count"] for r in rs])
            row = [name, fmt_mmm(mmm([r["rss_kb_ready"] / 1024 for r in rs])),
                   fmt_mmm(mmm([r["rss_kb_statted"] / 1024 for r in rs])),
                   fmt_mmm(mmm([r["rss_kb_opened"] / 1024 for r in rs])),
                   fmt_mmm(mmm([r["rss_kb_closed"] / 1024 for r in rs])),
                   fmt_mmm(per),
                   fmt_ratio(mmm(ratios([r["rss_kb_opened"] for r in rs],
                                        [r["rss_kb_opened"] for r in ho["runs"]["pll"]]))),
                   fmt_mmm(mmm([r["count"] / r["secs_opened"] for r in rs])),
                   fmt_mmm(mmm([r["count"] / r["secs_closed"] for r in rs]))]
            if short:
                row.append(fmt_mmm(mmm([project_rss(r, 100000) / 1024 for r in rs])))
            rows.append(row)
        head = ["daemon", "RSS idle, MiB", "after stat", "all held", "after close",
                "bytes per held file", "held vs passthrough_ll", "opens/s", "closes/s"]
        if short:
            head.append("projected for 100,000, MiB")
        doc.table(head, rows)
        prof = [r["close_profile"] for r in ho["runs"]["lockfs"] if "close_profile" in r]
        if prof:
            note = doc.notes.get("holdclose")
            if note:
                doc.p(note.strip())
                doc.p()
            perf_block(doc, "perf of lockfs while the files are closed", prof[-1])
    if w:
        doc.p("### Many waiters on one file")
        doc.p()
        rs = w["runs"]
        by = sorted(set(r["parked_by"] for r in rs))
        doc.p(f"A holder keeps `queue.dat` open for writing; {w['n']:,} processes are started one at "
              "a time, each opening it for writing, and the next one starts only once the previous "
              "is parked in the daemon (" + (
                  "the lockfs control file lists it as waiting" if by == ["control"] else
                  "it sleeps in the kernel waiting for the daemon's reply, no daemon thread is "
                  "running, and 1 ms has passed: the control file was not available") +
              "). Then the holder closes; each waiter appends its start index once its open "
              "returns, so the file lists the order of service (`bench/waiters.c`). Fresh daemon "
              "per run.")
        doc.p()
        rows = [
            ("daemon threads, holder only", fmt_mmm(mmm([r["threads_0"] for r in rs]))),
            ("daemon threads, 1 waiter", fmt_mmm(mmm([r["threads_1"] for r in rs]))),
            (f"daemon threads, {w['n']:,} waiters", fmt_mmm(mmm([r["threads_n"] for r in rs]))),
            ("daemon threads, peak while they arrived", fmt_mmm(mmm([r["threads_max"] for r in rs]))),
            ("daemon RSS, 1 waiter, MiB", fmt_mmm(mmm([r["rss_kb_1"] / 1024 for r in rs]))),
            (f"daemon RSS, {w['n']:,} waiters, MiB", fmt_mmm(mmm([r["rss_kb_n"] / 1024 for r in rs]))),
            ("RSS per waiter, bytes", fmt_mmm(mmm([(r["rss_kb_n"] - r["rss_kb_1"]) * 1024 / (w["n"] - 1)
                                                   for r in rs]))),
            ("served", ", ".join(f"{r['served']}" for r in rs) + f" of {w['n']} (each run)"),
            ("served in arrival order", ", ".join(f"{r['in_order']}" for r in rs) + " (each run)"
             + ("" if all(r["out_of_order"] == 0 for r in rs) else
                "; first out of turn (position:index): " + "; ".join(
                    r["mismatches"] for r in rs if r["out_of_order"]))),
            ("opens that did not show up as parked in time", ", ".join(str(r["park_timeouts"]) for r in rs)),
            ("time to serve them all after release, s", fmt_mmm(mmm([r["drain_secs"] for r in rs]))),
        ]
        doc.table(["measure", "value"], rows)


TREE_STEPS = [("tar_x_doc", "`tar xf` of /usr/share/doc", True),
              ("tar_x_small", "`tar xf` of the small files", True),
              ("tar_c", "`tar cf` of the extracted /usr/share/doc", False),
              ("rsync1", "`rsync -a` of /usr/share/doc into the mount, first run", False),
              ("rsync2", "`rsync -a` again (nothing to copy)", False),
              ("cp_a", "`cp -a` of /usr/share/doc into the mount", False),
              ("find_grep", "`find -type f -print0` into `xargs -0 -P4 grep -l`, over it", False)]


def tree_ratio(tr, key, base="pll"):
    runs = tr["runs"]
    return mmm(ratios([r["wall"] for r in runs["lockfs"][key]], [r["wall"] for r in runs[base][key]]))


def tree_targets(res, add):
    """Every big-tree step through lockfs within 1.2× of passthrough_ll;
    for tar xf 1.5× is the minimum."""
    tr = res.get("tree")
    for key, title, is_tar_x in TREE_STEPS:
        metric = f"{title}, lockfs vs passthrough_ll (wall time)"
        goal = "≤ 1.2× (1.5× at most)" if is_tar_x else "≤ 1.2×"
        if not tr:
            add(f"tree_{key}", metric, goal, "not measured", None)
            continue
        m = tree_ratio(tr, key)
        note = "within the 1.5× minimum" if is_tar_x and m and 1.2 < m[0] <= 1.5 else ""
        add(f"tree_{key}", metric, goal, fmt_ratio(m), m[0] <= 1.2 if m else None, note=note)
    im = res.get("inodes1m")
    if im:
        for name in ("default", "fd_cache=32"):
            r = im["runs"].get(name)
            if not r:
                continue
            add(f"inodes_{name}", f"{r['entries']:,} inodes known to the kernel, lockfs {name}: "
                "daemon memory per inode beyond idle; descriptors in all", "< 200 B; < 64",
                f"{r['bytes_per_inode']:.0f} B; {r['fds']}",
                r["bytes_per_inode"] < 200 and r["fds"] < 64)


def tree_section(doc):
    tr = doc.res.get("tree")
    if not tr:
        return
    runs = tr["runs"]
    doc.p("## Big trees: tar, rsync, cp -a, find | xargs grep")
    doc.p()
    doc.p(f"/usr/share/doc ({tr['doc_files']:,} files and links, tarred once to a scratch file) and "
          f"{tr['small_files']:,} small files ({tr['small_dirs']} directories, 200 bytes each) are "
          "extracted with `tar xf` into each target; `tar cf` archives the extracted doc tree to a "
          "file of the plain directory; `rsync -a` and `cp -a` copy a plain copy of it into the "
          "target (rsync twice: the second run finds nothing to copy and only compares); `find | "
          "xargs -P4 grep` reads every file of the extracted tree. The removal of the previous "
          "run's copy is not timed. Targets run one after the other, starting with a different "
          "one each round; the ratio is taken within a round. *Daemon CPU* is the daemon's "
          "user+system time during the step (/proc/PID/stat). The machine was shared with other "
          "people's builds and tests while this ran: single runs vary widely, medians are the "
          "figures to read.")
    doc.p()
    for key, title, _ in TREE_STEPS:
        if key not in runs["lockfs"]:
            continue
        rows = []
        for tg in ("plain", "pll", "lockfs"):
            walls = [r["wall"] for r in runs[tg][key]]
            cpu = mmm([r["daemon_cpu_s"] for r in runs[tg][key]])
            rows.append((TARGET_NAMES[tg], fmt_mmm(mmm(walls)),
                         fmt_ratio(mmm(ratios(walls, [r["wall"] for r in runs["plain"][key]]))),
                         fmt_ratio(mmm(ratios(walls, [r["wall"] for r in runs["pll"][key]]))),
                         fmt_mmm(cpu) if cpu else "—"))
        doc.p(f"**{title}** (`{tr['steps'][key]}`)")
        doc.p()
        doc.table(["target", "wall s", "vs plain", "vs passthrough_ll", "daemon CPU s"], rows)
    rq = tr.get("requests_per_file", {})
    if rq:
        doc.p("FUSE requests per extracted small file (`tar xf`, the whole small tree and a tenth "
              "of it in one traced daemon, by difference; directories included), and the daemon's "
              "CPU per request in the timed `tar xf` of the small files (its CPU time over the "
              "files times the requests per file):")
        doc.p()
        rows = []
        for tg in ("pll", "lockfs"):
            v = rq.get(tg)
            if not v:
                continue
            per_req = mmm([r["daemon_cpu_s"] * 1e6 / (v["total"] * tr["small_files"])
                           for r in runs[tg]["tar_x_small"] if r["daemon_cpu_s"] is not None])
            rows.append((TARGET_NAMES[tg], f"{v['total']:.2f}", by_op(v), fmt_mmm(per_req)))
        doc.table(["target", "requests per file", "by opcode", "daemon CPU µs per request"], rows)


def inodes_section(doc):
    im = doc.res.get("inodes1m")
    if not im:
        return
    doc.p("## A million inodes known to the kernel")
    doc.p()
    doc.p(f"{im['dirs']:,} directories × {im['per_dir']:,} empty files on the source; lockfs "
          "mounted with the default options, then with `-o fd_cache=32`; `find MNT -printf '%s\\n'` (the size needs a lookup of each entry) "
          "makes the kernel look up (and keep) every entry. The daemon's RSS and descriptor count "
          "are read after the find and compared with the same daemon idle just after mounting; "
          "*per inode* is the RSS growth over the entries found. *fuse_inode slab* is the growth "
          "of the kernel's fuse_inode objects on the whole machine (other mounts included), to "
          "show the kernel did keep them. One run each.")
    doc.p()
    rows = []
    for name, r in im["runs"].items():
        slab = r["fuse_inode_slab"]
        rows.append((name, f"{r['entries']:,}", f"{r['find_s']:.0f}",
                     f"{r['rss_kb_idle'] / 1024:.1f} → {r['rss_kb'] / 1024:.1f}",
                     f"{r['bytes_per_inode']:.0f}", f"{r['fds_idle']} → {r['fds']}",
                     "—" if slab is None else f"+{slab:,}",
                     "—" if not slab or slab <= 0 else
                     f"{(r['rss_kb'] - r['rss_kb_idle']) * 1024 / slab:.0f}"))
    doc.table(["lockfs options", "entries", "find s", "daemon RSS MiB (idle → after)",
               "bytes per inode", "descriptors (idle → after)", "fuse_inode slab",
               "bytes per fuse_inode added"], rows)


def requests_section(doc):
    rq = doc.res.get("requests", {}).get("per_op")
    if not rq:
        return
    doc.p("## FUSE requests per operation")
    doc.p()
    doc.p("Counted from each daemon's request trace (`lockfs -o fuse_debug`, `passthrough_ll -d`): "
          "each workload runs twice with different sizes in one traced daemon, and the difference "
          "in requests divided by the difference in operations is the cost of one operation, so "
          "start-up and first lookups cancel out. Warm reads are the exception: they are counted "
          "in one 64 MiB (or 1,280-read) run after the file was read twice, opens included, "
          "since whether the cache survived the open is what they show. On these machines one round trip costs tens of "
          "microseconds, so this column explains most of the differences above.")
    doc.p()
    names = {"openclose": "open O_RDONLY + close", "trunc": "open O_TRUNC + write + close",
             "stat": "stat", "counter": "counter increment (1 process)",
             "seqwrite_MiB": "seq write, per MiB", "seqread_warm_MiB": "seq read warm, per MiB",
             "randread_warm_op": "4 KiB random read, warm", "grep_file": "grep -r, per file",
             "handoff": "handoff, per acquisition",
             "cat": "`cat` of a small file, in a shell loop"}
    rows = []
    for key, name in names.items():
        row = [name]
        for tg in ("pll", "lockfs-none", "lockfs"):
            v = rq.get(tg, {}).get(key)
            row.append("—" if v is None else f"{v['total']:.2f} ({by_op(v)})" if v["by_op"] else "0")
        rows.append(row)
    doc.table(["operation", "passthrough_ll", "lockfs, policy none", "lockfs (default)"], rows)


def cluster_section(doc):
    cl = doc.res.get("cluster")
    if not cl:
        return
    runs = cl["runs"]
    ms = lambda xs: fmt_mmm(mmm([x / 1e6 for x in xs]))      # noqa: E731
    doc.p("## Cluster mode (two mounts, one ZooKeeper)")
    doc.p()
    doc.p("Two lockfs mounts of one source directory with `-o cluster=127.0.0.1:PORT/bench` stand "
          "for two hosts, each daemon with its own ZooKeeper session; the server is a private "
          "standalone ZooKeeper (tickTime 2000, its data on the same disk as the files) that "
          "`bench/bench.py` starts with every four-letter word allowed. ZooKeeper packets are "
          "counted by the server (`srvr`'s *Received*, read before and after) minus its idle rate "
          f"with both mounts up ({cl['zk_idle_rate']:.1f} packets/s: the sessions' pings and the "
          "daemons' liveness reads), so they are the requests the workload caused. The counter is "
          f"{cl['n']} processes × {cl['total'] // cl['n']} increments of `bench/counter.py bare`; "
          "each row's runs are interleaved with the others'.")
    doc.p()
    rows = []
    for key, name in (("solo", "one lockfs mount, no cluster"),
                      ("one", "one mount of the cluster, the other mount idle"),
                      ("split", f"split: {cl['n'] // 2} processes on each of the two mounts")):
        rs = runs[key]
        vs = (fmt_ratio(mmm(ratios([r["rate"] for r in rs], [r["rate"] for r in runs["solo"]])))
              if key != "solo" else "(baseline)")
        # The idle rate subtracted can leave a hair below zero.
        per = (fmt_mmm(mmm([max(0.0, r["zk_per_increment"]) for r in rs])) if key != "solo"
               else "0")
        exact = all(r["final"] == r["done"] for r in rs)
        rows.append((name, fmt_mmm(mmm([r["rate"] for r in rs])), vs, per,
                     "yes" if exact else "**no**"))
    doc.table(["counter", "increments/s", "vs no cluster", "ZooKeeper requests per increment",
               "exact"], rows)
    h, z = runs["handoff"], runs["zkwrite"]
    doc.p(f"Handoff across the two mounts: `bench/handoff.c` with one process on each mount "
          f"passing one file back and forth ({cl['handoffs_per_run']} handoffs per run), timed from "
          "the holder's `close()` to the waiter's `open()` returning, counted only when the waiter "
          f"was already waiting. Next to it, one ZooKeeper write on the same server: "
          f"`bench/zkwrite.c` creates and deletes a persistent znode {cl['zk_pairs']} times "
          "(synchronous calls of libzookeeper-mt, one session).")
    doc.p()
    doc.table(["what", "p50 ms", "p90 ms", "p99 ms"], [
        ("handoff between the two mounts", ms([r["p50"] for r in h]), ms([r["p90"] for r in h]),
         ms([r["p99"] for r in h])),
        ("ZooKeeper create + delete of a znode", ms([r["pair_p50"] for r in z]),
         ms([r["pair_p90"] for r in z]), ms([r["pair_p99"] for r in z])),
        ("ZooKeeper create alone", ms([r["create_p50"] for r in z]), "", ""),
    ])
    again = mmm([r["again"] / (r["handoffs"] + r["again"]) * 100 for r in h])
    # Acquisitions that moved the file to the other mount: the timed
    # handoffs and the ones whose waiter arrived late.
    pk = mmm([r["zk_packets"] / (r["handoffs"] + r["late"]) for r in h])
    doc.p(f"Handoff p50 over one ZooKeeper create + delete: "
          f"{fmt_ratio(mmm(ratios([r['p50'] for r in h], [r['pair_p50'] for r in z])))}. "
          f"Acquisitions in which the releasing process got the file straight back (the host keeps "
          f"the lock for a local waiter until the other host's request arrives): {fmt_mmm(again, ' %')}; "
          f"ZooKeeper requests per move of the file from one mount to the other: {fmt_mmm(pk)}.")
    doc.p()
    doc.p("This section alone: `bench/run --only cluster --merge` (it needs Debian's zookeeper, "
          "default-jre-headless and libzookeeper-mt-dev, which `bench/run` installs when run as "
          "root). The ZooKeeper, mount, handoff and zkwrite command lines are under Reproduce.")
    doc.p()


def misses_section(doc):
    targets = evaluate_targets(doc.res)
    missed = [t for t in targets if t["met"] is False]
    unknown = [t for t in targets if t["met"] is None]
    prof = doc.res.get("profile", {}).get("profiles", {})
    if not missed and not unknown:
        return
    doc.p("## Where lockfs misses, and what bounds it")
    doc.p()
    if prof:
        doc.p("Each profile is `perf record --call-graph dwarf -F 499 -p PID` on the daemon alone (the machine is "
              "shared: a system-wide profile shows other people's builds) over a few seconds of the "
              "workload looping, on lockfs and, where it has a daemon, passthrough_ll: the daemon's "
              "CPU time in that window, its samples by object, then its hottest symbols "
              "(self time; `[k]` is the kernel, working on the daemon's behalf).")
        doc.p()
    for t in missed + unknown:
        doc.p(f"### {t['metric']}: {t['value']} (target {t['target']})")
        doc.p()
        note = doc.notes.get(t["id"])
        if note:
            doc.p(note.strip())
            doc.p()
        for tg, pr in prof.get(t["id"], {}).items():
            perf_block(doc, f"perf, {TARGET_NAMES[tg]}", pr)


def perf_block(doc, title, pr):
    doc.p(f"<details><summary>{title} ({pr['secs']} s)</summary>")
    doc.p()
    doc.p("```")
    doc.p(f"daemon CPU: {pr['cpu_s']:.2f} s in {pr['secs']} s of wall time")
    doc.p("samples by object:")
    for ln in pr["by_dso"]:
        doc.p("  " + ln.strip())
    doc.p("hottest symbols (self):")
    for ln in pr["by_sym"]:
        doc.p("  " + ln.strip())
    if pr.get("inclusive"):
        doc.p("daemon and libfuse functions, time spent in them and under them (children, self):")
        for ln in pr["inclusive"]:
            doc.p("  " + ln.strip())
    doc.p("```")
    doc.p()
    doc.p("</details>")
    doc.p()


def reproduce_section(doc):
    doc.p("## Reproduce")
    doc.p()
    doc.p("```sh")
    doc.p("bench/run            # the full run: builds, mounts, measures, writes this page")
    doc.p("bench/run --quick    # a smoke run (3 runs, small sizes) into bench/out/quick/")
    doc.p("```")
    doc.p()
    doc.p("`bench/run` builds lockfs with meson into `bench/out/build`, compiles the helpers in "
          "`bench/*.c` and libfuse's `passthrough_ll.c` (from `/usr/share/doc/libfuse3-dev/examples`) "
          "into `bench/out/`, works in a scratch directory `$WORK` under `bench/out/`, and unmounts "
          "and removes everything at exit. The commands it ran (one instance of each):")
    doc.p()
    doc.p("```sh")
    for k, v in sorted(doc.res.get("commands", {}).items()):
        doc.p(f"# {k}")
        doc.p(v)
    doc.p("```")
    doc.p()


def load_notes(path):
    notes = {}
    if not path or not os.path.exists(path):
        return notes
    cur = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^## (\S+)\s*$", line)
            if m:
                cur = m.group(1)
                notes[cur] = ""
            elif cur:
                notes[cur] += line
    return notes


def write(res, out, notes_path):
    outdir = os.path.dirname(os.path.abspath(out))
    os.makedirs(outdir, exist_ok=True)
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    res = {k: v for k, v in res.items() if k not in errors}
    doc = Doc(res, outdir, load_notes(notes_path))
    m = res["machine"]
    doc.p("# lockfs benchmarks")
    doc.p()
    doc.p(f"Generated by `bench/run` on {m['date']} from commit `{m['commit'][:12]}`"
          f"{' with uncommitted changes' if m['dirty'] else ''}; do not edit by hand, run it "
          "again. Every figure is the median of "
          f"{m['runs']} runs with the minimum and maximum in brackets, and every comparison is a "
          "ratio against a baseline measured in the same run, in interleaved rounds.")
    doc.p()
    if m["quick"]:
        doc.p("**This is a quick smoke run (fewer runs, smaller sizes): not for quoting.**")
        doc.p()
    ids = sorted(set(v["run_id"] for k, v in res.items() if isinstance(v, dict) and "run_id" in v
                     and k != "machine"))
    if len(ids) > 1:
        doc.p(f"**Sections come from different runs: {', '.join(ids)}.**")
        doc.p()
    for k, e in sorted(errors.items()):
        doc.p(f"**The {k} workload failed in this run:** `{e}`")
        doc.p()
    doc.p("Targets: *plain directory* is the source directory used directly; *passthrough_ll* is "
          "libfuse's low-level example, the floor for any FUSE file system; *lockfs, policy none* is "
          "lockfs with a policy file `** none` (its passthrough without locks); *lockfs (default)* "
          "locks every file it opens with its default options: writes exclusively, reads with "
          "update intent (they exclude writers and other such reads, not pure readers) and a "
          "250 ms lease.")
    doc.p()
    machine(doc)
    targets_section(doc)
    counter_section(doc)
    handoff_section(doc)
    meta_section(doc)
    fio_section(doc)
    grep_section(doc)
    scale_section(doc)
    lease_section(doc)
    readers_section(doc)
    tree_section(doc)
    inodes_section(doc)
    cluster_section(doc)
    requests_section(doc)
    misses_section(doc)
    reproduce_section(doc)
    with open(out, "w") as f:
        f.write("\n".join(doc.lines).rstrip() + "\n")


def main():
    import json
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--notes", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md"))
    args = ap.parse_args()
    with open(args.results) as f:
        res = json.load(f)
    write(res, args.out, args.notes)
    for t in evaluate_targets({k: v for k, v in res.items()
                               if not (isinstance(v, dict) and "error" in v)}):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"{t['id']:12} {t['target']:28} {t['value']:50} {verdict}")


if __name__ == "__main__":
    main()
