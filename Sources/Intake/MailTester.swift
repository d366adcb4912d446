

import Deliverability
import DKIM
import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import Synchronization
import TernConfig

/// The mail tester: a message to `check@` any local domain (`tester.address`) is not stored; its sender gets a reply
/// with the `tern check message` report of exactly what arrived (trace fields added here included). The reply is an
/// automatic one (RFC 3834): sent with a null return path, marked Auto-Submitted, never to a null sender nor to mail
/// that says it is automatic or bulk, and at most `tester.replies_per_hour` per sender address and per client address.
public final class MailTester: Sendable {
    let localPart: String
    let perHour: Int
    let hostname: String
    private let sent = Mutex<[String: [Date]]>([:])
    static let maxTracked = 10_000

    init(config: TernConfiguration) {
        localPart = config.tester.localPart
        perHour = config.tester.repliesPerHour
        hostname = config.hostname
    }

    /// Why no reply is owed, or nil when one is.
    func refusal(header: [RawHeaderField], mailFrom: String, client: String, now: Date) -> String? {
        if mailFrom.isEmpty { return "null sender" }
        func value(_ name: String) -> String? { header.first(named: name)?.unfoldedValue.lowercased() }
        if let auto = value("Auto-Submitted"), !auto.hasPrefix("no") { return "Auto-Submitted: \(auto)" }
        if let precedence = value("Precedence"), ["bulk", "list", "junk"].contains(precedence) { return "Precedence: \(precedence)" }
        if value("List-Id") != nil { return "mailing-list message" }
        return sent.withLock { table in
            let keys = ["from:" + mailFrom.lowercased(), "ip:" + client]
            for k in keys { table[k] = table[k, default: []].filter { now.timeIntervalSince($0) < 3600 } }
            if keys.contains(where: { table[$0]!.count >= perHour }) { return "more than \(perHour) reports in an hour" }
            if table.count > Self.maxTracked {
                table = table.filter { !$0.value.isEmpty }
                if table.count > Self.maxTracked { table.removeAll() }
            }
            for k in keys { table[k]!.append(now) }
            return nil
        }
    }

    /// Answers one message to the tester (`bytes` as it arrived, trace fields included): the report goes to the sender,
    /// committed with the delivery-log lines (`received`: the message's own "received" line; nil: no log). Returns the
    /// text for the reply to DATA.
    /// `senderVerified`: the sender is known (authenticated submission, a relay network, a program on this host);
    /// otherwise a report goes out only when SPF or DKIM passes for the sender's domain, so that a forged sender
    /// cannot turn the tester into a reflector of signed mail.
    func respond(to bytes: [UInt8], testerAddress: String, mailFrom: String, senderVerified: Bool, client: String, helo: String,
                 queueID id: String, received: String?, inbound: InboundChecks, store: any MailStore, keys: [String: [DKIMKey]],
                 logger: Logger) async throws -> String {
        let fields = RawHeader.fields(bytes[..<RawHeader.end(bytes)])
        let now = inbound.clock.now
        var log: [DeliveryEvent] = []
        if let received {
            log.append(DeliveryEvent(at: now, queueID: id, messageID: DeliveryLogEvents.messageID(fields), kind: .received, detail: received))
        }
        if let why = refusal(header: fields, mailFrom: mailFrom, client: client, now: now) {
            logger.info("mail tester: no report", metadata: ["msg": "\(id)", "from": "\(mailFrom)", "why": "\(why)"])
            if received != nil {
                log.append(DeliveryEvent(at: now, queueID: id, kind: .tested, detail: "for <\(testerAddress)>: no report sent (\(why))"))
                try await store.log(log)
            }
            return "checked; no report sent (\(why))"
        }
        let checks = await inbound.evaluate(message: bytes, clientAddress: client, helo: helo, mailFrom: mailFrom, store: store)
        if !senderVerified, let why = Self.unverified(checks, mailFrom: mailFrom) {
            logger.notice("mail tester: no report", metadata: ["msg": "\(id)", "from": "\(mailFrom)", "why": "\(why)"])
            if received != nil {
                log.append(DeliveryEvent(at: now, queueID: id, kind: .tested, detail: "for <\(testerAddress)>: no report sent (\(why))"))
                try await store.log(log)
            }
            return "checked; no report sent (\(why))"
        }
        let report = MessageReport(checks: checks, message: bytes)
        let score = String(format: "%.1f", report.score)
        var delivery = await SenderNotice.delivery(
            try reply(report: report, original: bytes, testerAddress: testerAddress, to: mailFrom, keys: keys, now: now), to: mailFrom,
            about: id, kind: .tested, sent: "for <\(testerAddress)>: report (score \(score)/10)",
            received: "mail tester report on \(id), from <\(testerAddress)>", logging: received != nil, store: store, now: now)
        delivery.log = log + delivery.log
        _ = try await store.deliver(delivery)
        logger.info("mail tester: report sent", metadata: ["msg": "\(id)", "to": "\(mailFrom)", "queue": "\(delivery.queueID)", "score": "\(score)"])
        return "checked; report sent to <\(mailFrom)> as \(delivery.queueID)"
    }

