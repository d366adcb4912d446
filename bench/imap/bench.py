#!/usr/bin/env python3
"""IMAP benchmark: Tern against Dovecot, the same messages imported into both, the same client, one run.

Rows: FETCH of all headers, FETCH BODYSTRUCTURE, SEARCH of body text, login-select-logout sessions per second,
memory per connection idling in IDLE, and many clients on one mailbox at once (10 and 50), each running a mix of
the commands a mail client sends: FETCH of flags, headers and whole messages, STORE, SEARCH, STATUS, NOOP, and APPEND
of a message that it then expunges again (so every client sees the others' EXISTS and EXPUNGE). Both servers run on loopback on this machine; Dovecot is configured by this
script (its own config file, not /etc/dovecot) with SHA512-CRYPT passwords, the common default, so that a login costs
both servers a slow password hash. Results go to bench/RESULTS.md.
"""
import argparse
import datetime
import multiprocessing
import os
import platform
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from results import write_section  # noqa: E402
from pgcluster import PostgresCluster  # noqa: E402
PASSWORD = "bench-password"
RARE = "zyxwvutsrq"
WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
         "you were her she there one all we their would been has more if will so when no what up out about who its "
         "mail server message delivery queue mailbox header body folder client protocol storage index").split()


def make_corpus(path, n):
    rnd = random.Random(42)
    path.mkdir(parents=True)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir()
    for i in range(n):
        words = rnd.randint(150, 1200)
        body = " ".join(rnd.choice(WORDS) for _ in range(words))
        if i % 100 == 7:
            body += " " + RARE
        lines = [body[k:k + 72] for k in range(0, len(body), 72)]
        text = "\r\n".join(lines) + "\r\n"
        date = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=i * 7)
        head = (f"From: Sender {i % 97} <sender{i % 97}@remote.test>\r\nTo: bench@bench.test\r\n"
                f"Subject: {' '.join(rnd.choice(WORDS) for _ in range(5))} {i}\r\n"
                f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\nMessage-ID: <m{i}@remote.test>\r\nMIME-Version: 1.0\r\n")
        if i % 5 == 0:
            payload = "".join(chr(65 + rnd.randint(0, 25)) for _ in range(1500))
            msg = (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
                   + text + '--b1\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
                   'Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                   + "\r\n".join(payload[k:k + 76] for k in range(0, len(payload), 76)) + "\r\n--b1--\r\n")
        else:
            msg = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
        name = f"{1700000000 + i}.M{i}P1.bench,S={len(msg)}:2,{'S' if i % 3 else ''}"
        (path / "cur" / name).write_bytes(msg.encode())


class Client:
    """A minimal IMAP client: the same one against both servers. It reads whole responses with as little Python work
    per line as it can (one buffer, an offset, no copy of the rest per line), so that the client's own cost stays
    small beside either server's."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        self.readline()

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def readline(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self.fill()

    def cmd(self, text):
        """Sends a command and reads its whole response; returns the response's size in octets. The response is
        scanned with one regular expression (C speed) for literals to skip and for the tagged status line, rather
        than line by line in Python, which would cost more than either server."""
        self.n += 1
        tag = b"t%d" % self.n
        keep = min(self.pos, 2)
        del self.buf[:self.pos - keep]  # what was read before, but the CRLF before the new response
        self.pos = keep
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        start = self.pos
        scan = max(self.pos - 2, 0)  # the tagged line may be the first: the previous CRLF is just before
        done = b"\r\n" + tag + b" "
        buf = self.buf
        while True:
            brace = buf.find(b"}\r\n", scan)
            if brace >= 0:
                opening = buf.rfind(b"{", scan, brace)
                if opening >= 0 and buf[opening + 1:brace].isdigit():
                    end = brace + 3 + int(buf[opening + 1:brace])
                    while len(buf) < end:
                        self.fill()
                    scan = end
                else:
                    scan = brace + 3
                continue
            found = buf.find(done, scan)
            if found >= 0:
                eol = buf.find(b"\r\n", found + 2)
                if eol >= 0:
                    self.pos = eol + 2
                    self.last = bytes(buf[found + 2:eol])
                    if not buf.startswith(b"OK", found + len(done)):
                        raise RuntimeError(bytes(buf[found:eol]))
                    return self.pos - start
            scan = max(scan, len(buf) - 64)
            self.fill()

    def close(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def dovecot_pids():
    out = subprocess.run(["pgrep", "-f", "dovecot|imap-login|/imap$|lib/dovecot/imap"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Dovecot:
    def __init__(self, work, corpus):
        self.dir = work / "dovecot"
        self.port = 2143
        self.pop3_port = 2110
        user = pwd.getpwnam("bench")
        mail = self.dir / "mail" / "bench"
        mail.parent.mkdir(parents=True)
        shutil.copytree(corpus, mail)
        for d in (self.dir / "run", self.dir / "state"):
            d.mkdir(parents=True)
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(self.dir / "mail")], check=True)
        crypt = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", PASSWORD], capture_output=True, text=True, check=True).stdout.strip()
        (self.dir / "passwd").write_text(f"bench:{crypt}:{user.pw_uid}:{user.pw_gid}::{self.dir}/mail/bench\n")
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.dir}/mail/%n
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {self.dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = {self.dir}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = 64
}}
service imap {{
  process_limit = 10000
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
pop3_uidl_format = %08Xu%08Xv
service anvil {{
  client_limit = 20000
}}
default_client_limit = 20000
default_process_limit = 10000
default_vsz_limit = 0
mail_max_userip_connections = 100000
""")
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        self.user = "bench"

    def pids(self):
        return dovecot_pids()

    def stop(self):
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], capture_output=True)
        time.sleep(1)


