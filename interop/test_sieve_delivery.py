"""Sieve at delivery (issue 22): a user's active script decides where mail sent over SMTP lands (checked over IMAP with
imaplib), redirects go through the queue to the next hop (aiosmtpd, found through dnsmasq) with a Delivered-To field,
a discard stores nothing but still answers 250, a script that fails keeps the message, and `tern trace` shows what the
script did. On both stores: SQLite, and PostgreSQL when the test database is there."""
import imaplib
import smtplib
import socket

import pytest
from conftest import ALICE, BOB, DOMAIN
from ternlib import DNSServer, Tern, wait_for
from test_postgres_nodes import database  # noqa: F401 (a fixture)

PASSWORD = "secret-password-1"

SCRIPT = """require ["fileinto", "mailbox", "copy"];
# Mailing lists into their own folder, made on first use.
if header :contains "subject" "[list]" {
  fileinto :create "Lists";
  stop;
}
if address :is :domain "from" "remote.test" {
  redirect :copy "phone@remote.test";
}
if header :is "subject" "drop" {
  discard;
}
"""

BROKEN = """# Valid, but a fifth redirect is over the limit at run time.
redirect "a@remote.test"; redirect "b@remote.test"; redirect "c@remote.test";
redirect "d@remote.test"; redirect "e@remote.test";
"""


def message(sender, subject, to=ALICE):
    return f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n\r\nbody\r\n"


def subjects(imap, mailbox):
    typ, data = imap.select(f'"{mailbox}"', readonly=True)
    assert typ == "OK", mailbox
    if int(data[0]) == 0:
        return []
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return sorted(part[1].decode().strip().removeprefix("Subject: ") for part in data if isinstance(part, tuple))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    return None if request.param == "sqlite" else request.getfixturevalue("database")


def test_scripts_decide_where_mail_lands(tmp_path, store):
    from aiosmtpd.controller import Controller

    class Receiver:
        def __init__(self):
            self.got = []

        async def handle_DATA(self, server, session, envelope):
            self.got.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
            return "250 2.0.0 Ok: taken"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    receiver = Receiver()
    hop = Controller(receiver, hostname="127.0.0.1", port=port)
    dns = DNSServer(tmp_path, ["--local=/test/", "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.1"],
                    probe="mx.remote.test")
    settings = {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]}, "delivery": {"remote_port": port, "retry": ["1s"]},
                "log": {"level": "warning", "delivery_retention": "30d"}}
    if store:
        settings[""] = {"store": store}
    t = Tern(tmp_path / "tern", settings)
    hop.start()
    try:
        t.add_domain(DOMAIN)
        t.add_user(ALICE)
        t.add_user(BOB)
        (tmp_path / "main.sieve").write_text(SCRIPT)
        (tmp_path / "broken.sieve").write_text(BROKEN)
        t.run("sieve", "put", ALICE, "main", str(tmp_path / "main.sieve"))
        t.run("sieve", "put", ALICE, "broken", str(tmp_path / "broken.sieve"))
        t.run("sieve", "activate", ALICE, "main")
        t.start()

        with smtplib.SMTP("127.0.0.1", t.smtp_port, timeout=30) as smtp:
            # To alice and bob: alice's script files it into Lists (created), bob has no script.
            smtp.sendmail("news@lists.test", [ALICE, BOB], message("news@lists.test", "[list] weekly"))
            # From remote.test: a copy redirected, and kept (:copy).
            smtp.sendmail("boss@remote.test", [ALICE], message("boss@remote.test", "call me"))
            # Discarded: a 250 all the same, nothing stored.
            assert smtp.mail("x@other.test")[0] == 250 and smtp.rcpt(ALICE)[0] == 250
            code, reply = smtp.data(message("x@other.test", "drop"))
            assert code == 250, reply
            queue_id = reply.decode().split()[-1]
            # Already redirected by alice once (her Delivered-To is in it): not sent round again, kept.
            smtp.sendmail("boss@remote.test", [ALICE], f"Delivered-To: {ALICE}\r\n" + message("boss@remote.test", "loop"))

        imap = imaplib.IMAP4("127.0.0.1", t.imap_port)
        imap.login(ALICE, PASSWORD)
        assert subjects(imap, "Lists") == ["[list] weekly"]
        assert subjects(imap, "INBOX") == ["call me", "loop"]
        imap.logout()
        imap = imaplib.IMAP4("127.0.0.1", t.imap_port)
        imap.login(BOB, PASSWORD)
        assert subjects(imap, "INBOX") == ["[list] weekly"]
        imap.logout()

        wait_for(lambda: receiver.got, "the redirected copy at the next hop", timeout=30)
        assert len(receiver.got) == 1
        mail_from, rcpts, content = receiver.got[0]
        assert mail_from == "boss@remote.test" and rcpts == ["phone@remote.test"]
        assert content.startswith(f"Delivered-To: {ALICE}\r\n".encode()) and b"Subject: call me" in content
        assert b"Return-Path:" not in content

        trace = t.run("trace", queue_id).stdout.decode()
        assert f"filtered   <{ALICE}>: discarded" in trace, trace

        # A script that fails at run time keeps the message in INBOX.
        t.run("sieve", "activate", ALICE, "broken")
        with smtplib.SMTP("127.0.0.1", t.smtp_port, timeout=30) as smtp:
            smtp.sendmail("y@other.test", [ALICE], message("y@other.test", "still here"))
        imap = imaplib.IMAP4("127.0.0.1", t.imap_port)
        imap.login(ALICE, PASSWORD)
        assert subjects(imap, "INBOX") == ["call me", "loop", "still here"]
        imap.logout()
        assert len(receiver.got) == 1
    finally:
        hop.stop()
        t.stop()
        dns.stop()
