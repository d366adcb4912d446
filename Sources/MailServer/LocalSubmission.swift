import MailDelivery
import ServerCore
import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import TernConfig

/// Mail handed over by a program on this host (`tern sendmail`, as cron, PHP's mail() and logwatch call
/// /usr/sbin/sendmail): prepared as submitted mail (Message-ID, Date, DKIM signatures) and, in one commit, stored for
/// the local recipients and queued for the others. The running server's queue finds queued mail in the database.
public enum LocalSubmission {
    public enum Failure: Error, CustomStringConvertible {
        case noRecipients
        case unknownUser(String)
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .noRecipients: "no recipients"
            case .unknownUser(let a): "\(a): no such user here"
            case .tooLarge(let max): "message larger than limits.max_message_size (\(max) octets)"
            }
        }
    }

    public struct Receipt: Sendable {
        public var queueID: String
        public var messageID: String?
        public var local: Int
        public var remote: Int
    }

    /// `message` is the header and body with CRLF line ends; `origin` says who handed it over, for the Received field
    /// and the delivery log ("root (uid 0)").
    public static func submit(_ message: [UInt8], mailFrom: String, recipients: [EmailAddress], origin: String,
                              config: TernConfiguration, store: any MailStore, blobs: BlobStore, inlineLimit: Int,
                              clock: any WallClock, logger: Logger) async throws -> Receipt {
        guard !recipients.isEmpty else { throw Failure.noRecipients }
        var targets: [DeliveryTarget] = []
        var remote: [StoredEnvelope.Recipient] = []
        var local: [String] = []
        for r in recipients {
            switch try await store.resolve(r) {
            case .local(let accounts):
                local.append(r.description)
                for a in accounts where !targets.contains(where: { $0.account == a }) { targets.append(DeliveryTarget(account: a)) }
            case .notOurDomain:
                remote.append(StoredEnvelope.Recipient(address: r.description))
            case .unknownUser:
                throw Failure.unknownUser(r.description)
            }
        }
        let id = SessionID.make()
        let now = clock.now
        let received = "Received: by \(config.hostname) (Tern sendmail, from \(origin))\r\n\tid \(id); \(TraceHeaders.rfc5322Date(now))\r\n"
        let sink = MessageSink(blobs: blobs, inlineLimit: inlineLimit, maxSize: config.limits.maxMessageSize + received.utf8.count,
                               prefix: received)
        sink.append(message)
        guard !sink.tooLarge else {
            sink.discard()
            throw Failure.tooLarge(config.limits.maxMessageSize)
        }
        let keys = await DKIMKeyring(store: store, logger: logger).current()
        let prepared: (content: MessageContent, messageID: String?)
        do {
            prepared = try SubmissionPreparation.finish(sink, keys: keys, hostname: config.hostname, queueID: id, mailFrom: mailFrom,
                                                        now: now, logger: logger)
        } catch {
            sink.discard()
            throw error
        }
        let envelope = StoredEnvelope(mailFrom: mailFrom, recipients: recipients.map { StoredEnvelope.Recipient(address: $0.description) },
                                      smtputf8: !mailFrom.allSatisfy(\.isASCII) || recipients.contains { !$0.description.allSatisfy(\.isASCII) })
        let log = config.keepsDeliveryLog
            ? DeliveryLogEvents.receipt(id: id, messageID: prepared.messageID,
                                        received: "from \(origin) via tern sendmail, MAIL FROM <\(mailFrom)>, \(recipients.count) recipient\(recipients.count == 1 ? "" : "s"), \(prepared.content.size) octets",
                                        checked: nil, local: local, remote: remote.map(\.address), junk: false, at: now)
            : []
        do {
            _ = try await store.deliver(Delivery(content: prepared.content, envelope: envelope, targets: targets,
                                                 internalDate: now, remoteRecipients: remote, queueID: id, log: log))
        } catch {
            if case .blob(let key, _) = prepared.content { blobs.remove(key) }
            throw error
        }
        return Receipt(queueID: id, messageID: prepared.messageID, local: targets.count, remote: remote.count)
    }
}