    /// Why the sender's address is not shown to be the sender's own (nil when SPF passes for it, or a DKIM signature
    /// of its domain or a parent domain passes).
    static func unverified(_ checks: CheckReport, mailFrom: String) -> String? {
        let domain = mailFrom.split(separator: "@").last.map { $0.lowercased() } ?? ""
        if checks.spf?.result == .pass { return nil }
        let signed = checks.dkim.contains { o in
            let d = o.domain.lowercased()
            return o.result == .pass && !d.isEmpty && (domain == d || domain.hasSuffix("." + d))
        }
        return signed ? nil : "sender not verified: neither SPF nor DKIM passes for \(domain)"
    }

    /// The reply: the report as text, then the header of what arrived (text/rfc822-headers, RFC 6522), DKIM-signed
    /// for the tester's domain when Tern has a key for it.
    func reply(report: MessageReport, original: [UInt8], testerAddress: String, to sender: String,
               keys: [String: [DKIMKey]], now: Date) throws -> [UInt8] {
        let header = original[..<RawHeader.end(original)]
        let fields = RawHeader.fields(header)
        let messageID = fields.first(named: "Message-ID")?.unfoldedValue
        let boundary = "=_tern_check_" + SessionID.make()
        let domain = testerAddress.split(separator: "@").last.map(String.init) ?? hostname
        var head = "From: Tern mail tester <\(testerAddress)>\r\n"
        head += "To: <\(sender)>\r\n"
        head += "Subject: Mail check: \(String(format: "%.1f", report.score))/10\r\n"
        head += "Date: \(TraceHeaders.rfc5322Date(now))\r\n"
        head += "Message-ID: <check.\(SessionID.make()).\(Int(now.timeIntervalSince1970))@\(domain)>\r\n"
        if let messageID, HeaderLint.isMessageID(messageID) {
            head += "In-Reply-To: \(messageID)\r\nReferences: \(messageID)\r\n"
        }
        head += "Auto-Submitted: auto-replied\r\n"
        head += "MIME-Version: 1.0\r\n"
        head += "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\r\n"
        var body = "--\(boundary)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        body += "This is what \(hostname) saw of your message to \(testerAddress).\r\n\r\n"
        body += report.render().replacingOccurrences(of: "\n", with: "\r\n")
        body += "\r\n--\(boundary)\r\nContent-Type: text/rfc822-headers\r\nContent-Description: the header as it arrived\r\n\r\n"
        var bytes = Array(head.utf8) + [13, 10] + Array(body.utf8)
        bytes += header.count > 256 * 1024 ? Array(header.prefix(256 * 1024)) + Array("\r\n[…]\r\n".utf8) : Array(header)
        bytes += Array("\r\n--\(boundary)--\r\n".utf8)
        if let signing = keys[domain.lowercased()], !signing.isEmpty {
            let end = RawHeader.end(bytes)
            var hasher = DKIMBodyHasher(canonicalization: .relaxed)
            bytes[end...].withUnsafeBytes { hasher.update($0) }
            bytes = try DKIMSigner.sign(headerFields: RawHeader.fields(bytes[..<end]), bodyHash: hasher.finalize(), keys: signing, time: now) + bytes
        }
        return bytes
    }
}
