"""IPv6 wherever IPv4 works, over ::1: listeners on [::1] (SMTP, submission, IMAP), outbound delivery to a mail
exchanger that has only an AAAA record, SPF ip6 at the receiver, the client written as an IPv6 address literal in
Received, DNS blocklists queried by the address's nibbles under ip6.arpa order (RFC 5782 §2.4), and greylisting that
takes the client's /64."""
import imaplib
import os
import smtplib
import socket

import pytest

from ternlib import DNSServer, Tern, tls_context, wait_for

PASSWORD = "secret-password-1"
# ::1 as a DNS list name: 32 nibbles, least significant first (RFC 5782 §2.4).
NIBBLES_OF_LOOPBACK = ".".join(["1"] + ["0"] * 31)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")


def test_ipv6_delivery_spf_received_and_blocklist(tmp_path):
    port = 25 if os.geteuid() == 0 else 2526
    dns = DNSServer(tmp_path, ["--local=/test/", "--mx-host=b.test,mx.b.test,10", "--host-record=mx.b.test,::1",
                               "--host-record=mx.a.test,::1", "--host-record=probe.test,127.0.0.1", f"--address=/{NIBBLES_OF_LOOPBACK}.bl6.test/127.0.0.2"],
                    txt=[("a.test", "v=spf1 ip6:::1 -all"), (f"{NIBBLES_OF_LOOPBACK}.bl6.test", "listed over IPv6")],
                    probe="probe.test")
    six = {s: "[::1]:0" for s in Tern.SERVICES}
    a = b = None
    try:
        # A sends; it listens on [::1] only. B receives for b.test on [::1]:25 (the MX has no IPv4 address), greylisting
        # with a one-second delay; A retries after one second.
        a = Tern(tmp_path / "a", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]},
                                  "delivery": {"remote_port": port, "retry": ["1s"]}}, hostname="mx.a.test", listen=six)
        a.add_domain("a.test")
        a.add_user("alice@a.test", PASSWORD)
        b = Tern(tmp_path / "b", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]},
                                  "greylisting": {"enabled": True, "delay": "1s"},
                                  # ::1 is exempt from the checks by default (local programs); here it stands for the Internet.
                                  "checks": {"exempt_networks": []}},
                 hostname="mx.b.test", listen={**six, "smtp": f"[::1]:{port}"})
        b.add_domain("b.test")
        b.add_user("bob@b.test", PASSWORD)
        a.start()
        b.start()
        out = (a.dir / "stdout.log").read_text()
        assert "[::1]:" in out and "127.0.0.1" not in out, out

        with smtplib.SMTP("::1", a.submission_port, timeout=30) as s:
            s.starttls(context=tls_context())
            s.login("alice@a.test", PASSWORD)
            s.sendmail("alice@a.test", ["bob@b.test"],
                       b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: over six\r\nMessage-ID: <six@a.test>\r\n\r\nHello over IPv6.\r\n")

        def bobs_mail():
            with imaplib.IMAP4("::1", b.imap_port, timeout=10) as m:
                m.starttls(ssl_context=tls_context())
                m.login("bob@b.test", PASSWORD)
                n = int(m.select("INBOX")[1][0])
                return m.fetch("1", "(BODY.PEEK[HEADER])")[1][0][1] if n else None
        header = wait_for(bobs_mail, "the message at B", timeout=60).decode()
        assert "[IPv6:::1]" in header, header
        assert "spf=pass" in header and "smtp.mailfrom=alice@a.test" in header, header
        # Greylisted first (the client's /64 in the key), accepted on A's retry.
        trace = a.run("trace", "six@a.test").stdout.decode()
        assert "451 4.7.1 Greylisted" in trace and "delivered" in trace, trace
        assert "mx.b.test[::1]" in trace, trace
        b.stop()

        # B again with a DNS list that names ::1: a client on ::1 is refused with the list's reason.
        b.settings["checks"] = {"blocklists": ["bl6.test"], "exempt_networks": []}
        b.write_config()
        b.start()
        with smtplib.SMTP("::1", port, timeout=30) as s:
            s.ehlo("client.test")
            code, text = s.mail("someone@a.test")
            assert code == 554 and b"blocked using bl6.test" in text and b"listed over IPv6" in text, (code, text)
    finally:
        for t in (a, b):
            if t:
                t.stop()
        dns.stop()
