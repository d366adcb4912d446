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
    assert w.cmd("B01", "SEARCH ALL")[-1].startswith(b"B01 BAD")
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


# NOTIFY (RFC 5465)

def test_notify_advertised_and_refused_as_the_rfc_says(tern):
    w = Wire(tern)
    assert b"NOTIFY" in w.cmd("c", "CAPABILITY")[0].split()
    # Events that must come in pairs, FETCH items outside `selected`, two selected filters: BAD.
    for bad in ("NOTIFY SET (personal (MessageNew))", "NOTIFY SET (personal (FlagChange))",
                "NOTIFY SET (personal (MessageNew (UID) MessageExpunge))",
                "NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))"):
        assert w.cmd("b", bad)[-1].startswith(b"b BAD"), bad
    # An event Tern does not report: NO [BADEVENT (the ones it does)].
    lines = w.cmd("d", "NOTIFY SET (personal (MailboxMetadataChange))")
    assert lines[-1].startswith(b"d NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]"), lines


def test_notify_status_and_new_mail_without_a_command(tern):
    """RFC 5465 §3.1: NOTIFY SET STATUS lists the watched mailboxes' state; afterwards new mail in a watched mailbox
    comes as STATUS, and new mail in the selected one as EXISTS and the FETCH asked for, with no command running."""
    other = session(tern)
    for box in ("Lists/Lemonade", "Lists/Im2000", "misc"):
        other.create(box)
    other.append("Lists/Lemonade", None, None, message("first"))
    w = Wire(tern)
    lines = w.cmd("b", "NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge)) "
                       "(subtree Lists (MessageNew MessageExpunge))")
    assert lines[-1] == b"b OK NOTIFY completed", lines
    status = sorted(l for l in lines if l.startswith(b"* STATUS"))
    assert len(status) == 2 and re.match(rb'^\* STATUS "Lists/Im2000" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+\)$', status[0]), status
    assert re.match(rb'^\* STATUS "Lists/Lemonade" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)$', status[1]), status
    w.cmd("c", "SELECT INBOX")
    other.append("Lists/Lemonade", None, None, message("second"))
    assert w.unsolicited(rb"^\* STATUS")[-1] == b'* STATUS "Lists/Lemonade" (MESSAGES 2 UIDNEXT 3)'
    other.append("misc", None, None, message("unwatched"))
    other.append("INBOX", None, None, message("hello"))
    lines = w.unsolicited(rb"^\* 1 FETCH")
    assert b"* 1 EXISTS" in lines and not any(b"misc" in l for l in lines), lines
    assert re.match(rb"^\* 1 FETCH \(UID \d+ BODY\[HEADER.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: hello", lines[-1]), lines
    # `selected`: another session's expunge comes at once, between commands.
    other.select("INBOX")
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    assert w.unsolicited(rb"EXPUNGE")[-1] == b"* 1 EXPUNGE"
    # The selected mailbox is reported as selected, never as STATUS; an unwatched one not at all.
    assert not any(b"STATUS" in l for l in w.quiet())
    # NOTIFY NONE: silence.
    assert w.cmd("n", "NOTIFY NONE")[-1].startswith(b"n OK")
    other.append("Lists/Lemonade", None, None, message("third"))
    other.append("INBOX", None, None, message("unheard"))
    assert w.quiet() == []
    other.logout()


def test_notify_selected_delayed_holds_expunges_and_flag_changes_follow_flagchange(tern):
    other = session(tern)
    for s in ("a", "b"):
        other.append("INBOX", None, None, message(s))
    other.select("INBOX")
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    w.cmd("n", "NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))")
    other.store("2", "+FLAGS", "(\\Flagged)")
    assert re.match(rb"^\* 2 FETCH \(UID \d+ FLAGS \(\\Flagged\)\)$", w.unsolicited(rb"FETCH")[-1])
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    lines = w.quiet()
    assert not any(b"EXPUNGE" in l for l in lines), lines   # held until a command that may report it
    assert b"* 1 EXPUNGE" in w.cmd("p", "NOOP")
    # Without FlagChange, flag changes are not pushed.
    w.cmd("n2", "NOTIFY SET (selected (MessageNew MessageExpunge))")
    other.store("1", "+FLAGS", "(\\Seen)")
    assert not any(b"FETCH" in l for l in w.quiet())
    other.append("INBOX", None, None, message("c"))
    assert w.unsolicited(rb"EXISTS")[-1] == b"* 2 EXISTS"
    other.logout()


def test_notify_without_selected_sends_nothing_between_commands(tern):
    """No `selected` filter: nothing about the selected mailbox comes unasked (it is not reported as STATUS either);
    a command still brings the session up to date."""
    other = session(tern)
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    w.cmd("n", "NOTIFY SET (personal (MessageNew MessageExpunge))")
    other.append("INBOX", None, None, message("quiet"))
    assert w.quiet() == []
    assert b"* 1 EXISTS" in w.cmd("p", "NOOP")
    other.logout()


