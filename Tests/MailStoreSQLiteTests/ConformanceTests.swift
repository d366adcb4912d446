import Foundation
import StoreConformance
import Testing
@testable import MailStoreSQLite

/// The store conformance suite (Tests/StoreConformance) on the SQLite backend.
@Suite struct SQLiteConformanceTests {
    @Test(arguments: StoreConformance.cases) func conforms(_ c: StoreConformance.Case) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-conf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let problems = try await c.run { clock in try SQLiteMailStore(dataDirectory: dir, clock: clock) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}

/// The directory conformance suite (Tests/StoreConformance) on the SQLite backend.
@Suite struct SQLiteDirectoryConformanceTests {
    @Test(arguments: DirectoryConformance.cases) func conforms(_ c: DirectoryConformance.Case) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-dir-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let problems = try await c.run { clock in try SQLiteMailStore(dataDirectory: dir, clock: clock) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}
