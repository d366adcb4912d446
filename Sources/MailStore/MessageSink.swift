
import Foundation
import Glibc


/// Collects one incoming message: in memory while it is small, in a temp file once it grows past the inline
/// limit, so a large message never sits in memory whole. Stops storing (but keeps counting) once the size
/// limit is passed, so the session can read to the end and answer 552.
public final class MessageSink {
    public let blobs: BlobStore
    public let inlineLimit: Int
    public let maxSize: Int
    public private(set) var size = 0
    fileprivate(set) var memory: [UInt8] = []
    fileprivate(set) var file: (url: URL, handle: FileHandle)?
    public private(set) var failure: Error?
    /// Octets of the fields Tern put in front of what the client sent (trace fields).
    public let prefixLength: Int

    public init(blobs: BlobStore, inlineLimit: Int, maxSize: Int, prefix: String) {
        self.blobs = blobs
        self.inlineLimit = inlineLimit
        self.maxSize = maxSize
        prefixLength = prefix.utf8.count
        memory.reserveCapacity(min(inlineLimit, 16 * 1024))
        append(Array(prefix.utf8))
    }

    public var tooLarge: Bool { size > maxSize }
    /// The message has not spilled to a file (finishing it does no I/O).
    public var isInMemory: Bool { file == nil }

    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    public func append(_ raw: UnsafeRawBufferPointer) {
        size += raw.count
        guard !tooLarge, failure == nil else { return }
        if file == nil, memory.count + raw.count <= inlineLimit {
            memory.append(contentsOf: raw)
            return
        }
        do {
            if file == nil {
                file = try blobs.makeTempFile()
                try write(memory.withUnsafeBytes { $0 })
                memory = []
            }
            try write(raw)
        } catch {
            failure = error
        }
    }

    private func write(_ raw: UnsafeRawBufferPointer) throws {
        guard let fd = file?.handle.fileDescriptor else { return }
        try MessageSink.write(raw, to: fd)
    }

    /// Writes all of `raw` to `fd`, retrying short writes and EINTR.
    public static func write(_ raw: UnsafeRawBufferPointer, to fd: Int32) throws {
        var off = 0
        while off < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileSystemError(errno: errno, "write spool file") }
            off += n
        }
    }

    /// The finished content: inline bytes, or the spool file fsync'd and renamed into the blob store.
    /// Runs blocking file work: call it off the event loop.
    public func finish() throws -> MessageContent {
        if let failure { throw failure }
        guard let file else { return .inline(memory) }
        let key = BlobStore.newKey()
        try blobs.commit(tempFile: file.url, handle: file.handle, key: key)
        self.file = nil
        return .blob(key: key, size: size)
    }

    /// Throws away whatever was received (a refused message or a lost connection).
    public func discard() {
        if let file {
            try? file.handle.close()
            unlink(file.url.path)
        }
        file = nil
        memory = []
    }
}

extension MessageSink {
    /// The first bytes of the message (up to `max`), from memory or the spool file.
    public func head(max: Int) throws -> [UInt8] {
        guard let file else { return Array(memory.prefix(max)) }
        let fd = open(file.url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(errno: errno, "open spool file") }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: Swift.min(max, size))
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { throw FileSystemError(errno: errno, "read spool file") }
        return Array(out.prefix(n))
    }

    /// Calls `body` with the message's bytes from `offset` on, in pieces.
    public func forEachChunk(from offset: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        guard let file else {
            memory.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[Swift.min(offset, $0.count)...])) }
            return
        }
        let fd = open(file.url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(errno: errno, "open spool file") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = offset
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(position)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FileSystemError(errno: errno, "read spool file") }
            if n == 0 { break }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            position += n
        }
    }

    /// Finishes the message with `prefix` put in front of it (header fields added on submission).
    public func finish(prepending prefix: [UInt8]) throws -> MessageContent {
        try finish(editing: prefix.isEmpty ? [] : [MessageEdit(range: 0..<0, replacement: prefix)])
    }

    /// Finishes the message with byte ranges replaced (header fields removed, added). In memory that is a new array;
    /// a spooled message is rewritten into a new file: the edited head, then the rest copied as it was.
    public func finish(editing edits: [MessageEdit]) throws -> MessageContent {
        if let failure { throw failure }
        guard !edits.isEmpty else { return try finish() }
        let sorted = edits.sorted { $0.range.lowerBound < $1.range.lowerBound }
        let editedEnd = sorted.map(\.range.upperBound).max() ?? 0
        let delta = sorted.reduce(0) { $0 + $1.replacement.count - $1.range.count }
        guard let old = file else { return .inline(MessageEdit.apply(sorted, to: memory)) }
        let head = MessageEdit.apply(sorted, to: try self.head(max: editedEnd))
        let (url, handle) = try blobs.makeTempFile()
        var ok = false
        defer { if !ok { try? handle.close(); unlink(url.path) } }
        let fd = handle.fileDescriptor
        try head.withUnsafeBytes { try MessageSink.write($0, to: fd) }
        var copyError: Error?
        try forEachChunk(from: editedEnd) { chunk in
            guard copyError == nil else { return }
            do { try MessageSink.write(chunk, to: fd) } catch { copyError = error }
        }
        if let copyError { throw copyError }
        let key = BlobStore.newKey()
        try blobs.commit(tempFile: url, handle: handle, key: key)
        ok = true
        try? old.handle.close()
        unlink(old.url.path)
        file = nil
        return .blob(key: key, size: size + delta)
    }
}

/// One change to a received message before it is stored: `range` (of the message as received) replaced by
/// `replacement`; an empty range inserts.
public struct MessageEdit: Sendable {
    public var range: Range<Int>
    public var replacement: [UInt8]

    public init(range: Range<Int>, replacement: [UInt8]) {
        self.range = range
        self.replacement = replacement
    }

    /// Applies sorted, non-overlapping edits to `bytes` (ranges past the end are clipped).
    public static func apply(_ edits: [MessageEdit], to bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + edits.reduce(0) { $0 + $1.replacement.count })
        var position = 0
        for e in edits {
            let lower = min(max(e.range.lowerBound, position), bytes.count), upper = min(max(e.range.upperBound, lower), bytes.count)
            out += bytes[position..<lower]
            out += e.replacement
            position = upper
        }
        out += bytes[position...]
        return out
    }
}
