import Deliverability
import Foundation
import MailMessage
import Testing

@Suite struct ReceivedPathTests {
    func fields(_ text: String) -> [RawHeaderField] {
        let bytes = Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        return RawHeader.fields(bytes[..<RawHeader.end(bytes)])
    }

    @Test func clauses() {
        let hop = ReceivedPath.parse("from mail.example.com (mail.example.com [198.51.100.7]) by mx.tern.test (Tern) with ESMTPS id 4F2A (TLS1.3) for <bob@tern.test>; Tue, 24 Nov 2026 10:00:03 +0100")
        #expect(hop.from == "mail.example.com")
        #expect(hop.fromComment == "mail.example.com [198.51.100.7]")
        #expect(hop.ip == "198.51.100.7")
        #expect(hop.by == "mx.tern.test")
        #expect(hop.with == "ESMTPS")
        #expect(hop.id == "4F2A")
        #expect(hop.date == Date(timeIntervalSince1970: 1_795_510_803))
        // IPv6 literals, a bare address as the HELO, comments holding the words "by" and "with".
        let v6 = ReceivedPath.parse("from [IPv6:2001:db8::5] (unknown [IPv6:2001:db8::5] sent by with care) by mx; Tue, 24 Nov 2026 09:00:00 +0000")
        #expect(v6.ip == "2001:db8::5" && v6.by == "mx" && v6.with == nil)
        // No date, no from (local submission).
        let local = ReceivedPath.parse("by mx.tern.test (Postfix, from userid 1000) id 123")
        #expect(local.from == nil && local.ip == nil && local.by == "mx.tern.test" && local.date == nil)
    }

    @Test func hopsOldestFirstWithDelays() {
        let f = fields("""
            Received: from b (b [192.0.2.2]) by c with ESMTP; Tue, 24 Nov 2026 11:00:10 +0000
            Received: from a (a [192.0.2.1])
            \tby b with ESMTPSA;
            \tTue, 24 Nov 2026 10:00:05 +0000
            Subject: x

            body
            """)
        let start = RFC5322Date.parse("Tue, 24 Nov 2026 10:00:00 +0000")
        let hops = ReceivedPath.hops(f, messageDate: start)
        #expect(hops.map(\.by) == ["b", "c"])
        #expect(hops.map(\.delay) == [5, 3605])
        #expect(ReceivedPath.duration(3605) == "1 h" && ReceivedPath.duration(3725) == "1 h 2 min" && ReceivedPath.duration(-7) == "-7 s")
        #expect(ReceivedPath.duration(90061) == "1 d 1 h" && ReceivedPath.duration(125) == "2 min 5 s")
    }
}

@Suite struct HeaderLintTests {
    func problems(_ text: String) -> [String] {
        HeaderLint.problems(Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)).map { "\($0.severity.rawValue) \($0.field)" }
    }

    @Test func cleanMessage() {
        #expect(problems("""
            From: Alice <alice@example.com>
            To: "Doe, Bob" <bob@example.org>, carol@example.net
            Subject: hi
            Date: Tue, 24 Nov 2026 10:00:00 +0100
            Message-ID: <1.2@example.com>
            MIME-Version: 1.0
            Content-Type: text/plain

            hello
            """) == [])
    }

    @Test func eachProblem() {
        let found = problems("""
            From: alice@example.com, bob@example.com
            To: undisclosed-recipients:;
            Subject: a
            Subject: b
            Date: yesterday
            Message-ID: no-brackets@example.com
            Content-Type: text/plain
            Bad Name: x
            not a field

            hello
            """)
        #expect(found == ["error Bad Name", "error (header)", "error Subject", "error Date", "error From", "error Message-ID", "error MIME-Version"])
        let missing = problems("X-Other: 1\n\nbody\n")
        #expect(missing == ["error Date", "error From", "warning To", "warning Message-ID", "warning Subject"])
        // Obsolete zones, addresses without domains, 8-bit that is not UTF-8, long lines.
        var bytes = Array("From: alice\r\nTo: bob@example.org\r\nSubject: \u{E9}\r\nDate: Tue, 24 Nov 2026 10:00:00 EST\r\nMessage-ID: <a@b>\r\n\r\n".utf8)
        bytes += Array(repeating: UInt8(ascii: "x"), count: 1200) + [13, 10]
        let more = HeaderLint.problems(bytes).map { "\($0.severity.rawValue) \($0.field)" }
        #expect(more == ["error (lines)", "warning (header)", "warning Date", "error From"])
        bytes[bytes.firstIndex(of: 0xC3)!] = 0xE9
        #expect(HeaderLint.problems(bytes).contains { $0.field == "(header)" && $0.severity == .error })
    }
}
