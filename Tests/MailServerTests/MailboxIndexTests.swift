import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailMessage
import MailStore
import TernTestSupport
import Testing
@testable import IMAPMailboxView
@testable import IMAPServer
@testable import MailServer

@Suite struct MailboxSnapshotTests {
    func msg(_ uid: UInt32, flags: MessageFlags = [], modSeq: Int64 = 1) -> StoredMessage {
        StoredMessage(mailbox: 1, uid: UID(uid), messageID: Int64(uid) * 10, size: 100, internalDate: Date(timeIntervalSince1970: 0),
                      flags: flags, keywords: [], modSeq: ModSeq(rawValue: modSeq))
    }

    func snapshot(_ messages: [StoredMessage], modSeq: Int64) -> MailboxSnapshot {
        MailboxSnapshot(uidValidity: UIDValidity(rawValue: 7), uidNext: UID((messages.last?.uid.rawValue ?? 0) + 1),
                        highestModSeq: ModSeq(rawValue: modSeq), messages: messages)
    }

    @Test func randomDeltasAgreeWithAModel() {
        // A mailbox as a UID -> modseq map; each delta expunges some, changes some and adds new UIDs above the rest.
        var rng = SplitMix(seed: 21)
        for _ in 0..<100 {
            var model: [UInt32: Int64] = [:]
            for uid in UInt32(1)...60 where rng.next() % 3 != 0 { model[uid] = 1 }
            var snap = snapshot(model.keys.sorted().map { msg($0) }, modSeq: 1)
            var next = UInt32(61), modSeq: Int64 = 1
            for _ in 0..<10 {
                modSeq += 1
                let present = model.keys.sorted()
                let expunged = present.filter { _ in rng.next() % 6 == 0 }
                for uid in expunged { model[uid] = nil }
                var changed = model.keys.filter { _ in rng.next() % 5 == 0 }.sorted()
                for _ in 0..<(rng.next() % 4) { changed.append(next); next += 1 }
                for uid in changed { model[uid] = modSeq }
                snap = snap.applying(MailboxChanges(uidValidity: snap.uidValidity, uidNext: UID(next), highestModSeq: ModSeq(rawValue: modSeq),
                                                    changed: changed.map { msg($0, modSeq: modSeq) }, expunged: expunged.map { UID($0) }))
                #expect(snap.messages.map(\.uid.rawValue) == model.keys.sorted())
                #expect(snap.messages.map(\.modSeq.rawValue) == model.keys.sorted().map { model[$0]! })
            }
        }
    }

    @Test func unchangedDeltaKeepsTheSameSnapshot() {
        let base = snapshot([msg(1), msg(2)], modSeq: 5)
        let same = base.applying(MailboxChanges(uidValidity: base.uidValidity, uidNext: base.uidNext, highestModSeq: base.highestModSeq,
                                                changed: [], expunged: []))
        #expect(same === base)
    }

    @Test func deltaAppliesFlagsExpungesAndNewMessages() {
        let base = snapshot([msg(1), msg(2), msg(3), msg(5)], modSeq: 5)
        let delta = MailboxChanges(uidValidity: base.uidValidity, uidNext: UID(9), highestModSeq: ModSeq(rawValue: 9),
                                   changed: [msg(3, flags: .seen, modSeq: 7), msg(8, modSeq: 9), msg(6, modSeq: 8)],
                                   expunged: [UID(2), UID(4)])
        let next = base.applying(delta)
        #expect(next.messages.map(\.uid.rawValue) == [1, 3, 5, 6, 8])
        #expect(next.messages[1].flags == .seen)
        #expect(next.messages[1].modSeq.rawValue == 7)
        #expect(next.highestModSeq.rawValue == 9)
        #expect(next.uidNext.rawValue == 9)
        // The base is untouched: sessions still holding it keep their view.
        #expect(base.messages.map(\.uid.rawValue) == [1, 2, 3, 5])
        #expect(base.messages[2].flags == [])
    }

    @Test func textSearchFoldsASCIICaseAndFallsBackForOtherText() {
        #expect(TextSearch.contains(Array("Hello World".utf8)[...], "wORLD"))
        #expect(!TextSearch.contains(Array("Hello World".utf8)[...], "worlds"))
        #expect(TextSearch.contains(Array("abc".utf8)[...], ""))
        #expect(!TextSearch.contains(Array("ab".utf8)[...], "abc"))
        #expect(TextSearch.contains(Array("x zyxwvutsrq y".utf8)[...], "ZYXWVUTSRQ"))
        // Non-ASCII: Foundation's case- and diacritic-insensitive comparison.
        #expect(TextSearch.contains(Array("Ein schöner Tag".utf8)[...], "SCHÖNER"))
        #expect(TextSearch.contains(Array("café au lait".utf8)[...], "cafe"))
        // Punctuation next to letters must not be folded into them ('@' is 'A' - 1, '[' is 'Z' + 1).
        #expect(!TextSearch.contains(Array("a@b".utf8)[...], "a`b"))
        #expect(!TextSearch.contains(Array("[x]".utf8)[...], "{x}"))
    }
}

