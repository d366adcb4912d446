import Foundation

/// Delivery status notifications (RFC 3464): the bounce a sender gets when a recipient failed for good, and the
/// optional "still trying" notice. Pure: builds the message bytes from what the queue knows.
public enum DeliveryReport {
    public enum Action: String, Sendable {
        case failed, delayed, delivered
        /// Handed to a next hop that does not offer DSN (RFC 3461 §5.2.3): no further notice will come.
        case relayed

        var isSuccess: Bool { self == .delivered || self == .relayed }
    }

    public struct RecipientStatus: Sendable {
        public var address: String
        public var originalRecipient: String?
        public var action: Action
        /// The enhanced status code (RFC 3463), such as `5.1.1`.
        public var status: String
        /// The remote server's reply (`550 5.1.1 User unknown`), or why none could be reached.
        public var diagnostic: String
        /// The remote MTA, when one answered.
        public var remoteMTA: String?
        public var lastAttempt: Date?
        public var willRetryUntil: Date?
        public init(address: String, originalRecipient: String? = nil, action: Action, status: String, diagnostic: String,
                    remoteMTA: String? = nil, lastAttempt: Date? = nil, willRetryUntil: Date? = nil) {
            self.address = address
            self.originalRecipient = originalRecipient
            self.action = action
            self.status = status
            self.diagnostic = diagnostic
            self.remoteMTA = remoteMTA
            self.lastAttempt = lastAttempt
            self.willRetryUntil = willRetryUntil
        }
    }

    /// Original messages up to this size are returned whole (unless RET=HDRS); larger ones by their header only.
    public static let returnFullLimit = 128 * 1024

    /// The enhanced status code in a reply text (`550 5.1.1 …` → `5.1.1`), or a generic one for its class.
    public static func status(fromReply reply: String, permanent: Bool) -> String {
        let words = reply.split(separator: " ", maxSplits: 2)
        if words.count >= 2 {
            let parts = words[1].split(separator: ".")
            if parts.count == 3, let c = parts.first, c == "2" || c == "4" || c == "5", parts.allSatisfy({ $0.allSatisfy(\.isNumber) && !$0.isEmpty }) {
                return String(words[1])
            }
        }
        return permanent ? "5.0.0" : "4.0.0"
    }

