import Foundation
import MailMessage
import MailStore

/// The delivery-log lines the receiving side writes (the queue writes its own with each attempt).
enum DeliveryLogEvents {
    /// The Message-ID field's value without angle brackets and spaces, when the message has one.
    static func messageID(_ fields: [RawHeaderField]) -> String? {
        guard let field = fields.first(where: { $0.name.caseInsensitiveCompare("Message-ID") == .orderedSame }) else { return nil }
        let value = String(decoding: field.raw.drop { $0 != 58 }.dropFirst(), as: UTF8.self)
            .filter { !$0.isWhitespace && $0 != "<" && $0 != ">" }
        return value.isEmpty ? nil : String(value.prefix(500))
    }

    static func messageID(head: [UInt8]) -> String? {
        messageID(RawHeader.fields(head[..<RawHeader.end(head)]))
    }

    /// received, then checked (when the checks ran), then stored (per local recipient) and queued (remote ones).
    static func receipt(id: String, messageID: String?, received: String, checked: String?, local: [String], remote: [String],
                        junk: Bool, related: String? = nil, at: Date = Date()) -> [DeliveryEvent] {
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
