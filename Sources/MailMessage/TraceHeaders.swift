import Foundation
import MailCore

/// Trace header fields (RFC 5321 §4.4, RFC 5322 §3.6.7).
public enum TraceHeaders {
    /// `with` protocol names (RFC 3848, RFC 6531 §3.7.3).
    public static func protocolName(extended: Bool, tls: Bool, authenticated: Bool, utf8: Bool) -> String {
        guard extended else { return "SMTP" }
        var name = utf8 ? "UTF8SMTP" : "ESMTP"
        if tls { name += "S" }
        if authenticated { name += "A" }
        return name
    }

    /// `Received: from <helo> (<rdns> [<ip>]) by <host> (Tern) with <proto> id <id> [for <rcpt>]; <date>`
    /// folded to fit 78 columns. `for` is given only for a single recipient, so that Bcc recipients are not revealed.
    public static func received(heloName: String, clientAddress: String, reverseName: String?, hostname: String,
                                protocolName: String, id: String, tls: String?, singleRecipient: String?, date: Date) -> String {
        let literal = clientAddress.contains(":") ? "IPv6:\(clientAddress)" : clientAddress
        var from = "from \(sanitize(heloName)) ("
        if let reverseName { from += "\(reverseName) " }
        from += "[\(literal)])"
        var lines = ["Received: \(from)", "\tby \(hostname) (Tern) with \(protocolName) id \(id)"]
        if let tls { lines.append("\t(\(tls))") }
        if let singleRecipient { lines.append("\tfor <\(sanitize(singleRecipient))>") }
        lines[lines.count - 1] += ";"
        lines.append("\t" + rfc5322Date(date))
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// `Return-Path: <reverse-path>` (RFC 5321 §4.4), added by the final delivery.
    public static func returnPath(_ reversePath: String) -> String {
        "Return-Path: <\(sanitize(reversePath))>\r\n"
    }

    /// RFC 5322 §3.3 date-time in UTC, such as `Tue, 24 Nov 2026 02:18:00 +0000`. Computed directly from the
    /// Unix time (civil-from-days), without a Calendar: it runs for every message received.
    public static func rfc5322Date(_ date: Date) -> String {
        let c = CivilTime(unixSeconds: Int(date.timeIntervalSince1970.rounded(.down)))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(CivilTime.weekdayNames[c.weekday]), \(c.day) \(CivilTime.monthNames[c.month - 1]) \(c.year) "
            + "\(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }

    /// Keeps client-supplied text from breaking the header: no CR, LF or other control characters.
    static func sanitize(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(255)))
    }
}
