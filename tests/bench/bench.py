#!/usr/bin/env python3
"""`make bench`: what spanprobe costs, measured side by side with the
kernel's floor and with bpftrace, in one run on this machine.

Phases, in this order, all in one run so that ratios compare like with
like on a shared and noisy machine:
  per call     ns added to a short function (bench_leaf, first instruction
               `push %rbp`) by each configuration: no probes, empty BPF
               programs (the floor: uprobe_multi entry + return), spanprobe
               inside and outside queries in each attach mode, bpftrace.
               Each configuration has its own copy of the target binary,
               its own process and its tracer attached throughout; rounds
               visit them in turn (see per_call);
  BPF stats    ns per program run (kernel.bpf_stats_enabled, briefly);
  first insn   an empty entry uprobe on each ins_* function of the target,
               measured against what `spanprobe symbols` predicts;
  verifier     the verifier's time per spanprobe program;
  load         span records per second without a drop, collector CPU and
               RSS at 100k calls/s, 200k calls/s for 60 s;
  attach       attach and detach times, 1,000 functions;
  hyper        a Rust async server's throughput untraced, traced, traced
               without observation points, and what the context-switch
               hook costs the rest of the machine (hyper_bench.py);
  exits        --exit-probe retsites vs default settings (auto: the guard)
               vs uretprobe per call (C++
               and Rust), per exception, and on hsrv's hello requests
               (exits_bench.py).

Output: a table on stdout, the same figures in BUILD/bench/results.json.
Timed target loops run on the last CPU at SCHED_FIFO priority 10 (other
processes cannot preempt them); tracers and this script run on CPU 0.
"""
import argparse
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import exits_bench
import hyper_bench

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
TARGET_CPU = NCPU - 1
TRACER_CPU = 0


T0 = time.monotonic()


def log(msg):
    print(f"bench: [{time.monotonic() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def pin(cpu):
    return lambda: os.sched_setaffinity(0, {cpu})


def pin_rt(cpu):
    """CPU `cpu` at SCHED_FIFO priority 10: on this shared machine other
    processes' time slices otherwise land inside the timed loops (we saw
    the same loop take 0.9 or 1.4 us per call depending on them); the
    target sleeps between loops, so it never holds the CPU for long."""
    def setup():
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    return setup


def median(v):
    return statistics.median(v) if v else None


# ---------------------------------------------------------------- processes

class Target:
    """The benchmark target: one command line in, one answer line out."""

    def __init__(self, path):
        self.path = path
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1, preexec_fn=pin_rt(TARGET_CPU))
        self.pid = self.p.pid
        if self._read(10) != "ready":
            raise RuntimeError("target did not start")

    def _read(self, timeout):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError("target: no answer")
        return self.p.stdout.readline().strip()

    def cmd(self, line, timeout=30):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self._read(timeout)
        if ans.startswith("error") or ans == "timeout":
            raise RuntimeError(f"target: {line}: {ans}")
        return ans

    def ns_per_call(self, mode, func, ms):
        calls, ns = map(int, self.cmd(f"run {mode} {func} {ms}").split())
        return ns / calls

    def armed(self, func, off=0):
        self.cmd(f"armed {func} {off}")

    def clear(self, func, off=0):
        self.cmd(f"clear {func} {off}")

    def rate(self, func, rate, batch, secs):
        calls, ns, late = map(int, self.cmd(f"rate {func} {rate} {batch} {secs}",
                                            timeout=secs + 60).split())
        return calls, ns, late

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait(10)


class Tracer:
    """A tracer process attached to the target until stop()."""

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Floor(Tracer):
    def __init__(self, exe, mode, pid, binary, offsets):
        argv = [exe, mode, str(pid), binary] + [hex(o) for o in offsets]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=pin(TRACER_CPU))
        line = self.p.stdout.readline()
        if not line.startswith("floor: attached"):
            self.stop()
            raise RuntimeError(f"floor {mode}: did not attach")


class Spanprobe(Tracer):
    """spanprobe attach; stderr is read by a thread (attached line, then
    the exit summary)."""

    def __init__(self, exe, pid, syms, args=(), stdout=subprocess.DEVNULL, binary=None):
        # binary: attach --exe BINARY (every process of it) instead of -p
        who = ["--exe", binary] if binary else ["-p", str(pid)]
        argv = [exe, "attach"] + who + ["-s", syms] + list(args)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=pin(TRACER_CPU))
        self.lines = []
        self.attached = threading.Event()
        self.attach_s = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.attached.wait(120) or self.attach_s is None:
            self.stop()
            raise RuntimeError("spanprobe did not attach: " + " | ".join(self.lines))

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("spanprobe: attached "):
                self.attach_s = time.monotonic() - self.t0
                self.attached.set()
        self.attached.set()

    def attached_line(self):
        return next((l for l in self.lines if l.startswith("spanprobe: attached ")), "")

    def mode(self):
        m = re.search(r"\(([^)]*)\)\s*$", self.attached_line())
        return m.group(1) if m else "?"

    def stop(self):
        super().stop()
        self.reader.join(10)

    def summary(self):
        """(records, lost) from the exit summary."""
        for l in self.lines:
            m = re.search(r"(\d+) span records from the kernel \((\d+) lost\)", l)
            if m:
                return int(m.group(1)), int(m.group(2))
        raise RuntimeError("no spanprobe summary: " + " | ".join(self.lines[-3:]))

    def cpu_ticks(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def rss_kib(self):
        out = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for l in f:
                if l.startswith(("VmRSS:", "VmHWM:")):
                    out[l.split(":")[0]] = int(l.split()[1])
        return out


class Bpftrace(Tracer):
    """The bpftrace equivalent of spanprobe's hot path: entry time per
    tid, duration at return, printed only above 5 ms."""

    def __init__(self, pid, binary, func):
        prog = (f"uprobe:{binary}:{func} {{ @start[tid] = nsecs; }}\n"
                f"uretprobe:{binary}:{func} /@start[tid]/ {{\n"
                f"  $d = nsecs - @start[tid];\n"
                f"  if ($d > 5000000) {{ printf(\"%d %d\\n\", tid, $d); }}\n"
                f"  delete(@start[tid]);\n}}\n")
        self.p = subprocess.Popen(["bpftrace", "-p", str(pid), "-e", prog],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  preexec_fn=pin(TRACER_CPU))
        self._wait_links()

    def _wait_links(self):
        # bpftrace prints "Attaching" before attaching: wait until the
        # kernel lists both of its perf-event links instead
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("bpftrace exited")
            out = subprocess.run(["bpftool", "perf", "list", "-j"],
                                 capture_output=True, text=True).stdout
            kinds = {e.get("fd_type") for e in json.loads(out or "[]")
                     if e.get("pid") == self.p.pid}
            if {"uprobe", "uretprobe"} <= kinds:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("bpftrace did not attach")


# ---------------------------------------------------------------- binary facts

def symbols_of(binary):
    """name -> file offset of every function symbol."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout
    loads = []
    for l in out.splitlines():
        f = l.split()
        if f and f[0] == "LOAD":
            loads.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))  # off, vaddr, filesz
    syms = {}
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout
    for l in out.splitlines():
        f = l.split()
        if len(f) == 3 and f[1] in "Tt":
            va = int(f[0], 16)
            for off, vaddr, size in loads:
                if vaddr <= va < vaddr + size:
                    syms[f[2]] = va - vaddr + off
    return syms


def disassemble(binary, func):
    """[(offset from the start, mnemonic, text)] of one function."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={func}",
                          binary], capture_output=True, text=True).stdout
    insns, start = [], None
    for l in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", l)
        if not m:
            continue
        a = int(m.group(1), 16)
        start = a if start is None else start
        insns.append((a - start, m.group(2), (m.group(2) + " " + m.group(3)).strip()))
    return insns


