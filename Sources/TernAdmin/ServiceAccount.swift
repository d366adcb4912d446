import Foundation
import TernConfig

/// The system user Tern runs as (the config's `user` and `group`). Started as root, `tern serve` binds its ports,
/// gives the data folder to this user and then drops root for good (groups, gid, uid), before it opens the store or
/// reads any network input; admin commands run as root drop to it before they open the store, so that every file in
/// the data folder keeps one owner. Nothing here depends on systemd.
public struct ServiceAccount: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t

    /// The user and group the config names, looked up in the system's databases (/etc/passwd, NSS).
    public static func lookup(user: String, group: String?) throws -> ServiceAccount {
        var pw = passwd(), result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(user, &pw, &buffer, buffer.count, &result) == 0, result != nil else {
            throw CommandFailure("user \"\(user)\" (the config's user setting) does not exist: create it (useradd --system --user-group --shell /usr/sbin/nologin \(user)) or change the setting")
        }
        var account = ServiceAccount(name: user, uid: pw.pw_uid, gid: pw.pw_gid)
        if let group {
            var gr = Glibc.group(), gresult: UnsafeMutablePointer<Glibc.group>?
            guard getgrnam_r(group, &gr, &buffer, buffer.count, &gresult) == 0, gresult != nil else {
                throw CommandFailure("group \"\(group)\" (the config's group setting) does not exist")
            }
            account.gid = gr.gr_gid
        }
        return account
    }

    /// What the config asks for, as the process stands: the account to drop to when running as root; nil when there
    /// is nothing to do (no `user`, or not root). Running as root without `user` gets one warning.
    public static func forConfig(_ config: TernConfiguration, warn: (String) -> Void) throws -> ServiceAccount? {
        guard geteuid() == 0 else { return nil }
        guard let runAs = config.runAs else {
            warn("running as root: set user = \"tern\" (a system user) at the top of the config, and tern drops root after binding its ports")
            return nil
        }
        let account = try lookup(user: runAs.user, group: runAs.group)
        return account.uid == 0 ? nil : account
    }

    /// Makes `folder` (created when missing, mode 0700) and everything in it owned by this account; files owned by
    /// someone else would be unreadable or unwritable after the drop.
    public func own(_ folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var paths = [folder.path]
        if let walker = FileManager.default.enumerator(atPath: folder.path) {
            while let relative = walker.nextObject() as? String { paths.append(folder.appendingPathComponent(relative).path) }
        }
        for path in paths {
            var st = stat()
            guard lstat(path, &st) == 0, st.st_uid != uid || st.st_gid != gid else { continue }
            guard lchown(path, uid, gid) == 0 else {
                throw CommandFailure("data folder: cannot give \(path) to \(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Drops root for good: supplementary groups, then the group, then the user; a way back to root is an error.
    public func become() throws {
        guard initgroups(name, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw CommandFailure("cannot switch to user \(name) (uid \(uid), gid \(gid)): \(String(cString: strerror(errno)))")
        }
        guard setuid(0) != 0, geteuid() == uid, getegid() == gid else {
            throw CommandFailure("root could be regained after switching to \(name): refusing to run")
        }
    }
}
