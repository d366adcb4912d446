"""ManageSieve (RFC 5804) on its own port, driven by clients nobody here wrote: Python's managesieve package and
sieve-connect (Debian, over STARTTLS), plus scramp for SCRAM-SHA-256. A script uploaded this way decides where mail
sent over SMTP lands (checked over IMAP)."""
import base64
import imaplib
import re
import smtplib
import socket
import subprocess

import managesieve
import scramp
from conftest import ALICE, BOB

PASSWORD = "secret-password-1"

SORT = """require ["fileinto", "mailbox"];
if header :contains "subject" "[list]" {
  fileinto :create "Lists";
}
"""


def test_managesieve_with_the_python_client(tern):
    ms = managesieve.MANAGESIEVE("127.0.0.1", tern.managesieve_port)
    assert ms.implementation == "Tern" and ms.loginmechs == ["PLAIN", "SCRAM-SHA-256"]
    assert {"fileinto", "vacation", "variables", "imap4flags"} <= set(ms.capabilities)
    assert ms.login("", ALICE, PASSWORD) == "OK"
    # A script with an error is refused, and the reason names the line and column.
    assert ms.putscript("bad", 'require "fileinto";\nif header :is "subject" {\n  fileinto "x";\n}\n') == "NO"
    assert ms.listscripts() == ("OK", [])
    assert ms.putscript("sort", SORT) == "OK"
    assert ms.putscript("spare", "keep;") == "OK"
    assert ms.setactive("sort") == "OK"
    typ, scripts = ms.listscripts()
    assert typ == "OK" and sorted(scripts) == [("sort", True), ("spare", False)]
    typ, text = ms.getscript("sort")
    assert typ == "OK" and text.replace("\r\n", "\n") == SORT
    assert ms.havespace("another", 1000) == "OK"
    assert ms.havespace("another", 10_000_000) == "NO"
    assert ms.deletescript("sort") == "NO"          # the active one
    assert ms.deletescript("missing") == "NO"
    assert ms.deletescript("spare") == "OK"
    assert ms.logout() == "OK"

    # Mail sent over SMTP lands where the uploaded script says.
    with smtplib.SMTP("127.0.0.1", tern.smtp_port, timeout=30) as s:
        s.sendmail("news@lists.test", [ALICE], "From: news@lists.test\r\nSubject: [list] weekly\r\n\r\nnews\r\n")
        s.sendmail("friend@other.test", [ALICE], "From: friend@other.test\r\nSubject: hello\r\n\r\nhi\r\n")
    imap = imaplib.IMAP4("127.0.0.1", tern.imap_port)
    imap.login(ALICE, PASSWORD)
    assert imap.select("Lists", readonly=True) == ("OK", [b"1"])
    assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
    imap.logout()

    # Someone else's scripts are their own; wrong passwords fail.
    ms = managesieve.MANAGESIEVE("127.0.0.1", tern.managesieve_port)
    assert ms.login("", BOB, "wrong") != "OK"
    ms = managesieve.MANAGESIEVE("127.0.0.1", tern.managesieve_port)
    assert ms.login("", BOB, PASSWORD) == "OK"
    assert ms.listscripts() == ("OK", [])
    ms.logout()


