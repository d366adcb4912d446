import Foundation
import Glibc
import Testing
@testable import StoreFactory

/// `tern queue retry` wakes a running server with SIGUSR1 to the pid in `serve.lock`, trusted only while another process
/// holds the lock. An admin command that upgraded the database holds the lock itself (until it ends): it took that for
/// a server and signalled the pid an earlier server left in the file, which may be any process by now.
@Suite struct DataFolderLockTests {
    @Test func theServersPidIsTrustedOnlyWhileAnotherHoldsTheLock() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tern-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("serve.lock").path
        #expect(StoreFactory.runningServer(folder) == nil)   // no lock file

        // A server: the lock held through its own open file, its pid written in it.
        let server = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(flock(server, LOCK_EX | LOCK_NB) == 0)
        try Data("4242\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(StoreFactory.runningServer(folder) == 4242)
        close(server)
        #expect(StoreFactory.runningServer(folder) == nil)   // it ended; the pid in the file is stale

        // This process upgrading the database: it holds the lock, and the stale pid is not a server.
        try StoreFactory.refuseUpgradeUnderServer(folder, found: 14)
        #expect(StoreFactory.runningServer(folder) == nil)
    }
}
