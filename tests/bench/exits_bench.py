"""`make bench`, phase exits: what each `--exit-probe` costs (issue 11).

Side by side in one run, every configuration attached throughout and the
rounds visiting them in turn (as the per-call phase):
  per call   a C++ method (bench::Counter::add, cxx_target, a program that
             throws) and a Rust async poll (rust_target, panic = "unwind"),
             inside a query, with --exit-probe retsites, default
             settings (auto, which picks the unwind guard for both: checked
             with `spanprobe symbols`) and uretprobe, against a tracer-less process of the same binary
             and the empty-pair floor (uprobe_multi entry + return on
             bench_leaf). Ratios are taken per round, then the median;
  throw      a C++ exception thrown out of the traced method into its
             caller's catch, untraced, with ret sites and with default
             settings (the guard; a uretprobe without the guard would
             abort the target);
  hello      the hyper fixture (hsrv) answering GET /q/N/H (its handler and
             helpers with no waits and no CPU work) to 32 keep-alive
             connections: requests per second and the server's CPU per
             request, untraced, traced with ret sites and with default
             settings (the guard: checked in the summary's exits line),
             and the same without observation points
             (SPANPROBE_NO_OBSERVE=1: no context-switch hook, the nested
             futures read at the carrier's entry and exit only).
Never pass/fail: figures only.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXITS = ["retsites", "auto", "uretprobe"]
HELLO_MODES = ["untraced", "retsites", "auto", "auto_no_observe"]


def exit_args(ep):
    """auto is the default: no option at all, as a user runs it."""
    return [] if ep == "auto" else ["--exit-probe", ep]


def per_call_setups(a, b):
    """(name, tracer, armed, measures, binary) as bench.per_call_setups."""
    sp = ["--min-span", "5ms", "--min-query", "0"]
    leaf = b.write_syms(a, "exits-leaf.syms", f"root bench_root\nspan {b.LEAF}\n")
    rust = b.write_syms(a, "exits-rust.syms", "root rust_target::bench_root\n"
                        "span rust_target::leaf_async::{*}\n")
    cxx = b.write_syms(a, "exits-cxx.syms", "root bench::root*\nspan bench::Counter::add*\n")
    out = [
        ("x_none", None, [], [("none", "plain", b.LEAF)], a.target),
        ("x_floor", lambda st: b.Floor(a.floor, "pair", st.t.pid, st.path,
                                       [a.syms[b.LEAF]]),
         [(b.LEAF, 0)], [("floor_pair", "plain", b.LEAF)], a.target),
    ]
    for lang, binary, syms in (("cxx", a.cxx_target, cxx), ("rust", a.rust_target, rust)):
        extra = [(f"none_{lang}_throw", "root", "throw")] if lang == "cxx" else []
        out.append((f"x_none_{lang}", None, [],
                    [(f"none_{lang}", "root", "leaf")] + extra, binary))
        for ep in EXITS:
            sh = probe_shifts(a, binary, syms, ep)
            armed = [("leaf", sh["leaf"]), ("root", sh["root"])]
            # a throw through a uretprobe's frame without the guard aborts
            thr = [(f"{lang}_{ep}_throw", "root", "throw")] \
                if lang == "cxx" and ep != "uretprobe" else []
            out.append((f"x_{lang}_{ep}",
                        (lambda sy, e: lambda st: b.Spanprobe(a.spanprobe, st.t.pid, sy,
                                                              sp + exit_args(e)))(syms, ep),
                        armed, [(f"{lang}_{ep}", "root", "leaf")] + thr, binary))
    return out


def probe_shifts(a, binary, syms, ep):
    """Where `spanprobe symbols` puts the entry probes with this exit."""
    import json
    out = subprocess.run([a.spanprobe, "symbols", "--json", "--exit-probe", ep, "-s", syms,
                          binary], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"spanprobe symbols --exit-probe {ep} {binary}: {out.stderr}")
    pats = json.loads(out.stdout)["patterns"]
    got = {m["exit_probe"] for p in pats for m in p["matches"]}
    if ep == "auto" and got != {"guard"}:
        raise RuntimeError(f"auto gave {binary} exits {got}, not the guard: the rows would "
                           "not measure default settings as documented")
    return {"root": pats[0]["matches"][0]["entry_shift"],
            "leaf": pats[1]["matches"][0]["entry_shift"]}


def baseline(key):
    if key == "floor_pair":
        return "none"
    lang = key.split("_")[0]
    return f"none_{lang}_throw" if key.endswith("_throw") else f"none_{lang}"


def per_call(a, b, log):
    specs = per_call_setups(a, b)
    setups, samples = {}, {}
    try:
        for name, tracer, armed, _, binary in specs:
            log(f"exits: attaching {name}")
            setups[name] = b.Setup(a, name, tracer, armed, binary)
        for r in range(a.rounds):
            log(f"exits: round {r + 1}/{a.rounds}")
            got = {}
            for i in range(a.loops):
                for k in range(len(specs)):  # rotated: no configuration always first
                    name, _, _, measures, _ = specs[(r + i + k) % len(specs)]
                    for key, mode, func in measures:
                        ms = 3 * a.loop_ms if func == "throw" else a.loop_ms
                        got.setdefault(key, []).append(setups[name].loop(mode, func, ms, 1))
            for key, v in got.items():
                samples.setdefault(key, []).append(min(v))
        modes = {n: st.mode for n, st in setups.items() if st.mode}
    finally:
        for st in setups.values():
            st.close()
    guard_words = {n: summary_words(st.tracer) for n, st in setups.items()
                   if n.endswith("_auto")}
    return results(samples, modes, guard_words, a)


def summary_words(tracer):
    """The summary's line about the guard (after stop), for the record."""
    return next((l for l in tracer.lines if "return slots restored" in l), None)


