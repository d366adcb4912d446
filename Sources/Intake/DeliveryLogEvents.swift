
import Foundation
import MailCore
import MailMessage
import MailStore

/// The delivery-log lines the receiving side writes (the queue writes its own with each attempt).
public enum DeliveryLogEvents {
    /// The Message-ID field's value without angle brackets and spaces, when the message has one.
    public static func messageID(_ fields: [RawHeaderField]) -> String? {
        guard let value = fields.first(named: "Message-ID")?.unfoldedValue.filter({ !$0.isWhitespace && $0 != "<" && $0 != ">" })
        else { return nil }
        return value.isEmpty ? nil : String(value.prefix(500))
    }

    /// The same from the start of a message, found by one pass over the header's lines (no field list is built: this
    /// runs for every message received).
    public static func messageID(head: [UInt8]) -> String? {
        let name = Array("message-id:".utf8)
        var i = 0
        while i < head.count {
            // `i` is at the start of a line.
            if head[i] == 13 || head[i] == 10 { return nil }   // the empty line: end of the header
            var matched = head.count - i > name.count
            if matched {
                for k in 0..<name.count where head[i + k] | (head[i + k] >= 65 && head[i + k] <= 90 ? 0x20 : 0) != name[k] {
                    matched = false
                    break
                }
            }
            var end = i
            while end < head.count && head[end] != 10 { end += 1 }
            // Continuation lines (folded values) start with a space or a tab.
            while matched, end + 1 < head.count, head[end + 1] == 32 || head[end + 1] == 9 {
                end += 1
                while end < head.count && head[end] != 10 { end += 1 }
            }
            if matched {
                let value = head[(i + name.count)..<end].filter { $0 > 32 && $0 != 60 && $0 != 62 }
                return value.isEmpty ? nil : String(decoding: value.prefix(500), as: UTF8.self)
            }
            i = end + 1
        }
        return nil
    }

    /// received, then checked (when the checks ran), then stored (per local recipient) and queued (remote ones).
    public static func receipt(id: String, messageID: String?, received: String, checked: String?, local: [String], remote: [String],
                        junk: Bool, related: String? = nil, at: Date) -> [DeliveryEvent] {
        var events = [DeliveryEvent(at: at, queueID: id, messageID: messageID, kind: .received, detail: received, related: related)]
        if let checked { events.append(DeliveryEvent(at: at, queueID: id, kind: .checked, detail: checked)) }
        if !local.isEmpty {
            events.append(DeliveryEvent(at: at, queueID: id, kind: .stored,
                                        detail: local.map { "<\($0)>" }.joined(separator: ", ") + (junk ? " in Junk" : " in INBOX")))
        }
        if !remote.isEmpty {
            events.append(DeliveryEvent(at: at, queueID: id, kind: .queued,
                                        detail: "for " + remote.map { "<\($0)>" }.joined(separator: ", ")))
        }
        return events
    }
}

/// A message this server writes to a sender about one of theirs (a bounce, a delay notice, a tester report): stored
/// with an empty Return-Path when the sender has a mailbox here, else queued, with a null MAIL FROM either way
/// (RFC 3464 §2, RFC 3834 §3.3), under a queue id of its own that the delivery log links to the original.
public enum SenderNotice {
    /// `kind` and `sent` make the original's log line ("`sent` sent to <sender> as QUEUEID"); `received` the notice's own.
    public static func delivery(_ bytes: [UInt8], to sender: String, about original: String, kind: DeliveryEvent.Kind, sent: String,
                         received: String, logging: Bool, store: any MailStore, now: Date) async -> Delivery {
        let envelope = StoredEnvelope(mailFrom: "", recipients: [.init(address: sender)])
        var targets: [DeliveryTarget] = []
        var remote: [StoredEnvelope.Recipient] = []
        if let address = try? EmailAddress.parse(sender), case .local(let accounts)? = try? await store.resolve(address) {
            targets = accounts.map { DeliveryTarget(account: $0) }
        } else {
            remote = envelope.recipients
        }
        // Return-Path is the final delivery's to add (RFC 5321 §4.4): here only when the notice stays on this server.
        let returnPath = targets.isEmpty ? [] : Array(TraceHeaders.returnPath("").utf8)
        let queueID = SessionID.make()
        var log: [DeliveryEvent] = []
        if logging {
            log = [DeliveryEvent(at: now, queueID: original, kind: kind, detail: "\(sent) sent to <\(sender)> as \(queueID)")]
                + DeliveryLogEvents.receipt(id: queueID, messageID: nil, received: received, checked: nil,
                                            local: targets.isEmpty ? [] : [sender], remote: remote.map(\.address), junk: false,
                                            related: original, at: now)
        }
        return Delivery(content: .inline(returnPath + bytes), envelope: envelope, targets: targets,
                        internalDate: now, remoteRecipients: remote, queueID: queueID, log: log)
    }
}
