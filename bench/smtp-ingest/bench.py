#!/usr/bin/env python3
"""SMTP ingest benchmark: Tern vs Postfix (local Maildir delivery) vs Postfix's smtp-sink, driven by smtp-source.

Everything runs on this machine, on loopback. Postfix is configured by this script (its own main.cf and master.cf,
written to /etc/postfix, which the bench machine dedicates to it), listening on 127.0.0.1:2526 and delivering to
~bench/Maildir. Tern uses a fresh data folder on the same disk, and (with --postgres, the default) also a throwaway
PostgreSQL cluster (scripts/pg-test-cluster, fsync and synchronous_commit on) with one node, then two nodes on the same
database each taking half the sessions. Results go to bench/RESULTS.md.
"""
import argparse
import datetime
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from results import write_section  # noqa: E402
from pgcluster import PostgresCluster  # noqa: E402
PF_PORT, SINK_PORT = 2526, 2527
RCPT, SENDER = "bench@bench.test", "sender@client.test"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(100)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


# --- Postfix -------------------------------------------------------------------------------------

MAIN_CF = f"""
compatibility_level = 3.6
myhostname = pf.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination = bench.test, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
home_mailbox = Maildir/
alias_maps =
alias_database =
local_recipient_maps = unix:passwd.byname
maillog_file = /var/log/postfix-bench.log
biff = no
message_size_limit = 52428800
mailbox_size_limit = 0
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""

MASTER_CF_SMTPD = f"127.0.0.1:{PF_PORT} inet n - n - - smtpd\n"


def setup_postfix():
    try:
        pwd.getpwnam("bench")
    except KeyError:
        sh("useradd", "-m", "-s", "/usr/sbin/nologin", "bench")
    Path("/etc/postfix/main.cf").write_text(MAIN_CF)
    master = Path("/etc/postfix/master.cf.proto").read_text()
    master = re.sub(r"^smtp\s+inet.*$", "#\\g<0>", master, flags=re.M)
    Path("/etc/postfix/master.cf").write_text(master + MASTER_CF_SMTPD)
    sh("postfix", "stop", check=False)
    sh("postfix", "check")
    sh("postfix", "start")
    wait_port(PF_PORT)


def postfix_maildir_count():
    home = Path(pwd.getpwnam("bench").pw_dir) / "Maildir"
    n = 0
    for sub in ("new", "cur"):
        d = home / sub
        if d.exists():
            n += len(os.listdir(d))
    return n


def postfix_queue_empty():
    r = sh("postqueue", "-p", check=False)
    return "Mail queue is empty" in r.stdout


def clear_postfix_maildir():
    home = Path(pwd.getpwnam("bench").pw_dir) / "Maildir"
    shutil.rmtree(home, ignore_errors=True)


# --- Tern ----------------------------------------------------------------------------------------

class TernProc:
    def __init__(self, binary, work, store=None, setup=True):
        self.binary = binary
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.config = self.work / "tern.toml"
        self.config.write_text(
            'hostname = "tern.bench.test"\ndata = "data"\n' + (f'store = "{store}"\n' if store else "") +
            '[listen]\nsmtp = ["127.0.0.1:0"]\nimap = []\nimaps = []\npop3 = []\npop3s = []\nsubmission = []\nsubmissions = []\nmanagesieve = []\n'
            '[limits]\nmax_connections_per_address = 1000\n[log]\nlevel = "warning"\n')
        if setup:
            sh(binary, "domain", "add", "bench.test", "--config", str(self.config))
            sh(binary, "user", "add", RCPT, "--password", "bench-password", "--config", str(self.config))
        self.out = open(self.work / "stdout.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", "--config", str(self.config)], stdout=self.out,
                                     stderr=open(self.work / "stderr.log", "wb"))
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"smtp\s+127\.0\.0\.1:(\d+)", (self.work / "stdout.log").read_text())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("tern did not start: " + (self.work / "stderr.log").read_text()[-500:])

    def stored(self):
        r = sh(self.binary, "user", "list", "--config", str(self.config))
        m = re.search(r"bench@bench\.test\t(\d+) messages", r.stdout)
        return int(m.group(1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


# --- runs ----------------------------------------------------------------------------------------

def smtp_source(port, sessions, messages, size):
    start = time.monotonic()
    r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-f", SENDER,
                        "-t", RCPT, "-M", "client.test", f"127.0.0.1:{port}"], capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stderr}")
    return elapsed


def smtp_source_split(ports, sessions, messages, size):
    """Several servers at once (nodes of one installation), each sent its share of the sessions and messages."""
    start = time.monotonic()
    share = len(ports)
    procs = [subprocess.Popen(["smtp-source", "-s", str(max(1, sessions // share)), "-m", str(messages // share), "-l", str(size),
                               "-f", SENDER, "-t", RCPT, "-M", "client.test", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for port in ports]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {err}")
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--sizes", default="2048,102400")
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--no-postgres", dest="postgres", action="store_false", help="skip the PostgreSQL columns")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    sessions_list = [int(x) for x in args.sessions.split(",")]

    setup_postfix()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{SINK_PORT}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(SINK_PORT)
    work = tempfile.mkdtemp(prefix="tern-bench-", dir="/var/tmp")
    tern = cluster = pg = pg2 = None
    rows = []
    try:
        # Started inside the try: a server that fails to start leaves none of the others running (a node left
        # listening kept ports such as 4190 from the next run and from the tests).
        tern = TernProc(args.tern, work)
        if args.postgres:
            cluster = PostgresCluster()
            url = cluster.database("bench")
            pg = TernProc(args.tern, Path(work) / "pg-a", store=url)
            pg2 = TernProc(args.tern, Path(work) / "pg-b", store=url, setup=False)
        for size in sizes:
            for sessions in sessions_list:
                n = args.messages
                # Tern: each 250 means stored in the mailbox, fsync'd.
                before = tern.stored()
                t_tern = smtp_source(tern.port, sessions, n, size)
                assert tern.stored() - before == n, "Tern did not store every message"
                t_pg = t_pg2 = None
                if pg:
                    before = pg.stored()
                    t_pg = smtp_source(pg.port, sessions, n, size)
                    assert pg.stored() - before == n, "Tern on PostgreSQL did not store every message"
                    if sessions > 1:
                        before = pg.stored()
                        t_pg2 = smtp_source_split([pg.port, pg2.port], sessions, n, size)
                        assert pg.stored() - before == n, "two Tern nodes did not store every message"
                # Postfix: acceptance (queue file fsync'd), then until every message is in the Maildir.
                clear_postfix_maildir()
                start = time.monotonic()
                t_pf_accept = smtp_source(PF_PORT, sessions, n, size)
                deadline = time.time() + 60 + n * 0.05
                while postfix_maildir_count() < n and time.time() < deadline:
                    time.sleep(0.05)
                if postfix_maildir_count() < n:
                    log = Path("/var/log/postfix-bench.log").read_text().splitlines()[-10:]
                    raise RuntimeError("Postfix did not deliver in time:\n" + "\n".join(log))
                t_pf_deliver = time.monotonic() - start
                assert postfix_maildir_count() == n, f"Postfix delivered {postfix_maildir_count()} of {n}"
                t_sink = smtp_source(SINK_PORT, sessions, n, size)
                row = dict(size=size, sessions=sessions, n=n, tern=n / t_tern, pf_accept=n / t_pf_accept,
                           pf_deliver=n / t_pf_deliver, sink=n / t_sink,
                           pg=n / t_pg if t_pg else None, pg2=n / t_pg2 if t_pg2 else None)
                rows.append(row)
                pgtext = f"  postgres {row['pg']:8.0f}/s  2 nodes {row['pg2'] or 0:8.0f}/s" if pg else ""
                print(f"{size:>7} B  {sessions:>2} sessions  tern {row['tern']:8.0f}/s{pgtext}  postfix accept {row['pf_accept']:8.0f}/s"
                      f"  postfix delivered {row['pf_deliver']:8.0f}/s  smtp-sink {row['sink']:8.0f}/s", flush=True)
    finally:
        for t in (tern, pg, pg2):
            if t:
                t.stop()
        if cluster:
            cluster.stop()
        sink.terminate()
        sh("postfix", "stop", check=False)
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.results, rows, args.messages)


def write_results(path, rows, messages):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    pf_version = sh("postconf", "-h", "mail_version", check=False).stdout.strip()
    lines = [
        "## smtp-ingest",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/smtp-ingest/run` on {os.cpu_count()} cores "
        f"({cpu}), {platform.platform()}; Postfix {pf_version}; {messages} messages per row, sent by Postfix's `smtp-source` "
        "(one connection per message) to 127.0.0.1.",
        "",
        "- **Tern**: `250` means the message is fsync'd in the mailbox (SQLite WAL + message files).",
        "- **Postfix accept**: `250` means the queue file is fsync'd; **Postfix delivered**: until the last message is in "
        "`~bench/Maildir` (local(8) delivery, fsync'd).",
        "- **smtp-sink**: Postfix's test server that stores nothing: the ceiling of what the client can send.",
        "",
        "| size | sessions | Tern msg/s | Postfix accept msg/s | Postfix delivered msg/s | smtp-sink msg/s | Tern / Postfix accept | Tern / Postfix delivered | Tern / smtp-sink |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['size'] // 1024} KB | {r['sessions']} | {r['tern']:.0f} | {r['pf_accept']:.0f} | {r['pf_deliver']:.0f} | "
                     f"{r['sink']:.0f} | {r['tern'] / r['pf_accept']:.2f} | {r['tern'] / r['pf_deliver']:.2f} | {r['tern'] / r['sink']:.2f} |")
    if any(r.get("pg") for r in rows):
        lines += ["", "The same rows with Tern's store on PostgreSQL (a throwaway cluster on this machine, `synchronous_commit` and "
                  "`fsync` on: `250` means the commit is durable): one node, and two nodes on the same database, each sent half "
                  "the sessions and messages at once.", "",
                  "| size | sessions | Tern PostgreSQL msg/s | two nodes msg/s | PostgreSQL / Postfix accept | PostgreSQL / Tern SQLite |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            two = f"{r['pg2']:.0f}" if r.get("pg2") else ""
            lines.append(f"| {r['size'] // 1024} KB | {r['sessions']} | {r['pg']:.0f} | {two} | {r['pg'] / r['pf_accept']:.2f} | "
                         f"{r['pg'] / r['tern']:.2f} |")
    section = "\n".join(lines) + "\n"
    write_section(path, "smtp-ingest", section)


if __name__ == "__main__":
    sys.exit(main())
