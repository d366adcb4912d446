import Crypto
import Foundation
import MailStore
import PostgresNIO

/// Message contents, stored once per SHA-256 (`content`, migration 6): inline up to the inline limit, above it in
/// chunks of at most 1 MiB written and read a piece at a time.
extension PostgresMailStore {
    static func hash(_ bytes: some Collection<UInt8>) -> Data { Data(SHA256.hash(data: Array(bytes))) }

    /// The hash of a spooled file, read a piece at a time.
    static func hash(file: URL) throws -> Data {
        guard let handle = FileHandle(forReadingAtPath: file.path) else { throw StoreError.notFound("spooled content \(file.path)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let piece = try handle.read(upToCount: chunkSize), !piece.isEmpty { hasher.update(data: piece) }
        return Data(hasher.finalize())
    }

    /// One more reference to a content, stored first when it is new: `bytes` inline (or in chunks when larger than the
    /// inline limit), or the spooled `file` in chunks. Inside the caller's transaction; returns the hash.
    @discardableResult
    func storeContent(_ db: PostgresConnection, bytes: [UInt8]? = nil, file: URL? = nil, size: Int) async throws -> Data {
        let hash = try bytes.map { Self.hash($0) } ?? Self.hash(file: file!)
        let inline = bytes.flatMap { $0.count <= Self.inlineLimit ? ByteBuffer(bytes: $0) : nil }
        // A content removed at this moment by another transaction is inserted again (with its data) once that one ends.
        let inserted = try await one("""
            INSERT INTO content(hash, size, data, refs) VALUES (\(hash), \(Int64(size)), \(inline), 1)
            ON CONFLICT (hash) DO UPDATE SET refs = content.refs + 1 RETURNING xmax = 0
            """, on: db, as: Bool.self) ?? false
        guard inserted, inline == nil else { return hash }
        if let bytes {
            for (seq, start) in stride(from: 0, to: bytes.count, by: Self.chunkSize).enumerated() {
                let piece = ByteBuffer(bytes: bytes[start..<min(start + Self.chunkSize, bytes.count)])
                try await execute("INSERT INTO content_chunk(hash, seq, data) VALUES (\(hash), \(Int32(seq)), \(piece))", on: db)
            }
        } else if let file {
            guard let handle = FileHandle(forReadingAtPath: file.path) else { throw StoreError.notFound("spooled content \(file.path)") }
            defer { try? handle.close() }
            var seq: Int32 = 0
            while let piece = try handle.read(upToCount: Self.chunkSize), !piece.isEmpty {
                try await execute("INSERT INTO content_chunk(hash, seq, data) VALUES (\(hash), \(seq), \(piece))", on: db)
                seq += 1
            }
        }
        return hash
    }

    static let chunkSize = 1 << 20
}

/// A content kept in chunks (`content_chunk`), read by the chunks a range covers. Between reads the content may go
/// (its last message expunged): a later read then throws `StoreError.notFound`.
struct PostgresChunkedContent: ContentReader {
    let store: PostgresMailStore
    let hash: Data
    let size: Int

    func read(_ range: Range<Int>) async throws -> [UInt8] {
        let range = range.clamped(to: 0..<size)
        guard !range.isEmpty else { return [] }
        let chunk = PostgresMailStore.chunkSize
        let first = range.lowerBound / chunk, last = (range.upperBound - 1) / chunk
        let rows = try await store.all("""
            SELECT seq, data FROM content_chunk WHERE hash = \(hash) AND seq BETWEEN \(Int32(first)) AND \(Int32(last)) ORDER BY seq
            """, as: (Int32, Data).self)
        guard rows.count == last - first + 1 else { throw StoreError.notFound("content \(hash.map { String($0, radix: 16) }.joined())") }
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        for (seq, data) in rows {
            let start = Int(seq) * chunk
            let lo = max(range.lowerBound - start, 0), hi = min(range.upperBound - start, data.count)
            if lo < hi { out.append(contentsOf: data[data.startIndex + lo..<data.startIndex + hi]) }
        }
        return out
    }
}
