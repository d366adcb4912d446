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
    private var memory: [UInt8] = []
    private var file: (url: URL, handle: FileHandle)?
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
