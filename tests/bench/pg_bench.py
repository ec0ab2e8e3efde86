#!/usr/bin/env python3
"""`pgbench -S` on PostgreSQL 15 with every backend traced: plain, under
`spanprobe attach --exe postgres` (the 8 functions of
tests/fixtures/postgres.syms, and the root PortalRun alone: the filter a
backend pays outside any query that will be kept, since no pgbench query
nears --min-query's 1 s) and under bpftrace's binary-wide uprobes on the
same 8 functions, interleaved in one run (issue 13). Then what another
binary pays while `attach --exe postgres` runs: an untraced program
(/bin/true, 1,000 fork+exec+exit from sh: the kind of work spanprobe's
system-wide exec/exit hooks see) timed with and without spanprobe
attached, interleaved.

  pg_bench.py [--spanprobe BIN] [--rounds 3] [--secs 8] [--clients 4] [--json OUT]

A private cluster (tests/integration/pg_follow.py's) with a pgbench
database of scale 2; each round runs the three configurations in turn
(rotated), each `pgbench -S -c CLIENTS -j 2 -T SECS`; the tracer is
attached before and detached after its run. Prints tps per round and the
median ratio to plain. Speed is information, never pass/fail.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pg_follow  # noqa: E402

POSTGRES = pg_follow.PGBIN + "/postgres"
FUNCS = ["PortalRun", "pg_plan_query", "ExecutorStart", "ExecutorRun", "standard_ExecutorRun",
         "ExecutorFinish", "ExecutorEnd", "pg_sleep"]


def bpftrace_prog():
    """The same functions, any process: a per-thread depth stack of entry
    times, a span printed when it lasted over 5 ms (what spanprobe keeps)."""
    ent = ",".join("uprobe:%s:%s" % (POSTGRES, f) for f in FUNCS)
    ret = ",".join("uretprobe:%s:%s" % (POSTGRES, f) for f in FUNCS)
    return ("%s { @d[tid]++; @ts[tid, @d[tid]] = nsecs; }\n"
            "%s { $t = nsecs - @ts[tid, @d[tid]]; if ($t > 5000000) { printf(\"%%d %%s %%d\\n\", pid, probe, $t); }"
            " delete(@ts[tid, @d[tid]]); @d[tid]--; }\n" % (ent, ret))


class Tracer:
    def __init__(self, argv, ready, log):
        self.log = open(log, "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log,
                                  stdin=subprocess.DEVNULL)
        self.path = log
        for _ in range(600):
            if ready(open(log).read()) or self.p.poll() is not None:
                break
            time.sleep(0.1)
        if self.p.poll() is not None:
            raise RuntimeError("tracer ended: " + open(log).read()[-500:])

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=60)
        self.log.close()


def pgbench(sock, secs, clients):
    out = subprocess.run(["pgbench", "-h", sock, "-U", "postgres", "-S", "-n", "-c", str(clients),
                          "-j", "2", "-T", str(secs), "postgres"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"tps = ([0-9.]+)", out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spanprobe", default="build/spanprobe")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="spanprobe-pgbench.")
    pgdir = tempfile.mkdtemp(prefix="spanprobe-pg.")
    data = os.path.join(pgdir, "data")
    syms = os.path.abspath("tests/fixtures/postgres.syms")
    root_syms = os.path.join(work, "root.syms")
    with open(root_syms, "w") as f:
        f.write("root PortalRun\n")
    configs = {
        "plain": None,
        "spanprobe": lambda: Tracer([a.spanprobe, "attach", "--exe", POSTGRES, "-s", syms],
                                    lambda t: "spanprobe: attached" in t,
                                    os.path.join(work, "sp.err")),
        "sp-root": lambda: Tracer([a.spanprobe, "attach", "--exe", POSTGRES, "-s", root_syms],
                                  lambda t: "spanprobe: attached" in t,
                                  os.path.join(work, "sp-root.err")),
        "bpftrace": lambda: Tracer(["bpftrace", "-e", bpftrace_prog()],
                                   lambda t: "Attaching" in t, os.path.join(work, "bt.err")),
    }
    tps = {k: [] for k in configs}
    try:
        pg_follow.start_cluster(pgdir, work)
        subprocess.run(["pgbench", "-h", pgdir, "-U", "postgres", "-i", "-q", "-s", "2", "postgres"],
                       check=True, capture_output=True)
        names = list(configs)
        for r in range(a.rounds):
            for k in range(len(names)):
                name = names[(r + k) % len(names)]
                t = configs[name]() if configs[name] else None
                try:
                    tps[name].append(pgbench(pgdir, a.secs, a.clients))
                finally:
                    if t:
                        t.stop()
                print("round %d %-10s %8.0f tps" % (r + 1, name, tps[name][-1]), flush=True)
        print(open(os.path.join(work, "sp.err")).read().strip().splitlines()[-1][:400])
        other = other_binary(a, work, syms)
    finally:
        if os.path.exists(data):
            pg_follow.stop_cluster(pgdir, data, work)
        shutil.rmtree(pgdir, ignore_errors=True)
    plain = statistics.median(tps["plain"])
    for name, v in tps.items():
        print("%-10s median %8.0f tps  %.3f x plain  rounds %s"
              % (name, statistics.median(v), statistics.median(v) / plain,
                 " ".join("%.0f" % x for x in v)))
    oplain = statistics.median(other["plain"])
    for name, v in other.items():
        print("other binary, %-9s median %6.3f s per 1000 runs  %.3f x plain  rounds %s"
              % (name, statistics.median(v), statistics.median(v) / oplain,
                 " ".join("%.3f" % x for x in v)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"pgbench_tps": tps, "other_binary_s_per_1000": other,
                       "kernel": os.uname().release, "loadavg": os.getloadavg()}, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)


def spawn_loop(n=1000):
    """Seconds for n runs of an untraced binary, fork+exec+exit each."""
    t0 = time.monotonic()
    subprocess.run(["sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n],
                   check=True)
    return time.monotonic() - t0


def other_binary(a, work, syms):
    """The untraced binary timed plain and with attach --exe postgres
    running, interleaved (rotated each round)."""
    out = {"plain": [], "spanprobe": []}
    for r in range(a.rounds):
        for name in ("plain", "spanprobe")[::1 if r % 2 == 0 else -1]:
            t = None
            if name == "spanprobe":
                t = Tracer([a.spanprobe, "attach", "--exe", POSTGRES, "-s", syms],
                           lambda x: "spanprobe: attached" in x, os.path.join(work, "sp-other.err"))
            try:
                out[name].append(spawn_loop())
            finally:
                if t:
                    t.stop()
            print("other binary round %d %-10s %.3f s" % (r + 1, name, out[name][-1]), flush=True)
    return out


if __name__ == "__main__":
    main()
