"""POP3 with Python's poplib, curl's pop3:// and fetchmail (clients nobody here wrote) against the real server."""
import base64
import imaplib
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import ALICE
from ternlib import date_now, strip_trace, tls_context

PASSWORD = "secret-password-1"


def send(tern, msg, to=ALICE):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail("carol@remote.test", [to], msg)


def message(subject, body="Hello there.\r\n"):
    return (f"From: Carol <carol@remote.test>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Date: {date_now()}\r\nMessage-ID: <{subject.replace(' ', '.')}@remote.test>\r\n\r\n{body}").encode()


def pop(tern, user=ALICE, password=PASSWORD):
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def test_capabilities_login_and_commands(tern):
    dotted = message("dots", ".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n")
    send(tern, message("first"))
    send(tern, dotted)
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=30)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for c in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert c in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(ALICE)
        p.pass_("wrong password")
    p.user(ALICE)
    p.pass_(PASSWORD)
    count, size = p.stat()
    stored = [s for s in tern.messages(ALICE)]
    assert count == 2 and size == sum(len(s) for s in stored)
    resp, listing, _ = p.list()
    assert [l.split()[1] for l in listing] == [str(len(s)).encode() for s in stored]
    resp, lines, octets = p.retr(2)
    # poplib undoes the dot-stuffing; the lines are the stored message exactly.
    assert b"\r\n".join(lines) + b"\r\n" == stored[1]
    assert strip_trace(b"\r\n".join(lines) + b"\r\n")[1] == dotted
    resp, top, _ = p.top(2, 1)
    assert top[-1] == b".leading dot" and top[-2] == b""
    uidls = p.uidl()[1]
    assert len(uidls) == 2 and all(re.fullmatch(rb"\d+ [0-9A-F]{16}", u) for u in uidls)
    assert p.uidl(1).split()[2] == uidls[0].split()[1]
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(3)
    with pytest.raises(poplib.error_proto):
        p._shortcmd("FROB")
    with pytest.raises(poplib.error_proto, match="Invalid number"):
        p._shortcmd("RETR x")
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    assert p.stat()[0] == 1
    p.rset()
    assert p.stat()[0] == 2
    p.noop()
    p.quit()


def test_deletions_happen_only_at_quit_and_imap_sees_them(tern):
    for i in range(3):
        send(tern, message(f"m{i}"))
    imap = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    # A dropped connection deletes nothing.
    p = pop(tern)
    uids_before = p.uidl()[1]
    p.dele(1)
    p.dele(2)
    p.close()  # no QUIT
    time.sleep(0.3)
    p = pop(tern)
    assert p.stat()[0] == 3
    assert p.uidl()[1] == uids_before  # UIDLs are stable across sessions
    # A second session on the same maildrop is refused with [IN-USE].
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        pop(tern)
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    imap.noop()
    assert sorted(imap.response("EXPUNGE")[1]) in ([b"1", b"2"], [b"1", b"3"]), imap.response("EXPUNGE")
    assert imap.search(None, "ALL")[1] == [b"1"]
    imap.logout()
    p = pop(tern)
    assert p.stat()[0] == 1
    assert p.uidl()[1][0].split()[1] == uids_before[1].split()[1]
    p.quit()


def test_tls_auth_plain_and_limits(tern):
    send(tern, message("tls"))
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=30)
    p.stls(tls_context())
    assert "STLS" not in p.capa()
    resp = p._shortcmd("AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode())
    assert resp.startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()
    s = poplib.POP3_SSL("127.0.0.1", tern.pop3s_port, context=tls_context(), timeout=30)
    s.user(ALICE)
    s.pass_(PASSWORD)
    assert s.stat()[0] == 1
    s.quit()
    # AUTH PLAIN with a continuation, and a 3,000-octet line.
    sock = socket.create_connection(("127.0.0.1", tern.pop3_port), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"AUTH PLAIN\r\n")
    assert f.readline() == b"+ \r\n"
    sock.sendall(base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()) + b"\r\n")
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"STAT\r\nLIST\r\n")  # pipelined
    assert f.readline().startswith(b"+OK 1 ")
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"1 ")
    assert f.readline() == b".\r\n"
    sock.sendall(b"NOOP " + b"x" * 3000 + b"\r\n")
    assert f.readline() == b"-ERR Line too long\r\n"
    assert f.readline() == b""
    sock.close()


