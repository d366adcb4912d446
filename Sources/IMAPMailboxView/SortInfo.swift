import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailMessage
import MailStore

/// What SORT and THREAD need to know of a message (RFC 5256).
public struct SortInfo {
    public var seq: Int
    public var message: StoredMessage
    public var subject: String
    public var sentDate: Date
    public var from: String
    public var to: String
    public var cc: String
    public var displayFrom: String
    public var displayTo: String
    public var messageID: String?
    public var references: [String]

    /// What SORT (RFC 5256, RFC 5957's DISPLAY) and THREAD read of a message: from its header fields.
    public init(seq: Int, message: StoredMessage, header parts: MessageParts) {
        func firstMailbox(_ field: String) -> (mailbox: String, display: String) {
            for item in parts.values(field).flatMap({ AddressList.parse($0) }) {
                if case .mailbox(let name, let local, let domain) = item {
                    let addr = domain.map { "\(local)@\($0)" } ?? local
                    return (local.lowercased(), EncodedWords.decode(name ?? addr).lowercased())
                }
            }
            return ("", "")
        }
        let from = firstMailbox("From"), to = firstMailbox("To"), cc = firstMailbox("Cc")
        let ids = { (text: String?) -> [String] in
            guard let text else { return [] }
            return text.split(separator: "<").compactMap { piece in
                guard let close = piece.firstIndex(of: ">") else { return nil }
                return "<" + piece[..<close] + ">"
            }
        }
        var references = ids(parts.value("References"))
        if references.isEmpty, let first = ids(parts.value("In-Reply-To")).first { references = [first] }
        self.init(seq: seq, message: message, subject: BaseSubject.extract(parts.value("Subject") ?? "").lowercased(),
                  sentDate: parts.value("Date").flatMap(RFC5322Date.parse) ?? message.internalDate, from: from.mailbox, to: to.mailbox,
                  cc: cc.mailbox, displayFrom: from.display, displayTo: to.display, messageID: ids(parts.value("Message-ID")).first,
                  references: references)
    }

    public init(seq: Int, message: StoredMessage, subject: String, sentDate: Date, from: String, to: String, cc: String,
                displayFrom: String, displayTo: String, messageID: String?, references: [String]) {
        self.seq = seq
        self.message = message
        self.subject = subject
        self.sentDate = sentDate
        self.from = from
        self.to = to
        self.cc = cc
        self.displayFrom = displayFrom
        self.displayTo = displayTo
        self.messageID = messageID
        self.references = references
    }
}

public enum BaseSubject {
    /// RFC 5256 §2.1: the subject without Re:/Fwd: prefixes, [blob]s and (fwd) trailers, whitespace collapsed.
    public static func extract(_ raw: String) -> String {
        var s = EncodedWords.decode(raw).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }).joined(separator: " ")
        var changed = true
        while changed {
            changed = false
            while s.lowercased().hasSuffix("(fwd)") {
                s = String(s.dropLast(5)).trimmingCharacters(in: .whitespaces)
                changed = true
            }
            var inner = true
            while inner {
                inner = false
                // subj-leader: *(subj-blob / subj-refwd)
                let lower = s.lowercased()
                for prefix in ["re", "fwd", "fw"] where lower.hasPrefix(prefix) {
                    var rest = s.dropFirst(prefix.count).drop { $0 == " " || $0 == "\t" }
                    if rest.first == "[", let close = rest.firstIndex(of: "]") { rest = rest[rest.index(after: close)...] }
                    if rest.first == ":" {
                        s = String(rest.dropFirst()).trimmingCharacters(in: .whitespaces)
                        inner = true
                        changed = true
                        break
                    }
                }
                if !inner, s.first == "[", let close = s.firstIndex(of: "]") {
                    let rest = String(s[s.index(after: close)...]).trimmingCharacters(in: .whitespaces)
                    if !rest.isEmpty { s = rest; inner = true; changed = true }
                }
            }
            if s.lowercased().hasPrefix("[fwd:") && s.hasSuffix("]") {
                s = String(s.dropFirst(5).dropLast()).trimmingCharacters(in: .whitespaces)
                changed = true
            }
        }
        return s
    }
}
