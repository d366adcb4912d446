import Foundation
import IMAPCodec
import MailCore
import MailMessage
import MailStore

/// The header block and body of a message, split at the first empty line.
struct MessageParts {
    let bytes: [UInt8]
    let headerEnd: Int  // index just past the empty line (start of the body)

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        headerEnd = RawHeader.end(bytes)
    }

    var header: ArraySlice<UInt8> { bytes[..<headerEnd] }
    var body: ArraySlice<UInt8> { bytes[headerEnd...] }

    /// Header fields with their raw lines (folding and line ends included).
    var fields: [RawHeaderField] { RawHeader.fields(header) }

    /// Unfolded value of the first field with this name.
    func value(_ name: String) -> String? {
        values(name).first
    }

    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map { f in
            let text = String(decoding: f.raw, as: UTF8.self)
            let v = text[text.index(after: text.firstIndex(of: ":")!)...]
            return v.replacingOccurrences(of: "\r\n", with: "").replacingOccurrences(of: "\n", with: "").trimmingCharacters(in: .whitespaces)
        }
    }
}

extension IMAPSession {
    func fetch(uid: Bool, _ set: SequenceSet, _ attrs: [FetchAttribute], changedSince: Int64?, vanished: Bool = false, tag: String,
               _ out: inout IMAPOutput) async throws {
        let m = try requireSelected()
        // RFC 7162 §3.1: FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE; from then on every FETCH response with FLAGS
        // carries MODSEQ too.
        if changedSince != nil || attrs.contains(.modSeq) { condstore = true }
        var targets = m.resolveIndices(set, uid: uid)
        if let changedSince { targets = targets.filter { m.messages[$0].modSeq.rawValue > changedSince } }
        if vanished {
            // RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) also reports UIDs expunged since n.
            guard uid, qresync, let changedSince else { throw IMAPFailure.bad("VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled") }
            let gone = try await store.expunged(mailbox: m.id, since: ModSeq(rawValue: changedSince)).map(\.rawValue)
                .filter { set.contains($0, largest: UInt32.max) }
            if !gone.isEmpty { out.line("* VANISHED (EARLIER) \(SequenceSet.compact(gone))") }
        }
        let plan = FetchPlan(attrs)
        let structures = server.structures, headers = server.headers
        let setsSeen = !m.readOnly && attrs.contains { a in
            switch a {
            case .bodySection(_, _, let peek), .binary(_, _, let peek): return !peek
            case .rfc822, .rfc822Text: return true
            default: return false
            }
        }
        func needsContent(_ id: MessageID) -> Bool {
            plan.needsContent(structureCached: structures.get(id) != nil, headerCached: headers.get(id) != nil)
        }
        var markSeen: [UID] = []
        var prefetched: [MessageID: [UInt8]] = [:]
        out.bytes.reserveCapacity(ResponseStream.chunk + 16 * 1024)
        for index in targets.indices {
            let seq = targets[index] + 1
            let message = m.messages[targets[index]]
            let id = message.messageID
            var parts: MessageParts?
            var tree: MIMEPart?
            var structure = plan.structure ? structures.get(id) : nil
            var header = plan.header ? headers.get(id) : nil
            if plan.needsContent(structureCached: structure != nil, headerCached: header != nil) {
                if prefetched[id] == nil {
                    // The next 200 messages that need their content, in one store round trip.
                    let upcoming = [id] + targets[(index + 1)..<max(index + 1, min(index + 200, targets.count))].map { m.messages[$0].messageID }.filter(needsContent)
                    prefetched = try await store.contents(of: upcoming)
                }
                guard let bytes = prefetched[id] else { continue }
                let p = MessageParts(bytes)
                parts = p
                if plan.header && header == nil {
                    header = Array(p.header)
                    headers.put(id, header!)
                }
                if plan.tree || (plan.structure && structure == nil) { tree = MIMEParser.parse(bytes) }
                if plan.structure && structure == nil {
                    let entry = StructureEntry(envelope: Array(IMAPBodyStructure.envelope(tree!).utf8),
                                               bodyStructure: Array(IMAPBodyStructure.structure(bytes, tree!, extended: true).utf8),
                                               body: Array(IMAPBodyStructure.structure(bytes, tree!, extended: false).utf8))
                    structures.put(id, entry)
                    structure = entry
                }
            }
            // BINARY contents are decoded before a byte of this message's response is written: a part that cannot be
            // decoded ends the command with NO, never in the middle of a FETCH response the client is parsing.
            var binaries: [Int: [UInt8]] = [:]
            for (i, a) in attrs.enumerated() {
                switch a {
                case .binary(let path, _, _), .binarySize(let path): binaries[i] = try Self.binaryContent(path: path, tree!, parts!)
                default: break
                }
            }
            out.ascii("* ")
            out.decimal(seq)
            out.ascii(" FETCH (")
            var first = true
            for (i, a) in attrs.enumerated() {
                if first { first = false } else { out.bytes.append(32) }
                switch a {
                case .uid: out.ascii("UID "); out.decimal(Int(message.uid.rawValue))
                case .flags: out.ascii(flagsItem(message))
                case .internalDate: out.ascii("INTERNALDATE "); out.ascii(Self.internalDate(message.internalDate))
                case .rfc822Size: out.ascii("RFC822.SIZE "); out.decimal(message.size)
                case .modSeq: out.ascii("MODSEQ ("); out.decimal(Int(message.modSeq.rawValue)); out.ascii(")")
                case .rfc822: out.ascii("RFC822 "); out.literal(parts!.bytes[...])
                case .rfc822Header: out.ascii("RFC822.HEADER "); out.literal(header![...])
                case .rfc822Text: out.ascii("RFC822.TEXT "); out.literal(parts!.body)
                case .bodySection(let section, let partial, _):
                    // A part that does not exist is returned empty (as Dovecot and Cyrus do).
                    let data: ArraySlice<UInt8>
                    if section.part.isEmpty {
                        switch section.text {
                        case .full: data = parts!.bytes[...]
                        case .text: data = parts!.body
                        case .header, .mime: data = header![...]
                        case .headerFields(let names): data = IMAPBodyStructure.headerFields(header![...], names, exclude: false)[...]
                        case .headerFieldsNot(let names): data = IMAPBodyStructure.headerFields(header![...], names, exclude: true)[...]
                        }
                    } else {
                        data = (IMAPBodyStructure.section(parts!.bytes, tree!, section) ?? [])[...]
                    }
                    out.ascii("BODY[\(section)]")
                    if let partial { out.ascii("<\(partial.lowerBound)>") }
                    out.bytes.append(32)
                    out.literal(Self.partial(data, partial))
                case .envelope: out.ascii("ENVELOPE "); out.bytes += structure!.envelope
                case .bodyStructure: out.ascii("BODYSTRUCTURE "); out.bytes += structure!.bodyStructure
                case .body: out.ascii("BODY "); out.bytes += structure!.body
                case .binary(let path, let partial, _):
                    Self.binaryItem(path: path, partial: partial, sizeOnly: false, binaries[i]!, &out)
                case .binarySize(let path):
                    Self.binaryItem(path: path, partial: nil, sizeOnly: true, binaries[i]!, &out)
                }
            }
            if setsSeen && !message.flags.contains(.seen) {
                markSeen.append(message.uid)
            } else if condstore && !attrs.contains(.modSeq) && (changedSince != nil || attrs.contains(.flags)) {
                out.ascii(" MODSEQ (")
                out.decimal(Int(message.modSeq.rawValue))
                out.ascii(")")
            }
            out.line(")")
            if out.bytes.count >= ResponseStream.chunk { try await out.flushIfLarge() }
        }
        if !markSeen.isEmpty {
            // RFC 9051 §6.4.5: BODY[] sets \Seen; report the new flags.
            let (changed, _) = try await store.storeFlags(mailbox: m.id, uids: markSeen, operation: .add, flags: .seen, keywords: [],
                                                         unchangedSince: nil)
            if case .selected(let a, let u, var current) = state {
                for c in changed {
                    guard let seq = current.sequence(of: c.uid) else { continue }
                    current.messages[seq - 1] = c
                    out.line("* \(seq) FETCH (\(uid ? "UID \(c.uid.rawValue) " : "")\(flagsItem(c))\(condstore ? " MODSEQ (\(c.modSeq.rawValue))" : ""))")
                }
                state = .selected(a, u, current)
            }
        }
        out.line("\(tag) OK \(uid ? "UID " : "")FETCH completed")
    }