def test_notify_mailbox_names_and_subscriptions(tern):
    """MailboxName and SubscriptionChange (RFC 5465 §5.4–5.5): LIST for each mailbox another session creates, renames
    (with OLDNAME) or deletes (\\NonExistent), and for each subscription; none for the session's own changes; none for
    another account's."""
    other = session(tern)
    w = Wire(tern)
    w.cmd("n", "NOTIFY SET (personal (MailboxName SubscriptionChange))")
    other.create("Projects")
    assert re.match(rb'^\* LIST \(\\HasNoChildren\) "/" "?Projects"?$', w.unsolicited(rb"LIST")[-1])
    other.rename("Projects", "Plans")
    assert re.match(rb'^\* LIST \(\\HasNoChildren\) "/" "?Plans"? \("OLDNAME" \("?Projects"?\)\)$', w.unsolicited(rb"LIST")[-1])
    other.subscribe("Plans")
    assert re.match(rb'^\* LIST \(\\HasNoChildren \\Subscribed\) "/" "?Plans"?$', w.unsolicited(rb"LIST")[-1])
    other.unsubscribe("Plans")
    assert re.match(rb'^\* LIST \(\\HasNoChildren\) "/" "?Plans"?$', w.unsolicited(rb"LIST")[-1])
    other.delete("Plans")
    assert re.match(rb'^\* LIST \(\\NonExistent\) "/" "?Plans"?$', w.unsolicited(rb"LIST")[-1])
    # A child: the new mailbox and its parent, which now has children.
    other.create("Plans")
    w.unsolicited(rb"LIST")
    other.create("Plans/2027")
    lines = w.unsolicited(rb"Plans/2027")
    lines += w.quiet()
    assert any(re.match(rb'^\* LIST \(\\HasChildren\) "/" "?Plans"?$', l) for l in lines), lines
    # The session's own changes are not told back to it.
    w.cmd("c", "CREATE Mine")
    w.cmd("r", "RENAME Mine Ours")
    w.cmd("u", "SUBSCRIBE Ours")
    assert w.quiet() == []
    # Another account's mailboxes are none of this session's business.
    bob = session(tern, BOB)
    bob.create("Bobs")
    assert w.quiet() == []
    bob.logout()
    other.logout()


def test_notify_reaches_a_session_in_idle_and_counts_with_condstore(tern):
    """In IDLE the configured events come as they happen; with CONDSTORE a watched mailbox's STATUS carries
    HIGHESTMODSEQ, and a flag change there is told with UIDVALIDITY and HIGHESTMODSEQ."""
    other = session(tern)
    other.create("Archive2")
    other.append("Archive2", None, None, message("kept"))
    w = Wire(tern)
    w.cmd("e", "ENABLE CONDSTORE")
    w.cmd("s", "SELECT INBOX")
    w.cmd("n", "NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) (mailboxes Archive2 (MessageNew MessageExpunge FlagChange))")
    w.sock.sendall(b"i IDLE\r\n")
    assert w.line().startswith(b"+")
    other.append("Archive2", None, None, message("more"))
    assert re.match(rb'^\* STATUS "?Archive2"? \(MESSAGES 2 UIDNEXT 3 HIGHESTMODSEQ \d+\)$', w.unsolicited(rb"STATUS")[-1])
    other.select("Archive2")
    other.store("1", "+FLAGS", "(\\Flagged)")
    assert re.match(rb'^\* STATUS "?Archive2"? \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$', w.unsolicited(rb"STATUS")[-1])
    other.append("INBOX", None, None, message("in idle"))
    assert b"* 1 EXISTS" in w.unsolicited(rb"EXISTS")
    w.sock.sendall(b"DONE\r\n")
    assert w.unsolicited(rb"^i ")[-1].startswith(b"i OK")
    other.logout()


def test_idle_reports_a_change_made_just_before_it_began(tern):
    """A message that arrives between two commands is reported as soon as IDLE begins, not at the next change."""
    other = session(tern)
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    w.cmd("n", "NOOP")
    other.append("INBOX", None, None, message("between commands"))
    w.sock.sendall(b"i IDLE\r\n")
    assert b"* 1 EXISTS" in w.unsolicited(rb"EXISTS")
    w.sock.sendall(b"DONE\r\n")
    assert w.unsolicited(rb"^i ")[-1].startswith(b"i OK")
    other.logout()


def test_notify_without_flagchange_leaves_flag_changes_to_the_next_command(tern):
    """NOTIFY without FlagChange: another session's flag change is not pushed, and the next NOOP still reports it."""
    other = session(tern)
    other.append("INBOX", None, None, message("to be read"))
    other.select("INBOX")
    w = Wire(tern)
    w.cmd("s", "SELECT INBOX")
    w.cmd("n", "NOTIFY SET (selected (MessageNew MessageExpunge))")
    other.store("1", "+FLAGS", "(\\Seen)")
    assert not any(b"FETCH" in l for l in w.quiet())
    lines = w.cmd("p", "NOOP")
    assert any(re.match(rb"^\* 1 FETCH \(UID \d+ FLAGS \(\\Seen\)\)$", l) for l in lines), lines
    other.logout()


def test_notify_rename_of_an_unwatched_parent_names_the_watched_child(tern):
    """RENAME of a parent no filter covers: the watched child is still told of, with its old name."""
    other = session(tern)
    other.create("A")
    other.create("A/x")
    w = Wire(tern)
    w.cmd("n", 'NOTIFY SET (mailboxes "A/x" (MailboxName))')
    assert other.rename("A", "B")[0] == "OK"
    assert re.match(rb'^\* LIST \([^)]*\) "/" "?B/x"? \("OLDNAME" \("?A/x"?\)\)$', w.unsolicited(rb"LIST")[-1])
    other.logout()


def test_notify_mail_delivered_right_after_a_mailbox_is_created_is_told(tern):
    """A mailbox created under a `personal` filter and given a message at once: its STATUS counts the message."""
    other = session(tern)
    w = Wire(tern)
    w.cmd("n", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    other.create("Fresh")
    other.append("Fresh", None, None, message("first in fresh"))
    lines = w.unsolicited(rb'STATUS "?Fresh"? \(MESSAGES 1 ')
    assert any(re.match(rb'^\* LIST \([^)]*\) "/" "?Fresh"?$', l) for l in lines), lines
    other.logout()
