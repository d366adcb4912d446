"""The connection lifecycle every protocol shares (ServerCore): HAProxy in front of Tern with the PROXY protocol (v1 for
SMTP, v2 for IMAP), connection limits counted per real client, the idle timeout, and draining at SIGTERM."""
import imaplib
import poplib
import re
import socket
import smtplib
import subprocess
import time

import pytest

from conftest import ALICE, BOB
from ternlib import SourceIMAP, free_udp_port

PASSWORD = "secret-password-1"


class Line:
    """A raw connection read line by line."""

    def __init__(self, port, source="127.0.0.1", send=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
        if send:
            self.sock.sendall(send)
        self.buf = b""

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def closed(self, timeout=10):
        """True when the server closes the connection without sending anything more."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096) == b"" and self.buf == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def haproxy(tmp_path):
    procs = []

    def start(routes):
        """`routes`: (frontend port, backend port, "send-proxy" or "send-proxy-v2")."""
        cfg = ["global", "  maxconn 100", "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 60s",
               "  timeout server 60s"]
        for i, (front, back, option) in enumerate(routes):
            cfg += [f"frontend f{i}", f"  bind 127.0.0.1:{front}", f"  default_backend b{i}",
                    f"backend b{i}", f"  server tern 127.0.0.1:{back} {option}"]
        path = tmp_path / "haproxy.cfg"
        path.write_text("\n".join(cfg) + "\n")
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.time() + 10
        for front, _, _ in routes:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", front), 1).close()
                    break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read().decode()
                    assert time.time() < deadline, "haproxy did not listen"
                    time.sleep(0.05)

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def test_haproxy_relays_the_real_client_to_smtp_and_imap(make_tern, haproxy):
    tern = make_tern({"proxy": {"services": ["smtp", "imap"], "trusted_networks": ["127.0.0.1/32"]},
                      "checks": {"exempt_networks": ["127.0.0.0/8"]},
                      "limits": {"max_connections_per_address": 2}})
    smtp_front, imap_front = free_udp_port(), free_udp_port()
    haproxy([(smtp_front, tern.smtp_port, "send-proxy"), (imap_front, tern.imap_port, "send-proxy-v2")])

    # SMTP through HAProxy (PROXY v1) from 127.0.0.7: the Received field names that client, not the balancer.
    with smtplib.SMTP("127.0.0.1", smtp_front, source_address=("127.0.0.7", 0), timeout=10) as s:
        s.sendmail("someone@remote.test", [ALICE], b"Subject: through the balancer\r\n\r\nhello\r\n")
    imap = SourceIMAP(imap_front, "127.0.0.8")
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (RECEIVED)])")
    received = data[0][1].decode()
    assert "[127.0.0.7]" in received, received

    # Limits count the real client (every TCP connection comes from HAProxy at 127.0.0.1): 127.0.0.8 holds one
    # session, may open a second, not a third; 127.0.0.9 is another client and gets in.
    second = SourceIMAP(imap_front, "127.0.0.8")
    third = Line(imap_front, source="127.0.0.8")
    assert third.line() == "* BYE [UNAVAILABLE] Too many connections from your address, try again later"
    assert third.closed()
    other = SourceIMAP(imap_front, "127.0.0.9")
    other.login(BOB, PASSWORD)
    for c in (imap, second, other):
        c.logout()


def test_a_proxy_listener_takes_only_trusted_balancers_with_a_header(make_tern):
    tern = make_tern({"proxy": {"services": ["smtp"], "trusted_networks": ["127.0.0.1/32"]}})
    # Not a trusted balancer: closed without a word (no greeting to a client that could forge a header).
    assert Line(tern.smtp_port, source="127.0.0.7").closed()
    # A trusted address that sends no header but SMTP: closed.
    assert Line(tern.smtp_port, send=b"EHLO client.test\r\n").closed()
    # A header typed by hand (v1), the rest of the line's bytes in the same packet: the session starts after it.
    c = Line(tern.smtp_port, send=b"PROXY TCP4 192.0.2.44 127.0.0.1 40000 25\r\nEHLO client.test\r\n")
    assert c.line().startswith("220 ")
    assert c.line().startswith("250-")
    # A v2 LOCAL header (a balancer's health check): the balancer's own address stands, and it is served.
    local = Line(tern.smtp_port, send=b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
    assert local.line().startswith("220 ")
    # Services not listed take connections as usual.
    assert Line(tern.pop3_port).line().startswith("+OK")


def test_an_idle_connection_gets_the_protocols_timeout_reply(make_tern):
    tern = make_tern({"limits": {"command_timeout": "2s"}})
    c = Line(tern.smtp_port)
    assert c.line().startswith("220 ")
    c.send("EHLO client.test")
    while c.line().startswith("250-"):
        pass
    assert re.match(r"421 4\.4\.2 \S+ Error: timeout exceeded", c.line(timeout=30))
    assert c.closed()


def test_sigterm_ends_sessions_between_commands_and_loses_nothing(make_tern):
    tern = make_tern({"limits": {"shutdown_grace": "20s"}})
    imap = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    pop = poplib.POP3("127.0.0.1", tern.pop3_port)
    pop.user(BOB)
    pop.pass_(PASSWORD)
    waiting = Line(tern.smtp_port)             # in a transaction, between commands
    assert waiting.line().startswith("220 ")
    for cmd in ("EHLO client.test", "MAIL FROM:<a@remote.test>", f"RCPT TO:<{ALICE}>"):
        waiting.send(cmd)
        while (line := waiting.line()).startswith("250-"):
            pass
        assert line.startswith("250"), line
    sending = Line(tern.smtp_port)             # ends its message as the signal comes
    assert sending.line().startswith("220 ")
    sending.sock.sendall(f"EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
    replies = []
    while len(replies) < 4:
        line = sending.line()
        if not line.startswith("250-"):
            replies.append(line)
    assert replies[-1].startswith("354"), replies
    sending.sock.sendall(b"Subject: at the last moment\r\n\r\nhello\r\n.\r\n")
    tern.proc.send_signal(15)

    # Each protocol says it is going, in its own words, and closes.
    assert re.match(r"421 4\.3\.2 \S+ Service shutting down", waiting.line())
    assert waiting.closed()
    last = sending.line()
    if last.startswith("250"):
        assert re.match(r"421 4\.3\.2", sending.line())
    else:
        assert re.match(r"421 4\.3\.2", last), last
    assert imap.readline().decode().startswith("* BYE [UNAVAILABLE] Server shutting down")
    assert pop.file.readline().decode().startswith("-ERR [SYS/TEMP] Server shutting down")
    assert tern.proc.wait(15) == 0
    tern.proc = None
    tern.stdout_file.close()
    tern.stderr_file.close()

    # What got a 250 is there after the restart; what did not was never acknowledged.
    tern.start()
    imap = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    _, found = imap.search(None, "SUBJECT", '"at the last moment"')
    assert (len(found[0].split()) == 1) == last.startswith("250"), (last, found)
    imap.logout()


def test_a_client_trickling_bytes_is_cut_off_by_the_record_deadline(make_tern):
    tern = make_tern({"limits": {"command_timeout": "2s", "data_timeout": "2s"}})
    for stage in ("command", "data"):
        c = Line(tern.smtp_port)
        assert c.line().startswith("220 ")
        if stage == "data":
            for cmd in ("HELO client.test", "MAIL FROM:<a@remote.test>", f"RCPT TO:<{ALICE}>", "DATA"):
                c.send(cmd)
                c.line()
        # One octet every half second: each read would restart an idle timer, so only a deadline on the whole
        # line (from its first octet) ends this.
        start = time.time()
        text = b"EHLO slow.client.test" if stage == "command" else b"Subject: trickled" + b"x" * 100
        answer = None
        for octet in text:
            try:
                c.sock.sendall(bytes([octet]))
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(0.5)
            try:
                chunk = c.sock.recv(4096)
            except socket.timeout:
                continue
            c.buf += chunk
            answer = c.buf.decode(errors="replace")
            break
        elapsed = time.time() - start
        assert answer is not None and re.match(r"421 4\.4\.2 \S+ Error: timeout exceeded", answer), (stage, answer)
        assert 1.5 < elapsed < 15, (stage, elapsed)
        assert tern.messages(ALICE) == []
