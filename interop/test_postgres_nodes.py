"""Two `tern serve` nodes on one PostgreSQL database serve one installation (issue 21): what one node accepts, the
other's IMAP sessions see at once, and UIDs stay strictly increasing with both delivering to one mailbox.

The database server is the throwaway cluster scripts/test starts (TERN_TEST_POSTGRES); each test makes its own
database on it."""
import imaplib
import os
import re
import smtplib
import socket
import statistics
import subprocess
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import ALICE, BOB, DOMAIN
from ternlib import Tern, wait_for

PASSWORD = "secret-password-1"
SERVER = os.environ.get("TERN_TEST_POSTGRES")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def database():
    if not SERVER:
        if os.environ.get("TERN_REQUIRE_POSTGRES"):
            pytest.fail("TERN_TEST_POSTGRES is not set")
        pytest.skip("needs TERN_TEST_POSTGRES (scripts/test starts a PostgreSQL server)")
    name = "i_" + uuid.uuid4().hex
    subprocess.run(["psql", SERVER, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", SERVER, count=1)


@pytest.fixture
def nodes(tmp_path, database):
    """Node A (where the domain and accounts were added) and node B, both serving from the same database."""
    servers = []
    for name in ("a", "b"):
        t = Tern(tmp_path / name, {"": {"store": database}})
        if name == "a":
            t.add_domain(DOMAIN)
            t.add_user(ALICE)
            t.add_user(BOB)
        servers.append(t.start())
    yield servers
    for t in servers:
        t.stop()


def message(subject):
    m = EmailMessage()
    m["From"] = BOB
    m["To"] = ALICE
    m["Subject"] = subject
    m.set_content(f"{subject}\n")
    return m


class Idler:
    """An IMAP session in IDLE on INBOX (Python's imaplib has no IDLE before 3.14: the command is sent by hand)."""

    def __init__(self, port):
        self.imap = imaplib.IMAP4("127.0.0.1", port)
        self.imap.login(ALICE, PASSWORD)
        typ, data = self.imap.select("INBOX")
        self.exists = int(data[0])
        self.imap.send(b"i1 IDLE\r\n")
        assert self.imap.readline().startswith(b"+")
        self.imap.sock.settimeout(0.05)

    def wait_exists(self, n, timeout):
        """Seconds until `* n EXISTS` arrives (None when it does not within `timeout`)."""
        start = time.monotonic()
        buffered = b""
        while time.monotonic() - start < timeout:
            try:
                chunk = self.imap.sock.recv(4096)
            except socket.timeout:
                continue
            assert chunk, "the IMAP connection closed"
            buffered += chunk
            if re.search(rb"^\* %d EXISTS\r$" % n, buffered, re.M):
                return time.monotonic() - start
        return None

    def close(self):
        self.imap.sock.settimeout(5)
        self.imap.send(b"DONE\r\n")
        while not self.imap.readline().startswith(b"i1 "):
            pass
        self.imap.logout()


def test_a_message_accepted_by_one_node_reaches_idle_on_the_other(nodes):
    a, b = nodes
    idler = Idler(b.imap_port)
    latencies = []
    with smtplib.SMTP("127.0.0.1", a.smtp_port) as smtp:
        for i in range(3):
            smtp.send_message(message(f"across nodes {i}"))  # returns after the 250
            latency = idler.wait_exists(idler.exists + i + 1, timeout=10)
            assert latency is not None, f"node B's IDLE did not see message {i} accepted by node A"
            latencies.append(latency)
    idler.close()
    # The bound, on the median of three so that one scheduling hiccup on a loaded machine does not decide it.
    assert statistics.median(latencies) <= 1.0, f"seconds from A's 250 to B's EXISTS: {latencies}"
    # And the message is the same whichever node reads it.
    for node in (a, b):
        imap = imaplib.IMAP4("127.0.0.1", node.imap_port)
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [part[1].decode().strip() for part in data if isinstance(part, tuple)]
        assert subjects == [f"Subject: across nodes {i}" for i in range(3)]
        imap.logout()


def test_both_nodes_delivering_to_one_mailbox_give_increasing_uids_and_lose_nothing(nodes):
    a, b = nodes
    per_sender, senders_per_node = 250, 4
    errors = []

    def send(port, tag):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                for i in range(per_sender):
                    smtp.send_message(message(f"{tag}-{i}"))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(f"{tag}: {e!r}")

    threads = [threading.Thread(target=send, args=(node.smtp_port, f"{name}{s}"))
               for node, name in ((a, "a"), (b, "b")) for s in range(senders_per_node)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = 2 * senders_per_node * per_sender
    imap = imaplib.IMAP4("127.0.0.1", b.imap_port)
    imap.login(ALICE, PASSWORD)
    typ, data = imap.select("INBOX", readonly=True)
    assert int(data[0]) == total
    typ, data = imap.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    rows = [(int(re.search(rb"UID (\d+)", part[0]).group(1)), part[1].decode().split(":", 1)[1].strip())
            for part in data if isinstance(part, tuple)]
    uids = [u for u, _ in rows]
    assert uids == sorted(uids) and len(set(uids)) == total, "UIDs not strictly increasing in sequence order"
    # Every message once: each sender's subjects, none missing, none twice.
    expected = {f"{name}{s}-{i}" for name in "ab" for s in range(senders_per_node) for i in range(per_sender)}
    assert sorted(s for _, s in rows) == sorted(expected)
    typ, data = imap.status("INBOX", "(UIDNEXT)")
    assert int(re.search(rb"UIDNEXT (\d+)", data[0]).group(1)) > max(uids)
    imap.logout()
    # Node A, reading the same database, agrees.
    wait_for(lambda: len(a.messages(ALICE)) == total, "node A to list every message")


def test_greylisting_and_rate_limits_are_one_installation_across_nodes(tmp_path, database):
    """A triplet greylisted by node A is known to node B (B says so and lets the retry through after the delay), and the
    rate limit counts the client's messages on both nodes together."""
    from test_inbound import GOOD_IP, RCPT, Zone, message as signed_message, send
    zone = Zone(tmp_path)
    servers = []
    try:
        for name in ("a", "b"):
            t = Tern(tmp_path / name, {"": {"store": database}, "dns": {"nameservers": [f"127.0.0.1:{zone.port}"]},
                                       "greylisting": {"enabled": True, "delay": "2s"}, "checks": {"rate_per_client": 3}},
                     hostname="mx.example.test")
            if name == "a":
                t.add_domain("example.test")
                t.add_user(RCPT, PASSWORD)
            servers.append(t.start())
        a, b = servers
        raw = signed_message("alice@good.test", "greylisted on A")
        code, text = send(a, GOOD_IP, "alice@good.test", raw)
        assert code == 451 and "Greylisted" in text, (code, text)
        # B has the triplet A saw: still waiting (at most the delay), not a new wait of its own.
        code, text = send(b, GOOD_IP, "alice@good.test", raw)
        assert code == 451 and re.search(r"try again in [12] seconds", text), (code, text)
        time.sleep(2.2)
        assert send(b, GOOD_IP, "alice@good.test", raw)[0] == 250
        # Three MAIL FROMs so far, one on A and two on B: the fourth, on A, is over the limit of 3 an hour.
        code, text = send(a, GOOD_IP, "alice@good.test", raw)
        assert code == 451 and "Too many messages" in text, (code, text)
        assert len(a.messages(RCPT)) == 1
    finally:
        for t in servers:
            t.stop()
        zone.stop()


def test_kill9_of_a_node_while_the_queue_delivers(tmp_path, database):
    """Both nodes deliver one shared queue to a next hop (aiosmtpd, counting what it receives); node A is killed with
    -9 midway. Node B takes A's leased recipients over once A's lease (delivery.lease, 10 s here) runs out: every
    message arrives, and at most the one A had in flight (one connection per node) arrives twice."""
    import asyncio
    from collections import Counter
    from aiosmtpd.controller import Controller
    from ternlib import DNSServer

    class Receiver:
        def __init__(self):
            self.subjects = []

        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(0.01)  # about 100 messages a second, so that the kill lands midway
            self.subjects.append(re.search(rb"^Subject: (.*?)\r?$", envelope.content, re.M).group(1).decode())
            return "250 2.0.0 Ok: taken"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    receiver = Receiver()
    hop = Controller(receiver, hostname="127.0.0.1", port=port)
    dns = DNSServer(tmp_path, ["--local=/test/", "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.1"],
                    probe="mx.remote.test")
    settings = {"": {"store": database}, "dns": {"nameservers": [f"127.0.0.1:{dns.port}"]},
                "delivery": {"remote_port": port, "lease": "10s", "connections_per_domain": 1, "retry": ["1s"]}}
    a, b = Tern(tmp_path / "a", settings), Tern(tmp_path / "b", settings)
    n = 300
    try:
        a.add_domain(DOMAIN)
        a.add_user(ALICE)
        a.start()
        # The next hop is down while the messages are queued: every one is deferred, then due again after a second.
        with smtplib.SMTP("127.0.0.1", a.submission_port, timeout=60) as smtp:
            smtp.login(ALICE, PASSWORD)
            for i in range(n):
                smtp.sendmail(ALICE, ["friend@remote.test"],
                              f"From: {ALICE}\r\nTo: friend@remote.test\r\nSubject: queued {i}\r\n\r\nbody {i}\r\n".encode())
        b.start()
        hop.start()
        wait_for(lambda: len(receiver.subjects) >= 40, "the first messages at the next hop", timeout=60)
        a.kill9()
        killed_at = len(receiver.subjects)
        wait_for(lambda: len(set(receiver.subjects)) == n, f"all {n} messages at the next hop", timeout=90)
        time.sleep(2)  # anything sent twice would have arrived by now
        assert killed_at < n, "the queue was delivered before the kill"
        twice = {subject: c for subject, c in Counter(receiver.subjects).items() if c > 1}
        assert len(twice) <= 1 and all(c == 2 for c in twice.values()), f"sent more than once: {twice}"
        assert sorted(set(receiver.subjects)) == sorted(f"queued {i}" for i in range(n))
        wait_for(lambda: "the queue is empty" in b.run("queue", "list").stdout.decode(), "node B to empty the queue")
        print(f"{killed_at} of {n} at the next hop when node A was killed; sent twice: {sorted(twice) or 'none'}")
    finally:
        hop.stop()
        for t in (a, b):
            if t.proc:
                t.stop()
        dns.stop()


def test_a_database_outage_under_load_loses_no_accepted_message(tmp_path, database):
    """PostgreSQL stopped for 10 s while four clients send: every message that got a 250 is stored, the others got a
    temporary failure; IMAP says NO [UNAVAILABLE] and POP3 -ERR [SYS/TEMP] meanwhile; the node serves again by itself."""
    cluster = os.environ.get("TERN_TEST_POSTGRES_DIR")
    if not cluster:
        pytest.skip("needs TERN_TEST_POSTGRES_DIR (scripts/test's cluster) to stop the server")
    node = Tern(tmp_path / "node", {"": {"store": database}})
    node.add_domain(DOMAIN)
    node.add_user(ALICE)
    node.start()
    paused = []
    try:
        outage_under_load(node, cluster, paused)
    finally:
        # Whatever failed, the shared cluster runs again for the tests after this one, and the node stops.
        if paused:
            subprocess.run([str(SCRIPTS / "pg-test-cluster"), "resume", cluster], check=False)
        if node.proc:
            node.stop()


def outage_under_load(node, cluster, paused):
    accepted, refused, stop = [], [], threading.Event()

    def sender(n):
        i = 0
        while not stop.is_set():
            subject = f"load-{n}-{i}"
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=90) as smtp:
                    smtp.send_message(message(subject))
                accepted.append(subject)
            except (smtplib.SMTPException, OSError) as e:
                refused.append((subject, repr(e)))
                time.sleep(0.2)

    imap = imaplib.IMAP4("127.0.0.1", node.imap_port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(3)
        paused.append(True)
        subprocess.run([str(SCRIPTS / "pg-test-cluster"), "pause", cluster], check=True)
        time.sleep(1)
        typ, data = imap.uid("SEARCH", "ALL")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        pop = poplib_error(node.pop3_port)
        assert pop.startswith(b"-ERR [SYS/TEMP]"), pop
        time.sleep(9)
        subprocess.run([str(SCRIPTS / "pg-test-cluster"), "resume", cluster], check=True)
        paused.clear()
        resumed = time.monotonic()
        # Served again without a restart: new messages are accepted.
        count = len(accepted)
        wait_for(lambda: len(accepted) > count + 4, "messages accepted after the database came back", timeout=90)
        recovery = time.monotonic() - resumed
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert refused, "the outage refused nothing: was the database stopped?"
    assert all(("451" in why or "Disconnected" in why or "timed out" in why) for _, why in refused), refused[:5]
    typ, data = imap.uid("SEARCH", "ALL")
    assert typ == "OK"
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    stored = [part[1].decode().split(":", 1)[1].strip() for part in data if isinstance(part, tuple)]
    missing = set(accepted) - set(stored)
    assert not missing, f"{len(missing)} messages got a 250 and were lost: {sorted(missing)[:5]}"
    imap.logout()
    print(f"accepted {len(accepted)}, refused {len(refused)}, serving {recovery:.1f} s after the database came back")


def poplib_error(port):
    """What POP3 answers to a login while the store is down (the PASS line's reply)."""
    import poplib
    pop = poplib.POP3("127.0.0.1", port, timeout=60)
    pop.user(ALICE)
    try:
        return pop.pass_(PASSWORD)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        pop.close()
