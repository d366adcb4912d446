import Foundation
import Glibc
import MailCore
import MailStore
import MailStorePostgres
import PostgresDatabase
import MailStoreSQLite
import Synchronization
import TernConfig

/// Makes the installation's store from its configuration: the one place that names a backend. Everything else —
/// the server, the admin commands — holds `any MailStore`.
public enum StoreFactory {
    /// The store the configuration names: the embedded SQLite store in the data folder, or the PostgreSQL database
    /// of `store` (the data folder then holds only the spool of messages on their way in, and the TLS material).
    ///
    /// `server`: opened by `tern serve` (which holds the data folder's lock). Anyone else (an admin command) does not
    /// upgrade an embedded database while a server runs on it: that server is of the older version (it would have
    /// upgraded the database as it started) and would go on writing the old way.
    public static func open(_ config: TernConfiguration, clock: any WallClock, server: Bool = false) async throws -> any MailStore {
        let folder = config.dataDirectory
        try DataFolderError.check(folder)
        if let url = config.store { return try await openPostgres(url, config: config, clock: clock) }
        do {
            return try SQLiteMailStore(dataDirectory: folder, clock: clock, queueLease: TimeInterval(config.delivery.lease.components.seconds),
                                       beforeUpgrade: { found in if !server { try refuseUpgradeUnderServer(folder, found: found) } })
        } catch let error as DataFolderError {
            throw error
        } catch StoreError.schemaTooNew(let found, let supported) {
            throw DataFolderError(path: folder.appendingPathComponent("tern.db").path,
                                  reason: "written by a newer Tern (schema version \(found); this tern reads up to \(supported)): run that version or a later one")
        } catch {
            throw DataFolderError(path: folder.path, reason: "cannot open the store: \(error)")
        }
    }

    /// The data folders' locks this process holds (an admin command that upgraded the database, `tern migrate`): a
    /// lock held is no sign of a server then, and the pid in the file is an earlier server's.
    private static let heldLocks = Mutex<Set<String>>([])

    /// The pid of the `tern serve` running on `folder` (written in its lock file), trusted only while another process
    /// holds the lock: a stale pid may belong to any process by now. Nil when no server runs there.
    public static func runningServer(_ folder: URL) -> Int32? {
        let path = folder.appendingPathComponent("serve.lock").path
        guard !heldLocks.withLock({ $0.contains(path) }) else { return nil }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) != 0, let text = try? String(contentsOfFile: path, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else { return nil }
        return pid
    }

