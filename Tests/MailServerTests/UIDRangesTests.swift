import Foundation
import IMAPCodec
import IMAPResponses
import MailStore
import TernTestSupport
import Testing
@testable import IMAPMailboxView
@testable import IMAPServer
@testable import MailServer

@Suite struct UIDRangesTests {
    @Test func claimsOneByOneStayOneRange() {
        var set = UIDRanges()
        for uid in UInt32(1)...3000 { set.insert(uid..<(uid + 1)) }
        #expect(set.ranges == [1..<3001])
        #expect(set.contains(1) && set.contains(3000) && !set.contains(0) && !set.contains(3001))
        #expect(set.count(in: [0, 1, 2, 2999, 3000, 3001, 5000]) == 4)
    }

    @Test func randomInsertsAgreeWithASet() {
        var rng = SplitMix(seed: 18)
        for _ in 0..<200 {
            var set = UIDRanges()
            var model = Set<UInt32>()
            for _ in 0..<20 {
                let low = UInt32(rng.next() % 100), length = UInt32(rng.next() % 8)
                set.insert(low..<(low + length))
                model.formUnion(low..<(low + length))
                // Sorted, disjoint and not touching.
                for (a, b) in zip(set.ranges, set.ranges.dropFirst()) { #expect(a.upperBound < b.lowerBound) }
                #expect(set.ranges.allSatisfy { !$0.isEmpty })
            }
            for uid in UInt32(0)..<120 { #expect(set.contains(uid) == model.contains(uid), "\(uid) in \(set.ranges)") }
            let probe = (UInt32(0)..<120).filter { _ in rng.next() % 3 == 0 }
            #expect(set.count(in: probe) == probe.filter(model.contains).count)
            let messages = probe.map { StoredMessage(mailbox: 1, uid: UID($0), messageID: Int64($0), size: 1, internalDate: Date(timeIntervalSince1970: 0),
                                                     flags: [], keywords: [], modSeq: ModSeq(rawValue: 1)) }
            #expect(set.count(in: messages) == probe.filter(model.contains).count)
        }
        var top = UIDRanges()
        top.insert((UInt32.max - 2)..<UInt32.max)
        #expect(top.contains(UInt32.max - 1) && !top.contains(UInt32.max))
    }
}

@Suite struct SequenceResolutionTests {
    /// resolveIndices merges the set's ranges and walks once; it must address exactly what SequenceSet.contains says,
    /// for message numbers and UIDs, with `*`, reversed ranges and overlaps.
    @Test func mergedWalkAgreesWithContains() {
        var rng = SplitMix(seed: 5182)
        for _ in 0..<300 {
            var uid: UInt32 = 0
            let messages = (0..<rng.next(60)).map { _ -> StoredMessage in
                uid += UInt32(1 + rng.next(4))
                return StoredMessage(mailbox: 1, uid: UID(uid), messageID: Int64(uid), size: 1, internalDate: Date(timeIntervalSince1970: 0),
                                     flags: [], keywords: [], modSeq: ModSeq(rawValue: 1))
            }
            let m = SelectedMailbox(id: 1, name: "INBOX", readOnly: false, uidValidity: UIDValidity(rawValue: 1), messages: messages,
                                    highestModSeq: ModSeq(rawValue: 1))
            let ranges = (0..<(1 + rng.next(6))).map { _ -> SequenceSet.Range in
                let a: UInt32? = rng.next(8) == 0 ? nil : UInt32(1 + rng.next(250))
                let b: UInt32? = rng.next(8) == 0 ? nil : UInt32(1 + rng.next(250))
                return SequenceSet.Range(a, rng.next(2) == 0 ? a : b)
            }
            let set = SequenceSet(ranges: ranges)
            for byUID in [false, true] {
                let largest = byUID ? (messages.last?.uid.rawValue ?? 0) : UInt32(messages.count)
                let expected = messages.indices.filter { set.contains(byUID ? messages[$0].uid.rawValue : UInt32($0 + 1), largest: largest) }
                #expect(m.resolveIndices(set, uid: byUID) == expected, "\(set) uid=\(byUID)")
            }
            // `$`: the saved UIDs still in the view.
            var saved = m
            saved.saved = messages.map(\.uid).filter { _ in rng.next(2) == 0 } + [UID(9999)]
            var dollar = SequenceSet(ranges: [])
            dollar.isSaved = true
            #expect(saved.resolveIndices(dollar, uid: false) == messages.indices.filter { saved.saved.contains(messages[$0].uid) })
        }
    }
}
