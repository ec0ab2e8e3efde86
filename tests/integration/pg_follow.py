#!/usr/bin/env python3
"""attach --exe on PostgreSQL 15 (issue 13), against what the clients saw.

Starts a private cluster (initdb in a temp dir, run as user postgres,
listening only on a socket in that dir), opens two psql clients, attaches
`spanprobe attach --exe POSTGRES -s tests/fixtures/postgres.syms`, opens a
third client (its backend is forked after attach), then runs at once in
the three backends: a slow query (pg_sleep of a different length each),
and in the first one an ERROR (a DO block that sleeps, then divides by
zero: PostgreSQL leaves by longjmp), then again a slow query in each.
Stops spanprobe and the cluster, and checks the dump:
- every slow query is found as a root PortalRun in the right backend's
  pid, within the client's own begin/end, lasting at least its sleep,
  with a pg_sleep span under it;
- the ERROR is one abnormal root in its backend; the other backends'
  queries meanwhile are normal, and its backend's next query is whole;
- no query of any other pid; the summary counts the three backends.

  pg_follow.py SPANPROBE WORKDIR   (root; exit status 0 when it holds)
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PGBIN = "/usr/lib/postgresql/15/bin"
SLEEPS = [0.5, 0.7, 0.9]          # seconds, one per client
ERR_SLEEP = 0.4
NS = 10**9
TOL = 50 * 10**6                  # client clock vs probe clock, ns


def log(msg):
    print("   " + msg, flush=True)


def as_postgres(cmd):
    r = subprocess.run(["runuser", "-u", "postgres", "--"] + cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout))


class Client:
    def __init__(self, sock):
        self.p = subprocess.Popen(["psql", "-h", sock, "-p", "5432", "-U", "postgres", "-X",
                                   "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "postgres"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.pid = int(self.ask("select pg_backend_pid();"))

    def send(self, sql):
        """Sends sql then a marker query, so the end is known."""
        self.t0 = time.time_ns()
        self.p.stdin.write(sql + "\nselect 'done-marker';\n")
        self.p.stdin.flush()

    def wait(self):
        lines = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("psql ended early: %r" % lines)
            if line.strip() == "done-marker":
                return time.time_ns(), lines
            lines.append(line.strip())

    def ask(self, sql):
        self.send(sql)
        return self.wait()[1][0]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def start_cluster(pgdir, work):
    """The cluster and its socket live in pgdir, which user postgres owns
    (the test's own directory is private to root)."""
    pg = pwd.getpwnam("postgres")
    data = os.path.join(pgdir, "data")
    os.chmod(pgdir, 0o755)
    os.chown(pgdir, pg.pw_uid, pg.pw_gid)
    as_postgres([PGBIN + "/initdb", "-N", "-A", "trust", "-U", "postgres", "-D", data])
    as_postgres([PGBIN + "/pg_ctl", "-D", data, "-l", os.path.join(pgdir, "pg.log"), "-w",
                 "-t", "60", "start", "-o",
                 "-k %s -c listen_addresses='' -c jit=off -c fsync=off" % pgdir])
    return data


def stop_cluster(pgdir, data, work):
    try:
        as_postgres([PGBIN + "/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
    except RuntimeError as e:
        print(e)
    if os.path.exists(os.path.join(pgdir, "pg.log")):
        shutil.copy(os.path.join(pgdir, "pg.log"), work)
    shutil.rmtree(pgdir, ignore_errors=True)


def wait_line(path, text, proc, secs=60):
    for _ in range(secs * 10):
        with open(path) as f:
            if text in f.read():
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def run_queries(clients):
    """Slow queries everywhere, an ERROR in client 0, slow queries again."""
    seen = []  # (client index, kind, sleep, t0, t1, output)
    for rnd in range(2):
        for i, c in enumerate(clients):
            sql = "select pg_sleep(%s);" % SLEEPS[i]
            if rnd == 0 and i == 0:
                sql = ("do $$ begin perform pg_sleep(%s); perform 1/(random()*0)::int; end $$;"
                       % ERR_SLEEP)
            c.send(sql)
            c.kind = "error" if "do $$" in sql else "slow"
        for i, c in enumerate(clients):
            t1, out = c.wait()
            sleep = ERR_SLEEP if c.kind == "error" else SLEEPS[i]
            seen.append((i, c.kind, sleep, c.t0, t1, out))
    return seen


def check(dump, seen, clients, summary):
    errs = []
    pids = {c.pid for c in clients}
    roots = [s for s in dump if "root" in s["flags"]]
    by_id = {(s["pid"], s["span_id"]): s for s in dump}
    for r in roots:
        if r["pid"] not in pids:
            errs.append("a query of pid %d, no backend of ours" % r["pid"])
    for i, kind, sleep, t0, t1, out in seen:
        pid = clients[i].pid
        if kind == "error" and not any("division by zero" in line for line in out):
            errs.append("client %d: the DO block did not fail: %r" % (i, out))
        cand = [r for r in roots if r["pid"] == pid and r["name"] == "PortalRun" and
                r["begin_ns"] >= t0 - TOL and r["end_ns"] <= t1 + TOL and
                r["duration_ns"] >= sleep * NS]
        if len(cand) != 1:
            errs.append("client %d (pid %d) %s query of %.1f s: %d matching roots"
                        % (i, pid, kind, sleep, len(cand)))
            continue
        r = cand[0]
        if r["abnormal"] != (kind == "error"):
            errs.append("client %d %s query: root abnormal=%s" % (i, kind, r["abnormal"]))
        sleeps = [s for s in dump if s["pid"] == pid and s["name"] == "pg_sleep" and
                  s["query_id"] == r["span_id"]]
        if len(sleeps) != 1 or sleeps[0]["duration_ns"] < sleep * NS:
            errs.append("client %d %s query: pg_sleep spans %s" %
                        (i, kind, [s["duration_ns"] for s in sleeps]))
        elif kind == "slow" and any(s["abnormal"] for s in dump
                                    if s["pid"] == pid and s["query_id"] == r["span_id"]):
            errs.append("client %d slow query: a span flagged abnormal" % i)
        # every span's parent is in the same process and query
        for s in dump:
            if s["pid"] == pid and s["query_id"] == r["span_id"] and s["parent_span_id"]:
                par = by_id.get((pid, s["parent_span_id"]))
                if not par or par["query_id"] != r["span_id"]:
                    errs.append("client %d: span %s has no parent in its query" % (i, s["name"]))
    if ": 3 processes seen" not in summary:
        errs.append("summary does not count 3 processes: " + summary.strip()[-300:])
    return errs


def main():
    sp, work = sys.argv[1], sys.argv[2]
    pgdir = tempfile.mkdtemp(prefix="spanprobe-pg.")
    clients, spp, data = [], None, os.path.join(pgdir, "data")
    try:
        start_cluster(pgdir, work)
        clients = [Client(pgdir), Client(pgdir)]
        err = open(os.path.join(work, "sp.err"), "w")
        spp = subprocess.Popen([sp, "attach", "--exe", PGBIN + "/postgres",
                                "-s", "tests/fixtures/postgres.syms", "--min-query", "300ms",
                                "--min-span", "1ms", "-o", os.path.join(work, "spans.bin")],
                               stdout=subprocess.DEVNULL, stderr=err)
        if not wait_line(err.name, "spanprobe: attached", spp):
            print(open(err.name).read())
            return 1
        clients.append(Client(pgdir))  # its backend is forked after attach
        log("backends %s (the last forked after attach)" % [c.pid for c in clients])
        seen = run_queries(clients)
        spp.send_signal(signal.SIGINT)
        spp.wait(timeout=60)
        err.close()
        summary = open(err.name).read()
        if spp.returncode != 0:
            print(summary)
            return 1
        out = subprocess.run([sp, "dump", os.path.join(work, "spans.bin"), "--json"],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        dump = [json.loads(line) for line in out.splitlines() if line.strip()]
        errs = check(dump, seen, clients, summary)
        for e in errs:
            print("   FAIL: " + e)
        if not errs:
            log("%d queries found in the right backends (%d spans), the ERROR abnormal "
                "in its own only" % (len(seen), len(dump)))
        return 1 if errs else 0
    finally:
        for c in clients:
            try:
                c.close()
            except Exception:
                c.p.kill()
        if spp and spp.poll() is None:
            spp.kill()
        if os.path.exists(data):
            stop_cluster(pgdir, data, work)
        shutil.rmtree(pgdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
