import Foundation
import Testing
@testable import MailMessage

@Suite struct MailfileTests {
    let messages: [[UInt8]] = [
        Array("Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\n\r\n".utf8),
        Array("Subject: two\r\n\r\nbody\r\n".utf8),
        Array("Subject: three\r\n\r\n\r\n\r\ntrailing blanks above\r\n".utf8),
    ]

    @Test(arguments: [1, 2, 7, 64, 1_000_000])
    func mboxRoundTripAtEverySplit(step: Int) {
        var mbox: [UInt8] = []
        for m in messages { mbox += Mbox.entry(message: m, sender: "a@b.test", date: Date(timeIntervalSince1970: 0)) }
        let text = String(decoding: mbox, as: UTF8.self)
        #expect(text.hasPrefix("From a@b.test Thu Jan  1 00:00:00 1970\n"))
        #expect(text.contains("\n>From the start\n>>From quoted\n>>>From twice\n"))
        #expect(!text.contains("\r"))
        var splitter = MboxSplitter()
        var out: [[UInt8]] = []
        var i = 0
        while i < mbox.count {
            out += splitter.feed(mbox[i..<min(i + step, mbox.count)])
            i += step
        }
        out += splitter.finish()
        #expect(out == messages)
    }

    @Test func maildirFlags() {
        #expect(Maildir.infoSuffix(seen: true, answered: true, flagged: true, deleted: false, draft: true) == ":2,DFRS")
        #expect(Maildir.flags(ofFileName: "123.abc.host:2,FS") == ["F", "S"])
        #expect(Maildir.flags(ofFileName: "123.abc.host") == [])
    }

    @Test func tarHeaderChecksum() {
        let h = TarWriter().header(path: "Maildir/cur/x", size: 10, mode: 0o600, isDirectory: false, mtime: Date(timeIntervalSince1970: 0))
        #expect(h.count == 512)
        let stored = Int(String(decoding: h[148..<154], as: UTF8.self), radix: 8)
        var copy = h
        for i in 148..<156 { copy[i] = 32 }
        #expect(stored == copy.reduce(0) { $0 + Int($1) })
        #expect(String(decoding: h[257..<262], as: UTF8.self) == "ustar")
    }

