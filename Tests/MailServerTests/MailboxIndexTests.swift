import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailMessage
import MailStore
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

    @Test func sentDates() {
        // RFC 5322 §3.3 with obsolete forms: two-digit years, comments, missing seconds, zones.
        #expect(RFC5322Date.parse("Tue, 24 Nov 2026 10:00:00 +0000")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("24 Nov 2026 12:00:00 +0200 (CEST)")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("Tue, 24 Nov 26 10:00 +0000")?.timeIntervalSince1970 == 1_795_514_400)
        #expect(RFC5322Date.parse("not a date") == nil)
    }
}
