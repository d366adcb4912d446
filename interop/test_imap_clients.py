"""Real IMAP clients that nobody here wrote, on real sockets (issue 18): mbsync between two Tern accounts both ways,
imapclient resynchronising with CONDSTORE/QRESYNC after another session's changes, and mutt reading and moving mail."""
import imaplib
import os
import re
import socket
import subprocess
import time

import imapclient
import pexpect

from conftest import ALICE, BOB

PASSWORD = "secret-password-1"
SYSTEM_FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft")


def bulk_append(tern, user, messages):
    """APPENDs every (flags, internaldate, bytes) in one pipelined write with non-synchronizing literals."""
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=120)
    f = sock.makefile("rb")
    f.readline()
    payload = [f'l LOGIN {user} "{PASSWORD}"\r\n'.encode()]
    for i, (flags, date, msg) in enumerate(messages):
        payload.append(f'a{i} APPEND INBOX ({" ".join(flags)}) "{date}" {{{len(msg)}+}}\r\n'.encode() + msg + b"\r\n")
    sock.sendall(b"".join(payload))
    done = 0
    while done < len(messages) + 1:
        line = f.readline()
        assert line and not line.split(b" ")[1].startswith((b"NO", b"BAD")), line
        if line.split(b" ")[0] != b"*":
            done += 1
    sock.close()


def mailbox_state(tern, user, mailbox="INBOX"):
    """Message-ID -> (flags, INTERNALDATE, the whole message) for every message in the mailbox."""
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(user, PASSWORD)
    typ, data = m.select(mailbox, readonly=True)
    assert typ == "OK", data
    state = {}
    if int(data[0]) > 0:
        typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        assert typ == "OK"
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item
            flags = frozenset(f.decode() for f in imaplib.ParseFlags(meta)) - {"\\Recent"}
            date = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
            mid = re.search(rb"Message-ID: <([^>]+)>", body).group(1).decode()
            # mbsync writes an X-TUID field into every message it copies (to find it again after an interrupted
            # run): the one change a copy may carry.
            body = re.sub(rb"(?m)^X-TUID: [^\r\n]*\r\n", b"", body, count=1)
            assert mid not in state, f"{mid} twice in {user}'s {mailbox}"
            state[mid] = (flags, date, body)
    m.logout()
    return state


