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
        if vanished { try await reportVanished(set, uid: uid, changedSince: changedSince, in: m, &out) }
        let plan = FetchPlan(attrs)
        let structures = caches.structures, headers = caches.headers
        let setsSeen = !m.readOnly && !peek && attrs.contains { a in
            switch a {
            case .bodySection(_, _, let peek), .binary(_, _, let peek): return !peek
            case .rfc822, .rfc822Text: return true
            default: return false
            }
        }
        func batched(_ message: StoredMessage) -> Bool {
            message.size <= ContentPieces.streamAbove
                && plan.needsContent(structureCached: structures.get(message.messageID) != nil, headerCached: headers.get(message.messageID) != nil)
        }
        var markSeen: [UID] = []
        var prefetched: [MessageID: [UInt8]] = [:]
        out.bytes.reserveCapacity(ResponseStream.chunk + 16 * 1024)
        for index in targets.indices {
            let message = m.messages[targets[index]]
            let id = message.messageID
            var source = FetchSource(message: message, header: plan.header ? headers.get(id) : nil,
                                     structure: plan.structure ? structures.get(id) : nil)
            var large: (reader: any ContentReader, bodyStart: Int)?
            if plan.needsContent(structureCached: source.structure != nil, headerCached: source.header != nil) {
                if message.size > ContentPieces.streamAbove {
                    // A large message on its own, never in a batch: streamed when the attributes allow it.
                    do {
                        large = try await openLarge(message, plan: plan, &source)
                    } catch StoreError.notFound {
                        continue
                    }
                } else {
                    if prefetched[id] == nil {
                        // The next messages that need their content (at most 200, and ContentPieces.batchBytes), in
                        // one store round trip.
                        let upcoming = targets[index..<min(index + 200, targets.count)].lazy.map { m.messages[$0] }
                        prefetched = try await store.contents(of: ContentPieces.batch(upcoming) { $0.messageID == id || batched($0) }.ids)
                    }
                    guard let bytes = prefetched[id] else { continue }
                    source.read(bytes, plan: plan, structures: structures, headers: headers)
                }
            }
            let binaries = try source.binaries(attrs)
            out.encoder.fetchStart(targets[index] + 1)
            for (i, a) in attrs.enumerated() {
                if let large, let (item, range) = FetchSource.streamed(a, size: large.reader.size, bodyStart: large.bodyStart) {
                    try await stream(item, range, from: large.reader, &out)
                    continue
                }
                out.encoder.fetchItem(source.item(a, binary: binaries[i]) { flagsItem(message) })
            }
            if setsSeen && !message.flags.contains(.seen) {
                markSeen.append(message.uid)
            } else if condstore && !attrs.contains(.modSeq) && (changedSince != nil || attrs.contains(.flags)) {
                out.encoder.fetchItem(.modSeq(UInt64(message.modSeq.rawValue)))
            }
            out.encoder.fetchEnd()
            if out.bytes.count >= ResponseStream.chunk { try await out.flushIfLarge() }
        }
        if !markSeen.isEmpty { try await setSeen(markSeen, uid: uid, in: m, &out) }
        if let tag { out.ok(tag, uid ? "UID FETCH completed" : "FETCH completed") }
    }

    /// Opens a large message's content. When the attributes allow streaming, returns the reader and where the text
    /// begins (the header block read from the head, into the cache); otherwise reads the whole message into
    /// `source` (one message at a time) and returns nil.
    private func openLarge(_ message: StoredMessage, plan: FetchPlan, _ source: inout FetchSource) async throws -> (reader: any ContentReader, bodyStart: Int)? {
        let reader = try await store.openContent(of: message.messageID)
        if plan.streamable(structureCached: source.structure != nil), let (header, bodyStart) = try await FetchSource.head(of: reader) {
            if plan.header && source.header == nil {
                source.header = header
                caches.headers.put(message.messageID, header)
            }
            return (reader, bodyStart)
        }
        var whole: [UInt8] = []
        whole.reserveCapacity(reader.size)
        try await reader.pieces { whole += $0 }
        source.read(whole, plan: plan, structures: caches.structures, headers: caches.headers)
        return nil
    }

    /// One item of a FETCH response whose literal is read from the content and sent a piece at a time. The literal's
    /// size is announced first: a content that goes missing half-way cannot be answered any more, so the session
    /// ends (`IMAPStreamBroken`).
    private func stream(_ item: IMAPFetchItem, _ range: Range<Int>, from reader: any ContentReader, _ out: inout IMAPOutput) async throws {
        out.encoder.fetchItemStreamed(item, count: range.count)
        do {
            try await reader.pieces(range) { piece in
                out.encoder.literalPiece(piece)
                try await out.flushIfLarge()
            }
        } catch {
            throw IMAPStreamBroken(reason: "\(error)")
        }
    }

    /// RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) also reports UIDs expunged since n.
    private func reportVanished(_ set: SequenceSet, uid: Bool, changedSince: Int64?, in m: SelectedMailbox, _ out: inout IMAPOutput) async throws {
        guard uid, qresync, let changedSince else { throw IMAPFailure.bad("VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled") }
        // Messages this session still shows (expunged since its view was taken) are reported by the next NOOP or
        // IDLE as VANISHED, not here.
        let present = Set(m.messages.map(\.uid.rawValue))
        let gone = try await store.expunged(mailbox: m.id, since: ModSeq(rawValue: changedSince)).map(\.rawValue)
            .filter { set.contains($0, largest: UInt32.max) && !present.contains($0) }
        if !gone.isEmpty { out.send(.vanished(earlier: true, gone)) }
    }

    /// RFC 9051 §6.4.5: BODY[] sets \Seen; the new flags are reported.
    private func setSeen(_ uids: [UID], uid: Bool, in m: SelectedMailbox, _ out: inout IMAPOutput) async throws {
        let (changed, _) = try await store.storeFlags(mailbox: m.id, uids: uids, operation: .add, flags: .seen, keywords: [],
                                                     unchangedSince: nil)
        guard case .selected(let a, let u, var current) = state else { return }
        for c in changed {
            guard let seq = current.sequence(of: c.uid) else { continue }
            current.messages[seq - 1] = c
            out.send(.fetch(seq, (uid ? [.uid(c.uid.rawValue)] : []) + [flagsItem(c)] + (condstore ? [.modSeq(UInt64(c.modSeq.rawValue))] : [])))
        }
        state = .selected(a, u, current)
        // As STORE: these MODSEQs are the store's, and an expunge meanwhile is held back below them (QRESYNC).
        if qresync { try await poll(&out, expunges: false) }
        try await contextRefresh(&out, changed: changed.compactMap { current.sequence(of: $0.uid).map { $0 - 1 } }, added: 0, own: true)
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
        /// The messages from position `start` on that need their content: at most 200, and at most
        /// ContentPieces.batchBytes unless the first alone is larger; `end` is the position after them.
        func batch(from start: Int) -> (ids: [MessageID], end: Int) {
            let (ids, examined) = ContentPieces.batch(indices[start..<min(start + 200, indices.count)].lazy.map { m.messages[$0] }) {
                !(headersOnly && headerCache.get($0.messageID) != nil)
            }
            return (ids, start + examined)
        }
        // The next batch is read while this one is searched (the store's work and the search overlap).
        var ahead: (start: Int, read: Task<[MessageID: [UInt8]], Error>)?
        defer { ahead?.read.cancel() }
        let store = self.store
        for (n, i) in indices.enumerated() {
            let message = m.messages[i]
            var cache: MessageParts?
            if contentNeeded {
                if prefetched[message.messageID] == nil && !(headersOnly && headerCache.get(message.messageID) != nil) {
                    let (ids, end) = batch(from: n)
                    if let a = ahead, a.start == n {
                        prefetched = try await a.read.value
                    } else {
                        ahead?.read.cancel()
                        prefetched = try await store.contents(of: ids)
                    }
                    ahead = nil
                    if end < indices.count {
                        let next = batch(from: end).ids
                        if !next.isEmpty { ahead = (end, Task { try await store.contents(of: next) }) }
                    }
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

    func matches(_ key: SearchKey, _ m: StoredMessage, seq: Int, count: Int, largestUID: UInt32, saved: Set<UID> = [],
                 parts: inout MessageParts?) async throws -> Bool {
        let store = self.store
        return try await searchMatches(key, m, seq: seq, count: count, largestUID: largestUID, saved: saved, now: server.clock.now,
                                       parts: &parts, recent: { self.isRecent($0) }, content: { try await store.content(of: m.messageID) })
    }
}
