"""`tern migrate` (issue 21): a whole installation from the embedded SQLite store to PostgreSQL and back. Mail clients
must not notice: every mailbox keeps its UIDVALIDITY, UIDs, MODSEQs, flags and subscriptions (read with imapclient,
CONDSTORE), and `tern export` gives byte-identical mbox and Maildir output at every step."""
import os
import filecmp
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient

from conftest import ALICE, DOMAIN
from ternlib import Tern
from test_postgres_nodes import database  # noqa: F401 (a fixture)

PASSWORD = "secret-password-1"


def mailbox_state(port):
    """What a client has cached: per mailbox its status and every message's UID, flags, MODSEQ, date and size; the
    subscriptions."""
    with IMAPClient("127.0.0.1", port=port, ssl=False) as c:
        c.login(ALICE, PASSWORD)
        c.enable("CONDSTORE")
        state = {"subscribed": sorted(name for _, _, name in c.list_sub_folders())}
        for flags, _, name in c.list_folders():
            status = c.folder_status(name, ["UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "MESSAGES"])
            c.select_folder(name, readonly=True)
            fetched = c.fetch(c.search("ALL"), ["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE"]) if status[b"MESSAGES"] else {}
            # imapclient fetches by UID: the keys are the UIDs.
            state[name] = (sorted(flags), status, sorted((uid, sorted(m[b"FLAGS"]), m[b"MODSEQ"], m[b"INTERNALDATE"],
                                                           m[b"RFC822.SIZE"]) for uid, m in fetched.items()))
        return state


def exports(tern, where):
    """mbox and Maildir exports of ALICE's account into `where`."""
    where.mkdir()
    tern.run("export", ALICE, "--format", "mbox", "--output", str(where / "all.mbox"))
    tern.run("export", ALICE, "--format", "maildir", "--output", str(where / "maildir"))
    return where


def same_tree(a, b):
    """Every file under `a` is under `b` with the same bytes, and nothing more."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files_a], shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def test_sqlite_to_postgres_and_back_keeps_what_clients_know(tmp_path, database):  # noqa: F811
    servers = []
    try:
        migrate_and_compare(tmp_path, database, servers)
    finally:
        for t in servers:
            if t.proc:
                t.stop()


def migrate_and_compare(tmp_path, database, servers):
    first = Tern(tmp_path / "first")
    servers.append(first)
    first.add_domain(DOMAIN)
    first.add_user(ALICE)
    first.start()
    with smtplib.SMTP("127.0.0.1", first.smtp_port) as smtp:
        for i in range(8):
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = "friend@remote.test", ALICE, f"message {i}"
            m.set_content(f"body {i}\n")
            if i == 3:  # above the inline limit: a message file on SQLite, chunks on PostgreSQL
                m.add_attachment(bytes(range(256)) * 2048, maintype="application", subtype="octet-stream", filename="big.bin")
            smtp.send_message(m)
    with IMAPClient("127.0.0.1", port=first.imap_port, ssl=False) as c:
        c.login(ALICE, PASSWORD)
        c.create_folder("Projects")
        c.subscribe_folder("Projects")
        c.select_folder("INBOX")
        uids = c.search("ALL")
        c.add_flags(uids[:3], [b"\\Seen"])
        c.add_flags(uids[1:2], [b"\\Flagged", b"$Work"])
        c.move(uids[4:6], "Projects")
        c.add_flags(uids[6:7], [b"\\Deleted"])
        c.expunge()
    before = mailbox_state(first.imap_port)
    assert before["Projects"][2] and before["INBOX"][2]
    assert any(b"$Work" in flags and b"\\Flagged" in flags for _, flags, *_ in before["INBOX"][2])
    assert "Projects" in before["subscribed"]
    exported = exports(first, tmp_path / "export-first")
    first.stop()

    # SQLite -> PostgreSQL, then a server on the database.
    import glob
    import tempfile
    spools = set(glob.glob(os.path.join(tempfile.gettempdir(), "tern-migrate-*")))
    r = first.run("migrate", "--from", f"sqlite:{first.dir / 'data'}", "--to", database)
    assert b"copied" in r.stdout, r.stdout
    # The spool folder the PostgreSQL side was given (nothing is spooled in a migration) does not stay behind.
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "tern-migrate-*"))) == spools
    node = Tern(tmp_path / "node", {"": {"store": database}})
    servers.append(node)
    node.start()
    assert mailbox_state(node.imap_port) == before
    same_tree(exported, exports(node, tmp_path / "export-node"))
    node.stop()

    # Into a data folder that already holds an installation: refused, nothing touched.
    r = first.run("migrate", "--from", database, "--to", f"sqlite:{first.dir / 'data'}", check=False)
    assert r.returncode != 0 and b"not empty" in r.stderr, r.stderr

    # PostgreSQL -> a new SQLite data folder, and a server on it.
    last = Tern(tmp_path / "last")
    servers.append(last)
    node.run("migrate", "--from", database, "--to", f"sqlite:{last.dir / 'data'}")
    last.start()
    assert mailbox_state(last.imap_port) == before
    same_tree(exported, exports(last, tmp_path / "export-last"))
    # New mail in the migrated store takes the next UID.
    with smtplib.SMTP("127.0.0.1", last.smtp_port) as smtp:
        smtp.sendmail("friend@remote.test", [ALICE], b"Subject: after\r\n\r\nafter\r\n")
    with IMAPClient("127.0.0.1", port=last.imap_port, ssl=False) as c:
        c.login(ALICE, PASSWORD)
        c.select_folder("INBOX", readonly=True)
        assert max(c.search("ALL")) == before["INBOX"][1][b"UIDNEXT"]
    last.stop()


def test_a_running_server_is_not_migrated(tmp_path, database):  # noqa: F811
    t = Tern(tmp_path / "t")
    t.add_domain(DOMAIN)
    t.start()
    try:
        r = t.run("migrate", "--from", f"sqlite:{t.dir / 'data'}", "--to", database, check=False)
        assert r.returncode != 0 and b"is running" in r.stderr, r.stderr
    finally:
        t.stop()
