import IMAPMailboxView
import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailMessage
import MailStore

extension IMAPSession {
    /// What SORT and THREAD need of the messages matching `key` (only those among `candidates`, ascending indices into
    /// the view, when given).
    func sortInfo(_ key: SearchKey, in m: SelectedMailbox, among candidates: [Int]? = nil) async throws -> [SortInfo] {
        let largestUID = m.messages.last?.uid.rawValue ?? 0
        let saved = Set(m.saved)
        // SORT and THREAD read header fields only: from the header cache FETCH fills, reading the messages it lacks
        // 200 at a time. (A search key on the body reads that message whole, in `matches`.)
        let headerCache = caches.headers
        let bodyKey = Self.needsBody(key)
        var prefetched: [MessageID: [UInt8]] = [:]
        var infos: [SortInfo] = []
        let indices = candidates ?? Array(m.messages.indices)
        for (n, i) in indices.enumerated() {
            let message = m.messages[i]
            var header = headerCache.get(message.messageID)
            if header == nil, message.size <= ContentPieces.streamAbove, prefetched[message.messageID] == nil {
                // This message and the next ones the cache lacks: at most 200 and ContentPieces.batchBytes. Large
                // messages are left out (their header is read from their head below).
                let upcoming = indices[n..<min(n + 200, indices.count)].lazy.map { m.messages[$0] }
                prefetched = try await store.contents(of: ContentPieces.batch(upcoming) {
                    headerCache.get($0.messageID) == nil && $0.size <= ContentPieces.streamAbove
                }.ids)
            }
            if header == nil, message.size > ContentPieces.streamAbove {
                do {
                    let reader = try await store.openContent(of: message.messageID)
                    if let head = try await FetchSource.head(of: reader) {
                        header = head.header
                    } else {
                        header = try await reader.read(0..<ContentPieces.streamAbove)
                    }
                    headerCache.put(message.messageID, header!)
                } catch StoreError.notFound { continue }
            }
            if header == nil {
                var bytes = prefetched[message.messageID]
                if bytes == nil {
                    // Evicted from the cache since the batch was read, or expunged by another session meanwhile (its
                    // content gone: it is left out).
                    do { bytes = try await store.content(of: message.messageID) } catch StoreError.notFound { continue }
                }
                header = Array(MessageParts(bytes!).header)
                headerCache.put(message.messageID, header!)
            }
            let parts = MessageParts(header!)
            var cache: MessageParts? = bodyKey ? nil : parts
            do {
                guard try await matches(key, message, seq: i + 1, count: m.messages.count, largestUID: largestUID, saved: saved, parts: &cache) else { continue }
            } catch StoreError.notFound {
                continue
            }
            infos.append(SortInfo(seq: i + 1, message: message, header: parts))
        }
        return infos
    }

    func sort(uid: Bool, criteria: [SortCriterion], key: SearchKey, returning: SearchReturn? = nil, partial: PartialRange? = nil,
              update: [FetchAttribute] = [], tag: String, _ out: inout IMAPOutput) async throws {
        if returning?.contains(.save) == true { setSaved([]) }
        let m = try requireSelected()
        let sorted = try await sortInfo(key, in: m).sorted(by: Self.sortOrder(criteria))
        answerResult(uid: uid, sorted.map { (seq: $0.seq, message: $0.message) }, returning: returning, partial: partial,
                     usesModSeq: IMAPSession.usesModSeq(key), sort: true, tag: tag, &out)
        if returning?.contains(.update) == true {
            keepUpdated(SearchContext(tag: tag, uid: uid, key: bind(key, m), sort: criteria, fetch: update,
                                      result: sorted.map(\.message.uid), infos: sorted), &out)
        }
        out.ok(tag, uid ? "UID SORT completed" : "SORT completed")
    }

    func thread(uid: Bool, algorithm: ThreadAlgorithm, key: SearchKey, tag: String, _ out: inout IMAPOutput) async throws {
        let roots = threads(try await sortInfo(key, in: try requireSelected()), algorithm)
        func node(_ n: ThreadNode) -> IMAPThreadNode {
            IMAPThreadNode(n.info.map { uid ? $0.message.uid.rawValue : UInt32($0.seq) }, n.children.map(node))
        }
        out.send(.thread(roots.map(node)))
        out.ok(tag, uid ? "UID THREAD completed" : "THREAD completed")
    }

}
