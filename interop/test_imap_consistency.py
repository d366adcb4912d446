"""IMAP answers what the store holds, for every session and account (issue 18), checked with imaplib sessions.

Each test is named for the defect it guards against."""
import imaplib
import re
import socket
import time

from conftest import ALICE, BOB
from ternlib import date_now

PASSWORD = "secret-password-1"


def login(tern, user=ALICE):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(user, PASSWORD)
    return m


def message(subject, sender, to):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date_now()}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nbody of {subject}\r\n").encode()


def envelope_subject(m, seq):
    typ, data = m.fetch(seq, "(ENVELOPE)")
    assert typ == "OK", data
    return data[0]


def test_envelope_of_another_accounts_expunged_message_never_served(tern):
    """A appends, reads the ENVELOPE, expunges; B appends: B's FETCH ENVELOPE must be B's message."""
    a, b = login(tern, ALICE), login(tern, BOB)
    a.append("INBOX", None, None, message("secret of alice", ALICE, ALICE))
    a.select("INBOX")
    assert b"secret of alice" in envelope_subject(a, "1")
    typ, data = a.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE)")
    assert b"secret of alice" in data[0][1]
    a.store("1", "+FLAGS", "(\\Deleted)")
    a.expunge()
    b.append("INBOX", None, None, message("note from bob", BOB, BOB))
    b.select("INBOX")
    env = envelope_subject(b, "1")
    assert b"note from bob" in env and b"alice" not in env, env
    typ, data = b.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert b"note from bob" in data[0][1] and b"alice" not in data[0][1], data
    # And within one account: expunge + append, then the new message's own envelope.
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    b.append("INBOX", None, None, message("second from bob", BOB, BOB))
    b.noop()
    assert b"second from bob" in envelope_subject(b, "1")
    for c in (a, b):
        c.logout()


def test_expunge_keeps_a_message_another_session_undeleted(tern):
    """A saw message 1 flagged \\Deleted; B then cleared the flag; A's EXPUNGE (and CLOSE) without a NOOP between
    must not remove it: EXPUNGE removes only messages flagged \\Deleted (RFC 9051 6.4.3), not what A last saw."""
    a, b = login(tern), login(tern)
    for n in range(3):
        a.append("INBOX", None, None, message(f"keep or drop {n}", ALICE, ALICE))
    a.select("INBOX")
    b.select("INBOX")
    a.store("1:2", "+FLAGS", "(\\Deleted)")
    b.noop()
    b.store("1", "-FLAGS", "(\\Deleted)")
    typ, data = a.expunge()
    assert typ == "OK", data
    # Only message 2 went; message 1 is still there, in both sessions.
    assert data == [b"2"], data
    for c in (a, b):
        c.noop()
        typ, data = c.search(None, "ALL")
        assert data[0].split() == [b"1", b"2"], data
        typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert any(isinstance(d, tuple) and b"keep or drop 0" in d[1] for d in data), data
    # CLOSE expunges silently: the same holds.
    a.store("1", "+FLAGS", "(\\Deleted)")
    b.noop()
    b.store("1", "-FLAGS", "(\\Deleted)")
    a.close()
    b.noop()
    typ, data = b.search(None, "ALL")
    assert data[0].split() == [b"1", b"2"], data
    # CLOSE removes what another session flagged \\Deleted since A last looked, too (and tells nothing).
    a.select("INBOX")
    a.append("INBOX", None, None, message("closed away", ALICE, ALICE))
    b.noop()
    b.store("3", "+FLAGS", "(\\Deleted)")
    a.close()
    b.noop()
    typ, data = b.search(None, "ALL")
    assert data[0].split() == [b"1", b"2"], data
    # The other way round: what another session flagged \\Deleted since A last looked goes at A's EXPUNGE too.
    a.select("INBOX")
    b.store("2", "+FLAGS", "(\\Deleted)")
    typ, data = a.expunge()
    assert typ == "OK" and data == [b"2"], data
    # UID EXPUNGE (RFC 4315) goes by the store's flags too: what B flagged since A looked goes, what B cleared stays.
    for n in range(2):
        a.append("INBOX", None, None, message(f"uid expunge {n}", ALICE, ALICE))
    a.noop()
    typ, data = a.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    assert len(uids) == 3, data
    a.uid("STORE", uids[1], "+FLAGS", "(\\Deleted)")
    b.noop()
    b.uid("STORE", uids[1], "-FLAGS", "(\\Deleted)")
    b.uid("STORE", uids[2], "+FLAGS", "(\\Deleted)")
    typ, data = a._simple_command("UID", "EXPUNGE", b",".join(uids).decode())
    assert typ == "OK", data
    typ, data = a.uid("SEARCH", None, "ALL")
    assert data[0].split() == uids[:2], data
    for c in (a, b):
        c.logout()