def sync_message(i, origin, size=0):
    filler = "".join(f"line {n} of the filler text that makes this message larger\r\n" for n in range(size))
    return (f"From: sender{i}@remote.test\r\nTo: {origin}\r\nSubject: message {i} from {origin}\r\n"
            f"Date: Thu, 05 Nov 2026 10:{i % 60:02d}:00 +0000\r\nMessage-ID: <{origin}.{i}@sync.test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"body {i} \xe2\x9c\x93\r\n{filler}").encode("latin-1")


def flags_for(i):
    return tuple(flag for flag, step in zip(SYSTEM_FLAGS, (3, 7, 11, 13)) if i % step == 0)


def internaldate(i):
    return f"{1 + i % 28:02d}-Oct-2026 {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d} +0{i % 10}00"


def instant(date):
    return time.mktime(imaplib.Internaldate2tuple(f'INTERNALDATE "{date}"'.encode()))


def test_mbsync_two_accounts_two_thousand_messages_both_ways_lossless(tern, tmp_path):
    """mbsync (isync) copies alice's 2,000 messages to bob's account and bob's 300 to alice's, with flags and
    arrival dates; changes made on both sides afterwards (flags, expunges, new mail) meet in the middle; a third run
    changes nothing. Nothing is lost or altered on the way: every message's bytes are compared."""
    bulk_append(tern, ALICE, [(flags_for(i), internaldate(i), sync_message(i, "alice", size=i % 50))
                              for i in range(2000)])
    bulk_append(tern, BOB, [(flags_for(i), internaldate(i), sync_message(i, "bob", size=i % 9)) for i in range(300)])
    expected = {}
    for who, count in (("alice", 2000), ("bob", 300)):
        for i in range(count):
            mid = f"{who}.{i}@sync.test"
            expected[mid] = [set(flags_for(i)), sync_message(i, who, size=i % (50 if who == "alice" else 9))]

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    rc = tmp_path / "mbsyncrc"
    accounts = ""
    for name, user in (("alice", ALICE), ("bob", BOB)):
        accounts += f"""
IMAPAccount {name}
Host 127.0.0.1
Port {tern.imap_port}
User {user}
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN

IMAPStore {name}-store
Account {name}
"""
    rc.write_text(accounts + f"""
Channel alice-bob
Far :alice-store:
Near :bob-store:
Patterns INBOX
Create Both
Expunge Both
Sync All
CopyArrivalDate yes
SyncState {state_dir}/
""")

    def mbsync():
        r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=600)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()

    def check_both_sides():
        alice, bob = mailbox_state(tern, ALICE), mailbox_state(tern, BOB)
        assert set(alice) == set(expected), (set(alice) ^ set(expected))
        assert set(bob) == set(expected), (set(bob) ^ set(expected))
        for mid, (flags, body) in expected.items():
            for side in (alice, bob):
                assert side[mid][0] == flags, (mid, side[mid][0], flags)
                assert side[mid][2] == body, mid
            assert alice[mid][1] == bob[mid][1], (mid, alice[mid][1], bob[mid][1])
        return alice, bob

    mbsync()
    alice, _ = check_both_sides()
    # The arrival time is kept to the second (the server writes it in UTC: the same instant).
    assert instant(alice["alice.5@sync.test"][1]) == instant(internaldate(5))

    # Changes on both sides between runs.
    a = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    a.login(ALICE, PASSWORD)
    a.select("INBOX")
    b = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    b.login(BOB, PASSWORD)
    b.select("INBOX")

    def uids_by_message_id(m):
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found = {}
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0]).group(1).decode()
                found[re.search(rb"<([^>]+)>", item[1]).group(1).decode()] = uid
        return found

    alice_uids, bob_uids = uids_by_message_id(a), uids_by_message_id(b)
    assert len(alice_uids) == len(bob_uids) == 2300

    def uid_of(m, mid):
        return (alice_uids if m is a else bob_uids)[mid]

    for i in range(0, 500, 10):  # alice flags 50 of her own messages
        a.uid("STORE", uid_of(a, f"alice.{i}@sync.test"), "+FLAGS", "(\\Flagged)")
        expected[f"alice.{i}@sync.test"][0].add("\\Flagged")
    for i in range(0, 90, 3):  # alice marks 30 unread
        a.uid("STORE", uid_of(a, f"alice.{i}@sync.test"), "-FLAGS", "(\\Seen)")
        expected[f"alice.{i}@sync.test"][0].discard("\\Seen")
    for i in range(1000, 1020):  # alice deletes 20
        a.uid("STORE", uid_of(a, f"alice.{i}@sync.test"), "+FLAGS", "(\\Deleted)")
        del expected[f"alice.{i}@sync.test"]
    a.expunge()
    for i in range(1101, 1181, 2):  # bob reads 40 of alice's messages (others than alice changed)
        b.uid("STORE", uid_of(b, f"alice.{i}@sync.test"), "+FLAGS", "(\\Seen)")
        expected[f"alice.{i}@sync.test"][0].add("\\Seen")
    for i in range(100, 125):  # bob deletes 25 of his own
        b.uid("STORE", uid_of(b, f"bob.{i}@sync.test"), "+FLAGS", "(\\Deleted)")
        del expected[f"bob.{i}@sync.test"]
    b.expunge()
    for i in range(300, 310):  # and bob gets 10 new ones
        msg = sync_message(i, "bob")
        b.append("INBOX", "(\\Answered)", imaplib.Time2Internaldate(1_790_000_000 + i), msg)
        expected[f"bob.{i}@sync.test"] = [{"\\Answered"}, msg]
    a.logout()
    b.logout()

    mbsync()
    alice, bob = check_both_sides()
    assert len(alice) == 2000 + 300 - 20 - 25 + 10
    # A third run finds nothing to do and changes nothing.
    mbsync()
    assert check_both_sides() == (alice, bob)


def flags_of(data):
    """A FETCH's flags but \\Recent, which belongs to one session and is not synchronised."""
    return set(data[b"FLAGS"]) - {b"\\Recent"}


