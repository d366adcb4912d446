import Testing
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
        }
        var top = UIDRanges()
        top.insert((UInt32.max - 2)..<UInt32.max)
        #expect(top.contains(UInt32.max - 1) && !top.contains(UInt32.max))
    }
}
