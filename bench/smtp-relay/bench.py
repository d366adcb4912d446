#!/usr/bin/env python3
"""Relay benchmark: how fast each server empties its outbound queue into a remote SMTP server.

The remote is Postfix's smtp-sink on 127.0.0.1 (accepts everything, stores nothing, no TLS). For each server the same
number of equal-sized messages (one recipient each, at sink.test) is first queued while delivery is held back, then
released; the time from release until the queue is empty gives messages per second.

- Tern finds sink.test's MX through dnsmasq on loopback (MX -> 127.0.0.1, port via delivery.remote_port); the messages
  are submitted with AUTH on its submission port while the sink is down (so they wait in the queue), then the sink is
  started and `tern queue retry` releases them. Tern signs each message with DKIM at submission (not timed).
- Postfix relays with `default_transport = smtp:[127.0.0.1]:PORT` (no DNS), messages put in with smtp-source while
  `defer_transports = smtp` holds them; release is `defer_transports =`, `postfix reload` and `postqueue -f`.
  Connection caching and concurrency are Postfix's defaults (20 per destination).
"""
import argparse
import datetime
import importlib.util
import multiprocessing
import os
import platform
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from results import write_section  # noqa: E402

_spec = importlib.util.spec_from_file_location("ingest", ROOT / "bench" / "smtp-ingest" / "bench.py")
ingest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ingest)
sh, wait_port = ingest.sh, ingest.wait_port

PF_PORT, SINK_PORT = 2526, 2537
SENDER = "sender@bench.test"
PASSWORD = "relay-bench-password"


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def body(i, size):
    head = f"From: {SENDER}\r\nTo: r{i}@sink.test\r\nSubject: relay bench {i}\r\n\r\n"
    line = "x" * 76 + "\r\n"
    text = head
    while len(text) < size:
        text += line
    return text[:size - 2] + "\r\n"


def start_sink():
    p = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{SINK_PORT}", "1000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(SINK_PORT)
    return p


# --- Tern ----------------------------------------------------------------------------------------

def submit_worker(args):
    port, start, count, size = args
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.login(SENDER, PASSWORD)
        for i in range(start, start + count):
            s.sendmail(SENDER, [f"r{i}@sink.test"], body(i, size).encode())


class Tern:
    def __init__(self, binary, work, dns_port):
        self.binary = binary
        self.work = Path(work)
        self.config = self.work / "tern.toml"
        self.config.write_text(
            'hostname = "tern.bench.test"\ndata = "data"\n[listen]\nsmtp = []\nimap = []\nimaps = []\npop3 = []\npop3s = []\n'
            'submission = ["127.0.0.1:0"]\nsubmissions = []\nmanagesieve = []\n'
            f'[dns]\nnameservers = ["127.0.0.1:{dns_port}"]\n'
            f'[delivery]\nremote_port = {SINK_PORT}\nretry = ["1h"]\n'
            '[limits]\nmax_connections_per_address = 1000\n[log]\nlevel = "' + os.environ.get("TERN_LOG", "warning") + '"\n')
        self.cmd("domain", "add", "bench.test")
        self.cmd("user", "add", SENDER, "--password", PASSWORD)
        self.proc = subprocess.Popen([binary, "serve", "--config", str(self.config)], stdout=open(self.work / "stdout.log", "wb"),
                                     stderr=open(self.work / "stderr.log", "wb"))
        deadline = time.time() + 30
        import re
        while time.time() < deadline:
            m = re.search(r"submission\s+127\.0\.0\.1:(\d+)", (self.work / "stdout.log").read_text())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("tern did not start")

    def cmd(self, *args):
        return sh(self.binary, *args, "--config", str(self.config))

    def queued(self):
        # Read straight from the database (read-only, WAL): as cheap as Postfix's look at its spool directories, where
        # `tern queue list` would cost a process and a full listing per look.
        import sqlite3
        db = sqlite3.connect(f"file:{self.work / 'data' / 'tern.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM queue").fetchone()[0]
        finally:
            db.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_tern(binary, n, size, dns_port):
    work = tempfile.mkdtemp(prefix="tern-relay-", dir="/var/tmp")
    tern = Tern(binary, work, dns_port)
    try:
        workers = 4
        per = n // workers
        with multiprocessing.Pool(workers) as pool:
            pool.map(submit_worker, [(tern.port, w * per, per, size) for w in range(workers)])
        total = per * workers
        # Every message has been tried once (the sink is down) and waits an hour.
        deadline = time.time() + 120
        while time.time() < deadline:
            listing = tern.cmd("queue", "list", "--json").stdout
            if listing.count('"deferred"') >= total:
                break
            time.sleep(1)
        assert tern.queued() == total
        if os.environ.get("PAUSE"):
            print(f"queued; tern pid {tern.proc.pid}", flush=True)
            time.sleep(float(os.environ["PAUSE"]))
        sink = start_sink()
        try:
            start = time.monotonic()
            tern.cmd("queue", "retry")
            while tern.queued() > 0:
                time.sleep(0.05)
            elapsed = time.monotonic() - start
        finally:
            sink.terminate()
        return total, elapsed
    finally:
        tern.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