    /// The content `BINARY[part]` returns (RFC 3516): the part's body with its transfer encoding undone.
    static func binaryContent(path: [Int], _ tree: MIMEPart, _ parts: MessageParts) throws -> [UInt8] {
        guard let part = IMAPBodyStructure.locate(tree, path), !part.contentType.isMultipart else {
            throw IMAPFailure.no("[UNKNOWN-CTE] No such leaf part")
        }
        let body = path.isEmpty ? parts.body : parts.bytes[part.bodyStart..<part.end]
        guard let decoded = TransferEncoding.decode(body, encoding: part.transferEncoding) else {
            throw IMAPFailure.no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding \(part.transferEncoding)")
        }
        return decoded
    }

    /// `BINARY[part]<partial>` or `BINARY.SIZE[part]` of decoded content.
    static func binaryItem(path: [Int], partial: ClosedRange<Int>?, sizeOnly: Bool, _ decoded: [UInt8], _ out: inout IMAPOutput) {
        let name = path.map(String.init).joined(separator: ".")
        if sizeOnly {
            out.ascii("BINARY.SIZE[\(name)] ")
            out.decimal(decoded.count)
            return
        }
        let slice = Self.partial(decoded[...], partial)
        out.ascii("BINARY[\(name)]")
        if let partial { out.ascii("<\(partial.lowerBound)>") }
        // literal8 (~{n}) when the content has NUL, so that the client reads it as binary.
        out.ascii(slice.contains(0) ? " ~" : " ")
        out.literal(slice)
    }

