"""DNS: Tern's resolver (glibc's libresolv) against a real DNS server, dnsmasq from Debian, on loopback."""
import time

import pytest

from ternlib import DNSServer, Tern, free_udp_port


@pytest.fixture
def dnsmasq(tmp_path):
    """dnsmasq answering for a few test zones on 127.0.0.1 (and nothing else: no upstream, no /etc/hosts)."""
    server = DNSServer(tmp_path, [
        # b.test: two MX hosts with different preferences; c.test: no MX, an address; d.test: a null MX.
        "--mx-host=b.test,mx1.b.test,10", "--mx-host=b.test,mx2.b.test,20",
        "--host-record=mx1.b.test,127.0.0.3", "--host-record=mx2.b.test,127.0.0.4,::1",
        "--host-record=c.test,127.0.0.5",
        "--mx-host=d.test,.,0",
        "--txt-record=b.test,v=spf1 ip4:127.0.0.3 -all",
        "--ptr-record=3.0.0.127.in-addr.arpa,mx1.b.test",
        "--local=/test/"], probe="c.test")
    yield server.port
    server.stop()


def tern_with_dns(tmp_path, port):
    return Tern(tmp_path / "tern", {"dns": {"nameservers": [f"127.0.0.1:{port}"]}})


def test_route_follows_mx_preference_and_addresses(tmp_path, dnsmasq):
    t = tern_with_dns(tmp_path, dnsmasq)
    r = t.run("route", "b.test")
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "mail for b.test goes to, in order:", lines
    assert lines[1].split() == ["mx1.b.test", "MX", "10", "127.0.0.3"]
    # IPv6 and IPv4 alternate, IPv6 first (RFC 8305 §4; delivery.address_preference).
    assert lines[2].split()[:5] == ["mx2.b.test", "MX", "20", "::1", "127.0.0.4"], lines


def test_route_without_mx_uses_the_domain_address(tmp_path, dnsmasq):
    t = tern_with_dns(tmp_path, dnsmasq)
    out = t.run("route", "c.test").stdout.decode()
    assert "c.test  (no MX: the domain's own address)  127.0.0.5" in out


def test_null_mx_and_unknown_domain_bounce(tmp_path, dnsmasq):
    t = tern_with_dns(tmp_path, dnsmasq)
    r = t.run("route", "d.test", check=False)
    assert r.returncode == 1 and b"null MX" in r.stdout, r.stdout
    r = t.run("route", "nonexistent.test", check=False)
    assert r.returncode == 1 and b"NXDOMAIN" in r.stdout, r.stdout


def test_second_nameserver_answers_when_the_first_is_down(tmp_path, dnsmasq):
    dead = free_udp_port()
    t = Tern(tmp_path / "tern", {"dns": {"nameservers": [f"127.0.0.1:{dead}", f"127.0.0.1:{dnsmasq}"]}})
    out = t.run("route", "c.test").stdout.decode()
    assert "127.0.0.5" in out


def test_unreachable_nameserver_is_a_temporary_failure(tmp_path):
    t = Tern(tmp_path / "tern", {"dns": {"nameservers": [f"127.0.0.1:{free_udp_port()}"]}})
    start = time.time()
    r = t.run("route", "b.test", check=False)
    assert r.returncode == 2 and b"temporary failure" in r.stdout, r.stdout
    assert time.time() - start < 60
