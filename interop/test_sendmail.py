"""`tern sendmail`, the /usr/sbin/sendmail interface of cron, scripts and web applications: the message read from
standard input is stored for local recipients and queued for the others before the command returns, and what arrived
is read back with imaplib."""
import email
import email.utils
import imaplib
import re

from conftest import ALICE, BOB
from ternlib import tls_context


def inbox(tern, user, password="secret-password-1"):
    with imaplib.IMAP4(tern.host, tern.imap_port) as m:
        m.starttls(ssl_context=tls_context())
        m.login(user, password)
        m.select("INBOX")
        typ, data = m.search(None, "ALL")
        out = []
        for n in data[0].split():
            typ, msg = m.fetch(n, "(BODY.PEEK[])")
            out.append(msg[0][1])
        return out


def sendmail(tern, *args, input):
    return tern.run("sendmail", *args, input=input, check=False)


def test_local_recipients_headers_and_bcc(tern):
    # A cron-style message: LF line ends, no From, Date or Message-ID, an unqualified recipient in a header.
    r = sendmail(tern, "-oi", "-t", "-F", "Cron Daemon", "-f", "cron@example.test",
                 input=b"To: alice\nBcc: bob@example.test\nSubject: backup done\n\nAll 3 volumes copied.\n.\nstill here\n")
    assert r.returncode == 0, r.stderr
    [a] = inbox(tern, ALICE)
    [b] = inbox(tern, BOB)
    assert a == b
    msg = email.message_from_bytes(a)
    assert msg["From"] == '"Cron Daemon" <cron@example.test>'
    # A bare local part in a header gets the domain, as it does in the envelope.
    assert msg["To"] == "alice@example.test" and msg["Subject"] == "backup done"
    assert msg["Bcc"] is None, "the Bcc field must not reach the recipients"
    assert msg["Message-ID"] and msg["Date"]
    assert "Tern sendmail" in msg["Received"]
    # -i: the lone dot is text; every line ends in CRLF.
    assert msg.get_payload() == "All 3 volumes copied.\r\n.\r\nstill here\r\n"
    assert b"\n" not in a.replace(b"\r\n", b"")


def test_address_fields_are_qualified_only_when_needed(tern):
    r = sendmail(tern, "-t", input=b'From: "Web, Shop" <shop@example.test>\nTo: "Alice A." <alice>, bob@example.test\n'
                                   b"Cc: Bob B <bob@example.test>\nSubject: s\n\nbody\n")
    assert r.returncode == 0, r.stderr
    [raw] = inbox(tern, ALICE)
    msg = email.message_from_bytes(raw)
    assert msg["From"] == '"Web, Shop" <shop@example.test>'
    assert msg["Cc"] == "Bob B <bob@example.test>", "a field whose addresses all have domains stays as written"
    to = email.utils.getaddresses([msg["To"]])
    assert to == [("Alice A.", "alice@example.test"), ("", "bob@example.test")], to
    assert len(inbox(tern, BOB)) == 1, "bob is named twice and gets one copy"


def test_dot_ends_input_without_i_and_plain_text_input(tern):
    # Without -i a line holding one dot ends the message; text with no header becomes the body.
    r = sendmail(tern, ALICE, input=b"just a line of text\n.\nnot part of it\n")
    assert r.returncode == 0, r.stderr
    [raw] = inbox(tern, ALICE)
    msg = email.message_from_bytes(raw)
    assert msg.get_payload() == "just a line of text\r\n"
    # The sender defaults to the login of whoever ran it, at the first domain served here.
    assert re.fullmatch(r"[^@\s]+@example\.test", msg["From"]), msg["From"]
    assert msg["Return-Path"] is None or "@example.test" in msg["Return-Path"]


def test_remote_recipient_is_queued(tern):
    r = sendmail(tern, "-f", "alice@example.test", "someone@remote.test",
                 input=b"Subject: out\nMessage-ID: <sm-queued@example.test>\n\nhello\n")
    assert r.returncode == 0, r.stderr
    # The delivery log, not `tern queue list`: the running server's queue may already have tried (and bounced) it.
    out = tern.run("trace", "<sm-queued@example.test>").stdout.decode()
    assert "queued     for <someone@remote.test>" in out and "MAIL FROM <alice@example.test>" in out, out


def test_refusals_use_sysexits(tern):
    # An unknown local user: 67 (EX_NOUSER), nothing stored for anyone.
    r = sendmail(tern, ALICE, "nobody@example.test", input=b"Subject: x\n\nx\n")
    assert r.returncode == 67 and b"nobody@example.test" in r.stderr, (r.returncode, r.stderr)
    assert inbox(tern, ALICE) == []
    # No recipients, an unknown option, a mode other than sending: 64 (EX_USAGE).
    assert sendmail(tern, input=b"Subject: x\n\nx\n").returncode == 64
    assert sendmail(tern, "-Z", ALICE, input=b"x\n").returncode == 64
    assert sendmail(tern, "-bs", input=b"").returncode == 64
    assert sendmail(tern, "not an address", input=b"x\n").returncode == 64


def test_message_over_the_size_limit(make_tern):
    t = make_tern({"limits": {"max_message_size": "64K"}})
    r = sendmail(t, ALICE, input=b"Subject: big\n\n" + b"x" * 70 + b"\n" * 1 + (b"y" * 76 + b"\n") * 1000)
    assert r.returncode == 65 and b"max_message_size" in r.stderr, (r.returncode, r.stderr)
    assert inbox(t, ALICE) == []