    /// `<offset.length>` of a section (RFC 9051 §6.4.5): the octets from offset, at most length, clipped to the data.
    static func partial(_ data: ArraySlice<UInt8>, _ range: ClosedRange<Int>?) -> ArraySlice<UInt8> {
        guard let range else { return data }
        let lo = data.startIndex + min(range.lowerBound, data.count)
        let hi = data.startIndex + min(range.upperBound + 1, data.count)
        return data[lo..<hi]
    }

    // MARK: search

    func search(uid: Bool, key: SearchKey, returning: SearchReturn?, tag: String, _ out: inout IMAPOutput) async throws {
        let m = try requireSelected()
        if Self.usesModSeq(key) { condstore = true }   // RFC 7162 §3.1: SEARCH MODSEQ enables CONDSTORE
        var hits: [(Int, StoredMessage)] = []
        let largestUID = m.messages.last?.uid.rawValue ?? 0
        let contentNeeded = Self.needsContent(key)
        var prefetched: [MessageID: [UInt8]] = [:]
        for (i, message) in m.messages.enumerated() {
            var cache: MessageParts?
            if contentNeeded {
                if i % 200 == 0 {
                    prefetched = try await store.contents(of: m.messages[i..<min(i + 200, m.messages.count)].map(\.messageID))
                }
                cache = prefetched[message.messageID].map(MessageParts.init)
            }
            if try await matches(key, message, seq: i + 1, count: m.messages.count, largestUID: largestUID, parts: &cache) {
                hits.append((i + 1, message))
            }
        }
        let numbers = hits.map { uid ? $0.1.uid.rawValue : UInt32($0.0) }
        var returning = returning
        // RFC 9051 §6.4.4: an IMAP4rev2 session gets ESEARCH, with ALL when no RETURN is given; RFC 4731 §3.1:
        // RETURN () means ALL.
        if returning == nil && rev2 { returning = [.all] }
        if let r = returning, r.isEmpty { returning = [.all] }
        if let returning {
            var parts = ["(TAG \"\(tag)\")"]
            if uid { parts.append("UID") }
            if returning.contains(.min), let v = numbers.min() { parts.append("MIN \(v)") }
            if returning.contains(.max), let v = numbers.max() { parts.append("MAX \(v)") }
            if returning.contains(.count) { parts.append("COUNT \(numbers.count)") }
            if returning.contains(.all), !numbers.isEmpty { parts.append("ALL \(SequenceSet.compact(numbers))") }
            // RFC 7162 §3.1.5: the highest MODSEQ of the messages found, when the search used MODSEQ.
            if condstore, Self.usesModSeq(key), let h = hits.map(\.1.modSeq.rawValue).max() { parts.append("MODSEQ \(h)") }
            out.line("* ESEARCH \(parts.joined(separator: " "))")
        } else {
            var line = "* SEARCH" + numbers.map { " \($0)" }.joined()
            if condstore, Self.usesModSeq(key), let h = hits.map(\.1.modSeq.rawValue).max() { line += " (MODSEQ \(h))" }
            out.line(line)
        }
        out.line("\(tag) OK \(uid ? "UID " : "")SEARCH completed")
    }