# --- Postfix -------------------------------------------------------------------------------------

def postfix_config(hold):
    cf = ingest.MAIN_CF + f"default_transport = smtp:[127.0.0.1]:{SINK_PORT}\nrelay_transport = smtp:[127.0.0.1]:{SINK_PORT}\n"
    cf += "smtp_tls_security_level = may\n"
    if hold:
        cf += "defer_transports = smtp\n"
    Path("/etc/postfix/main.cf").write_text(cf)


def postfix_queue_count():
    n = 0
    for q in ("incoming", "active", "deferred", "maildrop"):
        d = Path("/var/spool/postfix") / q
        for _, _, files in os.walk(d):
            n += len(files)
    return n


def run_postfix(n, size):
    ingest.setup_postfix()
    sh("postsuper", "-d", "ALL", check=False)
    postfix_config(hold=True)
    sh("postfix", "reload")
    time.sleep(1)
    r = subprocess.run(["smtp-source", "-s", "4", "-m", str(n), "-l", str(size), "-f", SENDER, "-t", "r@sink.test",
                        "-M", "client.test", f"127.0.0.1:{PF_PORT}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stderr}")
    deadline = time.time() + 120
    while postfix_queue_count() < n and time.time() < deadline:
        time.sleep(0.2)
    queued = postfix_queue_count()
    assert queued == n, f"Postfix queued {queued} of {n}"
    sink = start_sink()
    try:
        postfix_config(hold=False)
        start = time.monotonic()
        sh("postfix", "reload")
        sh("postqueue", "-f")
        deadline = time.time() + 600
        while postfix_queue_count() > 0 and time.time() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        assert postfix_queue_count() == 0, "Postfix did not empty its queue"
    finally:
        sink.terminate()
        sh("postfix", "stop", check=False)
    return n, elapsed


def start_dns():
    port = free_port(socket.SOCK_DGRAM)
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    p = subprocess.Popen([exe, "--no-daemon", "--conf-file=/dev/null", f"--port={port}", "--listen-address=127.0.0.1",
                          "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--local=/test/",
                          "--mx-host=sink.test,mx.sink.test,10", "--host-record=mx.sink.test,127.0.0.1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return p, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--only", choices=["Tern", "Postfix"])
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = ap.parse_args()
    dns, dns_port = start_dns()
    try:
        rows = {}
        if args.only != "Postfix":
            n, t = run_tern(args.tern, args.messages, args.size, dns_port)
            rows["Tern"] = (n, t)
            print(f"Tern     {n} messages in {t:.2f}s: {n / t:.0f}/s", flush=True)
        if args.only != "Tern":
            n, t = run_postfix(args.messages, args.size)
            rows["Postfix"] = (n, t)
            print(f"Postfix  {n} messages in {t:.2f}s: {n / t:.0f}/s", flush=True)
    finally:
        dns.terminate()
    if len(rows) == 2:
        write_results(args.results, rows, args.size)


def write_results(path, rows, size):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    pf_version = sh("postconf", "-h", "mail_version", check=False).stdout.strip()
    tern = rows["Tern"][0] / rows["Tern"][1]
    pf = rows["Postfix"][0] / rows["Postfix"][1]
    lines = [
        "## smtp-relay",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/smtp-relay/run` on {os.cpu_count()} cores "
        f"({cpu}), {platform.platform()}; Postfix {pf_version}. {rows['Tern'][0]} messages of {size} octets, one recipient "
        "each, queued while delivery was held back, then released; timed until the queue was empty. The remote is Postfix's "
        "`smtp-sink` on 127.0.0.1 (no TLS offered, so neither server uses it).",
        "",
        "| server | messages | seconds | msg/s |",
        "|---|---:|---:|---:|",
        f"| Tern | {rows['Tern'][0]} | {rows['Tern'][1]:.2f} | {tern:.0f} |",
        f"| Postfix | {rows['Postfix'][0]} | {rows['Postfix'][1]:.2f} | {pf:.0f} |",
        "",
        f"**Tern / Postfix: {tern / pf:.2f}x.** Tern: up to 20 connections to the domain (delivery.connections_per_domain, "
        "the same as Postfix's default), each carrying message after message, results recorded in batched transactions "
        "beside the sending. Postfix: its defaults (20 connections per destination, connection cache), "
        "`default_transport = smtp:[127.0.0.1]:port` so it skips DNS while Tern looks up the MX (cached). Consecutive "
        "runs on a 2-core machine differ by about 15%. Release: `tern queue retry` signals the running server (SIGUSR1), "
        "as `postqueue -f` signals Postfix's queue manager.",
        "",
    ]
    write_section(path, "smtp-relay", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
