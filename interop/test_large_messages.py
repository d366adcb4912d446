"""A large message is streamed out of the store (issue 21): IMAP FETCH of the message or its text, partial FETCH and
POP3 RETR/TOP send it a piece at a time, so the server's peak memory does not grow with the message's size. The same
test runs on the embedded store and on PostgreSQL (contents in 1 MiB chunks there)."""
import imaplib
import os
import poplib
import re
import smtplib
import subprocess
import uuid

import pytest

from conftest import ALICE, BOB, DOMAIN
from ternlib import Tern

PASSWORD = "secret-password-1"
SERVER = os.environ.get("TERN_TEST_POSTGRES")
SIZE = 30_000_000


def peak_kb(pid):
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0].split()[1])


def reset_peak(pid):
    # Linux: writing 5 to clear_refs sets the peak resident size (VmHWM) back to the current one.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@pytest.fixture(params=["sqlite", "postgres"])
def server(request, tmp_path):
    settings = {}
    if request.param == "postgres":
        if not SERVER:
            if os.environ.get("TERN_REQUIRE_POSTGRES"):
                pytest.fail("TERN_TEST_POSTGRES is not set")
            pytest.skip("needs TERN_TEST_POSTGRES (scripts/test starts a PostgreSQL server)")
        name = "i_" + uuid.uuid4().hex
        subprocess.run(["psql", SERVER, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        settings = {"": {"store": re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", SERVER, count=1)}}
    t = Tern(tmp_path / "tern", settings)
    t.add_domain(DOMAIN)
    t.add_user(ALICE)
    t.add_user(BOB)
    t.start()
    yield t
    t.stop()


def big_message():
    """About 30 MB of text lines, each numbered, so that any misplaced piece shows."""
    header = f"From: {BOB}\r\nTo: {ALICE}\r\nSubject: large\r\nMessage-ID: <large@{DOMAIN}>\r\n\r\n".encode()
    lines, n = [], 0
    total = len(header)
    while total < SIZE:
        line = f"line {n:08d} of a large message, with some text to fill it out to a usual width\r\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return header, b"".join(lines)


def test_large_message_is_streamed_out(server):
    header, body = big_message()
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as s:
        s.sendmail(BOB, [ALICE], header + body)
    pid = server.proc.pid

    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    reset_peak(pid)
    base = peak_kb(pid)
    typ, data = imap.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    whole = data[0][1]
    size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0][0]).group(1))
    grown = peak_kb(pid) - base
    # The stored copy is the message with the trace fields Tern put on top.
    assert len(whole) == size and whole.endswith(header[header.index(b"Subject"):] + body)
    assert size > SIZE
    # Streamed in pieces: a whole read would add the message's 30 MB (and its copies) to the peak.
    assert grown < 12_000, f"the server's peak memory grew by {grown} kB while sending a {size}-octet message"

    text_start = whole.index(b"\r\n\r\n") + 4
    typ, data = imap.fetch("1", "(BODY.PEEK[TEXT] BODY.PEEK[HEADER] BODY.PEEK[]<1048570.20> BODY.PEEK[TEXT]<100.5>)")
    assert typ == "OK"
    items = [d for d in data if isinstance(d, tuple)]
    assert items[0][1] == body
    assert items[1][1] == whole[:text_start]
    assert items[2][1] == whole[1048570:1048590]
    assert items[3][1] == body[100:105]
    # RFC822 is not a PEEK: it sets \Seen, reported in the same response.
    typ, data = imap.fetch("1", "(RFC822)")
    assert data[0][1] == whole and b"\\Seen" in b" ".join(d if isinstance(d, bytes) else d[0] for d in data)
    imap.logout()

    pop = poplib.POP3("127.0.0.1", server.pop3_port)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    reset_peak(pid)
    base = peak_kb(pid)
    _, lines, octets = pop.retr(1)
    grown = peak_kb(pid) - base
    assert b"\r\n".join(lines) + b"\r\n" == whole
    assert grown < 12_000, f"the server's peak memory grew by {grown} kB during RETR"
    _, top, _ = pop.top(1, 3)
    assert b"\r\n".join(top) + b"\r\n" == whole[:text_start] + b"".join(body.split(b"\r\n")[i] + b"\r\n" for i in range(3))
    # TOP with more lines than the message has: the whole message, sent as RETR sends it (one pass, never held whole).
    reset_peak(pid)
    base = peak_kb(pid)
    _, top, _ = pop.top(1, 999_999_999)
    grown = peak_kb(pid) - base
    assert b"\r\n".join(top) + b"\r\n" == whole
    assert grown < 12_000, f"the server's peak memory grew by {grown} kB during TOP"
    pop.quit()


def test_large_message_is_streamed_to_the_next_hop(tmp_path):
    """A large message submitted for a remote recipient goes out of the queue a piece at a time: the server's peak memory
    while it delivers does not grow with the message (aiosmtpd as the next hop, dnsmasq for its MX)."""
    import socket
    import time
    from aiosmtpd.controller import Controller
    from ternlib import DNSServer, wait_for

    class Receiver:
        def __init__(self):
            self.contents = []

        async def handle_DATA(self, server, session, envelope):
            self.contents.append(envelope.content)
            return "250 2.0.0 Ok: taken"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    receiver = Receiver()
    hop = Controller(receiver, hostname="127.0.0.1", port=port, data_size_limit=100_000_000)
    dns = DNSServer(tmp_path, ["--local=/test/", "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.1"],
                    probe="mx.remote.test")
    t = Tern(tmp_path / "tern", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]},
                                 "delivery": {"remote_port": port, "retry": ["1s"]}})
    try:
        t.add_domain(DOMAIN)
        t.add_user(ALICE)
        t.start()
        header, body = big_message()
        header = header.replace(f"To: {ALICE}".encode(), b"To: friend@remote.test").replace(f"From: {BOB}".encode(), f"From: {ALICE}".encode())
        # The next hop is down while the message is queued: the first attempt is deferred, the next one delivers it.
        with smtplib.SMTP("127.0.0.1", t.submission_port, timeout=120) as smtp:
            smtp.login(ALICE, PASSWORD)
            smtp.sendmail(ALICE, ["friend@remote.test"], header + body)
        time.sleep(1.5)
        reset_peak(t.proc.pid)
        base = peak_kb(t.proc.pid)
        hop.start()
        wait_for(lambda: receiver.contents, "the message at the next hop", timeout=60)
        grown = peak_kb(t.proc.pid) - base
        got = receiver.contents[0]
        assert got.endswith(body) and b"DKIM-Signature:" in got and len(got) > SIZE
        assert grown < 12_000, f"the server's peak memory grew by {grown} kB while relaying a {len(got)}-octet message"
    finally:
        hop.stop()
        t.stop()
        dns.stop()


