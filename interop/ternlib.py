"""Helpers for interop tests: start the real `tern` binary on loopback and inspect what it stored."""
import base64
import datetime
import email.utils
import imaplib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

TERN = os.path.abspath(os.environ.get("TERN_BIN") or str(Path(__file__).resolve().parent.parent / ".build" / "debug" / "tern"))


class Tern:
    """One Tern server with its own config and data folder."""

    SERVICES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve")

    def __init__(self, workdir, settings=None, hostname="mx.tern.test", host="127.0.0.1", listen=None):
        """`host`: the loopback address every service binds (port 0: any free one); `listen` overrides single services,
        e.g. {"smtp": "127.0.0.2:25"}."""
        self.dir = Path(workdir)
        self.host = host
        self.listen = {s: f"{host}:0" for s in self.SERVICES}
        self.listen.update(listen or {})
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "tern.toml"
        self.settings = {"limits": {}, "log": {"level": "warning"}}
        for k, v in (settings or {}).items():
            self.settings.setdefault(k, {}).update(v)
        self.hostname = hostname
        self.write_config()
        self.proc = None
        self.smtp_port = None
        self.stderr_path = self.dir / "stderr.log"

    def write_config(self):
        lines = [f'hostname = "{self.hostname}"', 'data = "data"']
        # Top-level keys (settings under ""), before any table.
        lines += [f'{k} = "{v}"' for k, v in self.settings.get("", {}).items()]
        lines += ["", "[listen]"]
        lines += [f'{s} = ["{a}"]' for s, a in self.listen.items()]
        for table, values in self.settings.items():
            if not values or table == "":
                continue
            lines.append(f"[{table}]")
            for k, v in values.items():
                if isinstance(v, bool):
                    lines.append(f"{k} = {'true' if v else 'false'}")
                elif isinstance(v, str):
                    lines.append(f'{k} = "{v}"')
                elif isinstance(v, list):
                    lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in v) + "]")
                else:
                    lines.append(f"{k} = {v}")
        self.config.write_text("\n".join(lines) + "\n")

    # --- admin commands -------------------------------------------------------------------------

    def run(self, *args, check=True, input=None):
        cmd = [TERN, *args, "--config", str(self.config)]
        r = subprocess.run(cmd, capture_output=True, input=input, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout.decode()}\n{r.stderr.decode()}")
        return r

    def add_domain(self, domain):
        self.run("domain", "add", domain)

    def add_user(self, address, password="secret-password-1"):
        self.run("user", "add", address, "--password", password)

    def txt_records(self, domain):
        """The TXT records `tern dns-records` tells the admin to publish: [(name without final dot, value)]."""
        text = self.run("dns-records", domain).stdout.decode()
        records = []
        for m in re.finditer(r'^(\S+)\t3600\tIN\tTXT\t(\(.*?\)|"[^"]*")', text, re.M | re.S):
            records.append((m.group(1).rstrip("."), "".join(re.findall(r'"([^"]*)"', m.group(2)))))
        return records

    # --- server ---------------------------------------------------------------------------------

    def start(self, timeout=30):
        assert self.proc is None
        self.stdout_file = open(self.dir / "stdout.log", "wb")
        self.stderr_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([TERN, "serve", "--config", str(self.config)], stdout=self.stdout_file,
                                     stderr=self.stderr_file, cwd=self.dir)
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = (self.dir / "stdout.log").read_text(errors="replace")
            if "Stop with" in text:
                for service in self.SERVICES:
                    m = re.search(rf"^\s+{service}\s+(?:[\d.]+|\[[0-9a-f:]+\]):(\d+)", text, re.M)
                    setattr(self, f"{service}_port", int(m.group(1)) if m else None)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"tern exited with {self.proc.returncode}:\n{self.stderr_path.read_text()}")
            time.sleep(0.05)
        raise AssertionError("tern did not start in time")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.stdout_file.close()
        self.stderr_file.close()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.stdout_file.close()
        self.stderr_file.close()

    # --- inspecting the store -------------------------------------------------------------------

    def messages(self, address, mailbox=None):
        """Every stored message of an account (bytes), in UID order, via `tern export --format maildir`."""
        out = Path(tempfile.mkdtemp(dir=self.dir))
        args = ["export", address, "--format", "maildir", "--output", str(out)]
        if mailbox:
            args += ["--mailbox", mailbox]
        self.run(*args)
        folder = out if not mailbox or mailbox.upper() == "INBOX" else out / f".{mailbox}"
        files = sorted((folder / "cur").iterdir(), key=lambda p: int(re.search(r"_(\d+)\.tern", p.name).group(1)))
        return [f.read_bytes() for f in files]

    def connect(self):
        s = socket.create_connection((self.host, self.smtp_port), timeout=10)
        return SMTPRaw(s)


