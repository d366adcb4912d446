import Foundation
import MailCore
import MailStore
import Testing
@testable import MailStoreSQLite

@Suite struct DeliveryLogTests {
    @Test func eventsCommitWithTheirChangesAndAreFoundByEitherID() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        // A queued message: its received/queued lines commit with it.
        let envelope = StoredEnvelope(mailFrom: "a@here.test", recipients: [.init(address: "b@there.test")])
        _ = try await store.deliver(Delivery(content: .inline(Array("Subject: x\r\n\r\nbody\r\n".utf8)), envelope: envelope, targets: [], internalDate: t0,
                                             remoteRecipients: envelope.recipients, queueID: "Q1",
                                             log: [DeliveryEvent(at: t0, queueID: "Q1", messageID: "m1@here.test", kind: .received, detail: "from x"),
                                                   DeliveryEvent(at: t0, queueID: "Q1", kind: .queued, detail: "for <b@there.test>")]))
        // An attempt: its line commits with the result.
        let queued = try #require(try await store.queuedMessage(queueID: "Q1"))
        let attempt = DeliveryAttempt(recipientID: queued.recipients[0].id, outcome: .failed, reply: "550 5.1.1 no", remoteHost: "mx",
                                      event: DeliveryEvent(at: t0 + 60, queueID: "Q1", kind: .failed, detail: "<b@there.test> via mx: 550 5.1.1 no"))
        _ = try await store.recordAttempts([attempt], completing: queued.id)
        // A bounce about it, with a queue id of its own; and someone else's message.
        try await store.log([DeliveryEvent(at: t0 + 61, queueID: "Q2", kind: .received, detail: "bounce", related: "Q1"),
                             DeliveryEvent(at: t0 + 5, queueID: "Q3", messageID: "other@here.test", kind: .received, detail: "other")])

        let byMessageID = try await store.deliveryLog(id: "<m1@here.test>")
        #expect(byMessageID.map(\.kind) == [.received, .queued, .failed, .received])
        #expect(byMessageID.map(\.queueID) == ["Q1", "Q1", "Q1", "Q2"])
        #expect(byMessageID[2].detail == "<b@there.test> via mx: 550 5.1.1 no")
        #expect(try await store.deliveryLog(id: "Q1").count == 4)
        #expect(try await store.deliveryLog(id: "Q3").map(\.detail) == ["other"])
        #expect(try await store.deliveryLog(id: "nothing").isEmpty)
        // Pruning removes what is older than the date, nothing else.
        #expect(try await store.pruneDeliveryLog(before: t0 + 30) == 3)
        #expect(try await store.deliveryLog(id: "Q1").map(\.kind) == [.failed, .received])
    }
}
