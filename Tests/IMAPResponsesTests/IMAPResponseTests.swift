import Foundation
import TernTestSupport
import Testing
import IMAPCodec
@testable import IMAPResponses

/// The response encoder, byte for byte, and the parser reading back everything it writes.
@Suite struct IMAPResponseTests {
    func wire(_ r: IMAPResponse, utf8: Bool = false) -> String {
        String(decoding: IMAPResponseEncoder.encode(r, utf8: utf8), as: UTF8.self)
    }

    @Test func statusResponsesAndCodes() {
        #expect(wire(.tagged("a1", IMAPStatus(.ok, nil, "NOOP completed"))) == "a1 OK NOOP completed\r\n")
        #expect(wire(.untagged(IMAPStatus(.ok, .unseen(12), "Message 12 is first unseen"))) == "* OK [UNSEEN 12] Message 12 is first unseen\r\n")
        #expect(wire(.untagged(IMAPStatus(.ok, .permanentFlags(["\\Deleted", "\\Seen", "\\*"]), "Limited")))
            == "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n")
        #expect(wire(.tagged("A003", IMAPStatus(.ok, .appendUID(validity: 38505, uids: [3955]), "APPEND completed")))
            == "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n")
        // RFC 4315 §4.3: the two sets of COPYUID pair up by position, so they keep the order given.
        #expect(wire(.tagged("A004", IMAPStatus(.ok, .copyUID(validity: 38505, source: [304, 319, 320, 321], destination: [3956, 3957, 3958, 3959]), "Done")))
            == "A004 OK [COPYUID 38505 304,319:321 3956:3959] Done\r\n")
        #expect(wire(.tagged("m", IMAPStatus(.ok, .copyUID(validity: 1, source: [5, 3], destination: [10, 11]), "Moved")))
            == "m OK [COPYUID 1 5,3 10:11] Moved\r\n")
        #expect(wire(.tagged("t", IMAPStatus(.no, .badCharset(["UTF-8", "US-ASCII"]), "Unsupported charset")))
            == "t NO [BADCHARSET (\"UTF-8\" \"US-ASCII\")] Unsupported charset\r\n")
        #expect(wire(.untagged(IMAPStatus(.bye, .limit, "Too many"))) == "* BYE [LIMIT] Too many\r\n")
        #expect(wire(.continuation("idling")) == "+ idling\r\n")
    }

    @Test func objectIDsAsRFC8474WritesThem() {
        #expect(wire(.fetch(1, [.emailID("M6d99a"), .threadID(nil)])) == "* 1 FETCH (EMAILID (M6d99a) THREADID NIL)\r\n")
        #expect(wire(.status(mailbox: "foo", [IMAPParameterValue("MAILBOXID", objectID: "F7")])) == "* STATUS \"foo\" (MAILBOXID (F7))\r\n")
        #expect(wire(.tagged("3", IMAPStatus(.ok, .mailboxID("F2"), "Completed"))) == "3 OK [MAILBOXID (F2)] Completed\r\n")
        #expect(wire(.fetch(2, [.saveDate(Date(timeIntervalSince1970: 0))])) == "* 2 FETCH (SAVEDATE \" 1-Jan-1970 00:00:00 +0000\")\r\n")
    }

    @Test func esearchForSortKeepsTheOrderAndPartialAsRFC9394() {
        #expect(wire(.esearch(IMAPESearch(tag: "s", uid: false, all: [9, 3, 4, 5, 2]))) == "* ESEARCH (TAG \"s\") ALL 9,3:5,2\r\n")
        #expect(wire(.esearch(IMAPESearch(tag: "p", uid: true, partial: IMAPPartialResult(range: PartialRange(-1, -3), numbers: [38, 39, 40]))))
            == "* ESEARCH (TAG \"p\") UID PARTIAL (-1:-3 38:40)\r\n")
        #expect(wire(.esearch(IMAPESearch(tag: "q", uid: false, partial: IMAPPartialResult(range: PartialRange(1, 10), numbers: []))))
            == "* ESEARCH (TAG \"q\") PARTIAL (1:10 NIL)\r\n")
    }

    /// CONTEXT=SEARCH/SORT updates and the codes of CONTEXT and NOTIFY, as RFC 5267 §4 and RFC 5465 write them.
    @Test func contextUpdatesAndNotifyCodes() {
        #expect(wire(.esearch(IMAPESearch(tag: "B01", uid: true, updates: [IMAPContextUpdate(add: true, position: 0, numbers: [32768, 32769])])))
            == "* ESEARCH (TAG \"B01\") UID ADDTO (0 32768:32769)\r\n")
        #expect(wire(.esearch(IMAPESearch(tag: "C01", uid: true, updates: [IMAPContextUpdate(add: true, position: 1, numbers: [2733]),
                                                                           IMAPContextUpdate(add: true, position: 1, numbers: [2731, 2732])])))
            == "* ESEARCH (TAG \"C01\") UID ADDTO (1 2733) ADDTO (1 2731:2732)\r\n")
        #expect(wire(.esearch(IMAPESearch(tag: "B01", uid: true, updates: [IMAPContextUpdate(add: false, position: 0, numbers: [32768])])))
            == "* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 32768)\r\n")
        #expect(wire(.untagged(IMAPStatus(.no, .noUpdate("B02"), "Too many contexts"))) == "* NO [NOUPDATE \"B02\"] Too many contexts\r\n")
        #expect(wire(.tagged("d", IMAPStatus(.no, .badEvent(["MessageNew", "MessageExpunge"]), "Unsupported")))
            == "d NO [BADEVENT (MessageNew MessageExpunge)] Unsupported\r\n")
        #expect(wire(.untagged(IMAPStatus(.ok, .notificationOverflow, "Too many"))) == "* OK [NOTIFICATIONOVERFLOW] Too many\r\n")
        #expect(wire(.list(IMAPListItem(attributes: [], delimiter: "/", mailbox: "NewMailbox", oldName: "OldMailbox")))
            == "* LIST () \"/\" \"NewMailbox\" (\"OLDNAME\" (\"OldMailbox\"))\r\n")
    }

    @Test func textCannotBreakTheLine() {
        // A text built from client input (a user name, a charset) must not end the line and start a forged response.
        #expect(wire(.tagged("a", IMAPStatus(.no, nil, "bad user x\r\n* OK [ALERT] owned"))) == "a NO bad user x  * OK [ALERT] owned\r\n")
        #expect(wire(.continuation("a\rb\u{0}c")) == "+ a b c\r\n")
    }

    @Test func stringsAreQuotedOrLiteralByOneRule() {
        #expect(wire(.list(IMAPListItem(attributes: [], delimiter: "/", mailbox: "a \"b\" \\c")))
            == "* LIST () \"/\" \"a \\\"b\\\" \\\\c\"\r\n")
        // 8-bit text is a literal unless UTF-8 is enabled (RFC 6855), then it may be quoted.
        #expect(wire(.list(IMAPListItem(attributes: [], delimiter: "/", mailbox: "Grüße"))) == "* LIST () \"/\" {7}\r\nGrüße\r\n")
        #expect(wire(.list(IMAPListItem(attributes: [], delimiter: "/", mailbox: "Grüße")), utf8: true) == "* LIST () \"/\" \"Grüße\"\r\n")
        // CR or LF: a literal; NUL, which no string may hold, is dropped.
        #expect(wire(.fetch(1, [.envelope(IMAPEnvelope(date: nil, subject: "two\r\nlines", from: nil, sender: nil, replyTo: nil,
                                                        to: nil, cc: nil, bcc: nil, inReplyTo: nil, messageID: "a\u{0}b"))]))
            == "* 1 FETCH (ENVELOPE (NIL {10}\r\ntwo\r\nlines NIL NIL NIL NIL NIL NIL NIL \"ab\"))\r\n")
        let long = String(repeating: "x", count: 2000)
        #expect(wire(.list(IMAPListItem(attributes: [], delimiter: nil, mailbox: long))) == "* LIST () NIL {2000}\r\n\(long)\r\n")
    }

    @Test func literalsNeverCarryNULAndBinaryUsesLiteral8() {
        let data: [UInt8] = [65, 0, 66]
        #expect(IMAPResponseEncoder.encode(.fetch(2, [.bodySection(section: "", origin: nil, data: data[...])]))
            == Array("* 2 FETCH (BODY[] {3}\r\nA".utf8) + [0x80] + Array("B)\r\n".utf8))
        #expect(IMAPResponseEncoder.encode(.fetch(2, [.binary(part: [1], origin: nil, data: data[...])]))
            == Array("* 2 FETCH (BINARY[1] ~{3}\r\nA".utf8) + [0] + Array("B)\r\n".utf8))
        #expect(wire(.fetch(2, [.binary(part: [1, 2], origin: 4, data: Array("ok".utf8)[...]), .binarySize(part: [3], size: 12)]))
            == "* 2 FETCH (BINARY[1.2]<4> {2}\r\nok BINARY.SIZE[3] 12)\r\n")
        // The parser refuses NUL in an ordinary literal and reads it in literal8.
        #expect(throws: IMAPResponseParser.Failure.self) {
            try IMAPResponseParser.parse(Array("* 2 FETCH (BODY[] {3}\r\nA".utf8) + [0] + Array("B)\r\n".utf8))
        }
    }

    @Test func internalDates() throws {
        let d = Date(timeIntervalSince1970: 837_596_665)   // 17-Jul-1996 02:44:25 -0700 (RFC 9051's example)
        #expect(IMAPResponseEncoder.internalDate(d) == "17-Jul-1996 09:44:25 +0000")
        #expect(IMAPResponseEncoder.internalDate(Date(timeIntervalSince1970: 0)) == " 1-Jan-1970 00:00:00 +0000")
        #expect(IMAPResponseEncoder.internalDate(Date(timeIntervalSince1970: 951_782_400)) == "29-Feb-2000 00:00:00 +0000")
        #expect(IMAPResponseEncoder.internalDate(Date(timeIntervalSince1970: -1)) == "31-Dec-1969 23:59:59 +0000")
        #expect(IMAPDateTime.parse("17-Jul-1996 02:44:25 -0700") == d)
        #expect(IMAPDateTime.parse(" 1-Jan-1970 00:00:00 +0000") == Date(timeIntervalSince1970: 0))
        var rng = SplitMix(seed: 9)
        for _ in 0..<500 {
            let t = Date(timeIntervalSince1970: TimeInterval(Int64(rng.next() % 8_000_000_000) - 2_000_000_000))
            #expect(IMAPDateTime.parse(IMAPResponseEncoder.internalDate(t)) == t)
        }
    }

    @Test func threadsAsRFC5256WritesThem() throws {
        // RFC 5256 §4's example: (2)(3 6 (4 23)(44 7 96))
        let roots = [IMAPThreadNode(2), IMAPThreadNode(3, [IMAPThreadNode(6, [IMAPThreadNode(4, [IMAPThreadNode(23)]),
                                                                             IMAPThreadNode(44, [IMAPThreadNode(7, [IMAPThreadNode(96)])])])])]
        #expect(wire(.thread(roots)) == "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n")
        #expect(try IMAPResponseParser.parse(IMAPResponseEncoder.encode(.thread(roots))) == .thread(roots))
        // A placeholder parent (REFERENCES with a missing first message): ((3)(5)).
        let orphanReplies = [IMAPThreadNode(nil, [IMAPThreadNode(3), IMAPThreadNode(5)])]
        #expect(wire(.thread(orphanReplies)) == "* THREAD ((3)(5))\r\n")
        #expect(try IMAPResponseParser.parse(IMAPResponseEncoder.encode(.thread(orphanReplies))) == .thread(orphanReplies))
        #expect(wire(.thread([])) == "* THREAD\r\n")
    }

    @Test func everyKindOfResponseParsesBackToItself() throws {
        let envelope = IMAPEnvelope(
            date: "Tue, 24 Nov 2026 10:00:00 +0000", subject: "Grüße \"quoted\"",
            from: [IMAPAddress(name: "Doe, John", adl: nil, mailbox: "john", host: "example.com")],
            sender: [IMAPAddress(name: nil, adl: "@relay.example", mailbox: "j", host: "example.com")], replyTo: nil,
            to: [IMAPAddress(name: nil, adl: nil, mailbox: "Team", host: nil), IMAPAddress(name: nil, adl: nil, mailbox: "a", host: "x.org"),
                 IMAPAddress(name: nil, adl: nil, mailbox: nil, host: nil)],
            cc: nil, bcc: nil, inReplyTo: "<0@x>", messageID: "<1@x>")
        let text = IMAPSinglePart(type: "TEXT", subtype: "PLAIN", parameters: [IMAPParameter("CHARSET", "utf-8")], id: nil, description: nil,
                                  encoding: "7BIT", size: 12, kind: .text(lines: 2),
                                  extension: .init(md5: nil, tail: IMAPBodyExtension(language: ["en", "de"])))
        let attachment = IMAPSinglePart(type: "APPLICATION", subtype: "PDF", parameters: [], id: "<c@x>", description: "a file",
                                        encoding: "BASE64", size: 400, kind: .basic,
                                        extension: .init(md5: "abc", tail: IMAPBodyExtension(dispositionKind: "attachment",
                                                                                            dispositionParameters: [IMAPParameter("FILENAME", "a b.pdf")],
                                                                                            language: ["fr"], location: "http://x/y")))
        let inner = IMAPSinglePart(type: "MESSAGE", subtype: "RFC822", parameters: [], id: nil, description: nil, encoding: "7BIT", size: 100,
                                   kind: .message(envelope: envelope, body: .single(text), lines: 5), extension: nil)
        let body = IMAPBody.multipart(parts: [.single(text), .single(attachment), .single(inner)], subtype: "MIXED",
                                      extension: IMAPMultipartExtension(parameters: [IMAPParameter("BOUNDARY", "xx")], tail: IMAPBodyExtension()))
        var responses: [IMAPResponse] = []
        responses += [.tagged("a1", IMAPStatus(.ok, .readWrite, "SELECT completed"))] as [IMAPResponse]
        responses += [.tagged("a2", IMAPStatus(.no, .tryCreate, "No such mailbox"))] as [IMAPResponse]
        responses += [.tagged("a3", IMAPStatus(.bad, nil, "Syntax error"))] as [IMAPResponse]
        responses += [.tagged("a4", IMAPStatus(.ok, .capability(["IMAP4rev1", "IMAP4rev2", "AUTH=PLAIN"]), "Logged in"))] as [IMAPResponse]
        responses += [.tagged("a5", IMAPStatus(.ok, .modified([1, 2, 3, 9]), "Conditional STORE failed"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.ok, .highestModSeq(715_194_045_007), "Highest"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.ok, .uidValidity(3_857_529_045), "UIDs valid"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.ok, .uidNext(4392), "Predicted next UID"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.ok, .closed, "Previous mailbox is now closed"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.bye, nil, "Autologout"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.no, .unknownCTE, ""))] as [IMAPResponse]
        responses += [.continuation("Ready for literal data")] as [IMAPResponse]
        responses += [.capability(["IMAP4rev1", "STARTTLS", "SORT=DISPLAY"])] as [IMAPResponse]
        responses += [.enabled(["CONDSTORE", "QRESYNC"])] as [IMAPResponse]
        responses += [.id([IMAPParameter("name", "Tern"), IMAPParameter("vendor", "Tern")])] as [IMAPResponse]
        responses += [.id(nil)] as [IMAPResponse]
        responses += [.flags(["\\Answered", "\\Seen", "$Forwarded"])] as [IMAPResponse]
        responses += [.list(IMAPListItem(attributes: ["\\HasNoChildren", "\\Sent"], delimiter: "/", mailbox: "Sent"))] as [IMAPResponse]
        responses += [.list(IMAPListItem(lsub: true, attributes: ["\\Noselect"], delimiter: "/", mailbox: "a/b", childInfo: []))] as [IMAPResponse]
        responses += [.list(IMAPListItem(attributes: [], delimiter: "/", mailbox: "Foo", childInfo: ["SUBSCRIBED"]))] as [IMAPResponse]
        responses.append(.status(mailbox: "INBOX", [IMAPParameterValue("MESSAGES", 231), IMAPParameterValue("UIDNEXT", 44292),
                                       IMAPParameterValue("HIGHESTMODSEQ", 7_011_231_777)]))
        responses += [.search([2, 84, 882], modSeq: nil)] as [IMAPResponse]
        responses += [.search([], modSeq: nil)] as [IMAPResponse]
        responses += [.search([7], modSeq: 917_162_500)] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: "A282", uid: false, min: 2, max: 47, count: 3, all: [2, 10, 11, 47]))] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: "A283", uid: true, count: 0))] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: nil, uid: true, all: [1, 2, 3], modSeq: 9))] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: "s", uid: false, min: 9, max: 2, all: [9, 3, 4, 5, 2]))] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: "p", uid: true, count: 40, partial: IMAPPartialResult(range: PartialRange(-1, -3), numbers: [38, 39, 40])))] as [IMAPResponse]
        responses += [.esearch(IMAPESearch(tag: "q", uid: true, partial: IMAPPartialResult(range: PartialRange(1, 100), numbers: [])))] as [IMAPResponse]
        responses.append(.esearch(IMAPESearch(tag: "u", uid: false, updates: [IMAPContextUpdate(add: false, position: 3, numbers: [7]),
                                                                 IMAPContextUpdate(add: true, position: 1, numbers: [9, 4, 5])])))
        responses += [.untagged(IMAPStatus(.no, .noUpdate("B02"), "Too many contexts"))] as [IMAPResponse]
        responses += [.tagged("d", IMAPStatus(.no, .badEvent(["MessageNew", "MailboxName"]), "No"))] as [IMAPResponse]
        responses += [.untagged(IMAPStatus(.ok, .notificationOverflow, "Overflow"))] as [IMAPResponse]
        responses += [.list(IMAPListItem(attributes: ["\\HasNoChildren"], delimiter: "/", mailbox: "b", childInfo: ["SUBSCRIBED"], oldName: "a"))] as [IMAPResponse]
        responses += [.exists(23), .recent(5), .expunge(3)] as [IMAPResponse]
        responses += [.vanished(earlier: true, [41, 43, 44, 45, 46])] as [IMAPResponse]
        responses += [.vanished(earlier: false, [405])] as [IMAPResponse]
        responses += [.namespace(personal: [IMAPParameter("", "/")])] as [IMAPResponse]
        responses += [.quotaRoot(mailbox: "INBOX", roots: [""])] as [IMAPResponse]
        responses += [.quotaRoot(mailbox: "INBOX", roots: [])] as [IMAPResponse]
        responses += [.quota(root: "", [IMAPQuotaResource("STORAGE", usage: 10, limit: 512)])] as [IMAPResponse]
        responses += [.sort([2, 84, 882], modSeq: nil)] as [IMAPResponse]
        responses.append(.fetch(12, [.uid(4827313), .flags(["\\Seen", "\\Recent"]), .internalDate(Date(timeIntervalSince1970: 837_596_665)),
                        .rfc822Size(44827), .modSeq(12_111_230_047)]))
        func bytes(_ text: String) -> ArraySlice<UInt8> { ArraySlice(text.utf8) }
        let sections: [IMAPFetchItem] = [
            .bodySection(section: "HEADER.FIELDS (SUBJECT DATE)", origin: nil, data: bytes("Subject: x\r\n\r\n")),
            .bodySection(section: "1.2", origin: 100, data: bytes("partial")),
            .bodySection(section: "3", origin: nil, data: nil),
        ]
        let wholes: [IMAPFetchItem] = [.rfc822(bytes("whole")), .rfc822Header(bytes("h: v\r\n\r\n")), .rfc822Text(bytes("t"))]
        responses.append(.fetch(1, sections + wholes))
        responses.append(.fetch(2, [.envelope(envelope), .bodyStructure(body), .body(.single(IMAPSinglePart(
                type: "TEXT", subtype: "PLAIN", parameters: [], id: nil, description: nil, encoding: "8BIT", size: 3, kind: .text(lines: 1),
                extension: nil)))]))
        responses += [.fetch(3, [.binary(part: [1], origin: nil, data: [0, 1, 2][...]), .binarySize(part: [], size: 0)])] as [IMAPResponse]
        responses.append(.fetch(4, [.emailID("M6ee0"), .threadID(nil), .threadID("T1"), .saveDate(Date(timeIntervalSince1970: 1_700_000_000)),
                       .saveDate(nil), .preview("Hello \"you\" — soon"), .preview(nil)]))
        responses += [.status(mailbox: "Sent", [IMAPParameterValue("MAILBOXID", objectID: "F7"), IMAPParameterValue("MESSAGES", 2)])] as [IMAPResponse]
        responses += [.tagged("c", IMAPStatus(.ok, .mailboxID("F9"), "CREATE completed"))] as [IMAPResponse]
        for r in responses {
            for utf8 in [false, true] {
                let bytes = IMAPResponseEncoder.encode(r, utf8: utf8)
                #expect(try IMAPResponseParser.parse(bytes) == r, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
        // A stream of them reads back as the same sequence.
        var e = IMAPResponseEncoder()
        for r in responses { e.response(r) }
        #expect(try IMAPResponseParser.parseAll(e.bytes) == responses)
    }

    @Test func encodedItemsAreTheEncodersBytes() throws {
        let item = IMAPFetchItem.envelope(IMAPEnvelope(date: nil, subject: "s", from: nil, sender: nil, replyTo: nil, to: nil, cc: nil,
                                                       bcc: nil, inReplyTo: nil, messageID: nil))
        let direct = IMAPResponseEncoder.encode(.fetch(4, [.uid(9), item]))
        let cached = IMAPResponseEncoder.encode(.fetch(4, [.uid(9), .encoded(IMAPEncodedItem(item))]))
        #expect(direct == cached)
        // Item by item (as FETCH streams them) is the same as the whole value.
        var e = IMAPResponseEncoder()
        e.fetchStart(4)
        e.fetchItem(.uid(9))
        e.fetchItem(item)
        e.fetchEnd()
        #expect(e.bytes == direct)
    }

    /// Random strings with every awkward character, in every string position of a response: each reads back
    /// exactly (NUL excepted, which no string may carry).
    @Test func randomStringsRoundTrip() throws {
        var rng = SplitMix(seed: 18)
        let alphabet: [String] = ["a", "Z", " ", "\"", "\\", "(", ")", "{", "}", "[", "]", "%", "*", "\r", "\n", "\r\n", "é", "☃", "~", "{3}", "NIL"]
        func randomString() -> String {
            (0..<Int(rng.next() % 12)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
        }
        for _ in 0..<300 {
            let name = randomString()
            let env = IMAPEnvelope(date: randomString(), subject: randomString(),
                                   from: [IMAPAddress(name: randomString(), adl: nil, mailbox: randomString(), host: randomString())],
                                   sender: nil, replyTo: nil, to: nil, cc: nil, bcc: nil, inReplyTo: nil, messageID: randomString())
            let responses: [IMAPResponse] = [
                .list(IMAPListItem(attributes: ["\\HasNoChildren"], delimiter: "/", mailbox: name)),
                .status(mailbox: name, [IMAPParameterValue("MESSAGES", rng.next() % 1000)]),
                .fetch(Int(rng.next() % 100) + 1, [.envelope(env), .uid(UInt32(rng.next() % 1000) + 1)]),
                .esearch(IMAPESearch(tag: "t\(rng.next() % 100)", uid: true, count: Int(rng.next() % 10))),
            ]
            for r in responses {
                for utf8 in [false, true] {
                    let bytes = IMAPResponseEncoder.encode(r, utf8: utf8)
                    #expect(try IMAPResponseParser.parse(bytes) == r, "\(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
    }
}
