import Foundation
import MailCore
import MailStore
import TernTestSupport
import Testing
@testable import MailStoreSQLite

/// Ids and UIDVALIDITY values are never handed out twice (issue 18: IMAP's caches and mailbox views keyed by a reused
/// id answered with a deleted message's or mailbox's data, across accounts).
@Suite struct IdentityTests {
    func deliver(_ store: SQLiteMailStore, _ account: AccountID, _ text: String, mailbox: String? = nil) async throws -> DeliveryReceipt {
        try await store.deliver(Delivery(content: .inline(Array(text.utf8)), envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                         targets: [DeliveryTarget(account: account, mailbox: mailbox)], internalDate: testDate))
    }

    @Test func messageIDNotReusedAfterExpungeAcrossAccounts() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("here.test")
        let a = try await store.addAccount(addr("a@here.test"), password: "pw")
        let b = try await store.addAccount(addr("b@here.test"), password: "pw")
        let first = try await deliver(store, a, "Subject: for A\r\n\r\nA's\r\n")
        let inboxA = try await store.mailboxes(account: a)[0]
        _ = try await store.expunge(mailbox: inboxA.id, uids: first.placements.map(\.uid))
        // A's message is gone (its row too); B's new message gets an id never used before.
        let second = try await deliver(store, b, "Subject: for B\r\n\r\nB's\r\n")
        #expect(second.messageID > first.messageID)
        // After a restart too: the sequence is in the database, not in memory.
        let reopened = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock())
        let third = try await deliver(reopened, b, "Subject: again\r\n\r\n.\r\n")
        #expect(third.messageID > second.messageID)
    }

    @Test func deletedMailboxDoesNotComeBack() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("here.test")
        let a = try await store.addAccount(addr("a@here.test"), password: "pw")
        let old = try await store.createMailbox(account: a, name: "Projects")
        _ = try await deliver(store, a, "Subject: old\r\n\r\nold\r\n", mailbox: "Projects")
        let oldInfo = try #require(try await store.mailboxes(account: a).first { $0.name == "Projects" })
        try await store.deleteMailbox(account: a, name: "Projects")
        let new = try await store.createMailbox(account: a, name: "Projects")
        #expect(new != old)
        #expect(try await store.messages(mailbox: new).isEmpty)
        // Same name, same second on the clock: still another UIDVALIDITY, and a larger one.
        let newInfo = try #require(try await store.mailboxes(account: a).first { $0.name == "Projects" })
        #expect(newInfo.uidValidity.rawValue > oldInfo.uidValidity.rawValue)
    }

    @Test func uidValidityNeverRepeatsWithinAnAccount() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("here.test")
        let a = try await store.addAccount(addr("a@here.test"), password: "pw")
        var seen = Set(try await store.mailboxes(account: a).map(\.uidValidity.rawValue))
        for round in 0..<5 {
            _ = try await store.createMailbox(account: a, name: "Box")
            let v = try #require(try await store.mailboxes(account: a).first { $0.name == "Box" }).uidValidity.rawValue
            #expect(!seen.contains(v), "round \(round): UIDVALIDITY \(v) again")
            seen.insert(v)
            try await store.deleteMailbox(account: a, name: "Box")
        }
    }

    /// MULTIAPPEND's store side (RFC 3502 §6.3.11): all the messages or none.
    @Test func deliverAllIsAllOrNothing() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("here.test")
        let a = try await store.addAccount(addr("a@here.test"), password: "pw")
        func delivery(_ text: String, _ mailbox: String?) -> Delivery {
            Delivery(content: .inline(Array(text.utf8)), envelope: StoredEnvelope(mailFrom: "", recipients: []),
                     targets: [DeliveryTarget(account: a, mailbox: mailbox)], internalDate: testDate)
        }
        await #expect(throws: (any Error).self) {
            _ = try await store.deliverAll([delivery("Subject: 1\r\n\r\n1\r\n", nil), delivery("Subject: 2\r\n\r\n2\r\n", "No such box")])
        }
        let inbox = try await store.mailboxes(account: a)[0]
        #expect(try await store.messages(mailbox: inbox.id).isEmpty)
        let receipts = try await store.deliverAll([delivery("Subject: 1\r\n\r\n1\r\n", nil), delivery("Subject: 2\r\n\r\n2\r\n", nil)])
        #expect(receipts.map { $0.placements[0].uid.rawValue } == [1, 2])
    }
}

/// The message count a mailbox listing reports (kept by triggers since schema 9) is the number of its messages after
/// every kind of change.
@Suite struct MessageCountTests {
    @Test func countsFollowEveryChange() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("here.test")
        let a = try await store.addAccount(addr("a@here.test"), password: "pw")
        _ = try await store.createMailbox(account: a, name: "Work")
        func check(_ when: String) async throws {
            for box in try await store.mailboxes(account: a) {
                let real = try await store.messages(mailbox: box.id).count
                #expect(box.messages == real, "\(box.name) after \(when)")
            }
        }
        var uids: [UID] = []
        for i in 0..<6 {
            let r = try await store.deliver(Delivery(content: .inline(Array("Subject: \(i)\r\n\r\nx\r\n".utf8)),
                                                     envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                     targets: [DeliveryTarget(account: a, mailbox: nil)], internalDate: testDate))
            uids += r.placements.map(\.uid)
        }
        try await check("delivery")
        let inbox = try #require(try await store.mailboxes(account: a).first { $0.name == "INBOX" })
        let work = try #require(try await store.mailboxID(account: a, name: "Work"))
        _ = try await store.copy(from: inbox.id, uids: Array(uids[0..<2]), to: work, move: false)
        try await check("copy")
        _ = try await store.copy(from: inbox.id, uids: [uids[2]], to: work, move: true)
        try await check("move")
        _ = try await store.expunge(mailbox: inbox.id, uids: [uids[3]])
        try await check("expunge")
        try await store.renameMailbox(account: a, from: "INBOX", to: "Old")
        try await check("renaming INBOX")
        try await store.deleteMailbox(account: a, name: "Work")
        try await check("delete")
        #expect(try await store.mailboxes(account: a).first { $0.name == "Old" }?.messages == 4)   // 6, less one moved and one expunged
    }
}
