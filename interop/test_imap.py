"""IMAP with Python's imaplib (a client nobody here wrote) against the real server."""
import imaplib
import re
import smtplib
import socket
import ssl
import threading
import time

import pytest

from conftest import ALICE, BOB
from ternlib import date_now, imap_date, tls_context

PASSWORD = "secret-password-1"


def deliver(tern, subject, to=ALICE, body="Hello there.\r\n", sender="carol@remote.test", date=None):
    """Sends over port 25, dated at the time of sending unless `date` is given."""
    msg = f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date or date_now()}\r\n\r\n{body}"
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.sendmail(sender, [to], msg.encode())
    return msg.encode()


def login(tern, user=ALICE):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(user, PASSWORD)
    return m


def test_capabilities_and_login(tern):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    for cap in ("IMAP4REV1", "IMAP4REV2", "STARTTLS", "AUTH=PLAIN", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "CONDSTORE"):
        assert cap in m.capabilities, cap
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, "wrong")
    typ, data = m.login(ALICE, PASSWORD)
    assert typ == "OK"
    assert m.logout()[0] == "BYE"


def test_starttls_and_implicit_tls(tern):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.starttls(ssl_context=tls_context())
    assert "STARTTLS" not in m.capabilities
    m.login(ALICE, PASSWORD)
    m.logout()
    s = imaplib.IMAP4_SSL("127.0.0.1", tern.imaps_port, ssl_context=tls_context())
    s.login(ALICE, PASSWORD)
    assert s.select("INBOX")[0] == "OK"
    s.logout()


def test_authenticate_plain(tern):
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORD}".encode())
    assert typ == "OK"
    assert m.select()[0] == "OK"


def test_list_special_use_and_status(tern):
    deliver(tern, "one")
    m = login(tern)
    typ, data = m.list()
    assert typ == "OK"
    lines = [d.decode() for d in data]
    assert any(l.endswith('"INBOX"') for l in lines)
    assert any("\\Sent" in l and l.endswith('"Sent"') for l in lines)
    assert any("\\Junk" in l and l.endswith('"Junk"') for l in lines)
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
    assert re.search(rb"MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY \d+", data[0]), data


