"""IMAP under hostile input before login: nobody holds the server's memory without an account."""
import imaplib
import socket
import time

from conftest import ALICE
from ternlib import SourceIMAP

PASSWORD = "secret-password-1"


def rss_kb(pid):
    return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])


def read_until_closed(sock, timeout=10):
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_unauthenticated_literals_are_bounded(tern):
    before = rss_kb(tern.proc.pid)
    # Five connections each announce literal after literal (LITERAL+, so nothing waits for a go-ahead), as an attacker
    # building one huge LOGIN would: each is cut off after a few KB, with BYE.
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", tern.imap_port), 10)
        assert s.recv(4096).startswith(b"* OK")
        socks.append(s)
    piece = b"x" * 4000
    for s in socks:
        try:
            s.sendall(b"a LOGIN {4000+}\r\n" + piece)
            for _ in range(200):   # 800 KB more per connection if the server took it
                s.sendall(b" {4000+}\r\n" + piece)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server already hung up
    for s in socks:
        answer = read_until_closed(s)
        assert b"* BYE" in answer, answer[:200]
        s.close()
    grown = rss_kb(tern.proc.pid) - before
    assert grown < 20_000, f"memory grew by {grown} kB for 5 unauthenticated connections"

    # A synchronizing literal too big before login is refused before it is sent; the session goes on.
    s = socket.create_connection(("127.0.0.1", tern.imap_port), 10)
    s.recv(4096)
    s.sendall(b"a APPEND INBOX {65000}\r\n")
    s.settimeout(10)
    line = s.recv(4096)
    assert line.startswith(b"a NO [TOOBIG]"), line
    s.sendall(b"b NOOP\r\n")
    assert s.recv(4096).startswith(b"b OK"), "the session goes on after the refusal"
    s.close()

    # After login the same APPEND is taken: the bound is for strangers only.
    imap = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    imap.login(ALICE, PASSWORD)
    message = b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 1000
    typ, _ = imap.append("INBOX", None, None, message)
    assert typ == "OK"
    imap.logout()


def test_a_flood_of_idle_strangers_does_not_lock_out_users(make_tern):
    """20 connections from 20 addresses (127.0.0.x) fill IMAP's limit and say nothing; users still get in: the
    stranger that waited longest makes room each time, and logged-in sessions are never the ones to go."""
    tern = make_tern({"limits": {"max_connections": 20}})
    user = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    user.login(ALICE, PASSWORD)
    strangers = []
    for i in range(19):
        s = socket.create_connection(("127.0.0.1", tern.imap_port), 10, source_address=(f"127.0.0.{10 + i}", 0))
        assert s.recv(4096).startswith(b"* OK")
        strangers.append(s)
    for attempt in range(3):
        other = imaplib.IMAP4("127.0.0.1", tern.imap_port)
        other.login(ALICE, PASSWORD)
        assert other.select("INBOX")[0] == "OK"
        other.logout()
    # The first strangers were told why they had to go.
    assert b"* BYE [UNAVAILABLE] Too many connections" in read_until_closed(strangers[0], timeout=5)
    # The session logged in before the flood is still served.
    assert user.noop()[0] == "OK"
    user.logout()
    for s in strangers:
        s.close()


def test_parallel_wrong_logins_are_counted_when_they_start(make_tern):
    """20 wrong logins at once from one address: only max_login_failures (5) are checked, the rest refused unchecked;
    every log line about them names the client, and a user name holding a line feed cannot forge a log line."""
    import threading
    tern = make_tern({"limits": {"max_login_failures": 5}, "log": {"level": "info"}})
    answers = []

    def guess(i):
        c = SourceIMAP(tern.imap_port, "127.0.0.5")
        try:
            c.login(ALICE, f"wrong-{i}")
            answers.append("ok")
        except imaplib.IMAP4.error as e:
            answers.append(str(e))
        finally:
            c.shutdown()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 20 and "ok" not in answers
    # A name with a line feed, sent as a literal, from the same client.
    s = socket.create_connection(("127.0.0.1", tern.imap_port), 10, source_address=("127.0.0.5", 0))
    s.recv(4096)
    name = b"x\nJan 01 forged: login ok for root"
    s.sendall(b"a LOGIN {%d+}\r\n" % len(name) + name + b" pw\r\n")
    s.settimeout(15)
    s.recv(4096)
    s.close()
    time.sleep(0.5)
    log = tern.stderr_path.read_text()
    failed = [l for l in log.splitlines() if "login failed" in l]
    refused = [l for l in log.splitlines() if "login refused" in l]
    assert len(failed) == 5, log[-3000:]
    assert len(refused) >= 16, log[-3000:]
    assert all("remote=127.0.0.5" in l for l in failed + refused), log[-3000:]
    assert not any(l.startswith("Jan 01 forged") for l in log.splitlines()), "a forged log line"
    assert "\\x0AJan 01 forged" in log


def test_enable_needs_a_login(tern):
    """ENABLE is a command of the authenticated state (RFC 5161 3.1): before login it gets BAD and enables nothing."""
    s = socket.create_connection(("127.0.0.1", tern.imap_port))
    s.settimeout(10)
    s.recv(4096)
    s.sendall(b"a ENABLE UTF8=ACCEPT\r\n")
    reply = b""
    while b"a " not in reply:
        reply += s.recv(4096)
    assert b"* ENABLED" not in reply and b"a BAD" in reply, reply
    s.close()
