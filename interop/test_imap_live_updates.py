"""Results and mailboxes kept up to date while the client watches (issue 18): CONTEXT=SEARCH and CONTEXT=SORT
(RFC 5267 §4) and NOTIFY (RFC 5465), played as hand-typed sessions against the real server, with a second session
(imaplib) making the changes. Each exchange follows the RFC's own examples."""
import imaplib
import re
import socket
import time

from conftest import ALICE, BOB
from ternlib import date_now

PASSWORD = "secret-password-1"


class Wire:
    """A hand-typed IMAP session that reads whole responses (literals inlined) and unsolicited ones."""

    def __init__(self, tern, user=ALICE):
        self.sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
        self.buf = b""
        self.pending = []
        self.line()   # greeting
        assert self.cmd("a0", f'LOGIN {user} "{PASSWORD}"')[-1].startswith(b"a0 OK")

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        assert data, "connection closed"
        self.buf += data
        return True

    def line(self, timeout=10):
        """One response, a literal's bytes inlined; None when nothing came within `timeout`."""
        out = b""
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self._fill(left):
                    assert not out and not self.buf, "a response cut off"
                    return None
            part, self.buf = self.buf.split(b"\r\n", 1)
            out += part
            m = re.search(rb"\{(\d+)\}$", part)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                assert self._fill(10), "literal cut off"
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def cmd(self, tag, text):
        """Sends `tag text`; returns every response up to and including the tagged one (unsolicited ones before the
        command are kept in `pending`)."""
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.line()
            assert line is not None, f"no answer to {tag} {text}"
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def unsolicited(self, want, timeout=5):
        """Reads what the server sends with no command running until a line matching `want` came; returns them all."""
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.line(timeout=max(0.05, deadline - time.monotonic()))
            if line is None:
                break
            lines.append(line)
            if re.search(want, line):
                return lines
        raise AssertionError(f"nothing matching {want!r} came; got {lines}")

    def quiet(self, seconds=0.5):
        """What the server sends within `seconds` with no command running (nothing, usually)."""
        lines = []
        while True:
            line = self.line(timeout=seconds)
            if line is None:
                return lines
            lines.append(line)


def session(tern, user=ALICE):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(user, PASSWORD)
    return m


def message(subject, sender=BOB, to=ALICE):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date_now()}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nbody of {subject}\r\n").encode()


def uids_of(m):
    typ, data = m.uid("SEARCH", None, "ALL")
    return [int(x) for x in data[0].split()]


def index(lines, pattern):
    return next(i for i, l in enumerate(lines) if re.search(pattern, l))


# CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4)

def test_context_capabilities_advertised(tern):
    w = Wire(tern)
    caps = w.cmd("c", "CAPABILITY")[0]
    for cap in (b"CONTEXT=SEARCH", b"CONTEXT=SORT", b"ESORT", b"ESEARCH"):
        assert cap in caps.split(), caps


def test_search_update_adds_and_removes_as_flags_change(tern):
    """RFC 5267 §4.1 examples: UID SEARCH RETURN (UPDATE COUNT); ADDTO after another session's STORE, REMOVEFROM
    before the EXPUNGE it goes with, tag reuse refused, CANCELUPDATE ends the updates."""
    other = session(tern)
    for s in ("one", "two", "three"):
        other.append("INBOX", None, None, message(s))
    other.select("INBOX")
    u1, u2, u3 = uids_of(other)
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    lines = w.cmd("B01", "UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk")
    assert lines == [b'* ESEARCH (TAG "B01") UID COUNT 0', b"B01 OK UID SEARCH completed"], lines
    # A tag a result is kept under cannot be used again for another (the command has no effect).
    assert w.cmd("B01", "SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED")[-1].startswith(b"B01 BAD")
    other.uid("STORE", f"{u2},{u3}", "+FLAGS", "(\\Deleted $Junk)")
    lines = w.cmd("n1", "NOOP")
    fetches = [i for i, l in enumerate(lines) if b" FETCH (" in l]
    add = index(lines, rb'^\* ESEARCH \(TAG "B01"\) UID ADDTO \(0 ')
    assert len(fetches) == 2 and max(fetches) < add, lines
    assert lines[add] == f'* ESEARCH (TAG "B01") UID ADDTO (0 {u2}:{u3})'.encode(), lines
    # Expunged: REMOVEFROM first, while the sequence numbers are still the client's.
    other.expunge()
    lines = w.cmd("n2", "NOOP")
    rm = index(lines, rb'REMOVEFROM')
    assert lines[rm] == f'* ESEARCH (TAG "B01") UID REMOVEFROM (0 {u2}:{u3})'.encode(), lines
    assert rm < index(lines, rb"^\* \d+ EXPUNGE"), lines
    # The client's own STORE changes the result too.
    lines = w.cmd("st", f"UID STORE {u1} +FLAGS.SILENT (\\Deleted $Junk)")
    assert f'* ESEARCH (TAG "B01") UID ADDTO (0 {u1})'.encode() in lines, lines
    assert w.cmd("B04", 'CANCELUPDATE "B01"')[-1] == b"B04 OK No further updates"
    assert w.cmd("B05", 'CANCELUPDATE "B01"')[-1].startswith(b"B05 NO")
    other.uid("STORE", str(u1), "-FLAGS", "($Junk)")
    lines = w.cmd("n3", "NOOP")
    assert not any(b"ESEARCH" in l for l in lines), lines
    other.logout()


