import Foundation
import Glibc
import Synchronization

/// Message contents as immutable files under `blobs/<2 hex>/<key>`.
///
/// A blob is written to a temporary file, fsync'd and renamed into place; the directory fsync that makes the
/// rename durable is left to the group commit, which does it once per directory for a whole batch before the
/// database commit that references the blob.
public struct BlobStore: Sendable {
    public let root: URL
    public let tmp: URL

    public init(root: URL, tmp: URL) throws {
        self.root = root
        self.tmp = tmp
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    /// A new unique blob key: 128 random bits, safe as a file name. (No time in it: a key names contents, and two
    /// processes, or a clock set back, must never make the same one.)
    public static func newKey() -> String {
        var rng = SystemRandomNumberGenerator()
        return String(rng.next(), radix: 16) + "-" + String(rng.next(), radix: 16)
    }

    /// How old a file no message names must be before the clean-up at start removes it. A younger one may be an admin
    /// command's work in progress beside the server (`tern import` places a large message's file some messages before
    /// it commits their rows; `tern sendmail` spools as it reads), not a crash's leftover.
    public static let leftoverAge: TimeInterval = 24 * 3600

    /// Whether the file at `url` was last written at least `leftoverAge` before `now`.
    public static func isLeftover(_ url: URL, now: Date) -> Bool {
        let written = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? .distantPast
        return written < now.addingTimeInterval(-leftoverAge)
    }

    /// Removes the leftovers (`isLeftover`) directly in `folder`: what sessions that died mid-message left there.
    public static func removeLeftovers(in folder: URL, now: Date) {
        for f in (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [] where isLeftover(f, now: now) {
            try? FileManager.default.removeItem(at: f)
        }
    }

    public func directory(for key: String) -> URL {
        root.appendingPathComponent(String(key.suffix(2)), isDirectory: true)
    }

    public func url(for key: String) -> URL {
        directory(for: key).appendingPathComponent(key)
    }

    /// A temporary file for a message being received; `commit(tempFile:key:)` moves it into place.
    public func makeTempFile() throws -> (URL, FileHandle) {
        let url = tmp.appendingPathComponent("incoming-\(BlobStore.newKey())")
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError(errno: errno, "create \(url.path)") }
        return (url, FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    /// fsyncs a finished temp file and renames it to its blob name. The directory is fsync'd by `syncDirectories`.
    public func commit(tempFile: URL, handle: FileHandle, key: String) throws {
        guard fsync(handle.fileDescriptor) == 0 else { throw FileSystemError(errno: errno, "fsync") }
        try handle.close()
        let dir = directory(for: key)
        if !FileManager.default.fileExists(atPath: dir.path) {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try BlobStore.syncDirectory(root)
        }
        guard rename(tempFile.path, url(for: key).path) == 0 else { throw FileSystemError(errno: errno, "rename") }
    }

    /// Writes a whole blob from memory (used by import).
    public func write(_ bytes: [UInt8], key: String) throws {
        let (url, handle) = try makeTempFile()
        try bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(handle.fileDescriptor, raw.baseAddress! + off, raw.count - off)
                guard n > 0 else { throw FileSystemError(errno: errno, "write") }
                off += n
            }
        }
        try commit(tempFile: url, handle: handle, key: key)
    }

    public func read(_ key: String) throws -> [UInt8] {
        Array(try Data(contentsOf: url(for: key)))
    }

    public func remove(_ key: String) {
        unlink(url(for: key).path)
    }

    public func syncDirectories(for keys: some Sequence<String>) throws {
        for dir in Set(keys.map { directory(for: $0) }) { try BlobStore.syncDirectory(dir) }
    }

    static func syncDirectory(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(errno: errno, "open \(url.path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FileSystemError(errno: errno, "fsync \(url.path)") }
    }
}

public struct FileSystemError: Error, CustomStringConvertible {
    public let code: Int32
    public let operation: String
    public init(errno: Int32, _ operation: String) {
        self.code = errno
        self.operation = operation
    }
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Message contents recently read, kept in memory up to a total size, oldest dropped first. For a store whose
/// contents live across the network (PostgreSQL), this is what the kernel's page cache is to the embedded store's
/// files. A message's content never changes and a message id is never reused, so an entry needs no invalidation.
public final class ContentCache: Sendable {
    private struct State {
        var entries: [MessageID: [UInt8]] = [:]
        var order: [MessageID] = []
        var head = 0
        var bytes = 0
    }

    private let state = Mutex(State())
    public let budget: Int
    /// Contents larger than this are never kept (they are streamed, or read whole only rarely).
    public let largest: Int

    public init(budget: Int = 128 << 20, largest: Int = 256 << 10) {
        self.budget = budget
        self.largest = largest
    }

    public func get(_ id: MessageID) -> [UInt8]? {
        state.withLock { $0.entries[id] }
    }

    public func put(_ id: MessageID, _ content: [UInt8]) {
        guard content.count <= largest else { return }
        state.withLock { s in
            guard s.entries[id] == nil else { return }
            s.entries[id] = content
            s.order.append(id)
            s.bytes += content.count + 64
            while s.bytes > budget, s.head < s.order.count {
                let old = s.order[s.head]
                s.head += 1
                if let e = s.entries.removeValue(forKey: old) { s.bytes -= e.count + 64 }
            }
            if s.head > 4096 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }

    public var size: Int { state.withLock { $0.bytes } }
}
