"""Delivery status notifications end to end (RFC 3461): NOTIFY, ORCPT, ENVID and RET given at submission (Python's
smtplib) are honoured by Tern's queue, with Python's aiosmtpd as the next hop — once as a server without DSN (Tern
sends the "relayed" notice itself), once offering DSN (the parameters travel on and Tern sends nothing) — and for a
local mailbox (a "delivered" notice)."""
import contextlib
import email
import smtplib
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

from conftest import ALICE
from ternlib import DNSServer, Tern, wait_for

PASSWORD = "secret-password-1"
FRIEND = "friend@remote.test"


class Sink:
    """aiosmtpd handler: keeps each envelope (sender, recipients, MAIL and RCPT parameters, content)."""

    def __init__(self, offer_dsn):
        self.offer_dsn = offer_dsn
        self.envelopes = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.offer_dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: taken"


class DSNServer(AioSMTP):
    """aiosmtpd refuses parameters it does not know; this one takes RFC 3461's (they stay in mail_options and
    rcpt_options for the test to read)."""

    def _getparams(self, params):
        result = super()._getparams(params)
        if result is not None:
            for key in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(key, None)
        return result


class NextHop(Controller):
    def factory(self):
        return DSNServer(self.handler, **self.SMTP_kwargs)


def next_hop(offer_dsn):
    """aiosmtpd on a free loopback port (its readiness check connects to the port it was given, so not 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink(offer_dsn)
    hop = NextHop(sink, hostname="127.0.0.1", port=port)
    hop.start()
    return sink, hop, port


@pytest.fixture
def dns(tmp_path):
    d = DNSServer(tmp_path, ["--local=/test/", "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.1"],
                  probe="mx.remote.test")
    yield d
    d.stop()


@contextlib.contextmanager
def served(tmp_path, dns, offer_dsn):
    """aiosmtpd as the next hop and a Tern that delivers to it: (the hop's handler, Tern); both stopped after."""
    sink, hop, port = next_hop(offer_dsn)
    t = Tern(tmp_path / "t", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]}, "delivery": {"remote_port": port}})
    try:
        t.add_domain("example.test")
        t.add_user(ALICE, PASSWORD)
        yield sink, t.start()
    finally:
        t.stop()
        hop.stop()


def submit(t, to, mail_options, rcpt_options, subject, body="The body of the message.\r\n"):
    msg = f"From: {ALICE}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.test>\r\n\r\n{body}"
    with smtplib.SMTP("127.0.0.1", t.submission_port, timeout=30) as s:
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [to], msg.encode(), mail_options=mail_options, rcpt_options=rcpt_options) == {}


def notices(t):
    """The delivery status notifications in alice's INBOX, parsed."""
    return [email.message_from_bytes(m) for m in t.messages(ALICE) if b"report-type=delivery-status" in m]


def status_fields(notice):
    """The per-recipient fields of the message/delivery-status part: [{field: value}] (RFC 3464 §2.3)."""
    part = next(p for p in notice.walk() if p.get_content_type() == "message/delivery-status")
    groups = part.get_payload()
    return [dict(g.items()) for g in groups[1:]], dict(groups[0].items())


def test_relayed_notice_from_a_next_hop_without_dsn_and_delivered_notice_locally(tmp_path, dns):
    with served(tmp_path, dns, offer_dsn=False) as (sink, t):
        submit(t, FRIEND, ["RET=HDRS", "ENVID=trip+2D1"], ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Friend@remote.test"], "relayed-1")
        wait_for(lambda: sink.envelopes, "the next hop to receive the message")
        # The next hop offered no DSN: nothing of the request went to it.
        env = sink.envelopes[0]
        assert env.rcpt_tos == [FRIEND] and not any("NOTIFY" in o or "ORCPT" in o for o in env.rcpt_options), env.rcpt_options
        assert not any("RET" in o or "ENVID" in o for o in env.mail_options), env.mail_options
        # So Tern tells the sender itself: "relayed", with the ENVID (xtext decoded), the ORCPT, the header only (RET=HDRS).
        notice = wait_for(lambda: notices(t), "the relayed notice")[0]
        recipients, per_message = status_fields(notice)
        assert per_message["Original-Envelope-Id"] == "trip-1", per_message
        assert recipients[0]["Action"] == "relayed" and recipients[0]["Final-Recipient"] == f"rfc822; {FRIEND}", recipients
        assert recipients[0]["Original-Recipient"] == "rfc822;Friend@remote.test" and recipients[0]["Status"].startswith("2."), recipients
        assert recipients[0]["Remote-MTA"] == "dns; mx.remote.test", recipients
        types = [p.get_content_type() for p in notice.walk()]
        assert "text/rfc822-headers" in types and "message/rfc822" not in types, types
        assert notice["Subject"] == "Successful Mail Delivery Report" and notice["Auto-Submitted"] == "auto-replied"

        # A local recipient with NOTIFY=SUCCESS and RET=FULL: "delivered", the whole message returned.
        submit(t, ALICE, ["RET=FULL"], ["NOTIFY=SUCCESS"], "local-1", body="Local body, returned whole.\r\n")
        delivered = wait_for(lambda: [n for n in notices(t) if "local-1" in n.as_string()], "the delivered notice")[0]
        recipients, _ = status_fields(delivered)
        assert [r["Action"] for r in recipients] == ["delivered"] and "Remote-MTA" not in recipients[0], recipients
        returned = next(p for p in delivered.walk() if p.get_content_type() == "message/rfc822")
        assert "Local body, returned whole." in returned.as_string()
        # Default NOTIFY (failure only): no notice for a success.
        submit(t, ALICE, [], [], "quiet-1")
        submit(t, FRIEND, [], ["NOTIFY=FAILURE"], "quiet-2")
        wait_for(lambda: len(sink.envelopes) == 2, "the second relayed message")
        wait_for(lambda: "the queue is empty" in t.run("queue", "list").stdout.decode(), "the queue to empty")
        assert len(notices(t)) == 2
        assert "notified" in t.run("trace", "relayed-1@example.test").stdout.decode()


def test_parameters_travel_to_a_next_hop_that_offers_dsn(tmp_path, dns):
    with served(tmp_path, dns, offer_dsn=True) as (sink, t):
        submit(t, FRIEND, ["RET=FULL", "ENVID=trip+2D2"], ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Friend@remote.test"], "passed-1")
        wait_for(lambda: sink.envelopes, "the next hop to receive the message")
        env = sink.envelopes[0]
        # aiosmtpd upper-cases the parameters it keeps.
        assert "RET=FULL" in env.mail_options and "ENVID=TRIP-2" in env.mail_options, env.mail_options
        assert "NOTIFY=SUCCESS,DELAY" in env.rcpt_options and "ORCPT=RFC822;FRIEND@REMOTE.TEST" in env.rcpt_options, env.rcpt_options
        # The next hop now owes the notices; Tern sends none and the queue empties.
        wait_for(lambda: "the queue is empty" in t.run("queue", "list").stdout.decode(), "the queue to empty")
        time.sleep(0.5)
        assert notices(t) == []