# ---------------------------------------------------------------- phases 1, 2, 5

LEAF, LEAF_SS = "bench_leaf", "bench_leaf_ss"


class Setup:
    """One configuration: its own copy of the target binary (uprobes
    belong to an inode, so copies never see each other's probes), its
    own target process and the tracer attached to it for the whole
    phase. Rounds then visit the configurations in turn, a few hundred
    ms apart: interleaved without any attach or detach in between."""

    def __init__(self, a, name, start_tracer, armed, binary=None):
        self.name = name
        self.path = os.path.join(a.work, "copies", f"target-{name}")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        shutil.copyfile(binary or a.target, self.path)
        os.chmod(self.path, 0o755)
        self.t = Target(self.path)
        self.tracer = start_tracer(self) if start_tracer else None
        for func, off in armed:
            self.t.armed(func, off)
        self.mode = self.tracer.mode() if isinstance(self.tracer, Spanprobe) else None

    def loop(self, mode, func, ms, loops=2):
        """The least disturbed of a few loops: other processes on this
        shared machine only ever add time."""
        return min(self.t.ns_per_call(mode, func, ms) for _ in range(loops))

    def close(self):
        if self.tracer:
            self.tracer.stop()
        self.t.close()
        os.unlink(self.path)


def write_syms(a, name, text):
    path = os.path.join(a.work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def probe_shifts(a, binary, syms):
    """FUNC (leaf or root) -> bytes from the function's start to its entry
    probe, as `spanprobe symbols` places it (the target watches that byte)."""
    out = subprocess.run([a.spanprobe, "symbols", "--json", "-s", syms, binary],
                         capture_output=True, text=True)
    pats = json.loads(out.stdout)["patterns"]
    return {"root": pats[0]["matches"][0]["entry_shift"],
            "leaf": pats[1]["matches"][0]["entry_shift"]}


def language_setups(a, sp):
    """A Rust async poll (panic = "unwind", the default, and "abort") and a
    C++ method, each with spanprobe's default settings, beside a tracer-less
    process of the same binary (issue 11)."""
    rust = write_syms(a, "rust.syms", "root rust_target::bench_root\n"
                      "span rust_target::leaf_async::{*}\n")
    cxx = write_syms(a, "cxx.syms", "root bench::root*\nspan bench::Counter::add*\n")
    out = []
    for name, binary, syms in (("rust", a.rust_target, rust),
                               ("rust_abort", a.rust_target_abort, rust),
                               ("cxx", a.cxx_target, cxx)):
        sh = probe_shifts(a, binary, syms)
        armed = [("leaf", sh["leaf"]), ("root", sh["root"])]
        out.append((f"{name}_none", None, [], [(f"none_{name}", "plain", "leaf"),
                                                (f"none_{name}_root", "root", "leaf")], binary))
        out.append((name, (lambda sy: lambda st: Spanprobe(a.spanprobe, st.t.pid, sy, sp))(syms),
                    armed, [(f"spanprobe_{name}_inside", "root", "leaf"),
                            (f"spanprobe_{name}_outside", "plain", "leaf")], binary))
    return out


def per_call_setups(a):
    leaf = write_syms(a, "leaf.syms", f"root bench_root\nspan {LEAF}\n")
    ss = write_syms(a, "leaf_ss.syms", f"root bench_root\nspan {LEAF_SS}\n")
    sp = ["--min-span", "5ms", "--min-query", "0"]
    off = a.syms[LEAF]
    both = [(LEAF, 0), ("bench_root", 0)]

    def floor(mode):
        return lambda st: Floor(a.floor, mode, st.t.pid, st.path, [off])

    def spanprobe(syms, extra):
        return lambda st: Spanprobe(a.spanprobe, st.t.pid, syms, sp + extra)

    def spanprobe_exe(syms):
        return lambda st: Spanprobe(a.spanprobe, st.t.pid, syms, sp, binary=st.path)

    # (name, tracer, armed functions, measures: (key, loop mode, function))
    return [
        ("none", None, [], [("none", "plain", LEAF), ("none_root", "root", LEAF),
                            ("none_ss", "root", LEAF_SS)]),
        ("floor_pair", floor("pair"), [(LEAF, 0)], [("floor_pair", "plain", LEAF)]),
        ("floor_pair_clock", floor("pair-clock"), [(LEAF, 0)],
         [("floor_pair_clock", "plain", LEAF)]),
        ("floor_classic", floor("classic"), [(LEAF, 0)], [("floor_classic", "plain", LEAF)]),
        ("floor_session", floor("session"), [(LEAF, 0)], [("floor_session", "plain", LEAF)]),
        ("floor_session_skip", floor("session-skip"), [(LEAF, 0)],
         [("floor_session_skip", "plain", LEAF)]),
        ("floor_entry", floor("entry"), [(LEAF, 0)], [("floor_entry", "plain", LEAF)]),
        ("floor_session_minimal", floor("session-minimal"), [(LEAF, 0)],
         [("floor_session_minimal", "plain", LEAF)]),
        ("spanprobe", spanprobe(leaf, []), both,
         [("spanprobe_inside", "root", LEAF), ("spanprobe_outside", "plain", LEAF)]),
        ("spanprobe_multi", spanprobe(leaf, ["--attach-mode", "multi"]), both,
         [("spanprobe_multi_inside", "root", LEAF), ("spanprobe_multi_outside", "plain", LEAF)]),
        ("spanprobe_classic", spanprobe(leaf, ["--attach-mode", "classic"]), both,
         [("spanprobe_classic_inside", "root", LEAF),
          ("spanprobe_classic_outside", "plain", LEAF)]),
        # the service rather than the pid: links without a pid filter
        ("spanprobe_exe", spanprobe_exe(leaf), both,
         [("spanprobe_exe_inside", "root", LEAF), ("spanprobe_exe_outside", "plain", LEAF)]),
        ("spanprobe_follow", spanprobe(leaf, ["--follow"]), both,
         [("spanprobe_follow_inside", "root", LEAF),
          ("spanprobe_follow_outside", "plain", LEAF)]),
        ("spanprobe_retsites", spanprobe(leaf, ["--exit-probe", "retsites"]), both,
         [("spanprobe_retsites_inside", "root", LEAF),
          ("spanprobe_retsites_outside", "plain", LEAF)]),
        ("spanprobe_ss", spanprobe(ss, []), [(LEAF_SS, 0), ("bench_root", 0)],
         [("spanprobe_ss_inside", "root", LEAF_SS)]),
        ("bpftrace", lambda st: Bpftrace(st.t.pid, st.path, LEAF), [(LEAF, 0)],
         [("bpftrace", "plain", LEAF)]),
    ] + [
        # --compare: other spanprobe builds in the same rounds (A/B while
        # working on the hot path)
        (f"alt{i}", (lambda b: lambda st: Spanprobe(b, st.t.pid, leaf, sp))(b), both,
         [(f"alt{i}_inside", "root", LEAF), (f"alt{i}_outside", "plain", LEAF)])
        for i, b in enumerate(a.compare)
    ] + language_setups(a, sp)


def baseline_key(key):
    if key == "spanprobe_ss_inside":
        return "none_ss"
    for lang in ("rust_abort", "rust", "cxx"):
        if key.startswith(f"spanprobe_{lang}_"):
            return f"none_{lang}_root" if key.endswith("_inside") else f"none_{lang}"
    return "none_root" if key.endswith("_inside") else "none"


def per_call_results(a, samples, modes):
    """Added ns = configuration - its no-probe baseline of the same round;
    ratios are taken per round too, then the median over rounds."""
    added = {k: [x - b for x, b in zip(v, samples[baseline_key(k)])]
             for k, v in samples.items() if not k.startswith("none")}
    out = {}
    for k, v in samples.items():
        if k.startswith("none"):
            out[k] = {"ns_per_call": median(v), "rounds": [round(x, 2) for x in v]}
            continue
        out[k] = {
            "ns_per_call": median(v),
            "added_ns": median(added[k]),
            "added_ns_rounds": [round(x, 1) for x in added[k]],
            "ratio_to_floor": median([x / f for x, f in zip(added[k], added["floor_pair"])]),
            "ratio_to_bpftrace": median([x / b for x, b in zip(added[k], added["bpftrace"])]),
            "ratio_of_medians_to_floor": median(added[k]) / median(added["floor_pair"]),
        }
    return {"floor": "floor_pair", "loop_ms": a.loop_ms, "rounds": a.rounds,
            "loops_per_round": a.loops,
            "estimator": "per round: best of its loops; over rounds: median",
            "attach_modes": modes, "configs": out}


def per_call(a, setups):
    """Each round visits every configuration a.loops times, one loop per
    visit; a configuration's value for the round is its best loop (other
    processes on this shared machine only ever add time), so every value
    had its chances spread over the whole round."""
    specs = per_call_setups(a)
    samples = {}
    for name, tracer, armed, _, *binary in specs:
        log(f"per-call: attaching {name}")
        setups[name] = Setup(a, name, tracer, armed, *binary)
    for r in range(a.rounds):
        log(f"per-call: round {r + 1}/{a.rounds}")
        got = {}
        for i in range(a.loops):
            for k in range(len(specs)):  # rotated: no configuration always first
                name, _, _, measures, *_ = specs[(r + i + k) % len(specs)]
                for key, mode, func in measures:
                    got.setdefault(key, []).append(setups[name].loop(mode, func, a.loop_ms, 1))
        for key, v in got.items():
            samples.setdefault(key, []).append(min(v))
    modes = {n: st.mode for n, st in setups.items() if st.mode}
    return per_call_results(a, samples, modes)


LEAF_STR = "bench_leaf_str"


def captures(a):
    """The hot-path cost of captured values (issue 14): the same probed C
    function (bench_leaf_str, inside a query, spans too short to leave the
    kernel) with no captures, with 2 integer captures (an argument and the
    return value) and with a string capture (the returned C string), side
    by side in the same rounds as per_call; the ratios of the added ns to
    the no-capture configuration's, per round, then their median."""
    sp = ["--min-span", "5ms", "--min-query", "0"]
    cfgs = [("cap_none", ""), ("cap_int2", " x=arg0:i64 r=ret:i64"), ("cap_str", " s=ret:str")]
    specs = [("cap_noprobe", None)]
    for name, caps in cfgs:
        syms = write_syms(a, f"{name}.syms", f"root bench_root\nspan {LEAF_STR}{caps}\n")
        specs.append((name, (lambda sy: lambda st: Spanprobe(a.spanprobe, st.t.pid, sy, sp))(syms)))
    setups = {}
    try:
        for name, tracer in specs:
            log(f"captures: attaching {name}")
            armed = [(LEAF_STR, 0), ("bench_root", 0)] if tracer else []
            setups[name] = Setup(a, name, tracer, armed)
        samples = {}
        for r in range(a.rounds):
            log(f"captures: round {r + 1}/{a.rounds}")
            got = {}
            for i in range(a.loops):
                for k in range(len(specs)):
                    name = specs[(r + i + k) % len(specs)][0]
                    got.setdefault(name, []).append(
                        setups[name].loop("root", LEAF_STR, a.loop_ms, 1))
            for name, v in got.items():
                samples.setdefault(name, []).append(min(v))
    finally:
        for st in setups.values():
            st.close()
    base = samples["cap_noprobe"]
    added = {n: [x - b for x, b in zip(samples[n], base)] for n, _ in cfgs}
    out = {"function": LEAF_STR, "rounds": a.rounds, "loop_ms": a.loop_ms,
           "estimator": "per round: best of its loops; over rounds: median",
           "no_probe_ns_per_call": median(base), "configs": {}}
    for n, caps in cfgs:
        out["configs"][n] = {
            "captures": caps.strip() or "(none)",
            "ns_per_call": median(samples[n]),
            "added_ns": median(added[n]),
            "added_ns_rounds": [round(x, 1) for x in added[n]],
            "ratio_to_no_captures": median([x / c for x, c in zip(added[n], added["cap_none"])]),
        }
    return out


def print_captures(cp):
    print(f"\nCaptures ({cp['function']}, inside a query; {cp['rounds']} rounds; "
          f"no probes: {cp['no_probe_ns_per_call']:.1f} ns/call)")
    print(f"{'captures':44s} {'ns/call':>9s} {'added ns':>9s} {'x no captures':>14s}")
    for c in cp["configs"].values():
        print(f"{c['captures']:44s} {c['ns_per_call']:9.1f} {c['added_ns']:9.1f} "
              f"{c['ratio_to_no_captures']:14.2f}")


def ins_variants(a):
    """ins_* functions and the offset probed in each (the ret of ins_ret)."""
    out = {}
    for name in sorted(a.syms):
        if not name.startswith("ins_") or name == "ins_call_helper":
            continue
        off = 0
        if name == "ins_ret":
            off = next(o for o, mn, _ in disassemble(a.target, name) if mn.startswith("ret"))
        out[name] = off
    return out


def measured_class(added, ref):
    """optimized / emulated / single-stepped, relative to push %rbp."""
    if added < 0.7 * ref:
        return "optimized"
    return "emulated" if added < 3 * ref else "single-stepped"


def predicted_classes(a, variants):
    """What `spanprobe symbols` says of each probed instruction."""
    path = write_syms(a, "ins.syms", "span ins_*\n")
    pred = {}
    for policy in ("uretprobe", "retsites"):
        out = subprocess.run([a.spanprobe, "symbols", "-s", path, a.target, "--json",
                              "--exit-probe", policy], capture_output=True, text=True)
        doc = json.loads(out.stdout)
        for m in doc["patterns"][0]["matches"]:
            name = m["name"]
            if name not in variants:
                continue
            if variants[name] == 0 and policy == "uretprobe":
                # a probe moved past endbr64 says nothing of offset 0,
                # where this phase measures: endbr64 is single-stepped
                pred[name] = "single-stepped" if m.get("entry_shift") else m["entry_probe"]
            elif variants[name] and policy == "retsites":
                pred[name] = "single-stepped" if m["exit_sites_single_stepped"] else "emulated"
    return pred


def first_instruction(a, setups):
    variants = ins_variants(a)
    offsets = [a.syms[n] + o for n, o in variants.items()]
    none = setups["none"]
    log("first instruction: attaching an empty entry uprobe to every ins_* function")
    st = Setup(a, "ins", lambda s: Floor(a.floor, "entry", s.t.pid, s.path, offsets),
               list(variants.items()))
    samples = {n: [] for n in variants}
    try:
        for r in range(a.ins_rounds):
            log(f"first instruction: round {r + 1}/{a.ins_rounds}")
            for n in variants:
                base = none.loop("plain", n, a.ins_ms)
                samples[n].append(st.loop("plain", n, a.ins_ms) - base)
    finally:
        st.close()
    pred = predicted_classes(a, variants)
    added = {n: median(v) for n, v in samples.items()}
    ref = added["ins_push_rbp"]
    rows = []
    for n in variants:
        text = next(t for o, _, t in disassemble(a.target, n) if o == variants[n])
        got = measured_class(added[n], ref)
        rows.append({"function": n, "probed_offset": variants[n], "instruction": text,
                     "added_ns": round(added[n], 1), "measured": got,
                     "spanprobe_symbols_says": pred.get(n), "agree": pred.get(n) == got})
    return rows


def kind_costs(rows):
    """Median added ns per kind: the figures user/symbols/probe_cost.c quotes."""
    out = {}
    for kind in ("optimized", "emulated", "single-stepped"):
        out[kind] = median([r["added_ns"] for r in rows if r["measured"] == kind])
    return out


def prog_ids(pid):
    """BPF programs held by a process, from its fds' fdinfo."""
    ids = []
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                info = f.read()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s*(\d+)", info, re.M)
        if m and "prog_type" in info:
            ids.append(int(m.group(1)))
    return ids


def prog_runs(pid):
    """name -> (run_cnt, run_time_ns) of a process's programs that ran."""
    out = {}
    for i in prog_ids(pid):
        p = json.loads(subprocess.run(["bpftool", "prog", "show", "id", str(i), "-j"],
                                      capture_output=True, text=True).stdout or "{}")
        c, t = out.get(p.get("name"), (0, 0))
        out[p.get("name")] = (c + p.get("run_cnt", 0), t + p.get("run_time_ns", 0))
    return out


def bpf_prog_stats(a, setups):
    """ns per BPF program run with kernel.bpf_stats_enabled on for this
    phase only (it adds its own clock reads to every run)."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write("1")
    out = {}
    try:
        for name, mode in (("spanprobe", "root"), ("spanprobe", "plain"),
                           ("floor_session", "plain"), ("floor_session_skip", "plain"),
                           ("floor_pair", "plain"), ("bpftrace", "plain")):
            st = setups[name]
            before = prog_runs(st.tracer.p.pid)
            calls, _ = map(int, st.t.cmd(f"run {mode} {LEAF} 200").split())
            after = prog_runs(st.tracer.p.pid)
            runs = {n: (after[n][0] - before.get(n, (0, 0))[0],
                        after[n][1] - before.get(n, (0, 0))[1]) for n in after}
            label = name + ("_inside" if mode == "root" else "")
            out[label] = {n: {"runs_per_call": round(c / calls, 3),
                              "ns_per_run": round(t / c, 1)} for n, (c, t) in runs.items() if c}
    finally:
        with open(path, "w") as f:
            f.write(old)
    return out


# ---------------------------------------------------------------- phase 3

def bpf_programs(obj):
    """Program names of a BPF object: its functions outside .text."""
    out = subprocess.run(["readelf", "-sW", obj], capture_output=True, text=True).stdout
    secs = subprocess.run(["readelf", "-SW", obj], capture_output=True, text=True).stdout
    text_idx = {m.group(1) for m in re.finditer(r"\[\s*(\d+)\]\s+\.text\s", secs)}
    names = []
    for l in out.splitlines():
        f = l.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6] not in text_idx:
            names.append(f[7])
    return names


def verifier_costs(a):
    """The verifier's time and work for each of spanprobe's programs."""
    obj = a.bpf_object
    out = subprocess.run([a.verify_cost, obj] + bpf_programs(obj), capture_output=True,
                         text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def attach_once(a, exe, syms, mode):
    """Seconds from spanprobe's start to its 'attached' line on a fresh
    process of exe, and from SIGINT to its exit."""
    proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, preexec_fn=pin(TARGET_CPU))
    proc.stdout.readline()
    try:
        sp = Spanprobe(a.spanprobe, proc.pid, syms, ["--attach-mode", mode, "--min-query", "0"])
        got = {"attach_s": sp.attach_s, "mode_used": sp.mode(), "line": sp.attached_line()}
        t0 = time.monotonic()
        sp.stop()
        got["detach_s"] = time.monotonic() - t0
        return got
    finally:
        proc.stdin.close()
        proc.wait(10)


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def attach_row(a, label, exe, syms, mode, reps):
    got = [attach_once(a, exe, syms, mode) for _ in range(reps)]
    row = {"functions": sum(1 for l in open(syms) if l.startswith(("span ", "root "))),
           "seconds": median([g["attach_s"] for g in got]),
           "reps": [round(g["attach_s"], 3) for g in got],
           "detach_seconds": median([g["detach_s"] for g in got]),
           "mode_used": got[-1]["mode_used"], "attached_line": got[-1]["line"]}
    log(f"attach ({label}): {row['seconds']:.3f} s, detach {row['detach_seconds']:.3f} s")
    return row


def attach_times(a):
    """1,000 functions with session and uprobe_multi links; 2 functions
    (the fixed part); the 1,000 names resolved alone (`spanprobe
    symbols`). Classic links are timed on 20 functions only: each one is
    released separately and waits for RCU grace periods (0.1-0.7 s per
    probe on this kernel), so 1,000 functions (2,000 probes) would take
    minutes to detach, and would slow whatever runs meanwhile."""
    few = os.path.join(a.work, "many20.syms")
    with open(a.many_syms) as src, open(few, "w") as dst:
        dst.writelines([l for l in src if l.startswith("span ")][:20])
    out = {
        "session": attach_row(a, "session", a.many, a.many_syms, "session", a.attach_reps),
        "multi": attach_row(a, "multi", a.many, a.many_syms, "multi", a.attach_reps),
        "session_2_functions": attach_row(a, "session, 2 functions", a.target, a.leaf_syms,
                                          "session", a.attach_reps),
        "classic_20_functions": attach_row(a, "classic, 20 functions", a.many, few, "classic", 1),
    }
    sym = [timed([a.spanprobe, "symbols", "-s", a.many_syms, a.many]) for _ in range(3)]
    out["symbols_only_1000"] = {"seconds": median(sym), "reps": [round(t, 3) for t in sym]}
    return out


# ---------------------------------------------------------------- phase 4

def loaded_run(a, target, rate, secs, min_span, batch=100, warm=0.5):
    """spanprobe at `rate` instrumented calls/s for `secs`: records, lost,
    collector CPU (% of one core) and RSS over the paced window."""
    args = ["--min-span", min_span, "--min-query", "0", "-o", "/dev/null"]
    with Spanprobe(a.spanprobe, target.pid, a.leaf_syms, args) as sp:
        target.armed(LEAF)
        target.armed("bench_root")
        time.sleep(warm)
        c0, t0 = sp.cpu_ticks(), time.monotonic()
        calls, ns, late = target.rate(LEAF, rate, batch, secs)
        c1, t1 = sp.cpu_ticks(), time.monotonic()
        mem = sp.rss_kib()
    records, lost = sp.summary()
    target.clear(LEAF)
    target.clear("bench_root")
    achieved = calls / (ns / 1e9)
    return {"rate_asked": rate, "rate_achieved": round(achieved), "seconds": round(ns / 1e9, 2),
            "late_batches": late, "batches": calls // batch, "min_span": min_span,
            "records": records, "lost": lost,
            "collector_cpu_pct": round(100.0 * (c1 - c0) / CLK_TCK / (t1 - t0), 2),
            "collector_rss_kib": mem.get("VmRSS"), "collector_hwm_kib": mem.get("VmHWM")}


def reached(r):
    """The rate was delivered (batches that started late on this shared
    machine are reported, but only the delivered rate counts)."""
    return r["rate_achieved"] >= 0.97 * r["rate_asked"]


def events_ramp(a, target):
    steps = []
    for rate in a.ramp:
        r = loaded_run(a, target, rate, a.ramp_secs, "0")
        steps.append(r)
        log(f"ramp {rate}/s: achieved {r['rate_achieved']}/s, {r['records']} records, "
            f"{r['lost']} lost, collector {r['collector_cpu_pct']}% CPU")
        if r["lost"] or not reached(r):
            break
    ok = [r for r in steps if not r["lost"] and reached(r)]
    best = max((r["rate_achieved"] for r in ok), default=0)
    limit = "nothing: the highest rate asked was reached without a drop"
    if steps and steps[-1]["lost"]:
        limit = "drops"
    elif steps and not reached(steps[-1]):
        limit = "generator (the probed target thread cannot call faster)"
    return {"steps": steps, "max_records_per_s_without_drop": best, "stopped_by": limit}


# ---------------------------------------------------------------- report

def machine():
    info = {}
    for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        k, _, v = l.partition(":")
        info[k.strip()] = v.strip()
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"kernel": platform.release(), "cpu": info.get("Model name", "?"),
            "cpu_family_model": f"{info.get('CPU family', '?')}/{info.get('Model', '?')}",
            "cpus": NCPU, "hypervisor": info.get("Hypervisor vendor", "none"),
            "memory_gib": round(mem_kib / 2**20, 1),
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "bpftrace": subprocess.run(["bpftrace", "--version"], capture_output=True,
                                       text=True).stdout.strip()}


def targets(res):
    pc = res["per_call"]["configs"]
    inside, outside = pc["spanprobe_inside"]["ratio_to_floor"], pc["spanprobe_outside"]["ratio_to_floor"]
    s200 = res["load"]["sustained_200k"]
    c_real, c_worst = res["load"]["collector_100k"]["realistic"], res["load"]["collector_100k"]["worst_case"]
    att = res["attach_1000"]["session"]["seconds"]
    lang = [(f"{label}, default settings, inside a query", "<= 1.5x floor",
             pc[key]["ratio_to_floor"]) for label, key in
            (("Rust async poll (panic=unwind)", "spanprobe_rust_inside"),
             ("Rust async poll (panic=abort)", "spanprobe_rust_abort_inside"),
             ("C++ method (a program that throws)", "spanprobe_cxx_inside")) if key in pc]
    rows = [(t, g, f"{r:.2f}x", r <= 1.5) for t, g, r in lang] + [
        ("added cost per instrumented call (inside a query)", "<= 1.10x floor", f"{inside:.2f}x",
         inside <= 1.10),
        ("added cost outside queries", "<= 0.70x floor", f"{outside:.2f}x", outside <= 0.70),
        (f"drops at 200k calls/s for {s200['seconds']:.0f} s, every call a span record",
         "0 (and 200k/s reached)",
         f"{s200['lost']} lost, {s200['rate_achieved']}/s achieved",
         s200["lost"] == 0 and reached(s200) and s200["seconds"] >= 59),
        ("collector CPU at 100k calls/s (--min-span 5ms: calls stay in the kernel)",
         "<= 5% of a core", f"{c_real['collector_cpu_pct']:.2f}%", c_real["collector_cpu_pct"] <= 5),
        ("collector CPU at 100k calls/s (--min-span 0: every call a span record)",
         "<= 5% of a core", f"{c_worst['collector_cpu_pct']:.2f}%",
         c_worst["collector_cpu_pct"] <= 5),
        ("attach 1,000 functions (default mode: " + res["attach_1000"]["session"]["mode_used"] + ")",
         "<= 1 s", f"{att:.3f} s", att <= 1.0),
    ]
    if "exits" in res:  # hsrv's exits are guarded under auto (panic = "unwind")
        h = res["exits"]["hello"]["throughput_ratio_to_untraced"]["auto"]
        rows.append(("tokio/hyper server (hsrv hello), default settings (guarded exits), throughput",
                     ">= 0.85x untraced", f"{h:.3f}x", h >= 0.85))
    return [{"target": t, "goal": g, "measured": m, "met": bool(ok)} for t, g, m, ok in rows]


def print_report(res):
    m = res["machine"]
    print(f"\nspanprobe bench: {m['cpus']} CPUs {m['cpu']} (family/model {m['cpu_family_model']}, "
          f"hypervisor {m['hypervisor']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
          f"{m['date']}, load average at start {' '.join(m['loadavg_at_start'])}")
    if "per_call" in res:
        print_per_call(res["per_call"])
    if "first_instruction" in res:
        print_first_instruction(res["first_instruction"])
    if "attach_1000" in res:
        print_attach(res["attach_1000"])
    if "verifier" in res:
        print("\nBPF verifier, per spanprobe program (loaded alone)")
        for v in res["verifier"]:
            print(f"  {v['program']:16s} {v['verify_us'] / 1000:8.1f} ms  "
                  f"{v['insns_processed']:>8d} insns processed (limit 1000000)")
    if "load" in res:
        print_load(res["load"])
    if "hyper" in res:
        hyper_bench.report(res["hyper"])
    if "captures" in res:
        print_captures(res["captures"])
    if "exits" in res:
        exits_bench.report(res["exits"])
    print_tail(res)


def print_per_call(pc):
    print(f"\nPer call ({pc['rounds']} rounds; in each, every configuration runs "
          f"{pc['loops_per_round']} interleaved loops of {pc['loop_ms']} ms and keeps its best;\n"
          "medians over rounds; ratios taken per round, then their median;\n"
          "floor = empty uprobe_multi entry + uretprobe_multi programs)")
    print(f"{'configuration':44s} {'ns/call':>9s} {'added ns':>9s} {'x floor':>8s} {'x bpftrace':>10s}")
    labels = {
        "none": "no probes", "none_root": "no probes, inside root",
        "none_ss": "no probes, bench_leaf_ss inside root",
        "floor_pair": "FLOOR: empty uprobe+uretprobe (uprobe_multi)",
        "floor_pair_clock": "same, each program reading the clock once",
        "floor_classic": "empty uprobe+uretprobe (classic)",
        "floor_session": "empty uprobe session (returns 0)",
        "floor_session_skip": "empty uprobe session returning 1 (entry)",
        "floor_entry": "empty entry uprobe only (uprobe_multi)",
        "floor_session_minimal": "minimal span timer (session, 2 clocks, task storage)",
        "spanprobe_inside": "spanprobe, inside a query (session)",
        "spanprobe_outside": "spanprobe, outside queries (session)",
        "spanprobe_multi_inside": "spanprobe --attach-mode multi, inside",
        "spanprobe_multi_outside": "spanprobe --attach-mode multi, outside",
        "spanprobe_classic_inside": "spanprobe --attach-mode classic, inside",
        "spanprobe_classic_outside": "spanprobe --attach-mode classic, outside",
        "spanprobe_exe_inside": "spanprobe attach --exe, inside",
        "spanprobe_exe_outside": "spanprobe attach --exe, outside",
        "spanprobe_follow_inside": "spanprobe -p --follow, inside",
        "spanprobe_follow_outside": "spanprobe -p --follow, outside",
        "spanprobe_retsites_inside": "spanprobe --exit-probe retsites, inside",
        "spanprobe_retsites_outside": "spanprobe --exit-probe retsites, outside",
        "spanprobe_ss_inside": "spanprobe, single-stepped entry (lea), inside",
        "none_rust": "no probes, Rust poll (rust_target)",
        "spanprobe_rust_inside": "Rust async poll, default (panic=unwind), inside",
        "spanprobe_rust_outside": "Rust async poll, default (panic=unwind), outside",
        "none_rust_abort": "no probes, Rust poll, panic=abort build",
        "spanprobe_rust_abort_inside": "Rust async poll, panic=abort, inside",
        "spanprobe_rust_abort_outside": "Rust async poll, panic=abort, outside",
        "none_cxx": "no probes, C++ method (cxx_target)",
        "spanprobe_cxx_inside": "C++ method, default (it throws), inside",
        "spanprobe_cxx_outside": "C++ method, default (it throws), outside",
        "bpftrace": "bpftrace uprobe+uretprobe, > 5 ms filter",
    }
    labels.update({k: k for k in pc["configs"] if k.startswith("alt")})
    for key, label in labels.items():
        c = pc["configs"].get(key)
        if not c:
            continue
        if key.startswith("none"):
            print(f"{label:44s} {c['ns_per_call']:9.1f}")
        else:
            print(f"{label:44s} {c['ns_per_call']:9.1f} {c['added_ns']:9.1f} "
                  f"{c['ratio_to_floor']:8.2f} {c['ratio_to_bpftrace']:10.2f}")


def print_first_instruction(fi):
    print("\nFirst instruction of the probed function (empty entry uprobe; measured vs "
          "`spanprobe symbols`)")
    for r in fi["rows"]:
        flag = "" if r["agree"] else "   <-- MISMATCH"
        print(f"  {r['function']:14s} {r['instruction'][:34]:34s} {r['added_ns']:9.1f} ns  "
              f"{r['measured']:15s} symbols: {r['spanprobe_symbols_says']}{flag}")
    kc = fi["cost_by_kind"]
    print("  median added ns per hit: " + ", ".join(f"{k} {v:.0f}" for k, v in kc.items() if v))


def print_attach(att):
    print("\nAttach (spanprobe start to its 'attached' line) and detach (SIGINT to exit)")
    for label, r in att.items():
        if label == "symbols_only_1000":
            print(f"  resolving the 1,000 names only (spanprobe symbols) {r['seconds']:.3f} s")
            continue
        print(f"  {label:22s} {r['functions']:5d} functions  attach {r['seconds']:6.3f} s  "
              f"detach {r['detach_seconds']:6.2f} s  ({r['mode_used']}; attach reps {r['reps']})")


def print_load(ld):
    ramp = ld["events_ramp"]
    print("\nSpan records per second without a drop (--min-span 0: every call a record; "
          f"{ramp['steps'][0]['seconds'] if ramp['steps'] else 0:.0f} s per step)")
    for r in ramp["steps"]:
        print(f"  asked {r['rate_asked']:>8d}/s achieved {r['rate_achieved']:>8d}/s  "
              f"records {r['records']:>9d} lost {r['lost']:>7d}  collector CPU "
              f"{r['collector_cpu_pct']:6.2f}%  RSS {r['collector_rss_kib']} KiB")
    print(f"  highest rate without a drop: {ramp['max_records_per_s_without_drop']}/s "
          f"(ramp stopped by: {ramp['stopped_by']})")
    print("\nCollector at 100k instrumented calls/s")
    for k, r in ld["collector_100k"].items():
        print(f"  {k:10s} --min-span {r['min_span']:4s} CPU {r['collector_cpu_pct']:6.2f}% of a core, "
              f"RSS {r['collector_rss_kib']} KiB (peak {r['collector_hwm_kib']} KiB), "
              f"records {r['records']}, lost {r['lost']}")
    s = ld["sustained_200k"]
    print(f"\n200k instrumented calls/s for {s['seconds']:.0f} s (--min-span 0): achieved "
          f"{s['rate_achieved']}/s, {s['records']} records, {s['lost']} lost, collector CPU "
          f"{s['collector_cpu_pct']:.2f}%, RSS {s['collector_rss_kib']} KiB")


def print_tail(res):
    if res.get("bpf_prog_stats"):
        print("\nBPF program time (kernel.bpf_stats_enabled, on for this measurement only)")
        for k, progs in res["bpf_prog_stats"].items():
            for name, v in progs.items():
                print(f"  {k:20s} {name:20s} {v['runs_per_call']:5.2f} runs/call "
                      f"{v['ns_per_run']:7.1f} ns/run")
    print("\nPhase durations (s): " + ", ".join(f"{k} {v}" for k, v in
                                               res.get("phase_seconds", {}).items()))
    print("\nTargets")
    for t in res.get("targets", []):
        print(f"  [{'met ' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']} "
              f"(goal {t['goal']})")


# ---------------------------------------------------------------- main

PHASES = ["per_call", "bpf_prog_stats", "first_instruction", "verifier", "load", "attach",
          "hyper", "captures", "exits"]

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions, 10 s instead of 60 s at 200k calls/s")
    ap.add_argument("--spanprobe", help="spanprobe binary to measure (default BUILD/spanprobe)")
    ap.add_argument("--compare", action="append", default=[], metavar="BIN",
                    help="also measure this spanprobe build per call (repeatable: alt0, alt1...)")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help="comma-separated subset of " + ",".join(PHASES) +
                    " (for development: docs/performance.md records whole runs)")
    ap.add_argument("--bpf-object", help="its BPF object, for the verifier figures "
                    "(default BUILD/spanprobe.bpf.o)")
    a = ap.parse_args()
    a.phases = set(a.phases.split(","))
    if a.phases - set(PHASES):
        ap.error("unknown phase(s): " + ",".join(sorted(a.phases - set(PHASES))))
    b = a.build
    a.spanprobe = a.spanprobe or os.path.join(b, "spanprobe")
    a.bpf_object = a.bpf_object or os.path.join(b, "spanprobe.bpf.o")
    a.work = os.path.join(b, "bench")
    a.floor = os.path.join(a.work, "floor")
    a.verify_cost = os.path.join(a.work, "verify_cost")
    a.target = os.path.abspath(os.path.join(a.work, "target"))
    a.rust_target = os.path.abspath(os.path.join(a.work, "rust_target"))
    a.rust_target_abort = os.path.abspath(os.path.join(a.work, "rust_target_abort"))
    a.cxx_target = os.path.abspath(os.path.join(a.work, "cxx_target"))
    a.many = os.path.join(a.work, "many")
    a.many_syms = os.path.join(a.work, "many.syms")
    a.leaf_syms = os.path.join(a.work, "leaf.syms")
    a.rounds = 7 if a.quick else 15
    a.loops = 3
    a.loop_ms = 15
    a.ins_rounds = 2 if a.quick else 3
    a.ins_ms = 40
    a.attach_reps = 2 if a.quick else 3
    a.ramp = [50000, 100000, 200000, 300000, 400000, 500000, 600000, 700000, 800000,
              1000000, 1200000]
    a.ramp_secs = 3 if a.quick else 4
    a.sustain_secs = 10 if a.quick else 60
    a.window_secs = 5 if a.quick else 10
    return a


def check_target(a):
    first = disassemble(a.target, LEAF)[0][2]
    if not first.startswith("push") or "%rbp" not in first:
        sys.exit(f"bench: {LEAF} must start with push %rbp, starts with '{first}'")
    return {LEAF: first, LEAF_SS: disassemble(a.target, LEAF_SS)[0][2]}


def main():
    a = parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (BPF)")
    os.sched_setaffinity(0, {TRACER_CPU})
    t_start = time.monotonic()
    res = {"machine": machine(), "target_first_instructions": check_target(a)}
    a.syms = symbols_of(a.target)
    setups = {}
    rows = []
    want = a.phases.__contains__
    try:
        if want("per_call"):
            res["per_call"] = phase(res, "per_call", lambda: per_call(a, setups))
        if want("per_call") and want("bpf_prog_stats"):
            res["bpf_prog_stats"] = phase(res, "bpf_prog_stats", lambda: bpf_prog_stats(a, setups))
        if want("first_instruction"):
            rows = phase(res, "first_instruction", lambda: first_instruction(a, setups))
            res["first_instruction"] = {"rows": rows, "cost_by_kind": kind_costs(rows)}
    finally:
        for st in setups.values():
            st.close()
    if want("verifier"):
        res["verifier"] = phase(res, "verifier", lambda: verifier_costs(a))
    if want("load"):
        res["load"] = phase(res, "load", lambda: load(a))
    if want("attach"):
        res["attach_1000"] = phase(res, "attach", lambda: attach_times(a))
    if want("hyper"):
        res["hyper"] = phase(res, "hyper", lambda: hyper_bench.run(a, log, prog_runs))
    if want("captures"):
        res["captures"] = phase(res, "captures", lambda: captures(a))
    if want("exits"):
        res["exits"] = phase(res, "exits", lambda: exits_bench.run(a, sys.modules[__name__], log))
    if a.phases == set(PHASES):
        res["targets"] = targets(res)
    res["bench_seconds"] = round(time.monotonic() - t_start, 1)
    res["quick"] = a.quick
    out = "results.json" if a.phases == set(PHASES) else "results-partial.json"
    with open(os.path.join(a.work, out), "w") as f:
        json.dump(res, f, indent=2)
    print_report(res)
    print(f"\n{os.path.join(a.work, out)} written; bench took "
          f"{res['bench_seconds']:.0f} s")
    mismatch = [r["function"] for r in rows if not r["agree"]]
    if mismatch:
        print("bench: spanprobe symbols misclassifies: " + ", ".join(mismatch), file=sys.stderr)
        return 1
    return 0


def phase(res, name, fn):
    t0 = time.monotonic()
    out = fn()
    res.setdefault("phase_seconds", {})[name] = round(time.monotonic() - t0, 1)
    return out


def load(a):
    target = Target(a.target)
    try:
        log("load: ramp")
        ramp = events_ramp(a, target)
        log("load: 100k calls/s")
        c100 = {"realistic": loaded_run(a, target, 100000, a.window_secs, "5ms"),
                "worst_case": loaded_run(a, target, 100000, a.window_secs, "0")}
        log(f"load: 200k calls/s for {a.sustain_secs} s")
        s200 = loaded_run(a, target, 200000, a.sustain_secs, "0")
    finally:
        target.close()
    return {"events_ramp": ramp, "collector_100k": c100, "sustained_200k": s200}


def run():
    try:
        return main()
    except RuntimeError as e:
        # libbpf's verifier logs can be megabytes: keep the end of it
        msg = str(e)
        print(f"bench: {msg if len(msg) < 2000 else '...' + msg[-2000:]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
