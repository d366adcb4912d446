/// The opening words of a message's text, as a mail client shows under the subject (IMAP PREVIEW, RFC 8970 §3:
/// at most 256 characters, no markup, whitespace collapsed).
public enum MessagePreview {
    public static let maxCharacters = 256

    /// The preview of the first text part that is not an attachment (text/plain preferred over text/html within an
    /// alternative); an empty string when the message has no text.
    public static func text(_ bytes: [UInt8], _ root: MIMEPart) -> String {
        guard let part = firstText(root) else { return "" }
        let body = bytes[part.bodyStart..<part.end]
        let decoded = TransferEncoding.decode(body, encoding: part.transferEncoding) ?? Array(body)
        let charset = part.contentType.parameter("charset")?.lowercased() ?? "us-ascii"
        var text = EncodedWords.decodeCharset(decoded, charset) ?? String(decoding: decoded, as: UTF8.self)
        if part.contentType.subtype == "html" { text = stripHTML(text) }
        return collapse(text)
    }

    static func isAttachment(_ part: MIMEPart) -> Bool {
        part.header("Content-Disposition").map { $0.trimmingWhitespace().lowercased().hasPrefix("attachment") } ?? false
    }

    static func firstText(_ part: MIMEPart) -> MIMEPart? {
        if part.contentType.isMultipart {
            if part.contentType.subtype == "alternative",
               let plain = part.children.first(where: { $0.contentType.type == "text" && $0.contentType.subtype == "plain" && !isAttachment($0) }) {
                return plain
            }
            for child in part.children { if let t = firstText(child) { return t } }
            return nil
        }
        if part.contentType.isMessage { return nil }   // an attached message is not this message's text
        guard part.contentType.type == "text", !isAttachment(part),
              part.contentType.subtype == "plain" || part.contentType.subtype == "html" else { return nil }
        return part
    }

    /// Text without tags, comments, `<style>`/`<script>` contents, and with the common entities decoded.
    static func stripHTML(_ html: String) -> String {
        var out = ""
        var rest = Substring(html)
        while let open = rest.firstIndex(of: "<") {
            out += rest[..<open]
            let tail = rest[open...]
            let lower = tail.prefix(8).lowercased()
            if tail.hasPrefix("<!--") {
                rest = tail.range(of: "-->").map { tail[$0.upperBound...] } ?? ""
            } else if lower.hasPrefix("<style") || lower.hasPrefix("<script") {
                let close = lower.hasPrefix("<style") ? "</style" : "</script"
                if let end = tail.range(of: close, options: .caseInsensitive),
                   let gt = tail[end.upperBound...].firstIndex(of: ">") {
                    rest = tail[tail.index(after: gt)...]
                } else {
                    rest = ""
                }
            } else if let gt = tail.firstIndex(of: ">") {
                out += " "
                rest = tail[tail.index(after: gt)...]
            } else {
                rest = ""
            }
        }
        out += rest
        for (entity, value) in [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'"), ("&amp;", "&")] {
            out = out.replacingOccurrences(of: entity, with: value)
        }
        return out
    }

    /// Runs of whitespace and control characters become one space; at most `maxCharacters` characters.
    static func collapse(_ text: String) -> String {
        var out = ""
        var pendingSpace = false
        var count = 0
        for ch in text {
            if ch.isWhitespace || ch.unicodeScalars.allSatisfy({ $0.properties.generalCategory == .control }) {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace {
                guard count + 1 < maxCharacters else { break }
                out.append(" ")
                count += 1
                pendingSpace = false
            }
            guard count < maxCharacters else { break }
            out.append(ch)
            count += 1
        }
        return out
    }
}
