"""`tern check domain` against dnsmasq on loopback: a domain with good records, one with broken ones, a null MX and one
that does not exist; JSON findings and the text report."""
import json
import socket
import socketserver
import subprocess
import threading

from ternlib import DNSServer, Tern, rsa_key


def ns_rr(name, target):
    """A dnsmasq --dns-rr option for an NS record (type 2; RDATA is the target name in wire form)."""
    wire = b"".join(bytes([len(label)]) + label.encode() for label in target.split(".")) + b"\0"
    return f"--dns-rr={name},2,{wire.hex()}"


def run(t, *args):
    r = t.run("check", "domain", *args, check=False)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def findings(t, domain, *args):
    code, out, err = run(t, domain, "--json", *args)
    assert code in (0, 1), err
    report = json.loads(out)
    return code, {(f["group"], f["item"]): f for f in report["findings"]}


def private_ca(tmp, host):
    """A CA of the test's own and a certificate it signed for `host`: (CA PEM path, certificate path, key path)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Tern Test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "mx.key", "-out", "mx.csr", "-subj", f"/CN={host}")
    (tmp / "ext.cnf").write_text(f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "mx.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "mx.pem",
            "-days", "2", "-extfile", "ext.cnf")
    return tmp / "ca.pem", tmp / "mx.pem", tmp / "mx.key"


class PlainSMTP(socketserver.StreamRequestHandler):
    """A mail host that offers no STARTTLS."""
    def handle(self):
        self.wfile.write(b"220 plain.example ESMTP\r\n")
        for line in self.rfile:
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-plain.example\r\n250 PIPELINING\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 no\r\n")


def test_check_domain(tmp_path):
    txt = [
        ("good.example", "v=spf1 mx include:_spf.good.example -all"),
        ("_spf.good.example", "v=spf1 ip4:192.0.2.200 -all"),
        ("sel._domainkey.good.example", f"v=DKIM1; k=rsa; p={rsa_key(tmp_path)[1]}"),
        ("_dmarc.good.example", "v=DMARC1; p=reject; rua=mailto:dmarc@good.example"),
        ("_mta-sts.good.example", "v=STSv1; id=20261124"),
        ("_smtp._tls.good.example", "v=TLSRPTv1; rua=mailto:tls@good.example"),
        ("bad.example", "v=spf1 a -all"),
        ("bad.example", "v=spf1 mx ~all"),
        ("open.example", "v=spf1 +all"),
        ("9.0.0.127.bl.example", "listed for testing"),
    ]
    dns = DNSServer(tmp_path, [
        "--local=/example/", "--local=/in-addr.arpa/",
        ns_rr("good.example", "ns1.good.example"), ns_rr("good.example", "ns2.good.example"),
        "--mx-host=good.example,mx.good.example,10", "--host-record=mx.good.example,127.0.0.8",
        "--ptr-record=8.0.0.127.in-addr.arpa,mx.good.example",
        "--mx-host=bad.example,mx.bad.example,10", "--mx-host=bad.example,mx2.bad.example,20",
        "--address=/mx2.bad.example/127.0.0.9",  # an address without a PTR
        "--address=/9.0.0.127.bl.example/127.0.0.2",
        "--mx-host=nullmx.example,.,0",
        "--host-record=open.example,127.0.0.10"], txt=txt, probe="mx.good.example")
    # The mail hosts' SMTP services: Tern with a certificate from the test's CA at mx.good.example (127.0.0.8), a server
    # without STARTTLS at open.example (127.0.0.10), nothing at mx2.bad.example (127.0.0.9). All on one port, as a
    # sender would use 25 everywhere.
    ca, cert, key = private_ca(tmp_path, "mx.good.example")
    mx = Tern(tmp_path / "mx", {"tls": {"certificate": str(cert), "key": str(key)}}, hostname="mx.good.example",
              listen={"smtp": "127.0.0.8:0"}).start()
    plain = socketserver.ThreadingTCPServer(("127.0.0.10", mx.smtp_port), PlainSMTP)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    try:
        t = Tern(tmp_path / "t", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]}, "checks": {"blocklists": ["bl.example"]},
                                  "delivery": {"remote_port": mx.smtp_port}})
        smtp = f"mx.good.example 127.0.0.8:{mx.smtp_port}"
        # Against the system's roots the test CA's certificate does not verify: a warning, not a problem.
        code, f = findings(t, "good.example", "--selector", "sel")
        assert code == 0
        assert f[("SMTP", smtp)]["verdict"] == "warning", f[("SMTP", smtp)]
        assert "STARTTLS, TLS 1.3" in f[("SMTP", smtp)]["detail"] and "does not verify for mx.good.example" in f[("SMTP", smtp)]["detail"]
        code, f = findings(t, "good.example", "--selector", "sel", "--ca-file", str(ca))
        assert code == 0
        assert f[("DNS", "NS")]["verdict"] == "ok" and f[("DNS", "NS")]["detail"] == "ns1.good.example, ns2.good.example"
        assert f[("MX", "MX")]["detail"] == "10 mx.good.example"
        assert f[("MX", "mx.good.example")]["detail"] == "127.0.0.8"
        assert f[("Reverse DNS", "127.0.0.8")]["verdict"] == "ok" and "mx.good.example" in f[("Reverse DNS", "127.0.0.8")]["detail"]
        assert f[("Blocklists", "127.0.0.8")]["verdict"] == "ok"
        spf = f[("SPF", "v=spf1 mx include:_spf.good.example -all")]
        # mx (1) + the MX host's address lookup does not count; include (1) = 2 DNS-querying terms.
        assert spf["verdict"] == "ok" and spf["detail"].startswith("2 of 10 DNS lookups"), spf
        assert f[("DKIM", "sel._domainkey.good.example")]["detail"] == "rsa 2048-bit key"
        dmarc = f[("DMARC", "_dmarc.good.example")]
        assert dmarc["verdict"] == "ok" and "p=reject" in dmarc["detail"] and "dmarc@good.example" in dmarc["detail"]
        assert f[("MTA-STS", "_mta-sts.good.example")]["verdict"] == "ok"
        assert f[("TLS-RPT", "_smtp._tls.good.example")]["verdict"] == "ok"
        detail = f[("SMTP", smtp)]["detail"]
        assert f[("SMTP", smtp)]["verdict"] == "ok", detail
        assert detail.startswith("220 mx.good.example") and "STARTTLS, TLS 1.3, certificate for mx.good.example valid until" in detail
        # With the probe turned off there is no SMTP finding.
        code, f = findings(t, "good.example", "--no-smtp")
        assert code == 0 and not any(g == "SMTP" for g, _ in f)

        code, f = findings(t, "bad.example", "--selector", "missing")
        assert code == 1
        assert f[("MX", "mx.bad.example")]["verdict"] == "problem" and "no A or AAAA" in f[("MX", "mx.bad.example")]["detail"]
        assert f[("Reverse DNS", "127.0.0.9")]["verdict"] == "warning"
        assert f[("Blocklists", "127.0.0.9")]["verdict"] == "problem" and "bl.example" in f[("Blocklists", "127.0.0.9")]["detail"]
        assert f[("SPF", "bad.example")]["verdict"] == "problem" and "2 SPF records" in f[("SPF", "bad.example")]["detail"]
        assert f[("DKIM", "missing._domainkey.bad.example")]["verdict"] == "problem"
        assert f[("DMARC", "_dmarc.bad.example")]["verdict"] == "warning"
        assert f[("MTA-STS", "_mta-sts.bad.example")]["verdict"] == "info"
        refused = f[("SMTP", f"mx2.bad.example 127.0.0.9:{mx.smtp_port}")]
        assert refused["verdict"] == "problem" and "no SMTP session: cannot connect to 127.0.0.9" in refused["detail"], refused
        assert "connection refused" in refused["detail"], refused

        code, f = findings(t, "open.example")
        assert f[("MX", "MX")]["verdict"] == "warning" and "no MX" in f[("MX", "MX")]["detail"]
        assert f[("MX", "open.example")]["detail"] == "127.0.0.10"
        assert f[("SPF", "v=spf1 +all")]["verdict"] == "problem"
        no_tls = f[("SMTP", f"open.example 127.0.0.10:{mx.smtp_port}")]
        assert no_tls["verdict"] == "warning" and no_tls["detail"].startswith("220 plain.example ESMTP; no STARTTLS offered"), no_tls

        code, f = findings(t, "nullmx.example")
        assert f[("MX", "MX")]["verdict"] == "info" and "null MX" in f[("MX", "MX")]["detail"]

        code, f = findings(t, "missing.example")
        assert code == 1 and f[("DNS", "NS")]["verdict"] == "problem" and len(f) == 1

        # The text report: grouped, a verdict per item, a summary line; no colour when not on a terminal.
        code, out, _ = run(t, "bad.example")
        assert code == 1 and "\x1b[" not in out
        assert "\nSPF\n  PROBLEM  bad.example\n" in out and out.rstrip().endswith("warning(s)"), out
    finally:
        plain.shutdown()
        plain.server_close()
        mx.stop()
        dns.stop()
