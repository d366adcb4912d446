import NIOCore
import TernTestSupport
import Testing
@testable import IMAPCodec

@Suite struct IMAPParserTests {
    func parse(_ s: String, utf8: Bool = false) throws(IMAPParseError) -> TaggedCommand {
        try IMAPCommandParser.parse(Array(s.utf8), utf8Mailboxes: utf8)
    }

    @Test func simpleCommands() throws {
        #expect(try parse("a1 CAPABILITY") == TaggedCommand(tag: "a1", command: .capability))
        #expect(try parse("x noop").command == .noop)
        #expect(try parse("t LOGIN alice \"se cret\"").command == .login(user: "alice", password: "se cret"))
        #expect(try parse("t LOGIN {5}\r\nalice {3}\r\npw!").command == .login(user: "alice", password: "pw!"))
        #expect(try parse("t AUTHENTICATE PLAIN AGFsaWNlAHB3").command == .authenticate(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHB3"))
        #expect(try parse("t SELECT inbox").command == .select("INBOX", condstore: false, qresync: nil))
        #expect(try parse("t EXAMINE \"Sent\" (CONDSTORE)").command == .examine("Sent", condstore: true, qresync: nil))
        #expect(try parse("t SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))").command
                == .select("INBOX", condstore: false, qresync: QResyncParameters(uidValidity: 67890007, modSeq: 20050715194045000,
                                                                                  knownUIDs: SequenceSet(ranges: [.init(41, 41), .init(43, 211), .init(214, 541)]))))
        #expect(try parse("t SELECT INBOX (QRESYNC (1 2 1:5 (1:3 10:12)))").command
                == .select("INBOX", condstore: false, qresync: QResyncParameters(uidValidity: 1, modSeq: 2, knownUIDs: SequenceSet(ranges: [.init(1, 5)]))))
        #expect(try parse("t ENABLE QRESYNC CONDSTORE").command == .enable(["QRESYNC", "CONDSTORE"]))
        #expect(try parse("t RENAME a b").command == .rename(from: "a", to: "b"))
        #expect(try parse("t STATUS INBOX (MESSAGES UIDNEXT UNSEEN)").command == .status("INBOX", [.messages, .uidNext, .unseen]))
        #expect(try parse("t UID EXPUNGE 1:5").command == .uidExpunge(SequenceSet(ranges: [.init(1, 5)])))
        #expect(try parse("t ID (\"name\" \"mutt\" \"version\" NIL)").command == .id(["name": "mutt", "version": ""]))
    }

    @Test func mailboxNamesInModifiedUTF7() throws {
        #expect(try parse("t CREATE &ZeVnLIqe-").command == .create("日本語"))
        #expect(try parse("t CREATE \"Entw&APw-rfe\"").command == .create("Entwürfe"))
        #expect(try parse("t CREATE \"Entwürfe\"", utf8: true).command == .create("Entwürfe"))
        #expect(ModifiedUTF7.encode("Entwürfe & Co") == "Entw&APw-rfe &- Co")
        #expect(ModifiedUTF7.decode(ModifiedUTF7.encode("日本語 📬 x")) == "日本語 📬 x")
        #expect(ModifiedUTF7.decode("&Jjo") == nil)
    }

    @Test func fetch() throws {
        let c = try parse("t UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)] BODY[1.2]<0.100> RFC822.SIZE) (CHANGEDSINCE 5)")
        guard case .fetch(let uid, let set, let attrs, let changed, _, _) = c.command else { Issue.record("not fetch"); return }
        #expect(uid)
        #expect(set == SequenceSet(ranges: [.init(1, nil)]))
        #expect(attrs == [.uid, .flags, .bodySection(SectionSpec(part: [], text: .headerFields(["From", "Subject"])), partial: nil, peek: true),
                          .bodySection(SectionSpec(part: [1, 2], text: .full), partial: 0...99, peek: false), .rfc822Size])
        #expect(changed == 5)
        guard case .fetch(_, _, let fast, _, _, _) = try parse("t FETCH 2,4:6 FAST").command else { return }
        #expect(fast == [.flags, .internalDate, .rfc822Size])
    }

    /// OBJECTID (RFC 8474), SAVEDATE (RFC 8514) and PREVIEW (RFC 8970) items and keys.
    @Test func objectIDSaveDateAndPreview() throws {
        guard case .fetch(_, _, let attrs, _, _, _) = try parse("t FETCH 1 (EMAILID THREADID SAVEDATE PREVIEW (LAZY) PREVIEW)").command else {
            Issue.record("not fetch"); return
        }
        #expect(attrs == [.emailID, .threadID, .saveDate, .preview(lazy: true), .preview(lazy: false)])
        #expect(try parse("t SEARCH EMAILID M12 SAVEDSINCE 2-Jan-2020 SAVEDATESUPPORTED").command
                == .search(uid: false, key: .and([.emailID("M12"), .savedSince(SearchDate(day: 2, month: 1, year: 2020)), .saveDateSupported]), returning: nil))
        #expect(try parse("t SEARCH THREADID T-1_a SAVEDBEFORE 1-Jan-2030 SAVEDON 5-Dec-2026").command
                == .search(uid: false, key: .and([.threadID("T-1_a"), .savedBefore(SearchDate(day: 1, month: 1, year: 2030)),
                                                 .savedOn(SearchDate(day: 5, month: 12, year: 2026))]), returning: nil))
        #expect(try parse("t STATUS INBOX (MAILBOXID MESSAGES)").command == .status("INBOX", [.mailboxID, .messages]))
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH EMAILID a.b") }
        #expect(throws: IMAPParseError.self) { try parse("t FETCH 1 (PREVIEW (FUZZY))") }
    }

    /// SEARCHRES (RFC 5182), ESORT (RFC 5267) and PARTIAL (RFC 9394).
    @Test func saveSortReturnAndPartial() throws {
        #expect(try parse("t SEARCH RETURN (SAVE) FLAGGED").command == .search(uid: false, key: .flagged, returning: [.save]))
        #expect(try parse("t UID SEARCH RETURN (COUNT PARTIAL -1:-100) UNSEEN").command
                == .search(uid: true, key: .unseen, returning: [.count], partial: PartialRange(-1, -100)))
        #expect(try parse("t SEARCH RETURN (PARTIAL 1:10) ALL").command == .search(uid: false, key: .all, returning: [], partial: PartialRange(1, 10)))
        #expect(try parse("t SORT RETURN (MIN MAX ALL) (REVERSE DATE) UTF-8 ALL").command
                == .sort(uid: false, criteria: [SortCriterion(.date, reverse: true)], key: .all, returning: [.min, .max, .all]))
        guard case .fetch(_, let set, _, _, _, let partial) = try parse("t UID FETCH $ (FLAGS) (PARTIAL -1:-5)").command else {
            Issue.record("not fetch"); return
        }
        #expect(set.isSaved && partial == PartialRange(-1, -5))
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH RETURN (PARTIAL -1:5) ALL") }
        // A SEARCH with SAVE that fails must empty `$` (RFC 5182 §2.1): the error says so.
        do { _ = try parse("t SEARCH RETURN (SAVE) NOSUCHKEY"); Issue.record("accepted") } catch { #expect(error.clearsSavedResult) }
        do { _ = try parse("t SEARCH NOSUCHKEY"); Issue.record("accepted") } catch { #expect(!error.clearsSavedResult) }
        do { _ = try parse("t SORT RETURN (SAVE) (NOSUCH) UTF-8 ALL"); Issue.record("accepted") } catch { #expect(error.clearsSavedResult) }
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH RETURN (PARTIAL 0:5) ALL") }
    }

    /// CONTEXT=SEARCH/SORT (RFC 5267 §4): UPDATE and CONTEXT return options, CANCELUPDATE; FETCH items with UPDATE
    /// (RFC 5465 §7).
    @Test func contextReturnOptionsAndCancelUpdate() throws {
        #expect(try parse("B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk").command
                == .search(uid: true, key: .and([.deleted, .keyword("$Junk")]), returning: [.update, .count]))
        #expect(try parse("A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk").command
                == .search(uid: false, key: .and([.undeleted, .unkeyword("$Junk")]), returning: [.context, .count]))
        // RETURN (CONTEXT) alone means ALL, as RETURN () does; UPDATE alone asks for no initial result.
        #expect(try parse("t SEARCH RETURN (CONTEXT) ALL").command == .search(uid: false, key: .all, returning: [.context, .all]))
        #expect(try parse("t SEARCH RETURN (UPDATE) ALL").command == .search(uid: false, key: .all, returning: [.update]))
        #expect(try parse("B02 UID SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 KEYWORD $Junk").command
                == .sort(uid: true, criteria: [SortCriterion(.subject)], key: .keyword("$Junk"), returning: [.update, .count]))
        #expect(try parse("a00 SEARCH RETURN (COUNT UPDATE (UID BODY[HEADER.FIELDS (TO FROM SUBJECT)])) FROM \"boss\"").command
                == .search(uid: false, key: .from("boss"), returning: [.count, .update],
                           update: [.uid, .bodySection(SectionSpec(part: [], text: .headerFields(["TO", "FROM", "SUBJECT"])), partial: nil, peek: false)]))
        #expect(try parse("B04 CANCELUPDATE \"B01\"").command == .cancelUpdate(["B01"]))
        #expect(try parse("B05 CANCELUPDATE \"B01\" \"B02\"").command == .cancelUpdate(["B01", "B02"]))
        #expect(throws: IMAPParseError.self) { try parse("t CANCELUPDATE") }
        #expect(throws: IMAPParseError.self) { try parse("t CANCELUPDATE B01") }
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH RETURN (UPDATE UPDATE) ALL") }
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH RETURN (ALL PARTIAL 1:5) ALL") }
        #expect(throws: IMAPParseError.self) { try parse("t SEARCH RETURN (UPDATE ()) ALL") }
    }

    /// NOTIFY (RFC 5465 §8): filters, events, FETCH items for the selected mailbox; BAD for what breaks the grammar or
    /// its rules, NO [BADEVENT] listing the events Tern reports for one it does not.
    @Test func notifyCommands() throws {
        #expect(try parse("a NOTIFY NONE").command == .notify(nil))
        let set = try parse("b notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))").command
        #expect(set == .notify(NotifySet(status: true, groups: [
            NotifyGroup(filter: .selected, events: [.messageNew, .messageExpunge],
                        fetch: [.uid, .bodySection(SectionSpec(part: [], text: .headerFields(["from", "to", "subject"])), partial: nil, peek: true)]),
            NotifyGroup(filter: .subtree(["Lists"]), events: [.messageNew, .messageExpunge]),
        ])))
        #expect(try parse("c NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange)) (personal (MailboxName SubscriptionChange)) (mailboxes (INBOX Sent) NONE) (inboxes (MessageNew MessageExpunge)) (subscribed (MailboxName))").command
                == .notify(NotifySet(status: false, groups: [
                    NotifyGroup(filter: .selectedDelayed, events: [.messageNew, .messageExpunge, .flagChange]),
                    NotifyGroup(filter: .personal, events: [.mailboxName, .subscriptionChange]),
                    NotifyGroup(filter: .mailboxes(["INBOX", "Sent"]), events: []),
                    NotifyGroup(filter: .inboxes, events: [.messageNew, .messageExpunge]),
                    NotifyGroup(filter: .subscribed, events: [.mailboxName]),
                ])))
        for bad in ["d NOTIFY SET (personal (MessageNew))",                 // MessageNew without MessageExpunge
                    "d NOTIFY SET (personal (FlagChange))",                 // FlagChange without both
                    "d NOTIFY SET (personal (MessageNew (UID) MessageExpunge))",   // FETCH items outside selected
                    "d NOTIFY SET (selected (MailboxName))",                // a mailbox event for the selected mailbox
                    "d NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))",
                    "d NOTIFY SET (personal ())", "d NOTIFY SET", "d NOTIFY SET (everywhere (MailboxName))", "d NOTIFY MAYBE"] {
            do { _ = try parse(bad); Issue.record("accepted: \(bad)") } catch { #expect(error.condition == .bad, "\(bad)") }
        }
        for unsupported in ["e NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))", "e NOTIFY SET (personal (MailboxMetadataChange))",
                            "e NOTIFY SET (personal (ServerMetadataChange))"] {
            do { _ = try parse(unsupported); Issue.record("accepted: \(unsupported)") } catch {
                #expect(error.condition == .no && error.code == .badEvent(NotifyEvents.names), "\(unsupported)")
            }
        }
    }

    @Test func partialWindows() {
        #expect(PartialRange(1, 3).indices(count: 10) == 0..<3)
        #expect(PartialRange(3, 1).indices(count: 10) == 0..<3)
        #expect(PartialRange(8, 20).indices(count: 10) == 7..<10)
        #expect(PartialRange(11, 20).indices(count: 10).isEmpty)
        #expect(PartialRange(-1, -3).indices(count: 10) == 7..<10)
        #expect(PartialRange(-3, -1).indices(count: 10) == 7..<10)
        #expect(PartialRange(-5, -20).indices(count: 10) == 0..<6)
        #expect(PartialRange(-11, -20).indices(count: 10).isEmpty)
        #expect(PartialRange(-1, -1).indices(count: 0).isEmpty)
    }

    /// CATENATE (RFC 4469) parts and IMAP URLs (RFC 5092).
    @Test func catenateAndURLs() throws {
        let c = try parse("t APPEND Drafts (\\Draft) CATENATE (URL \"/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME\" TEXT {4+}\r\nabcd)")
        #expect(c.command == .append("Drafts", [AppendMessage(flags: ["\\Draft"], internalDate: nil, data: [],
                                                              catenate: [.url("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME"), .text(Array("abcd".utf8))])]))
        #expect(throws: IMAPParseError.self) { try parse("t APPEND Drafts CATENATE ()") }
        #expect(throws: IMAPParseError.self) { try parse("t APPEND Drafts CATENATE (FILE \"x\")") }

        #expect(IMAPURL.parse("/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME")
                == IMAPURL(mailbox: "INBOX", uidValidity: 385759045, uid: 20, section: SectionSpec(part: [1], text: .mime)))
        var partial = IMAPURL(host: "mx.example", user: "fred@example.test", mailbox: "Lists/M&AOQ-rz", uid: 7,
                              section: SectionSpec(part: [], text: .header))
        partial.partialOffset = 10
        partial.partialLength = 20
        #expect(IMAPURL.parse("imap://fred%40example.test;AUTH=*@MX.example:143/Lists%2FM&AOQ-rz/;UID=7/;SECTION=HEADER/;PARTIAL=10.20") == partial)
        #expect(IMAPURL.parse("/Sent/;UID=3")?.section == nil)
        for bad in ["INBOX/;UID=1", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=x", "/INBOX/;SECTION=1/;UID=2", "/INBOX/;UID=1/;SECTION=MIME",
                    "/INBOX/;UID=1/;PARTIAL=-1", "imap:///INBOX/;UID=1", "/%zz/;UID=1", "/INBOX;UIDVALIDITY=0/;UID=1"] {
            #expect(IMAPURL.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func store() throws {
        #expect(try parse("t STORE 1 +FLAGS.SILENT (\\Seen \\Flagged)").command
                == .store(uid: false, .single(1), .add, flags: ["\\Seen", "\\Flagged"], silent: true, unchangedSince: nil))
        #expect(try parse("t UID STORE 5 (UNCHANGEDSINCE 9) FLAGS $Junk").command
                == .store(uid: true, .single(5), .replace, flags: ["$Junk"], silent: false, unchangedSince: 9))
    }

    @Test func search() throws {
        #expect(try parse("t SEARCH UNSEEN FROM alice").command == .search(uid: false, key: .and([.unseen, .from("alice")]), returning: nil))
        #expect(try parse("t UID SEARCH RETURN (MIN COUNT) OR SEEN (FLAGGED SINCE 1-Feb-2026)").command
                == .search(uid: true, key: .or(.seen, .and([.flagged, .since(SearchDate(day: 1, month: 2, year: 2026))])), returning: [.min, .count]))
        #expect(try parse("t SEARCH CHARSET UTF-8 SUBJECT {6}\r\nGrüß").command
                == .search(uid: false, key: .subject("Grüß"), returning: nil))
        #expect(try parse("t SEARCH 1:3 NOT DELETED").command == .search(uid: false, key: .and([.sequence(SequenceSet(ranges: [.init(1, 3)])), .not(.deleted)]), returning: nil))
    }

    @Test func appendWithMultipleMessages() throws {
        let c = try parse("t APPEND Drafts (\\Draft) \"05-Jan-2026 10:00:00 +0000\" {5}\r\nhello {3+}\r\nbye")
        #expect(c.command == .append("Drafts", [AppendMessage(flags: ["\\Draft"], internalDate: "05-Jan-2026 10:00:00 +0000", data: Array("hello".utf8)),
                                                 AppendMessage(flags: [], internalDate: nil, data: Array("bye".utf8))]))
    }

    /// WITHIN (RFC 5032): YOUNGER and OLDER take a positive number of seconds.
    @Test func within() throws {
        #expect(try parse("a SEARCH YOUNGER 3600").command == .search(uid: false, key: .younger(3600), returning: nil))
        #expect(try parse("a SEARCH OLDER 60 UNSEEN").command == .search(uid: false, key: .and([.older(60), .unseen]), returning: nil))
        #expect(throws: IMAPParseError.self) { try parse("a SEARCH YOUNGER 0") }
        #expect(throws: IMAPParseError.self) { try parse("a SEARCH OLDER") }
    }

    /// Only a literal8 may carry NUL (RFC 9051 §4.3 CHAR8, RFC 3516 §4.2): an ordinary literal with one is refused.
    @Test func nulOnlyInLiteral8() throws {
        #expect(throws: IMAPParseError.self) { try parse("t APPEND INBOX {3}\r\na\u{0}b") }
        #expect(throws: IMAPParseError.self) { try parse("t LOGIN {3}\r\na\u{0}b pw") }
        let c = try parse("t APPEND INBOX ~{3}\r\na\u{0}b")
        #expect(c.command == .append("INBOX", [AppendMessage(flags: [], internalDate: nil, data: [97, 0, 98])]))
    }

    @Test(arguments: [
        "",
        "a1",
        "+ CAPABILITY",
        "a1 FROB",
        "a1 UID NOOP",
        "a1 SELECT",
        "a1 FETCH 0 FLAGS",
        "a1 FETCH 1:x FLAGS",
        "a1 FETCH 1 (FLAGS",
        "a1 FETCH 1 BODY[9.HEADERZ]",
        "a1 LOGIN alice",
        "a1 LOGIN alice \"unterminated",
        "a1 STORE 1 FLAGS.NOISY (x)",
        "a1 SEARCH SINCE 32-Jan-2026",
        "a1 SEARCH CHARSET KOI8-R FROM x",
        "a1 CAPABILITY extra",
    ])
    func malformed(_ line: String) {
        #expect(throws: IMAPParseError.self) { try parse(line) }
    }

    @Test func deepNestingIsRefusedNotRecursed() {
        let deep = "a SEARCH " + String(repeating: "(", count: 10_000) + "ALL" + String(repeating: ")", count: 10_000)
        do {
            _ = try parse(deep)
            Issue.record("accepted")
        } catch {
            #expect(error.tag == "a")
            #expect(error.message.contains("nested too deeply"))
        }
    }

    /// A well-formed command with a charset the server lacks is answered NO [BADCHARSET], not BAD (RFC 9051 §6.4.4).
    @Test(arguments: ["a SEARCH CHARSET KOI8-R TEXT x", "a SORT (SUBJECT) KOI8-R ALL"])
    func unknownCharsetIsNoBadCharset(_ line: String) {
        do {
            _ = try parse(line)
            Issue.record("accepted")
        } catch {
            #expect(error.tag == "a" && error.condition == .no && error.code == .badCharset(["UTF-8", "US-ASCII"]))
        }
    }

    @Test func sequenceSets() {
        let s = SequenceSet(ranges: [.init(1, 3), .init(7, nil)])
        #expect(s.contains(2, largest: 10) && s.contains(10, largest: 10) && !s.contains(5, largest: 10))
        #expect(s.description == "1:3,7:*")
        #expect(SequenceSet.compact([5, 1, 2, 3, 9, 8]) == "1:3,5,8:9")
    }
}

