import Deliverability
import Testing

@Suite struct AddressCheckTests {
    @Test func validAndNormalised() {
        let v = AddressCheck.check("Alice.Smith@Example.COM")
        #expect(v.isValid && v.normalized == "Alice.Smith@example.com" && v.ascii == "Alice.Smith@example.com" && !v.smtputf8)
        #expect(v.notes == ["domain lower-cased"])
        #expect(v.duplicateKey == "alice.smith@example.com")
        let q = AddressCheck.check("\"john\"@example.org")
        #expect(q.normalized == "john@example.org" && q.notes.contains("unneeded quotes removed"))
        let spaced = AddressCheck.check("\"john smith\"@example.org")
        #expect(spaced.normalized == "\"john smith\"@example.org")
        let named = AddressCheck.check("Bob Jones <bob@Example.org>")
        #expect(named.normalized == "bob@example.org" && named.notes.contains("display name dropped"))
        let idn = AddressCheck.check("用户@例子.广告")
        #expect(idn.isValid && idn.smtputf8 && idn.ascii == nil && idn.normalized == "用户@例子.广告")
        #expect(idn.duplicateKey == "用户@xn--fsqu00a.xn--4rr70v")
        let mixed = AddressCheck.check("info@Bücher.example")
        #expect(mixed.ascii == "info@xn--bcher-kva.example" && mixed.normalized == "info@bücher.example")
        #expect(AddressCheck.check("POSTMASTER@example.com").normalized == "postmaster@example.com")
    }

    @Test func refusalsSayWhy() {
        let cases: [(String, String)] = [
            ("hello.world", "no @"),
            ("hello＠world.com", "full-width at-sign"),
            ("my@localhost", "has no dot"),
            ("me@example.123", "not a top-level domain"),
            ("me@host.local", "special-use"),
            ("me@[192.0.2.1]", "bracketed IP address"),
            ("two..dots@example.com", "empty dot-separated part"),
            ("me@-dash.example.com", "hyphen"),
            ("me@yy--0.example", "third and fourth places"),
            ("me@xn--0.example", "not a valid IDNA A-label"),
            ("me@１２３.example", "IDNA does not allow"),
            ("zero\u{200B}width@example.com", "U+200B ZERO WIDTH SPACE"),
            ("<me@example.com", "without a closing one"),
            ("<me@example.com> x", "text after"),
            ("Display.Name <me@example.com>", "needs quotes"),
            (String(repeating: "a", count: 65) + "@example.com", "longer than 64"),
        ]
        for (input, why) in cases {
            let v = AddressCheck.check(input)
            #expect(!v.isValid && v.problem?.contains(why) == true, "\(input): \(v.problem ?? "valid")")
        }
    }
}