def test_failed_logins_are_limited_per_address(make_tern):
    tern = make_tern({"limits": {"max_login_failures": 3}})
    for _ in range(3):
        p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=30)
        p.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Invalid"):
            p.pass_("wrong")
        p.close()
    p = poplib.POP3("127.0.0.1", tern.pop3_port, timeout=30)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match="Too many failed logins"):
        p.pass_(PASSWORD)
    p.close()


def big_message(megabytes=10):
    line = b"0123456789" * 7 + b"\r\n"
    body = line * (megabytes * 1024 * 1024 // len(line)) + b".starts with a dot\r\n"
    return message("big") [:-len(b"Hello there.\r\n")] + body


def test_curl_retrieves_a_10_mb_message_byte_for_byte(tern):
    big = big_message()
    send(tern, big)
    url = f"pop3://127.0.0.1:{tern.pop3_port}/1"
    out = subprocess.run(["curl", "-s", "--user", f"{ALICE}:{PASSWORD}", url], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert strip_trace(out.stdout)[1] == big
    listing = subprocess.run(["curl", "-s", "--user", f"{ALICE}:{PASSWORD}", f"pop3://127.0.0.1:{tern.pop3_port}/"],
                             capture_output=True, timeout=60)
    assert listing.stdout.decode().split() == ["1", str(len(tern.messages(ALICE)[0]))]


@pytest.mark.parametrize("keep", [False, True])
def test_fetchmail_delete_and_keep(tern, tmp_path, keep):
    if shutil.which("fetchmail") is None:
        pytest.fail("fetchmail is not installed (scripts/install-test-deps installs it)")
    sent = [message("plain"), message("dots", ".a\r\n..b\r\n.\r\nend\r\n"), big_message()]
    for m in sent:
        send(tern, m)
    out = tmp_path / "mda"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f"""set no bouncemail
poll 127.0.0.1 service {tern.pop3_port} protocol pop3 auth password:
  user "{ALICE}" password "{PASSWORD}" {"keep" if keep else "nokeep"} sslproto '' mda "sh -c 'cat > {out}/msg.$$.$(date +%s%N)'"
""")
    rc.chmod(0o600)

    def run():
        r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "-v", "--idfile", str(tmp_path / "ids"),
                            "--pidfile", str(tmp_path / "pid")], capture_output=True, timeout=120,
                           env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        return r

    stored = tern.messages(ALICE)
    assert sorted(strip_trace(m)[1] for m in stored) == sorted(sent)
    r = run()
    assert r.returncode == 0, r.stdout.decode()[-2000:] + r.stderr.decode()[-2000:]
    got = [p.read_bytes() for p in out.iterdir()]
    assert len(got) == 3

    def without_fetchmail_trace(g):
        # fetchmail hands an MDA Unix line ends, with its own Received field after the Return-Path.
        lines = g.split(b"\n")
        assert lines[0].startswith(b"Return-Path: ") and lines[1].startswith(b"Received: ") and b"fetchmail" in g[:300]
        i = 2
        while lines[i].startswith((b"\t", b" ")):
            i += 1
        return b"\n".join(lines[:1] + lines[i:])

    assert sorted(without_fetchmail_trace(g) for g in got) == sorted(m.replace(b"\r\n", b"\n") for m in stored)
    if keep:
        assert len(stored) == 3
        # A second run downloads nothing: the UIDLs are the same.
        r = run()
        assert r.returncode in (0, 1), r.stdout.decode()[-2000:]  # 1: no new mail
        assert len(list(out.iterdir())) == 3
    else:
        p = pop(tern)
        assert p.stat()[0] == 0
        p.quit()


def test_a_client_gone_during_login_leaves_no_lock(tern):
    """A client that sends USER and PASS and hangs up at once (a phone losing signal) must not leave the maildrop
    locked: the login that finishes after the connection has gone gives the lock back, and the next login works
    (it was refused with [IN-USE] until the server restarted)."""
    send(tern, message("still reachable"))
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", tern.pop3_port))
        s.recv(512)
        s.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\n".encode())
        s.close()
    deadline = time.time() + 10
    while True:
        try:
            p = pop(tern)
            break
        except poplib.error_proto as e:
            assert b"IN-USE" in e.args[0], e
            assert time.time() < deadline, "the maildrop stayed locked after the client had gone"
            time.sleep(0.2)
    assert p.stat()[0] == 1
    p.quit()
