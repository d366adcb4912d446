import Testing
@testable import MailCore

@Suite struct EmailAddressTests {
    @Test(arguments: [
        ("alice@example.com", "alice", "example.com"),
        ("Alice.Smith+tag@Sub.Example.COM", "Alice.Smith+tag", "Sub.Example.COM"),
        ("\"quoted local\"@example.com", "quoted local", "example.com"),
        ("\"a\\\"b\"@example.com", "a\"b", "example.com"),
        ("user@[192.0.2.1]", "user", "[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "user", "[IPv6:2001:db8::1]"),
        ("user@[IPv6:::ffff:192.0.2.1]", "user", "[IPv6:::ffff:192.0.2.1]"),
        ("!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~", "example.com"),
        ("jürgen@müller.example", "jürgen", "müller.example"),
        ("用户@例子.广告", "用户", "例子.广告"),
        ("a@b", "a", "b"),
    ])
    func valid(_ text: String, _ local: String, _ domain: String) throws {
        let a = try EmailAddress.parse(text)
        #expect(a.localPart == local)
        #expect(a.domain == domain)
    }

    @Test(arguments: [
        ("", AddressSyntaxError.empty),
        ("alice", .missingAt),
        ("@example.com", .emptyLocalPart),
        (".alice@example.com", .emptyAtom),
        ("alice.@example.com", .emptyAtom),
        ("al..ice@example.com", .emptyAtom),
        ("alice@", .emptyDomain),
        ("alice@example..com", .emptyLabel),
        ("alice@-example.com", .hyphenAtLabelEdge),
        ("alice@example-.com", .hyphenAtLabelEdge),
        ("alice@exa_mple.com", .badDomainCharacter("_")),
        ("alice@[300.1.1.1]", .badAddressLiteral),
        ("alice@[IPv6:1:2:3]", .badAddressLiteral),
        ("\"unclosed@example.com", .badQuotedString),
        (String(repeating: "a", count: 65) + "@example.com", .localPartTooLong),
        ("alice@" + String(repeating: "a", count: 64) + ".com", .labelTooLong),
        ("al ice@example.com", .unexpectedCharacter(at: 2, in: "the local part")),
    ])
    func invalid(_ text: String, _ error: AddressSyntaxError) {
        #expect(throws: error) { try EmailAddress.parse(text) }
    }

    @Test func utf8NeedsPermission() {
        #expect(throws: AddressSyntaxError.utf8NotAllowed) { try EmailAddress.parse("jürgen@example.com", allowUTF8: false) }
        #expect(throws: AddressSyntaxError.utf8NotAllowed) { try EmailAddress.parse("j@müller.example", allowUTF8: false) }
        #expect(throws: Never.self) { try EmailAddress.parse("j@example.com", allowUTF8: false) }
    }

    @Test func totalLengthLimit() {
        let local = String(repeating: "a", count: 64)
        let domain = (0..<4).map { _ in String(repeating: "b", count: 62) }.joined(separator: ".")
        #expect(throws: AddressSyntaxError.tooLong) { try EmailAddress.parse("\(local)@\(domain)") }
    }

    @Test func descriptionQuotesWhenNeeded() throws {
        #expect(try EmailAddress.parse("\"two words\"@example.com").description == "\"two words\"@example.com")
        #expect(try EmailAddress.parse("plain@Example.com").canonical == "plain@example.com")
        #expect(try EmailAddress.parse("jürgen@example.com").needsSMTPUTF8)
        #expect(try !EmailAddress.parse("j@example.com").needsSMTPUTF8)
        // A local part goes unquoted only as a Dot-string: atoms (UTF-8 allowed) joined by single dots.
        for plain in ["a", "a.b", "first.last+tag", "j\u{FC}rgen", "x!#$%&'*+/=?^_`{|}~-y"] { #expect(EmailAddress.isDotString(plain), "\(plain)") }
        for quoted in ["", ".a", "a.", "a..b", "two words", "a\"b", "a@b", "a(b)", "."] { #expect(!EmailAddress.isDotString(quoted), "\(quoted)") }
        #expect(try EmailAddress.parse("\"a..b\"@example.com").description == "\"a..b\"@example.com")
    }

    /// Every quote and backslash is escaped, also one that a combining mark follows (one Character with it).
    @Test func quoteEscapesEveryQuoteAndBackslash() throws {
        #expect(EmailAddress.quote("a\"b\\c") == "\"a\\\"b\\\\c\"")
        #expect(EmailAddress.quote("\"\u{301}x") == "\"\\\"\u{301}x\"")
        #expect(EmailAddress.quote("\\\u{308}") == "\"\\\\\u{308}\"")
        // What is quoted reads back as the same local part.
        for local in ["\"\u{301}x", "a b\"\u{308}", "\\\u{301}\""] {
            let parsed = try EmailAddress.parse(EmailAddress.quote(local) + "@example.com", allowUTF8: true)
            #expect(parsed.localPart == local)
        }
    }

    @Test func replyEncoding() {
        let r = SMTPReply(250, nil, ["first", "second", "last"])
        #expect(r.encoded() == "250-first\r\n250-second\r\n250 last\r\n")
        let e = SMTPReply(550, "5.1.1", "User unknown")
        #expect(e.encoded() == "550 5.1.1 User unknown\r\n")
        #expect(e.encoded(withEnhanced: false) == "550 User unknown\r\n")
    }
}
