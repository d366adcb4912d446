"""POP3 and IMAP on one mailbox at once, checked against a model (Python's poplib and imaplib, clients nobody here
wrote). Two IMAP clients append, flag, expunge and move messages at random while a POP3 client opens session after
session: it lists, reads (RETR, TOP), deletes some and ends with QUIT, RSET and QUIT, or a dropped connection.

What every POP3 session must show (RFC 1939), checked against what the IMAP clients were told (APPENDUID) and when:
- its listing (STAT, LIST, UIDL) agrees with itself, holds every message whose APPEND completed before the login and
  whose removal had not begun by then, and none whose removal had completed before it;
- a unique-id names one message for good: the same UID and the same content in every session;
- RETR and TOP give the content appended with that UID (the Subject), with the size LIST gave; they may fail only for
  a message another client was removing meanwhile;
- DELE takes effect at QUIT and only then: after QUIT the deleted messages are gone for IMAP too; after RSET and QUIT
  or a dropped connection, none of them went.
"""
import imaplib
import poplib
import random
import re
import socket
import threading
import time

from conftest import ALICE

PASSWORD = "secret-password-1"


class Truth:
    def __init__(self):
        self.lock = threading.Lock()
        self.clock = 0
        self.subjects = {}       # IMAP UID -> subject appended with it
        self.appended_at = {}    # UID -> tick when its APPEND had completed
        self.removal_begun = {}  # UID -> tick when an EXPUNGE, MOVE or POP3 QUIT that removes it began
        self.removed_at = {}     # UID -> tick when that removal had completed
        self.observed = []       # (uid, subject) seen before the APPEND's answer was recorded
        self.problems = []

    def tick(self):
        with self.lock:
            self.clock += 1
            return self.clock

    def fail(self, what):
        with self.lock:
            if len(self.problems) < 30:
                self.problems.append(what)


def subject_of(raw):
    m = re.search(rb"^Subject: (.*?)\r?$", raw, re.M)
    return m.group(1).decode() if m else None


def imap_client(port, truth, seed, steps):
    rng = random.Random(seed)
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    mine = []
    for n in range(steps):
        roll = rng.random()
        if roll < 0.45 or not mine:
            subject = f"model {seed}-{n}-{rng.randrange(10**6)}"
            body = "line\r\n" * rng.randrange(1, 40)
            msg = f"From: c{seed}@example.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\n{body}".encode()
            typ, data = imap.append("INBOX", None, None, msg)
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            if typ != "OK" or not m:
                truth.fail(f"APPEND: {typ} {data}")
                continue
            uid = int(m.group(1))
            t = truth.tick()
            with truth.lock:
                truth.subjects[uid] = subject
                truth.appended_at[uid] = t
            mine.append(uid)
        elif roll < 0.65:
            uid = mine.pop(rng.randrange(len(mine)))
            with truth.lock:
                truth.clock += 1
                truth.removal_begun.setdefault(uid, truth.clock)
            if rng.random() < 0.5:
                imap.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
                typ, data = imap.uid("EXPUNGE", str(uid))
            else:
                typ, data = imap.uid("MOVE", str(uid), "Archive")
            # A refusal (the POP3 client removed it first) is fine; an answer means it is gone now.
            with truth.lock:
                truth.clock += 1
                truth.removed_at.setdefault(uid, truth.clock)
        elif roll < 0.85 and mine:
            uid = rng.choice(mine)
            imap.uid("STORE", str(uid), rng.choice(["+FLAGS", "-FLAGS"]), "(\\Seen $Label1)")
        else:
            imap.noop()
    imap.logout()


