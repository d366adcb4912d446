"""The journey of a message between two Tern servers for two domains, each on its own loopback address, with a real DNS
server (dnsmasq) publishing their MX, A and TXT (SPF, DKIM, DMARC) records: alice@a.test submits with smtplib, Tern A
finds b.test's MX and delivers, bob reads with imaplib, dkimpy verifies both DKIM signatures against the DNS, and bob's
reply travels back. Then the failure paths: an MX that does not answer, a 550, a null MX, and kill -9 with 500 queued."""
import email
import imaplib
import json
import os
import re
import smtplib
import time

import dkim
import dns.resolver
import pytest

from ternlib import DNSServer, Tern, tls_context

A_IP, B_IP, DEAD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.9"
PASSWORD = "journey-password-1"


def smtp_port():
    """Port 25 as in production when we may bind it; otherwise a fixed high port, dialled through delivery.remote_port."""
    return 25 if os.geteuid() == 0 else 2525


class World:
    """dnsmasq plus the two servers' directories; servers are made per test with the settings each test needs."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.dns_port = None
        self.dns = None
        self.txt = []

    def tern(self, name, domain, ip, user, settings=None):
        port = smtp_port()
        # The DNS server's port is known only once the records (made by the servers' own commands) are published.
        base = {"dns": {"nameservers": [f"127.0.0.1:{self.dns_port}"]} if self.dns_port else {}, "delivery": {"remote_port": port}}
        for k, v in (settings or {}).items():
            base.setdefault(k, {}).update(v)
        t = Tern(self.tmp / name, base, hostname=f"mx.{domain}", host=ip, listen={"smtp": f"{ip}:{port}"})
        if not (t.dir / "data").exists():
            t.add_domain(domain)
            t.add_user(f"{user}@{domain}", PASSWORD)
        return t


def start_dns(world, records):
    world.dns = DNSServer(world.tmp, [
        "--local=/test/",
        "--mx-host=a.test,mx.a.test,10", f"--host-record=mx.a.test,{A_IP}",
        "--mx-host=b.test,mx.b.test,10", f"--host-record=mx.b.test,{B_IP}",
        "--mx-host=down.test,mx.down.test,10", f"--host-record=mx.down.test,{DEAD_IP}",
        "--mx-host=nullmx.test,.,0", f"--host-record=nullmx.test,{B_IP}"], txt=records, probe="mx.a.test")
    world.dns_port = world.dns.port


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.dns_port = 0
    yield w
    if w.dns:
        w.dns.stop()


def setup_pair(world, a_settings=None, b_settings=None):
    """Makes both servers (domains, users, DKIM keys), publishes their records, starts DNS; returns (A, B) not started."""
    world.dns_port = 0
    a = world.tern("a", "a.test", A_IP, "alice", a_settings)
    b = world.tern("b", "b.test", B_IP, "bob", b_settings)
    records = a.txt_records("a.test") + b.txt_records("b.test")
    assert any("_domainkey" in n for n, _ in records)
    start_dns(world, records)
    # The config names the DNS server's port, known only now.
    for t in (a, b):
        t.settings.setdefault("dns", {})["nameservers"] = [f"127.0.0.1:{world.dns_port}"]
        t.write_config()
    world.records = records
    return a, b


def dns_txt(world):
    """dkimpy's DNS lookups, sent to the test's DNS server (dnspython)."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = world.dns_port

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = r.resolve(name.rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return None
        return b"".join(b"".join(rr.strings) for rr in answer)
    return lookup


def submit(tern, user, to, subject, body="Hello from the journey test.\r\n", port_attr="submission_port", extra_headers=""):
    msg = (f"From: {user}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n{extra_headers}"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
    with smtplib.SMTP(tern.host, getattr(tern, port_attr), timeout=30) as s:
        s.starttls(context=tls_context())
        s.login(user, PASSWORD)
        return s.sendmail(user, to, msg.encode())


def wait_for_mail(tern, user, count=1, timeout=30, mailbox="INBOX"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with imaplib.IMAP4(tern.host, tern.imap_port) as m:
            m.starttls(ssl_context=tls_context())
            m.login(user, PASSWORD)
            typ, data = m.select(mailbox)
            n = int(data[0])
            if n >= count:
                msgs = []
                typ, data = m.fetch(f"1:{n}", "(BODY.PEEK[])")
                for part in data:
                    if isinstance(part, tuple):
                        msgs.append(part[1])
                return msgs
        time.sleep(0.25)
    raise AssertionError(f"{user} has fewer than {count} messages after {timeout}s")


def verify_dkim(world, raw):
    """Every DKIM signature of the message, verified by dkimpy against the published keys: [(d, a, ok)]."""
    d = dkim.DKIM(raw)
    results = []
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    for i, sig in enumerate(sigs):
        tags = dict(t.strip().split(b"=", 1) for t in sig.replace(b"\r\n", b"").split(b";") if b"=" in t)
        results.append((tags[b"d"].strip().decode(), tags[b"a"].strip().decode(), d.verify(idx=i, dnsfunc=dns_txt(world))))
    return results


def test_journey_alice_to_bob_and_back(world):
    # A dials B from 127.0.0.1, which B would exempt from its checks as its own host's: here it checks everyone.
    a, b = setup_pair(world, b_settings={"checks": {"exempt_networks": []}})
    a.start()
    b.start()
    try:
        refused = submit(a, "alice@a.test", ["bob@b.test"], "Hello Bob")
        assert refused == {}
        [raw] = wait_for_mail(b, "bob@b.test")
        msg = email.message_from_bytes(raw)
        assert msg["Subject"] == "Hello Bob"
        # Tern A added what a submission server adds (RFC 6409 §8), and B saw the message arrive over TLS from A.
        assert msg["Message-ID"] and msg["Message-ID"].endswith("@mx.a.test>")
        assert msg["Date"]
        received = msg.get_all("Received")
        assert any("by mx.b.test" in r and "ESMTPS" in r for r in received), received
        assert any("by mx.a.test" in r and "ESMTPSA" in r for r in received), received
        results = verify_dkim(world, raw)
        assert sorted(a for _, a, _ in results) == ["ed25519-sha256", "rsa-sha256"]
        # B checked what arrived from A: both DKIM signatures and DMARC pass in its own header (SPF fails: A's
        # connection comes from 127.0.0.1, not from mx.a.test's 127.0.0.2; the aligned signatures carry DMARC).
        [ar] = [" ".join(v.split()) for v in msg.get_all("Authentication-Results")]
        assert ar.startswith("mx.b.test;") and "spf=fail" in ar and ar.count("dkim=pass") == 2 and "dmarc=pass" in ar, ar
        assert all(d == "a.test" and ok for d, _, ok in results), results

        # bob replies; the reply travels back through B's queue and A's port 25.
        submit(b, "bob@b.test", ["alice@a.test"], "Re: Hello Bob", extra_headers=f"In-Reply-To: {msg['Message-ID']}\r\n")
        [reply] = wait_for_mail(a, "alice@a.test")
        assert email.message_from_bytes(reply)["In-Reply-To"] == msg["Message-ID"]
        results = verify_dkim(world, reply)
        assert len(results) == 2 and all(d == "b.test" and ok for d, _, ok in results), results

        # A tampered copy fails in dkimpy: the signatures cover the body.
        assert dkim.verify(raw, dnsfunc=dns_txt(world))
        assert not dkim.verify(raw.replace(b"Hello from the journey", b"Hello from an attacker"), dnsfunc=dns_txt(world))
        assert not dkim.verify(raw.replace(b"Subject: Hello Bob", b"Subject: Hello Mallory"), dnsfunc=dns_txt(world))
        # Nothing left in either queue.
        assert "the queue is empty" in a.run("queue", "list").stdout.decode()
        assert "the queue is empty" in b.run("queue", "list").stdout.decode()
    finally:
        a.stop()
        b.stop()


def test_relay_network_sends_on_without_auth(world):
    """A client in relay.networks (Postfix's mynetworks: a web application, a printer) may send to other domains through
    port 25 without AUTH; its mail is prepared and DKIM-signed like submitted mail. Any other client is refused."""
    a, b = setup_pair(world, a_settings={"relay": {"networks": ["127.0.0.5/32"]}},
                      b_settings={"checks": {"exempt_networks": []}})
    a.start()
    b.start()
    try:
        order = b"From: Web Shop <shop@a.test>\r\nTo: bob@b.test\r\nSubject: Your order\r\n\r\nShipped today.\r\n"
        with smtplib.SMTP(A_IP, smtp_port(), timeout=30, source_address=("127.0.0.5", 0)) as s:
            assert s.sendmail("shop@a.test", ["bob@b.test"], order) == {}
        [raw] = wait_for_mail(b, "bob@b.test")
        msg = email.message_from_bytes(raw)
        assert msg["Subject"] == "Your order"
        # What submission adds: a Message-ID and Date, and A's signatures, which dkimpy verifies and B's DMARC accepts.
        assert msg["Message-ID"].endswith("@mx.a.test>") and msg["Date"]
        results = verify_dkim(world, raw)
        assert len(results) == 2 and all(d == "a.test" and ok for d, _, ok in results), results
        [ar] = [" ".join(v.split()) for v in msg.get_all("Authentication-Results")]
        assert "dmarc=pass" in ar, ar
        assert any("from [127.0.0.5]" in r or "[127.0.0.5]" in r for r in msg.get_all("Received")), msg.get_all("Received")
        trace = a.run("trace", msg["Message-ID"]).stdout.decode()
        assert "relay network" in trace and "bob@b.test" in trace, trace

        # Any other client may not relay (550 5.7.1), while mail for A's own users is still taken.
        with smtplib.SMTP(A_IP, smtp_port(), timeout=30, source_address=("127.0.0.6", 0)) as s:
            s.ehlo("elsewhere.test")
            assert s.mail("someone@nowhere.test")[0] == 250
            code, text = s.rcpt("bob@b.test")
            assert code == 550 and b"5.7.1" in text and b"Relay access denied" in text, (code, text)
            assert s.rcpt("alice@a.test")[0] == 250
        assert "the queue is empty" in a.run("queue", "list").stdout.decode()
    finally:
        a.stop()
        b.stop()


def test_sendmail_queue_is_delivered_by_the_running_server(world):
    """`tern sendmail` commits the message in another process; the running server's queue finds it and delivers it,
    signed for the From domain."""
    a, b = setup_pair(world, b_settings={"checks": {"exempt_networks": []}})
    a.start()
    b.start()
    try:
        r = a.run("sendmail", "-t", "-f", "alice@a.test",
                  input=b"From: alice@a.test\nTo: bob@b.test\nSubject: nightly report\n\nAll good.\n")
        assert r.returncode == 0, r.stderr
        [raw] = wait_for_mail(b, "bob@b.test")
        assert email.message_from_bytes(raw)["Subject"] == "nightly report"
        results = verify_dkim(world, raw)
        assert len(results) == 2 and all(d == "a.test" and ok for d, _, ok in results), results
        deadline = time.time() + 10
        while "the queue is empty" not in a.run("queue", "list").stdout.decode():
            assert time.time() < deadline, "the delivered message is still queued"
            time.sleep(0.2)
    finally:
        a.stop()
        b.stop()


def bounce_for(tern, user, timeout=30, count=1):
    """The delivery reports in the user's INBOX, once there are `count` of them (or `timeout` has passed)."""
    deadline = time.time() + timeout
    while True:
        msgs = wait_for_mail(tern, user, timeout=max(1, deadline - time.time()))
        bounces = [email.message_from_bytes(m) for m in msgs if b"multipart/report" in m]
        if len(bounces) >= count or time.time() >= deadline:
            break
        time.sleep(0.3)
    assert bounces, msgs
    return bounces


def report_fields(bounce):
    """The per-recipient fields of the message/delivery-status part."""
    for part in bounce.walk():
        if part.get_content_type() == "message/delivery-status":
            text = "\n".join(str(p) for p in part.get_payload())
            return text
    raise AssertionError("no delivery-status part")


def test_failures_unreachable_mx_550_and_null_mx(world):
    a, b = setup_pair(world, a_settings={"delivery": {"retry": ["1s"], "give_up_after": "4s"}, "log": {"level": "info"}})
    a.start()
    b.start()
    try:
        # A 550 from the remote: bounced at once, with B's words in the report.
        submit(a, "alice@a.test", ["nobody@b.test"], "To nobody")
        [bounce] = bounce_for(a, "alice@a.test", timeout=15)
        assert bounce["From"].startswith("Mail Delivery System")
        fields = report_fields(bounce)
        assert "Final-Recipient: rfc822; nobody@b.test" in fields and "Action: failed" in fields
        assert "Status: 5.1.1" in fields and "Remote-MTA: dns; mx.b.test" in fields, fields
        assert "Diagnostic-Code: smtp; 550 5.1.1" in fields
        # The original comes back whole (message/rfc822).
        assert any(p.get_content_type() == "message/rfc822" for p in bounce.walk())

        # A null MX: bounced at once, RFC 7505's 5.1.10.
        submit(a, "alice@a.test", ["someone@nullmx.test"], "To a null MX")
        bounces = bounce_for(a, "alice@a.test", timeout=15, count=2)
        assert "Status: 5.1.10" in report_fields(bounces[1])

        # An MX that never answers: retried every second, then bounced when give_up_after (4s) has passed.
        start = time.time()
        submit(a, "alice@a.test", ["someone@down.test"], "To a dead host")
        time.sleep(1.5)
        listing = a.run("queue", "list").stdout.decode()
        assert "someone@down.test  deferred" in listing and "last reply:" in listing, listing
        bounces = bounce_for(a, "alice@a.test", timeout=20 - (time.time() - start), count=3)
        assert len(bounces) == 3
        fields = report_fields(bounces[2])
        assert "Final-Recipient: rfc822; someone@down.test" in fields and "Action: failed" in fields
        assert time.time() - start >= 4
        log = (a.dir / "stderr.log").read_text()
        assert log.count("rcpt=someone@down.test") >= 3, log  # several attempts, each logged
        assert "the queue is empty" in a.run("queue", "list").stdout.decode()
    finally:
        a.stop()
        b.stop()


def test_trace_follows_a_message_through_both_servers(world):
    """tern trace, from the delivery log: on the sending side, received, queued, each attempt with the remote reply,
    delivered, failed, deferred, expired and the bounce (with its own queue id); on the receiving side, received,
    checked and stored, found by the same Message-ID."""
    a, b = setup_pair(world, a_settings={"delivery": {"retry": ["1s"], "give_up_after": "4s"}},
                      b_settings={"checks": {"exempt_networks": []}})
    a.start()
    b.start()
    try:
        submit(a, "alice@a.test", ["bob@b.test", "nobody@b.test", "someone@down.test"], "Traced",
               extra_headers="Message-ID: <trace-1@a.test>\r\n")
        bounce_for(a, "alice@a.test", timeout=20)
        wait_for_mail(b, "bob@b.test")
        out = a.run("trace", "<trace-1@a.test>").stdout.decode()
        first, second = out.strip().split("\n\n")
        queue_id = re.match(r"queue id (\w+)  Message-ID <trace-1@a.test>", first).group(1)
        events = [line.split(None, 4)[3:] for line in first.splitlines()[1:]]
        kinds = [k for k, _ in events]
        assert kinds[:2] == ["received", "queued"] and kinds[-1] == "bounced", out
        detail = dict((k, d) for k, d in events if k in ("received", "queued", "delivered", "failed", "expired", "bounced"))
        assert detail["received"].startswith(f"from ") and "over submission (ESMTPSA), authenticated as alice@a.test" in detail["received"], out
        assert "MAIL FROM <alice@a.test>, 3 recipients" in detail["received"], out
        assert detail["queued"] == "for <bob@b.test>, <nobody@b.test>, <someone@down.test>", out
        assert detail["delivered"].startswith("<bob@b.test> via mx.b.test") and ": 250 " in detail["delivered"] and "(TLS)" in detail["delivered"], out
        assert detail["failed"].startswith("<nobody@b.test> via mx.b.test") and "550 5.1.1" in detail["failed"], out
        assert kinds.count("deferred") >= 2 and "expired" in kinds and detail["expired"].startswith("<someone@down.test>"), out
        bounce_id = re.search(r"sent to <alice@a.test> as (\w+)", detail["bounced"]).group(1)
        # The bounce has its own queue id, received from MAILER-DAEMON and stored in alice's INBOX.
        assert second.startswith(f"queue id {bounce_id}\n") and f"about {queue_id}, from MAILER-DAEMON@mx.a.test" in second, out
        assert "stored     <alice@a.test> in INBOX" in second, out
        # The same id as JSON; and by queue id instead of Message-ID.
        as_json = json.loads(a.run("trace", queue_id, "--json").stdout)
        assert [e["event"] for e in as_json if e["queueID"] == queue_id] == kinds
        assert as_json[0]["messageID"] == "trace-1@a.test"

        # B found it by the same Message-ID (no brackets): received over SMTP from A (which dials from 127.0.0.1; only
        # bob@b.test was accepted at RCPT), checked, stored.
        out = b.run("trace", "trace-1@a.test").stdout.decode()
        lines = out.splitlines()
        assert re.search(r"received   from mx\.a\.test \[127\.0\.0\.1\] over SMTP \(ESMTPS\), MAIL FROM <alice@a.test>, 1 recipient, \d+ octets", lines[1]), out
        # SPF fails (A's mail leaves from 127.0.0.1, not the 127.0.0.2 it publishes); its DKIM signatures carry DMARC.
        assert re.search(r"checked    spf=fail dkim=pass,pass dmarc=pass iprev=\w+ spam=-?[\d.]+$", lines[2]), out
        assert lines[3].endswith("stored     <bob@b.test> in INBOX"), out

        r = a.run("trace", "<nothing@a.test>", check=False)
        assert r.returncode == 1 and b"nothing in the delivery log" in r.stderr
    finally:
        a.stop()
        b.stop()


def test_kill9_with_500_queued_while_the_remote_is_down(world):
    a, b = setup_pair(world, a_settings={"delivery": {"retry": ["1s"], "give_up_after": "1h"}})
    a.start()
    # B is down: everything stays queued at A.
    n = 500
    with smtplib.SMTP(a.host, a.submission_port, timeout=60) as s:
        s.login("alice@a.test", PASSWORD)
        for i in range(n):
            s.sendmail("alice@a.test", ["bob@b.test"], f"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: number {i}\r\n\r\nbody {i}\r\n".encode())
    a.kill9()
    listing = a.run("queue", "list", "--json").stdout.decode().splitlines()
    assert len(listing) == n
    b.start()
    a.start()
    try:
        msgs = wait_for_mail(b, "bob@b.test", count=n, timeout=120)
        time.sleep(2)  # anything duplicated would arrive by now
        msgs = wait_for_mail(b, "bob@b.test", count=n)
        subjects = sorted(email.message_from_bytes(m)["Subject"] for m in msgs)
        assert subjects == sorted(f"number {i}" for i in range(n))
        deadline = time.time() + 10
        while "the queue is empty" not in a.run("queue", "list").stdout.decode() and time.time() < deadline:
            time.sleep(0.3)
        assert "the queue is empty" in a.run("queue", "list").stdout.decode()
    finally:
        a.stop()
        b.stop()


def test_delay_notice_and_queue_commands(world):
    a, b = setup_pair(world, a_settings={"delivery": {"retry": ["1s"], "give_up_after": "1h", "delay_notice": "2s"}})
    a.start()
    try:
        submit(a, "alice@a.test", ["someone@down.test"], "Waiting")
        # One "still trying" notice after 2s (RFC 3464 Action: delayed), and only one.
        [notice] = bounce_for(a, "alice@a.test", timeout=20)
        assert notice["Subject"].startswith("Delayed Mail")
        fields = report_fields(notice)
        assert "Action: delayed" in fields and "Will-Retry-Until:" in fields, fields
        time.sleep(2.5)
        assert len(wait_for_mail(a, "alice@a.test")) == 1

        queued = [l for l in a.run("queue", "list", "--json").stdout.decode().splitlines() if "down.test" in l]
        assert len(queued) == 1
        qid = re.search(r'"id": ?"([^"]+)"', queued[0]).group(1)
        shown = a.run("queue", "show", qid).stdout.decode()
        assert "recipient    someone@down.test" in shown and "state      deferred" in shown and "Subject: Waiting" in shown, shown
        assert "last reply" in shown
        assert "1 message due now" in a.run("queue", "retry", qid).stdout.decode()
        assert a.run("queue", "show", "NOSUCHID", check=False).returncode != 0
        assert f"deleted {qid}" in a.run("queue", "delete", qid).stdout.decode()
        assert "the queue is empty" in a.run("queue", "list").stdout.decode()
        time.sleep(1.5)
        assert len(wait_for_mail(a, "alice@a.test")) == 1  # deleted without a bounce
        # The delivery log has the delay notice and the deletion.
        trace = a.run("trace", qid).stdout.decode()
        assert re.search(r"delayed    delay notice \(still trying: <someone@down.test>\) sent to <alice@a.test> as \w+", trace), trace
        assert "deleted    removed from the queue by tern queue delete; no bounce sent" in trace, trace
    finally:
        a.stop()


def test_dns_records_for_a_domain(world):
    a = world.tern("a", "a.test", A_IP, "alice")
    text = a.run("dns-records", "a.test", "--ipv4", "203.0.113.7", "--ipv6", "2001:db8::7").stdout.decode()
    for line in ["a.test.\t3600\tIN\tMX\t10 mx.a.test.", "mx.a.test.\t3600\tIN\tA\t203.0.113.7",
                 "mx.a.test.\t3600\tIN\tAAAA\t2001:db8::7", 'a.test.\t3600\tIN\tTXT\t"v=spf1 mx -all"',
                 '_dmarc.a.test.\t3600\tIN\tTXT\t"v=DMARC1; p=none; rua=mailto:postmaster@a.test; adkim=s; aspf=s"',
                 '_smtp._tls.a.test.\t3600\tIN\tTXT\t"v=TLSRPTv1; rua=mailto:postmaster@a.test"',
                 "7.113.0.203.in-addr.arpa.\t3600\tIN\tPTR\tmx.a.test.",
                 "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.\t3600\tIN\tPTR\tmx.a.test."]:
        assert line in text, (line, text)
    assert "_mta-sts.a.test.\t3600\tIN\tTXT\t\"v=STSv1; id=" in text
    # Both DKIM keys, as the records a verifier fetches: RSA (SubjectPublicKeyInfo, split into 255-octet strings) and Ed25519.
    records = dict(a.txt_records("a.test"))
    dkim_records = {n: v for n, v in records.items() if "._domainkey." in n}
    assert len(dkim_records) == 2
    assert any(v.startswith("v=DKIM1; k=rsa; p=MIIBIjAN") for v in dkim_records.values())
    assert any(v.startswith("v=DKIM1; k=ed25519; p=") and len(v.split("p=")[1]) == 44 for v in dkim_records.values())
    # A new pair: the newest one signs; both stay listed.
    out = a.run("dkim", "generate", "a.test").stdout.decode()
    assert out.count("._domainkey.a.test.") == 2
    assert len(a.run("dkim", "list", "a.test").stdout.decode().splitlines()) == 4


def test_sieve_vacation_reply_reaches_the_other_server_once_and_reject_is_a_550(world, tmp_path):
    """Sieve between two servers (issue 22): alice@a.test is away; bob@b.test writes twice through his server and gets
    exactly one reply, DKIM-signed by a.test (dkimpy checks it against the DNS). A message alice's script rejects is
    refused with 550 at SMTP time."""
    a, b = setup_pair(world, a_settings={"delivery": {"retry": ["1s"]}}, b_settings={"delivery": {"retry": ["1s"]}})
    script = tmp_path / "away.sieve"
    script.write_text('require ["vacation", "reject"];\n'
                      'if header :is "subject" "unwanted" { reject "Alice does not want this."; stop; }\n'
                      'vacation :days 7 "I am away until Monday; your mail waits for me.";\n')
    a.run("sieve", "put", "alice@a.test", "away", str(script))
    a.run("sieve", "activate", "alice@a.test", "away")
    a.start()
    b.start()
    try:
        submit(b, "bob@b.test", ["alice@a.test"], "lunch?")
        submit(b, "bob@b.test", ["alice@a.test"], "lunch? (again)")
        assert len(wait_for_mail(a, "alice@a.test", count=2)) == 2
        replies = wait_for_mail(b, "bob@b.test", count=1)
        time.sleep(3)   # time for a second reply, were one sent
        replies = wait_for_mail(b, "bob@b.test", count=1)
        assert len(replies) == 1, [r[:300] for r in replies]
        reply = email.message_from_bytes(replies[0])
        assert reply["Subject"] == "Auto: lunch?" and reply["Auto-Submitted"].startswith("auto-replied")
        assert reply["From"] == "<alice@a.test>" and reply["In-Reply-To"]
        assert "I am away until Monday" in reply.get_payload(decode=True).decode()
        assert ("a.test", "rsa-sha256", True) in verify_dkim(world, replies[0])

        with smtplib.SMTP(a.host, a.smtp_port, timeout=30) as s:
            s.ehlo("mx.b.test")
            s.mail("bob@b.test")
            s.rcpt("alice@a.test")
            code, text = s.data(b"From: bob@b.test\r\nTo: alice@a.test\r\nSubject: unwanted\r\n\r\nbuy now\r\n")
        assert code == 550 and text.decode() == "5.7.1 Alice does not want this."
        assert len(wait_for_mail(a, "alice@a.test", count=2)) == 2
    finally:
        a.stop()
        b.stop()
