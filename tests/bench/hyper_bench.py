"""`make bench`, phase hyper: what tracing a Rust async server costs it.

The hyper fixture (hsrv, release) answers GET /q/N/F (about 0.3 s: two
sleeping query_db, a loop of two more, a spawned audit, then render, 20 ms
of CPU) to 32 keep-alive connections on loopback for a fixed time, in
three modes visited in turn each round:
  untraced        hsrv alone;
  traced          under `spanprobe run` with hsrv.syms (nested decoding,
                  observation points: the carrier's futures are read at
                  every probe hit and context switch under its polls);
  no_observe      the same with SPANPROBE_NO_OBSERVE=1 (reads at the
                  carrier poll's entry and exit only; no context-switch
                  hook).
32 connections ask for more render CPU than 2 CPUs have, so requests per
second measure the CPU the server gets. Figures: medians over the rounds
and their ratios to untraced (side by side; never pass/fail).

The context-switch hook (tp_btf/sched_switch) runs on every context switch
of the machine while a carrier exists, not only the traced process's: a
pipe ping-pong between two unrelated processes (two switches per round
trip) measures it, with spanprobe tracing an idle hsrv with and without
the hook, against no spanprobe at all. On a loaded machine that ratio is
noise; what the hook costs is also read from the kernel
(kernel.bpf_stats_enabled, on for this phase only: it adds two clock
reads to every BPF program run, in both traced modes): its runs per
second of ping-pong and ns per run, and all of spanprobe's programs' ns
per request while hsrv is loaded.
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODES = ["untraced", "traced", "no_observe"]


def all_cpus():
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def wait_file(path, proc, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


class Server:
    """hsrv in one mode, until close()."""

    def __init__(self, a, mode, d):
        self.d = d
        port, pid = os.path.join(d, "port"), os.path.join(d, "pid")
        hsrv = [os.path.join(a.build, "fixtures", "hsrv"), "--port-file", port,
                "--pid-file", pid]
        env = dict(os.environ)
        if mode == "no_observe":
            env["SPANPROBE_NO_OBSERVE"] = "1"
        argv = hsrv if mode == "untraced" else [
            a.spanprobe, "run", "-s", os.path.join(ROOT, "tests/fixtures/hsrv.syms"),
            "-o", os.path.join(d, "spans.bin"), "--"] + hsrv
        self.err = open(os.path.join(d, "err"), "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.err, stderr=self.err,
                                     preexec_fn=all_cpus)
        if not wait_file(port, self.proc, 60) or not wait_file(pid, self.proc, 5):
            self.close()
            raise RuntimeError(f"hsrv ({mode}) did not start: see {d}/err")
        self.port = int(open(port).read())
        self.pid = int(open(pid).read())

    def close(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except (AttributeError, ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def throughput(a, srv, secs):
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests/fixtures/hyper/hload.py"),
                          str(srv.port), "-c", "32", "-k", "F", "--for", str(secs),
                          "--timeout", "60"], capture_output=True, text=True,
                         preexec_fn=all_cpus)
    took = time.monotonic() - t0
    words = out.stdout.split()
    if out.returncode != 0 or "ok," not in words:
        raise RuntimeError("hload failed: " + out.stdout + out.stderr)
    return int(words[words.index("ok,") - 1]) / took


def pingpong(secs):
    """Round trips per second between two processes over pipes."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(w1)  # else its read never sees the end
            os.close(r2)
            all_cpus()
            while os.read(r1, 1):
                os.write(w2, b"x")
        finally:
            os._exit(0)
    os.close(r1)
    os.close(w2)
    n, end = 0, time.monotonic() + secs
    t0 = time.monotonic()
    while time.monotonic() < end:
        for _ in range(200):
            os.write(w1, b"x")
            os.read(r2, 1)
        n += 200
    took = time.monotonic() - t0
    os.close(w1)
    os.waitpid(child, 0)
    os.close(r2)
    return n / took


def delta(after, before):
    return {n: (c - before.get(n, (0, 0))[0], t - before.get(n, (0, 0))[1])
            for n, (c, t) in after.items()}


def run(a, log, prog_runs):
    rounds = 3 if a.quick else 5
    secs = 5 if a.quick else 10
    tput = {m: [] for m in MODES}
    pp = {m: [] for m in MODES}
    bpf = {m: [] for m in MODES[1:]}
    mask = os.sched_getaffinity(0)
    stats = "/proc/sys/kernel/bpf_stats_enabled"
    old = open(stats).read().strip()
    with open(stats, "w") as f:
        f.write("1")
    all_cpus()
    try:
        with tempfile.TemporaryDirectory(prefix="hyper-bench.") as tmp:
            for r in range(rounds):
                for m in MODES:
                    log(f"hyper: round {r + 1}/{rounds}, {m}")
                    d = os.path.join(tmp, f"{m}{r}")
                    os.mkdir(d)
                    srv = Server(a, m, d)
                    try:
                        b0 = prog_runs(srv.proc.pid) if m != "untraced" else {}
                        t0 = time.monotonic()
                        tput[m].append(throughput(a, srv, secs))
                        served = tput[m][-1] * (time.monotonic() - t0)
                        b1 = prog_runs(srv.proc.pid) if m != "untraced" else {}
                        pp[m].append(pingpong(secs / 2))
                        if m != "untraced":
                            b2 = prog_runs(srv.proc.pid)
                            load_ns = sum(t for _, t in delta(b1, b0).values())
                            sw = delta(b2, b1).get("sp_switch", (0, 0))
                            bpf[m].append({"bpf_ns_per_request": load_ns / max(served, 1),
                                           "switch_runs_per_s": sw[0] / (secs / 2),
                                           "switch_ns_per_run": sw[1] / sw[0] if sw[0] else 0})
                    finally:
                        srv.close()
    finally:
        os.sched_setaffinity(0, mask)
        with open(stats, "w") as f:
            f.write(old)
    med = {m: statistics.median(v) for m, v in tput.items()}
    ppm = {m: statistics.median(v) for m, v in pp.items()}
    return {"rounds": rounds, "seconds_each": secs,
            "requests_per_s": tput, "median_requests_per_s": med,
            "ratio_to_untraced": {m: med[m] / med["untraced"] for m in MODES},
            "pingpong_round_trips_per_s": pp, "median_pingpong": ppm,
            "pingpong_ratio_to_untraced": {m: ppm[m] / ppm["untraced"] for m in MODES},
            "bpf": {m: {k: statistics.median(x[k] for x in v) for k in v[0]}
                    for m, v in bpf.items() if v},
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3]}


def report(h):
    print(f"\nRust async server (hsrv, hyper 0.14, 32 keep-alive connections, "
          f"{h['rounds']} rounds of {h['seconds_each']} s, medians)")
    for m in MODES:
        print(f"  {m:11s} {h['median_requests_per_s'][m]:7.1f} requests/s  "
              f"ratio {h['ratio_to_untraced'][m]:.3f}   pipe ping-pong beside it "
              f"{h['median_pingpong'][m]:9.0f} round trips/s  ratio "
              f"{h['pingpong_ratio_to_untraced'][m]:.3f}")
    for m, b in h.get("bpf", {}).items():
        print(f"  {m:11s} BPF {b['bpf_ns_per_request'] / 1000:7.1f} us per request; "
              f"context-switch hook {b['switch_runs_per_s']:8.0f} runs/s during ping-pong, "
              f"{b['switch_ns_per_run']:6.1f} ns/run")