    /// Throws when a `tern serve` holds the data folder's lock (or the lock cannot be taken at all). Otherwise this
    /// process keeps the lock until it ends (an admin command: moments), so that no server starts on the database while
    /// it is being upgraded.
    static func refuseUpgradeUnderServer(_ folder: URL, found: Int) throws {
        let path = folder.appendingPathComponent("serve.lock").path
        let lock = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            throw DataFolderError(path: path, reason: "cannot open the data folder's lock to upgrade the database: \(String(cString: strerror(errno)))")
        }
        guard flock(lock, LOCK_EX | LOCK_NB) != 0 else { return heldLocks.withLock { _ = $0.insert(path) } }
        Glibc.close(lock)
        throw DataFolderError(path: folder.appendingPathComponent("tern.db").path,
                              reason: "the `tern serve` running on this data folder is an earlier version (its database has schema version "
                                  + "\(found), older than this tern's): restart it with this version first (it upgrades the database as it "
                                  + "starts), then run this command again")
    }

    /// Removes the spool folder `open(location:)` made for a PostgreSQL store (in the temporary folder: a migration
    /// spools nothing, so it is empty); a data folder is left alone.
    public static func removeMigrationSpool(of store: any MailStore) {
        let folder = store.blobs.root.deletingLastPathComponent().deletingLastPathComponent()
        guard folder.lastPathComponent.hasPrefix("tern-migrate-"),
              folder.deletingLastPathComponent().standardizedFileURL == FileManager.default.temporaryDirectory.standardizedFileURL else { return }
        try? FileManager.default.removeItem(at: folder)
    }

    /// A store named on the command line (`tern migrate`): `sqlite:PATH` (a data folder, made if need be) or a
    /// `postgres://` URL (its password as for `store`). A data folder is locked as `tern serve` locks it, so that no
    /// server runs on it meanwhile.
    public static func open(location: String, config: TernConfiguration, clock: any WallClock) async throws -> any MailStore & StoreTransfer {
        if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
            var settings = config
            settings.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("tern-migrate-\(UUID().uuidString)")
            return try await openPostgres(location, config: settings, clock: clock)
        }
        guard location.hasPrefix("sqlite:"), location.count > 7 else {
            throw StoreOpenError(store: location, reason: "not a store: name a data folder as sqlite:PATH or a database as postgres://USER@HOST/DATABASE")
        }
        let folder = URL(fileURLWithPath: String(location.dropFirst(7)))
        try DataFolderError.check(folder)
        let lock = Glibc.open(folder.appendingPathComponent("serve.lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            throw StoreOpenError(store: location, reason: "a `tern serve` is running on \(folder.path): stop it first")
        }
        heldLocks.withLock { _ = $0.insert(folder.appendingPathComponent("serve.lock").path) }
        // The lock stays until the process ends.
        do {
            return try SQLiteMailStore(dataDirectory: folder, clock: clock, queueLease: TimeInterval(config.delivery.lease.components.seconds))
        } catch {
            throw StoreOpenError(store: location, reason: "\(error)")
        }
    }

    /// A store location as it may be shown: a database URL without its password.
    public static func shown(_ location: String) -> String {
        location.hasPrefix("postgres") ? PostgresURL.redacted(location) : location
    }

    static func openPostgres(_ url: String, config: TernConfiguration, clock: any WallClock) async throws -> PostgresMailStore {
        let shown = PostgresURL.redacted(url)
        var password: String?
        if let file = config.storePasswordFile {
            guard let text = try? String(contentsOf: file, encoding: .utf8) else {
                throw StoreOpenError(store: shown, reason: "cannot read store_password_file \(file.path)")
            }
            password = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["TERN_STORE_PASSWORD"] {
            password = fromEnvironment
        }
        do {
            return try await PostgresMailStore.open(url: url, password: password, spool: config.dataDirectory.appendingPathComponent("spool"),
                                                    clock: clock, queueLease: TimeInterval(config.delivery.lease.components.seconds))
        } catch StoreError.schemaTooNew(let found, let supported) {
            throw StoreOpenError(store: shown, reason: "written by a newer Tern (schema version \(found); this tern reads up to \(supported)): run that version or a later one")
        } catch let error as StoreError {
            throw StoreOpenError(store: shown, reason: "\(error)")
        } catch {
            throw StoreOpenError(store: shown, reason: "cannot use the database: \(PostgresMailStore.explain(error))")
        }
    }
}

/// A database the store cannot use, said with its URL (without the password) and why.
public struct StoreOpenError: Error, CustomStringConvertible {
    public var store: String
    public var reason: String
    public var description: String { "store \(store): \(reason)" }
}

/// A data folder the store cannot use, said with its path and what to do.
public struct DataFolderError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String {
        path.hasSuffix(".db") ? "database \(path): \(reason)" : "data folder \(path): \(reason)"
    }

    /// The folder exists and may be written, or can be made: else why not, naming the part of the path at fault.
    public static func check(_ folder: URL) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw DataFolderError(path: folder.path, reason: "not a directory") }
            guard access(folder.path, R_OK | W_OK | X_OK) == 0 else {
                throw DataFolderError(path: folder.path, reason: "no permission to read and write it (tern runs as uid \(getuid()))")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            // The nearest ancestor that exists says why.
            var parent = folder.deletingLastPathComponent()
            while parent.path != "/", !FileManager.default.fileExists(atPath: parent.path) { parent = parent.deletingLastPathComponent() }
            var parentIsDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: parent.path, isDirectory: &parentIsDir)
            let why = !parentIsDir.boolValue ? "cannot create it: \(parent.path) is a file, not a directory"
                : access(parent.path, W_OK | X_OK) != 0 ? "cannot create it: no permission to write in \(parent.path) (tern runs as uid \(getuid()))"
                : "cannot create it: \(error)"
            throw DataFolderError(path: folder.path, reason: why)
        }
    }
}
