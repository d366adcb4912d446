#!/usr/bin/env python3
"""What each port-25 check costs: the same DKIM-signed 2 KB message sent N times over SMTP (several sessions, each
carrying many messages) to a fresh Tern per configuration, with one more check turned on each time. DNS is dnsmasq on
loopback publishing the sender's SPF, DKIM key, DMARC policy and reverse DNS, and an empty blocklist zone.

Every configuration stores every message (a 250 means fsync'd in the mailbox); the cost of a check is the difference
in time per message from the row above. Results go to bench/RESULTS.md."""
import argparse
import base64
import datetime
import os
import platform
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dkim

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "interop"))
from results import write_section  # noqa: E402
from ternlib import DNSServer  # noqa: E402

RCPT, SENDER = "bench@bench.test", "sender@client.test"
CLIENT_IP = "127.0.0.2"


def start_dns(work):
    key = Path(work) / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    public = base64.b64encode(der).decode()
    txt = [("client.test", f"v=spf1 ip4:{CLIENT_IP} -all"),
           ("sel._domainkey.client.test", f"v=DKIM1; k=rsa; p={public}"),
           ("_dmarc.client.test", "v=DMARC1; p=reject")]
    server = DNSServer(work, ["--local=/test/", "--local=/in-addr.arpa/", "--local=/bl.test/",
                              f"--host-record=mx.client.test,{CLIENT_IP}", "--ptr-record=2.0.0.127.in-addr.arpa,mx.client.test"],
                       txt=txt, probe="mx.client.test")
    return server, key.read_bytes()


def signed_message(private_key):
    body = ("This is a benchmark message of about two kilobytes, signed with DKIM like most mail today.\r\n" * 22)
    msg = (f"From: Sender <{SENDER}>\r\nTo: {RCPT}\r\nSubject: inbound checks benchmark\r\n"
           f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@client.test>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}").encode()
    return dkim.sign(msg, b"sel", b"client.test", private_key, include_headers=[b"from", b"to", b"subject", b"date"]) + msg


CONFIGS = [
    ("none (client exempt)", {"checks": {"exempt_networks": ["127.0.0.0/8"]}}),
    ("+ SPF", {"checks": {"exempt_networks": [], "dkim": False, "dmarc": False}, "spam": {"enabled": False}}),
    ("+ DKIM", {"checks": {"exempt_networks": [], "dmarc": False}, "spam": {"enabled": False}}),
    ("+ DMARC", {"checks": {"exempt_networks": []}, "spam": {"enabled": False}}),
    ("+ blocklist and reverse DNS required", {"checks": {"exempt_networks": [], "blocklists": ["bl.test"], "require_reverse_dns": True},
                                              "spam": {"enabled": False}}),
    ("+ spam score (all checks)", {"checks": {"exempt_networks": [], "blocklists": ["bl.test"], "require_reverse_dns": True}}),
]


def toml(settings):
    out = []
    for table, values in settings.items():
        out.append(f"[{table}]")
        for k, v in values.items():
            if isinstance(v, bool):
                out.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, list):
                out.append(f"{k} = [" + ", ".join(f'"{x}"' for x in v) + "]")
            else:
                out.append(f"{k} = {v!r}")
    return "\n".join(out) + "\n"


