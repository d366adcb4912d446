import IMAPCodec
import MailMessage

/// ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) and body-part addressing for `BODY[1.2.TEXT]`, computed from
/// the MIME tree of a message.
enum IMAPBodyStructure {
    /// `nstring`: NIL, a quoted string, or a literal when the text cannot be quoted.
    static func nstring(_ s: String?) -> String {
        guard let s else { return "NIL" }
        return string(s)
    }

    static func string(_ s: String) -> String {
        let bytes = Array(s.utf8)
        if bytes.count < 1024 && bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{\(bytes.count)}\r\n" + s
    }

    static func envelope(_ part: MIMEPart) -> String {
        func addresses(_ field: String) -> String? {
            let values = part.headers(field)
            guard !values.isEmpty else { return nil }
            let items = values.flatMap { AddressList.parseRouted($0) }
            guard !items.isEmpty else { return nil }
            return "(" + items.map { item, route -> String in
                switch item {
                case .mailbox(let name, let local, let domain):
                    // RFC 3501 §7.4.2: name, source route (adl), mailbox, host.
                    return "(\(nstring(name)) \(nstring(route)) \(nstring(local)) \(nstring(domain)))"
                case .groupStart(let name):
                    return "(NIL NIL \(nstring(name)) NIL)"
                case .groupEnd:
                    return "(NIL NIL NIL NIL)"
                }
            }.joined() + ")"
        }
        let from = addresses("From")
        let sender = addresses("Sender") ?? from
        let replyTo = addresses("Reply-To") ?? from
        let fields: [String] = [
            nstring(part.header("Date")), nstring(part.header("Subject")),
            from ?? "NIL", sender ?? "NIL", replyTo ?? "NIL",
            addresses("To") ?? "NIL", addresses("Cc") ?? "NIL", addresses("Bcc") ?? "NIL",
            nstring(part.header("In-Reply-To")), nstring(part.header("Message-ID")),
        ]
        return "(" + fields.joined(separator: " ") + ")"
    }

    static func parameters(_ params: [(String, String)]) -> String {
        guard !params.isEmpty else { return "NIL" }
        return "(" + params.map { "\(string($0.0.uppercased())) \(string($0.1))" }.joined(separator: " ") + ")"
    }

    static func lines(_ bytes: [UInt8], _ part: MIMEPart) -> Int {
        var n = 0
        for i in part.bodyStart..<part.end where bytes[i] == 10 { n += 1 }
        if part.end > part.bodyStart && bytes[part.end - 1] != 10 { n += 1 }
        return n
    }

    /// `body` / `body-type-1part` / `body-type-mpart`, with extension data when `extended` (BODYSTRUCTURE).
    static func structure(_ bytes: [UInt8], _ part: MIMEPart, extended: Bool) -> String {
        let ct = part.contentType
        if ct.isMultipart && !part.children.isEmpty {
            var s = "(" + part.children.map { structure(bytes, $0, extended: extended) }.joined()
            s += " " + string(ct.subtype.uppercased())
            if extended {
                s += " " + parameters(ct.parameters) + " " + extensionTail(part)
            }
            return s + ")"
        }
        var type = ct, params = ct.parameters
        if ct.isMultipart {
            // A multipart without parts is shown as text/plain (as Dovecot does), so clients can still open it.
            type = ContentType(type: "text", subtype: "plain")
            params = [("charset", "us-ascii")]
        }
        var fields = [string(type.type.uppercased()), string(type.subtype.uppercased()), parameters(params),
                      nstring(part.header("Content-ID")), nstring(part.header("Content-Description")),
                      string(part.transferEncoding.uppercased()), String(part.end - part.bodyStart)]
        if type.isMessage, let inner = part.message.first {
            fields.append(envelope(inner))
            fields.append(structure(bytes, inner, extended: extended))
            fields.append(String(lines(bytes, part)))
        } else if type.type == "text" {
            fields.append(String(lines(bytes, part)))
        }
        if extended {
            fields.append(nstring(part.header("Content-MD5")))
            fields.append(extensionTail(part))
        }
        return "(" + fields.joined(separator: " ") + ")"
    }

    /// body-fld-dsp SP body-fld-lang SP body-fld-loc
    static func extensionTail(_ part: MIMEPart) -> String {
        var disposition = "NIL"
        if let d = part.header("Content-Disposition") {
            let (value, params) = MIMEParser.splitParameters(d)
            if !value.isEmpty { disposition = "(\(string(value.lowercased())) \(parameters(params)))" }
        }
        var language = "NIL"
        if let l = part.header("Content-Language") {
            let tags = l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if tags.count == 1 { language = string(tags[0]) } else if tags.count > 1 { language = "(" + tags.map(string).joined(separator: " ") + ")" }
        }
        return "\(disposition) \(language) \(nstring(part.header("Content-Location")))"
    }

    /// The part a section's part numbers point at (RFC 9051 §6.4.5); nil when there is no such part.
    static func locate(_ root: MIMEPart, _ path: [Int]) -> MIMEPart? {
        var part = root
        for n in path {
            // The parts of a message/rfc822 part are those of the message inside it.
            if part.contentType.isMessage, let inner = part.message.first { part = inner }
            if part.contentType.isMultipart && !part.children.isEmpty {
                guard n >= 1, n <= part.children.count else { return nil }
                part = part.children[n - 1]
            } else {
                // A non-multipart message has a single part, 1: its body.
                guard n == 1 else { return nil }
            }
        }
        return part
    }

    /// The bytes of `BODY[section]`.
    static func section(_ bytes: [UInt8], _ root: MIMEPart, _ spec: SectionSpec) -> [UInt8]? {
        guard var part = locate(root, spec.part) else { return nil }
        switch spec.text {
        case .full:
            if spec.part.isEmpty { return bytes }
            return Array(bytes[part.bodyStart..<part.end])
        case .mime:
            return Array(bytes[part.headerStart..<part.bodyStart])
        case .header, .text, .headerFields, .headerFieldsNot:
            if !spec.part.isEmpty {
                // HEADER and TEXT of a numbered part are those of the message it encapsulates.
                guard part.contentType.isMessage, let inner = part.message.first else { return nil }
                part = inner
            }
            switch spec.text {
            case .header: return Array(bytes[part.headerStart..<part.bodyStart])
            case .text: return Array(bytes[part.bodyStart..<part.end])
            case .headerFields(let names), .headerFieldsNot(let names):
                var isNot = false
                if case .headerFieldsNot = spec.text { isNot = true }
                return headerFields(bytes[part.headerStart..<part.bodyStart], names, exclude: isNot)
            default: return nil
            }
        }
    }

    /// `HEADER.FIELDS (names)` or `HEADER.FIELDS.NOT (names)` of a header block: the chosen fields as they are
    /// (folding kept), then the empty line.
    static func headerFields(_ header: ArraySlice<UInt8>, _ names: [String], exclude: Bool) -> [UInt8] {
        let wanted = Set(names.map { $0.lowercased() })
        var out: [UInt8] = []
        for f in MessageParts(Array(header)).fields where wanted.contains(f.name.lowercased()) != exclude { out += f.raw }
        return out + [13, 10]
    }
}