def test_fetch_store_search(tern):
    dated = date_now()
    sent = [deliver(tern, f"msg {i}", body=f"body number {i}\r\n", date=dated) for i in range(3)]
    m = login(tern)
    typ, data = m.select("INBOX")
    assert data == [b"3"]
    typ, data = m.fetch("1:3", "(UID FLAGS RFC822.SIZE)")
    # This session is the first to see them: \Recent (RFC 3501 §2.3.2).
    assert len(data) == 3 and b"UID 1 " in data[0] and b"FLAGS (\\Recent)" in data[0]
    # BODY.PEEK leaves \Seen alone; the stored message ends with what was sent.
    typ, data = m.fetch("2", "(BODY.PEEK[])")
    assert data[0][1].endswith(sent[1])
    typ, data = m.fetch("2", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = m.fetch("2", "(BODY[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: msg 1\r\n\r\n"
    typ, data = m.fetch("2", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = m.fetch("3", "(BODY[TEXT]<0.11>)")
    assert data[0][1] == b"body number"
    typ, data = m.uid("FETCH", "1", "(RFC822.HEADER)")
    assert b"Subject: msg 0" in data[0][1]

    typ, data = m.store("1", "+FLAGS", "(\\Flagged $Important)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[0]
    assert m.search(None, "FLAGGED")[1] == [b"1"]
    assert m.search(None, "UNSEEN")[1] == [b"1"]  # BODY[TEXT] (not PEEK) set \\Seen on 3
    assert m.search(None, 'SUBJECT "msg 2"')[1] == [b"3"]
    assert m.search(None, 'BODY "number 1"')[1] == [b"2"]
    assert m.search(None, "FROM", "carol")[1] == [b"1 2 3"]
    assert m.search(None, "OR", "FLAGGED", "SEEN")[1] == [b"1 2 3"]
    assert m.search(None, "NOT", "FLAGGED", "SENTON", imap_date(dated))[1] == [b"2 3"]
    assert m.uid("SEARCH", "UID", "2:*")[1] == [b"2 3"]
    assert m.search(None, "LARGER", "10000")[1] == [b""]


def test_append_copy_move_expunge(tern):
    m = login(tern)
    msg = b"From: me@example.test\r\nSubject: draft\r\n\r\nwork in progress\r\n"
    typ, data = m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), msg)
    assert typ == "OK" and re.search(rb"\[APPENDUID \d+ 1\]", data[0]), data
    m.select("Drafts")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"\\Draft" in data[0][0] and data[0][1] == msg
    typ, data = m.copy("1", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = m._simple_command("MOVE", "1", "Trash")
    assert typ == "OK"
    assert m.select("Drafts")[1] == [b"0"]
    assert m.select("Archive")[1] == [b"1"]
    assert m.select("Trash")[1] == [b"1"]
    m.store("1", "+FLAGS", "\\Deleted")
    typ, data = m.expunge()
    assert data == [b"1"]
    assert m.select("Trash")[1] == [b"0"]
    # The content is shared: the copy in Archive is intact.
    m.select("Archive")
    assert m.fetch("1", "(BODY.PEEK[])")[1][0][1] == msg


def test_mailbox_management(tern):
    m = login(tern)
    assert m.create("Projects")[0] == "OK"
    assert m.create("Projects/Tern")[0] == "OK"
    assert m.create("Projects")[0] == "NO"
    typ, data = m.list('""', "Projects*")
    names = [d.decode() for d in data]
    assert any("\\HasChildren" in n and n.endswith('"Projects"') for n in names)
    assert any(n.endswith('"Projects/Tern"') for n in names)
    assert m.rename("Projects", "Work")[0] == "OK"
    typ, data = m.list('""', "Work/%")
    assert data[0].decode().endswith('"Work/Tern"')
    assert m.subscribe("Work")[0] == "OK"
    typ, data = m.lsub('""', "Work")
    assert data[0].decode().endswith('"Work"')
    assert m.delete("Work/Tern")[0] == "OK"
    assert m.select("Work/Tern")[0] == "NO"
    assert m.delete("INBOX")[0] == "NO"


def test_modified_utf7_mailbox_names(tern):
    m = login(tern)
    assert m._simple_command("CREATE", '"Entw&APw-rfe"')[0] == "OK"
    typ, data = m.list('""', "Entw*")
    assert data[0].decode().endswith('"Entw&APw-rfe"')
    m._simple_command("ENABLE", "UTF8=ACCEPT")
    typ, data = m.list('""', "Entw*")
    assert data[0].decode("utf-8").endswith('"Entwürfe"')


def test_two_sessions_see_each_others_changes(tern):
    deliver(tern, "first")
    a, b = login(tern), login(tern)
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "\\Seen")
    b.noop()
    fetches = b.response("FETCH")[1]
    assert any(f is not None and b"\\Seen" in f for f in fetches), fetches
    deliver(tern, "second")
    b.noop()
    assert b.response("EXISTS")[1][-1] == b"2"  # imaplib also keeps the SELECT-time count
    a.store("1", "+FLAGS", "\\Deleted")
    a.expunge()
    b.noop()
    assert b.response("EXPUNGE")[1] == [b"1"]
    assert b.search(None, "ALL")[1] == [b"1"]


def idling(tern):
    """A raw connection logged in as ALICE, with INBOX selected, waiting in IDLE (tag c)."""
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    while not f.readline().startswith(b"+ "):
        pass
    return sock, f


def test_idle_pushes_new_mail_within_a_second(tern):
    sock, f = idling(tern)
    start = time.time()
    threading.Thread(target=deliver, args=(tern, "pushed")).start()
    line = f.readline()
    assert line == b"* 1 EXISTS\r\n", line
    assert time.time() - start < 1.0
    assert f.readline() == b"* 1 RECENT\r\n"   # this session is the first to hear of it
    sock.sendall(b"DONE\r\n")
    assert f.readline().startswith(b"c OK")
    sock.sendall(b"d LOGOUT\r\n")


def test_bad_input(tern):
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
    f = sock.makefile("rb")
    f.readline()

    def cmd(line):
        sock.sendall(line + b"\r\n")
        return f.readline()

    assert cmd(b"a1 FROBNICATE").startswith(b"a1 BAD")
    assert cmd(b"a2 FETCH 1:x FLAGS").startswith(b"a2 BAD")
    assert cmd(b"a3 SELECT INBOX").startswith(b"a3 BAD")  # not logged in
    # Before login a whole command is at most 8 KiB: a 20 KB line ends the session.
    assert cmd(b"a4 SEARCH " + b"(" * 10000 + b"ALL" + b")" * 10000).startswith(b"* BYE")
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    assert cmd(b"l1 LOGIN " + ALICE.encode() + b" secret-password-1").startswith(b"l1 OK")
    assert cmd(b"l2 SELECT INBOX").split(b"\r\n")[0]
    while not f.readline().startswith(b"l2 OK"):
        pass
    # Logged in, the same line is read, and the nesting limit refuses it.
    assert cmd(b"a4 SEARCH " + b"(" * 10000 + b"ALL" + b")" * 10000).startswith(b"a4 BAD")
    sock.sendall(b"a5 LOGIN {100000000}\r\n")
    assert f.readline().startswith(b"a5 NO [TOOBIG]")
    assert cmd(b"a6 NOOP").startswith(b"a6 OK")
    sock.sendall(b"a7 NOOP " + b"x" * 1_000_000 + b"\r\n")
    assert f.readline().startswith(b"* BYE")
    # Everyone else is still served.
    m = login(tern)
    assert m.select()[0] == "OK"


MULTIPART = (
    b"From: \"Carol Q. Public\" <carol@remote.test>\r\n"
    b"To: alice@example.test, Team: bob@example.test, dave@example.test;\r\n"
    b"Cc: =?UTF-8?Q?J=C3=BCrgen?= <juergen@remote.test>\r\n"
    b"Subject: Report\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <report-1@remote.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Plain text\r\nsecond line\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>HTML</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf; name=\"report.pdf\"\r\n"
    b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@remote.test\r\nSubject: Forwarded\r\n\r\nInner body\r\n"
    b"--outer--\r\n"
)


def test_envelope_bodystructure_and_parts_with_imapclient(tern):
    from imapclient import IMAPClient
    with IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False) as c:
        c.login(ALICE, PASSWORD)
        c.append("INBOX", MULTIPART)
        c.select_folder("INBOX")
        data = c.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "BODY", "BODY.PEEK[1.1]", "BODY.PEEK[1.2.MIME]", "BODY.PEEK[3.HEADER]",
                             "BODY.PEEK[3.TEXT]", "BODY.PEEK[2]", "RFC822.SIZE"])[1]
        env = data[b"ENVELOPE"]
        assert env.subject == b"Report"
        assert env.message_id == b"<report-1@remote.test>"
        assert env.from_[0].name == b'Carol Q. Public' and env.from_[0].mailbox == b"carol" and env.from_[0].host == b"remote.test"
        assert env.sender == env.from_ and env.reply_to == env.from_
        to = env.to
        assert [a.mailbox for a in to] == [b"alice", b"Team", b"bob", b"dave", None]  # group start/end as RFC 9051 says
        assert env.cc[0].name == b"=?UTF-8?Q?J=C3=BCrgen?="
        bs = data[b"BODYSTRUCTURE"]
        assert bs.is_multipart
        parts, subtype = bs[0], bs[1]
        assert subtype.lower() == b"mixed"
        alternative = parts[0]
        assert alternative[1].lower() == b"alternative"
        text = alternative[0][0]
        assert (text[0].lower(), text[1].lower()) == (b"text", b"plain") and text[2] == (b"CHARSET", b"utf-8")
        assert text[6] == len(b"Plain text\r\nsecond line") and text[7] == 2
        pdf = parts[1]
        assert pdf[0].lower() == b"application" and pdf[5].lower() == b"base64"
        assert pdf[8] == (b"attachment", (b"FILENAME", "résumé.pdf".encode()))
        rfc822 = parts[2]
        assert (rfc822[0].lower(), rfc822[1].lower()) == (b"message", b"rfc822")
        assert data[b"BODY[1.1]"] == b"Plain text\r\nsecond line"
        assert data[b"BODY[1.2.MIME]"] == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        assert data[b"BODY[3.HEADER]"] == b"From: inner@remote.test\r\nSubject: Forwarded\r\n\r\n"
        assert data[b"BODY[3.TEXT]"] == b"Inner body"
        assert data[b"BODY[2]"] == b"JVBERi0xLjQK"
        assert data[b"RFC822.SIZE"] == len(MULTIPART)
        binary = c.fetch([1], ["BINARY.PEEK[2]", "BINARY.SIZE[2]", "BINARY.PEEK[1.1]"])[1]
        assert binary[b"BINARY[2]"] == b"%PDF-1.4\n"
        assert binary[b"BINARY.SIZE[2]"] == 9
        assert binary[b"BINARY[1.1]"] == b"Plain text\r\nsecond line"