@Suite struct IMAPFramerTests {
    func run(_ input: String, step: Int, framer: IMAPFramer = IMAPFramer()) -> [IMAPFramer.Event] {
        var f = framer
        var buf = ByteBuffer()
        var events: [IMAPFramer.Event] = []
        let bytes = Array(input.utf8)
        var i = 0
        while i < bytes.count {
            buf.writeBytes(bytes[i..<min(i + step, bytes.count)])
            i += step
            while let e = f.next(&buf) { events.append(e) }
        }
        return events
    }

    @Test(arguments: [1, 3, 1000])
    func literalsAndContinuations(step: Int) {
        let events = run("a LOGIN {5}\r\nalice {2+}\r\npw\r\nb NOOP\r\n", step: step)
        #expect(events == [.continuationNeeded, .command(Array("a LOGIN {5}\r\nalice {2+}\r\npw".utf8)), .command(Array("b NOOP".utf8))])
    }

    @Test func limits() {
        var small = IMAPFramer(maxLine: 100, maxLiteral: 10, maxAppendLiteral: 1000)
        small.authenticated = true
        #expect(run("a LOGIN {50}\r\n", step: 100, framer: small) == [.literalTooLarge(tag: "a", size: 50)])
        #expect(run("a APPEND INBOX {50}\r\n", step: 100, framer: small) == [.continuationNeeded])
        #expect(run("a APPEND INBOX {5000}\r\n", step: 100, framer: small) == [.literalTooLarge(tag: "a", size: 5000)])
        #expect(run("a LOGIN {50+}\r\n", step: 100, framer: small) == [.fatal("Literal of 50 octets exceeds the limit")])
        #expect(run(String(repeating: "x", count: 200), step: 50, framer: small) == [.fatal("Line too long")])
        // A command other than APPEND gets a small budget in all, however it is cut into literals.
        var framer = IMAPFramer(maxOtherCommand: 10_000)
        framer.authenticated = true
        let keys = String(repeating: "ALL ", count: 200)
        let chained = "a SEARCH " + (0..<20).map { _ in keys + "SUBJECT {0}\r\n" }.joined() + "ALL\r\n"
        let events = run(chained, step: 4096, framer: framer)
        #expect(events.contains(.literalTooLarge(tag: "a", size: 0)))
        #expect(!events.contains { if case .command(let c) = $0 { c.count > 10_000 } else { false } }, "a command over the budget")
        let appendChained = "a APPEND INBOX " + (0..<20).map { _ in "{0+}\r\n " }.joined() + "{0}\r\n\r\n"
        #expect(run(appendChained, step: 4096, framer: framer).allSatisfy { if case .fatal = $0 { false } else { true } })
    }

