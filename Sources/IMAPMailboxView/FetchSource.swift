import IMAPCodec
import IMAPResponses
import MailMessage
import MailStore

/// A command that ends with NO (well-formed but not possible) or BAD (not well-formed), with its response code.
public struct IMAPFailure: Error {
    public let status: IMAPStatus
    public init(status: IMAPStatus) { self.status = status }
    public static func no(_ text: String) -> IMAPFailure { IMAPFailure(status: IMAPStatus(.no, nil, text)) }
    public static func no(_ code: IMAPResponseCode, _ text: String) -> IMAPFailure { IMAPFailure(status: IMAPStatus(.no, code, text)) }
    public static func bad(_ text: String) -> IMAPFailure { IMAPFailure(status: IMAPStatus(.bad, nil, text)) }
}

/// What one message's FETCH response is made from: the message's row, and as much of its content, header block,
/// MIME tree and cached structure as the attributes need (`FetchPlan`). Pure: the session reads, this answers.
public struct FetchSource {
    public var message: StoredMessage
    public var parts: MessageParts?
    public var tree: MIMEPart?
    public var header: [UInt8]?
    public var structure: StructureEntry?

    public init(message: StoredMessage, header: [UInt8]?, structure: StructureEntry?) {
        self.message = message
        self.header = header
        self.structure = structure
    }

    /// Takes the message's content in, filling what the caches lacked (and the caches with it).
    public mutating func read(_ bytes: [UInt8], plan: FetchPlan, structures: StructureCache, headers: HeaderCache) {
        let p = MessageParts(bytes)
        parts = p
        let id = message.messageID
        if plan.header && header == nil {
            header = Array(p.header)
            headers.put(id, header!)
        }
        if plan.tree || (plan.structure && structure == nil) { tree = MIMEParser.parse(bytes) }
        if plan.structure && structure == nil {
            let entry = StructureEntry(envelope: IMAPEncodedItem(.envelope(IMAPBodyStructure.envelope(tree!))),
                                       bodyStructure: IMAPEncodedItem(.bodyStructure(IMAPBodyStructure.structure(bytes, tree!, extended: true))),
                                       body: IMAPEncodedItem(.body(IMAPBodyStructure.structure(bytes, tree!, extended: false))))
            structures.put(id, entry)
            structure = entry
        }
    }

    /// The BINARY contents the attributes ask for, by attribute position: decoded before a byte of this message's
    /// response is written, so that a part that cannot be decoded ends the command with NO, never in the middle of a
    /// FETCH response the client is parsing.
    public func binaries(_ attrs: [FetchAttribute]) throws -> [Int: [UInt8]] {
        var out: [Int: [UInt8]] = [:]
        for (i, a) in attrs.enumerated() {
            switch a {
            case .binary(let path, _, _), .binarySize(let path): out[i] = try Self.binaryContent(path: path, tree!, parts!)
            default: break
            }
        }
        return out
    }

    /// The content `BINARY[part]` returns (RFC 3516): the part's body with its transfer encoding undone.
    public static func binaryContent(path: [Int], _ tree: MIMEPart, _ parts: MessageParts) throws -> [UInt8] {
        guard let part = IMAPBodyStructure.locate(tree, path), !part.contentType.isMultipart else {
            throw IMAPFailure.no(.unknownCTE, "No such leaf part")
        }
        let body = path.isEmpty ? parts.body : parts.bytes[part.bodyStart..<part.end]
        guard let decoded = TransferEncoding.decode(body, encoding: part.transferEncoding) else {
            throw IMAPFailure.no(.unknownCTE, "Unknown Content-Transfer-Encoding \(part.transferEncoding)")
        }
        return decoded
    }

    /// One item of the response; `binary` is what `binaries` decoded for it, `flags` the FLAGS item as the session
    /// shows it (with \Recent).
    public func item(_ a: FetchAttribute, binary: [UInt8]?, flags: () -> IMAPFetchItem) -> IMAPFetchItem {
        switch a {
        case .uid: return .uid(message.uid.rawValue)
        case .flags: return flags()
        case .internalDate: return .internalDate(message.internalDate)
        case .rfc822Size: return .rfc822Size(message.size)
        case .modSeq: return .modSeq(UInt64(message.modSeq.rawValue))
        case .rfc822: return .rfc822(parts!.bytes[...])
        case .rfc822Header: return .rfc822Header(header![...])
        case .rfc822Text: return .rfc822Text(parts!.body)
        case .bodySection(let section, let partial, _):
            return .bodySection(section: "\(section)", origin: partial?.lowerBound, data: Self.partial(sectionData(section), partial))
        case .envelope: return .encoded(structure!.envelope)
        case .bodyStructure: return .encoded(structure!.bodyStructure)
        case .body: return .encoded(structure!.body)
        case .binary(let path, let partial, _):
            return .binary(part: path, origin: partial?.lowerBound, data: Self.partial(binary![...], partial))
        case .binarySize(let path): return .binarySize(part: path, size: binary!.count)
        case .emailID: return .emailID("M\(message.messageID)")
        // Tern keeps no thread ids (RFC 8474 §5.2 allows NIL).
        case .threadID: return .threadID(nil)
        case .saveDate: return .saveDate(message.savedDate)
        case .preview: return .preview(MessagePreview.text(parts!.bytes, tree!))
        }
    }

