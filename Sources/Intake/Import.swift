import Foundation
import MailCore
import MailStore

/// The intake path of `tern import` (mbox and Maildir): no checks and no routing (the admin names the account and the
/// mailbox), the content made as every received message's is (`MessageSink`: inline while small, an fsync'd file
/// otherwise), then the commit step, batched: UIDs ascend in the source's order, and each batch shares a commit.
public final class Importer {
    public let store: any MailStore
    public let account: AccountID
    public let recipient: String
    private var batch: [Delivery] = []
    private var batchBytes = 0
    public private(set) var imported = 0

    public init(store: any MailStore, account: AccountID, recipient: String) {
        self.store = store
        self.account = account
        self.recipient = recipient
    }

    public func add(_ bytes: [UInt8], mailbox: String, flags: MessageFlags, date: Date) async throws {
        let sink = MessageSink(blobs: store.blobs, inlineLimit: store.inlineLimit, maxSize: Int.max, prefix: "")
        sink.append(bytes)
        let content: MessageContent
        do { content = try sink.finish() } catch { sink.discard(); throw error }
        if case .inline = content { batchBytes += bytes.count }
        batch.append(Delivery(content: content, envelope: StoredEnvelope(mailFrom: "", recipients: [.init(address: recipient)]),
                              targets: [DeliveryTarget(account: account, mailbox: mailbox)], internalDate: date, flags: flags))
        if batch.count >= 256 || batchBytes > 8 << 20 { try await flush() }
    }

    public func flush() async throws {
        guard !batch.isEmpty else { return }
        _ = try await store.deliver(batch: batch)
        imported += batch.count
        batch = []
        batchBytes = 0
    }
}
