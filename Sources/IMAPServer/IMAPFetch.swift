import IMAPMailboxView
import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailMessage
import MailStore

/// The header block and body of a message, split at the first empty line.
extension IMAPSession {
    /// FETCH; with `tag` nil, only the untagged FETCH responses (for a notification), and with `peek` no \Seen is set.
    func fetch(uid: Bool, _ set: SequenceSet, _ attrs: [FetchAttribute], changedSince: Int64?, vanished: Bool = false,
               partial: PartialRange? = nil, peek: Bool = false, tag: String?, _ out: inout IMAPOutput) async throws {
        let m = try requireSelected()
        // RFC 7162 §3.1: FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE; from then on every FETCH response with FLAGS
        // carries MODSEQ too.
        if changedSince != nil || attrs.contains(.modSeq) { condstore = true }
        var targets = m.resolveIndices(set, uid: uid)
        if let changedSince { targets = targets.filter { m.messages[$0].modSeq.rawValue > changedSince } }
        // RFC 9394 §3.3: a window of the addressed messages, by position (-1 the last).
        if let partial { targets = Array(targets[partial.indices(count: targets.count)]) }
        if vanished {
            // RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) also reports UIDs expunged since n.
            guard uid, qresync, let changedSince else { throw IMAPFailure.bad("VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled") }
            // Messages this session still shows (expunged since its view was taken) are reported by the next NOOP or
            // IDLE as VANISHED, not here.
            let present = Set(m.messages.map(\.uid.rawValue))
            let gone = try await store.expunged(mailbox: m.id, since: ModSeq(rawValue: changedSince)).map(\.rawValue)
                .filter { set.contains($0, largest: UInt32.max) && !present.contains($0) }
            if !gone.isEmpty { out.send(.vanished(earlier: true, gone)) }
        }
        let plan = FetchPlan(attrs)
        let structures = caches.structures, headers = caches.headers
        let setsSeen = !m.readOnly && !peek && attrs.contains { a in
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
                    let entry = StructureEntry(envelope: IMAPEncodedItem(.envelope(IMAPBodyStructure.envelope(tree!))),
                                               bodyStructure: IMAPEncodedItem(.bodyStructure(IMAPBodyStructure.structure(bytes, tree!, extended: true))),
                                               body: IMAPEncodedItem(.body(IMAPBodyStructure.structure(bytes, tree!, extended: false))))
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
            out.encoder.fetchStart(seq)
            for (i, a) in attrs.enumerated() {
                let item: IMAPFetchItem
                switch a {
                case .uid: item = .uid(message.uid.rawValue)
                case .flags: item = flagsItem(message)
                case .internalDate: item = .internalDate(message.internalDate)
                case .rfc822Size: item = .rfc822Size(message.size)
                case .modSeq: item = .modSeq(UInt64(message.modSeq.rawValue))
                case .rfc822: item = .rfc822(parts!.bytes[...])
                case .rfc822Header: item = .rfc822Header(header![...])
                case .rfc822Text: item = .rfc822Text(parts!.body)
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
                    item = .bodySection(section: "\(section)", origin: partial?.lowerBound, data: Self.partial(data, partial))
                case .envelope: item = .encoded(structure!.envelope)
                case .bodyStructure: item = .encoded(structure!.bodyStructure)
                case .body: item = .encoded(structure!.body)
                case .binary(let path, let partial, _):
                    item = .binary(part: path, origin: partial?.lowerBound, data: Self.partial(binaries[i]![...], partial))
                case .binarySize(let path):
                    item = .binarySize(part: path, size: binaries[i]!.count)
                case .emailID: item = .emailID(Self.emailObjectID(message.messageID))
                // Tern keeps no thread ids (RFC 8474 §5.2 allows NIL).
                case .threadID: item = .threadID(nil)
                case .saveDate: item = .saveDate(message.savedDate)
                case .preview: item = .preview(MessagePreview.text(parts!.bytes, tree!))
                }
                out.encoder.fetchItem(item)
            }
            if setsSeen && !message.flags.contains(.seen) {
                markSeen.append(message.uid)
            } else if condstore && !attrs.contains(.modSeq) && (changedSince != nil || attrs.contains(.flags)) {
                out.encoder.fetchItem(.modSeq(UInt64(message.modSeq.rawValue)))
            }
            out.encoder.fetchEnd()
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
                    out.send(.fetch(seq, (uid ? [.uid(c.uid.rawValue)] : []) + [flagsItem(c)] + (condstore ? [.modSeq(UInt64(c.modSeq.rawValue))] : [])))
                }
                state = .selected(a, u, current)
                try await contextRefresh(&out, changed: changed.compactMap { current.sequence(of: $0.uid).map { $0 - 1 } }, added: 0, own: true)
            }
        }
        if let tag { out.ok(tag, uid ? "UID FETCH completed" : "FETCH completed") }
    }

    /// The content `BINARY[part]` returns (RFC 3516): the part's body with its transfer encoding undone.
    static func binaryContent(path: [Int], _ tree: MIMEPart, _ parts: MessageParts) throws -> [UInt8] {
        guard let part = IMAPBodyStructure.locate(tree, path), !part.contentType.isMultipart else {
            throw IMAPFailure.no(.unknownCTE, "No such leaf part")
        }
        let body = path.isEmpty ? parts.body : parts.bytes[part.bodyStart..<part.end]
        guard let decoded = TransferEncoding.decode(body, encoding: part.transferEncoding) else {
            throw IMAPFailure.no(.unknownCTE, "Unknown Content-Transfer-Encoding \(part.transferEncoding)")
        }
        return decoded
    }

    /// `<offset.length>` of a section (RFC 9051 §6.4.5): the octets from offset, at most length, clipped to the data.
    static func partial(_ data: ArraySlice<UInt8>, _ range: ClosedRange<Int>?) -> ArraySlice<UInt8> {
        guard let range else { return data }
        let lo = data.startIndex + min(range.lowerBound, data.count)
        let hi = data.startIndex + min(range.upperBound + 1, data.count)
        return data[lo..<hi]
    }

    // MARK: search

    func search(uid: Bool, key: SearchKey, returning: SearchReturn?, partial: PartialRange? = nil, update: [FetchAttribute] = [],
                tag: String, _ out: inout IMAPOutput) async throws {
        // RFC 5182 §2.1: a SEARCH with SAVE that fails leaves `$` empty.
        if returning?.contains(.save) == true { setSaved([]) }
        let m = try requireSelected()
        if Self.usesModSeq(key) { condstore = true }   // RFC 7162 §3.1: SEARCH MODSEQ enables CONDSTORE
        let found = try await matchingIndices(key, in: m)
        let hits = found.map { (seq: $0 + 1, message: m.messages[$0]) }
        answerResult(uid: uid, hits, returning: returning, partial: partial,
                     usesModSeq: Self.usesModSeq(key), sort: false, tag: tag, &out)
        if returning?.contains(.update) == true {
            keepUpdated(SearchContext(tag: tag, uid: uid, key: bind(key, m), sort: nil, fetch: update, result: hits.map(\.message.uid)), &out)
        }
        out.ok(tag, uid ? "UID SEARCH completed" : "SEARCH completed")
    }

    /// Indices into the view of the messages that match `key`, in mailbox order; only those among `candidates` when
    /// given (indices in ascending order).
    func matchingIndices(_ key: SearchKey, in m: SelectedMailbox, among candidates: [Int]? = nil) async throws -> [Int] {
        let saved = Set(m.saved)
        var hits: [Int] = []
        let largestUID = m.messages.last?.uid.rawValue ?? 0
        let contentNeeded = Self.needsContent(key)
        // Keys on header fields alone (FROM, SUBJECT, HEADER, SENT*) are answered from the header cache that FETCH
        // fills, reading only the messages it lacks; BODY and TEXT need the whole message.
        let headersOnly = contentNeeded && !Self.needsBody(key)
        let headerCache = caches.headers
        let indices = candidates ?? Array(m.messages.indices)
        var prefetched: [MessageID: [UInt8]] = [:]
        for (n, i) in indices.enumerated() {
            let message = m.messages[i]
            var cache: MessageParts?
            if contentNeeded {
                if n % 200 == 0 {
                    var ids = indices[n..<min(n + 200, indices.count)].map { m.messages[$0].messageID }
                    if headersOnly { ids = ids.filter { headerCache.get($0) == nil } }
                    prefetched = ids.isEmpty ? [:] : try await store.contents(of: ids)
                }
                if headersOnly, let header = headerCache.get(message.messageID) {
                    cache = MessageParts(header)
                } else if let bytes = prefetched[message.messageID] {
                    let parts = MessageParts(bytes)
                    if headersOnly {
                        headerCache.put(message.messageID, Array(parts.header))
                        cache = MessageParts(Array(parts.header))
                    } else {
                        cache = parts
                    }
                }
            }
            do {
                if try await matches(key, message, seq: i + 1, count: m.messages.count, largestUID: largestUID, saved: saved, parts: &cache) {
                    hits.append(i)
                }
            } catch StoreError.notFound {
                continue   // expunged by another session meanwhile, its content gone: it is left out
            }
        }
        return hits
    }

    /// What SEARCH and SORT send for their result (`hits` in result order): SEARCH or SORT for a plain command;
    /// ESEARCH with MIN, MAX, COUNT, ALL and PARTIAL when RETURN was given (and always for SEARCH in an IMAP4rev2
    /// session); the result saved as `$` with SAVE (RFC 5182), nothing sent when SAVE is all that was asked.
    func answerResult(uid: Bool, _ hits: [(seq: Int, message: StoredMessage)], returning: SearchReturn?, partial: PartialRange?,
                      usesModSeq: Bool, sort: Bool, tag: String, _ out: inout IMAPOutput) {
        let numbers = hits.map { uid ? $0.message.uid.rawValue : UInt32($0.seq) }
        var returning = returning
        // RFC 9051 §6.4.4: an IMAP4rev2 session gets ESEARCH, with ALL when no RETURN is given; RFC 4731 §3.1:
        // RETURN () means ALL.
        if returning == nil && rev2 && !sort { returning = [.all] }
        if let r = returning, r.isEmpty, partial == nil { returning = [.all] }
        let window = partial.map { hits.indices.clamped(to: $0.indices(count: hits.count)) }
        if let r = returning, r.contains(.save) {
            // RFC 5182 §2.1: with MIN or MAX alone, only those messages are saved; with PARTIAL, the window.
            var chosen: [StoredMessage]
            if let window {
                chosen = hits[window].map(\.message)
            } else if !r.contains(.all) && !r.contains(.count) && (r.contains(.min) || r.contains(.max)) {
                chosen = []
                if r.contains(.min), let first = hits.first { chosen.append(first.message) }
                if r.contains(.max), let last = hits.last, hits.count > 1 || !r.contains(.min) { chosen.append(last.message) }
            } else {
                chosen = hits.map(\.message)
            }
            setSaved(chosen.map(\.uid))
        }
        // RFC 7162 §3.1.5: the highest MODSEQ of the messages found, when the search used MODSEQ.
        let highest = condstore && usesModSeq ? hits.map(\.message.modSeq.rawValue).max().map(UInt64.init) : nil
        guard let returning else {
            out.send(sort ? .sort(numbers, modSeq: highest) : .search(numbers, modSeq: highest))
            return
        }
        // RFC 5182 §2.1: no ESEARCH for SAVE alone (CONTEXT is only a hint).
        if returning.subtracting(.context) == [.save] && partial == nil { return }
        // MIN and MAX are the first and last of the result: SEARCH's is in mailbox order, SORT's in sort order
        // (RFC 5267 §3.2), and ALL keeps that order.
        out.send(.esearch(IMAPESearch(tag: tag, uid: uid,
                                      min: returning.contains(.min) ? numbers.first : nil,
                                      max: returning.contains(.max) ? numbers.last : nil,
                                      count: returning.contains(.count) ? numbers.count : nil,
                                      all: returning.contains(.all) && !numbers.isEmpty ? numbers : nil,
                                      modSeq: highest,
                                      partial: partial.map { IMAPPartialResult(range: $0, numbers: Array(numbers[window!])) })))
    }

    /// Sets `$` of the selected mailbox (RFC 5182).
    func setSaved(_ uids: [UID]) {
        guard case .selected(let a, let u, var m) = state else { return }
        m.saved = uids.sorted()
        state = .selected(a, u, m)
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

    /// Whether a search key looks at the body (BODY, TEXT), not only at header fields.
    static func needsBody(_ key: SearchKey) -> Bool {
        switch key {
        case .body, .text: return true
        case .and(let keys): return keys.contains(where: needsBody)
        case .or(let a, let b): return needsBody(a) || needsBody(b)
        case .not(let a): return needsBody(a)
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

    func matches(_ key: SearchKey, _ m: StoredMessage, seq: Int, count: Int, largestUID: UInt32, saved: Set<UID> = [],
                 parts: inout MessageParts?) async throws -> Bool {
        func content() async throws -> MessageParts {
            if let parts { return parts }
            let p = MessageParts(try await store.content(of: m.messageID))
            parts = p
            return p
        }
        func contains(_ haystack: String, _ needle: String) -> Bool {
            // The same folding as BODY and TEXT (ASCII case at byte speed, Foundation's comparison for other text).
            TextSearch.contains(Array(haystack.utf8)[...], needle)
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
        case .emailID(let id): return Self.emailObjectID(m.messageID) == id
        case .threadID: return false
        case .savedBefore(let d): return compare(day(m.savedDate), d) < 0
        case .savedOn(let d): return compare(day(m.savedDate), d) == 0
        case .savedSince(let d): return compare(day(m.savedDate), d) >= 0
        case .saveDateSupported: return true   // every mailbox keeps save dates
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
        case .uid(let set): return set.isSaved ? saved.contains(m.uid) : set.contains(m.uid.rawValue, largest: largestUID)
        case .sequence(let set): return set.isSaved ? saved.contains(m.uid) : set.contains(UInt32(seq), largest: UInt32(count))
        case .not(let k): return !(try await matches(k, m, seq: seq, count: count, largestUID: largestUID, saved: saved, parts: &parts))
        case .or(let a, let b):
            if try await matches(a, m, seq: seq, count: count, largestUID: largestUID, saved: saved, parts: &parts) { return true }
            return try await matches(b, m, seq: seq, count: count, largestUID: largestUID, saved: saved, parts: &parts)
        case .and(let keys):
            for k in keys where !(try await matches(k, m, seq: seq, count: count, largestUID: largestUID, saved: saved, parts: &parts)) { return false }
            return true
        case .modSeq(let n): return m.modSeq.rawValue >= n
        }
    }
}