    /// The whole notification message (CRLF line ends).
    /// - Parameters:
    ///   - original: the original message as queued (its header is returned, or all of it).
    ///   - returnFull: RET=FULL (true) or RET=HDRS (false) was asked for; nil: no RET.
    public static func make(reportingMTA: String, postmaster: String, to sender: String, recipients: [RecipientStatus], original: [UInt8],
                            queueID: String, envelopeID: String?, arrival: Date, returnFull: Bool?, now: Date) -> [UInt8] {
        let boundary = "\(queueID).\(Int(now.timeIntervalSince1970))/\(reportingMTA)"
        let delayed = recipients.allSatisfy { $0.action == .delayed }
        let success = recipients.allSatisfy { $0.action.isSuccess }
        let subject = delayed ? "Delayed Mail (still being retried)"
            : success ? "Successful Mail Delivery Report"
            : recipients.contains(where: \.action.isSuccess) ? "Delivery Status Notification" : "Undelivered Mail Returned to Sender"
        var out = ""
        out += "From: Mail Delivery System <\(postmaster)>\r\n"
        out += "To: <\(sender)>\r\n"
        out += "Subject: \(subject)\r\n"
        out += "Date: \(TraceHeaders.rfc5322Date(now))\r\n"
        out += "Message-ID: <\(queueID).\(Int(now.timeIntervalSince1970)).dsn@\(reportingMTA)>\r\n"
        out += "Auto-Submitted: auto-replied\r\n"
        out += "MIME-Version: 1.0\r\n"
        out += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"\(boundary)\"\r\n"
        out += "\r\nThis is a MIME-encapsulated message.\r\n\r\n"

        // 1: for people
        out += "--\(boundary)\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n"
        out += "Content-Transfer-Encoding: 8bit\r\n\r\n"
        out += "This is the mail system at host \(reportingMTA).\r\n\r\n"
        if delayed {
            out += "Your message could not be delivered yet to the recipients below. It is still in the queue, and delivery\r\n"
            out += "will be tried again; you do not need to send it again. You will be told if it finally fails.\r\n\r\n"
        } else if success {
            out += "Your message was delivered as you asked to be told (NOTIFY=SUCCESS). \"delivered\": it is in the\r\n"
            out += "recipient's mailbox; \"relayed\": it was handed to a server that sends no such notices.\r\n\r\n"
        } else {
            out += "Your message could not be delivered to one or more recipients. It is attached below.\r\n"
            out += "The reason for each recipient follows; the remote server's own words are quoted.\r\n\r\n"
        }
        for r in recipients {
            let via = r.remoteMTA.map { "host \($0) said: " } ?? ""
            let action = success || !r.action.isSuccess ? "" : "\(r.action.rawValue): "
            out += "<\(sanitize(r.address))>: \(action)\(via)\(sanitize(r.diagnostic))\r\n"
            if let until = r.willRetryUntil { out += "    (will keep trying until \(TraceHeaders.rfc5322Date(until)))\r\n" }
        }
        out += "\r\n"

        // 2: for programs (RFC 3464 §2.2, §2.3)
        out += "--\(boundary)\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        out += "Reporting-MTA: dns; \(reportingMTA)\r\n"
        out += "X-Tern-Queue-ID: \(queueID)\r\n"
        if let envelopeID { out += "Original-Envelope-Id: \(sanitize(envelopeID))\r\n" }
        out += "Arrival-Date: \(TraceHeaders.rfc5322Date(arrival))\r\n"
        for r in recipients {
            out += "\r\n"
            out += "Final-Recipient: rfc822; \(sanitize(r.address))\r\n"
            if let o = r.originalRecipient { out += "Original-Recipient: \(o.contains(";") ? sanitize(o) : "rfc822; " + sanitize(o))\r\n" }
            out += "Action: \(r.action.rawValue)\r\n"
            out += "Status: \(r.status)\r\n"
            if let mta = r.remoteMTA { out += "Remote-MTA: dns; \(sanitize(mta))\r\n" }
            out += "Diagnostic-Code: smtp; \(sanitize(r.diagnostic))\r\n"
            if let t = r.lastAttempt { out += "Last-Attempt-Date: \(TraceHeaders.rfc5322Date(t))\r\n" }
            if let t = r.willRetryUntil { out += "Will-Retry-Until: \(TraceHeaders.rfc5322Date(t))\r\n" }
        }
        out += "\r\n"

        // 3: the original (RFC 3462 text/rfc822-headers, or message/rfc822)
        var bytes = Array(out.utf8)
        let headerEnd = RawHeader.end(original)
        // RFC 3461 §4.3: RET=FULL asks for the whole message in any notice, RET=HDRS for the header; without RET, a
        // failure returns the message (up to returnFullLimit) and a success notice only the header.
        let full = original.count <= returnFullLimit && !delayed && (returnFull ?? !success)
        if full {
            let what = success ? "Delivered Message" : "Undelivered Message"
            bytes += Array("--\(boundary)\r\nContent-Description: \(what)\r\nContent-Type: message/rfc822\r\n\r\n".utf8)
            bytes += original
            if original.last != 10 { bytes += [13, 10] }
        } else {
            bytes += Array("--\(boundary)\r\nContent-Description: Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n".utf8)
            bytes += original[..<headerEnd]
            if headerEnd > 0 && original[headerEnd - 1] != 10 { bytes += [13, 10] }
        }
        bytes += Array("\r\n--\(boundary)--\r\n".utf8)
        return bytes
    }

    static func sanitize(_ s: String) -> String { TraceHeaders.sanitize(s) }
}
