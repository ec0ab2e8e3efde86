#!/usr/bin/env python3
"""Overload: a burst that overflows spanprobe's ring buffer.

  overload.py --sp SPANPROBE --fixture BURST --syms SYMS --dir DIR
              [--ring-buffer 4K] [--burst 50000] [--timeout 120]

Runs `spanprobe run --min-span 0 --min-query 0 --ring-buffer SIZE` on the
burst fixture (tests/stress/burst.c) with spanprobe's stderr on a pseudo
terminal, so that its status line is printed, and checks:
  1. records received + records lost (the exit summary) == the calls the
     fixture made inside queries (its ground truth): every lost event is
     counted, exactly;
  2. some were lost (otherwise the test proves nothing);
  3. the status line shown once the burst is over says the same number;
  4. every query in the output that has fewer spans than it really had is
     flagged incomplete, and no complete one is: a query that lost a
     record is never reported as complete (the burst query must be there,
     flagged, or the check would be vacuous);
  5. the block headers carry the count: non-decreasing, never above the
     total, and > 0 in the block of every incomplete query.
Prints what it found; exit status 0 if all hold, 1 if not, 2 if the run
itself failed. The fixture is held (--hold) until the checks of the live
process are done, then released; every child is killed on the way out.
"""
import argparse
import collections
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from check_spans import Truth  # noqa: E402

