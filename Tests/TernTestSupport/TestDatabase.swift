import Foundation
import MailStore
import PostgresDatabase
import PostgresNIO

/// The PostgreSQL server tests may use: the throwaway cluster scripts/test starts (scripts/pg-test-cluster) and names
/// in TERN_TEST_POSTGRES. Each test makes a database of its own there.
public enum TestDatabase {
    public static let url = ProcessInfo.processInfo.environment["TERN_TEST_POSTGRES"]
    /// Whether tests that need the server run: with it, or when TERN_REQUIRE_POSTGRES says they must (and then fail
    /// without it rather than be skipped).
    public static var available: Bool { url != nil || ProcessInfo.processInfo.environment["TERN_REQUIRE_POSTGRES"] != nil }

    /// A new, empty database on the test server; returns its URL.
    public static func create() async throws -> String {
        guard let url else { throw StoreError.invalid("TERN_TEST_POSTGRES is not set: run scripts/test, or start scripts/pg-test-cluster") }
        let base = try PostgresURL.parse(url)
        let client = PostgresClient(configuration: base.configuration)
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            group.cancelAll()
        }
        var parts = URLComponents(string: url)!
        parts.path = "/" + name
        return parts.string!
    }
}