class Tern:
    def __init__(self, binary, work, corpus, service="imap", store=None):
        self.dir = work / ("tern-pg" if store else "tern")
        self.dir.mkdir(parents=True)
        self.binary = binary
        self.config = self.dir / "tern.toml"
        listen = {"smtp": [], "submission": [], "submissions": [], "imap": [], "imaps": [], "pop3": [], "pop3s": [], "managesieve": []}
        listen[service] = ["127.0.0.1:0"]
        self.config.write_text('hostname = "tern.bench.test"\ndata = "data"\n' + (f'store = "{store}"\n' if store else "") + '[listen]\n'
                               + "".join(f'{k} = {str(v).replace(chr(39), chr(34))}\n' for k, v in listen.items())
                               + '[limits]\nmax_connections = 100000\nmax_connections_per_address = 100000\nmax_connections_per_user = 100000\n[log]\nlevel = "warning"\n')
        run = lambda *a: subprocess.run([binary, *a, "--config", str(self.config)], check=True, capture_output=True)
        run("domain", "add", "bench.test")
        run("user", "add", "bench@bench.test", "--password", PASSWORD)
        run("import", "bench@bench.test", str(corpus))
        self.out = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", "--config", str(self.config)], stdout=self.out, stderr=open(self.dir / "stderr.log", "wb"))
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"^\s+" + service + r"\s+127\.0\.0\.1:(\d+)", (self.dir / "stdout.log").read_text(), re.M)
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        self.user = "bench@bench.test"

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def session(server):
    c = Client(server.port)
    c.cmd(f'LOGIN {server.user} "{PASSWORD}"')
    return c


def login_worker(job):
    port, user, n = job
    try:
        for _ in range(n):
            c = Client(port)
            c.cmd(f'LOGIN {user} "{PASSWORD}"')
            c.cmd("SELECT INBOX")
            c.close()
    except Exception as e:  # noqa: BLE001
        return repr(e)
    return None


def mixed_worker(job):
    """One client of the concurrent row: `n` commands drawn from a mail client's mix, on the shared INBOX. Returns
    (commands, failures, first failure)."""
    port, user, n, seed, messages = job
    rnd = random.Random(seed)
    done = failures = 0
    first = None
    try:
        c = Client(port)
        c.cmd(f'LOGIN {user} "{PASSWORD}"')
        c.cmd("SELECT INBOX")
    except Exception as e:  # noqa: BLE001
        return 0, n, repr(e)

    def run(text):
        nonlocal done, failures, first
        try:
            c.cmd(text)
        except RuntimeError as e:
            failures += 1
            first = first or repr(e)
        done += 1

    while done < n:
        r = rnd.random()
        uid = rnd.randint(1, messages - 20)
        if r < 0.25:
            run(f"UID FETCH {uid}:{uid + 19} (FLAGS)")
        elif r < 0.40:
            run(f"UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM DATE)])")
        elif r < 0.50:
            run(f"UID FETCH {uid} (BODY.PEEK[])")
        elif r < 0.65:
            run(f"UID STORE {uid} {rnd.choice('+-')}FLAGS.SILENT (\\Flagged)")
        elif r < 0.75:
            run(rnd.choice(("SEARCH UNSEEN", "SEARCH FLAGGED")))
        elif r < 0.85:
            run("NOOP")
        elif r < 0.90:
            run("STATUS INBOX (MESSAGES UNSEEN)")
        else:
            msg = f"From: load@bench.test\r\nSubject: load {seed} {done}\r\n\r\nbody\r\n"
            run(f"APPEND INBOX {{{len(msg)}+}}\r\n{msg}")
            m = re.search(rb"APPENDUID \d+ (\d+)", getattr(c, "last", b""))
            if m:
                run(f"UID STORE {m.group(1).decode()} +FLAGS.SILENT (\\Deleted)")
                run(f"UID EXPUNGE {m.group(1).decode()}")
    c.close()
    return done, failures, first