def test_imapclient_every_command(tern):
    """imapclient drives the common commands and parses every response."""
    from imapclient import IMAPClient
    deliver(tern, "hello")
    with IMAPClient("127.0.0.1", port=tern.imap_port, ssl=False) as c:
        c.login(ALICE, PASSWORD)
        assert b"IDLE" in c.capabilities()
        assert c.namespace().personal == (("", "/"),)
        server_id = c.id_({"name": "pytest"})
        assert server_id[0][:2] == (b"name", b"Tern"), server_id
        folders = {f[2]: f[0] for f in c.list_folders()}
        assert b"\\Sent" in folders["Sent"] and b"\\HasNoChildren" in folders["INBOX"]
        assert c.find_special_folder(b"\\Junk") == "Junk"
        c.create_folder("Receipts")
        assert c.folder_exists("Receipts")
        c.subscribe_folder("Receipts")
        assert "Receipts" in [f[2] for f in c.list_sub_folders()]
        st = c.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT"])
        assert st[b"MESSAGES"] == 1 and st[b"UNSEEN"] == 1
        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 1 and b"HIGHESTMODSEQ" in info
        uids = c.search(["UNSEEN", "SUBJECT", "hello"])
        assert uids == [1]
        c.add_flags(uids, [b"\\Flagged", b"$label1"])
        assert set(c.get_flags(uids)[1]) - {b"\\Recent"} == {b"\\Flagged", b"$label1"}
        c.remove_flags(uids, [b"$label1"])
        c.copy(uids, "Receipts")
        c.move(uids, "Archive")
        assert c.search("ALL") == []
        c.select_folder("Receipts", readonly=True)
        assert c.search("FLAGGED") == [1]
        c.unselect_folder()
        c.rename_folder("Receipts", "Receipts-2026")
        c.delete_folder("Receipts-2026")
        assert not c.folder_exists("Receipts-2026")
        c.select_folder("INBOX")
        c.idle()
        deliver(tern, "during idle")
        responses = c.idle_check(timeout=5)
        c.idle_done()
        assert (1, b"EXISTS") in responses


