"""Receiving SMTP with real clients: Python's smtplib and swaks."""
import email.utils
import smtplib
import ssl
import subprocess

import pytest

from conftest import ALICE, BOB
from ternlib import strip_trace, tls_context


def message(subject, body="Hello from the test.\r\n", sender="sender@remote.test", to=ALICE):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: {email.utils.make_msgid()}\r\n\r\n{body}").encode()


def test_plain_delivery_is_stored_byte_for_byte(tern):
    msg = message("plain")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        code, text = s.ehlo("client.remote.test")
        assert code == 250
        for ext in ("pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes", "starttls", "chunking", "dsn"):
            assert s.has_extn(ext), ext
        assert s.sendmail("sender@remote.test", [ALICE], msg) == {}
    stored = tern.messages(ALICE)
    assert len(stored) == 1
    trace, original = strip_trace(stored[0])
    assert original == msg
    assert trace.startswith(b"Return-Path: <sender@remote.test>\r\n")
    assert b"from client.remote.test ([127.0.0.1])" in trace
    assert b"by mx.tern.test (Tern) with ESMTP id " in trace
    assert b"for <alice@example.test>;" in trace


def test_starttls_delivery(tern):
    msg = message("over tls")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        code, _ = s.starttls(context=tls_context())
        assert code == 220
        s.ehlo()
        assert not s.has_extn("starttls"), "STARTTLS must not be offered again inside TLS"
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.sendmail("sender@remote.test", [ALICE], msg)
    trace, original = strip_trace(tern.messages(ALICE)[0])
    assert original == msg
    assert b"with ESMTPS id" in trace


def test_smtputf8_addresses_and_headers(tern):
    tern.run("user", "add", "jürgen@example.test", "--password", "pw-123456")
    body = "Grüße aus Köln — ünïcödé\r\n"
    msg = ("From: Jürgen <jürgen@example.test>\r\nTo: jürgen@example.test\r\nSubject: Grüße\r\n\r\n" + body).encode("utf-8")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        assert s.has_extn("smtputf8")
        refused = s.sendmail("sénder@remote.test", ["jürgen@example.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    stored = tern.messages("jürgen@example.test")
    trace, original = strip_trace(stored[0])
    assert original == msg
    assert "Return-Path: <sénder@remote.test>".encode() in trace
    assert b"with UTF8SMTP id" in trace


def test_utf8_address_without_smtputf8_is_refused(tern):
    c = tern.connect()
    assert c.cmd(b"EHLO client")[0] == 250
    code, text = c.cmd("MAIL FROM:<sénder@remote.test>".encode())
    assert code == 553 and text.startswith(b"5.6.7"), text
    assert c.cmd("MAIL FROM:<sénder@remote.test> SMTPUTF8".encode())[0] == 250
    code, text = c.cmd("RCPT TO:<jürgen@example.test>".encode())
    assert code == 550 and text.startswith(b"5.1.1"), text


def test_multiple_recipients_stored_once(tern):
    msg = message("to both", to=f"{ALICE}, {BOB}")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        assert s.sendmail("sender@remote.test", [ALICE, BOB], msg) == {}
    a, b = tern.messages(ALICE), tern.messages(BOB)
    assert a == b and len(a) == 1
    trace, original = strip_trace(a[0])
    assert original == msg
    assert b"for <" not in trace, "Received must not name recipients of a multi-recipient message (Bcc privacy)"


def test_bdat_with_real_client_bytes(tern):
    """smtplib has no BDAT; send it raw, pipelined in several chunks as RFC 3030 allows."""
    msg = message("chunked", body="line one\r\n.line starting with a dot\r\n" + "x" * 70000 + "\r\n")
    c = tern.connect()
    assert c.cmd(b"EHLO client")[0] == 250
    c.send(b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<" + ALICE.encode() + b">\r\n")
    assert c.reply()[0] == 250 and c.reply()[0] == 250
    half = len(msg) // 2
    c.send(b"BDAT %d\r\n" % half + msg[:half] + b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
    code1, _ = c.reply()
    code2, text = c.reply()
    assert (code1, code2) == (250, 250), text
    assert c.cmd(b"QUIT")[0] == 221
    _, original = strip_trace(tern.messages(ALICE)[0])
    assert original == msg  # BDAT content is taken as is: no dot-unstuffing


def test_dot_stuffing_round_trip(tern):
    body = ".\r\n..two dots\r\n.one dot\r\nend\r\n"
    msg = message("dots", body=body)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail("sender@remote.test", [ALICE], msg)
    _, original = strip_trace(tern.messages(ALICE)[0])
    assert original == msg


def test_dsn_parameters_accepted(tern):
    msg = message("dsn")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        assert s.has_extn("dsn")
        refused = s.sendmail("sender@remote.test", [ALICE], msg, mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
                             rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@example.test"])
        assert refused == {}
    assert len(tern.messages(ALICE)) == 1


def test_swaks_plain_tls_and_pipelining(tern):
    for extra in ([], ["--tls"], ["--pipeline"], ["--tls", "--pipeline"]):
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tern.smtp_port}", "--from", "sender@remote.test",
                            "--to", BOB, "--helo", "swaks.remote.test", "--header", f"Subject: swaks {' '.join(extra)}",
                            "--body", "sent by swaks", *extra], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        assert b"250 2.0.0 Ok: stored as" in r.stdout
    stored = tern.messages(BOB)
    assert len(stored) == 4
    subjects = [s for s in stored if b"Subject: swaks --tls --pipeline" in s]
    assert len(subjects) == 1 and b"with ESMTPS" in subjects[0]
    assert all(b"sent by swaks" in s for s in stored)


def test_swaks_rejections(tern):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tern.smtp_port}", "--from", "sender@remote.test",
                        "--to", "nobody@example.test"], capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"550 5.1.1" in r.stdout
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tern.smtp_port}", "--from", "sender@remote.test",
                        "--to", "someone@elsewhere.test"], capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"550 5.7.1" in r.stdout