    /// Whether a search key looks at headers or text (and so needs the message content).
    static func needsContent(_ key: SearchKey) -> Bool {
        switch key {
        case .from, .to, .cc, .bcc, .subject, .header, .body, .text, .sentBefore, .sentOn, .sentSince: return true
        case .and(let keys): return keys.contains(where: needsContent)
        case .or(let a, let b): return needsContent(a) || needsContent(b)
        case .not(let a): return needsContent(a)
        default: return false
        }
    }

    static func usesModSeq(_ key: SearchKey) -> Bool {
        switch key {
        case .modSeq: return true
        case .and(let keys): return keys.contains(where: usesModSeq)
        case .or(let a, let b): return usesModSeq(a) || usesModSeq(b)
        case .not(let a): return usesModSeq(a)
        default: return false
        }
    }

    func matches(_ key: SearchKey, _ m: StoredMessage, seq: Int, count: Int, largestUID: UInt32, parts: inout MessageParts?) async throws -> Bool {
        func content() async throws -> MessageParts {
            if let parts { return parts }
            let p = MessageParts(try await store.content(of: m.messageID))
            parts = p
            return p
        }
        func contains(_ haystack: String, _ needle: String) -> Bool {
            haystack.range(of: needle, options: [.caseInsensitive, .diacriticInsensitive]) != nil
        }
        func day(_ d: Date) -> SearchDate {
            var cal = Calendar(identifier: .gregorian)
            cal.timeZone = TimeZone(identifier: "UTC")!
            let c = cal.dateComponents([.year, .month, .day], from: d)
            return SearchDate(day: c.day!, month: c.month!, year: c.year!)
        }
        func compare(_ a: SearchDate, _ b: SearchDate) -> Int {
            (a.year, a.month, a.day) < (b.year, b.month, b.day) ? -1 : ((a.year, a.month, a.day) == (b.year, b.month, b.day) ? 0 : 1)
        }
        func sentDate() async throws -> SearchDate {
            // The day as written in the Date field, in its own zone (RFC 9051 §6.4.4), not converted to UTC.
            if let v = try await content().value("Date"), let d = RFC5322Date.writtenDay(v) {
                return SearchDate(day: d.day, month: d.month, year: d.year)
            }
            return day(m.internalDate)
        }
        switch key {
        case .all: return true
        case .answered: return m.flags.contains(.answered)
        case .deleted: return m.flags.contains(.deleted)
        case .draft: return m.flags.contains(.draft)
        case .flagged: return m.flags.contains(.flagged)
        case .seen: return m.flags.contains(.seen)
        case .unanswered: return !m.flags.contains(.answered)
        case .undeleted: return !m.flags.contains(.deleted)
        case .undraft: return !m.flags.contains(.draft)
        case .unflagged: return !m.flags.contains(.flagged)
        case .unseen: return !m.flags.contains(.seen)
        case .recent: return isRecent(m.uid)
        case .new: return isRecent(m.uid) && !m.flags.contains(.seen)
        case .old: return !isRecent(m.uid)
        case .keyword(let k): return m.keywords.contains { $0.lowercased() == k.lowercased() }
        case .unkeyword(let k): return !m.keywords.contains { $0.lowercased() == k.lowercased() }
        case .from(let s): return try await content().values("From").contains { contains($0, s) }
        case .to(let s): return try await content().values("To").contains { contains($0, s) }
        case .cc(let s): return try await content().values("Cc").contains { contains($0, s) }
        case .bcc(let s): return try await content().values("Bcc").contains { contains($0, s) }
        case .subject(let s): return try await content().values("Subject").contains { contains($0, s) }
        case .header(let field, let s):
            let values = try await content().values(field)
            return s.isEmpty ? !values.isEmpty : values.contains { contains($0, s) }
        case .body(let s): return TextSearch.contains(try await content().body, s)
        case .text(let s): return TextSearch.contains(try await content().bytes[...], s)
        case .before(let d): return compare(day(m.internalDate), d) < 0
        case .on(let d): return compare(day(m.internalDate), d) == 0
        case .since(let d): return compare(day(m.internalDate), d) >= 0
        case .sentBefore(let d): return compare(try await sentDate(), d) < 0
        case .sentOn(let d): return compare(try await sentDate(), d) == 0
        case .sentSince(let d): return compare(try await sentDate(), d) >= 0
        case .larger(let n): return m.size > n
        // RFC 5032 WITHIN: by INTERNALDATE against the server's clock.
        case .younger(let n): return server.clock.now.timeIntervalSince(m.internalDate) <= Double(n)
        case .older(let n): return server.clock.now.timeIntervalSince(m.internalDate) > Double(n)
        case .smaller(let n): return m.size < n
        case .uid(let set): return set.contains(m.uid.rawValue, largest: largestUID)
        case .sequence(let set): return set.contains(UInt32(seq), largest: UInt32(count))
        case .not(let k): return !(try await matches(k, m, seq: seq, count: count, largestUID: largestUID, parts: &parts))
        case .or(let a, let b):
            if try await matches(a, m, seq: seq, count: count, largestUID: largestUID, parts: &parts) { return true }
            return try await matches(b, m, seq: seq, count: count, largestUID: largestUID, parts: &parts)
        case .and(let keys):
            for k in keys where !(try await matches(k, m, seq: seq, count: count, largestUID: largestUID, parts: &parts)) { return false }
            return true
        case .modSeq(let n): return m.modSeq.rawValue >= n
        }
    }
}

