#!/usr/bin/env python3
"""Soak: spanprobe attached for a long time to a steady load.

  soak.py --sp SPANPROBE --fixture SOAK --syms SYMS [--seconds 600]
          [--rate 100000] [--interval 10] [--out FILE.md] [--dir DIR]

Starts the soak fixture (tests/stress/soak.c: RATE instrumented calls per
second in fast queries, a ~1.05 s query every second), attaches spanprobe
with its default thresholds (--min-span 5ms --min-query 1s, blocks to a
file), and every INTERVAL seconds samples spanprobe's resident memory,
open file descriptors, CPU time and BPF per-thread map, and the calls the
target made. Then stops spanprobe with SIGINT and the target with SIGTERM.

Checks (none depends on how fast the machine is):
  - spanprobe's open file descriptors never change after the first sample;
  - its RSS after the warm-up (the sample at 10% of the run, at least 60 s
    in) grows by at most --rss-slack KiB (default 1024) by the end;
  - it never holds more thread stacks than the target has threads;
  - it exits 0, loses nothing, and keeps every slow query that ran wholly
    inside the traced window (the target's count, minus the two at the
    edges);
  - the target survives and exits 0.
Prints the samples as a Markdown table (also to --out) and the verdict.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def threads_entries(sp_pid):
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "bpfmaps.py"),
                        str(sp_pid), "--global", "stacks_alloc"], capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 else None


def last_stats(path):
    try:
        with open(path) as f:
            lines = [l.split() for l in f if l.strip()]
        return (int(lines[-1][1]), int(lines[-1][2])) if lines else (0, 0)
    except (OSError, ValueError, IndexError):
        return (0, 0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sp", required=True)
    p.add_argument("--fixture", required=True)
    p.add_argument("--syms", required=True)
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--rate", type=int, default=100000)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--rss-slack", type=int, default=1024, help="KiB")
    p.add_argument("--out")
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    d = a.dir or os.path.join(os.path.dirname(a.out or "build/stress/x"), "soak-run")
    os.makedirs(d, exist_ok=True)
    stats = os.path.join(d, "target-stats.txt")
    fx = sp = None
    errs = []
    rows = []
    try:
        fx = subprocess.Popen([a.fixture, "-r", str(a.rate), "--stats", stats],
                              stdout=open(os.path.join(d, "target.out"), "w"), stderr=subprocess.STDOUT)
        time.sleep(1)  # let it start its threads (not a check)
        n_threads = len(os.listdir("/proc/%d/task" % fx.pid))
        sp_err = open(os.path.join(d, "sp.err"), "w")
        sp = subprocess.Popen([a.sp, "attach", "-p", str(fx.pid), "-s", a.syms,
                               "-o", os.path.join(d, "soak.bin")],
                              stdout=open(os.path.join(d, "sp.out"), "w"), stderr=sp_err)
        deadline = time.monotonic() + 60
        while "attached" not in open(os.path.join(d, "sp.err")).read():
            if sp.poll() is not None or time.monotonic() > deadline:
                print("soak: spanprobe did not attach:\n" + open(os.path.join(d, "sp.err")).read())
                return 2
            time.sleep(0.1)
        t0 = time.monotonic()
        calls0, slow0 = last_stats(stats)
        prev_t, prev_calls, prev_cpu, prev_fx_cpu = t0, calls0, cpu_s(sp.pid), cpu_s(fx.pid)
        while True:
            now = time.monotonic()
            el = now - t0
            calls, slow = last_stats(stats)
            cpu, fx_cpu = cpu_s(sp.pid), cpu_s(fx.pid)
            dt = max(now - prev_t, 1e-9)
            rows.append({
                "t": int(round(el)), "rss": status_kb(sp.pid, "VmRSS"), "hwm": status_kb(sp.pid, "VmHWM"),
                "fds": nfds(sp.pid), "threads": threads_entries(sp.pid),
                "rate": (calls - prev_calls) / dt if rows else None,
                "sp_cpu": 100 * (cpu - prev_cpu) / dt if rows else None,
                "fx_cpu": 100 * (fx_cpu - prev_fx_cpu) / dt if rows else None,
                "slow": slow - slow0,
            })
            prev_t, prev_calls, prev_cpu, prev_fx_cpu = now, calls, cpu, fx_cpu
            if sp.poll() is not None or fx.poll() is not None:
                errs.append("%s exited during the soak" % ("spanprobe" if sp.poll() is not None else "the target"))
                break
            if el >= a.seconds:
                break
            time.sleep(max(0, t0 + (len(rows)) * a.interval - time.monotonic()))
        calls_end, slow_end = last_stats(stats)
        sp.send_signal(signal.SIGINT)
        try:
            sp.wait(60)
        except subprocess.TimeoutExpired:
            errs.append("spanprobe still running 60 s after SIGINT")
        fx.send_signal(signal.SIGTERM)
        try:
            fx.wait(30)
        except subprocess.TimeoutExpired:
            errs.append("the target did not stop on SIGTERM")
    finally:
        for proc in (sp, fx):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()
    err = open(os.path.join(d, "sp.err")).read()
    out = open(os.path.join(d, "target.out")).read()
    if sp.returncode not in (0, None):
        errs.append("spanprobe exited %s" % sp.returncode)
    if fx.returncode != 0:
        errs.append("the target exited %s" % fx.returncode)
    m = re.search(r"(\d+) span records from the kernel \((\d+) lost\), (\d+) queries seen, (\d+) kept", err)
    if not m:
        errs.append("no summary from spanprobe")
    else:
        records, lost, seen, kept = map(int, m.groups())
        if lost:
            errs.append("%d records lost" % lost)
        want = slow_end - slow0 - 2
        if kept < want:
            errs.append("%d slow queries kept, the target finished %d while traced" % (kept, slow_end - slow0))
    fds = [r["fds"] for r in rows]
    if len(set(fds)) > 1:
        errs.append("spanprobe's open fds changed: %s" % sorted(set(fds)))
    warm = next((r for r in rows if r["t"] >= max(60, a.seconds // 10)), rows[0])
    growth = rows[-1]["rss"] - warm["rss"]
    if growth > a.rss_slack:
        errs.append("RSS grew by %d KiB after the warm-up (%d -> %d KiB)" % (growth, warm["rss"], rows[-1]["rss"]))
    tmax = max((r["threads"] or 0) for r in rows)
    if tmax > n_threads:
        errs.append("spanprobe held %d thread stacks, the target has %d threads" % (tmax, n_threads))
    rates = [r["rate"] for r in rows if r["rate"] is not None]
    mean_rate = (calls_end - calls0) / max(rows[-1]["t"], 1)

    lines = ["| t (s) | spanprobe RSS (KiB) | peak RSS (KiB) | open fds | thread stacks | target calls/s | spanprobe CPU % | target CPU % |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = lambda v, fmt: "-" if v is None else fmt % v
        lines.append("| %d | %d | %d | %d | %s | %s | %s | %s |" % (
            r["t"], r["rss"], r["hwm"], r["fds"], f(r["threads"], "%d"), f(r["rate"], "%.0f"),
            f(r["sp_cpu"], "%.1f"), f(r["fx_cpu"], "%.1f")))
    summary = ["",
               "kernel %s, %d CPUs, %s" % (os.uname().release, os.cpu_count(), time.strftime("%Y-%m-%d %H:%M %Z")),
               "duration %d s, target rate %d calls/s, achieved %.0f calls/s on average (min %.0f, max %.0f per interval)"
               % (rows[-1]["t"], a.rate, mean_rate, min(rates or [0]), max(rates or [0])),
               "RSS %d KiB at %d s (warm-up), %d KiB at the end (%+d KiB); fds %s"
               % (warm["rss"], warm["t"], rows[-1]["rss"], growth, sorted(set(fds))),
               "spanprobe: " + (m.group(0) if m else "no summary"),
               "target: " + out.strip().splitlines()[-1] if out.strip() else "target: no output"]
    text = "\n".join(lines + summary) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    for e in errs:
        print("soak: FAIL: " + e)
    if not errs:
        print("soak: OK: fds flat, RSS flat after warm-up, nothing lost, every slow query kept")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