def test_close_of_a_mailbox_deleted_meanwhile(tern):
    """A selects Foo and flags a message; B deletes Foo; A's CLOSE leaves it (the expunge of a mailbox gone once
    stopped the server). Deleting the selected mailbox by its new name after a RENAME deselects it, and a DELETE that
    fails leaves the selection as it was."""
    a, b = login(tern), login(tern)
    a.create("Foo")
    a.append("Foo", None, None, message("in foo", ALICE, ALICE))
    a.select("Foo")
    a.store("1", "+FLAGS", "(\\Deleted)")
    assert b.delete("Foo")[0] == "OK"
    typ, data = a.close()
    assert typ == "OK", data
    assert a.select("INBOX")[0] == "OK"
    a.create("Foo2")
    a.append("Foo2", None, None, message("in foo2", ALICE, ALICE))
    a.select("Foo2")
    a.store("1", "+FLAGS", "(\\Deleted)")
    assert a.rename("Foo2", "Bar")[0] == "OK"
    assert a.delete("Bar")[0] == "OK"
    try:
        a._simple_command("CLOSE")
        assert False, "CLOSE with nothing selected was accepted"
    except imaplib.IMAP4.error as e:
        assert "No mailbox selected" in str(e), e   # nothing is selected any more
    a.state = "AUTH"
    a.select("INBOX")
    try:
        a.delete("INBOX")
    except imaplib.IMAP4.error:
        pass
    assert a.noop()[0] == "OK"
    typ, data = a.search(None, "ALL")
    assert typ == "OK", data   # still selected after the failed DELETE
    for c in (a, b):
        c.logout()


def test_deleted_mailbox_does_not_come_back_and_uidvalidity_changes(tern):
    m = login(tern)
    m.create("Projects")
    m.append("Projects", None, None, message("old project", ALICE, ALICE))
    typ, data = m.select("Projects")
    assert data == [b"1"]
    old_validity = m.response("UIDVALIDITY")[1][0]
    m.close()
    m.delete("Projects")
    m.create("Projects")
    typ, data = m.select("Projects")
    assert data == [b"0"], "the deleted mailbox's messages came back"
    new_validity = m.response("UIDVALIDITY")[1][0]
    assert int(new_validity) > int(old_validity), (old_validity, new_validity)
    typ, data = m.status("Projects", "(MESSAGES UIDNEXT UIDVALIDITY)")
    assert b"MESSAGES 0" in data[0] and b"UIDNEXT 1" in data[0], data
    m.logout()


def test_fetch_flags_current_without_noop(tern):
    """Session A stores a flag; session B's next FETCH FLAGS answers it (RFC 3501 lets a server delay untagged
    updates, never answer a FETCH with flags that are no longer true)."""
    a, b = login(tern), login(tern)
    a.append("INBOX", None, None, message("flag me", ALICE, ALICE))
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "(\\Flagged)")
    typ, data = b.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in b" ".join(d if isinstance(d, bytes) else d[0] for d in data), data
    a.store("1", "-FLAGS", "(\\Flagged)")
    typ, data = b.fetch("1", "(FLAGS)")
    assert b"\\Flagged" not in b" ".join(d if isinstance(d, bytes) else d[0] for d in data), data
    # SEARCH sees the same.
    a.store("1", "+FLAGS", "(\\Answered)")
    assert b.search(None, "ANSWERED")[1] == [b"1"]
    for c in (a, b):
        c.logout()