TOL_CLOCK = 100000      # check_spans.py's --tol-clock and --max-stall
MAX_STALL = 50000000
SUMMARY = re.compile(r"(\d+) span records from the kernel \((\d+) lost\)")
STATUS = re.compile(r"\| (\d+) lost")
HEADER = re.compile(r"^block: .* (\d+) spans\s+(\d+) dropped events$")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class Run:
    def __init__(self, a):
        self.a = a
        self.d = a.dir
        self.err = bytearray()
        self.proc = None
        self.fx = None

    def pump(self, fd, secs):
        """Reads the pty into self.err for up to secs."""
        end = time.monotonic() + secs
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([fd], [], [], min(left, 0.1))
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.err += chunk

    def start(self):
        a = self.a
        master, slave = pty.openpty()
        cmd = [a.sp, "run", "--min-span", "0", "--min-query", "0", "--ring-buffer", a.ring_buffer,
               "-s", a.syms, "-o", os.path.join(self.d, "spans.bin"), "--",
               a.fixture, "-N", str(a.burst), "--truth", os.path.join(self.d, "truth.jsonl"),
               "--pid-file", os.path.join(self.d, "fx.pid"), "--hold", os.path.join(self.d, "hold")]
        self.out = open(os.path.join(self.d, "sp.out"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=slave)
        os.close(slave)
        self.master = master

    def fixture_pid(self):
        try:
            with open(os.path.join(self.d, "fx.pid")) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def cleanup(self):
        fx = self.fixture_pid()
        if fx and alive(fx):
            try:
                if os.path.realpath("/proc/%d/exe" % fx) == os.path.realpath(self.a.fixture):
                    os.kill(fx, signal.SIGKILL)
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with open(os.path.join(self.d, "sp.err"), "wb") as f:
            f.write(bytes(self.err))


def text(b):
    return b.decode("utf-8", "replace")


def check(a, run, status_lost):
    errs, notes = [], []
    err = text(run.err)
    m = SUMMARY.search(err)
    if not m:
        return ["no exit summary ('N span records from the kernel (M lost)') on stderr"], notes
    received, lost = int(m.group(1)), int(m.group(2))
    truth = []
    with open(os.path.join(run.d, "truth.jsonl")) as f:
        truth = [json.loads(l) for l in f if l.strip()]
    inside = [t for t in truth if t.get("query") is not None]
    notes.append("kernel records: %d received + %d lost = %d; the fixture made %d calls inside queries"
                 % (received, lost, received + lost, len(inside)))
    if received + lost != len(inside):
        errs.append("received %d + lost %d = %d, but %d records were produced: %s"
                    % (received, lost, received + lost, len(inside),
                       "events lost without being counted" if received + lost < len(inside)
                       else "more records than calls"))
    if lost == 0:
        errs.append("nothing was lost: the burst did not overflow the %s ring buffer, "
                    "so this run proves nothing" % a.ring_buffer)
    if status_lost is None:
        errs.append("no status line ('... | N lost') on the terminal after the burst")
    elif status_lost != lost:
        errs.append("the status line after the burst says %d lost, the summary %d" % (status_lost, lost))
    else:
        notes.append("status line after the burst: %d lost" % status_lost)

    # per query: spans in the output against calls in the truth
    dump = subprocess.run([a.sp, "dump", os.path.join(run.d, "spans.bin"), "--json"],
                          capture_output=True, text=True)
    if dump.returncode != 0:
        return errs + ["spanprobe dump --json exited %d: %s" % (dump.returncode, dump.stderr.strip())], notes
    spans = [json.loads(l) for l in dump.stdout.splitlines() if l.strip()]
    per_q = collections.Counter(s["query_id"] for s in spans)
    roots = sorted((s for s in spans if "root" in s["flags"]), key=lambda s: s["begin_ns"])
    truth_n = collections.Counter(t["query"] for t in inside)
    troots = sorted((t for t in inside if t["parent_id"] is None), key=lambda t: t["begin_ns"])
    incomplete_ids = set()
    flagged = missing = 0
    # by identity: the truth's query whose root call begins in the gap of
    # the fixture's thread that holds the output root's begin
    # (check_spans.Truth), never by nearness in time
    calls = Truth(truth)
    index = {t["id"]: j for j, t in enumerate(troots)}
    match, used = {}, set()
    for i, r in enumerate(roots):
        t = calls.locate(r["tid"], r["name"], r["begin_ns"], TOL_CLOCK, MAX_STALL)
        if t is not None and t["id"] in index and index[t["id"]] not in match:
            used.add(i)
            match[index[t["id"]]] = r
    if len(used) != len(roots):
        errs.append("%d queries in the output match no query of the truth" % (len(roots) - len(used)))
    for j, t in enumerate(troots):
        r = match.get(j)
        if r is None:
            missing += 1
            continue
        got, want = per_q[r["query_id"]], truth_n[t["query"]]
        inc = "incomplete" in r["flags"]
        if inc:
            incomplete_ids.add(r["query_id"])
            flagged += 1
        if got > want:
            errs.append("query %d: %d spans in the output, only %d calls" % (t["query"], got, want))
        elif got < want and not inc:
            errs.append("query %d: %d of its %d spans in the output, but NOT flagged incomplete"
                        % (t["query"], got, want))
        elif got == want and inc:
            errs.append("query %d: all %d spans arrived, yet it is flagged incomplete" % (t["query"], got))
        elif got < want:
            notes.append("query %d: %d of its %d spans, flagged incomplete" % (t["query"], got, want))
    notes.append("%d queries: %d in the output (%d flagged incomplete), %d lost with their root record"
                 % (len(troots), len(troots) - missing, flagged, missing))
    if not flagged:
        errs.append("no query in the output is flagged incomplete: the burst query lost its root "
                    "record too (it sleeps 300 ms after the burst so that the buffer drains), so "
                    "the incomplete flag was not tested")

    # block headers, in file order; one block per kept query
    txt = subprocess.run([a.sp, "dump", os.path.join(run.d, "spans.bin")],
                         capture_output=True, text=True).stdout.splitlines()
    headers = [(int(m.group(1)), int(m.group(2))) for m in map(HEADER.match, txt) if m]
    if len(headers) != len(roots):
        errs.append("%d block headers for %d queries" % (len(headers), len(roots)))
    else:
        prev = 0
        file_roots = [s for s in spans if "root" in s["flags"]]  # file order
        for i, ((n, dropped), r) in enumerate(zip(headers, file_roots)):
            if dropped < prev:
                errs.append("block %d: dropped_events %d went down from %d" % (i, dropped, prev))
            if dropped > lost:
                errs.append("block %d: dropped_events %d, more than the %d lost in all" % (i, dropped, lost))
            if r["query_id"] in incomplete_ids and dropped == 0:
                errs.append("block %d holds incomplete query %d but its header says 0 dropped events"
                            % (i, r["query_id"]))
            prev = max(prev, dropped)
        notes.append("block headers: dropped_events %s" % " ".join(str(d) for _, d in headers))
    return errs, notes


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sp", required=True)
    p.add_argument("--fixture", required=True)
    p.add_argument("--syms", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--ring-buffer", default="4K")
    p.add_argument("--burst", type=int, default=50000)
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    run = Run(a)
    rc = 2
    try:
        run.start()
        hold = os.path.join(a.dir, "hold")
        end = time.monotonic() + a.timeout
        while not os.path.exists(hold) or not open(hold).read().strip():
            if run.proc.poll() is not None:
                run.pump(run.master, 0.5)
                print("overload: spanprobe exited %d before the burst was over:\n%s"
                      % (run.proc.returncode, text(run.err)[-2000:]))
                return 2
            if time.monotonic() > end:
                print("overload: the fixture did not finish within %d s" % a.timeout)
                return 2
            run.pump(run.master, 0.1)
        # nothing is produced any more: the next status lines must show
        # the final count (one is printed every second)
        mark = len(run.err)
        status_lost = None
        end = time.monotonic() + 15
        while time.monotonic() < end:
            run.pump(run.master, 0.2)
            found = STATUS.findall(text(run.err[mark:]))
            if len(found) >= 2:  # the second was certainly drawn after the last drain
                status_lost = int(found[-1])
                break
        fx = run.fixture_pid()
        if fx:
            os.kill(fx, signal.SIGUSR1)
        end = time.monotonic() + 30
        while run.proc.poll() is None and time.monotonic() < end:
            run.pump(run.master, 0.2)
        run.pump(run.master, 0.3)
        if run.proc.poll() is None:
            print("overload: spanprobe still running 30 s after the fixture was released")
            return 2
        if run.proc.returncode != 0:
            print("overload: spanprobe run exited %d:\n%s" % (run.proc.returncode, text(run.err)[-2000:]))
            return 2
        errs, notes = check(a, run, status_lost)
        for n in notes:
            print("overload: " + n)
        for e in errs:
            print("overload: FAIL: " + e)
        rc = 1 if errs else 0
    finally:
        run.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
