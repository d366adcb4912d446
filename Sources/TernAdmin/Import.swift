
import DKIM
import Deliverability
import MailDelivery
import Foundation
import Logging
import MailAuth
import MailCore
import MailDNS
import MailMessage
import MailStore
import TernConfig

/// Stores imported messages in ordered batches: UIDs ascend in the source's order, and each batch shares a commit.
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
        let content: MessageContent
        if bytes.count > store.inlineLimit {
            let key = BlobStore.newKey()
            try store.blobs.write(bytes, key: key)
            content = .blob(key: key, size: bytes.count)
        } else {
            content = .inline(bytes)
            batchBytes += bytes.count
        }
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

/// A progress bar on standard error, drawn only when it is a terminal.
public final class Progress {
    public let total: Int
    public let label: String
    public let enabled = isatty(STDERR_FILENO) == 1
    private var lastDrawn = -1

    public init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    public func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let percent = done * 100 / total
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let width = 40, filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
    }

    public func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
