import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import TernConfig

/// Mail handed over by a program on this host (`tern sendmail`, as cron, PHP's mail() and logwatch call
/// /usr/sbin/sendmail): through the intake pipeline as submitted mail (Message-ID, Date, DKIM signatures) and, in one
/// commit, stored for the local recipients and queued for the others. The running server's queue finds queued mail in
/// the database.
public enum LocalSubmission {
    public enum Failure: Error, CustomStringConvertible {
        case noRecipients
        /// A recipient refused for good (no such user here).
        case refused(String, SMTPReply)
        /// A recipient refused for now (mailbox full, the directory unreadable).
        case deferred(String, SMTPReply)
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .noRecipients: "no recipients"
            case .refused(let a, let reply), .deferred(let a, let reply): "\(a): \(reply.lines.joined(separator: " "))"
            case .tooLarge(let max): "message larger than limits.max_message_size (\(max) octets)"
            }
        }
    }

    public struct Receipt: Sendable {
        public var queueID: String
        public var local: Int
        public var remote: Int
    }

    /// `message` is the header and body with CRLF line ends; `origin` says who handed it over, for the Received field
    /// and the delivery log ("root (uid 0)").
    public static func submit(_ message: [UInt8], mailFrom: String, recipients: [EmailAddress], origin: String,
                              intake: Intake, now: Date, logger: Logger) async throws -> Receipt {
        guard !recipients.isEmpty else { throw Failure.noRecipients }
        let source = IntakeSource.sendmail(origin: origin)
        let policy = intake.policy(for: source)
        var routes: [RecipientRoute] = []
        for r in recipients {
            switch await intake.recipient(r, isPostmaster: false, policy: policy) {
            case .accept(let route): routes.append(route)
            case .refuse(let reply) where reply.code.isPermanent: throw Failure.refused(r.description, reply)
            case .refuse(let reply): throw Failure.deferred(r.description, reply)
            }
        }
        let config = intake.config, id = SessionID.make()
        let received = "Received: by \(config.hostname) (Tern sendmail, from \(origin))\r\n\tid \(id); \(TraceHeaders.rfc5322Date(now))\r\n"
        let sink = MessageSink(blobs: intake.store.blobs, inlineLimit: intake.store.inlineLimit,
                               maxSize: config.limits.maxMessageSize + received.utf8.count, prefix: received)
        sink.append(message)
        guard !sink.tooLarge else {
            sink.discard()
            throw Failure.tooLarge(config.limits.maxMessageSize)
        }
        let envelope = IntakeEnvelope(mailFrom: mailFrom, recipients: recipients.map { .init(address: $0.description) },
                                      smtputf8: !mailFrom.allSatisfy(\.isASCII) || recipients.contains { !$0.description.allSatisfy(\.isASCII) })
        let logLine = config.keepsDeliveryLog
            ? "from \(origin) via tern sendmail, MAIL FROM <\(mailFrom)>, \(recipients.count) recipient\(recipients.count == 1 ? "" : "s"), \(sink.size) octets"
            : nil
        let incoming = IncomingMessage(source: source, envelope: envelope, routes: routes, queueID: id, arrived: now,
                                       received: logLine, logger: logger)
        let plan = RoutingPlan(envelope: envelope, routes: routes)
        let outcome = await withCheckedContinuation { continuation in
            intake.receive(incoming, sink: sink) { continuation.resume(returning: $0) }
        }
        switch outcome {
        case .committed(_, let queueID, _, _), .tested(let queueID):
            return Receipt(queueID: queueID, local: plan.targets.count, remote: plan.remote.count)
        case .refused(let reply): throw Failure.refused(mailFrom, reply)
        case .failed(let error): throw error
        }
    }
}
