"""The mail tester: a message to check@ comes back as a report, and the report's SPF, DKIM and DMARC verdicts are the
ones pyspf and dkimpy reach for the same message against the same DNS server (dnsmasq on loopback). The report itself
is DKIM-signed by Tern and verifies in dkimpy; automatic mail and null senders get no report; reports are rate-limited.

Senders connect from 127.0.0.2 (good.test's SPF-authorized address) or 127.0.0.7 (not authorized)."""
import email
import email.policy
import re
import smtplib
import time

import dkim
import dns.resolver
import pytest
import spf

from ternlib import DNSServer, Tern, rsa_key, tls_context

GOOD_IP, OTHER_IP = "127.0.0.2", "127.0.0.7"
SENDER = "alice@good.test"
TESTER = "check@example.test"


@pytest.fixture
def setup(tmp_path):
    """Tern serving example.test (the tester's domain) and good.test (the sender's, so the report lands in a mailbox
    here), and dnsmasq with good.test's SPF, DKIM and DMARC records and example.test's DKIM key from tern dns-records."""
    t = Tern(tmp_path / "tern", {"tester": {"replies_per_hour": 4}}, hostname="mx.example.test")
    t.add_domain("example.test")
    t.add_domain("good.test")
    t.add_user(SENDER, "tester-password-1")
    private, public = rsa_key(tmp_path)
    txt = [
        ("good.test", f"v=spf1 ip4:{GOOD_IP} -all"),
        ("sel._domainkey.good.test", f"v=DKIM1; k=rsa; p={public}"),
        ("_dmarc.good.test", "v=DMARC1; p=reject"),
        ("mx.good.test", "v=spf1 a -all"),
    ] + [r for d in ("example.test", "good.test") for r in t.txt_records(d) if "_domainkey" in r[0]]
    server = DNSServer(tmp_path, ["--local=/test/", "--local=/in-addr.arpa/", f"--host-record=mx.good.test,{GOOD_IP}",
                                  f"--ptr-record=2.0.0.127.in-addr.arpa,mx.good.test"], txt=txt, probe="mx.good.test")
    t.settings["dns"] = {"nameservers": [f"127.0.0.1:{server.port}"]}
    t.write_config()
    t.start()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port
    previous = dns.resolver.default_resolver
    dns.resolver.default_resolver = resolver  # pyspf asks through dnspython's default resolver
    try:
        yield t, private, resolver
    finally:
        dns.resolver.default_resolver = previous
        t.stop()
        server.stop()


def dnsfunc(resolver):
    """dkimpy's DNS lookups, through the test's DNS server."""
    def lookup(name, timeout=5):
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return None
        return b"".join(b"".join(r.strings) for r in answer)
    return lookup


def message(subject, extra=""):
    return (f"From: Alice <{SENDER}>\r\nTo: <{TESTER}>\r\nSubject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: <{time.time()}.{subject.replace(' ', '')}@good.test>\r\n{extra}\r\n"
            "Hello, is my mail set up right?\r\n").encode()


def send(t, source, raw, mail_from=SENDER):
    with smtplib.SMTP(t.host, t.smtp_port, source_address=(source, 0), timeout=60) as s:
        s.ehlo("mx.good.test")
        assert s.mail(mail_from)[0] == 250
        assert s.rcpt(TESTER)[0] == 250
        code, text = s.data(raw)
        return code, text.decode()


def reports(t):
    return [email.message_from_bytes(m, policy=email.policy.default) for m in t.messages(SENDER)]


def verdicts(report_text):
    """spf, dkim, dmarc as the report states them."""
    def word(name):
        m = re.search(rf"^  {name} +(\w+)", report_text, re.M)
        return m.group(1) if m else None
    return word("spf"), word("dkim"), word("dmarc")


def reference(raw, source, resolver):
    """The same verdicts from pyspf and dkimpy, and DMARC from those two by RFC 7489's relaxed alignment (the From
    domain and the SPF/DKIM domain share the organizational domain: here they are the same)."""
    spf_result, _ = spf.check2(i=source, s=SENDER, h="mx.good.test")
    d = dkim.DKIM(raw)
    try:
        dkim_ok = d.verify(dnsfunc=dnsfunc(resolver))
    except dkim.ValidationError:
        dkim_ok = False
    dkim_result = "pass" if dkim_ok else "fail"
    dkim_domain = d.domain.decode() if d.domain else None
    aligned = (spf_result == "pass") or (dkim_ok and dkim_domain == "good.test")
    return spf_result, dkim_result, "pass" if aligned else "fail"


def sign(raw, private):
    return dkim.sign(raw, b"sel", b"good.test", private, include_headers=[b"from", b"to", b"subject", b"date"]) + raw


