#!/usr/bin/env python3
"""POP3 benchmark: Tern against Dovecot, the same 1,000 messages imported into both, the same client, one run.

The row: log in, RETR every message, QUIT (nothing deleted), timed as a whole; best of three. The client reads each
response with one search for the terminating CRLF "." CRLF, so its own cost stays small beside either server's.
Dovecot is configured by bench/imap's code (its own config file, SHA512-CRYPT passwords). Results go to bench/RESULTS.md.
"""
import argparse
import datetime
import os
import platform
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "imap"))
from results import write_section  # noqa: E402
import bench as imapbench  # noqa: E402


class POP3Client(imapbench.Client):
    """bench/imap's client (one receive buffer, C-speed scans; it reads the greeting) speaking POP3."""

    def status(self):
        line = self.readline()
        if not line.startswith(b"+OK"):
            raise RuntimeError(line)
        return line

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.status()

    def multiline(self, text):
        """A command with a multi-line answer; returns the data's size in octets (still dot-stuffed)."""
        self.cmd(text)
        start = self.pos
        scan = max(self.pos - 2, 0)
        while (end := self.buf.find(b"\r\n.\r\n", scan)) < 0:
            scan = max(scan, len(self.buf) - 4)
            self.fill()
        self.pos = end + 5
        size = end + 2 - start
        del self.buf[:self.pos]
        self.pos = 0
        return size


def retrieve_all(port, user, password, count):
    c = POP3Client(port)
    c.cmd(f"USER {user}")
    c.cmd(f"PASS {password}")
    total = 0
    for i in range(1, count + 1):
        total += c.multiline(f"RETR {i}")
    c.cmd("QUIT")
    c.sock.close()
    return total


def measure(port, user, count):
    retrieve_all(port, user, imapbench.PASSWORD, count)  # warm-up
    best = None
    for _ in range(3):
        start = time.perf_counter()
        octets = retrieve_all(port, user, imapbench.PASSWORD, count)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, octets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = ap.parse_args()
    try:
        pwd.getpwnam("bench")
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/usr/sbin/nologin", "bench"], check=True)
    work = Path("/var/tmp/tern-pop3-bench")
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    imapbench.make_corpus(corpus, args.messages)
    rows = {}
    tern = imapbench.Tern(args.tern, work, corpus, service="pop3")
    try:
        rows["Tern"] = measure(tern.port, tern.user, args.messages)
        print("Tern", rows["Tern"], flush=True)
    finally:
        tern.stop()
    dovecot = imapbench.Dovecot(work, corpus)
    try:
        rows["Dovecot"] = measure(dovecot.pop3_port, dovecot.user, args.messages)
        print("Dovecot", rows["Dovecot"], flush=True)
    finally:
        dovecot.stop()
    write_results(args, rows)
    shutil.rmtree(work, ignore_errors=True)


def write_results(args, rows):
    (t, t_octets), (d, d_octets) = rows["Tern"], rows["Dovecot"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## pop3",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/pop3/run` on {os.cpu_count()} cores ({cpu}), "
        f"{platform.platform()}; Dovecot {version}; {args.messages} messages (bench/imap's corpus) imported into both; the "
        "same Python client for both, on loopback, one session: USER, PASS, RETR of every message, QUIT. Best of three.",
        "",
        "| row | Tern | Dovecot | Tern speed / Dovecot |",
        "|---|---:|---:|---:|",
        f"| retrieve {args.messages} messages ({t_octets / 1e6:.1f} MB; Dovecot {d_octets / 1e6:.1f} MB) | {t * 1000:.0f} ms "
        f"| {d * 1000:.0f} ms | {d / t:.2f} |",
        "",
    ]
    write_section(args.results, "pop3", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
