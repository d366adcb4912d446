"""Checks on port 25 against a real DNS server (dnsmasq) on loopback: SPF, DKIM (messages signed by dkimpy with RSA and
Ed25519), DMARC for each policy and alignment, Authentication-Results (and removal of forged ones), reverse DNS, DNS
blocklists, greylisting and rate limits; `tern check message` and `tern psl update`.

Senders connect from 127.0.0.2 (good.test's published address) or other 127/8 addresses, never from 127.0.0.1, which
the default config exempts from checks as this host's own programs."""
import base64
import http.server
import re
import smtplib
import threading
import time

import dkim
import nacl.signing
import pytest

from ternlib import DNSServer, Tern, date_now, rsa_key

GOOD_IP, OTHER_IP, LISTED_IP, NOPTR_IP = "127.0.0.2", "127.0.0.7", "127.0.0.5", "127.0.0.8"
RCPT = "bob@example.test"
PASSWORD = "inbound-password-1"


class Zone:
    """dnsmasq serving the sender domains' records."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.rsa_private, rsa_public = rsa_key(tmp)
        seed = nacl.signing.SigningKey.generate()
        self.ed_private = base64.b64encode(bytes(seed))
        ed_public = base64.b64encode(bytes(seed.verify_key)).decode()
        self.txt = [
            ("good.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("rsa._domainkey.good.test", f"v=DKIM1; k=rsa; p={rsa_public}"),
            ("ed._domainkey.good.test", f"v=DKIM1; k=ed25519; p={ed_public}"),
            ("_dmarc.good.test", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"),
            ("quarantine.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("_dmarc.quarantine.test", "v=DMARC1; p=quarantine"),
            ("watch.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("_dmarc.watch.test", "v=DMARC1; p=none"),
            ("sampled.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("_dmarc.sampled.test", "v=DMARC1; p=reject; pct=0"),
            ("strict.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s"),
            ("bounce.strict.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("5.0.0.127.bl.test", "Listed for testing"),
            ("mx.good.test", "v=spf1 a -all"),
            ("liar.good.test", "v=spf1 a -all"),
        ]
        self.dns = DNSServer(tmp, [
            "--local=/test/", "--local=/in-addr.arpa/",
            f"--host-record=mx.good.test,{GOOD_IP}", "--ptr-record=2.0.0.127.in-addr.arpa,mx.good.test",
            "--ptr-record=7.0.0.127.in-addr.arpa,liar.good.test", "--host-record=liar.good.test,127.0.0.99",
            "--address=/5.0.0.127.bl.test/127.0.0.2"], txt=self.txt, probe="mx.good.test")
        self.port = self.dns.port

    def sign(self, message, domain="good.test", algorithm="rsa"):
        """The message with a dkimpy DKIM-Signature field in front."""
        if algorithm == "rsa":
            return dkim.sign(message, b"rsa", domain.encode(), self.rsa_private, include_headers=[b"from", b"to", b"subject"]) + message
        return dkim.sign(message, b"ed", domain.encode(), self.ed_private, signature_algorithm=b"ed25519-sha256",
                         include_headers=[b"from", b"to", b"subject"]) + message

    def stop(self):
        self.dns.stop()


@pytest.fixture
def zone(tmp_path):
    z = Zone(tmp_path)
    yield z
    z.stop()


def server(tmp_path, zone, name="tern", **checks):
    settings = {"dns": {"nameservers": [f"127.0.0.1:{zone.port}"]}, "checks": {"blocklists": ["bl.test"]}}
    for key, value in checks.items():
        table, _, field = key.partition("__")
        settings.setdefault(table, {})[field] = value
    t = Tern(tmp_path / name, settings, hostname="mx.example.test")
    t.add_domain("example.test")
    t.add_user(RCPT, PASSWORD)
    return t.start()


def message(sender, subject, body="Hello, this is a test message.\r\n"):
    return (f"From: Sender <{sender}>\r\nTo: {RCPT}\r\nSubject: {subject}\r\nMessage-ID: <{time.time()}@x>\r\n"
            f"Date: {date_now()}\r\n\r\n{body}").encode()


def send(tern, source_ip, mail_from, raw):
    """Sends over port 25 from `source_ip`; returns (code, text) of the DATA reply or of the first refusal."""
    with smtplib.SMTP(tern.host, tern.smtp_port, source_address=(source_ip, 0), timeout=30) as s:
        s.ehlo("mx.good.test")
        code, text = s.mail(mail_from)
        if code != 250:
            return code, text.decode()
        code, text = s.rcpt(RCPT)
        if code != 250:
            return code, text.decode()
        code, text = s.data(raw)
        return code, text.decode()


def stored(tern, mailbox=None):
    return tern.messages(RCPT, mailbox=mailbox)


def auth_results(raw):
    """The Authentication-Results fields, unfolded."""
    import email
    msg = email.message_from_bytes(raw)
    return [" ".join(str(v).split()) for v in msg.get_all("Authentication-Results") or []]


def test_spf_dkim_dmarc_results_and_policies(tmp_path, zone):
    t = server(tmp_path, zone)
    try:
        # dkimpy-signed, RSA and Ed25519, sent from the SPF-authorized address: all pass.
        raw = zone.sign(message("alice@good.test", "rsa signed"))
        raw = zone.sign(raw, algorithm="ed")
        assert send(t, GOOD_IP, "alice@good.test", raw)[0] == 250
        [got] = stored(t)
        [ar] = auth_results(got)
        assert ar.startswith("mx.example.test;"), ar
        assert "iprev=pass policy.iprev=127.0.0.2 (mx.good.test)" in ar
        assert "spf=pass" in ar and "smtp.mailfrom=alice@good.test" in ar
        # The HELO name has an SPF result of its own (mx.good.test: "v=spf1 a -all", and its A is the client).
        assert "spf=pass (HELO: matched a at mx.good.test) smtp.helo=mx.good.test" in ar, ar
        assert ar.count("dkim=pass") == 2 and "header.a=rsa-sha256" in ar and "header.a=ed25519-sha256" in ar, ar
        assert "dmarc=pass" in ar and "header.from=good.test" in ar
        # What was signed is still intact: dkimpy verifies the stored copy (Tern's added fields are not signed).
        assert dkim.verify(got, dnsfunc=lambda n, timeout=5: dict(zone.txt).get(n.decode().rstrip("."), "").encode() or None)

        # Tampered in transit, from an address SPF does not allow, with p=reject: refused at the end of DATA.
        tampered = zone.sign(message("alice@good.test", "tampered")).replace(b"Hello, this", b"Hello, that")
        code, text = send(t, OTHER_IP, "alice@good.test", tampered)
        assert code == 550 and "5.7.1" in text and "DMARC" in text, (code, text)
        # The delivery log has the refusal, found by the message's Message-ID.
        mid = re.search(rb"Message-ID: <([^>]+)>", tampered).group(1).decode()
        out = t.run("trace", mid).stdout.decode()
        assert re.search(r"checked    spf=fail dkim=fail dmarc=fail", out) and "refused    550 5.7.1" in out, out

        # The same failure under p=quarantine: delivered, into Junk.
        code, _ = send(t, OTHER_IP, "alice@quarantine.test", message("alice@quarantine.test", "quarantined"))
        assert code == 250
        [junk] = stored(t, "Junk")
        assert b"Subject: quarantined" in junk
        assert "dmarc=fail (p=quarantine dis=quarantine)" in auth_results(junk)[0]
        assert "spf=fail" in auth_results(junk)[0]
        assert "spf=fail (HELO: " in auth_results(junk)[0], junk

        # p=none: delivered to INBOX with dmarc=fail recorded.
        assert send(t, OTHER_IP, "alice@watch.test", message("alice@watch.test", "watched"))[0] == 250
        # pct=0 with p=reject: sampled out, so one step gentler (quarantine → Junk), not refused.
        assert send(t, OTHER_IP, "alice@sampled.test", message("alice@sampled.test", "sampled"))[0] == 250
        # Strict SPF alignment: SPF passes for bounce.strict.test, but that is not strict.test: refused.
        code, text = send(t, GOOD_IP, "x@bounce.strict.test", message("alice@strict.test", "strict"))
        assert code == 550, (code, text)
        # Relaxed (the default): the same shape passes for good.test via a subdomain envelope? good.test has no
        # subdomain SPF, so aligned SPF is shown with the domain itself and no DKIM.
        assert send(t, GOOD_IP, "news@good.test", message("alice@good.test", "spf aligned only"))[0] == 250

        # A HELO name the client may not use, with a MAIL FROM it may: SPF_HELO_FAIL in the spam score.
        with smtplib.SMTP(t.host, t.smtp_port, source_address=(GOOD_IP, 0), timeout=30) as s:
            s.ehlo("liar.good.test")
            s.sendmail("alice@good.test", [RCPT], message("alice@good.test", "helo liar"))
        # A null sender (a bounce): the MAIL FROM check is the HELO check, reported once.
        assert send(t, GOOD_IP, "", message("MAILER-DAEMON@good.test", "bounce"))[0] == 250

        inbox = stored(t)
        subjects = [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in inbox]
        assert subjects == [b"rsa signed", b"watched", b"spf aligned only", b"helo liar", b"bounce"], subjects
        [liar_ar] = auth_results(inbox[3])
        assert "spf=pass (matched ip4" in liar_ar and "spf=fail (HELO: " in liar_ar and "smtp.helo=liar.good.test" in liar_ar, liar_ar
        assert b"SPF_HELO_FAIL" in inbox[3], inbox[3]
        [bounce_ar] = auth_results(inbox[4])
        assert bounce_ar.count("spf=") == 1 and "spf=pass" in bounce_ar and "smtp.helo=mx.good.test" in bounce_ar, bounce_ar
        assert "dmarc=fail (p=none dis=none)" in auth_results(inbox[1])[0]
        assert "dmarc=pass" in auth_results(inbox[2])[0] and "dkim=" not in auth_results(inbox[2])[0]
        assert [b"quarantined", b"sampled"] == [m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in stored(t, "Junk")]
    finally:
        t.stop()


def test_forged_authentication_results_are_removed(tmp_path, zone):
    t = server(tmp_path, zone)
    try:
        raw = (b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.example; dmarc=pass\r\n"
               b"X-Spam: no, score=-50.0\r\nX-Spam-Status: No\r\n" + message("alice@good.test", "forged"))
        assert send(t, GOOD_IP, "alice@good.test", raw)[0] == 250
        [got] = stored(t)
        ars = auth_results(got)
        assert len(ars) == 1 and "bank.example" not in ars[0] and "spf=pass" in ars[0], ars
        assert b"score=-50.0" not in got and b"X-Spam-Status" not in got
        # Tern's own spam verdict is there once, with what fired (SPF and DKIM passes count slightly in favour).
        assert got.count(b"\r\nX-Spam: ") == 1 and b"X-Spam: no, score=-0.1 required=5.0" in got, got
        assert b"Subject: forged" in got
    finally:
        t.stop()


def test_reverse_dns_and_blocklist(tmp_path, zone):
    t = server(tmp_path, zone, checks__require_reverse_dns=True)
    try:
        # Listed in bl.test: refused at MAIL FROM with the zone named.
        code, text = send(t, LISTED_IP, "alice@good.test", message("alice@good.test", "listed"))
        assert code == 554 and "bl.test" in text, (code, text)
        # A PTR that does not resolve back, and no PTR at all: 550 5.7.25 (RFC 7372).
        code, text = send(t, OTHER_IP, "alice@good.test", message("alice@good.test", "liar"))
        assert code == 550 and "5.7.25" in text, (code, text)
        code, text = send(t, NOPTR_IP, "alice@good.test", message("alice@good.test", "noptr"))
        assert code == 550 and "5.7.25" in text, (code, text)
        # Forward-confirmed: accepted.
        assert send(t, GOOD_IP, "alice@good.test", message("alice@good.test", "confirmed"))[0] == 250
        # The host's own programs (127.0.0.1) are exempt: accepted as they are, nothing checked or added.
        assert send(t, "127.0.0.1", "alice@good.test", message("alice@good.test", "local"))[0] == 250
        msgs = stored(t)
        assert len(msgs) == 2
        assert "iprev=pass" in auth_results(msgs[0])[0]
        assert auth_results(msgs[1]) == []
    finally:
        t.stop()


def test_greylisting_and_rate_limits(tmp_path, zone):
    t = server(tmp_path, zone, greylisting__enabled=True, greylisting__delay="2s", checks__rate_per_client=3)
    try:
        raw = message("alice@good.test", "greylisted")
        code, text = send(t, GOOD_IP, "alice@good.test", raw)
        assert code == 451 and "4.7.1" in text and "Greylisted" in text, (code, text)
        # Too early: still greylisted.
        assert send(t, GOOD_IP, "alice@good.test", raw)[0] == 451
        time.sleep(2.2)
        assert send(t, GOOD_IP, "alice@good.test", raw)[0] == 250
        # The rate limit (3 per hour) counted every MAIL FROM: the fourth is deferred.
        code, text = send(t, GOOD_IP, "alice@good.test", raw)
        assert code == 451 and "Too many messages" in text, (code, text)
        # Another client is not affected by the first one's count, but is greylisted on its own.
        assert send(t, "127.0.0.3", "alice@good.test", raw)[0] == 451
        assert len(stored(t)) == 1
    finally:
        t.stop()


def test_delivery_log_retention(tmp_path, zone):
    """log.delivery_retention: events older than it are removed (at start and hourly)."""
    t = server(tmp_path, zone, log__delivery_retention="2s")
    try:
        raw = message("alice@good.test", "kept a while")
        assert send(t, GOOD_IP, "alice@good.test", raw)[0] == 250
        mid = re.search(rb"Message-ID: <([^>]+)>", raw).group(1).decode()
        assert "stored     <bob@example.test> in INBOX" in t.run("trace", mid).stdout.decode()
        t.stop()
        time.sleep(2.5)
        t.start()
        deadline = time.time() + 10
        while t.run("trace", mid, check=False).returncode == 0:
            assert time.time() < deadline, "the delivery log was not pruned"
            time.sleep(0.2)
    finally:
        t.stop()


def test_check_message_command(tmp_path, zone):
    t = server(tmp_path, zone)
    t.stop()
    raw = zone.sign(message("alice@good.test", "saved"), algorithm="ed")
    path = tmp_path / "saved.eml"
    path.write_bytes(raw.replace(b"\r\n", b"\n"))
    out = t.run("check", "message", str(path), "--ip", GOOD_IP, "--helo", "mx.good.test", "--mail-from", "alice@good.test").stdout.decode()
    assert "spf        pass" in out and "dkim       pass  d=good.test s=ed a=ed25519-sha256" in out, out
    assert "dmarc      pass" in out and "verdict    accept" in out, out
    # The same file with its body changed, from a client SPF does not allow: DMARC fails and p=reject refuses.
    path.write_bytes(raw.replace(b"Hello, this", b"Hello, that").replace(b"\r\n", b"\n"))
    out = t.run("check", "message", str(path), "--ip", OTHER_IP, "--mail-from", "alice@good.test").stdout.decode()
    assert "dkim       fail" in out and "spf        fail" in out and "iprev      fail" in out, out
    assert "refused at end of DATA: 550 5.7.1" in out, out
    # Without --ip: the client address comes from the newest Received field.
    path.write_bytes(b"Return-Path: <alice@good.test>\nReceived: from mx.good.test (mx.good.test [127.0.0.2])\n\tby mx.example.test; "
                     + date_now(60).encode() + b"\n" + raw.replace(b"\r\n", b"\n"))
    out = t.run("check", "message", str(path)).stdout.decode()
    assert "client     127.0.0.2  helo mx.good.test  mail from <alice@good.test>" in out and "spf        pass" in out, out
    assert "spf helo   pass" in out, out
    assert "Received path (oldest first)" in out and "Deliverability score: 10.0/10" in out and "nothing to fix" in out, out
    assert "Header (RFC 5322)\n  no problems" in out, out
    # Three hops, the middle one slow, and a header with problems; unsigned, from an address SPF does not allow.
    path.write_bytes(
        b"Received: from relay.example.test (relay.example.test [127.0.0.2])\n\tby mx.example.test with ESMTPS id 3;\n"
        b"\tTue, 24 Nov 2026 12:05:09 +0000\n"
        b"Received: from laptop (host.isp.test [127.0.0.5])\n\tby relay.example.test with ESMTPSA id 2;\n"
        b"\tTue, 24 Nov 2026 10:00:02 +0000\n"
        b"From: Alice <alice@good.test>\nTo: bob@example.test\nSubject: one\nSubject: two\n"
        b"Date: Tue, 24 Nov 2026 10:00:00 GMT\n\nHello\n")
    out = t.run("check", "message", str(path), "--ip", OTHER_IP, "--mail-from", "alice@good.test").stdout.decode()
    hops = [l.split() for l in out.splitlines() if l.startswith("  1 ") or l.startswith("  2 ")]
    assert hops[0][:4] == ["1", "laptop", "[127.0.0.5]", "relay.example.test"] and hops[0][-2:] == ["2", "s"], out
    assert hops[1][:4] == ["2", "relay.example.test", "[127.0.0.2]", "mx.example.test"] and hops[1][-4:] == ["2", "h", "5", "min"], out
    assert "longest delay: 2 h 5 min at hop 2 (relay.example.test to mx.example.test)" in out, out
    assert "ERROR   Subject: 2 Subject fields: RFC 5322 §3.6 allows one" in out, out
    assert "warning Message-ID: no Message-ID field" in out and "warning Date:" in out, out
    score = float(re.search(r"Deliverability score: ([\d.]+)/10", out).group(1))
    fixes = out.split("what to fix first:")[1]
    # The largest deductions first: SPF fails (3) before DMARC (2.5) before the missing signature (1.5).
    assert fixes.index("SPF fails") < fixes.index("DMARC fails") < fixes.index("no DKIM signature"), out
    assert score <= 10 - 3 - 2.5 - 1.5 - 1, out



def test_check_message_reads_mbox_files(tmp_path, zone):
    """An mbox file (a leading From line, several messages) is checked message by message; control bytes from a
    crafted header reach the terminal as \\xNN, never raw."""
    t = server(tmp_path, zone)
    t.stop()
    signed = zone.sign(message("alice@good.test", "first"), algorithm="ed").replace(b"\r\n", b"\n")
    crafted = (b"Received: from evil\x1b]0;owned\x07 (host.evil.test [127.0.0.9])\n\tby mx.example.test; Tue, 24 Nov 2026 10:00:05 +0000\n"
               b"From: Mallory <alice@good.test>\nTo: bob@example.test\nSubject: \x1b]0;owned\x07 hi\x00\n"
               b"Date: Tue, 24 Nov 2026 10:00:00 GMT\nMessage-ID: <m2@good.test>\n\nFrom the body, quoted\n")
    mbox = (b"From alice@good.test Tue Nov 24 10:00:00 2026\n" + signed + b"\n"
            + b"From alice@good.test Tue Nov 24 10:01:00 2026\n" + crafted.replace(b"\nFrom the", b"\n>From the") + b"\n")
    path = tmp_path / "two.mbox"
    path.write_bytes(mbox)
    r = t.run("check", "message", str(path), "--ip", GOOD_IP, "--helo", "mx.good.test", "--mail-from", "alice@good.test")
    out = r.stdout
    text = out.decode()
    assert "=== message 1 of 2" in text and "=== message 2 of 2" in text, text
    first, second = text.split("=== message 2 of 2")
    # The From line is not taken for a header field: the first message's signature still verifies.
    assert "dkim       pass  d=good.test s=ed" in first and "dmarc      pass" in first, first
    assert "dkim       none" in second or "no DKIM signature" in second, second
    assert b"\x1b" not in out and b"\x07" not in out and b"\x00" not in out, out
    assert "evil\\x1B]0;owned\\x07" in second, second
    # A single-message mbox file is one message, its From line dropped.
    one = tmp_path / "one.mbox"
    one.write_bytes(b"From alice@good.test Tue Nov 24 10:00:00 2026\n" + signed)
    text = t.run("check", "message", str(one), "--ip", GOOD_IP, "--helo", "mx.good.test", "--mail-from", "alice@good.test").stdout.decode()
    assert "=== message" not in text and "dkim       pass  d=good.test s=ed" in text, text
    assert "From alice@good.test Tue" not in text, text

def test_psl_update(tmp_path):
    t = Tern(tmp_path / "psl")
    builtin = t.run("psl", "show", "a.b.example.co.uk").stdout.decode()
    assert "built-in" in builtin and "organizational domain example.co.uk" in builtin
    # Served over HTTP on loopback: a list in which co.uk is not a suffix but b.example.co.uk's parent is.
    rules = "\n".join(["// test list", "uk", "example.co.uk"] + [f"filler{i}.example" for i in range(1200)]) + "\n"
    (tmp_path / "list.dat").write_text(rules)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/list.dat"
        out = t.run("psl", "update", "--url", url).stdout.decode()
        assert "1202 rules" in out, out
        shown = t.run("psl", "show", "a.b.example.co.uk").stdout.decode()
        assert "public_suffix_list.dat" in shown and "organizational domain b.example.co.uk" in shown, shown
        # Something that is not a list is refused and changes nothing.
        (tmp_path / "bad.dat").write_text("<html>not found</html>\n")
        r = t.run("psl", "update", "--url", url.replace("list.dat", "bad.dat"), check=False)
        assert r.returncode != 0 and b"not a Public Suffix List" in r.stderr
        assert "organizational domain b.example.co.uk" in t.run("psl", "show", "a.b.example.co.uk").stdout.decode()
    finally:
        httpd.shutdown()


def test_spam_score_header_junk_and_reject(tmp_path, zone):
    t = server(tmp_path, zone, spam__junk_score=3.0, spam__reject_score=6.5)
    try:
        def spammy(subject, link):
            return (f"From: Bank <alice@good.test>\r\nTo: {RCPT}\r\nSubject: {subject}\r\nContent-Type: text/html\r\n\r\n"
                    f"<p>Dear customer, {link}</p>\r\n").encode()
        # All capitals, HTML only, no Date or Message-ID, "Dear customer" (the untrained filter's points): over the
        # Junk threshold.
        assert send(t, GOOD_IP, "alice@good.test", spammy("VERIFY YOUR ACCOUNT", "please sign in"))[0] == 250
        [junk] = stored(t, "Junk")
        assert b"X-Spam: yes, score=5.6 required=3.0" in junk, junk
        assert b"tests=MISSING_DATE,MISSING_MID,SUBJ_ALL_CAPS,HTML_ONLY,DEAR_SOMEONE,SPF_PASS" in junk, junk
        # Plus a link that goes to a bare IP: over the refusal threshold.
        link = '<a href="http://192.0.2.7/login">https://www.bank.example/login</a>'
        code, text = send(t, GOOD_IP, "alice@good.test", spammy("VERIFY YOUR ACCOUNT", link))
        assert code == 550 and "5.7.1" in text and "spam" in text and "6.7" in text, (code, text)
        # A plain message stays in INBOX, marked as not spam.
        assert send(t, GOOD_IP, "alice@good.test", message("alice@good.test", "plain"))[0] == 250
        [inbox] = stored(t)
        assert b"X-Spam: no, score=-0.1" in inbox
        # tern check message shows the rules with their points.
        path = tmp_path / "spam.eml"
        path.write_bytes(spammy("VERIFY YOUR ACCOUNT", link))
        out = t.run("check", "message", str(path), "--ip", GOOD_IP, "--mail-from", "alice@good.test").stdout.decode()
        assert "spam       score 6.7 (Junk from 3.0, refused from 6.5)" in out, out
        assert "+1.1  URL_NUMERIC_IP" in out and "refused at end of DATA: 550 5.7.1" in out, out
    finally:
        t.stop()


def write_corpus(folder, count, text):
    """`count` message files in a new `folder`, the i-th one `text(i)`."""
    folder.mkdir()
    for i in range(count):
        (folder / f"{i}.eml").write_text(text(i))


def test_bayes_training_from_files_and_imap_moves(tmp_path, zone):
    import imaplib
    t = server(tmp_path, zone)
    t.stop()
    spam_dir, ham_dir = tmp_path / "spam", tmp_path / "ham"
    write_corpus(spam_dir, 110, lambda i: f"From: win{i}@lottery.example\nSubject: jackpot winner {i}\nDate: Tue, 24 Nov 2026 10:00:00 +0000\n"
                                          f"Message-ID: <s{i}@x>\n\nClaim your casino jackpot prize now, lottery winner {i}!\n")
    write_corpus(ham_dir, 110, lambda i: f"From: colleague{i}@example.org\nSubject: project meeting {i}\nDate: Tue, 24 Nov 2026 10:00:00 +0000\n"
                                         f"Message-ID: <h{i}@x>\n\nThe agenda for the project meeting is attached, see you on Thursday {i}.\n")
    out = t.run("spam", "train", "--spam", str(spam_dir)).stdout.decode()
    assert "trained 110 of 110 messages" in out, out
    # Training the same files again changes nothing.
    assert "trained 0 of 110" in t.run("spam", "train", "--spam", str(spam_dir)).stdout.decode()
    # Ham as one mbox file (From lines, >From quoting) holding all 110 messages.
    mbox = tmp_path / "ham.mbox"
    mbox.write_bytes(b"".join(b"From colleague@example.org Tue Nov 24 10:00:00 2026\n" + p.read_bytes() + b"\n"
                              for p in sorted(ham_dir.iterdir())))
    out = t.run("spam", "train", "--ham", str(mbox)).stdout.decode()
    assert "trained 110 of 110 messages" in out and "now hold 110 spam and 110 ham" in out, out
    assert "global: 110 spam, 110 ham" in t.run("spam", "status").stdout.decode()
    # Evaluation of mail the counts never saw (other numbers, other wording), scored as port 25 would.
    new_spam, new_ham = tmp_path / "new-spam", tmp_path / "new-ham"
    write_corpus(new_spam, 20, lambda i: f"From: prize{i}@casino.example\nTo: you@example.test\nSubject: casino jackpot for you {i}\n"
                                         f"Date: Tue, 24 Nov 2026 10:00:00 +0000\nMessage-ID: <n{i}@x>\n\nYour lottery prize: claim the jackpot now {i}!\n")
    write_corpus(new_ham, 20, lambda i: f"From: Colleague <c{i}@example.org>\nTo: you@example.test\nSubject: meeting notes {i}\n"
                                        f"Date: Tue, 24 Nov 2026 10:00:00 +0000\nMessage-ID: <m{i}@x>\n\nNotes from the project meeting on Thursday {i}.\n")
    out = t.run("spam", "evaluate", "--spam", str(new_spam), "--ham", str(new_ham)).stdout.decode()
    assert "spam caught 20 of 20 (100.0%), ham marked spam 0 of 20 (0.0%)" in out and "trained on" not in out, out
    # The training files themselves: each scored with its own counts taken out (never judged by what it taught).
    out = t.run("spam", "evaluate", "--spam", str(spam_dir)).stdout.decode()
    assert "(110 had been trained on: scored with their own counts taken out)" in out and "spam caught 110 of 110" in out, out
    t.start()
    try:
        # Scored with the trained counts: the lottery message goes to Junk on the classifier's word alone.
        lottery = (f"From: Lottery <win@good.test>\r\nTo: {RCPT}\r\nSubject: jackpot winner\r\nDate: {date_now()}\r\n"
                   "Message-ID: <lot@x>\r\n\r\nClaim your casino jackpot prize now, lottery winner!\r\n").encode()
        assert send(t, GOOD_IP, "win@good.test", lottery)[0] == 250
        [junk] = stored(t, "Junk")
        assert b"BAYES_99" in junk and b"X-Spam: yes" in junk, junk
        meeting = message("alice@good.test", "project meeting", "The agenda for the project meeting is attached.\r\n")
        assert send(t, GOOD_IP, "alice@good.test", meeting)[0] == 250
        [inbox] = stored(t)
        assert b"BAYES_00" in inbox and b"X-Spam: no" in inbox, inbox
        # bob moves the meeting mail into Junk over IMAP: his own counts learn it as spam; moving it back makes it ham.
        with imaplib.IMAP4(t.host, t.imap_port) as m:
            m.login(RCPT, PASSWORD)
            m.select("INBOX")
            assert m.uid("MOVE", "1:*", "Junk")[0] == "OK"
            deadline = time.time() + 10
            while "bob@example.test: 1 spam, 0 ham" not in t.run("spam", "status", "--user", RCPT).stdout.decode():
                assert time.time() < deadline, t.run("spam", "status", "--user", RCPT).stdout.decode()
                time.sleep(0.2)
            m.select("Junk")
            typ, data = m.uid("SEARCH", "SUBJECT", "meeting")
            assert m.uid("MOVE", data[0].decode(), "INBOX")[0] == "OK"
            deadline = time.time() + 10
            while "bob@example.test: 0 spam, 1 ham" not in t.run("spam", "status", "--user", RCPT).stdout.decode():
                assert time.time() < deadline, t.run("spam", "status", "--user", RCPT).stdout.decode()
                time.sleep(0.2)
        # The global counts learnt from bob too.
        assert "global: 110 spam, 111 ham" in t.run("spam", "status").stdout.decode()
    finally:
        t.stop()