    /// For a message streamed out in pieces (a large one): the item `a` names and the range of the content its
    /// literal holds, when `a` is the message or its text (RFC822, RFC822.TEXT, BODY[], BODY[TEXT], with a partial
    /// range); nil for every other attribute. `bodyStart` is where the text begins (just past the empty line).
    public static func streamed(_ a: FetchAttribute, size: Int, bodyStart: Int) -> (item: IMAPFetchItem, range: Range<Int>)? {
        switch a {
        case .rfc822: return (.rfc822([]), 0..<size)
        case .rfc822Text: return (.rfc822Text([]), bodyStart..<size)
        case .bodySection(let section, let partial, _) where section.part.isEmpty:
            let whole: Range<Int>
            switch section.text {
            case .full: whole = 0..<size
            case .text: whole = bodyStart..<size
            default: return nil
            }
            var range = whole
            if let partial {
                range = whole.lowerBound + min(partial.lowerBound, whole.count)..<whole.lowerBound + min(partial.upperBound + 1, whole.count)
            }
            return (.bodySection(section: "\(section)", origin: partial?.lowerBound, data: nil), range)
        default: return nil
        }
    }

    /// The header block of a large message and where its text begins, read from the head of its content (64 KiB at
    /// a time, at most 1 MiB); nil when no empty line ends the header within that.
    public static func head(of reader: any ContentReader) async throws -> (header: [UInt8], bodyStart: Int)? {
        var head: [UInt8] = []
        while head.count < min(reader.size, ContentPieces.streamAbove) {
            let piece = try await reader.read(head.count..<head.count + 64 * 1024)
            guard !piece.isEmpty else { throw StoreError.notFound("content ends at \(head.count) of \(reader.size)") }
            head += piece
            if let bodyStart = FetchSource.bodyStart(head: head, size: reader.size) { return (Array(head[..<bodyStart]), bodyStart) }
        }
        return nil
    }

    /// The part of a message an IMAP URL names (RFC 5092: a section, then a partial range); nil for no such part.
    public static func urlPiece(_ bytes: [UInt8], _ url: IMAPURL) -> ArraySlice<UInt8>? {
        var piece = bytes[...]
        if let section = url.section {
            guard let s = IMAPBodyStructure.section(bytes, MIMEParser.parse(bytes), section) else { return nil }
            piece = s[...]
        }
        if let offset = url.partialOffset {
            let lo = piece.startIndex + min(offset, piece.count)
            let hi = url.partialLength.map { min(lo + $0, piece.endIndex) } ?? piece.endIndex
            piece = piece[lo..<hi]
        }
        return piece
    }

    /// Where the text of a message begins, from the first `head` octets of its `size`; nil when the head does not
    /// show it yet (read more).
    public static func bodyStart(head: [UInt8], size: Int) -> Int? {
        let end = RawHeader.end(head)
        // RawHeader.end gives the head's length both when the empty line ends it and when there is none in it.
        if end < head.count || head.count >= size { return end }
        let tail = head.suffix(3)
        return tail.count >= 2 && (tail.suffix(2) == [10, 10] || tail == [10, 13, 10]) ? end : nil
    }

    /// `<offset.length>` of a section (RFC 9051 §6.4.5): the octets from offset, at most length, clipped to the data.
    public static func partial(_ data: ArraySlice<UInt8>, _ range: ClosedRange<Int>?) -> ArraySlice<UInt8> {
        guard let range else { return data }
        let lo = data.startIndex + min(range.lowerBound, data.count)
        let hi = data.startIndex + min(range.upperBound + 1, data.count)
        return data[lo..<hi]
    }

    /// A BODY[section]'s data; a part that does not exist is returned empty (as Dovecot and Cyrus do).
    func sectionData(_ section: SectionSpec) -> ArraySlice<UInt8> {
        guard section.part.isEmpty else { return (IMAPBodyStructure.section(parts!.bytes, tree!, section) ?? [])[...] }
        switch section.text {
        case .full: return parts!.bytes[...]
        case .text: return parts!.body
        case .header, .mime: return header![...]
        case .headerFields(let names): return IMAPBodyStructure.headerFields(header![...], names, exclude: false)[...]
        case .headerFieldsNot(let names): return IMAPBodyStructure.headerFields(header![...], names, exclude: true)[...]
        }
    }
}