def test_imapclient_resynchronises_with_condstore_and_qresync(tern):
    """imapclient keeps a cache of UIDs, flags and HIGHESTMODSEQ; another session changes flags and expunges; the
    client comes back and asks only for what changed (CHANGEDSINCE + VANISHED), and its cache then equals the mailbox."""
    seed = imapclient.IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False)
    seed.login(ALICE, PASSWORD)
    for i in range(30):
        seed.append("INBOX", f"Subject: resync {i}\r\nMessage-ID: <r{i}@x.test>\r\n\r\nbody {i}\r\n".encode(),
                    flags=("\\Seen",) if i % 2 else ())
    seed.logout()

    c = imapclient.IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False)
    c.login(ALICE, PASSWORD)
    assert b"QRESYNC" in c.capabilities() and b"CONDSTORE" in c.capabilities()
    assert c.enable("QRESYNC") == [b"QRESYNC"]
    info = c.select_folder("INBOX")
    validity, modseq = info[b"UIDVALIDITY"], info[b"HIGHESTMODSEQ"]
    cache = {uid: flags_of(d) for uid, d in c.fetch(c.search("ALL"), ["FLAGS"]).items()}
    assert len(cache) == 30
    c.logout()

    other = imapclient.IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False)
    other.login(ALICE, PASSWORD)
    other.select_folder("INBOX")
    uids = sorted(other.search("ALL"))
    other.add_flags(uids[3:6], [b"\\Flagged"])
    other.remove_flags(uids[1:10:2], [b"\\Seen"])
    other.add_flags(uids[20:23], [b"$Important"])
    other.delete_messages(uids[25:28])
    other.expunge()
    other.append("INBOX", b"Subject: while away\r\nMessage-ID: <away@x.test>\r\n\r\nnew\r\n")
    other.logout()

    c = imapclient.IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False)
    c.login(ALICE, PASSWORD)
    c.enable("QRESYNC")
    info = c.select_folder("INBOX")
    assert info[b"UIDVALIDITY"] == validity and info[b"HIGHESTMODSEQ"] > modseq
    # (imapclient keeps only the answers for the UIDs it asked for: every UID below UIDNEXT.)
    changed = c.fetch(list(range(1, info[b"UIDNEXT"])), ["FLAGS", "MODSEQ"],
                      modifiers=[f"CHANGEDSINCE {modseq}", "VANISHED"])
    vanished = c._imap.untagged_responses.pop("VANISHED", [])
    assert vanished, "no VANISHED (EARLIER) answered"
    gone = set()
    for item in vanished:
        text = item.decode()
        assert text.startswith("(EARLIER) "), text
        for part in text[len("(EARLIER) "):].split(","):
            lo, _, hi = part.partition(":")
            gone.update(range(int(lo), int(hi or lo) + 1))
    assert gone == set(uids[25:28])
    for uid in gone:
        cache.pop(uid)
    for uid, data in changed.items():
        assert data[b"MODSEQ"][0] > modseq
        cache[uid] = flags_of(data)
    # Only what changed was sent: flagged (4-6), unread (2, 4, 6, 8, 10), keywords (21-23) and the new message.
    assert sorted(changed) == [2, 4, 5, 6, 8, 10, 21, 22, 23, 31], sorted(changed)
    truth = {uid: flags_of(d) for uid, d in c.fetch(c.search("ALL"), ["FLAGS"]).items()}
    assert cache == truth
    assert b"$Important" in truth[uids[21]] and b"\\Flagged" in truth[uids[4]] and b"\\Seen" not in truth[uids[3]]
    c.logout()


def test_mutt_reads_and_moves_mail(tern, tmp_path):
    """mutt (in a terminal, driven by keystrokes) lists INBOX, opens a message, saves it to another folder it
    creates and syncs; the message is then in that folder, read, and gone from INBOX."""
    seed = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    seed.login(ALICE, PASSWORD)
    for subject in ("first note", "mutt target", "third note"):
        seed.append("INBOX", None, None, (f"From: someone@remote.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
                                          f"Message-ID: <{subject.replace(' ', '.')}@x.test>\r\n\r\n"
                                          f"the body of {subject}\r\n").encode())
    seed.logout()
    muttrc = tmp_path / "muttrc"
    user = ALICE.replace("@", "%40")
    muttrc.write_text(f"""
set folder="imap://{user}@127.0.0.1:{tern.imap_port}/"
set spoolfile="+INBOX"
set imap_user="{ALICE}"
set imap_pass="{PASSWORD}"
set ssl_starttls=no
set ssl_force_tls=no
set record=""
set postponed="+Drafts"
set mail_check=1
set timeout=1
set confirmappend=no
set confirmcreate=no
set delete=yes
set move=no
set sort=date-sent
set mbox_type=Maildir
set header_cache=""
set message_cachedir=""
set pager_stop=yes
""")
    env = dict(os.environ, TERM="vt100", HOME=str(tmp_path), LANG="C.UTF-8")
    child = pexpect.spawn("mutt", ["-n", "-F", str(muttrc)], env=env, dimensions=(40, 120), timeout=20,
                          encoding="utf-8", codec_errors="replace")
    try:
        child.expect("mutt target")
        child.expect("third note")
        # Go to the second message and open it.
        child.send("2")
        child.sendline("")
        child.send("\r")
        child.expect("the body of mutt target")
        child.send("i")  # back to the index
        child.send("s")
        child.expect("Save to mailbox")
        child.send("\x15")  # clear the suggested name
        child.sendline("=Kept")
        child.expect(r"(?i)saved|1 message|Kept")
        child.send("$")  # sync: the saved message, marked deleted, is expunged
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(ALICE, PASSWORD)
    typ, data = m.select("Kept", readonly=True)
    assert typ == "OK" and data == [b"1"], (typ, data)
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: mutt target" in data[0][1] and b"\\Seen" in data[0][0]
    typ, data = m.select("INBOX", readonly=True)
    assert data == [b"2"]
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = sorted(d[1].strip() for d in data if isinstance(d, tuple))
    assert subjects == [b"Subject: first note", b"Subject: third note"]
    m.logout()
