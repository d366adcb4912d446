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

    /// How many of `uids` (ascending) are in the set: one walk over both.
    public func count(in uids: some Sequence<UInt32>) -> Int {
        var n = 0, i = 0
        for uid in uids {
            while i < ranges.count && ranges[i].upperBound <= uid { i += 1 }
            if i == ranges.count { break }
            if ranges[i].contains(uid) { n += 1 }
        }
        return n
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