class Raw:
    """A raw IMAP connection for extensions imaplib does not speak (QRESYNC)."""

    def __init__(self, tern):
        self.sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
        self.f = self.sock.makefile("rb")
        self.f.readline()
        self.n = 0

    def cmd(self, text):
        self.n += 1
        tag = f"q{self.n}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.f.readline()
            assert line, "connection closed"
            if line.startswith(tag.encode() + b" "):
                return lines, line
            lines.append(line.decode().rstrip("\r\n"))


def test_qresync_resynchronisation_and_vanished(tern):
    for i in range(5):
        deliver(tern, f"q{i}")
    a = Raw(tern)
    a.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    lines, ok = a.cmd("ENABLE QRESYNC")
    assert "* ENABLED QRESYNC" in lines
    lines, ok = a.cmd("SELECT INBOX")
    validity = int(re.search(r"UIDVALIDITY (\d+)", "\n".join(lines)).group(1))
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", "\n".join(lines)).group(1))

    b = login(tern)
    b.select("INBOX")
    b.store("2", "+FLAGS", "\\Deleted")
    b.expunge()  # UID 2 gone
    # The live session hears VANISHED, not EXPUNGE.
    lines, ok = a.cmd("NOOP")
    assert "* VANISHED 2" in lines and not any("EXPUNGE" in l for l in lines), lines
    b.store("3", "+FLAGS", "\\Flagged")  # now sequence 3 is UID 4
    b.store("1", "+FLAGS", "\\Deleted")
    b.expunge()  # UID 1 gone

    # A client coming back with what it knew gets only the differences.
    c = Raw(tern)
    c.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    c.cmd("ENABLE QRESYNC")
    lines, ok = c.cmd(f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:5))")
    assert ok.startswith(b"q3 OK"), ok
    assert "* VANISHED (EARLIER) 1:2" in lines, lines
    changed = [l for l in lines if "FETCH" in l]
    assert len(changed) == 1 and "UID 4 " in changed[0] and "\\Flagged" in changed[0] and "MODSEQ" in changed[0]
    lines, ok = c.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert "* VANISHED (EARLIER) 1:2" in lines
    # Selecting another mailbox closes this one, said explicitly.
    lines, ok = c.cmd("SELECT Sent")
    assert lines[0] == "* OK [CLOSED] Previous mailbox is now closed"
    # QRESYNC parameters without ENABLE are refused.
    d = Raw(tern)
    d.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    lines, ok = d.cmd(f"SELECT INBOX (QRESYNC ({validity} {modseq}))")
    assert b" BAD " in ok


