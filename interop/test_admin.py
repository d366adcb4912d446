"""The tern command: config checking, domains, users, aliases, export and import, against a running server."""
import io
import mailbox
import os
import re
import smtplib
import subprocess
import tarfile

import pytest

from conftest import ALICE, BOB, DOMAIN
from ternlib import TERN, Tern, strip_trace


def test_config_check_reports_every_error_with_its_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('hostname = "mail.example.com"\n'
                   '\n'
                   '[listen]\n'
                   'smtp = ["0.0.0.0:99999"]\n'
                   '\n'
                   '[limits]\n'
                   'max_recipients = 0\n'
                   'command_timeout = "soon"\n'
                   'max_mesage_size = "10M"\n')
    r = subprocess.run([TERN, "config", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    err = r.stderr
    assert f"{bad}:4: listen.smtp:" in err and "99999" in err
    assert f"{bad}:7: limits.max_recipients: must be between 1" in err
    assert f"{bad}:8: limits.command_timeout: must be a duration" in err
    assert f'{bad}:9: unknown setting "limits.max_mesage_size"' in err
    # The server refuses to start with the same messages.
    r2 = subprocess.run([TERN, "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r2.returncode != 0
    for line in err.strip().splitlines():
        assert line in r2.stderr


def test_config_syntax_error_has_line(tmp_path):
    bad = tmp_path / "syntax.toml"
    bad.write_text('hostname = "a"\n[limits\nmax_recipients = 3\n')
    r = subprocess.run([TERN, "config", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}:2: TOML syntax" in r.stderr


def test_config_example_is_valid_and_complete(tmp_path):
    r = subprocess.run([TERN, "config", "example"], capture_output=True, text=True, check=True)
    example = tmp_path / "example.toml"
    example.write_text(r.stdout)
    for key in ("hostname", "max_message_size", "command_timeout", "nameservers", "give_up_after"):
        assert re.search(rf"^{key} = ", r.stdout, re.M), key
    check = subprocess.run([TERN, "config", "check", str(example)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_domains_users_aliases(tmp_path):
    t = Tern(tmp_path / "t")
    t.add_domain("one.test")
    t.add_domain("Two.Test")
    out = t.run("domain", "list").stdout.decode()
    assert "one.test" in out and "two.test" in out
    r = t.run("domain", "add", "one.test", check=False)
    assert r.returncode != 0 and b"already exists" in r.stderr
    r = t.run("domain", "add", "bad_domain!", check=False)
    assert r.returncode != 0

    r = t.run("user", "add", "carol@one.test")
    pw = re.search(rb"password: (\S+)", r.stdout).group(1)
    assert len(pw) >= 16
    t.run("user", "add", "dave@one.test", "--password", "dave-password")
    users = t.run("user", "list").stdout.decode()
    assert "carol@one.test" in users and "dave@one.test" in users
    r = t.run("user", "add", "erin@unknown.test", check=False)
    assert r.returncode != 0 and b"domain unknown.test" in r.stderr

    r = t.run("user", "password", "dave@one.test")
    assert re.search(rb"password: \S{16,}", r.stdout)
    t.run("user", "password", "dave@one.test", "--password-stdin", input=b"from-stdin\n")

    t.run("alias", "add", "team@one.test", "carol@one.test", "dave@one.test")
    t.run("alias", "add", "@two.test", "carol@one.test")
    aliases = t.run("alias", "list").stdout.decode()
    assert "team@one.test\tcarol@one.test, dave@one.test" in aliases
    assert "@two.test\tcarol@one.test" in aliases
    t.run("alias", "remove", "team@one.test")
    assert "team@one.test" not in t.run("alias", "list").stdout.decode()

    t.run("user", "remove", "dave@one.test")
    assert "dave@one.test" not in t.run("user", "list").stdout.decode()
    t.run("domain", "remove", "two.test")
    assert "two.test" not in t.run("domain", "list").stdout.decode()
    # Passwords are stored only as salted slow hashes.
    db = (tmp_path / "t" / "data" / "tern.db").read_bytes()
    assert b"from-stdin" not in db and pw not in db and b"SCRAM-SHA-256$" in db


def test_running_server_sees_changes_at_once(tern):
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        s.ehlo()
        s.mail("a@remote.test")
        assert s.rcpt("new@example.test")[0] == 550
        assert s.rcpt("x@fresh.test")[0] == 550
        tern.run("user", "add", "new@example.test", "--password", "pw-new-user")
        tern.add_domain("fresh.test")
        tern.run("alias", "add", "x@fresh.test", "new@example.test")
        assert s.rcpt("new@example.test")[0] == 250
        assert s.rcpt("x@fresh.test")[0] == 250
        assert s.data(b"Subject: hello new\r\n\r\nhi\r\n")[0] == 250
        tern.run("user", "remove", "new@example.test")
        s.rset()
        s.mail("a@remote.test")
        assert s.rcpt("new@example.test")[0] == 550
    assert tern.run("user", "list").stdout.count(b"new@example.test") == 0


def send_some(tern, n=5):
    sent = []
    with smtplib.SMTP("127.0.0.1", tern.smtp_port) as s:
        for i in range(n):
            body = f"From: x@remote.test\r\nSubject: m{i}\r\n\r\nFrom the start of a line\r\n>From quoted\r\nbody {i}\r\n"
            if i == 0:
                body += "big line\r\n" * 20000  # a file-backed message
            msg = body.encode()
            s.sendmail("x@remote.test", [ALICE], msg)
            sent.append(msg)
    return sent


def test_export_mbox_to_stdout_and_import_round_trip(tern, tmp_path):
    sent = send_some(tern)
    r = tern.run("export", ALICE, "--format", "mbox")
    path = tmp_path / "alice.mbox"
    path.write_bytes(r.stdout)
    box = mailbox.mbox(str(path))
    subjects = [m["Subject"] for m in box]
    assert subjects == [f"m{i}" for i in range(5)]
    assert "From the start of a line" in box[1].get_payload()
    tern.run("user", "add", "copy@example.test", "--password", "pw-copy-user")
    tern.run("import", "copy@example.test", str(path))
    copies = tern.messages("copy@example.test")
    assert [strip_trace(m)[1] for m in copies] == sent


def test_export_maildir_dir_and_tar_and_import(tern, tmp_path):
    sent = send_some(tern, 3)
    out = tmp_path / "md"
    tern.run("export", ALICE, "--format", "maildir", "--output", str(out))
    md = mailbox.Maildir(str(out), create=False)
    assert sorted(m["Subject"] for m in md) == ["m0", "m1", "m2"]
    assert "Sent" in md.list_folders() and "Junk" in md.list_folders()

    r = tern.run("export", ALICE, "--format", "maildir", "--mailbox", "INBOX")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        assert len(files) == 3 and all(f.name.startswith("Maildir/cur/") for f in files)
        contents = sorted(tar.extractfile(f).read() for f in files)
    assert sorted(strip_trace(c)[1] for c in contents) == sorted(sent)

    # A Maildir with flags and a subfolder, as mbsync or Dovecot leave it.
    src = tmp_path / "src"
    inbox = mailbox.Maildir(str(src))
    m = mailbox.MaildirMessage(b"Subject: seen one\r\n\r\nx\r\n")
    m.set_flags("SF")
    m.set_subdir("cur")
    inbox.add(m)
    inbox.add(mailbox.MaildirMessage(b"Subject: new one\r\n\r\ny\r\n"))
    inbox.add_folder("Projects").add(mailbox.MaildirMessage(b"Subject: project\r\n\r\nz\r\n"))
    tern.run("user", "add", "md@example.test", "--password", "pw-maildir")
    r = tern.run("import", "md@example.test", str(src))
    assert b"imported 3 messages" in r.stdout
    back = tmp_path / "back"
    tern.run("export", "md@example.test", "--format", "maildir", "--output", str(back))
    names = os.listdir(back / "cur")
    assert any(n.endswith(":2,FS") for n in names), names
    assert os.listdir(back / ".Projects" / "cur")


def test_export_unknown_account_fails(tern):
    r = tern.run("export", "nobody@example.test", check=False)
    assert r.returncode != 0 and b"no account" in r.stderr


def test_embedded_default_first_run(tmp_path):
    """`tern` with no arguments: a working server in ./tern-data with a domain, a user and a login to try."""
    import signal
    import time
    work = tmp_path / "fresh"
    work.mkdir()
    proc = subprocess.Popen([TERN], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = proc.stdout.readline().decode()
            lines.append(line)
            if line.startswith("Stop with"):
                break
        text = "".join(lines)
        login = re.search(r"login\s+(\S+)\s+password (\S+)", text)
        port = int(re.search(r"smtp\s+127\.0\.0\.1:(\d+)", text).group(1))
        assert login and (work / "tern-data" / "tern.db").exists()
        with smtplib.SMTP("127.0.0.1", port) as s:
            assert s.sendmail("a@remote.test", [login.group(1)], b"Subject: first run\r\n\r\nhi\r\n") == {}
        r = subprocess.run([TERN, "export", login.group(1)], cwd=work, capture_output=True, check=True)
        assert b"Subject: first run" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_docs_example_config_is_generated():
    from pathlib import Path
    r = subprocess.run([TERN, "config", "example"], capture_output=True, text=True, check=True)
    doc = Path(__file__).resolve().parent.parent / "docs" / "tern.example.toml"
    assert doc.read_text() == r.stdout, "docs/tern.example.toml is stale: regenerate it with `tern config example`"
    # Valid TOML for a parser nobody here wrote (a table defined twice, for one, is not).
    import tomllib
    assert tomllib.loads(r.stdout)["relay"]["networks"] == []


def test_import_large_mbox_in_bounded_memory(tern, tmp_path):
    """An mbox is imported one message at a time: peak memory does not grow with the file's size."""
    body = ("0123456789" * 7 + "\n") * 200  # ~14 KB per message

    def import_peak(count, user):
        path = tmp_path / f"{user}.mbox"
        with open(path, "w") as f:
            for i in range(count):
                f.write(f"From x@remote.test Thu Jan  1 00:00:00 1970\nSubject: bulk {i}\n\n{body}\n")
        tern.run("user", "add", f"{user}@example.test", "--password", "pw-bulk")
        proc = subprocess.Popen([TERN, "import", f"{user}@example.test", str(path), "--config", str(tern.config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.stdout.read(), proc.stderr.read()
        # wait4 gives this child's own peak (RUSAGE_CHILDREN would mix in every earlier child of the test run).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, err
        assert f"imported {count} messages".encode() in out
        listing = tern.run("user", "list").stdout.decode()
        assert re.search(rf"{user}@example.test\t{count} messages", listing)
        return path.stat().st_size, usage.ru_maxrss

    size_small, peak_small = import_peak(1000, "small")
    size_big, peak_big = import_peak(4300, "big")
    assert size_big > 60_000_000 and size_big > 4 * size_small
    # An mbox 4.3 times the size may not need much more memory (the store's page cache and the binary set the
    # baseline, about 58 MB here; a whole-file read would add the file's 60 MB).
    assert peak_big - peak_small < 12_000, f"peak memory grew from {peak_small} kB to {peak_big} kB with the mbox size"


def test_import_shows_progress_bar_on_a_terminal(tern, tmp_path):
    import pty
    path = tmp_path / "p.mbox"
    path.write_text("".join(f"From x@r.test Thu Jan  1 00:00:00 1970\nSubject: {i}\n\nbody\n\n" for i in range(300)))
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(TERN, [TERN, "import", ALICE, str(path), "--config", str(tern.config)])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    assert re.search(rb"\rimporting \[#{40}\] \d+/\d+", out), out[-300:]
    assert b"imported 300 messages" in out
    # Without a terminal there is no bar.
    r = tern.run("import", ALICE, str(path))
    assert b"importing [" not in r.stderr and b"imported 300 messages" in r.stdout


def test_one_server_per_data_folder(tmp_path):
    t = Tern(tmp_path / "t")
    t.start()
    try:
        # A second server on the same data folder (other ports) refuses to start: both would deliver the queue.
        r = subprocess.run([TERN, "serve", "--config", str(t.config)], capture_output=True, timeout=60, cwd=t.dir)
        assert r.returncode != 0 and b"another `tern serve` is running" in r.stderr, r.stderr
    finally:
        t.stop()
    # After a kill -9 the lock is gone with the process.
    t.start()
    t.kill9()
    t.start()
    t.stop()
