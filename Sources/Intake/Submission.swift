
import DKIM
import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import Synchronization

/// Every domain's DKIM keys, read from the store and kept for a minute (keys change rarely; `tern dkim generate`
/// takes effect within that time).
public final class DKIMKeyring: Sendable {
    public let store: any MailStore
    public let logger: Logger
    private let cache = Mutex<(keys: [String: [DKIMKey]], loaded: ContinuousClock.Instant)?>(nil)
    public static let lifetime: TimeInterval = 60

    public init(store: any MailStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The keys to sign with, by domain.
    public func current() async -> [String: [DKIMKey]] {
        if let c = cache.withLock({ $0 }), c.loaded.duration(to: .now) < .seconds(Self.lifetime) { return c.keys }
        let keys: [String: [DKIMKey]]
        do {
            let logger = self.logger
            keys = DKIMKeyring.signingKeys(try await store.dkimKeys(domain: nil)) { record, error in
                logger.error("unusable DKIM key", metadata: ["domain": "\(record.domain)", "selector": "\(record.selector)", "error": "\(error)"])
            }
        } catch {
            logger.error("cannot read DKIM keys", metadata: ["error": "\(error)"])
            return cache.withLock { $0?.keys } ?? [:]
        }
        cache.withLock { $0 = (keys, .now) }
        return keys
    }

    /// The signing keys among stored ones (given newest first per domain): the newest of each algorithm, RSA first so
    /// that verifiers that know only RSA find a signature they can check first. `unusable` hears of keys that do not load.
    public static func signingKeys(_ records: [DKIMKeyRecord],
                                   unusable: (DKIMKeyRecord, Error) throws -> Void) rethrows -> [String: [DKIMKey]] {
        var keys: [String: [DKIMKey]] = [:]
        for record in records {
            guard let algorithm = DKIMKey.Algorithm(rawValue: record.algorithm),
                  !(keys[record.domain] ?? []).contains(where: { $0.algorithm == algorithm }) else { continue }
            do {
                keys[record.domain, default: []].append(try DKIMKey(domain: record.domain, selector: record.selector, algorithm: algorithm,
                                                                    privateKey: record.privateKey))
            } catch {
                try unusable(record, error)
            }
        }
        for d in keys.keys { keys[d]!.sort { $0.algorithm == .rsaSHA256 && $1.algorithm != .rsaSHA256 } }
        return keys
    }
}

/// What a submitted message gets before it is stored and queued (RFC 6409 §8): Message-ID and Date when missing,
/// then DKIM signatures of the author's domain over the whole result.
public enum SubmissionPreparation {
    /// Header blocks longer than this are not parsed for signing (the message is sent unsigned).
    public static let maxHeader = 1 << 20

    /// Runs blocking work (reads a spool file, signs): call it off the event loop.
    public static func finish(_ sink: MessageSink, keys: [String: [DKIMKey]], hostname: String, queueID: String, mailFrom: String,
                       now: Date, logger: Logger) throws -> (content: MessageContent, messageID: String?) {
        let (prefix, messageID) = try self.prefix(sink, keys: keys, hostname: hostname, queueID: queueID, mailFrom: mailFrom, now: now,
                                                  logger: logger)
        return (try sink.finish(prepending: prefix), messageID)
    }

    /// What submission puts in front of the message (DKIM signatures, then a Message-ID and Date when missing), and the
    /// message's Message-ID; the sink is read, not finished.
    public static func prefix(_ sink: MessageSink, keys: [String: [DKIMKey]], hostname: String, queueID: String, mailFrom: String,
                       now: Date, logger: Logger) throws -> (prefix: [UInt8], messageID: String?) {
        let head = try sink.head(max: maxHeader)
        let headerEnd = RawHeader.end(head)
        var fields = RawHeader.fields(head[..<headerEnd])
        func has(_ name: String) -> Bool { fields.contains { $0.name.caseInsensitiveCompare(name) == .orderedSame } }
        var added = ""
        if !has("Message-ID") {
            added += "Message-ID: <\(queueID).\(Int(now.timeIntervalSince1970))@\(hostname)>\r\n"
        }
        if !has("Date") { added += "Date: \(TraceHeaders.rfc5322Date(now))\r\n" }
        let addedBytes = Array(added.utf8)
        fields = RawHeader.fields(addedBytes[...]) + fields

        // d= is the author's domain (From:) so that DMARC aligns; else the envelope sender's.
        var signing: [DKIMKey] = []
        let from = fields.first { $0.name.caseInsensitiveCompare("From") == .orderedSame }
        let fromDomain = from.flatMap { f -> String? in
            let value = String(decoding: f.raw, as: UTF8.self).drop { $0 != ":" }.dropFirst()
            for item in AddressList.parse(String(value)) {
                if case .mailbox(_, _, let domain?) = item { return domain.lowercased() }
            }
            return nil
        }
        let envelopeDomain = mailFrom.split(separator: "@").last.map { $0.lowercased() }
        for d in [fromDomain, envelopeDomain].compactMap({ $0 }) where signing.isEmpty { signing = keys[d] ?? [] }

        var prefix: [UInt8] = []
        // A header block that does not end within `maxHeader` is not signed (nothing sane is that long).
        if !signing.isEmpty && (headerEnd < head.count || head.count < maxHeader) {
            var hasher = DKIMBodyHasher(canonicalization: .relaxed)
            try sink.forEachChunk(from: headerEnd) { hasher.update($0) }
            prefix = try DKIMSigner.sign(headerFields: fields, bodyHash: hasher.finalize(), keys: signing, time: now)
        } else if signing.isEmpty {
            logger.debug("no DKIM key for the sender's domain", metadata: ["from": "\(fromDomain ?? "-")", "mail_from": "\(mailFrom)"])
        }
        return (prefix + addedBytes, DeliveryLogEvents.messageID(fields))
    }
}
