import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailMessage
import MailStore

/// The mailbox a session has selected: the session's own view of message numbers, which changes only when the
/// session reports EXISTS / EXPUNGE to its client (RFC 9051 §5.2).
public struct SelectedMailbox {
    public var id: MailboxID
    public var name: String
    public var readOnly: Bool
    public var uidValidity: UIDValidity
    public var messages: [StoredMessage]
    public var highestModSeq: ModSeq
    /// While expunges are held back from the client (RFC 9051 §7.5.1), the HIGHESTMODSEQ its view was whole at: below
    /// every held expunge's MODSEQ, so a QRESYNC client that takes it as its sync point misses none (RFC 7162 §3.2.10).
    public var expungesHeldSince: ModSeq?
    /// The keywords this session has announced in FLAGS and PERMANENTFLAGS: a keyword appears in a FETCH response
    /// only after the client has been told it exists (RFC 9051 §7.3.5).
    public var keywords: [String] = []
    /// The result of the last SEARCH or SORT with RETURN (SAVE) (RFC 5182), `$` in later commands; kept as UIDs
    /// in ascending order, so that messages expunged since simply drop out.
    public var saved: [UID] = []
    /// Results kept up to date for the client (RETURN (UPDATE), RFC 5267 §4); they end with the selection.
    public var contexts: [SearchContext] = []

    public init(id: MailboxID, name: String, readOnly: Bool, uidValidity: UIDValidity, messages: [StoredMessage], highestModSeq: ModSeq,
                keywords: [String] = [], saved: [UID] = []) {
        self.id = id
        self.name = name
        self.readOnly = readOnly
        self.uidValidity = uidValidity
        self.messages = messages
        self.highestModSeq = highestModSeq
        self.keywords = keywords
        self.saved = saved
    }

    /// Takes in the keywords among `candidates` the client has not been told of yet (compared without case); true when
    /// there were any (FLAGS and PERMANENTFLAGS must then be sent again).
    public mutating func learn(keywords candidates: some Sequence<String>) -> Bool {
        var added = false
        for k in candidates where !keywords.contains(where: { $0.caseInsensitiveCompare(k) == .orderedSame }) {
            keywords.append(k)
            added = true
        }
        return added
    }

    public func sequence(of uid: UID) -> Int? {
        var lo = 0, hi = messages.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if messages[mid].uid == uid { return mid + 1 }
            if messages[mid].uid < uid { lo = mid + 1 } else { hi = mid - 1 }
        }
        return nil
    }

    /// Indices into `messages` of the messages a sequence set addresses, in mailbox order (no copies of the messages).
    /// The set's ranges are put in order and merged first, so a set of thousands of single numbers costs one walk,
    /// not a scan of the set per message.
    public func resolveIndices(_ set: SequenceSet, uid: Bool) -> [Int] {
        guard !messages.isEmpty else { return [] }
        var out: [Int] = []
        if set.isSaved {
            // `$` (RFC 5182): the saved UIDs still in the view.
            var j = 0
            for (i, m) in messages.enumerated() {
                while j < saved.count && saved[j] < m.uid { j += 1 }
                if j == saved.count { break }
                if saved[j] == m.uid { out.append(i) }
            }
            return out
        }
        let largest = uid ? messages.last!.uid.rawValue : UInt32(messages.count)
        let ranges = set.merged(largest: largest)
        var r = 0
        messages.withUnsafeBufferPointer { all in
            for i in all.indices {
                let n = uid ? all[i].uid.rawValue : UInt32(i + 1)
                while r < ranges.count && ranges[r].upperBound < n { r += 1 }
                if r == ranges.count { break }
                if ranges[r].contains(n) { out.append(i) }
            }
        }
        return out
    }

    /// Messages addressed by a sequence set of message numbers or UIDs, in mailbox order.
    public func resolve(_ set: SequenceSet, uid: Bool) -> [(seq: Int, message: StoredMessage)] {
        resolveIndices(set, uid: uid).map { ($0 + 1, messages[$0]) }
    }
}

/// A SEARCH or SORT result the client asked to keep up to date: `RETURN (UPDATE)` of CONTEXT=SEARCH and
/// CONTEXT=SORT (RFC 5267 §4). The session tells the client of every change to the result with ESEARCH ADDTO and
/// REMOVEFROM, tagged with the command's tag, until CANCELUPDATE or until the mailbox is closed.
public struct SearchContext {
    public let tag: String
    public let uid: Bool
    /// The search key with sequence numbers and `$` replaced by the UIDs they meant when the command came: RFC 5267
    /// §4.1 evaluates them once, so later expunges do not shift what they select.
    public let key: SearchKey
    /// The SORT criteria; nil for SEARCH, whose result is in mailbox order.
    public let sort: [SortCriterion]?
    /// FETCH items sent for a new message that joins the result (`UPDATE (...)`, RFC 5465 §7).
    public let fetch: [FetchAttribute]
    /// The result as the client has it, in result order.
    public var result: [UID]
    /// For SORT: what orders each message of `result` (in the same order). The SORT keys never change for a message
    /// (its headers, size and arrival are fixed), so a message's place among the others never changes either.
    public var infos: [SortInfo] = []

    public init(tag: String, uid: Bool, key: SearchKey, sort: [SortCriterion]?, fetch: [FetchAttribute], result: [UID], infos: [SortInfo] = []) {
        self.tag = tag
        self.uid = uid
        self.key = key
        self.sort = sort
        self.fetch = fetch
        self.result = result
        self.infos = infos
    }
}

extension SearchContext {
    /// Puts `joining` into `infos` at their places (both sorted by `order`): the merged list, and the places taken
    /// as runs of neighbours, ascending, each with the 1-based position of its first member (RFC 5267 §4.4's ADDTO
    /// positions, neighbours in one update).
    public static func merge(_ joining: [SortInfo], into infos: [SortInfo], order: (SortInfo, SortInfo) -> Bool)
        -> (merged: [SortInfo], runs: [(position: Int, members: [SortInfo])]) {
        var merged: [SortInfo] = []
        merged.reserveCapacity(infos.count + joining.count)
        var places: [Int] = []
        var k = 0
        for info in infos {
            while k < joining.count && order(joining[k], info) { places.append(merged.count); merged.append(joining[k]); k += 1 }
            merged.append(info)
        }
        while k < joining.count { places.append(merged.count); merged.append(joining[k]); k += 1 }
        var runs: [(position: Int, members: [SortInfo])] = []
        var r = 0
        while r < places.count {
            var e = r
            while e + 1 < places.count && places[e + 1] == places[e] + 1 { e += 1 }
            runs.append((places[r] + 1, (r...e).map { merged[places[$0]] }))
            r = e + 1
        }
        return (merged, runs)
    }
}
