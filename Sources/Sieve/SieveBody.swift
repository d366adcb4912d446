import SieveLanguage
import MailMessage

/// The body test's view of a message (RFC 5173): the raw body, or the decoded text of the parts of the content types
/// asked for.
enum SieveBody {
    /// `raw`: the body as it is, undecoded. Else each leaf part whose type is one of `types` ("text" matches every
    /// text/ subtype, "" every type), transfer-decoded and, for text, charset-decoded. No bytes known: nothing.
    static func texts(_ bytes: [UInt8]?, raw: Bool, types: [String]?) -> [String] {
        guard let bytes else { return [] }
        if raw || types == nil {
            let start = RawHeader.end(bytes)
            var body = bytes[start...]
            // The empty line that ends the header is not part of the body.
            if body.starts(with: [13, 10]) { body = body.dropFirst(2) } else if body.first == 10 { body = body.dropFirst() }
            return [String(decoding: body, as: UTF8.self)]
        }
        let wanted = (types ?? []).map { $0.lowercased() }
        var out: [String] = []
        func asked(_ part: MIMEPart) -> Bool {
            let type = part.contentType.type.lowercased(), full = type + "/" + part.contentType.subtype.lowercased()
            return wanted.contains(where: { $0.isEmpty || $0 == type || $0 == full })
        }
        func visit(_ part: MIMEPart) {
            if !part.children.isEmpty {
                // RFC 5173 §5.2: a multipart's own text is its prologue and epilogue.
                if asked(part) { out += containerText(bytes, part) }
                part.children.forEach(visit)
                return
            }
            if let inner = part.message.first {
                // ... and a message/rfc822 part's is the header of the message in it.
                if asked(part) { out.append(String(decoding: bytes[inner.headerStart..<inner.bodyStart], as: UTF8.self)) }
                visit(inner)
                return
            }
            let type = part.contentType.type.lowercased()
            guard asked(part) else { return }
            let decoded = TransferEncoding.decode(bytes[part.bodyStart..<part.end], encoding: part.transferEncoding) ?? Array(bytes[part.bodyStart..<part.end])
            if type == "text" {
                let charset = part.contentType.parameter("charset")?.lowercased() ?? "us-ascii"
                out.append(EncodedWords.decodeCharset(decoded, charset) ?? String(decoding: decoded, as: UTF8.self))
            } else {
                out.append(String(decoding: decoded, as: UTF8.self))
            }
        }
        visit(MIMEParser.parse(bytes))
        return out
    }

    /// A multipart's prologue (before its first delimiter) and epilogue (after its closing one).
    static func containerText(_ bytes: [UInt8], _ part: MIMEPart) -> [String] {
        guard let boundary = part.contentType.parameter("boundary") else { return [] }
        let delimiter = Array("--\(boundary)".utf8)
        var lineStarts: [Int] = [part.bodyStart]
        var i = part.bodyStart
        while i < part.end { if bytes[i] == 10 { lineStarts.append(i + 1) }; i += 1 }
        let delimiters = lineStarts.filter { $0 + delimiter.count <= part.end && bytes[$0..<($0 + delimiter.count)].elementsEqual(delimiter) }
        guard let first = delimiters.first, let last = delimiters.last else { return [] }
        var out = [String(decoding: bytes[part.bodyStart..<first], as: UTF8.self)]
        let closing = last + delimiter.count
        if closing + 2 <= part.end, bytes[closing] == 45, bytes[closing + 1] == 45 {
            var end = closing + 2
            while end < part.end && bytes[end] != 10 { end += 1 }
            out.append(String(decoding: bytes[min(end + 1, part.end)..<part.end], as: UTF8.self))
        }
        return out
    }
}
