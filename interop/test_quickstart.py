"""`tern quickstart DOMAIN` on loopback, against dnsmasq: the checks before anything is written (one passing, the others
failing with what they mean and how to fix them, none stopping the set-up), then the config, domain, postmaster and
DKIM keys it made, the DNS zone, client settings and systemd unit it printed; the server it configured starts, and the
printed password logs in over IMAP (imaplib). A second run changes nothing."""
import imaplib
import os
import pwd
import re
import shutil
import signal
import socketserver
import subprocess
import threading
import tempfile
import time

from ternlib import TERN, DNSServer, tls_context

SERVICE_USER = "ternqstest"


def test_quickstart(tmp_path):
    dns = DNSServer(tmp_path, ["--local=/test/", "--local=/in-addr.arpa/",
                               # The host name resolves to this machine, but its PTR names another host.
                               "--host-record=mail.example.test,127.0.0.1",
                               "--ptr-record=1.0.0.127.in-addr.arpa,localhost.other.test",
                               # 127.0.0.1 is listed in the test's blocklist.
                               "--address=/1.0.0.127.bl.test/127.0.0.2",
                               # A second installation where everything is in order.
                               "--host-record=mail.good.test,127.0.0.2", "--ptr-record=2.0.0.127.in-addr.arpa,mail.good.test"],
                    txt=[("1.0.0.127.bl.test", "listed for the test")], probe="mail.example.test")
    config = tmp_path / "srv" / "tern.toml"
    # The data folder where a service user can reach it (pytest's tmp_path sits below a folder only root may enter).
    open_dir = tempfile.mkdtemp(prefix="tern-qs-", dir="/tmp")
    os.chmod(open_dir, 0o755)
    data = os.path.join(open_dir, "data")
    args = [TERN, "quickstart", "example.test", "--config", str(config), "--loopback", "--data", data, "--user", SERVICE_USER,
            "--nameserver", f"127.0.0.1:{dns.port}", "--blocklist", "bl.test", "--port25-probe", "127.0.0.1:1"]
    proc = None
    try:
        r = subprocess.run(args, capture_output=True, timeout=120)
        out = r.stdout.decode()
        assert r.returncode == 0, r.stderr.decode() + out
        checks = out.split("\n\n")[0]
        assert "ok   mail.example.test resolves to this machine: 127.0.0.1" in checks, out
        assert "FAIL reverse DNS of 127.0.0.1: localhost.other.test does not resolve back to 127.0.0.1" in checks, out
        assert "fix: ask whoever runs the address" in checks, out
        assert "FAIL outbound port 25: no SMTP session with 127.0.0.1 (127.0.0.1:1)" in checks and "smarthost" in checks, out
        assert "FAIL 127.0.0.1 is listed in bl.test: listed for the test" in checks, out
        assert "3 failed" in checks and "the set-up went ahead" in checks, out

        password = re.search(r"^  password  (\S+)$", out, re.M).group(1)
        assert re.search(r"^  login     postmaster@example\.test$", out, re.M), out
        assert "example.test.\t3600\tIN\tMX\t10 mail.example.test." in out, out
        assert "mail.example.test.\t3600\tIN\tA\t127.0.0.1" in out, out
        assert re.search(r"\S+\._domainkey\.example\.test\.\t3600\tIN\tTXT", out), out
        assert "1.0.0.127.in-addr.arpa.\t3600\tIN\tPTR\tmail.example.test." in out, out
        assert "user name the full address (postmaster@example.test)" in out, out
        assert f"ExecStart=" in out and f"serve --config {config}" in out and "AmbientCapabilities=CAP_NET_BIND_SERVICE" in out, out
        text = config.read_text()
        assert 'hostname = "mail.example.test"' in text and 'smtp = ["127.0.0.1:0"]' in text and 'blocklists = ["bl.test"]' in text

        if os.geteuid() == 0:
            # As root: a system user made for the server (no login shell), written to the config, given the data folder.
            account = pwd.getpwnam(SERVICE_USER)
            assert account.pw_shell == "/usr/sbin/nologin" and f"created the system user {SERVICE_USER}" in out, out
            assert f'user = "{SERVICE_USER}"' in text, text
            for root, dirs, files in os.walk(data):
                for name in [root] + [os.path.join(root, f) for f in files]:
                    assert os.stat(name).st_uid == account.pw_uid, name
        # The config passes tern's own check, and the server it describes starts; the printed password logs in.
        assert subprocess.run([TERN, "config", "check", str(config)], capture_output=True).returncode == 0
        log = open(tmp_path / "serve.log", "wb")
        proc = subprocess.Popen([TERN, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while "Stop with" not in (tmp_path / "serve.log").read_text():
            assert time.time() < deadline and proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        summary = (tmp_path / "serve.log").read_text()
        if os.geteuid() == 0:
            status = open(f"/proc/{proc.pid}/status").read()
            assert f"Uid:\t{account.pw_uid}\t{account.pw_uid}" in status, status
        imap_port = int(re.search(r"^\s+imap\s+127\.0\.0\.1:(\d+)", summary, re.M).group(1))
        with imaplib.IMAP4("127.0.0.1", imap_port) as m:
            m.starttls(ssl_context=tls_context())
            assert m.login("postmaster@example.test", password)[0] == "OK"
        assert "example.test" in summary

        # A second run refuses and leaves everything as it was.
        before = config.read_text()
        again = subprocess.run(args, capture_output=True, timeout=60)
        assert again.returncode != 0 and b"exists: nothing was changed" in again.stderr, again
        assert config.read_text() == before

        # Everything in order: the host name resolves to the address given, the PTR matches, port 25 answers, no listing.
        class Greeter(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 mx.elsewhere.test ESMTP\r\n")
                for line in self.rfile:
                    self.wfile.write(b"250 mx.elsewhere.test\r\n" if line.upper().startswith(b"EHLO") else b"221 bye\r\n")
                    if line.upper().startswith(b"QUIT"):
                        return
        smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Greeter)
        threading.Thread(target=smtp.serve_forever, daemon=True).start()
        try:
            good = subprocess.run([TERN, "quickstart", "good.test", "--config", str(tmp_path / "good" / "tern.toml"), "--loopback",
                                   "--user", SERVICE_USER, "--data", os.path.join(open_dir, "good"),
                                   "--ipv4", "127.0.0.2", "--nameserver", f"127.0.0.1:{dns.port}", "--blocklist", "bl.test",
                                   "--port25-probe", f"127.0.0.1:{smtp.server_address[1]}"], capture_output=True, timeout=120)
        finally:
            smtp.shutdown()
            smtp.server_close()
        checks = good.stdout.decode().split("\n\n")[0]
        assert good.returncode == 0 and "FAIL" not in checks and "all passed" in checks, checks
        assert "ok   reverse DNS of 127.0.0.2: mail.good.test, forward-confirmed" in checks, checks
        assert "ok   outbound port 25 is open: 127.0.0.1 answered: 220 mx.elsewhere.test ESMTP" in checks, checks
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        dns.stop()
        shutil.rmtree(open_dir, ignore_errors=True)
        if os.geteuid() == 0:
            subprocess.run(["userdel", SERVICE_USER], capture_output=True)