def date_now(offset_seconds=0):
    """An RFC 5322 Date value for the time of sending (plus `offset_seconds`), in UTC, whatever the locale: tests never
    date their messages with a fixed day, or the server's date checks would judge them older every day."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return email.utils.format_datetime(moment.replace(microsecond=0))


def imap_date(date_value):
    """The day of an RFC 5322 Date value in its own zone, as IMAP SEARCH writes dates (23-Nov-2026), whatever the
    locale (RFC 3501 §6.4.4: SENTON compares the Date field's own day)."""
    moment = email.utils.parsedate_to_datetime(date_value)
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][moment.month - 1]
    return f"{moment.day}-{month}-{moment.year}"


def wait_for(predicate, what, timeout=30):
    """Polls `predicate` until it returns something true (which is returned), failing after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def free_udp_port():
    """A port on 127.0.0.1 that nothing uses now for UDP or TCP (a test's DNS server listens on both)."""
    while True:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()


def tls_context():
    """A client TLS context that accepts Tern's self-signed test certificate."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def strip_trace(stored):
    """Splits a stored message into Tern's trace headers (Return-Path, Received) and the original bytes."""
    assert stored.startswith(b"Return-Path: <"), stored[:80]
    idx = 0
    lines = stored.split(b"\r\n")
    # Return-Path line, then the Received field with its folded continuation lines.
    i = 1
    assert lines[i].startswith(b"Received: "), lines[:3]
    i += 1
    while lines[i].startswith(b"\t"):
        i += 1
    idx = sum(len(l) + 2 for l in lines[:i])
    return stored[:idx], stored[idx:]


class SMTPRaw:
    """A raw SMTP connection for what no client library sends (pipelined garbage, bare LF, BDAT)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """Reads one (possibly multi-line) reply; returns (code, text) or (None, b'') on close."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return (None, b"".join(lines)) if not lines else (int(lines[-1][:3]), b"\n".join(lines))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] == b" ":
                return int(line[:3]), b"\n".join(l[4:] for l in lines)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            data = self.buf + self.sock.recv(65536)
            while data:
                more = self.sock.recv(65536)
                if not more:
                    return True
                data += more
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class DNSServer:
    """dnsmasq on 127.0.0.1 at a free port, answering only from its arguments (no upstream, no /etc/hosts): `args` are
    dnsmasq options (--mx-host, --host-record, …), `txt` (name, value) pairs (values over 255 octets are split into
    several strings, as DNS needs). Ready once it answers `probe` (an A record), not after a guessed pause."""

    def __init__(self, workdir, args, txt=(), probe=None):
        import shutil
        import dns.resolver
        log = Path(workdir) / "dnsmasq.log"
        # The port was free a moment ago, but any connection may take it as its ephemeral port meanwhile: try another.
        for attempt in range(5):
            self.port = free_udp_port()
            cmd = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", f"--port={self.port}",
                   "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--log-facility=-",
                   *args]
            for name, value in txt:
                cmd.append(f"--txt-record={name}," + ",".join(value[i:i + 255] for i in range(0, len(value), 255)))
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
            time.sleep(0.05)
            if self.proc.poll() is None or "Address already in use" not in log.read_text():
                break
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port = ["127.0.0.1"], self.port
        deadline = time.time() + 10
        while True:
            assert self.proc.poll() is None, log.read_text()
            try:
                r.resolve(probe, "A", lifetime=0.5)
                return
            except Exception:
                if time.time() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def rsa_key(tmp):
    """An RSA-2048 key from openssl: (PEM private key for dkimpy, base64 SubjectPublicKeyInfo for a DKIM p= tag)."""
    key = tmp / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    return key.read_bytes(), base64.b64encode(der).decode()


class SourceIMAP(imaplib.IMAP4):
    """imaplib connecting to 127.0.0.1 from a chosen loopback address (another client, as the server or a balancer in
    front of it will see it)."""

    def __init__(self, port, source):
        self.source = source
        super().__init__("127.0.0.1", port)

    def _create_socket(self, timeout=None):
        return socket.create_connection((self.host, self.port), timeout or 30, source_address=(self.source, 0))
