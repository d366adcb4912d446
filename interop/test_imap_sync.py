"""Real synchronising clients: curl's imap:// and mbsync (isync) both ways over a 1,000-message mailbox."""
import imaplib
import os
import smtplib
import subprocess
from pathlib import Path

from conftest import ALICE

PASSWORD = "secret-password-1"


def test_curl_imap(tern):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail("x@remote.test", [ALICE], b"Subject: for curl\r\n\r\nfetched by curl\r\n")
    base = f"imap://127.0.0.1:{tern.imap_port}"
    auth = ["--user", f"{ALICE}:{PASSWORD}"]
    r = subprocess.run(["curl", "-s", *auth, f"{base}/"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b'"INBOX"' in r.stdout and b"\\Sent" in r.stdout, r.stdout
    r = subprocess.run(["curl", "-s", *auth, f"{base}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.endswith(b"Subject: for curl\r\n\r\nfetched by curl\r\n")
    r = subprocess.run(["curl", "-s", *auth, f"{base}/INBOX?SUBJECT%20curl"], capture_output=True, timeout=30)
    assert r.stdout.strip() == b"* SEARCH 1"
    r = subprocess.run(["curl", "-s", *auth, "-X", "STATUS INBOX (MESSAGES)", f"{base}/"], capture_output=True, timeout=30)
    assert b"MESSAGES 1" in r.stdout
    # Over STARTTLS, as curl does with --ssl-reqd.
    r = subprocess.run(["curl", "-s", "--ssl-reqd", "-k", *auth, f"{base}/INBOX;UID=1;SECTION=HEADER"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(b"Return-Path:")
    r = subprocess.run(["curl", "-s", "-u", f"{ALICE}:wrong", f"{base}/"], capture_output=True, timeout=30)
    assert r.returncode == 67  # CURLE_LOGIN_DENIED


def write_mbsyncrc(path, tern, local):
    path.write_text(f"""
IMAPAccount tern
Host 127.0.0.1
Port {tern.imap_port}
User {ALICE}
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN LOGIN

IMAPStore remote
Account tern

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")


def mbsync(rc):
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_mbsync_thousand_messages_both_ways(tern, tmp_path):
    # 1,000 messages, pipelined APPENDs with non-synchronizing literals (LITERAL+) in one write.
    import socket
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=60)
    f = sock.makefile("rb")
    f.readline()
    payload = [f'l LOGIN {ALICE} "{PASSWORD}"\r\n'.encode()]
    for i in range(1000):
        msg = f"From: sender{i}@remote.test\r\nSubject: message {i}\r\n\r\nbody {i}\r\n".encode()
        flags = "(\\Seen) " if i % 3 == 0 else ""
        payload.append(f"a{i} APPEND INBOX {flags}{{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
    sock.sendall(b"".join(payload))
    done = 0
    while done < 1001:
        line = f.readline()
        assert line and not line.split(b" ")[1].startswith((b"NO", b"BAD")), line
        if line.split(b" ")[0] != b"*":
            done += 1
    sock.close()
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(ALICE, PASSWORD)
    local = tmp_path / "Mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    write_mbsyncrc(rc, tern, local)
    mbsync(rc)
    inbox = local / "INBOX"
    files = list((inbox / "cur").iterdir()) + list((inbox / "new").iterdir())
    assert len(files) == 1000
    seen = [f for f in files if f.name.split(":2,")[-1].count("S")]
    assert len(seen) == 334
    assert (local / "Sent").is_dir() and (local / "Junk").is_dir()

    # Local changes: flag 10 messages, delete 5 (trashed + expunged), file a new message in a new folder.
    by_subject = {}
    for f in list((inbox / "cur").iterdir()) + list((inbox / "new").iterdir()):
        subject = [l.rstrip(b"\r") for l in f.read_bytes().split(b"\n") if l.startswith(b"Subject: ")][0]
        by_subject[subject.decode()[9:]] = f
    for i in range(10):
        f = by_subject[f"message {i * 10 + 1}"]
        base, _, flags = f.name.partition(":2,")
        f.rename(inbox / "cur" / f"{base}:2,{''.join(sorted(set(flags + 'F')))}")
    for i in range(5):
        by_subject[f"message {i * 7 + 2}"].unlink()
    newbox = local / "Projects"
    for sub in ("cur", "new", "tmp"):
        (newbox / sub).mkdir(parents=True)
    (newbox / "new" / "1.local.host").write_bytes(b"From: me@example.test\r\nSubject: local draft\r\n\r\nwritten offline\r\n")
    mbsync(rc)

    m.select("INBOX")
    assert m.search(None, "ALL")[1][0].count(b" ") + 1 == 995
    flagged = m.search(None, "FLAGGED")[1][0].split()
    assert len(flagged) == 10
    subjects = set()
    for num in m.search(None, "FLAGGED")[1][0].split():
        subjects.add(m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].strip())
    assert subjects == {f"Subject: message {i * 10 + 1}".encode() for i in range(10)}
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    remaining = {d[1].strip().decode()[9:] for d in data if isinstance(d, tuple)}
    deleted = {f"message {i * 7 + 2}" for i in range(5)}
    assert remaining == {f"message {i}" for i in range(1000)} - deleted
    assert m.select("Projects")[1] == [b"1"]
    assert m.fetch("1", "(BODY.PEEK[TEXT])")[1][0][1] == b"written offline\r\n"
    # A second sync changes nothing.
    mbsync(rc)
    m.select("INBOX")
    assert len(m.search(None, "ALL")[1][0].split()) == 995