@Suite struct ResponseEncodingTests {
    @Test func fetchPlanAsksForNoMoreThanNeeded() {
        let headerOnly = FetchPlan([.uid, .flags, .bodySection(SectionSpec(text: .headerFields(["Subject"])), partial: nil, peek: true)])
        #expect(headerOnly.header && !headerOnly.content && !headerOnly.tree && !headerOnly.structure)
        let structure = FetchPlan([.bodyStructure, .envelope])
        #expect(structure.structure && !structure.content && !structure.header)
        let part = FetchPlan([.bodySection(SectionSpec(part: [2], text: .full), partial: nil, peek: false)])
        #expect(part.content && part.tree)
        let text = FetchPlan([.bodySection(SectionSpec(text: .text), partial: nil, peek: true)])
        #expect(text.content && !text.tree)
    }

    @Test func largeMessagesStreamOnlyTheMessageOrItsText() throws {
        // Streamable: whole message and text items, with a cached structure; not a part, BINARY or preview.
        #expect(FetchPlan([.rfc822Size, .bodySection(SectionSpec(text: .full), partial: nil, peek: true)]).streamable(structureCached: false))
        #expect(FetchPlan([.bodyStructure, .rfc822]).streamable(structureCached: true))
        #expect(!FetchPlan([.bodyStructure, .rfc822]).streamable(structureCached: false))
        #expect(!FetchPlan([.bodySection(SectionSpec(part: [1], text: .full), partial: nil, peek: true)]).streamable(structureCached: true))
        #expect(!FetchPlan([.binary(part: [1], partial: nil, peek: true)]).streamable(structureCached: true))

        // The range each streamed item sends, from a 1,000-octet message whose text begins at 100.
        func streamed(_ a: FetchAttribute) -> (String, Range<Int>)? {
            guard let (item, range) = FetchSource.streamed(a, size: 1000, bodyStart: 100) else { return nil }
            var e = IMAPResponseEncoder()
            e.fetchItemStreamed(item, count: range.count)
            return (String(decoding: e.bytes, as: UTF8.self), range)
        }
        #expect(streamed(.rfc822)! == ("RFC822 {1000}\r\n", 0..<1000))
        #expect(streamed(.rfc822Text)! == ("RFC822.TEXT {900}\r\n", 100..<1000))
        #expect(streamed(.bodySection(SectionSpec(text: .full), partial: nil, peek: true))! == ("BODY[] {1000}\r\n", 0..<1000))
        #expect(streamed(.bodySection(SectionSpec(text: .text), partial: 10...19, peek: true))! == ("BODY[TEXT]<10> {10}\r\n", 110..<120))
        // RFC 9051 §6.4.5: a partial range past the end gives what there is, or nothing.
        #expect(streamed(.bodySection(SectionSpec(text: .full), partial: 995...1004, peek: false))! == ("BODY[]<995> {5}\r\n", 995..<1000))
        #expect(streamed(.bodySection(SectionSpec(text: .full), partial: 2000...2009, peek: false))! == ("BODY[]<2000> {0}\r\n", 1000..<1000))
        #expect(streamed(.bodySection(SectionSpec(text: .header), partial: nil, peek: true)) == nil)
        #expect(streamed(.rfc822Size) == nil)
        // Pieces of a literal keep its size: NUL goes out as 0x80, as a whole literal does.
        var e = IMAPResponseEncoder()
        e.literalPiece([65, 0, 66])
        #expect(e.bytes == [65, 0x80, 66])

        // Where the text begins, from the head of a message: known once the empty line is in it.
        let message = Array("Subject: x\r\nFrom: y\r\n\r\nbody".utf8)
        #expect(FetchSource.bodyStart(head: Array(message[..<12]), size: message.count) == nil)
        #expect(FetchSource.bodyStart(head: Array(message[..<23]), size: message.count) == 23)
        #expect(FetchSource.bodyStart(head: message, size: message.count) == 23)
        #expect(FetchSource.bodyStart(head: Array("a: b\n\nc".utf8), size: 100) == 6)
        // A message without an empty line is all header once the whole of it has been read.
        #expect(FetchSource.bodyStart(head: Array("a: b\r\n".utf8), size: 6) == 6)
    }

    @Test func sentDates() {
        // RFC 5322 §3.3 with obsolete forms: two-digit years, comments, missing seconds, zones.
        #expect(RFC5322Date.parse("Tue, 24 Nov 2026 10:00:00 +0000")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("24 Nov 2026 12:00:00 +0200 (CEST)")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("Tue, 24 Nov 26 10:00 +0000")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("not a date") == nil)
    }
}