/// SEARCH BODY and TEXT: a case-insensitive substring test on the raw octets.
enum TextSearch {
    /// ASCII text (nearly every body as stored: 7-bit, quoted-printable or base64) is compared octet by octet with
    /// ASCII case folding; anything else goes through Foundation's case- and diacritic-insensitive comparison.
    static func contains(_ haystack: ArraySlice<UInt8>, _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard !n.isEmpty else { return true }
        if n.allSatisfy({ $0 < 128 }) && !haystack.contains(where: { $0 >= 128 }) {
            return asciiContains(haystack, n.map(lower))
        }
        return String(decoding: haystack, as: UTF8.self).range(of: needle, options: [.caseInsensitive, .diacriticInsensitive]) != nil
    }

    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b &- 65 < 26 ? b | 0x20 : b }

    /// `needle` is lower-case ASCII.
    static func asciiContains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { nd in
                let first = nd[0], last = h.count - nd.count
                var i = 0
                while i <= last {
                    if lower(h[i]) == first {
                        var k = 1
                        while k < nd.count && lower(h[i + k]) == nd[k] { k += 1 }
                        if k == nd.count { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }
}


/// What a FETCH needs per message, decided once from its attributes.
struct FetchPlan {
    /// The whole content (a body part, the text, the full message, BINARY).
    var content = false
    /// Only the header block (`BODY.PEEK[HEADER]`, `HEADER.FIELDS`, `RFC822.HEADER`), which a cache may have.
    var header = false
    /// ENVELOPE, BODYSTRUCTURE or BODY, which a cache may have.
    var structure = false
    /// The MIME tree (a numbered part, BINARY).
    var tree = false

    /// Whether a message's content must be read: the content itself is asked for, or a cache lacks what is.
    func needsContent(structureCached: Bool, headerCached: Bool) -> Bool {
        content || (structure && !structureCached) || (header && !headerCached)
    }

    init(_ attrs: [FetchAttribute]) {
        for a in attrs {
            switch a {
            case .envelope, .bodyStructure, .body: structure = true
            case .rfc822Header: header = true
            case .rfc822, .rfc822Text: content = true
            case .binary, .binarySize: content = true; tree = true
            case .bodySection(let section, _, _):
                if !section.part.isEmpty {
                    content = true; tree = true
                } else {
                    switch section.text {
                    case .header, .headerFields, .headerFieldsNot, .mime: header = true
                    case .full, .text: content = true
                    }
                }
            case .uid, .flags, .internalDate, .rfc822Size, .modSeq: break
            }
        }
    }
}