def test_sort_and_thread(tern):
    m = login(tern)

    def add(subject, date, sender, msgid, extra=""):
        msg = (f"From: {sender}\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {msgid}\r\n"
               f"{extra}\r\nbody\r\n").encode()
        m.append("INBOX", None, None, msg)

    add("Lunch", "Mon, 23 Nov 2026 10:00:00 +0000", "Bob <bob@remote.test>", "<a@x>")
    add("Re: Lunch", "Mon, 23 Nov 2026 11:00:00 +0000", "carol@remote.test", "<b@x>", "In-Reply-To: <a@x>\r\n")
    add("Zebra", "Mon, 23 Nov 2026 09:00:00 +0000", "Alice <alice@remote.test>", "<c@x>")
    add("Re: Re: lunch", "Mon, 23 Nov 2026 12:00:00 +0000", "dave@remote.test", "<d@x>", "References: <a@x> <b@x>\r\n")
    add("=?UTF-8?Q?[list]_Fwd:_Zebra?= (fwd)", "Mon, 23 Nov 2026 13:00:00 +0000", "erin@remote.test", "<e@x>")
    m.select("INBOX")
    assert m.sort("(SUBJECT)", "UTF-8", "ALL") == ("OK", [b"1 2 4 3 5"])
    assert m.sort("(DATE)", "UTF-8", "ALL") == ("OK", [b"3 1 2 4 5"])
    assert m.sort("(REVERSE DATE)", "UTF-8", "ALL") == ("OK", [b"5 4 2 1 3"])
    assert m.sort("(FROM)", "UTF-8", "ALL") == ("OK", [b"3 1 2 4 5"])
    assert m.sort("(SUBJECT REVERSE DATE)", "UTF-8", "NOT", "FROM", "dave") == ("OK", [b"2 1 5 3"])
    assert m.uid("SORT", "(SUBJECT)", "UTF-8", "ALL") == ("OK", [b"1 2 4 3 5"])
    assert m.thread("REFERENCES", "UTF-8", "ALL") == ("OK", [b"(3 5)(1 2 4)"])
    assert m.thread("ORDEREDSUBJECT", "UTF-8", "ALL") == ("OK", [b"(3 5)(1 (2)(4))"])
    # An unknown charset: the command is well-formed, so NO [BADCHARSET] (RFC 9051 §6.4.4), not BAD.
    typ, data = m.sort("(SUBJECT)", "KOI8-R", "ALL")
    assert typ == "NO" and data[0].startswith(b"[BADCHARSET (\"UTF-8\" \"US-ASCII\")]"), (typ, data)


def test_quota_reported_and_enforced(make_tern):
    tern = make_tern({"limits": {"quota": "20K"}})
    m = login(tern)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'"INBOX" ""'] and data[1] == [b'"" (STORAGE 0 20)'], data
    big = b"Subject: big\r\n\r\n" + b"x" * 12000 + b"\r\n"
    assert m.append("INBOX", None, None, big)[0] == "OK"
    assert m.getquota('""')[1] == [b'"" (STORAGE 11 20)']
    typ, data = m.append("INBOX", None, None, big)
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    m.append("INBOX", None, None, b"Subject: small\r\n\r\nfits\r\n")
    m.select("INBOX")
    typ, data = m.copy("1", "Archive")
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    # A message accepted while there was room may take the account over; after that SMTP refuses new mail
    # with a temporary error, and other recipients still receive.
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        assert s.sendmail("x@remote.test", [ALICE], b"Subject: fill\r\n\r\n" + (b"y" * 90 + b"\r\n") * 100) == {}
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        s.mail("x@remote.test")
        code, text = s.rcpt(ALICE)
        assert code == 452 and text.startswith(b"4.2.2"), (code, text)
        assert s.rcpt(BOB)[0] == 250


def test_no_quota_by_default(tern):
    m = login(tern)
    assert m.getquotaroot("INBOX")[1][0] == [b'"INBOX"']