def test_large_append_is_spooled(server):
    """An APPEND literal above 1 MiB goes to a spool file as it arrives: the server's peak memory does not grow with
    the message; MULTIAPPEND with LITERAL+ spools each message; what is stored is byte for byte what was sent."""
    import socket
    header, body = big_message()
    message = header + body
    pid = server.proc.pid
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.login(ALICE, PASSWORD)
    reset_peak(pid)
    base = peak_kb(pid)
    typ, _ = imap.append("INBOX", "(\\Flagged)", None, message)
    grown = peak_kb(pid) - base
    assert typ == "OK"
    assert grown < 12_000, f"the server's peak memory grew by {grown} kB during a {len(message)}-octet APPEND"
    imap.select("INBOX")
    typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[])")
    assert data[0][1] == message and b"\\Flagged" in data[0][0]
    imap.logout()

    # MULTIAPPEND (RFC 3502) with non-synchronizing literals: two spooled messages and a small one, all or none.
    two = [message[:2_000_000] + b"\r\n", b"From: x@remote.test\r\nSubject: small\r\n\r\nsmall\r\n", message[:3_000_000] + b"\r\n"]
    with socket.create_connection(("127.0.0.1", server.imap_port), timeout=60) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\n'.encode())
        while not f.readline().startswith(b"a "):
            pass
        command = b"b APPEND INBOX"
        s.sendall(command)
        for m in two:
            s.sendall(b" {%d+}\r\n" % len(m) + m)
        s.sendall(b"\r\n")
        line = f.readline()
        while not line.startswith(b"b "):
            line = f.readline()
        assert line.startswith(b"b OK"), line
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    typ, data = imap.fetch("2:4", "(BODY.PEEK[])")
    assert [d[1] for d in data if isinstance(d, tuple)] == two
    imap.logout()
