"""Submission (RFC 6409) on 587-style STARTTLS and 465-style implicit TLS ports, with clients nobody here wrote:
smtplib (AUTH PLAIN and LOGIN), swaks, and the scramp library for SCRAM-SHA-256."""
import base64
import smtplib
import ssl
import subprocess
import time

import pytest
import scramp

from ternlib import Tern, tls_context

PASSWORD = "submit-password-1"


@pytest.fixture(scope="module")
def tern(tmp_path_factory):
    t = Tern(tmp_path_factory.mktemp("submission"), {"limits": {"max_login_failures": 4}})
    t.add_domain("a.test")
    t.add_user("alice@a.test", PASSWORD)
    t.add_user("carol@a.test", PASSWORD)
    t.run("alias", "add", "sales@a.test", "alice@a.test")
    t.start()
    yield t
    t.stop()


def body(subject, sender="alice@a.test"):
    return f"From: {sender}\r\nTo: carol@a.test\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


def test_auth_plain_and_login_over_starttls(tern):
    for mechanism in ("PLAIN", "LOGIN"):
        with smtplib.SMTP(tern.host, tern.submission_port, timeout=10) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "SCRAM-SHA-256"}
            s.user, s.password = "alice@a.test", PASSWORD
            code, _ = s.auth(mechanism, getattr(s, f"auth_{mechanism.lower()}"), initial_response_ok=mechanism == "PLAIN")
            assert code == 235
            assert s.sendmail("alice@a.test", ["carol@a.test"], body(f"via {mechanism}")) == {}
    subjects = [m for m in tern.messages("carol@a.test") if b"Subject: via " in m]
    assert len(subjects) == 2
    # Submitted mail got a Date, a Message-ID and a Received field naming authenticated ESMTP over TLS.
    assert b"Message-ID: <" in subjects[0] and b"Date: " in subjects[0] and b"with ESMTPSA" in subjects[0]


def test_implicit_tls_port(tern):
    with smtplib.SMTP_SSL(tern.host, tern.submissions_port, context=tls_context(), timeout=10) as s:
        s.login("alice@a.test", PASSWORD)
        assert s.sendmail("alice@a.test", ["carol@a.test"], body("over 465")) == {}


def test_scram_sha256_with_scramp(tern):
    """SCRAM-SHA-256 (RFC 7677) driven by scramp's client: the password never crosses the wire, and the client checks
    the server's signature (proof that the server holds the stored keys)."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice@a.test", PASSWORD)
    with smtplib.SMTP(tern.host, tern.submission_port, timeout=10) as s:
        s.starttls(context=tls_context())
        s.ehlo()
        first = client.get_client_first()
        code, challenge = s.docmd("AUTH", "SCRAM-SHA-256 " + base64.b64encode(first.encode()).decode())
        assert code == 334, challenge
        client.set_server_first(base64.b64decode(challenge).decode())
        code, challenge = s.docmd(base64.b64encode(client.get_client_final().encode()).decode())
        assert code == 334, challenge
        client.set_server_final(base64.b64decode(challenge).decode())  # raises if the server's signature is wrong
        code, text = s.docmd("")
        assert code == 235, text
        assert s.sendmail("alice@a.test", ["carol@a.test"], body("via SCRAM")) == {}

    bad = scramp.ScramClient(["SCRAM-SHA-256"], "alice@a.test", "wrong")
    with smtplib.SMTP(tern.host, tern.submission_port, timeout=10) as s:
        s.ehlo()
        code, challenge = s.docmd("AUTH", "SCRAM-SHA-256 " + base64.b64encode(bad.get_client_first().encode()).decode())
        bad.set_server_first(base64.b64decode(challenge).decode())
        code, text = s.docmd(base64.b64encode(bad.get_client_final().encode()).decode())
        assert code == 535 and b"5.7.8" in text


def test_sender_must_be_the_users_own(tern):
    with smtplib.SMTP(tern.host, tern.submission_port, timeout=10) as s:
        s.login("alice@a.test", PASSWORD)
        # Her alias and a +tag are hers; carol's address and a stranger's are not.
        assert s.sendmail("sales@a.test", ["carol@a.test"], body("from the alias", "sales@a.test")) == {}
        assert s.sendmail("alice+news@a.test", ["carol@a.test"], body("from a tag", "alice+news@a.test")) == {}
        for sender in ("carol@a.test", "ceo@example.com"):
            with pytest.raises(smtplib.SMTPSenderRefused) as e:
                s.sendmail(sender, ["carol@a.test"], body("forged", sender))
            assert e.value.smtp_code == 553 and b"5.7.1" in e.value.smtp_error


def test_mail_needs_auth_and_port_25_never_relays(tern):
    with smtplib.SMTP(tern.host, tern.submission_port, timeout=10) as s:
        s.ehlo()
        code, text = s.mail("alice@a.test")
        assert code == 530 and b"5.7.0" in text
    with smtplib.SMTP(tern.host, tern.smtp_port, timeout=10) as s:
        s.ehlo()
        assert "auth" not in s.esmtp_features
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@a.test\0" + PASSWORD.encode()).decode())
        assert code == 503
        s.mail("alice@a.test")
        code, text = s.rcpt("someone@example.com")
        assert code == 550 and b"5.7.1" in text


def test_swaks_submits_with_auth(tern):
    r = subprocess.run(["swaks", "--server", f"{tern.host}:{tern.submission_port}", "--tls", "--auth", "LOGIN",
                        "--auth-user", "alice@a.test", "--auth-password", PASSWORD, "--from", "alice@a.test",
                        "--to", "carol@a.test", "--header", "Subject: via swaks"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"250 2.0.0 Ok: stored as" in r.stdout


def test_failed_logins_are_slowed_and_limited(tmp_path):
    t = Tern(tmp_path / "t", {"limits": {"max_login_failures": 3}})
    t.add_domain("a.test")
    t.add_user("alice@a.test", PASSWORD)
    t.start()
    try:
        with smtplib.SMTP(t.host, t.submission_port, timeout=10) as s:
            s.ehlo()
            s.user, s.password = "alice@a.test", "wrong"
            for i in range(3):
                start = time.time()
                # One mechanism at a time (smtplib's login() would try PLAIN, then LOGIN).
                with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                    s.auth("PLAIN", s.auth_plain)
                assert e.value.smtp_code == 535
                assert time.time() - start >= 0.9  # each failure costs the client a second
        # The address is now blocked, even with the right password.
        with smtplib.SMTP(t.host, t.submission_port, timeout=10) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.login("alice@a.test", PASSWORD)
            assert e.value.smtp_code == 454
    finally:
        t.stop()
