import Foundation
import MailCore
import MailMessage
import Sieve

/// The messages a Sieve script makes Tern write (pure): vacation replies (RFC 5230 with RFC 3834's rules for automatic
/// responses) and the notice a rejected message's sender gets when the rejection could not be an SMTP reply (RFC 5429
/// §2.2, as an MDN: RFC 8098).
public enum SieveReplies {
    /// Why the sender gets no vacation reply, or nil when one may go: never to the null sender, to daemons and list
    /// addresses, for automatic or bulk mail or mail from a list (RFC 3834 §2, RFC 5230 §4.6), nor when none of the
    /// user's addresses is among the message's recipients in its header (§4.5), nor to the user.
    public static func vacationRefusal(fields: [(name: String, value: String)], sender: String, recipient: String, addresses: [String]) -> String? {
        guard !sender.isEmpty else { return "the sender is empty (a notice)" }
        let local = (sender.split(separator: "@").first.map(String.init) ?? sender).lowercased()
        if ["mailer-daemon", "listserv", "majordomo", "postmaster"].contains(local) || local.hasPrefix("owner-")
            || local.hasSuffix("-request") || local.hasSuffix("-owner") || local.hasSuffix("-bounces") {
            return "the sender is a mailing list or a daemon"
        }
        func value(_ name: String) -> String? { fields.first { $0.name.lowercased() == name }?.value.lowercased() }
        if let auto = value("auto-submitted"), auto.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) != "no" {
            return "the message was sent automatically (Auto-Submitted)"
        }
        if let precedence = value("precedence"), ["bulk", "list", "junk"].contains(precedence.trimmingCharacters(in: .whitespaces)) {
            return "the message is bulk mail (Precedence)"
        }
        if fields.contains(where: { $0.name.lowercased().hasPrefix("list-") }) { return "the message came from a mailing list" }
        let mine = Set(([recipient] + addresses).map { $0.lowercased() })
        if mine.contains(sender.lowercased()) { return "the sender is the user" }
        var named = false
        for f in fields where ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"].contains(f.name.lowercased()) {
            for case .mailbox(_, let l, let d?) in AddressList.parse(f.value) where mine.contains("\(l)@\(d)".lowercased()) { named = true }
        }
        return named ? nil : "the user is not named in To or Cc"
    }

    /// The key under which the store remembers that `sender` got `recipient`'s reply with this handle.
    public static func vacationKey(account: Int64, sender: String, handle: String) -> String {
        "vacation \(account) \(sender.lowercased()) \(hash(handle))"
    }

    /// The key under which the store remembers an account's duplicate-test id (RFC 7352).
    public static func duplicateKey(account: Int64, _ key: String) -> String {
        "duplicate \(account) \(hash(key)) \(key.utf8.count)"
    }

    /// FNV-1a, 64 bits: keys of bounded length whatever the handle or id holds.
    static func hash(_ s: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in s.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    /// The reply: From the user (or :from), to the sender, "Auto: " and the original subject (or :subject), linked
    /// to the original by In-Reply-To and References, marked Auto-Submitted: auto-replied (RFC 3834 §3.1.7).
    public static func vacation(_ v: SieveVacation, original fields: [(name: String, value: String)], sender: String, recipient: String,
                                hostname: String, id: String, now: Date) -> [UInt8] {
        func value(_ name: String) -> String? { fields.first { $0.name.lowercased() == name }?.value }
        let subject = v.subject ?? "Auto: " + (value("subject") ?? "")
        var head = "From: \(oneLine(v.from ?? "<\(recipient)>"))\r\nTo: <\(sender)>\r\nSubject: \(encoded(oneLine(subject)))\r\n"
            + "Date: \(TraceHeaders.rfc5322Date(now))\r\nMessage-ID: <\(id).\(Int(now.timeIntervalSince1970))@\(hostname)>\r\n"
        // A Message-ID that is no plausible msg-id (over 250 octets, or not ASCII) is not echoed: the fields would pass
        // the line limit, and nothing could thread by it anyway.
        if let messageID = value("message-id").map(oneLine), !messageID.isEmpty, messageID.utf8.count <= 250,
           messageID.utf8.allSatisfy({ $0 < 0x80 }) {
            head += "In-Reply-To: \(messageID)\r\n" + folded("References", references(value("references"), then: messageID))
        }
        head += "Auto-Submitted: auto-replied (vacation)\r\nMIME-Version: 1.0\r\n"
        let reason = crlf(v.reason)
        if v.mime { return Array((head + reason + (reason.hasSuffix("\r\n") ? "" : "\r\n")).utf8) }
        return Array((head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                       + base64Lines(Array(reason.utf8))).utf8)
    }

    /// RFC 5429 §2.2: the rejection as an MDN to the sender (the message was taken for other recipients, so the
    /// refusal could not be an SMTP reply).
    public static func rejection(reason: String, original fields: [(name: String, value: String)], sender: String, recipient: String,
                                 hostname: String, id: String, now: Date) -> [UInt8] {
        let subject = fields.first { $0.name.lowercased() == "subject" }?.value ?? ""
        let messageID = fields.first(where: { $0.name.lowercased() == "message-id" }).map { oneLine($0.value) }
        let boundary = "\(id).rejected"
        var text = "From: Mail Delivery System <MAILER-DAEMON@\(hostname)>\r\nTo: <\(sender)>\r\n"
            + "Subject: \(encoded(oneLine("Rejected: " + subject)))\r\nDate: \(TraceHeaders.rfc5322Date(now))\r\n"
            + "Message-ID: <\(id).\(Int(now.timeIntervalSince1970))@\(hostname)>\r\nAuto-Submitted: auto-replied (rejected)\r\n"
            + "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"\(boundary)\"\r\n\r\n"
        text += "--\(boundary)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64Lines(Array("Your message to <\(recipient)> was rejected by the recipient's filter:\r\n\r\n\(crlf(reason))\r\n".utf8))
        text += "--\(boundary)\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: \(hostname); Tern\r\n"
            + "Final-Recipient: rfc822; \(recipient)\r\n" + (messageID.map { "Original-Message-ID: \($0)\r\n" } ?? "")
            + "Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n--\(boundary)--\r\n"
        return Array(text.utf8)
    }

    /// RFC 5436: the notification a mailto: method asks for — From the user (or :from), to the URI's recipients, the
    /// URI's subject or the :message (or a default naming the message), marked Auto-Submitted: auto-notified. Nil when
    /// none may go: the triggering message was itself sent automatically (§2.7), or the URI is not usable.
    public static func notification(_ n: SieveNotify, original fields: [(name: String, value: String)], recipient: String, hostname: String,
                                    id: String, now: Date) -> (recipients: [String], bytes: [UInt8])? {
        guard let mailto = SieveMailto.parse(n.method) else { return nil }
        func value(_ name: String) -> String? { fields.first { $0.name.lowercased() == name }?.value }
        if let auto = value("auto-submitted")?.lowercased(), auto.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) != "no" {
            return nil
        }
        let about = "\(value("from").map { oneLine($0) } ?? "unknown sender"): \(value("subject").map { oneLine($0) } ?? "")"
        let subject = mailto.subject ?? n.message ?? "[SIEVE] \(about)"
        let importance = ["1": "1 (Highest)", "2": "3 (Normal)", "3": "5 (Lowest)"][n.importance] ?? "3 (Normal)"
        var head = "From: \(oneLine(n.from ?? "<\(recipient)>"))\r\n"
        if !mailto.to.isEmpty { head += "To: \(mailto.to.map { "<\($0)>" }.joined(separator: ", "))\r\n" }
        if !mailto.cc.isEmpty { head += "Cc: \(mailto.cc.map { "<\($0)>" }.joined(separator: ", "))\r\n" }
        head += "Subject: \(encoded(oneLine(subject)))\r\nDate: \(TraceHeaders.rfc5322Date(now))\r\n"
            + "Message-ID: <\(id).\(Int(now.timeIntervalSince1970))@\(hostname)>\r\nAuto-Submitted: auto-notified\r\n"
            + "X-Priority: \(importance)\r\nImportance: \(["1": "high", "3": "low"][n.importance] ?? "normal")\r\n"
        for h in mailto.headers { head += "\(h.name): \(encoded(oneLine(h.value)))\r\n" }
        let body = mailto.body ?? n.message ?? "A message arrived for <\(recipient)>: \(about)"
        let text = head + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64Lines(Array(crlf(body).utf8))
        return (mailto.to + mailto.cc + mailto.bcc, Array(text.utf8))
    }

    /// The original's References and its Message-ID, whole ids only: of a long list the first and as many of the
    /// last as fit in about 900 characters (RFC 5322 §3.6.4 lets a reply trim the middle).
    static func references(_ original: String?, then messageID: String) -> String {
        let ids = (original ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }).map(String.init)
            .filter { $0.utf8.count <= 250 && $0.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } }
        var kept: [String] = []
        var length = messageID.utf8.count
        for id in ids.dropFirst().reversed() where length + id.utf8.count + 1 <= 900 {
            kept.insert(id, at: 0)
            length += id.utf8.count + 1
        }
        if let first = ids.first, length + first.utf8.count + 1 <= 1000 { kept.insert(first, at: 0) }
        return (kept + [messageID]).joined(separator: " ")
    }

    /// A header field folded at its spaces (RFC 5322 §2.2.3) so that no line passes 78 characters unless one word
    /// does (and none passes 998: each word comes from `oneLine`).
    static func folded(_ name: String, _ value: String) -> String {
        var out = "\(name):", line = out.utf8.count
        for word in value.split(separator: " ", omittingEmptySubsequences: true) {
            if line + 1 + word.utf8.count > 78 && line > name.utf8.count + 1 {
                out += "\r\n"
                line = 0
            }
            out += " " + word
            line += 1 + word.utf8.count
        }
        return out + "\r\n"
    }

    public static func oneLine(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? " " : Character($0) }.prefix(900))
    }

    static func crlf(_ s: String) -> String {
        s.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
    }

    /// A header value as RFC 2047 words when it is not ASCII.
    public static func encoded(_ s: String) -> String {
        guard !s.allSatisfy(\.isASCII) else { return s }
        var words: [String] = [], piece: [UInt8] = []
        for c in s {
            if piece.count + c.utf8.count > 45 { words.append("=?UTF-8?B?\(Data(piece).base64EncodedString())?="); piece = [] }
            piece += Array(c.utf8)
        }
        if !piece.isEmpty { words.append("=?UTF-8?B?\(Data(piece).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    static func base64Lines(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n"
    }
}