def lines(sock):
    data = b""
    while not re.search(rb"(^|\r\n)(OK|NO|BYE)[^\r\n]*\r\n$", data) and not re.search(rb"^\"[^\"]*\"\r\n$", data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_managesieve_protocol_details_and_scram(tern):
    s = socket.create_connection(("127.0.0.1", tern.managesieve_port), timeout=10)
    greeting = lines(s)
    assert '"IMPLEMENTATION" "Tern"' in greeting and '"SASL" "PLAIN SCRAM-SHA-256"' in greeting and "vacation" in greeting
    s.sendall(b'NOOP "t1"\r\n')
    assert lines(s) == 'OK (TAG "t1") "Done"\r\n'
    s.sendall(b"LISTSCRIPTS\r\n")
    assert lines(s).startswith("NO")
    # SCRAM-SHA-256 with an independent client: the server's proof comes in the OK's SASL code (RFC 5804 §2.1).
    client = scramp.ScramClient(["SCRAM-SHA-256"], ALICE, PASSWORD)
    first = base64.b64encode(client.get_client_first().encode()).decode()
    s.sendall(f'AUTHENTICATE "SCRAM-SHA-256" "{first}"\r\n'.encode())
    challenge = lines(s).strip().strip('"')
    client.set_server_first(base64.b64decode(challenge).decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    s.sendall(f'"{final}"\r\n'.encode())
    done = lines(s)
    m = re.match(r'OK \(SASL "([^"]+)"\)', done)
    assert m, done
    client.set_server_final(base64.b64decode(m.group(1)).decode())
    # Literals from the client ({N+} and {N}), a syntax error with its place, CHECKSCRIPT, RENAMESCRIPT.
    script = b'require "fileinto";\r\nfileinto "A";\r\n'
    s.sendall(b'PUTSCRIPT "one" {%d+}\r\n%s\r\n' % (len(script), script))
    assert lines(s).startswith("OK")
    s.sendall(b'CHECKSCRIPT {22}\r\nif true { fileinto "x" \r\n')
    reply = lines(s)
    assert reply.startswith("NO") and "line 1, column" in reply, reply
    # A script that is not UTF-8 is refused, not stored with replacement characters (RFC 5228 2.1).
    latin1 = b'# caf\xe9\r\nkeep;\r\n'
    s.sendall(b'PUTSCRIPT "latin1" {%d+}\r\n%s\r\n' % (len(latin1), latin1))
    reply = lines(s)
    assert reply.startswith("NO") and "UTF-8" in reply, reply
    s.sendall(b'RENAMESCRIPT "one" "two"\r\n')
    assert lines(s).startswith("OK")
    s.sendall(b'RENAMESCRIPT "missing" "three"\r\n')
    assert lines(s).startswith("NO (NONEXISTENT)")
    s.sendall(b'SETACTIVE "nope"\r\n')
    assert lines(s).startswith("NO (NONEXISTENT)")
    s.sendall(b'GETSCRIPT "two"\r\n')
    got = lines(s)
    assert got.startswith("{%d}\r\n" % len(script)) and got.endswith("OK \"Got it\"\r\n")
    s.sendall(b"UNAUTHENTICATE\r\n")
    assert lines(s).startswith("OK")
    s.sendall(b"LISTSCRIPTS\r\n")
    assert lines(s).startswith("NO")
    s.sendall(b"LOGOUT\r\n")
    assert lines(s).startswith("OK")
    s.close()


def test_sieve_connect_over_starttls(tern, tmp_path):
    local = tmp_path / "sort.sieve"
    local.write_text(SORT)

    def sieve_connect(*args):
        return subprocess.run(["sieve-connect", "-s", "127.0.0.1", "-p", str(tern.managesieve_port), "-u", ALICE,
                               "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", *args],
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)

    r = sieve_connect("--upload", "--localsieve", str(local), "--remotesieve", "sort")
    assert r.returncode == 0, r.stderr
    r = sieve_connect("--activate", "--remotesieve", "sort", "--debug")
    assert r.returncode == 0, r.stderr
    # It took the STARTTLS the server offers, and logged in over TLS.
    assert "STARTTLS" in r.stderr and "AUTHENTICATE" in r.stderr, r.stderr
    r = sieve_connect("--list")
    assert r.returncode == 0 and r.stdout.strip() == "\"sort\" ACTIVE", r.stdout + r.stderr
    out = tmp_path / "back.sieve"
    r = sieve_connect("--download", "--remotesieve", "sort", "--localsieve", str(out))
    assert r.returncode == 0 and out.read_text().replace("\r\n", "\n") == SORT, r.stderr
    bad = tmp_path / "bad.sieve"
    bad.write_text('if header :is "subject" { stop; }\n')
    r = sieve_connect("--checkscript", "--localsieve", str(bad))
    assert r.returncode != 0
    # What the CLI sees is what ManageSieve stored.
    assert tern.run("sieve", "list", ALICE).stdout.decode().startswith("sort\t")