def test_postmaster_is_always_accepted(tern):
    tern.run("alias", "add", "postmaster@example.test", ALICE)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        s.mail("sender@remote.test")
        assert s.rcpt("<Postmaster>")[0] == 250
        assert s.rcpt("postmaster@example.test")[0] == 250
        assert s.data(message("to postmaster"))[0] == 250
    assert len(tern.messages(ALICE)) == 1


def test_sub_addressing_alias_and_catch_all(tern):
    tern.run("alias", "add", "sales@example.test", ALICE, BOB)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail("x@remote.test", ["alice+lists@example.test"], message("plus"))
        s.sendmail("x@remote.test", ["sales@example.test"], message("alias"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("x@remote.test", ["random@example.test"], message("before catch-all"))
    tern.run("alias", "add", "@example.test", BOB)
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail("x@remote.test", ["random@example.test"], message("catch-all"))
    alice = tern.messages(ALICE)
    bob = tern.messages(BOB)
    assert [b"Subject: plus" in m for m in alice] == [True, False]
    assert any(b"Subject: alias" in m for m in alice) and any(b"Subject: alias" in m for m in bob)
    assert any(b"Subject: catch-all" in m for m in bob)


def test_internationalised_domain_in_both_forms(tern):
    tern.add_domain("Müller.test")
    assert "xn--mller-kva.test (müller.test)" in tern.run("domain", "list").stdout.decode()
    tern.run("user", "add", "info@müller.test", "--password", "pw-idn-user")
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        assert s.sendmail("x@remote.test", ["info@xn--mller-kva.test"], b"Subject: a-label\r\n\r\nx\r\n") == {}
        assert s.sendmail("x@remote.test", ["info@MÜLLER.test"], b"Subject: u-label\r\n\r\nx\r\n",
                          mail_options=["SMTPUTF8"]) == {}
    stored = tern.messages("info@xn--mller-kva.test")
    assert [b"a-label" in stored[0], b"u-label" in stored[1]] == [True, True]


def test_postmaster_is_always_taken(make_tern):
    """RFC 5321 §4.5.1: <Postmaster> and postmaster@ every served domain take mail, with no account of that name: the
    domain's oldest account gets it (alice, made first), or the config's `postmaster`."""
    tern = make_tern()
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo("client.test")
        s.mail("someone@remote.test")
        assert s.rcpt("<Postmaster>")[0] == 250
        assert s.rcpt("PostMaster@example.test")[0] == 250
        assert s.rcpt("webmaster@example.test")[0] == 550     # other unknown names are still refused
        assert s.data(b"Subject: for the postmaster\r\n\r\nhello\r\n")[0] == 250
    assert [m for m in tern.messages(ALICE) if b"for the postmaster" in m], "alice, the oldest account, gets it"
    assert not [m for m in tern.messages(BOB) if b"for the postmaster" in m]

    other = make_tern({"": {"postmaster": BOB}}, name="configured")
    with smtplib.SMTP("127.0.0.1", other.smtp_port) as s:
        s.sendmail("someone@remote.test", ["postmaster@example.test"], b"Subject: to the configured one\r\n\r\nhi\r\n")
    assert [m for m in other.messages(BOB) if b"to the configured one" in m]
