import Foundation
import MailCore
import MailStore
import TernTestSupport

/// An installation with something in every table, for `tern migrate`'s tests: two domains, accounts, aliases and a
/// catch-all, mailboxes with special uses and subscriptions, small and large (chunked, file-backed) contents shared
/// by several mailboxes, flags and keywords, an expunge, a queued message with a deferred recipient, DKIM keys, Bayes
/// counts, the delivery log, and Sieve scripts with what they remember.
public enum MigrationFixture {
    public static func populate(_ store: any MailStore, clock: ManualClock) async throws {
        try await store.addDomain("example.test")
        try await store.addDomain("other.test")
        let alice = try await store.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw-alice")
        let bob = try await store.addAccount(try EmailAddress.parse("bob@other.test"), password: "pw-bob")
        try await store.addAlias("info@example.test", targets: [try EmailAddress.parse("alice@example.test"), try EmailAddress.parse("bob@other.test")])
        try await store.addAlias("@other.test", targets: [try EmailAddress.parse("bob@other.test")])
        let projects = try await store.createMailbox(account: alice, name: "Projects")
        try await store.setSubscribed(account: alice, name: "Gone", true)
        try await store.putScript(account: alice, name: "sort", content: "require \"fileinto\";\r\nfileinto \"Projects\";\r\n")
        try await store.putScript(account: alice, name: "spare", content: "keep;")
        try await store.activateScript(account: alice, name: "sort")
        _ = try await store.markSieveSeen("vacation\u{0}1\u{0}sender@remote.test", until: clock.now.addingTimeInterval(7 * 86400), now: clock.now)
        let inbox = try await store.mailboxes(account: alice).first { $0.name == "INBOX" }!.id
        let envelope = StoredEnvelope(mailFrom: "sender@remote.test", recipients: [.init(address: "alice@example.test")])
        var uids: [UID] = []
        for n in 0..<12 {
            clock.advance(by: 61)
            let body = Array("From: sender@remote.test\r\nSubject: message \(n)\r\n\r\nbody \(n)\r\n".utf8)
            let receipt = try await store.deliver(Delivery(content: .inline(body), envelope: envelope,
                                                           targets: [DeliveryTarget(account: alice), DeliveryTarget(account: bob)],
                                                           internalDate: clock.now))
            uids.append(receipt.placements[0].1)
        }
        // A content above every inline limit (files on SQLite, chunks on PostgreSQL), in two mailboxes.
        var big = Array("From: sender@remote.test\r\nSubject: large\r\n\r\n".utf8)
        for i in 0..<(3 << 20) / 64 { big += Array(String(format: "%063d\n", i).utf8) }
        let (tmp, handle) = try store.blobs.makeTempFile()
        try handle.write(contentsOf: big)
        let key = BlobStore.newKey()
        try store.blobs.commit(tempFile: tmp, handle: handle, key: key)
        let large = try await store.deliver(Delivery(content: .blob(key: key, size: big.count), envelope: envelope,
                                                     targets: [DeliveryTarget(account: alice, mailbox: "Projects"), DeliveryTarget(account: alice)],
                                                     internalDate: clock.now))
        _ = try await store.storeFlags(mailbox: inbox, uids: Array(uids[0..<5]), operation: .add, flags: .seen, keywords: ["$Important", "work"],
                                       unchangedSince: nil)
        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[1]], operation: .add, flags: [.flagged, .answered], keywords: [],
                                       unchangedSince: nil)
        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[6]], operation: .add, flags: .deleted, keywords: [], unchangedSince: nil)
        _ = try await store.expunge(mailbox: inbox, uids: [uids[6]])
        _ = try await store.copy(from: inbox, uids: [uids[2], uids[3]], to: projects, move: true)
        _ = try await store.claimRecent(mailbox: inbox, below: UID(rawValue: 8), claim: true)
        _ = large
        // The outbound queue: one recipient deferred after an attempt, one pending.
        let queued = StoredEnvelope(mailFrom: "alice@example.test", recipients: [])
        _ = try await store.deliver(Delivery(content: .inline(Array("From: alice@example.test\r\nSubject: out\r\n\r\nout\r\n".utf8)),
                                             envelope: queued, targets: [], internalDate: clock.now,
                                             remoteRecipients: [.init(address: "x@far.test"), .init(address: "y@near.test")], queueID: "QMIG1"))
        let due = try await store.queuedMessages(dueBy: clock.now, after: 0, limit: 10)
        if let q = due.first, let r = q.recipients.first {
            _ = try await store.recordAttempts([DeliveryAttempt(recipientID: r.id, outcome: .deferred(until: clock.now.addingTimeInterval(600)),
                                                                reply: "451 4.3.0 try later", remoteHost: "mx.far.test")], completing: q.id)
            try await store.releaseLeases(q.recipients.dropFirst().map(\.id))
        }
        try await store.addDKIMKey(DKIMKeyRecord(domain: "example.test", selector: "s1", algorithm: "ed25519", privateKey: "secret-key",
                                                 created: clock.now))
        _ = try await store.trainBayes(owner: nil, key: "global-1", tokens: [1, 2, 3, -4], spam: true)
        _ = try await store.trainBayes(owner: alice, key: "alice-1", tokens: [2, 5], spam: false)
        try await store.log([DeliveryEvent(at: clock.now, queueID: "QLOG", messageID: "m1@remote.test", kind: .received, detail: "from x"),
                             DeliveryEvent(at: clock.now, queueID: "QLOG", kind: .stored, detail: "INBOX", related: "QMIG1")])
        // The newest mailbox, message and queue entry gone without a trace but their ids: a copy must not hand those
        // ids out again.
        _ = try await store.createMailbox(account: bob, name: "Scratch")
        try await store.deleteMailbox(account: bob, name: "Scratch")
        let last = try await store.deliver(Delivery(content: .inline(Array("Subject: last\r\n\r\nlast\r\n".utf8)), envelope: envelope,
                                                    targets: [DeliveryTarget(account: alice)], internalDate: clock.now))
        _ = try await store.expunge(mailbox: inbox, uids: [last.placements[0].1])
        _ = try await store.deliver(Delivery(content: .inline(Array("Subject: gone\r\n\r\ngone\r\n".utf8)), envelope: queued, targets: [],
                                             internalDate: clock.now, remoteRecipients: [.init(address: "z@far.test")], queueID: "QGONE"))
        _ = try await store.deleteQueued(queueID: "QGONE")
        try await store.collectGarbage()
    }

    /// Every table's rows (through the transfer protocol) and every content: equal for two stores that hold the same
    /// installation.
    public static func snapshot(_ store: any MailStore & StoreTransfer) async throws -> [String: [[TransferValue]]] {
        var tables: [String: [[TransferValue]]] = [:]
        for table in TransferTable.all {
            var after: [TransferValue]? = nil
            var rows: [[TransferValue]] = []
            while true {
                let page = try await store.transferRows(table, after: after, limit: 7)
                guard let last = page.last else { break }
                rows += page
                after = table.keyIndexes.map { last[$0] }
            }
            tables[table.name] = rows
        }
        let ids = (tables["message"] ?? []).compactMap { $0.first?.integer }
        let contents = try await store.contents(of: ids)
        tables["contents"] = ids.map { [.integer($0), .blob(contents[$0] ?? [])] }
        tables["id high water"] = try await store.idHighWater().sorted { $0.key < $1.key }.map { [.text($0.key), .integer($0.value)] }
        return tables
    }
}
