import MailStore

/// How a session's view of a mailbox differs from the mailbox's latest snapshot (both in UID order): pure walks the
/// session turns into EXPUNGE/VANISHED, FETCH FLAGS and EXISTS responses.
public enum ViewDelta {
    /// Messages gone from the view (`gone`, indices in `old`) and messages whose flags or keywords changed (`changed`,
    /// indices in `new`, with what the client was last told of each in `previous`).
    public static func compare(old: [StoredMessage], new: [StoredMessage]) -> (gone: [Int], changed: [Int], previous: [Int: StoredMessage]) {
        var gone: [Int] = [], changed: [Int] = []
        var previous: [Int: StoredMessage] = [:]
        var i = 0, j = 0
        while i < old.count {
            if j < new.count && new[j].uid == old[i].uid {
                if new[j].flags != old[i].flags || new[j].keywords != old[i].keywords { changed.append(j); previous[j] = old[i] }
                i += 1; j += 1
            } else if j < new.count && new[j].uid < old[i].uid {
                j += 1
            } else {
                gone.append(i); i += 1
            }
        }
        return (gone, changed, previous)
    }

    /// The view kept whole while expunges cannot be reported (during FETCH, STORE, SEARCH): each message patched where
    /// the snapshot has a newer row (`changed`, indices in `merged`, with `previous`), and the new messages appended
    /// (`added`). A walk by index over both: no copy of the list unless something changed.
    public static func holding(old: [StoredMessage], new: [StoredMessage])
        -> (merged: [StoredMessage], changed: [Int], previous: [Int: StoredMessage], added: [StoredMessage]) {
        var merged = old
        var changed: [Int] = []
        var previous: [Int: StoredMessage] = [:]
        var j = 0
        for i in old.indices {
            let uid = old[i].uid
            while j < new.count && new[j].uid < uid { j += 1 }
            guard j < new.count && new[j].uid == uid else { continue }
            if new[j].modSeq != old[i].modSeq {
                if new[j].flags != old[i].flags || new[j].keywords != old[i].keywords { previous[i] = old[i]; changed.append(i) }
                merged[i] = new[j]
            }
            j += 1
        }
        // UIDs only grow: what the view has not seen comes after everything in it.
        let newest = old.last?.uid.rawValue ?? 0
        var firstAdded = new.count
        while firstAdded > 0 && new[firstAdded - 1].uid.rawValue > newest { firstAdded -= 1 }
        let added = Array(new[firstAdded...])
        merged += added
        return (merged, changed, previous, added)
    }
}
