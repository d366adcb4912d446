"""`tern check address` and `tern check addresses` against python's email-validator.

The cases are email-validator's own (tests/test_syntax.py of its source package, fetched by scripts/install-test-deps
and read here with `ast`, not copied): every address it says is valid or invalid goes through `tern check address
--json`, and the verdicts and normalised forms are compared. The disagreements are listed in KNOWN, each with the
reason, and written up in docs/addresses.md; the test fails on any new one and on any listed one that went away.
"""
import ast
import csv
import json
import pathlib
import subprocess

import pytest

from ternlib import TERN, Tern

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUITE = ROOT / ".cache" / "email_validator-2.4.0" / "tests" / "test_syntax.py"

# input -> why Tern and email-validator differ (see docs/addresses.md).
KNOWN = {
    # Tern accepts these as RFC 5322 name-addr forms and keeps the address; email-validator refuses display names and
    # angle brackets unless allow_display_name is set (its valid cases set it, its invalid ones do not).
    "<me@example.com>": "angle brackets accepted, address kept",
    "DisplayName <me@example.com>": "display name accepted, address kept",
    "Display Name <me@example.com>": "display name accepted, address kept",
    '"Display Name" <me@example.com>': "display name accepted, address kept",
    '"Display.Name" <me@example.com>': "display name accepted, address kept",
    # IDNA's Bidi rule (RFC 5893): a domain with a right-to-left label may not have a label that starts with a digit.
    # Tern does not apply it (Swift has no Unicode bidi classes at hand); the A-labels are valid Punycode.
    "me@1.xn--4dbc.com": "bidi rule not applied",
    "me@xn--4dbc.1.com": "bidi rule not applied",
    "me@1.xn--4dbrk0ce": "bidi rule not applied",
    # 254 octets after NFC normalisation, the limit of RFC 5321 §4.5.3.1.3: Tern measures the normalised address in
    # octets; email-validator counts this one as too long.
    "my.s\u0323\u0307.address@1111111111222222222233333333334444444444555555555.6666666666777777777788888888889999999999000000000"
    ".1111111111222222222233333333334444444444555555555.6666666666777777777788888888889999999999000000000"
    ".1111111111222222222233333333334444.info": "length in octets after NFC",
}


def _cases():
    """(input, expected valid, expected normalised form or None, group) from email-validator's parametrized tests."""
    tree = ast.parse(SUITE.read_text(encoding="utf-8"))
    cases = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                continue
            for item in dec.args[1].elts:
                first = item.elts[0] if isinstance(item, (ast.Tuple, ast.List)) else item
                try:
                    address = ast.literal_eval(first)
                except ValueError:
                    continue
                rest = item.elts[1] if isinstance(item, (ast.Tuple, ast.List)) and len(item.elts) > 1 else None
                group = fn.name
                if group in ("test_email_valid", "test_email_valid_intl_local_part"):
                    normalized = next((ast.literal_eval(k.value) for k in rest.keywords if k.arg == "normalized"), None)
                    cases.append((address, True, normalized, group))
                elif group == "test_email_valid_only_if_quoted_local_part":
                    # Valid when quoted local parts are allowed (Tern allows them: RFC 5321 does).
                    cases.append((address, True, None, group))
                elif group in ("test_email_invalid_syntax", "test_email_invalid_syntax_strict",
                               "test_email_invalid_syntax_display_name", "test_email_invalid_reserved_domain"):
                    cases.append((address, False, None, group))
                elif group == "test_email_unsafe_character":
                    # The suite uses each character as the whole local part of "…@test" and as the whole domain of
                    # "test@…" (with its test_environment option); Tern, like email-validator without that option,
                    # refuses .test anyway, so the character stands as the local part and as a domain label of an
                    # otherwise good address. A lone surrogate cannot be UTF-8 at all.
                    if address != "\ud800":
                        cases.append((address + "@example.com", False, None, group))
                        cases.append(("me@" + address + ".example.com", False, None, group))
                elif group == "test_pyisemail_tests":
                    status = ast.literal_eval(rest)
                    # Valid: the plain forms, and quoted local parts (RFC 5321; email-validator needs an option).
                    cases.append((address, status in ("ISEMAIL_VALID", "ISEMAIL_RFC5321_QUOTEDSTRING"), None, group))
    return cases


@pytest.fixture(scope="module")
def tern(tmp_path_factory):
    return Tern(tmp_path_factory.mktemp("addr"))