def concurrent(server, clients, per_client, messages):
    """Commands per second with `clients` processes on one mailbox, and how many failed."""
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        start = time.perf_counter()
        results = pool.map(mixed_worker, [(server.port, server.user, per_client, 1000 + k, messages) for k in range(clients)])
        elapsed = time.perf_counter() - start
    commands = sum(r[0] for r in results)
    failures = sum(r[1] for r in results)
    first = next((r[2] for r in results if r[2]), None)
    if first:
        print(f"  first failure: {first}", flush=True)
    return commands / elapsed, failures


def best_of(n, f):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(server, args):
    results = {}
    c = session(server)
    c.cmd("SELECT INBOX")
    c.cmd("FETCH 1:* (BODY.PEEK[HEADER])")  # warm-up: Dovecot builds its index and cache here
    c.cmd("FETCH 1:* (BODYSTRUCTURE)")
    results["headers"] = best_of(3, lambda: c.cmd("FETCH 1:* (BODY.PEEK[HEADER])"))
    results["bodystructure"] = best_of(3, lambda: c.cmd("FETCH 1:* (BODYSTRUCTURE)"))
    results["search"] = best_of(3, lambda: c.cmd(f'SEARCH BODY "{RARE}"'))
    c.close()
    print(f"  fetch and search done: {results}", flush=True)

    # login-select-logout sessions from 8 client processes (threads would serialise on Python's GIL)
    per_worker = args.logins // 8
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(login_worker, [(server.port, server.user, 1)] * 8)  # warm the workers up
        start = time.perf_counter()
        failures = pool.map(login_worker, [(server.port, server.user, per_worker)] * 8)
        elapsed = time.perf_counter() - start
    failed = [f for f in failures if f]
    if failed:
        raise RuntimeError(f"{len(failed)} login workers failed: {failed[0]}")
    results["logins_per_s"] = per_worker * 8 / elapsed
    print(f"  logins: {results['logins_per_s']:.0f}/s", flush=True)

    # many clients on one mailbox at once
    for clients in (10, 50):
        rate, failures = concurrent(server, clients, args.mixed // clients, args.messages)
        results[f"mixed{clients}"] = (rate, failures)
        print(f"  {clients} clients: {rate:.0f} commands/s, {failures} failed", flush=True)

    # memory of connections idling in IDLE
    time.sleep(1)
    before = pss_kb(server.pids())
    idle = []
    for _ in range(args.idle):
        s = session(server)
        s.cmd("SELECT INBOX")
        s.sock.sendall(b"i IDLE\r\n")
        idle.append(s)
    for s in idle:
        while not s.readline().startswith(b"+"):
            pass
    time.sleep(2)
    after = pss_kb(server.pids())
    results["idle_kb"] = (after - before) / args.idle
    for s in idle:
        s.sock.close()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", required=True)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--logins", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--mixed", type=int, default=6000, help="commands in each concurrent row, shared by its clients")
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--only", choices=("Tern", "Tern-PostgreSQL", "Dovecot"), help="measure one server and write no results (for development)")
    ap.add_argument("--no-postgres", dest="postgres", action="store_false", help="skip Tern on PostgreSQL")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    try:
        pwd.getpwnam("bench")
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/usr/sbin/nologin", "bench"], check=True)
    work = Path("/var/tmp/tern-imap-bench")
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    make_corpus(corpus, args.messages)
    rows = {}
    cluster = PostgresCluster() if args.postgres and args.only in (None, "Tern-PostgreSQL") else None
    servers = [("Tern", lambda: Tern(args.tern, work, corpus))]
    if cluster:
        servers.append(("Tern-PostgreSQL", lambda: Tern(args.tern, work, corpus, store=cluster.database("imapbench"))))
    servers.append(("Dovecot", lambda: Dovecot(work, corpus)))
    try:
        for name, cls in servers:
            if args.only and name != args.only:
                continue
            print(f"{name}: starting", flush=True)
            server = cls()
            try:
                rows[name] = measure(server, args)
                print(name, rows[name], flush=True)
            finally:
                server.stop()
    finally:
        if cluster:
            cluster.stop()
    if not args.only:
        write_results(args, rows)
    shutil.rmtree(work, ignore_errors=True)


def write_results(args, rows):
    t, d = rows["Tern"], rows["Dovecot"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## imap",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `bench/imap/run` on {os.cpu_count()} cores ({cpu}), "
        f"{platform.platform()}; Dovecot {version}; {args.messages} messages (a fifth multipart with an attachment) imported into both; "
        "the same Python client for both, on loopback. Times are the best of three.",
        "",
        "| row | Tern | Dovecot | Tern speed / Dovecot |",
        "|---|---:|---:|---:|",
        f"| FETCH 1:* (BODY.PEEK[HEADER]) | {t['headers'] * 1000:.0f} ms | {d['headers'] * 1000:.0f} ms | {d['headers'] / t['headers']:.2f} |",
        f"| FETCH 1:* (BODYSTRUCTURE) | {t['bodystructure'] * 1000:.0f} ms | {d['bodystructure'] * 1000:.0f} ms | {d['bodystructure'] / t['bodystructure']:.2f} |",
        f"| SEARCH BODY (rare word) | {t['search'] * 1000:.0f} ms | {d['search'] * 1000:.0f} ms | {d['search'] / t['search']:.2f} |",
        f"| login-SELECT-logout sessions ({args.logins}, 8 client processes) | {t['logins_per_s']:.0f}/s | {d['logins_per_s']:.0f}/s | {t['logins_per_s'] / d['logins_per_s']:.2f} |",
        *[f"| {n} clients on one mailbox, mixed commands ({args.mixed // n * n}: FETCH, STORE, SEARCH, APPEND+EXPUNGE, ...), commands/s "
          f"(failed: Tern {t[f'mixed{n}'][1]}, Dovecot {d[f'mixed{n}'][1]}) | {t[f'mixed{n}'][0]:.0f}/s | {d[f'mixed{n}'][0]:.0f}/s | "
          f"{t[f'mixed{n}'][0] / d[f'mixed{n}'][0]:.2f} |" for n in (10, 50)],
        f"| memory per connection in IDLE ({args.idle} connections, PSS) | {t['idle_kb']:.0f} KB | {d['idle_kb']:.0f} KB | {d['idle_kb'] / max(t['idle_kb'], 0.1):.2f} |",
        "",
    ]
    pg = rows.get("Tern-PostgreSQL")
    if pg:
        lines += [
            "Tern with its store on PostgreSQL (a throwaway cluster on this machine, durable commits), the same rows; the "
            "goal is at least half the speed of the SQLite store on every row.",
            "",
            "| row | Tern PostgreSQL | Tern SQLite | PostgreSQL speed / SQLite |",
            "|---|---:|---:|---:|",
            *[f"| {label} | {pg[key] * 1000:.0f} ms | {t[key] * 1000:.0f} ms | {t[key] / pg[key]:.2f} |"
              for label, key in (("FETCH 1:* (BODY.PEEK[HEADER])", "headers"), ("FETCH 1:* (BODYSTRUCTURE)", "bodystructure"),
                                 ("SEARCH BODY (rare word)", "search"))],
            f"| login-SELECT-logout sessions | {pg['logins_per_s']:.0f}/s | {t['logins_per_s']:.0f}/s | {pg['logins_per_s'] / t['logins_per_s']:.2f} |",
            *[f"| {n} clients on one mailbox, mixed commands (failed: {pg[f'mixed{n}'][1]}) | {pg[f'mixed{n}'][0]:.0f}/s | "
              f"{t[f'mixed{n}'][0]:.0f}/s | {pg[f'mixed{n}'][0] / t[f'mixed{n}'][0]:.2f} |" for n in (10, 50)],
            f"| memory per connection in IDLE | {pg['idle_kb']:.0f} KB | {t['idle_kb']:.0f} KB | {max(t['idle_kb'], 0.1) / max(pg['idle_kb'], 0.1):.2f} |",
            "",
        ]
    section = "\n".join(lines)
    write_section(args.results, "imap", section)


if __name__ == "__main__":
    sys.exit(main())