    /// `contains` of a sequence set (merged ranges, binary search, `*` ranges folded) agrees with the plain definition
    /// for random sets, with and without `*`.
    @Test func sequenceSetContainsAgreesWithItsDefinition() {
        var rng = SplitMix(seed: 0x5E75)
        for _ in 0..<500 {
            let ranges = (0..<rng.next(8)).map { _ -> SequenceSet.Range in
                func bound() -> UInt32? { rng.next(6) == 0 ? nil : UInt32(1 + rng.next(60)) }
                return SequenceSet.Range(bound(), bound())
            }
            let set = SequenceSet(ranges: ranges)
            for largest in [UInt32(1), 17, 40, 70] {
                for n in UInt32(0)...75 {
                    let plain = ranges.contains { r in
                        let a = r.from ?? largest, b = r.to ?? largest
                        return n >= min(a, b) && n <= max(a, b)
                    }
                    #expect(set.contains(n, largest: largest) == plain, "\(set) \(n) largest \(largest)")
                }
            }
        }
    }

    /// A large APPEND literal goes out in pieces to be spooled, and the command names it by a marker the client
    /// cannot guess; small literals, other commands and sessions not logged in are never spooled.
    @Test(arguments: [1, 7, 1000])
    func largeAppendLiteralsAreSpooled(step: Int) {
        var framer = IMAPFramer(maxAppendLiteral: 1000)
        framer.authenticated = true
        framer.spoolAbove = 10
        framer.spoolToken = Array("T".utf8)
        let body = "0123456789abcdefghij"
        let events = run("a APPEND INBOX (\\Seen) {20}\r\n\(body) {3}\r\nabc {20+}\r\n\(body)\r\nb NOOP\r\n", step: step, framer: framer)
        // Pieces as they came, put together.
        var spooled: [[UInt8]] = [], shape: [String] = []
        for e in events {
            switch e {
            case .spoolStart(let size, let continuation): spooled.append([]); shape.append("start \(size) \(continuation)")
            case .spoolData(let piece): spooled[spooled.count - 1] += Array(piece.readableBytesView)
            default: shape.append("\(e)")
            }
        }
        #expect(shape == ["start 20 true", "continuationNeeded", "start 20 false",
                          "\(IMAPFramer.Event.command(Array("a APPEND INBOX (\\Seen) {3}\r\nT:0 {3}\r\nabc {3}\r\nT:1".utf8)))",
                          "\(IMAPFramer.Event.command(Array("b NOOP".utf8)))"])
        #expect(spooled == [Array(body.utf8), Array(body.utf8)])
        #expect(framer.spoolMarker(1) == Array("T:1".utf8))
        // A large literal of another command is held (and bounded by maxLiteral), not spooled.
        #expect(run("a LOGIN {20}\r\n", step: step, framer: framer) == [.continuationNeeded])
        // Before login nothing is spooled: the literal is held within the pre-login bound, or refused beyond it.
        var anonymous = framer
        anonymous.authenticated = false
        #expect(run("a APPEND INBOX {20}\r\n", step: step, framer: anonymous) == [.continuationNeeded])
        #expect(run("a APPEND INBOX {9000}\r\n", step: step, framer: anonymous) == [.literalTooLarge(tag: "a", size: 9000)])
    }

    /// Before login a whole command is at most a few KB: literals, APPEND's included, and lines (RFC 9051 leaves the
    /// bound to the server; Dovecot's login processes keep 4 KB).
    @Test func beforeLoginACommandIsSmall() {
        let framer = IMAPFramer()   // not authenticated: a session starts so
        #expect(run("a LOGIN {5}\r\nalice {8}\r\npassword\r\n", step: 7, framer: framer)
                == [.continuationNeeded, .continuationNeeded, .command(Array("a LOGIN {5}\r\nalice {8}\r\npassword".utf8))])
        #expect(run("a APPEND INBOX {65000}\r\n", step: 100, framer: framer) == [.literalTooLarge(tag: "a", size: 65000)])
        #expect(run("a LOGIN {65000+}\r\n", step: 100, framer: framer) == [.fatal("Literal of 65000 octets exceeds the limit")])
        // Literals that are small one by one may not add up past the bound either.
        let chunk = String(repeating: "x", count: 3000)
        let pieces = "a LOGIN {3000+}\r\n\(chunk) {3000+}\r\n\(chunk) {3000+}\r\n"
        #expect(run(pieces, step: 512, framer: framer) == [.fatal("Literal of 3000 octets exceeds the limit")])
        #expect(run(String(repeating: "x", count: IMAPFramer.preAuthMaxCommand + 1), step: 1000, framer: framer) == [.fatal("Line too long")])
        // Once logged in, the same APPEND is announced and waited for.
        var authenticated = IMAPFramer()
        authenticated.authenticated = true
        #expect(run("a APPEND INBOX {65000}\r\n", step: 100, framer: authenticated) == [.continuationNeeded])
    }

    /// Records, on which the connection's per-record deadline rests: lines, and 64 KiB of a literal.
    @Test func recordsAreLinesAndPiecesOfLiterals() {
        var f = IMAPFramer()
        f.authenticated = true
        var buffer = ByteBuffer()
        buffer.writeString("a NOOP\r\nb APPEND INBOX {200000+}\r\n")
        buffer.writeBytes([UInt8](repeating: 0x41, count: 200_000))
        buffer.writeString("\r\n")
        var events: [IMAPFramer.Event] = []
        while let e = f.next(&buffer) { events.append(e) }
        #expect(events.count == 2)
        #expect(f.records == 2 + 3 + 1)   // two lines, three full 64 KiB of the literal, the line after it
    }
}
