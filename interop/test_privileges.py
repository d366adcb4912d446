"""Running as a service: `tern serve` started as root with `user =` binds its ports (port 25 included), gives the data
folder to that user and drops root before it reads any network input; admin commands started as root do the same
before they touch the store; data files are 0600 and folders 0700; as root without `user` it warns once."""
import imaplib
import os
import pwd
import shutil
import smtplib
import stat
import tempfile
from pathlib import Path

import pytest

from conftest import ALICE
from ternlib import Tern, tls_context

PASSWORD = "secret-password-1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")

NOBODY = pwd.getpwnam("nobody")


def ids(pid):
    """(real, effective, saved, fs) uids and gids of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(l for l in status if l.startswith("Uid:")).split()[1:]
    gid = next(l for l in status if l.startswith("Gid:")).split()[1:]
    groups = next(l for l in status if l.startswith("Groups:")).split()[1:]
    return [int(x) for x in uid], [int(x) for x in gid], [int(x) for x in groups]


def check_tree(data):
    """Every file and folder under `data` belongs to nobody and is closed to group and others."""
    for root, dirs, files in os.walk(data):
        for name in [root] + [os.path.join(root, f) for f in files] + [os.path.join(root, d) for d in dirs]:
            st = os.lstat(name)
            assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid), (name, st.st_uid, st.st_gid)
            if not stat.S_ISLNK(st.st_mode):
                assert st.st_mode & 0o077 == 0, (name, oct(st.st_mode))


@pytest.fixture
def open_dir():
    # pytest's tmp_path sits below a folder only root may enter; the service user's data folder must be reachable.
    d = tempfile.mkdtemp(prefix="tern-priv-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_serve_drops_root_after_binding_port_25(tmp_path, open_dir):
    t = Tern(tmp_path / "t", settings={"": {"user": "nobody", "group": "nogroup"}},
             listen={"smtp": "127.0.0.81:25", "imap": "127.0.0.81:143"})
    t.config.write_text(t.config.read_text().replace('data = "data"', f'data = "{open_dir / "data"}"'))
    # An admin command as root: it becomes nobody before it opens the store (the folder is made and given first).
    t.add_domain("example.test")
    t.add_user(ALICE)
    check_tree(open_dir / "data")
    t.start()
    try:
        uid, gid, groups = ids(t.proc.pid)
        assert uid == [NOBODY.pw_uid] * 4 and gid == [NOBODY.pw_gid] * 4, (uid, gid)
        assert 0 not in groups, groups
        # The server on port 25 and 143 works as nobody: a message in, read back over IMAP.
        with smtplib.SMTP("127.0.0.81", 25, timeout=10) as s:
            s.sendmail("someone@elsewhere.test", [ALICE], b"Subject: as nobody\r\n\r\nhello\r\n")
        imap = imaplib.IMAP4("127.0.0.81", 143, timeout=10)
        imap.starttls(tls_context())
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"as nobody" in data[0][1], data
        imap.logout()
        check_tree(open_dir / "data")
    finally:
        t.stop()
    # Another admin command as root, while files exist: the tree keeps its owner.
    t.add_user("bob@example.test")
    check_tree(open_dir / "data")
    assert "running as root" not in t.stderr_path.read_text()


def test_root_without_user_warns_once(tmp_path):
    t = Tern(tmp_path / "t")
    t.start()
    t.stop()
    log = t.stderr_path.read_text()
    assert log.count("running as root") == 1 and 'user = "tern"' in log, log
    # Data files are closed to others even without a user setting.
    for name in ["tern.db", "serve.lock", "tls"]:
        assert os.stat(t.dir / "data" / name).st_mode & 0o077 == 0, name


def test_missing_user_is_a_clear_error(tmp_path):
    t = Tern(tmp_path / "t", settings={"": {"user": "no-such-tern-user"}})
    r = t.run("serve", check=False)
    assert r.returncode not in (0, 64) and b'user "no-such-tern-user"' in r.stderr and b"useradd" in r.stderr, r