class TernProc:
    def __init__(self, binary, work, dns_port, settings):
        self.binary, self.work = binary, Path(work)
        self.work.mkdir(parents=True)
        self.config = self.work / "tern.toml"
        settings = {k: dict(v) for k, v in settings.items()}
        settings.setdefault("dns", {})["nameservers"] = [f"127.0.0.1:{dns_port}"]
        settings.setdefault("limits", {})["max_connections_per_address"] = 1000
        settings.setdefault("log", {})["level"] = "warning"
        self.config.write_text('hostname = "tern.bench.test"\ndata = "data"\n[listen]\nsmtp = ["127.0.0.1:0"]\nsubmission = []\n'
                               'submissions = []\nimap = []\nimaps = []\npop3 = []\npop3s = []\nmanagesieve = []\n' + toml(settings))
        subprocess.run([binary, "domain", "add", "bench.test", "--config", str(self.config)], check=True, capture_output=True)
        subprocess.run([binary, "user", "add", RCPT, "--password", "bench-password", "--config", str(self.config)], check=True,
                       capture_output=True)
        self.proc = subprocess.Popen([binary, "serve", "--config", str(self.config)], stdout=open(self.work / "stdout.log", "wb"),
                                     stderr=open(self.work / "stderr.log", "wb"))
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"smtp\s+127\.0\.0\.1:(\d+)", (self.work / "stdout.log").read_text())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("tern did not start: " + (self.work / "stderr.log").read_text())

    def stored(self):
        r = subprocess.run([self.binary, "user", "list", "--config", str(self.config)], capture_output=True, text=True)
        return int(re.search(r"bench@bench\.test\t(\d+) messages", r.stdout).group(1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def send_all(port, raw, messages, sessions):
    """`sessions` connections from CLIENT_IP, each sending its share of the messages one after another."""
    errors = []

    def worker(count):
        try:
            with smtplib.SMTP("127.0.0.1", port, source_address=(CLIENT_IP, 0), timeout=60) as s:
                s.ehlo("mx.client.test")
                for _ in range(count):
                    s.sendmail(SENDER, [RCPT], raw)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    shares = [messages // sessions + (1 if i < messages % sessions else 0) for i in range(sessions)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in shares]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        raise RuntimeError(f"sending failed: {errors[0]!r}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="each configuration is run this many times; the best counts")
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tern-bench-checks-", dir="/var/tmp")
    dns, key = start_dns(work)
    dns_port = dns.port
    raw = signed_message(key)
    rows = []
    try:
        best = {}
        for round_ in range(args.rounds):
            for i, (name, settings) in enumerate(CONFIGS):
                tern = TernProc(args.tern, Path(work) / f"tern{round_}-{i}", dns_port, settings)
                try:
                    send_all(tern.port, raw, 50, 2)  # warm-up (caches, connections)
                    elapsed = send_all(tern.port, raw, args.messages, args.sessions)
                    assert tern.stored() == args.messages + 50, "not every message was stored"
                    exported = subprocess.run([args.tern, "export", RCPT, "--format", "mbox", "--config", str(tern.config)],
                                              capture_output=True).stdout
                    if i >= 3:
                        assert exported.count(b"dmarc=pass") >= args.messages, "DMARC did not pass"
                finally:
                    tern.stop()
                    shutil.rmtree(Path(work) / f"tern{round_}-{i}", ignore_errors=True)
                best[i] = min(best.get(i, elapsed), elapsed)
                print(f"round {round_ + 1}  {name:40} {args.messages / elapsed:8.0f} msg/s", flush=True)
        for i, (name, _) in enumerate(CONFIGS):
            rows.append((name, args.messages / best[i], best[i] / args.messages * 1e6))
            print(f"{name:40} {rows[-1][1]:8.0f} msg/s  {rows[-1][2]:8.0f} µs/msg", flush=True)
    finally:
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = ["## inbound-checks", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/inbound-checks/run` on {os.cpu_count()} cores "
             f"({cpu}), {platform.platform()}: {args.messages} copies of one DKIM-signed (RSA-2048) 2 KB message over "
             f"{args.sessions} SMTP sessions from {CLIENT_IP} (Python smtplib, one thread per session), dnsmasq on loopback "
             f"for DNS; a fresh Tern per row, each check added to the ones above it, every row run {args.rounds} times (the best "
             "counts). Every message is stored (fsync'd).",
             "", "| checks | msg/s | µs per message | cost of this check (µs) |", "|---|---:|---:|---:|"]
    previous = None
    for name, rate, micros in rows:
        cost = "" if previous is None else f"{micros - previous:+.0f}"
        lines.append(f"| {name} | {rate:.0f} | {micros:.0f} | {cost} |")
        previous = micros
    lines += ["", "The client is one Python process (smtplib, 8 threads), so every row is bounded by it as much as by Tern, and "
              "the rows are noisy; the differences between rows estimate what each check adds. DNS answers are cached by "
              "Tern's resolver after the warm-up."]
    write_section(args.results, "inbound-checks", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
