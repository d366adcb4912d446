"""The errors a newcomer meets first: a port already taken, an unreadable certificate, a data folder Tern cannot use,
a config error and a database from a newer Tern. Each names what failed and where, prints no usage text and exits
with a code that is not a usage error (64); `tern serve --ports BASE` moves every default port together."""
import smtplib
import socket
import sqlite3
import subprocess
import time

from ternlib import TERN, Tern

USAGE_ERROR = 64
STANDARD = {"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}


def serve(args, cwd, timeout=60):
    """`tern serve ARGS` expected to fail at start: (exit code, stdout, stderr)."""
    r = subprocess.run([TERN, "serve", *args], cwd=cwd, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def assert_startup_failure(code, out, err):
    assert code not in (0, USAGE_ERROR), (code, out, err)
    assert "USAGE:" not in out + err and "--help" not in out + err, out + err
    assert "Tern is running" not in out, out


def free_base():
    """A base port whose seven service ports (BASE + 25, + 587, ...) are all free on 127.0.0.1."""
    for base in range(20000, 60000, 1013):
        socks = []
        try:
            for p in STANDARD.values():
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", base + p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


def test_port_in_use_then_ports_flag(tmp_path):
    base = free_base()
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", base + 25))
    taken.listen(1)
    try:
        code, out, err = serve(["--ports", str(base)], cwd=tmp_path)
        assert_startup_failure(code, out, err)
        assert f"SMTP listener 127.0.0.1:{base + 25}: address already in use" in err, err
        # How to choose another: the flag and the config's [listen] table.
        assert "--ports" in err and "[listen]" in err, err
    finally:
        taken.close()
    # Freed: the same command starts, every service on BASE + its standard port.
    proc = subprocess.Popen([TERN, "serve", "--ports", str(base)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = b""
        deadline = time.time() + 60
        while b"Stop with" not in out:
            assert time.time() < deadline and proc.poll() is None, out + proc.stderr.read()
            out += proc.stdout.read1(4096)
        text = out.decode()
        for service, port in STANDARD.items():
            assert f"127.0.0.1:{base + port}" in text, (service, text)
        with smtplib.SMTP("127.0.0.1", base + 25, timeout=10) as s:
            assert s.ehlo()[0] == 250
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # A base that would put a port above 65535 is a usage error, said before anything starts.
    r = subprocess.run([TERN, "serve", "--ports", "65000"], cwd=tmp_path, capture_output=True, timeout=30)
    assert r.returncode == USAGE_ERROR and b"--ports" in r.stderr, r


def test_port_in_use_named_from_config(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        t = Tern(tmp_path / "t", listen={"imap": f"127.0.0.1:{port}"})
        code, out, err = serve(["--config", str(t.config)], cwd=t.dir)
        assert_startup_failure(code, out, err)
        assert f"IMAP listener 127.0.0.1:{port}: address already in use" in err, err
        assert "[listen]" in err and str(t.config) in err, err
    finally:
        taken.close()


def test_unreadable_certificate(tmp_path):
    (tmp_path / "cert.pem").write_text("this is not a certificate\n")
    (tmp_path / "key.pem").write_text("nor is this a key\n")
    t = Tern(tmp_path / "t", settings={"tls": {"certificate": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}})
    code, out, err = serve(["--config", str(t.config)], cwd=t.dir)
    assert_startup_failure(code, out, err)
    assert f"TLS certificate {tmp_path / 'cert.pem'}" in err and "PEM" in err, err


def test_data_folder_unusable(tmp_path):
    (tmp_path / "afile").write_text("a file where a folder should be\n")
    t = Tern(tmp_path / "t")
    t.config.write_text(t.config.read_text().replace('data = "data"', f'data = "{tmp_path / "afile" / "data"}"'))
    code, out, err = serve(["--config", str(t.config)], cwd=t.dir)
    assert_startup_failure(code, out, err)
    assert f"data folder {tmp_path / 'afile' / 'data'}" in err and "not a directory" in err.lower(), err


def test_config_error_names_file_line_and_key(tmp_path):
    t = Tern(tmp_path / "t", settings={"limits": {"max_connections": "many"}})
    lines = t.config.read_text().splitlines()
    line = next(i for i, l in enumerate(lines, 1) if l.startswith("max_connections"))
    code, out, err = serve(["--config", str(t.config)], cwd=t.dir)
    assert_startup_failure(code, out, err)
    assert f"{t.config}:{line}: limits.max_connections:" in err, err
    # Every command reads the config the same way.
    r = t.run("user", "list", check=False)
    assert r.returncode not in (0, USAGE_ERROR) and b"USAGE:" not in r.stderr, r
    assert f"{t.config}:{line}: limits.max_connections:".encode() in r.stderr, r


def test_database_from_a_newer_tern(tmp_path):
    t = Tern(tmp_path / "t")
    t.add_domain("example.test")
    db = sqlite3.connect(t.dir / "data" / "tern.db")
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()
    code, out, err = serve(["--config", str(t.config)], cwd=t.dir)
    assert_startup_failure(code, out, err)
    assert str(t.dir / "data" / "tern.db") in err and "999" in err and "newer" in err, err


def user_version(path, set_to=None):
    """The database's schema version (PRAGMA user_version), after setting it when `set_to` is given."""
    db = sqlite3.connect(path)
    try:
        if set_to is not None:
            db.execute(f"PRAGMA user_version = {set_to}")
            db.commit()
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def list_users_beside_a_server(t):
    """`tern user list` while the data folder's lock is held, as `tern serve` holds it."""
    import fcntl
    with open(t.dir / "data" / "serve.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return subprocess.run([TERN, "user", "list", "--config", str(t.config)], cwd=t.dir, capture_output=True, timeout=60)


def test_admin_command_does_not_upgrade_the_database_under_an_older_server(tmp_path):
    """A new binary's admin command (`tern user list`) run while an older `tern serve` still works on the data folder
    must not upgrade the database under it (the old server would go on writing the old way and fail every delivery):
    it refuses, names what to do, and leaves the database as it was. Without a server it upgrades it."""
    t = Tern(tmp_path / "t")
    t.add_domain("example.test")
    path = t.dir / "data" / "tern.db"
    current = user_version(path)
    # As an older version left it: the last migration not yet applied (the DDL stays, so only the refusal is tried).
    user_version(path, current - 1)
    r = list_users_beside_a_server(t)
    assert r.returncode not in (0, USAGE_ERROR), r
    err = r.stderr.decode()
    assert str(path) in err and "earlier version" in err and "restart it with this version" in err, err
    assert user_version(path) == current - 1
    # A current database opens beside a running server as always.
    user_version(path, current)
    r = list_users_beside_a_server(t)
    assert r.returncode == 0, r