def pop3_sessions(port, imap_port, truth, seed, sessions, stop):
    rng = random.Random(seed)
    known = {}  # unique-id -> (uid, subject)
    checker = imaplib.IMAP4("127.0.0.1", imap_port)
    checker.login(ALICE, PASSWORD)
    checker.select("INBOX")
    s = 0
    while s < sessions and not stop.is_set():
        s += 1
        start = truth.tick()
        try:
            p = poplib.POP3("127.0.0.1", port, timeout=30)
            p.user(ALICE)
            p.pass_(PASSWORD)
        except poplib.error_proto as e:
            if b"IN-USE" in str(e).encode():   # the previous session's lock, just released
                time.sleep(0.05)
                continue
            truth.fail(f"login: {e}")
            continue
        logged_in = truth.tick()
        count, total = p.stat()
        listing = {int(l.split()[0]): int(l.split()[1]) for l in p.list()[1]}
        uidls = {int(l.split()[0]): l.split()[1].decode() for l in p.uidl()[1]}
        if count != len(listing) or total != sum(listing.values()) or set(listing) != set(uidls) or set(listing) != set(range(1, count + 1)):
            truth.fail(f"session {s}: STAT {count} {total}, LIST {listing}, UIDL {uidls}")
        if len(set(uidls.values())) != len(uidls):
            truth.fail(f"session {s}: repeated unique-ids {uidls}")
        uid_of = {n: int(u[:8], 16) for n, u in uidls.items()}
        listed = set(uid_of.values())
        with truth.lock:
            for uid, t in truth.appended_at.items():
                begun = truth.removal_begun.get(uid)
                if t < start and (begun is None or begun > logged_in) and uid not in listed:
                    truth.problems.append(f"session {s}: UID {uid} (appended at {t}) missing from the listing")
            for uid in listed:
                done = truth.removed_at.get(uid)
                if done is not None and done < start:
                    truth.problems.append(f"session {s}: UID {uid} listed after its removal completed at {done}")
        for n, u in uidls.items():
            if u in known and known[u][0] != uid_of[n]:
                truth.fail(f"unique-id {u} named UID {known[u][0]}, now {uid_of[n]}")
        # Read some messages: the content appended with that UID, of the listed size.
        for n in rng.sample(sorted(uidls), min(3, len(uidls))):
            uid = uid_of[n]
            try:
                if rng.random() < 0.7:
                    _, lines, _ = p.retr(n)
                    raw = b"\r\n".join(lines) + b"\r\n"
                    if len(raw) != listing[n]:
                        truth.fail(f"RETR {n} (UID {uid}): {len(raw)} octets, LIST said {listing[n]}")
                else:
                    _, lines, _ = p.top(n, 0)
                    raw = b"\r\n".join(lines) + b"\r\n"
            except poplib.error_proto as e:
                with truth.lock:
                    begun = truth.removal_begun.get(uid)
                if begun is None:
                    truth.fail(f"RETR/TOP {n} (UID {uid}) failed for a message nobody removed: {e}")
                continue
            got = subject_of(raw)
            with truth.lock:
                expected = truth.subjects.get(uid)
                if expected is None:
                    truth.observed.append((uid, got))
            if expected is not None and got != expected:
                truth.fail(f"UID {uid}: Subject {got!r}, appended as {expected!r}")
            known[uidls[n]] = (uid, got)
        # Delete some, then end one of three ways.
        deleted = [n for n in uidls if rng.random() < 0.08]
        for n in deleted:
            p.dele(n)
        ending = rng.choice(["quit", "quit", "rset", "drop"])
        doomed = [uid_of[n] for n in deleted]
        if ending == "quit":
            with truth.lock:
                for uid in doomed:
                    truth.clock += 1
                    truth.removal_begun.setdefault(uid, truth.clock)
            p.quit()
            with truth.lock:
                for uid in doomed:
                    truth.clock += 1
                    truth.removed_at.setdefault(uid, truth.clock)
        elif ending == "rset":
            p.rset()
            p.quit()
        else:
            p.sock.shutdown(socket.SHUT_RDWR)
            p.sock.close()
            time.sleep(0.05)   # the server notices the hang-up and frees the maildrop
        checker.noop()
        for uid in doomed:
            typ, data = checker.uid("SEARCH", f"UID {uid}")
            present = str(uid).encode() in (data[0] or b"").split()
            with truth.lock:
                begun = truth.removal_begun.get(uid)
            if ending == "quit" and present:
                truth.fail(f"UID {uid} deleted by POP3 and QUIT, still in INBOX")
            if ending != "quit" and not present and begun is None:
                truth.fail(f"UID {uid} gone after POP3 {ending} (nothing else removed it)")
    checker.logout()


def test_pop3_and_imap_at_once_agree_with_the_model(tern):
    truth = Truth()
    stop = threading.Event()
    errors = []

    def guarded(f, *args):
        try:
            f(*args)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{f.__name__}: {e!r}")
            stop.set()

    imap_threads = [threading.Thread(target=guarded, args=(imap_client, tern.imap_port, truth, seed, 150)) for seed in (1, 2)]
    # POP3 sessions go on until the IMAP clients are done (at most 400).
    pop_thread = threading.Thread(target=guarded, args=(pop3_sessions, tern.pop3_port, tern.imap_port, truth, 7, 400, stop))
    for t in imap_threads + [pop_thread]:
        t.start()
    for t in imap_threads:
        t.join(timeout=120)
    stop.set()
    pop_thread.join(timeout=120)
    assert not errors, errors
    for uid, got in truth.observed:
        if truth.subjects.get(uid) != got:
            truth.problems.append(f"UID {uid}: Subject {got!r} read before its APPEND answered, appended as {truth.subjects.get(uid)!r}")
    assert not truth.problems, truth.problems
    # The run did what it is for: messages came and went on both sides.
    assert len(truth.subjects) > 50 and len(truth.removed_at) > 20
