"""`tern check domain` against dnsmasq on loopback: a domain with good records, one with broken ones, a null MX and one
that does not exist; JSON findings and the text report."""
import json

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
    try:
        t = Tern(tmp_path / "t", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]}, "checks": {"blocklists": ["bl.example"]}})
        code, f = findings(t, "good.example", "--selector", "sel")
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

        code, f = findings(t, "bad.example", "--selector", "missing")
        assert code == 1
        assert f[("MX", "mx.bad.example")]["verdict"] == "problem" and "no A or AAAA" in f[("MX", "mx.bad.example")]["detail"]
        assert f[("Reverse DNS", "127.0.0.9")]["verdict"] == "warning"
        assert f[("Blocklists", "127.0.0.9")]["verdict"] == "problem" and "bl.example" in f[("Blocklists", "127.0.0.9")]["detail"]
        assert f[("SPF", "bad.example")]["verdict"] == "problem" and "2 SPF records" in f[("SPF", "bad.example")]["detail"]
        assert f[("DKIM", "missing._domainkey.bad.example")]["verdict"] == "problem"
        assert f[("DMARC", "_dmarc.bad.example")]["verdict"] == "warning"
        assert f[("MTA-STS", "_mta-sts.bad.example")]["verdict"] == "info"

        code, f = findings(t, "open.example")
        assert f[("MX", "MX")]["verdict"] == "warning" and "no MX" in f[("MX", "MX")]["detail"]
        assert f[("MX", "open.example")]["detail"] == "127.0.0.10"
        assert f[("SPF", "v=spf1 +all")]["verdict"] == "problem"

        code, f = findings(t, "nullmx.example")
        assert f[("MX", "MX")]["verdict"] == "info" and "null MX" in f[("MX", "MX")]["detail"]

        code, f = findings(t, "missing.example")
        assert code == 1 and f[("DNS", "NS")]["verdict"] == "problem" and len(f) == 1

        # The text report: grouped, a verdict per item, a summary line; no colour when not on a terminal.
        code, out, _ = run(t, "bad.example")
        assert code == 1 and "\x1b[" not in out
        assert "\nSPF\n  PROBLEM  bad.example\n" in out and out.rstrip().endswith("warning(s)"), out
    finally:
        dns.stop()
