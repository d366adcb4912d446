import MailStore

/// A set of UIDs kept as sorted, disjoint, non-adjacent ranges: the messages recent to a session. Claims come in
/// ascending blocks (a mailbox's first unclaimed UID only grows), so a session that sees thousands of messages arrive
/// one by one still holds one range, and a lookup is a binary search however many there are.
public struct UIDRanges: Sendable, Equatable {
    public private(set) var ranges: [Range<UInt32>] = []

    public init() {}

    public mutating func insert(_ range: Range<UInt32>) {
        guard !range.isEmpty else { return }
        // Where the new range goes: after every range that ends before it starts.
        var i = firstIndex(endingAtOrAfter: range.lowerBound)
        var merged = range
        while i < ranges.count && ranges[i].lowerBound <= merged.upperBound {
            merged = min(ranges[i].lowerBound, merged.lowerBound)..<max(ranges[i].upperBound, merged.upperBound)
            ranges.remove(at: i)
        }
        ranges.insert(merged, at: i)
        // The range before may now touch it.
        if i > 0 && ranges[i - 1].upperBound >= ranges[i].lowerBound {
            ranges[i - 1] = ranges[i - 1].lowerBound..<max(ranges[i - 1].upperBound, ranges[i].upperBound)
            ranges.remove(at: i)
            i -= 1
        }
    }

    public func contains(_ uid: UInt32) -> Bool {
        var i = firstIndex(endingAtOrAfter: uid)
        if i < ranges.count && ranges[i].upperBound == uid { i += 1 }   // ends just below it; the next starts above
        return i < ranges.count && ranges[i].contains(uid)
    }

    /// How many of `uids` (ascending) are in the set.
    public func count(in uids: [UInt32]) -> Int { countSorted(uids) { $0 } }

    /// How many of `messages` (a mailbox view, in ascending UID order) are in the set. Two binary searches per range,
    /// not a walk over the mailbox: a session asks at every new message, and a mailbox may hold 100,000.
    public func count(in messages: [StoredMessage]) -> Int { countSorted(messages) { $0.uid.rawValue } }

    private func countSorted<C: RandomAccessCollection>(_ sorted: C, _ uid: (C.Element) -> UInt32) -> Int where C.Index == Int {
        func firstIndex(atLeast bound: UInt32) -> Int {
            var lo = sorted.startIndex, hi = sorted.endIndex
            while lo < hi {
                let mid = (lo + hi) / 2
                if uid(sorted[mid]) < bound { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        return ranges.reduce(0) { $0 + firstIndex(atLeast: $1.upperBound) - firstIndex(atLeast: $1.lowerBound) }
    }

    /// The index of the first range whose upper bound is at least `bound` (ranges.count if none).
    private func firstIndex(endingAtOrAfter bound: UInt32) -> Int {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < bound { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
