import Foundation
import MailStore
import NIOSSL
import PostgresNIO

/// Where the database is, as written in the config: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, with
/// `?host=/run/postgresql` for a Unix socket folder (as libpq reads it) and `?sslmode=disable|prefer|require`
/// (default `prefer` over TCP). The password may come separately (a password file or the environment) so that the
/// config need not hold it.
public struct PostgresURL: Sendable, Equatable {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    /// The folder holding the server's socket, when connecting through one.
    public var socketFolder: String?
    public var sslMode: String

    public static func parse(_ text: String, password: String? = nil) throws -> PostgresURL {
        guard let parts = URLComponents(string: text), ["postgres", "postgresql"].contains(parts.scheme ?? "") else {
            throw StoreError.invalid("\(text) is not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)")
        }
        guard let user = parts.user, !user.isEmpty else { throw StoreError.invalid("\(text) names no user (postgres://USER@HOST/DATABASE)") }
        let database = String(parts.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw StoreError.invalid("\(text) names no database (postgres://USER@HOST/DATABASE)") }
        let query = Dictionary((parts.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let sslMode = query["sslmode"] ?? "prefer"
        guard ["disable", "prefer", "require"].contains(sslMode) else {
            throw StoreError.invalid("sslmode=\(sslMode) in \(text): use disable, prefer or require")
        }
        let socket = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
        guard socket != nil || !(parts.host ?? "").isEmpty else { throw StoreError.invalid("\(text) names no host") }
        return PostgresURL(user: user, password: password ?? parts.password, host: parts.host ?? "", port: parts.port ?? 5432,
                           database: database, socketFolder: socket, sslMode: sslMode)
    }

    /// The URL as it may be shown (in logs and errors): the password left out.
    public static func redacted(_ text: String) -> String {
        guard var parts = URLComponents(string: text), parts.password != nil else { return text }
        parts.password = nil
        return parts.string ?? text
    }

    public var configuration: PostgresClient.Configuration {
        var config: PostgresClient.Configuration
        if let socketFolder {
            config = .init(unixSocketPath: "\(socketFolder)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch sslMode {
            case "disable": tls = .disable
            case "require": tls = .require(.makeClientConfiguration())
            default: tls = .prefer(.makeClientConfiguration())
            }
            config = .init(host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        // A bounded pool (issue 21: a node never opens more than this many connections).
        config.options.maximumConnections = 20
        // The server gives up on a lock or a statement before the store's own deadline (20 s) answers the client: a
        // transaction is then rolled back for certain, rather than left to commit after its client was told it failed.
        config.options.additionalStartupParameters = [("lock_timeout", "10s"), ("statement_timeout", "15s")]
        return config
    }
}