def test_compress_deflate(tern):
    import zlib
    deliver(tern, "compressed", body="squeeze me\r\n" * 200)
    sock = socket.create_connection(("127.0.0.1", tern.imap_port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\nb COMPRESS DEFLATE\r\n'.encode())
    assert f.readline().startswith(b"a OK")
    assert f.readline().startswith(b"b OK DEFLATE active")
    comp = zlib.compressobj(wbits=-15)
    decomp = zlib.decompressobj(wbits=-15)

    def send(text):
        sock.sendall(comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH))

    def read_until(tag):
        data = b""
        while not re.search(rb"(^|\r\n)" + tag + rb" ", data):
            chunk = sock.recv(65536)
            assert chunk, data
            data += decomp.decompress(chunk)
        return data

    send(b"c SELECT INBOX\r\n")
    assert b"* 1 EXISTS" in read_until(b"c")
    send(b"d FETCH 1 (BODY.PEEK[TEXT])\r\n")
    data = read_until(b"d")
    assert ("squeeze me\r\n" * 200).encode() in data
    send(b"e COMPRESS DEFLATE\r\n")
    assert b"e NO [COMPRESSIONACTIVE]" in read_until(b"e")
    # A decompression bomb ends the session instead of filling memory.
    send(b"f NOOP " + b"A" * (20 << 20) + b"\r\n")
    sock.settimeout(10)
    rest = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    except ConnectionResetError:
        pass
    m = login(tern)
    assert m.select()[0] == "OK"


def test_many_concurrent_logins_do_not_deadlock(tern):
    """16 clients logging in at once (more than SQLite readers and Swift's cooperative threads)."""
    errors, done = [], []

    def worker():
        for _ in range(6):
            try:
                m = imaplib.IMAP4("127.0.0.1", tern.imap_port, timeout=20)
                m.login(ALICE, PASSWORD)
                m.select("INBOX")
                m.status("Sent", "(MESSAGES)")
                m.logout()
                done.append(1)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(done) == 96


def test_failed_logins_are_limited_per_address(make_tern):
    tern = make_tern({"limits": {"max_login_failures": 3}})
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    start = time.time()
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(ALICE, "guess")
    assert time.time() - start >= 2, "each failure costs a second"
    m2 = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m2.login(BOB, "guess")
    # The address is now blocked, even for the right password, and answers at once.
    m3 = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    start = time.time()
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        m3.login(ALICE, PASSWORD)
    assert time.time() - start < 0.5


def test_many_idle_sessions_share_one_view_and_all_see_every_change(tern):
    """Sessions idling in one mailbox share its message list; each still gets every change, in order."""
    for i in range(3):
        deliver(tern, f"before {i}")
    idlers = [idling(tern) for _ in range(40)]
    actor = login(tern)
    actor.select("INBOX")
    actor.store("2", "+FLAGS", "\\Flagged")
    for _, f in idlers:
        line = f.readline()
        # The first session to select the mailbox has its messages as \Recent (RFC 3501 §2.3.2).
        assert re.match(rb"\* 2 FETCH \(UID 2 FLAGS \((\\Recent )?\\Flagged\)\)", line), line
    actor.store("1", "+FLAGS", "\\Deleted")
    actor.expunge()
    for _, f in idlers:
        # The \Deleted flag may be reported first (or coalesced with the expunge when both land before a wake-up).
        while (line := f.readline()) != b"* 1 EXPUNGE\r\n":
            assert re.match(rb"\* 1 FETCH \(UID 1 FLAGS \((\\Recent )?\\Deleted\)\)", line), line
    deliver(tern, "during idle")
    for _, f in idlers:
        assert f.readline() == b"* 3 EXISTS\r\n"
    for sock, f in idlers:
        sock.sendall(b"DONE\r\nd FETCH 1:* (UID FLAGS)\r\ne LOGOUT\r\n")
        lines = []
        while not (line := f.readline()).startswith(b"d OK"):
            lines.append(line)
        assert [re.search(rb"UID (\d+)", l).group(1) for l in lines if b"FETCH" in l] == [b"2", b"3", b"4"], lines
        sock.close()
    actor.logout()


def test_changes_by_another_process_reach_a_selected_session(tern, tmp_path):
    """An admin command writes to the store directly; NOOP still reports what it added."""
    deliver(tern, "one")
    m = login(tern)
    m.select("INBOX")
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From x@remote.test Mon Nov 23 10:00:00 2026\nSubject: imported\n\nbody\n")
    tern.run("import", ALICE, str(mbox))
    m.noop()
    assert m.response("EXISTS")[1][-1] == b"2"
    typ, data = m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: imported" in data[0][1]
    m.logout()


def test_password_change_ends_cached_logins(tern):
    """Successful logins are remembered for a while; a new password ends that at once, even from another process."""
    for _ in range(3):
        login(tern).logout()
    tern.run("user", "password", ALICE, "--password", "another-password-2")
    with pytest.raises(imaplib.IMAP4.error):
        login(tern)
    m = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    m.login(ALICE, "another-password-2")
    m.logout()
