"""`tern sieve`: a user's Sieve scripts from the command line (issue 22). A script with an error is refused with the
error's line and column; one script at a time is active; the active one cannot be deleted."""
from conftest import ALICE


def test_sieve_scripts_from_the_command_line(make_tern, tmp_path):
    t = make_tern(start=False)
    good = tmp_path / "sort.sieve"
    good.write_text('require ["fileinto"];\nif header :contains "subject" "[list]" {\n  fileinto "Lists";\n}\n')
    bad = tmp_path / "bad.sieve"
    bad.write_text('require "fileinto";\nif header :is "subject" {\n  fileinto "x";\n}\n')

    r = t.run("sieve", "check", str(good))
    assert b"no errors" in r.stdout
    r = t.run("sieve", "check", str(bad), check=False)
    assert r.returncode == 1 and r.stderr.decode().strip() == f"{bad}:2:4: header needs 2 arguments"
    r = t.run("sieve", "put", ALICE, "bad", str(bad), check=False)
    assert r.returncode == 1 and b":2:4: header needs 2 arguments" in r.stderr
    assert t.run("sieve", "list", ALICE).stdout == b""

    t.run("sieve", "put", ALICE, "sort", str(good))
    t.run("sieve", "put", ALICE, "spare", str(good))
    t.run("sieve", "activate", ALICE, "sort")
    assert t.run("sieve", "list", ALICE).stdout.decode().splitlines() == [
        f"sort\t{len(good.read_bytes())} octets\tactive", f"spare\t{len(good.read_bytes())} octets"]
    assert t.run("sieve", "get", ALICE, "sort").stdout == good.read_bytes()
    r = t.run("sieve", "delete", ALICE, "sort", check=False)
    assert r.returncode != 0 and b"is active" in r.stderr
    t.run("sieve", "activate", ALICE, "--none")
    t.run("sieve", "delete", ALICE, "sort")
    assert t.run("sieve", "list", ALICE).stdout.decode().splitlines() == [f"spare\t{len(good.read_bytes())} octets"]
    r = t.run("sieve", "list", "nobody@example.test", check=False)
    assert r.returncode != 0 and b"no account" in r.stderr


def test_sieve_test_prints_what_the_script_would_do(make_tern, tmp_path):
    """`tern sieve test USER MESSAGE`: a dry run of the active script (or --script) on a message file."""
    t = make_tern(start=False)
    script = tmp_path / "s.sieve"
    script.write_text('require ["fileinto", "mailbox", "imap4flags", "variables"];\n'
                      'if header :matches "subject" "[*]*" { addflag "\\\\Flagged"; fileinto :create "lists/${1}"; }\n'
                      'if address :is "from" "boss@remote.test" { redirect "phone@remote.test"; }\n')
    message = tmp_path / "m.eml"
    message.write_bytes(b"Return-Path: <list@remote.test>\r\nFrom: boss@remote.test\r\nSubject: [ietf] news\r\n\r\nhi\r\n")
    r = t.run("sieve", "test", ALICE, str(message), "--script", str(script))
    assert r.stdout.decode().splitlines() == ['fileinto "lists/ietf" (create) flags [\\Flagged]', "redirect <phone@remote.test>"]
    # Without --script: the active one; none active is an error.
    r = t.run("sieve", "test", ALICE, str(message), check=False)
    assert r.returncode != 0 and b"no active script" in r.stderr
    (tmp_path / "d.sieve").write_text('if envelope :is "from" "list@remote.test" { discard; }')
    r = t.run("sieve", "test", ALICE, str(message), "--script", str(tmp_path / "d.sieve"), check=False)
    assert r.returncode == 1 and b"envelope needs require" in r.stderr
    (tmp_path / "d.sieve").write_text('require "envelope"; if envelope :is "from" "list@remote.test" { discard; }')
    t.run("sieve", "put", ALICE, "d", str(tmp_path / "d.sieve"))
    t.run("sieve", "activate", ALICE, "d")
    assert t.run("sieve", "test", ALICE, str(message)).stdout == b"discard\n"
    assert t.run("sieve", "test", ALICE, str(message), "--from", "x@y.test").stdout == b"keep\n"