def results(samples, modes, guard_words, a):
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    added = {k: [x - y for x, y in zip(v, samples[baseline(k)])]
             for k, v in samples.items() if not k.startswith("none")}
    out = {}
    for k, v in added.items():
        row = {"ns_per_call": med(samples[k]), "added_ns": med(v),
               "added_ns_rounds": [round(x, 1) for x in v]}
        if k != "floor_pair" and not k.endswith("_throw"):
            row["ratio_to_floor"] = med([x / f for x, f in zip(v, added["floor_pair"])])
        if not k.endswith("_retsites") and not k.endswith("_retsites_throw") \
                and k != "floor_pair":
            rs = k.replace("_auto", "_retsites").replace("_uretprobe", "_retsites")
            row["ratio_to_retsites"] = med([x / y for x, y in zip(v, added[rs])])
        if k.endswith("_throw"):
            base = samples[baseline(k)]
            row["ratio_to_untraced"] = med([x / y for x, y in zip(samples[k], base)])
        out[k] = row
    for k, v in samples.items():
        if k.startswith("none"):
            out[k] = {"ns_per_call": med(v)}
    return {"rounds": a.rounds, "loop_ms": a.loop_ms, "attach_modes": modes,
            "guard_summary": guard_words, "configs": out}


# ---------------------------------------------------------------- hello

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def hello_server(a, hb, mode, d):
    """hyper_bench.Server with this exit probe."""
    srv = hb.Server.__new__(hb.Server)
    port, pid = os.path.join(d, "port"), os.path.join(d, "pid")
    hsrv = [os.path.join(a.build, "fixtures", "hsrv"), "--port-file", port, "--pid-file", pid]
    argv = hsrv if mode == "untraced" else [
        a.spanprobe, "run", "-s", os.path.join(ROOT, "tests/fixtures/hsrv.syms")] + \
        exit_args(mode.split("_")[0]) + ["-o", os.path.join(d, "spans.bin"), "--"] + hsrv
    env = dict(os.environ)
    if mode.endswith("_no_observe"):
        env["SPANPROBE_NO_OBSERVE"] = "1"
    srv.d = d
    srv.err = open(os.path.join(d, "err"), "w")
    srv.proc = subprocess.Popen(argv, stdout=srv.err, stderr=srv.err, env=env,
                                preexec_fn=hb.all_cpus)
    if not hb.wait_file(port, srv.proc, 60) or not hb.wait_file(pid, srv.proc, 5):
        srv.close()
        raise RuntimeError(f"hsrv ({mode}) did not start: see {d}/err")
    srv.port = int(open(port).read())
    srv.pid = int(open(pid).read())
    return srv