def test_report_matches_pyspf_and_dkimpy(setup):
    t, private, resolver = setup
    # All in order: from the authorized address, signed by dkimpy.
    good = sign(message("all good"), private)
    code, text = send(t, GOOD_IP, good)
    assert code == 250 and "report sent to <alice@good.test>" in text, (code, text)
    # Unauthorized address but a good signature: SPF fails, DKIM passes (so the sender is shown to be good.test's and
    # gets the report).
    bad = sign(message("spf fails"), private)
    code, text = send(t, OTHER_IP, bad)
    assert code == 250 and "report sent" in text, (code, text)
    # Unauthorized address and a body changed after signing: nothing shows the sender is who it says, so no report goes
    # to it (a forged sender must not get signed mail from us), and nothing else is stored.
    forged = sign(message("all bad"), private).replace(b"is my mail", b"is our mail")
    code, text = send(t, OTHER_IP, forged)
    assert code == 250 and "no report sent (sender not verified: neither SPF nor DKIM passes for good.test)" in text, (code, text)
    # Unsigned from the authorized address: SPF carries DMARC.
    plain = message("unsigned")
    assert send(t, GOOD_IP, plain)[0] == 250

    got = reports(t)
    assert len(got) == 3
    expected = [reference(good, GOOD_IP, resolver), reference(bad, OTHER_IP, resolver), reference(plain, GOOD_IP, resolver)]
    assert expected[0] == ("pass", "pass", "pass") and expected[1] == ("fail", "pass", "pass"), expected
    for report, want in zip(got, expected):
        assert report["From"].addresses[0].addr_spec == TESTER and report["Auto-Submitted"] == "auto-replied"
        body = report.get_body(("plain",)).get_content()
        spf_v, dkim_v, dmarc_v = verdicts(body)
        if report is got[2]:
            # No signature: Tern says "none" where dkimpy has nothing to verify (a failure for it).
            assert (spf_v, dkim_v, dmarc_v) == (want[0], "none", want[2]), body
        else:
            assert (spf_v, dkim_v, dmarc_v) == want, body
        assert re.search(r"Deliverability score: [\d.]+/10", body) and "Received path (oldest first)" in body
        # The header as it arrived rides along (text/rfc822-headers), with the Received field Tern added.
        headers = [p for p in report.iter_attachments() if p.get_content_type() == "text/rfc822-headers"]
        assert headers and b"by mx.example.test" in headers[0].get_payload(decode=True)
    # The reports are Tern's own mail, signed for example.test: dkimpy verifies them against the published key.
    for raw in t.messages(SENDER):
        assert dkim.verify(raw[raw.index(b"DKIM-Signature"):], dnsfunc=dnsfunc(resolver)), raw[:400]

    # tern trace: the tested message (never stored) and the report it caused, under the report's own queue id.
    mid = re.search(rb"Message-ID: <([^>]+)>", good).group(1).decode()
    out = t.run("trace", mid).stdout.decode()
    assert re.search(r"tested     for <check@example.test>: report \(score [\d.]+/10\) sent to <alice@good.test> as \w+", out), out
    assert "mail tester report on" in out and "stored     <alice@good.test> in INBOX" in out, out

    body = got[1].get_body(("plain",)).get_content()
    assert "SPF fails" in body and "what to fix first" in body, body
    # The report's Subject carries no text of the tested message.
    assert all(re.fullmatch(r"Mail check: [\d.]+/10", r["Subject"]) for r in got), [r["Subject"] for r in got]


def test_no_report_for_automatic_mail_or_past_the_limit(setup):
    t, private, resolver = setup
    # A null sender cannot be answered; automatic and list mail is not answered (RFC 3834).
    code, text = send(t, GOOD_IP, message("bounce"), mail_from="")
    assert code == 250 and "no report sent (null sender)" in text, (code, text)
    code, text = send(t, GOOD_IP, message("auto", "Auto-Submitted: auto-replied\r\n"))
    assert code == 250 and "no report sent (Auto-Submitted: auto-replied)" in text, (code, text)
    code, text = send(t, GOOD_IP, message("list", "Precedence: list\r\n"))
    assert code == 250 and "no report sent (Precedence: list)" in text, (code, text)
    # tester.replies_per_hour = 4: the fifth message from the same sender within the hour gets none.
    for i in range(4):
        code, text = send(t, GOOD_IP, message(f"n{i}"))
        assert "report sent" in text, (i, code, text)
    code, text = send(t, GOOD_IP, message("n4"))
    assert code == 250 and "no report sent (more than 4 reports in an hour)" in text, (code, text)
    assert len(t.messages(SENDER)) == 4


def test_submitted_message_is_judged_as_it_would_leave(setup):
    """A user of this server submits (587, STARTTLS, AUTH) to check@: the report judges the message with the DKIM
    signatures submission adds for the sender's domain, so DKIM and DMARC pass as they would for the recipient."""
    t, private, resolver = setup
    with smtplib.SMTP(t.host, t.submission_port, timeout=60) as s:
        s.starttls(context=tls_context())
        s.login(SENDER, "tester-password-1")
        s.sendmail(SENDER, [TESTER], message("submitted"))
    [report] = reports(t)
    body = report.get_body(("plain",)).get_content()
    dkim_lines = re.findall(r"^  dkim +(\w+)  d=(\S+)", body, re.M)
    assert dkim_lines and all(r == "pass" and d == "good.test" for r, d in dkim_lines), body
    assert verdicts(body)[2] == "pass", body
    assert "ESMTPSA" in body, body  # the Received path shows the authenticated submission
