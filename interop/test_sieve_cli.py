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
