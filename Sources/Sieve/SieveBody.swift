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
        func visit(_ part: MIMEPart) {
            if !part.children.isEmpty {
                part.children.forEach(visit)
                return
            }
            if let inner = part.message.first {
                visit(inner)
                return
            }
            let type = part.contentType.type.lowercased(), full = type + "/" + part.contentType.subtype.lowercased()
            guard wanted.contains(where: { $0.isEmpty || $0 == type || $0 == full }) else { return }
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
}
