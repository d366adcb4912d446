import Foundation
import MailCore
import MailStore
import MailStoreSQLite
import TernConfig

/// Makes the installation's store from its configuration: the one place that names a backend. Everything else —
/// the server, the admin commands — holds `any MailStore`.
public enum StoreFactory {
    /// The store the configuration names: today the embedded SQLite store in `data_directory` (a PostgreSQL backend
    /// joins here, issue 21).
    public static func open(_ config: TernConfiguration, clock: any WallClock) throws -> any MailStore {
        let folder = config.dataDirectory
        try DataFolderError.check(folder)
        do {
            return try SQLiteMailStore(dataDirectory: folder, clock: clock)
        } catch StoreError.schemaTooNew(let found, let supported) {
            throw DataFolderError(path: folder.appendingPathComponent("tern.db").path,
                                  reason: "written by a newer Tern (schema version \(found); this tern reads up to \(supported)): run that version or a later one")
        } catch {
            throw DataFolderError(path: folder.path, reason: "cannot open the store: \(error)")
        }
    }
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