    @Test(arguments: [
        (0.0, "Thu, 1 Jan 1970 00:00:00 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (1_795_918_680, "Sun, 29 Nov 2026 02:18:00 +0000"),
        (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
    ])
    func rfc5322Dates(_ t: Double, _ expected: String) {
        #expect(TraceHeaders.rfc5322Date(Date(timeIntervalSince1970: t)) == expected)
    }

    @Test func receivedHeader() {
        let r = TraceHeaders.received(heloName: "client\r\nX-Injected: yes", clientAddress: "2001:db8::1", reverseName: nil,
                                      hostname: "mx.test", protocolName: "ESMTPS", id: "ABC", tls: nil, singleRecipient: "a@b.test",
                                      date: Date(timeIntervalSince1970: 0))
        #expect(r == "Received: from clientX-Injected: yes ([IPv6:2001:db8::1])\r\n\tby mx.test (Tern) with ESMTPS id ABC\r\n\tfor <a@b.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n")
        #expect(TraceHeaders.protocolName(extended: true, tls: true, authenticated: true, utf8: true) == "UTF8SMTPSA")
        #expect(TraceHeaders.protocolName(extended: false, tls: false, authenticated: false, utf8: false) == "SMTP")
    }
}

@Suite struct TransferEncodingTests {
    @Test func base64() {
        #expect(TransferEncoding.decodeBase64(Array("SGVs\r\nbG8s IHdv\ncmxkIQ==".utf8)) == Array("Hello, world!".utf8))
        #expect(TransferEncoding.decodeBase64(Array("JVBERi0xLjQK".utf8)) == Array("%PDF-1.4\n".utf8))
        #expect(TransferEncoding.decodeBase64(Array("!!!".utf8)) == [])
    }

    @Test func quotedPrintable() {
        #expect(TransferEncoding.decodeQuotedPrintable(Array("Gr=C3=BC=C3=9Fe=\r\n aus K=C3=B6ln=\n!".utf8)) == Array("Grüße aus Köln!".utf8))
        #expect(TransferEncoding.decodeQuotedPrintable(Array("a=ZZb=3".utf8)) == Array("a=ZZb=3".utf8))
        #expect(TransferEncoding.decode(Array("x".utf8)[...], encoding: "x-uuencode") == nil)
    }

    /// RFC 2045 §6.7: white space at the end of an encoded line is deleted (transport may have added it); white space
    /// inside a line, and before a soft line break's "=", is kept; a soft break may itself be followed by white space.
    @Test func quotedPrintableTrailingWhiteSpaceAndSoftBreaks() {
        func qp(_ s: String) -> String { String(decoding: TransferEncoding.decodeQuotedPrintable(Array(s.utf8)), as: UTF8.self) }
        #expect(qp("trailing \t \r\nnext") == "trailing\r\nnext")
        #expect(qp("lf only  \nnext") == "lf only\nnext")
        #expect(qp("at the end   ") == "at the end")
        #expect(qp("kept \t=\r\nhere") == "kept \there")
        #expect(qp("soft=  \r\nbreak") == "softbreak")
        #expect(qp("two  spaces inside") == "two  spaces inside")
        #expect(qp("encoded space=20\r\n") == "encoded space \r\n")
    }
}

@Suite struct EncodedWordTests {
    @Test func decoding() {
        #expect(EncodedWords.decode("=?UTF-8?Q?J=C3=BCrgen?= <j@x>") == "Jürgen <j@x>")
        #expect(EncodedWords.decode("=?utf-8?B?R3LDvMOfZQ==?= =?utf-8?Q?_aus_K=C3=B6ln?=") == "Grüße aus Köln")
        #expect(EncodedWords.decode("=?ISO-8859-1?Q?Caf=E9?= ok") == "Café ok")
        #expect(EncodedWords.decode("plain =?bogus") == "plain =?bogus")
        #expect(EncodedWords.decode("=?x-unknown?Q?abc?=") == "=?x-unknown?Q?abc?=")
    }

    /// From octets: the same answers, and raw 8-bit octets inside an encoded word (forbidden, but sent) decoded in its
    /// charset; text outside words as UTF-8 (an octet that is not: U+FFFD).
    @Test func decodingOctets() {
        for text in ["=?UTF-8?Q?J=C3=BCrgen?= <j@x>", "=?utf-8?B?R3LDvMOfZQ==?= =?utf-8?Q?_aus_K=C3=B6ln?=", "=?ISO-8859-1?Q?Caf=E9?= ok",
                     "plain =?bogus", "=?x-unknown?Q?abc?=", "Grüße"] {
            #expect(EncodedWords.decode(bytes: Array(text.utf8)) == EncodedWords.decode(text), "\(text)")
        }
        #expect(EncodedWords.decode(bytes: Array("=?iso-8859-1?Q?Die_Hasen_und_die_Fr".utf8) + [0xF6] + Array("sche?=".utf8))
                == "Die Hasen und die Frösche")
        #expect(EncodedWords.decode(bytes: Array("J".utf8) + [0xFC] + Array("rgen".utf8)) == "J\u{FFFD}rgen")
    }

    /// SENTON and friends compare the day as written in the Date field, not its UTC day.
    @Test func writtenDayKeepsTheFieldsOwnZone() throws {
        let late = "Mon, 23 Nov 2026 23:30:00 -0800"
        let day = try #require(RFC5322Date.writtenDay(late))
        #expect(day == (2026, 11, 23))
        #expect(RFC5322Date.parse(late) == Date(timeIntervalSince1970: 1_795_505_400))   // 24 Nov 07:30 UTC
        #expect(RFC5322Date.writtenDay("Tue, 24 Nov 2026 00:10:00 +1300").map { [$0.year, $0.month, $0.day] } == [2026, 11, 24])
        #expect(RFC5322Date.writtenDay("not a date") == nil)
    }

    /// Angle brackets and parentheses inside a quoted string are text: `"a<b@c>"@x` is one address at x, not b@c (a
    /// From written so would pass for another sender).
    @Test func bracketsInsideQuotesAreText() {
        #expect(AddressList.parse("\"a<b@c.example>\"@far.example") == [.mailbox(name: nil, local: "a<b@c.example>", domain: "far.example")])
        #expect(AddressList.parse("\"Foo <foo@x.example>\" <real@y.example>") == [.mailbox(name: "Foo <foo@x.example>", local: "real", domain: "y.example")])
        #expect(AddressList.parse("\"a(b)\"@far.example") == [.mailbox(name: nil, local: "a(b)", domain: "far.example")])
        #expect(AddressList.parse("joe@d.example (Joe (the) Smith)") == [.mailbox(name: "Joe (the) Smith", local: "joe", domain: "d.example")])
        // A quote or comment that never closes hides nothing: the address is where the brackets say.
        for unclosed in ["\"PayPal <service@paypal.example>", "a\\\"b <service@paypal.example>", "(PayPal <service@paypal.example>"] {
            guard case .mailbox(_, "service", "paypal.example")? = AddressList.parse(unclosed).first else {
                Issue.record("\(unclosed): \(AddressList.parse(unclosed))"); continue
            }
        }
    }

    /// The obsolete source route (RFC 5322 §4.4) is kept for IMAP's ENVELOPE adl; the address itself is as without it.
    @Test func sourceRoutes() {
        let routed = AddressList.parseRouted("Joe <@a.example,@b.example:joe@c.example>, plain@d.example")
        #expect(routed.map(\.route) == ["@a.example,@b.example", nil])
        #expect(routed.map(\.item) == [.mailbox(name: "Joe", local: "joe", domain: "c.example"),
                                       .mailbox(name: nil, local: "plain", domain: "d.example")])
    }
}