def test_flags_current_while_an_expunge_is_held_back(tern):
    """B may not hear of A's expunge during FETCH, but the other messages' flags it answers are current and the
    sequence numbers stay as B knows them until NOOP reports the EXPUNGE."""
    a, b = login(tern), login(tern)
    for s in ("one", "two", "three"):
        a.append("INBOX", None, None, message(s, ALICE, ALICE))
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "(\\Deleted)")
    a.expunge()
    a.store("2", "+FLAGS", "(\\Seen)")   # "three", now number 2 for A
    typ, data = b.fetch("3", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b" ".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data)
    assert b"three" in text and b"\\Seen" in text, data
    assert "EXPUNGE" not in b.untagged_responses, "EXPUNGE during FETCH"
    b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"1"], b.untagged_responses
    typ, data = b.fetch("2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"three" in b" ".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data)
    for c in (a, b):
        c.logout()


class Raw:
    """A hand-typed IMAP session: each command's response lines in the order the server sent them."""

    def __init__(self, tern, user=ALICE):
        self.sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.n = 0
        assert self.cmd(f'LOGIN {user} "{PASSWORD}"')[-1].split()[1] == b"OK"

    def cmd(self, text):
        self.n += 1
        tag = f"r{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            lines.append(line.rstrip(b"\r\n"))
            if line.startswith(tag + b" "):
                return lines


def test_new_keyword_announced_in_flags_before_fetch(tern):
    a, b = Raw(tern), Raw(tern)
    imaplib_session = login(tern)
    imaplib_session.append("INBOX", None, None, message("keyword me", ALICE, ALICE))
    imaplib_session.logout()
    a.cmd("SELECT INBOX")
    selected = b.cmd("SELECT INBOX")
    assert b"$Important" not in b"\n".join(selected)
    lines = a.cmd("STORE 1 +FLAGS ($Important)")
    flags = next(i for i, l in enumerate(lines) if l.startswith(b"* FLAGS"))
    fetch = next(i for i, l in enumerate(lines) if l.startswith(b"* ") and b" FETCH (" in l)
    assert b"$Important" in lines[flags] and flags < fetch, lines
    assert any(l.startswith(b"* OK [PERMANENTFLAGS") and b"$Important" in l for l in lines[:fetch]), lines
    # The other session hears of the keyword before a FETCH names it.
    lines = b.cmd("FETCH 1 (FLAGS)")
    flags = next(i for i, l in enumerate(lines) if l.startswith(b"* FLAGS"))
    fetch = max(i for i, l in enumerate(lines) if l.startswith(b"* ") and b" FETCH (" in l)
    assert b"$Important" in lines[flags] and flags < fetch and b"$Important" in lines[fetch], lines
    # A new SELECT lists it from the start.
    assert any(l.startswith(b"* FLAGS") and b"$Important" in l for l in b.cmd("SELECT INBOX"))


def test_senton_compares_the_date_fields_own_day(tern):
    """RFC 9051 §6.4.4: SENTON/SENTBEFORE/SENTSINCE disregard time and zone: 23:30 at -0800 is still the 23rd."""
    m = login(tern)
    m.append("INBOX", None, None, b"From: a@example.test\r\nSubject: late\r\nDate: Mon, 23 Nov 2026 23:30:00 -0800\r\n\r\nx\r\n")
    m.append("INBOX", None, None, b"From: a@example.test\r\nSubject: early\r\nDate: Tue, 24 Nov 2026 00:10:00 +1300\r\n\r\nx\r\n")
    m.select("INBOX")
    assert m.search(None, "SENTON", "23-Nov-2026")[1] == [b"1"]
    assert m.search(None, "SENTON", "24-Nov-2026")[1] == [b"2"]
    assert m.search(None, "SENTBEFORE", "24-Nov-2026")[1] == [b"1"]
    assert m.search(None, "SENTSINCE", "24-Nov-2026")[1] == [b"2"]
    m.logout()


def test_fetch_modseq_enables_condstore(tern):
    """RFC 7162 §3.1: FETCH MODSEQ is a CONDSTORE enabling command; later FETCH FLAGS and STORE responses carry MODSEQ."""
    a = Raw(tern)
    session = login(tern)
    session.append("INBOX", None, None, message("modseq", ALICE, ALICE))
    session.logout()
    a.cmd("SELECT INBOX")
    lines = a.cmd("FETCH 1 (FLAGS)")
    assert not any(b"MODSEQ" in l for l in lines), lines
    assert any(b"MODSEQ (" in l for l in a.cmd("FETCH 1 (MODSEQ)"))
    assert any(b"FLAGS" in l and b"MODSEQ (" in l for l in a.cmd("FETCH 1 (FLAGS)"))
    assert any(b"FLAGS" in l and b"MODSEQ (" in l for l in a.cmd("STORE 1 +FLAGS (\\Seen)"))


def test_broken_binary_part_ends_with_no_and_the_stream_stays_parseable(tern):
    a = Raw(tern)
    session = login(tern)
    session.append("INBOX", None, None, b"From: a@example.test\r\nSubject: odd\r\nContent-Transfer-Encoding: x-odd\r\n\r\nabc\r\n")
    session.logout()
    a.cmd("SELECT INBOX")
    lines = a.cmd("FETCH 1 (UID BINARY[1])")
    assert lines[-1].split()[1] == b"NO" and b"UNKNOWN-CTE" in lines[-1], lines
    assert all(l.startswith(b"r") for l in lines), lines   # no half-written FETCH response before the NO
    assert a.cmd("NOOP")[-1].split()[1] == b"OK"


def test_nul_in_an_ordinary_literal_is_refused(tern):
    a = Raw(tern)
    a.n += 1
    a.sock.sendall(b"n1 APPEND INBOX {5+}\r\na\x00b\r\n\r\n")
    reply = a.file.readline()
    assert reply.startswith(b"n1 BAD"), reply
    assert a.cmd("NOOP")[-1].split()[1] == b"OK"
    a.n += 1
    a.sock.sendall(b"n2 APPEND INBOX ~{5+}\r\na\x00b\r\n\r\n")
    reply = a.file.readline()
    assert reply.startswith(b"n2 OK"), reply


def test_list_and_lsub_show_parents_that_do_not_exist(tern):
    r = Raw(tern)
    assert r.cmd("CREATE work/projects")[-1].split()[1] == b"OK"
    r.cmd("SUBSCRIBE work/projects")
    # RFC 3501 §6.3.9: LSUB with % reaches "work", not subscribed itself: \Noselect.
    assert b'* LSUB (\\Noselect) "/" "work"' in r.cmd('LSUB "" %')
    assert b'* LSUB () "/" "work/projects"' in r.cmd('LSUB "" *')
    # A rev1 LIST shows the parent as \Noselect with children; RFC 5258 RECURSIVEMATCH tells of the subscribed child.
    assert b'* LIST (\\Noselect \\HasChildren) "/" "work"' in r.cmd('LIST "" %')
    assert b'* LIST (\\NonExistent \\HasChildren) "/" "work" ("CHILDINFO" ("SUBSCRIBED"))' in r.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
    assert r.cmd('LIST (RECURSIVEMATCH) "" %')[-1].split()[1] == b"BAD"
    # A subscribed mailbox that is deleted stays subscribed (RFC 9051 §6.3.7) and is listed as \NonExistent.
    r.cmd("CREATE old")
    r.cmd("SUBSCRIBE old")
    r.cmd("DELETE old")
    assert b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "old"' in r.cmd('LIST (SUBSCRIBED) "" *')
    # IMAP4rev2 says \NonExistent for the parent too.
    r.cmd("ENABLE IMAP4rev2")
    assert b'* LIST (\\NonExistent \\HasChildren) "/" "work"' in r.cmd('LIST "" %')


def test_imap4rev2_answers_search_with_esearch_and_sends_no_recent(tern):
    session = login(tern)
    session.append("INBOX", None, None, message("rev2", ALICE, ALICE))
    session.logout()
    r = Raw(tern)
    rev1 = r.cmd("SELECT INBOX")
    assert b"* 1 RECENT" in rev1
    assert b"* SEARCH 1" in r.cmd("SEARCH ALL")
    r.cmd("ENABLE IMAP4rev2")
    selected = r.cmd("SELECT INBOX")
    assert not any(b"RECENT" in l for l in selected), selected
    lines = r.cmd("SEARCH ALL")
    assert lines[0] == f'* ESEARCH (TAG "r{r.n}") ALL 1'.encode(), lines
    lines = r.cmd("UID SEARCH SUBJECT nothing-like-this")
    assert lines[0] == f'* ESEARCH (TAG "r{r.n}") UID'.encode(), lines


def test_per_user_connection_limit(make_tern):
    """limits.max_connections_per_user: sessions beyond it get * BYE [LIMIT]; closing one makes room again."""
    t = make_tern({"limits": {"max_connections_per_user": 3}})
    sessions = [login(t) for _ in range(3)]
    other = login(t, BOB)   # another account is not affected
    r = socket.create_connection(("127.0.0.1", t.imap_port), timeout=10)
    f = r.makefile("rb")
    f.readline()
    r.sendall(f'x LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    reply = f.readline()
    assert reply.startswith(b"* BYE [LIMIT]"), reply
    assert f.readline() == b"", "the connection stays open after BYE"
    sessions.pop().logout()
    for _ in range(50):   # the closed session's count is released when its connection ends
        try:
            sessions.append(login(t))
            break
        except imaplib.IMAP4.abort:
            time.sleep(0.1)
    assert len(sessions) == 3
    for s in sessions + [other]:
        s.logout()


def test_recent_goes_to_the_first_session_only(tern):
    """RFC 3501 §2.3.2: \\Recent is set in the first session to learn of a message; EXAMINE does not take it away."""
    session = login(tern)
    session.append("INBOX", None, None, message("recent one", ALICE, ALICE))
    session.logout()
    watcher, first, second = Raw(tern), Raw(tern), Raw(tern)
    assert b"* 1 RECENT" in watcher.cmd("EXAMINE INBOX")
    assert b"STATUS" in second.cmd("STATUS INBOX (RECENT)")[0] and b"RECENT 1" in second.cmd("STATUS INBOX (RECENT)")[0]
    assert b"* 1 RECENT" in first.cmd("SELECT INBOX")
    assert any(b"\\Recent" in l for l in first.cmd("FETCH 1 (FLAGS)"))
    assert first.cmd("SEARCH RECENT")[0] == b"* SEARCH 1"
    assert first.cmd("SEARCH NEW")[0] == b"* SEARCH 1"
    assert b"* 0 RECENT" in second.cmd("SELECT INBOX")
    assert not any(b"\\Recent" in l for l in second.cmd("FETCH 1 (FLAGS)"))
    assert second.cmd("SEARCH OLD")[0] == b"* SEARCH 1"
    # New mail while both have it selected: one of them gets it as recent, never both.
    session = login(tern)
    session.append("INBOX", None, None, message("recent two", ALICE, ALICE))
    session.logout()
    a, b = first.cmd("NOOP"), second.cmd("NOOP")
    counts = [int(l.split()[1]) for l in a + b if l.endswith(b"RECENT")]
    assert counts == [2, 0], (a, b)   # the first to hear of message 2 gets it; it keeps message 1
    recent2 = [c for c in (first, second) if any(b"\\Recent" in l for l in c.cmd("FETCH 2 (FLAGS)"))]
    assert len(recent2) == 1
    # IMAP4rev2 sessions never see \Recent.
    rev2 = Raw(tern)
    rev2.cmd("ENABLE IMAP4rev2")
    rev2.cmd("SELECT INBOX")
    assert not any(b"Recent" in l for l in rev2.cmd("FETCH 1:* (FLAGS)"))


def test_envelope_source_route_and_groups(tern):
    session = login(tern)
    session.append("INBOX", None, None, b"From: a@example.test\r\nTo: <@relay1.example,@relay2.example:user@example.com>\r\n"
                                        b"Cc: friends: b@example.test, \"C D\" <c@example.test>;\r\nSubject: route\r\n\r\nx\r\n")
    session.logout()
    r = Raw(tern)
    r.cmd("SELECT INBOX")
    env = r.cmd("FETCH 1 (ENVELOPE)")[0]
    # RFC 3501 §7.4.2: (name adl mailbox host); a group is (NIL NIL name NIL) ... (NIL NIL NIL NIL).
    assert b'((NIL "@relay1.example,@relay2.example" "user" "example.com"))' in env, env
    assert b'((NIL NIL "friends" NIL)(NIL NIL "b" "example.test")("C D" NIL "c" "example.test")(NIL NIL NIL NIL))' in env, env


def test_impossible_mailbox_names_get_no_not_bad(tern):
    """A well-formed command naming a mailbox that cannot exist gets NO [CANNOT]; only a syntax error gets BAD."""
    r = Raw(tern)
    for name in ('"a*b"', '"a%b"', '"/lead"', '"a//b"'):
        reply = r.cmd(f"CREATE {name}")[-1]
        assert reply.split()[1:3] == [b"NO", b"[CANNOT]"], (name, reply)
    assert r.cmd('CREATE "trail/"')[-1].split()[1] == b"OK"   # RFC 9051 §6.3.4: the trailing delimiter is dropped
    assert b'"trail"' in b"".join(r.cmd('LIST "" trail'))
    assert r.cmd("CREATE a b c")[-1].split()[1] == b"BAD"


def test_thread_references_loops_and_base_subjects(tern):
    """RFC 5256: a References loop or self-reference neither hangs nor duplicates a message; base subjects drop Re:,
    Fw:, [tags], (fwd) and decode encoded words."""
    s = login(tern)

    def add(mid, refs, subject, hour):
        s.append("INBOX", None, None, (f"From: a@example.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 {hour}:00:00 +0000\r\n"
                                       f"Message-ID: {mid}\r\n{refs}\r\nx\r\n").encode())
    add("<a@x>", "References: <b@x>", "loop a", 10)
    add("<b@x>", "References: <a@x>", "loop b", 11)
    add("<c@x>", "References: <c@x>", "self", 12)
    add("<d@x>", "References: <e@x> <d@x> <e@x>", "Re: [list] Fwd: Hello (fwd)", 13)
    add("<f@x>", "", "=?UTF-8?B?UmU6IEhlbGxv?=", 14)
    add("<g@x>", "", "Fw: hello", 15)
    add("<h@x>", "", "Re: re: RE:  hello  ", 16)
    s.select("INBOX")
    typ, data = s.thread("REFERENCES", "UTF-8", "ALL")
    numbers = [int(n) for n in re.findall(rb"\d+", data[0])]
    assert sorted(numbers) == list(range(1, 8)), data   # every message once
    assert s.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"4 5 6 7 1 2 3"]
    typ, data = s.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
    assert data == [b"(1)(2)(3)(4 (5)(6)(7))"], data
    s.logout()


def test_multiappend_is_all_or_none(tern):
    """RFC 3502: if any message of a MULTIAPPEND cannot be appended, none is."""
    r = Raw(tern)
    r.n += 1
    big = b"Subject: big\r\n\r\n" + b"x" * 100_000 + b"\r\n"
    small = b"Subject: small\r\n\r\nsmall\r\n"
    r.sock.sendall(b"m1 APPEND INBOX {%d+}\r\n" % len(big) + big + b' "31-Feb-2026 99:00:00 +0000" {%d+}\r\n' % len(small) + small + b"\r\n")
    reply = r.file.readline()
    assert reply.startswith(b"m1 BAD") or reply.startswith(b"m1 NO"), reply
    assert b"MESSAGES 0" in r.cmd("STATUS INBOX (MESSAGES)")[0]
    r.n += 1
    r.sock.sendall(b"m2 APPEND INBOX {%d+}\r\n" % len(big) + big + b" {%d+}\r\n" % len(small) + small + b"\r\n")
    reply = r.file.readline()
    assert reply.startswith(b"m2 OK [APPENDUID") and reply.split()[4] == b"1:2]", reply


def test_within_and_status_size(tern):
    """WITHIN (RFC 5032) against the server's clock, and STATUS=SIZE (RFC 8438), both advertised."""
    m = login(tern)
    assert "WITHIN" in m.capabilities and "STATUS=SIZE" in m.capabilities
    old, new = message("two days old", ALICE, ALICE), message("just now", ALICE, ALICE)
    m.append("INBOX", None, imaplib.Time2Internaldate(time.time() - 2 * 86400), old)
    m.append("INBOX", None, imaplib.Time2Internaldate(time.time()), new)
    m.select("INBOX")
    assert m.search(None, "YOUNGER", "3600")[1] == [b"2"]
    assert m.search(None, "OLDER", "3600")[1] == [b"1"]
    typ, data = m.status("INBOX", "(SIZE MESSAGES)")
    assert f"SIZE {len(old) + len(new)}".encode() in data[0] and b"MESSAGES 2" in data[0], data
    m.logout()


def test_objectid_savedate_and_preview(tern):
    """OBJECTID (RFC 8474): a mailbox keeps its MAILBOXID across RENAME, a message its EMAILID across COPY and MOVE,
    and ids of deleted mailboxes and messages are never seen again. SAVEDATE (RFC 8514): when the message was put in
    this mailbox, not its arrival. PREVIEW (RFC 8970): the start of the text without markup."""
    m = login(tern)
    typ, data = m.create("Projects")
    assert typ == "OK" and re.match(rb"\[MAILBOXID \((F\d+)\)\]", data[0]), data
    projects_id = re.match(rb"\[MAILBOXID \((F\d+)\)\]", data[0]).group(1)
    typ, data = m.status("Projects", "(MAILBOXID MESSAGES)")
    assert data == [b'"Projects" (MAILBOXID (' + projects_id + b") MESSAGES 0)"], data
    m.rename("Projects", "Work")
    assert m.status("Work", "(MAILBOXID)")[1] == [b'"Work" (MAILBOXID (' + projects_id + b"))"]
    assert b"* OK [MAILBOXID (" + projects_id + b")] Ok" in Raw(tern).cmd("SELECT Work")
    html = (b"From: a@example.test\r\nSubject: preview me\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/html\r\n\r\n<p>Lunch <b>at</b> noon?</p>\r\n--b--\r\n")
    # Arrived (INTERNALDATE) in 2020; saved now.
    m.append("Work", None, '"01-Jan-2020 10:00:00 +0000"', html)
    m.select("Work")
    typ, data = m.fetch("1", "(EMAILID THREADID SAVEDATE INTERNALDATE PREVIEW)")
    line = data[0]
    email_id = re.search(rb"EMAILID \((M\d+)\)", line).group(1)
    assert b"THREADID NIL" in line and b'INTERNALDATE " 1-Jan-2020 10:00:00 +0000"' in line, line
    saved = re.search(rb'SAVEDATE ("[^"]+")', line).group(1)
    assert time.mktime(imaplib.Internaldate2tuple(b"INTERNALDATE " + saved)) > time.mktime((2020, 1, 2, 0, 0, 0, 0, 0, 0)), line
    assert b'PREVIEW "Lunch at noon?"' in line, line
    # The saved date is searched apart from the arrival date.
    assert m.search(None, "SAVEDSINCE", "2-Jan-2020")[1] == [b"1"]
    assert m.search(None, "SINCE", "2-Jan-2020")[1] == [b""]
    assert m.search(None, "SAVEDATESUPPORTED")[1] == [b"1"]
    assert m.search(None, "EMAILID", email_id.decode())[1] == [b"1"]
    # COPY and MOVE keep the EMAILID; the copy has a save date of its own.
    m.copy("1", "INBOX")
    m.select("INBOX")
    typ, data = m.fetch("1", "(EMAILID)")
    assert b"EMAILID (" + email_id + b")" in data[0], data
    m.select("Work")
    typ, data = m.uid("MOVE", "1", "Sent")
    m.select("Sent")
    assert m.search(None, "EMAILID", email_id.decode())[1] == [b"1"]
    # A deleted mailbox's id is not handed to the next one made.
    m.select("INBOX")
    m.delete("Work")
    typ, data = m.create("Work")
    assert re.match(rb"\[MAILBOXID \((F\d+)\)\]", data[0]).group(1) != projects_id


def test_searchres_esort_and_partial(tern):
    """SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) keeps a result for `$`; ESORT (RFC 5267) answers SORT RETURN with
    ESEARCH in sort order; PARTIAL (RFC 9394) pages through SEARCH, SORT and FETCH results."""
    m = login(tern)
    for i in range(10):
        m.append("INBOX", "(\\Flagged)" if i % 3 == 0 else None, None,
                 f"Subject: page {i}\r\nDate: {date_now(-i * 60)}\r\n\r\nbody {i}\r\n".encode())
    m.logout()
    r = Raw(tern)
    r.cmd("SELECT INBOX")
    # SAVE alone: no ESEARCH, only OK; `$` then addresses the flagged messages (1, 4, 7, 10).
    lines = r.cmd("SEARCH RETURN (SAVE) FLAGGED")
    assert len(lines) == 1 and lines[0].split()[1] == b"OK", lines
    lines = r.cmd("FETCH $ (FLAGS)")
    assert [l.split()[1] for l in lines[:-1]] == [b"1", b"4", b"7", b"10"], lines
    assert r.cmd("SEARCH $ SUBJECT page")[0] == b"* SEARCH 1 4 7 10"
    # SAVE with MIN alone keeps only the lowest; the UIDs are kept, so `$` works with UID commands too.
    r.cmd("UID SEARCH RETURN (SAVE MIN) FLAGGED")
    assert r.cmd("UID FETCH $ (UID)")[0] == b"* 1 FETCH (UID 1)"
    # An expunged message drops out of `$`.
    r.cmd("SEARCH RETURN (SAVE) FLAGGED")
    r.cmd("STORE 4 +FLAGS.SILENT (\\Deleted)")
    r.cmd("EXPUNGE")
    assert r.cmd("SEARCH $")[0] == b"* SEARCH 1 6 9"
    # A SEARCH with SAVE that fails leaves `$` empty.
    assert b"BAD" in r.cmd("SEARCH RETURN (SAVE) NOSUCHKEY")[-1]
    assert r.cmd("SEARCH $")[0] == b"* SEARCH"
    # ESORT: the order of the sort, MIN and MAX its first and last.
    lines = r.cmd("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert lines[0] == f'* ESEARCH (TAG "{tag}") MIN 9 MAX 1 COUNT 9 ALL 9:1'.encode().replace(b"9:1", b"9,8,7,6,5,4,3,2,1"), lines
    # PARTIAL: the last three of a SEARCH, the first two of a SORT, the last two messages of a FETCH.
    lines = r.cmd("UID SEARCH RETURN (PARTIAL -1:-3) ALL")
    tag = lines[-1].split()[0].decode()
    assert lines[0] == f'* ESEARCH (TAG "{tag}") UID PARTIAL (-1:-3 8:10)'.encode(), lines
    lines = r.cmd("SORT RETURN (PARTIAL 1:2) (REVERSE DATE) UTF-8 ALL")
    tag = lines[-1].split()[0].decode()
    assert lines[0] == f'* ESEARCH (TAG "{tag}") PARTIAL (1:2 1:2)'.encode(), lines
    lines = r.cmd("UID FETCH 1:* (FLAGS) (PARTIAL -1:-2)")
    assert [l.split()[1] for l in lines[:-1]] == [b"8", b"9"], lines
    # A new SELECT forgets `$`.
    r.cmd("SEARCH RETURN (SAVE) ALL")
    r.cmd("SELECT INBOX")
    assert r.cmd("SEARCH $")[0] == b"* SEARCH"


def test_catenate_builds_a_message_from_parts_on_the_server(tern):
    """CATENATE (RFC 4469): a client forwards an attachment without downloading it, by naming it with an IMAP URL."""
    m = login(tern)
    original = (b"From: a@example.test\r\nSubject: with attachment\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b--\r\n")
    m.append("INBOX", None, None, original)
    validity = m.status("INBOX", "(UIDVALIDITY)")[1][0].split()[-1].rstrip(b")").decode()
    m.logout()
    r = Raw(tern)
    head = b"From: me@example.test\r\nSubject: forwarding\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"
    mid = b"\r\n--z\r\n"
    tail = b"\r\n--z--\r\n"
    url_mime = f"/INBOX;UIDVALIDITY={validity}/;UID=1/;SECTION=2.MIME"
    url_body = f"/INBOX/;UID=1/;SECTION=2"
    command = (f"APPEND Drafts (\\Draft) CATENATE (TEXT {{{len(head)}+}}\r\n".encode() + head +
               f' URL "{url_mime}" URL "{url_body}" TEXT {{{len(tail)}+}}\r\n'.encode() + tail + b")")
    lines = r.cmd(command.decode("latin-1"))
    assert lines[-1].split()[1] == b"OK" and b"APPENDUID" in lines[-1], lines
    m = login(tern)
    m.select("Drafts")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
    built = data[0][1]
    part_mime = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert built == head + part_mime + b"AAECAwQF" + tail, built
    assert b"\\Draft" in data[0][0]
    # The result is a message like any other: its attachment is part 1 of the new message... and readable as such.
    typ, data = m.fetch("1", "(BINARY.PEEK[1])")
    assert data[0][1] == bytes([0, 1, 2, 3, 4, 5]), data
    # A URL that cannot be used: NO [BADURL], and nothing is appended (with MULTIAPPEND, none of the messages).
    for url in (f"/INBOX;UIDVALIDITY={int(validity) + 1}/;UID=1", "/INBOX/;UID=99", "/Nowhere/;UID=1", "/INBOX/;UID=1/;SECTION=7",
                "imap://bob%40example.test@mx.tern.test/INBOX/;UID=1", "not a url"):
        lines = r.cmd(f'APPEND Drafts {{2+}}\r\nok CATENATE (URL "{url}")')
        assert lines[-1].split()[1:3] == [b"NO", b"[BADURL"], (url, lines)
    assert m.select("Drafts")[1] == [b"1"]
    # An absolute URL naming this server and this user works too.
    lines = r.cmd(f'APPEND Drafts CATENATE (URL "imap://alice%40example.test@mx.tern.test/INBOX/;UID=1/;SECTION=1")')
    assert lines[-1].split()[1] == b"OK", lines
    m.select("Drafts")
    assert m.fetch("2", "(BODY.PEEK[])")[1][0][1] == b"hello"
