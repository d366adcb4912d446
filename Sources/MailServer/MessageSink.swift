import Foundation
import Glibc
import MailStore
import NIOCore

/// Collects one incoming message: in memory while it is small, in a temp file once it grows past the inline
/// limit, so a large message never sits in memory whole. Stops storing (but keeps counting) once the size
/// limit is passed, so the session can read to the end and answer 552.
final class MessageSink {
    let blobs: BlobStore
    let inlineLimit: Int
    let maxSize: Int
    private(set) var size = 0
    fileprivate(set) var memory: [UInt8] = []
    fileprivate(set) var file: (url: URL, handle: FileHandle)?
    private(set) var failure: Error?

    init(blobs: BlobStore, inlineLimit: Int, maxSize: Int, prefix: String) {
        self.blobs = blobs
        self.inlineLimit = inlineLimit
        self.maxSize = maxSize
        memory.reserveCapacity(min(inlineLimit, 16 * 1024))
        append(Array(prefix.utf8))
    }

    var tooLarge: Bool { size > maxSize }
    /// The message has not spilled to a file (finishing it does no I/O).
    var isInMemory: Bool { file == nil }

    func append(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { append(UnsafeRawBufferPointer($0)) }
    }

    func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    private func append(_ raw: UnsafeRawBufferPointer) {
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
    static func write(_ raw: UnsafeRawBufferPointer, to fd: Int32) throws {
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
    func finish() throws -> MessageContent {
        if let failure { throw failure }
        guard let file else { return .inline(memory) }
        let key = BlobStore.newKey()
        try blobs.commit(tempFile: file.url, handle: file.handle, key: key)
        self.file = nil
        return .blob(key: key, size: size)
    }

    /// Throws away whatever was received (a refused message or a lost connection).
    func discard() {
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
    func head(max: Int) throws -> [UInt8] {
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
    func forEachChunk(from offset: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws {
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

    /// Finishes the message with `prefix` put in front of it (header fields added on submission). In memory that is
    /// a concatenation; a spooled message is copied behind the prefix into a new file.
    func finish(prepending prefix: [UInt8]) throws -> MessageContent {
        if let failure { throw failure }
        guard !prefix.isEmpty else { return try finish() }
        guard let old = file else { return .inline(prefix + memory) }
        let (url, handle) = try blobs.makeTempFile()
        var ok = false
        defer { if !ok { try? handle.close(); unlink(url.path) } }
        let fd = handle.fileDescriptor
        func put(_ raw: UnsafeRawBufferPointer) throws { try MessageSink.write(raw, to: fd) }
        try prefix.withUnsafeBytes { try put($0) }
        var copyError: Error?
        try forEachChunk(from: 0) { chunk in
            guard copyError == nil else { return }
            do { try put(chunk) } catch { copyError = error }
        }
        if let copyError { throw copyError }
        let key = BlobStore.newKey()
        try blobs.commit(tempFile: url, handle: handle, key: key)
        ok = true
        try? old.handle.close()
        unlink(old.url.path)
        file = nil
        return .blob(key: key, size: size + prefix.count)
    }
}