def check(tern, addresses, *options):
    # After "--" every argument is an address, even one that starts with "-".
    r = subprocess.run([TERN, "check", "address", "--config", str(tern.config), "--json", *options, "--", *addresses],
                       capture_output=True, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_email_validator_cases(tern):
    if not SUITE.exists():
        pytest.fail(f"{SUITE} missing: scripts/install-test-deps fetches it")
    # A NUL cannot travel in a command's arguments; those few cases are left out (they are invalid in both).
    cases = [c for c in _cases() if "\x00" not in c[0]]
    assert len(cases) > 250, len(cases)
    inputs = [c[0] for c in cases]
    _, results = check(tern, inputs)
    assert [r["input"] for r in results] == inputs
    disagreements = {}
    for (address, valid, normalized, group), r in zip(cases, results):
        if r["valid"] != valid:
            disagreements[address] = f"{group}: email-validator {'valid' if valid else 'invalid'}, Tern {r.get('problem') or 'valid'}"
        elif valid and normalized is not None and r.get("normalized") != normalized:
            disagreements[address] = f"{group}: normalised {r.get('normalized')!r}, email-validator {normalized!r}"
    agree = len(cases) - len(disagreements)
    print(f"email-validator 2.4.0 cases: {len(cases)}, Tern agrees on {agree}")
    for a, why in disagreements.items():
        print(f"  {a!r}: {why}")
    assert set(disagreements) == set(KNOWN), sorted(set(disagreements) ^ set(KNOWN))


def test_check_address_exit_status_and_reasons(tern):
    code, [good] = check(tern, ["Jane.Doe@Example.COM"])
    assert code == 0 and good["valid"] and good["normalized"] == "Jane.Doe@example.com" and good["ascii"] == "Jane.Doe@example.com"
    code, rows = check(tern, ["ok@example.org", "no-at-sign.example.org", "dots..@example.org", "u@müller.example"])
    assert code == 1
    assert [r["valid"] for r in rows] == [True, False, False, True]
    assert rows[1]["problem"] == "the address has no @" and rows[1]["kind"] == "syntax"
    assert "dot" in rows[2]["problem"]
    assert rows[3]["normalized"] == "u@müller.example" and rows[3]["ascii"] == "u@xn--mller-kva.example"
    text = tern.run("check", "address", "bad@@example.org", check=False)
    assert text.returncode == 1 and b"invalid  bad@@example.org" in text.stdout


def test_cleanse_csv(tern, tmp_path):
    path = tmp_path / "list.csv"
    rows = [["id", "Email", "note"],
            ["1", "Ann@Example.com", "first"],
            ["2", " ann@example.COM ", "same address, other case and spaces"],
            ["3", "bob(at)example.com", "no @"],
            ["4", '"quoted, with comma"@example.com', "valid, quoted"],
            ["5", "carl@localhost", "no dot"],
            ["6", "dora@host.invalid", "special use"],
            ["7", "Eve <eve@example.net>", "display name"],
            ["8", "", "empty"]]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    out = tern.run("check", "addresses", str(path), "--column", "email").stdout.decode()
    assert "8 rows read" in out and "3 kept" in out and "5 removed" in out, out
    with (tmp_path / "list.clean.csv").open(newline="", encoding="utf-8") as f:
        kept = list(csv.reader(f))
    assert kept == [["id", "Email", "note"], ["1", "Ann@example.com", "first"],
                    ["4", '"quoted, with comma"@example.com', "valid, quoted"],
                    ["7", "eve@example.net", "display name"]], kept
    with (tmp_path / "list.removed.csv").open(newline="", encoding="utf-8") as f:
        removed = {r[0]: r[3] for r in list(csv.reader(f))[1:]}
    assert set(removed) == {"2", "3", "5", "6", "8"}, removed
    assert removed["2"] == "duplicate of an earlier row"
    assert removed["3"] == "the address has no @"
    assert "no dot" in removed["5"] and ".invalid" in removed["6"] and removed["8"] == "the address is empty"
    # The column by number, and a column that is not there.
    assert tern.run("check", "addresses", str(path), "--column", "2", "--output", str(tmp_path / "o.csv")).returncode == 0
    bad = tern.run("check", "addresses", str(path), "--column", "mail", check=False)
    assert bad.returncode != 0 and b'no column "mail"' in bad.stderr


def test_domain_checks_with_dns(tmp_path):
    from ternlib import DNSServer
    dns = DNSServer(tmp_path, ["--local=/example/", "--mx-host=good.example,mx.good.example,10",
                               "--host-record=mx.good.example,127.0.0.9", "--mx-host=nullmx.example,.,0",
                               "--host-record=aonly.example,127.0.0.10", "--mx-host=broken.example,mx.nowhere.example,10"],
                    probe="mx.good.example")
    try:
        t = Tern(tmp_path / "t", {"dns": {"nameservers": [f"127.0.0.1:{dns.port}"]}})
        addresses = ["a@good.example", "b@aonly.example", "c@nullmx.example", "d@missing.example", "e@broken.example"]
        code, found = check(t, addresses, "--dns")
        assert code == 1
        rows = {x["input"]: x for x in found}
        assert rows["a@good.example"]["valid"] and rows["a@good.example"]["domain"] == "MX mx.good.example"
        assert rows["b@aonly.example"]["valid"] and "no MX" in rows["b@aonly.example"]["domain"]
        assert not rows["c@nullmx.example"]["valid"] and "null MX" in rows["c@nullmx.example"]["problem"]
        assert not rows["d@missing.example"]["valid"] and "does not exist" in rows["d@missing.example"]["problem"]
        assert not rows["e@broken.example"]["valid"] and "no mail exchanger" in rows["e@broken.example"]["problem"]
        assert {x["kind"] for x in rows.values() if not x["valid"]} == {"domain"}
        # The same through list cleansing.
        path = tmp_path / "l.csv"
        path.write_text("email\n" + "\n".join(addresses) + "\n")
        out = t.run("check", "addresses", str(path), "--dns").stdout.decode()
        assert "5 rows read" in out and "2 kept" in out and "3 removed" in out, out
        assert (tmp_path / "l.clean.csv").read_text() == "email\na@good.example\nb@aonly.example\n"
    finally:
        dns.stop()