def test_search_update_by_sequence_number_and_new_mail(tern):
    """A SEARCH (not UID SEARCH) result is kept in sequence numbers: ADDTO after EXISTS, numbers as the client has them."""
    other = session(tern)
    for s in ("a", "b"):
        other.append("INBOX", None, None, message(s))
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    assert w.cmd("A1", "SEARCH RETURN (UPDATE ALL) UNSEEN")[0] == b'* ESEARCH (TAG "A1") ALL 1:2'
    other.append("INBOX", None, None, message("c"))
    lines = w.cmd("n", "NOOP")
    assert index(lines, rb"^\* 3 EXISTS") < index(lines, rb'^\* ESEARCH \(TAG "A1"\) ADDTO \(0 3\)$'), lines
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Seen)")
    lines = w.cmd("n", "NOOP")
    assert b'* ESEARCH (TAG "A1") REMOVEFROM (0 1)' in lines, lines
    # An expunge moves the numbers down: message 3 becomes 2.
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = w.cmd("n", "NOOP")
    assert b"* 1 EXPUNGE" in lines and not any(b"ESEARCH" in l for l in lines), lines   # 1 had left the result
    other.store("2", "+FLAGS", "(\\Seen)")
    assert b'* ESEARCH (TAG "A1") REMOVEFROM (0 2)' in w.cmd("n", "NOOP")
    other.logout()


def test_sort_update_puts_messages_at_their_place(tern):
    """CONTEXT=SORT: ADDTO and REMOVEFROM carry the position in the sorted result (RFC 5267 §4.3)."""
    other = session(tern)
    for s in ("delta", "bravo", "foxtrot"):
        other.append("INBOX", "(\\Flagged)", None, message(s))
    for s in ("alpha", "echo", "charlie"):
        other.append("INBOX", None, None, message(s))
    other.select("INBOX")
    uid = dict(zip(["delta", "bravo", "foxtrot", "alpha", "echo", "charlie"], uids_of(other)))
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    lines = w.cmd("C01", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED")
    assert lines[0] == f'* ESEARCH (TAG "C01") UID ALL {uid["bravo"]},{uid["delta"]},{uid["foxtrot"]}'.encode(), lines
    # alpha goes first, echo between delta and foxtrot (position 4 once alpha is in).
    other.uid("STORE", f'{uid["alpha"]},{uid["echo"]}', "+FLAGS", "(\\Flagged)")
    lines = w.cmd("n", "NOOP")
    assert f'* ESEARCH (TAG "C01") UID ADDTO (1 {uid["alpha"]}) ADDTO (4 {uid["echo"]})'.encode() in lines, lines
    # delta leaves from position 3; charlie joins at 3 (alpha bravo charlie echo foxtrot).
    other.uid("STORE", str(uid["delta"]), "-FLAGS", "(\\Flagged)")
    other.uid("STORE", str(uid["charlie"]), "+FLAGS", "(\\Flagged)")
    lines = w.cmd("n", "NOOP")
    assert f'* ESEARCH (TAG "C01") UID REMOVEFROM (3 {uid["delta"]}) ADDTO (3 {uid["charlie"]})'.encode() in lines, lines
    # The whole result, asked again, is what the updates built.
    lines = w.cmd("all", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 FLAGGED")
    order = [uid[s] for s in ("alpha", "bravo", "charlie", "echo", "foxtrot")]
    assert lines[0] == ('* ESEARCH (TAG "all") UID ALL ' + ",".join(map(str, order))).encode(), lines
    other.logout()


def test_update_fetches_new_messages_and_ends_with_the_selection(tern):
    """RETURN (UPDATE (fetch-att)) (RFC 5465 §7): a new message joining the result is fetched before the ADDTO; a
    SELECT ends every result kept up to date."""
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    assert w.cmd("a00", 'SEARCH RETURN (COUNT UPDATE (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])) FROM "boss"')[0] \
        == b'* ESEARCH (TAG "a00") COUNT 0'
    other = session(tern)
    other.append("INBOX", None, None, message("not from the boss", sender="someone@example.test"))
    other.append("INBOX", None, None, message("raise", sender="boss@example.test"))
    lines = w.cmd("n", "NOOP")
    exists, fetch = index(lines, rb"^\* 2 EXISTS"), index(lines, rb"^\* 2 FETCH \(UID \d+ BODY\[HEADER.FIELDS \(SUBJECT\)\]")
    add = index(lines, rb'^\* ESEARCH \(TAG "a00"\) ADDTO \(0 2\)$')
    assert exists < fetch < add and b"Subject: raise" in lines[fetch], lines
    assert not any(re.match(rb"^\* 1 FETCH", l) for l in lines), lines   # not in the result: not fetched
    w.cmd("s2", "SELECT INBOX")
    other.append("INBOX", None, None, message("again", sender="boss@example.test"))
    assert not any(b"ESEARCH" in l for l in w.cmd("n", "NOOP"))
    assert w.cmd("c", 'CANCELUPDATE "a00"')[-1].startswith(b"c NO")
    other.logout()


def test_too_many_results_get_noupdate(tern):
    """RFC 5267 §4.2: past the limit the server answers the search and says NOUPDATE; the command still succeeds."""
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    for i in range(10):
        assert w.cmd(f"k{i}", "UID SEARCH RETURN (UPDATE) ALL")[-1].startswith(f"k{i} OK".encode())
    lines = w.cmd("B02", "UID SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 ALL")
    assert lines == [b'* ESEARCH (TAG "B02") UID COUNT 0', b'* NO [NOUPDATE "B02"] Too many results kept up to date; this one will not be',
                     b"B02 OK UID SORT completed"], lines
