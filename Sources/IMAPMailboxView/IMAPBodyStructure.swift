import IMAPCodec
import IMAPResponses
import MailMessage

/// ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 §7.5.2) and body-part addressing for `BODY[1.2.TEXT]`, computed from
/// the MIME tree of a message.
public enum IMAPBodyStructure {
    public static func envelope(_ part: MIMEPart) -> IMAPEnvelope {
        func addresses(_ field: String) -> [IMAPAddress]? {
            let values = part.headers(field)
            guard !values.isEmpty else { return nil }
            let items = values.flatMap { AddressList.parseRouted($0) }
            guard !items.isEmpty else { return nil }
            return items.map { item, route -> IMAPAddress in
                switch item {
                case .mailbox(let name, let local, let domain):
                    // RFC 3501 §7.4.2: name, source route (adl), mailbox, host.
                    return IMAPAddress(name: name, adl: route, mailbox: local, host: domain)
                case .groupStart(let name):
                    return IMAPAddress(name: nil, adl: nil, mailbox: name, host: nil)
                case .groupEnd:
                    return IMAPAddress(name: nil, adl: nil, mailbox: nil, host: nil)
                }
            }
        }
        let from = addresses("From")
        return IMAPEnvelope(date: part.header("Date"), subject: part.header("Subject"), from: from,
                            sender: addresses("Sender") ?? from, replyTo: addresses("Reply-To") ?? from,
                            to: addresses("To"), cc: addresses("Cc"), bcc: addresses("Bcc"),
                            inReplyTo: part.header("In-Reply-To"), messageID: part.header("Message-ID"))
    }

    public static func parameters(_ params: [(String, String)]) -> [IMAPParameter] {
        params.map { IMAPParameter($0.0.uppercased(), $0.1) }
    }

    public static func lines(_ bytes: [UInt8], _ part: MIMEPart) -> Int {
        var n = 0
        for i in part.bodyStart..<part.end where bytes[i] == 10 { n += 1 }
        if part.end > part.bodyStart && bytes[part.end - 1] != 10 { n += 1 }
        return n
    }

    /// `body` / `body-type-1part` / `body-type-mpart`, with extension data when `extended` (BODYSTRUCTURE).
    public static func structure(_ bytes: [UInt8], _ part: MIMEPart, extended: Bool) -> IMAPBody {
        let ct = part.contentType
        if ct.isMultipart && !part.children.isEmpty {
            return .multipart(parts: part.children.map { structure(bytes, $0, extended: extended) }, subtype: ct.subtype.uppercased(),
                              extension: extended ? IMAPMultipartExtension(parameters: parameters(ct.parameters), tail: extensionTail(part)) : nil)
        }
        var type = ct, params = ct.parameters
        if ct.isMultipart {
            // A multipart without parts is shown as text/plain (as Dovecot does), so clients can still open it.
            type = ContentType(type: "text", subtype: "plain")
            params = [("charset", "us-ascii")]
        }
        var kind = IMAPSinglePart.Kind.basic
        if type.isMessage, let inner = part.message.first {
            kind = .message(envelope: envelope(inner), body: structure(bytes, inner, extended: extended), lines: lines(bytes, part))
        } else if type.type == "text" {
            kind = .text(lines: lines(bytes, part))
        }
        return .single(IMAPSinglePart(type: type.type.uppercased(), subtype: type.subtype.uppercased(), parameters: parameters(params),
                                      id: part.header("Content-ID"), description: part.header("Content-Description"),
                                      encoding: part.transferEncoding.uppercased(), size: part.end - part.bodyStart, kind: kind,
                                      extension: extended ? IMAPSinglePart.Extension(md5: part.header("Content-MD5"), tail: extensionTail(part)) : nil))
    }

    /// body-fld-dsp SP body-fld-lang SP body-fld-loc
    public static func extensionTail(_ part: MIMEPart) -> IMAPBodyExtension {
        var tail = IMAPBodyExtension(location: part.header("Content-Location"))
        if let d = part.header("Content-Disposition") {
            let (value, params) = MIMEParser.splitParameters(d)
            if !value.isEmpty {
                tail.dispositionKind = value.lowercased()
                tail.dispositionParameters = parameters(params)
            }
        }
        if let l = part.header("Content-Language") {
            let tags = l.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if !tags.isEmpty { tail.language = tags }
        }
        return tail
    }

    /// The part a section's part numbers point at (RFC 9051 §6.4.5); nil when there is no such part.
    public static func locate(_ root: MIMEPart, _ path: [Int]) -> MIMEPart? {
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
    public static func section(_ bytes: [UInt8], _ root: MIMEPart, _ spec: SectionSpec) -> [UInt8]? {
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
    public static func headerFields(_ header: ArraySlice<UInt8>, _ names: [String], exclude: Bool) -> [UInt8] {
        let wanted = Set(names.map { $0.lowercased() })
        var out: [UInt8] = []
        for f in MessageParts(Array(header)).fields where wanted.contains(f.name.lowercased()) != exclude { out += f.raw }
        return out + [13, 10]
    }
}