def hello_load(srv, secs):
    """(requests/s, server CPU µs per request)"""
    c0, t0 = cpu_ticks(srv.pid), time.monotonic()
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests/fixtures/hyper/hload.py"),
                          str(srv.port), "-c", "32", "-k", "H", "--for", str(secs),
                          "--timeout", "60"], capture_output=True, text=True)
    took, ticks = time.monotonic() - t0, cpu_ticks(srv.pid) - c0
    words = out.stdout.split()
    if out.returncode != 0 or "ok," not in words:
        raise RuntimeError("hload failed: " + out.stdout + out.stderr)
    n = int(words[words.index("ok,") - 1])
    return n / took, ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(n, 1)


def hello(a, log):
    import hyper_bench as hb
    rounds = 3 if a.quick else 5
    secs = 5 if a.quick else 8
    rps = {m: [] for m in HELLO_MODES}
    cpu = {m: [] for m in HELLO_MODES}
    mask = os.sched_getaffinity(0)
    hb.all_cpus()
    try:
        with tempfile.TemporaryDirectory(prefix="exits-bench.") as tmp:
            for r in range(rounds):
                for k in range(len(HELLO_MODES)):
                    m = HELLO_MODES[(r + k) % len(HELLO_MODES)]
                    log(f"exits: hello round {r + 1}/{rounds}, {m}")
                    d = os.path.join(tmp, f"{m}{r}")
                    os.mkdir(d)
                    srv = hello_server(a, hb, m, d)
                    try:
                        x, c = hello_load(srv, secs)
                    finally:
                        srv.close()
                    if m.startswith("auto"):
                        guarded(os.path.join(d, "err"))
                    rps[m].append(x)
                    cpu[m].append(c)
    finally:
        os.sched_setaffinity(0, mask)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    ratio = {m: med([x / u for x, u in zip(rps[m], rps["untraced"])]) for m in HELLO_MODES}
    cratio = {m: med([x / u for x, u in zip(cpu[m], cpu["untraced"])]) for m in HELLO_MODES}
    return {"rounds": rounds, "seconds_each": secs, "requests_per_s": rps,
            "server_cpu_us_per_request": cpu,
            "median_requests_per_s": {m: med(v) for m, v in rps.items()},
            "median_server_cpu_us_per_request": {m: med(v) for m, v in cpu.items()},
            "throughput_ratio_to_untraced": ratio, "cpu_ratio_to_untraced": cratio,
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3]}


def guarded(err):
    """auto must have put every hsrv function under the guard."""
    import re
    text = open(err).read()
    if not re.search(r"exits: 0 uretprobe, [1-9][0-9]* guarded uretprobe, 0 ret sites", text):
        raise RuntimeError(f"hsrv under auto: not every exit guarded ({err})")


def run(a, b, log):
    return {"per_call": per_call(a, b, log), "hello": hello(a, log)}


def report(x):
    pc = x["per_call"]["configs"]
    print(f"\nExit probes (--exit-probe), ns added per call inside a query, "
          f"{x['per_call']['rounds']} rounds, medians of per-round ratios")
    print(f"  floor (empty uprobe_multi pair) {pc['floor_pair']['added_ns']:8.0f} ns")
    for lang in ("cxx", "rust"):
        for ep in EXITS:
            r = pc[f"{lang}_{ep}"]
            rr = f"  {r['ratio_to_retsites']:.3f}x retsites" if "ratio_to_retsites" in r else ""
            print(f"  {lang:4s} {ep:9s} {r['added_ns']:8.0f} ns  "
                  f"{r['ratio_to_floor']:6.2f}x floor{rr}")
    print(f"  C++ throw+catch untraced {pc['none_cxx_throw']['ns_per_call']:8.0f} ns")
    for ep in ("retsites", "auto"):
        r = pc[f"cxx_{ep}_throw"]
        print(f"  C++ throw through a traced frame, {ep:8s} {r['ns_per_call']:8.0f} ns "
              f"({r['ratio_to_untraced']:.1f}x untraced)")
    h = x["hello"]
    print(f"\nhsrv GET /q/N/H (hello), 32 connections, {h['rounds']} rounds of "
          f"{h['seconds_each']} s, medians")
    for m in HELLO_MODES:
        print(f"  {m:16s} {h['median_requests_per_s'][m]:8.1f} requests/s "
              f"({h['throughput_ratio_to_untraced'][m]:.3f}x untraced)  server CPU "
              f"{h['median_server_cpu_us_per_request'][m]:6.1f} us/request "
              f"({h['cpu_ratio_to_untraced'][m]:.2f}x)")
