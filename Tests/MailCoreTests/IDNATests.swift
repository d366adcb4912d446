import Testing
@testable import MailCore

@Suite struct IDNATests {
    @Test(arguments: [
        ("müller", "mller-kva"),
        ("bücher", "bcher-kva"),
        ("münchen", "mnchen-3ya"),
        ("例子", "fsqu00a"),
        // RFC 3492 §7.1 (A) Arabic (Egyptian) and (L) Japanese
        ("ليهمابتكلموشعربي؟", "egbpdaj6bu4bxfgehfvwxn"),
        ("3年B組金八先生", "3B-ww4c5e180e575a65lsy2b"),
    ])
    func punycode(_ unicode: String, _ encoded: String) {
        #expect(Punycode.encode(unicode) == encoded)
        #expect(Punycode.decode(encoded) == unicode)
    }

    @Test func domains() throws {
        #expect(IDNA.toASCII("MÜLLER.Example") == "xn--mller-kva.example")
        #expect(IDNA.toASCII("example.COM") == "example.com")
        #expect(IDNA.toASCII("[IPv6:2001:DB8::1]") == "[ipv6:2001:db8::1]")
        // NFC: u + combining diaeresis is the same domain as ü.
        #expect(IDNA.toASCII("mu\u{308}ller.example") == "xn--mller-kva.example")
        #expect(IDNA.toUnicode("xn--mller-kva.example") == "müller.example")
        #expect(IDNA.toUnicode("xn--!!.example") == "xn--!!.example")
        #expect(try EmailAddress.parse("a@Müller.example").normalizedDomain == "xn--mller-kva.example")
        #expect(try EmailAddress.parse("a@xn--mller-kva.example").normalizedDomain == "xn--mller-kva.example")
    }
}
