import Foundation
import Glibc
import MailStore
import Synchronization

/// Recipient resolutions kept in memory, so the SMTP server answers RCPT without a database round trip.
///
/// Every change to domains, accounts or aliases (by this process or by an admin command in another one) replaces
/// the file `directory.generation` in the data folder. Each lookup stats that file first: when its identity changed,
/// the cache is emptied. A stat costs about a microsecond, and a running server still sees new users at once.
final class DirectoryCache: Sendable {
    struct Generation: Equatable, Sendable {
        var inode: UInt64
        var seconds: Int
        var nanoseconds: Int
    }

    private struct State {
        var generation: Generation?
        var entries: [String: RecipientResolution] = [:]
        /// Each account's active Sieve script (nil: none); a script change replaces the generation file too.
        var scripts: [AccountID: String?] = [:]
    }

    static let maxEntries = 50_000
    let file: URL
    /// `file`'s path, worked out once: every lookup stats it (URL's `path` builds a new string each time).
    private let path: String
    private let state = Mutex(State())
    /// One replacement of the generation file at a time in this process: they share the temporary file's name, and a
    /// second writer's rename found it gone (the change was committed, its caller told it failed).
    private let replacing = Mutex(())

    init(dataDirectory: URL) {
        file = dataDirectory.appendingPathComponent("directory.generation")
        path = file.path
        if !FileManager.default.fileExists(atPath: file.path) { try? bump() }
    }

    func currentGeneration() -> Generation? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Generation(inode: UInt64(st.st_ino), seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec)
    }

    func lookup(_ key: String) -> RecipientResolution? { current { $0.entries[key] } }

    /// An account's active script as cached: nil when unknown, .some(nil) when it has none.
    func script(_ account: AccountID) -> String?? { current { $0.scripts[account] } }

    /// Reads the cache when the generation file is as it was; otherwise empties it (and answers nil).
    private func current<T>(_ read: (State) -> T?) -> T? {
        let generation = currentGeneration()
        return state.withLock { s in
            guard let generation, generation == s.generation else {
                s.entries.removeAll(keepingCapacity: true)
                s.scripts.removeAll(keepingCapacity: true)
                s.generation = generation
                return nil
            }
            return read(s)
        }
    }

    func storeScript(_ account: AccountID, _ script: String?, computedAt generation: Generation?) {
        guard let generation else { return }
        state.withLock { s in
            guard s.generation == generation, currentGeneration() == generation else { return }
            if s.scripts.count >= Self.maxEntries { s.scripts.removeAll(keepingCapacity: true) }
            s.scripts[account] = .some(script)
        }
    }

    /// Stores a resolution computed while `generation` was current; dropped if the directory changed meanwhile.
    func store(_ key: String, _ resolution: RecipientResolution, computedAt generation: Generation?) {
        guard let generation else { return }
        state.withLock { s in
            guard s.generation == generation, currentGeneration() == generation else { return }
            if s.entries.count >= Self.maxEntries { s.entries.removeAll(keepingCapacity: true) }
            s.entries[key] = resolution
        }
    }

    /// Marks the directory as changed, for every process that caches it.
    func bump() throws {
        let tmp = file.deletingLastPathComponent().appendingPathComponent("directory.generation.\(getpid()).tmp")
        try replacing.withLock { _ in
            // The contents only need to differ from the last write's (the file's identity is what readers compare).
            var rng = SystemRandomNumberGenerator()
            try Data("\(rng.next())\n".utf8).write(to: tmp)
            guard rename(tmp.path, file.path) == 0 else { throw FileSystemError(errno: errno, "rename \(file.path)") }
        }
        state.withLock { $0.entries.removeAll(); $0.scripts.removeAll(); $0.generation = nil }
    }
}
