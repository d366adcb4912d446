import Foundation

/// A whole installation moved between backends (`tern migrate`), table by table, every id kept: UIDVALIDITY, UIDs,
/// MODSEQs and flags stay what clients have cached, so no client resynchronises. Both backends keep the same tables
/// with the same columns (PostgreSQL's schema follows SQLite's), so a row travels as plain values; what differs —
/// where large contents live, how ids are handed out, which counters it keeps and how — each backend handles itself.
public protocol StoreTransfer: Sendable {
    /// Rows of `table` in key order, after the row whose key values are `after` (from the start when nil); each row's
    /// values in `table.columns` order. Contents are not in the `message` rows: read them with `contents(of:)`.
    func transferRows(_ table: TransferTable, after: [TransferValue]?, limit: Int) async throws -> [[TransferValue]]
    /// Inserts rows as they are, ids included, in one transaction. For `message` each row has its content appended as a
    /// last `.blob` value.
    func insertTransferRows(_ table: TransferTable, _ rows: [[TransferValue]]) async throws
    /// The highest id ever handed out in each table whose ids clients and logs name (`TransferTable.neverReused`),
    /// rows since deleted included.
    func idHighWater() async throws -> [String: Int64]
    /// After every table: ids handed out from now on come after the highest copied and after `idHighWater` (the
    /// source's): an id is never handed out twice, even across a migration (IMAP's MAILBOXID and EMAILID, RFC 8474).
    func finishTransfer(idHighWater: [String: Int64]) async throws
}

public enum TransferValue: Sendable, Hashable, Comparable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public static func < (a: TransferValue, b: TransferValue) -> Bool { a.rank < b.rank }

    private var rank: Int {
        switch self { case .null: 0; case .integer: 1; case .real: 2; case .text: 3; case .blob: 4 }
    }

    public var integer: Int64? { if case .integer(let v) = self { v } else { nil } }
}

/// One table as it travels: its columns (each with the kind of value it holds) and its key (the order rows are read
/// in, and where a page continues).
public struct TransferTable: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable { case integer, real, text, boolean, blob }
    public struct Column: Sendable, Hashable {
        public let name: String
        public let kind: Kind
        public let nullable: Bool
    }

    public let name: String
    public let columns: [Column]
    public let key: [String]
    /// Rows left behind (contents no mailbox or queue entry holds any more).
    public let filter: String?
    /// Ids that come from a sequence (PostgreSQL identity columns, SQLite's id_sequence).
    public let hasGeneratedID: Bool
    public var description: String { name }

    init(_ name: String, _ columns: [(String, Kind, Bool)], key: [String], filter: String? = nil, generatedID: Bool = false) {
        self.name = name
        self.columns = columns.map { Column(name: $0.0, kind: $0.1, nullable: $0.2) }
        self.key = key
        self.filter = filter
        hasGeneratedID = generatedID
    }

    public var keyIndexes: [Int] { key.map { k in columns.firstIndex { $0.name == k }! } }

    /// Tables whose ids are never handed out again once used, even after their row is gone.
    public static let neverReused = ["message", "mailbox", "queue"]

    /// Every table, in an order where each row's references come before it. Counters (a message's reference count, a
    /// mailbox's message count) are not copied: the destination counts them again as rows arrive.
    /// Queue leases are not copied either: nothing holds them once the source is stopped.
    public static let all: [TransferTable] = [
        TransferTable("domain", [("id", .integer, false), ("name", .text, false), ("created", .real, false)], key: ["id"], generatedID: true),
        TransferTable("account", [("id", .integer, false), ("domain_id", .integer, false), ("localpart", .text, false),
                                  ("password", .text, false), ("created", .real, false), ("last_uidvalidity", .integer, false)],
                      key: ["id"], generatedID: true),
        TransferTable("alias", [("id", .integer, false), ("domain_id", .integer, false), ("localpart", .text, false),
                                ("targets", .text, false)], key: ["id"], generatedID: true),
        TransferTable("mailbox", [("id", .integer, false), ("account_id", .integer, false), ("name", .text, false),
                                  ("special_use", .text, true), ("uidvalidity", .integer, false), ("uidnext", .integer, false),
                                  ("highestmodseq", .integer, false), ("first_recent_uid", .integer, false)],
                      key: ["id"], generatedID: true),
        TransferTable("subscription", [("account_id", .integer, false), ("name", .text, false)], key: ["account_id", "name"]),
        TransferTable("sieve_script", [("account_id", .integer, false), ("name", .text, false), ("content", .text, false),
                                       ("active", .boolean, false)], key: ["account_id", "name"]),
        // What scripts remember (vacation replies sent, duplicate ids seen): a migrated user does not answer a sender twice.
        TransferTable("sieve_seen", [("key", .text, false), ("until", .real, false)], key: ["key"]),
        TransferTable("message", [("id", .integer, false), ("size", .integer, false), ("received", .real, false),
                                  ("envelope", .text, false)], key: ["id"], filter: "refcount > 0", generatedID: true),
        TransferTable("mailbox_message", [("mailbox_id", .integer, false), ("uid", .integer, false), ("message_id", .integer, false),
                                          ("modseq", .integer, false), ("flags", .integer, false), ("keywords", .text, false),
                                          ("internal_date", .real, false), ("saved", .real, false)], key: ["mailbox_id", "uid"]),
        TransferTable("expunged", [("mailbox_id", .integer, false), ("uid", .integer, false), ("modseq", .integer, false)],
                      key: ["mailbox_id", "uid"]),
        TransferTable("queue", [("id", .integer, false), ("queue_id", .text, false), ("message_id", .integer, false),
                                ("created", .real, false), ("delay_notified", .boolean, false)], key: ["id"], generatedID: true),
        TransferTable("queue_recipient", [("id", .integer, false), ("queue_id", .integer, false), ("address", .text, false),
                                          ("domain", .text, false), ("notify", .text, true), ("orcpt", .text, true),
                                          ("status", .integer, false), ("attempts", .integer, false), ("next_attempt", .real, false),
                                          ("last_attempt", .real, true), ("last_reply", .text, true), ("remote_host", .text, true)],
                      key: ["id"], generatedID: true),
        TransferTable("dkim_key", [("domain", .text, false), ("selector", .text, false), ("algorithm", .text, false),
                                   ("private_key", .text, false), ("created", .real, false)], key: ["domain", "selector"]),
        TransferTable("bayes_token", [("owner", .integer, false), ("token", .integer, false), ("spam", .integer, false),
                                      ("ham", .integer, false)], key: ["owner", "token"]),
        TransferTable("bayes_total", [("owner", .integer, false), ("spam", .integer, false), ("ham", .integer, false)], key: ["owner"]),
        TransferTable("bayes_trained", [("owner", .integer, false), ("message_key", .text, false), ("spam", .boolean, false)],
                      key: ["owner", "message_key"]),
        TransferTable("delivery_log", [("id", .integer, false), ("at", .real, false), ("queue_id", .text, false),
                                       ("message_id", .text, true), ("kind", .text, false), ("detail", .text, false),
                                       ("related", .text, true)], key: ["id"], generatedID: true),
    ]

    public static func named(_ name: String) -> TransferTable? { all.first { $0.name == name } }
}

/// Copies one store into another, empty one. The source must not change meanwhile (every server on it stopped).
public enum StoreMigration {
    public struct NotEmpty: Error, CustomStringConvertible {
        public let table: String
        public var description: String { "the destination is not empty (its \(table) table has rows): migrate only into a new store" }
    }

    public struct Mismatch: Error, CustomStringConvertible {
        public let table: String, source: Int, destination: Int
        public var description: String { "\(table): \(source) rows in the source, \(destination) in the destination after the copy" }
    }

    /// Rows read per page; contents are copied in groups of at most `contentBatch` octets (one larger message alone).
    static let pageSize = 500
    static let contentBatch = 16 << 20

    /// Copies every table; `progress(table, rows so far)` is told after each page. Returns each table's row count,
    /// checked against the destination's.
    @discardableResult
    public static func copy(from source: any MailStore & StoreTransfer, to destination: any MailStore & StoreTransfer,
                            progress: @Sendable (String, Int) -> Void = { _, _ in }) async throws -> [(table: String, rows: Int)] {
        for table in TransferTable.all where try await !destination.transferRows(table, after: nil, limit: 1).isEmpty {
            throw NotEmpty(table: table.name)
        }
        var counts: [(table: String, rows: Int)] = []
        for table in TransferTable.all {
            var after: [TransferValue]? = nil
            var copied = 0
            while true {
                let rows = try await source.transferRows(table, after: after, limit: pageSize)
                guard let last = rows.last else { break }
                if table.name == "message" {
                    try await copyMessages(rows, from: source, to: destination)
                } else {
                    try await destination.insertTransferRows(table, rows)
                }
                copied += rows.count
                progress(table.name, copied)
                after = table.keyIndexes.map { last[$0] }
            }
            counts.append((table.name, copied))
        }
        try await destination.finishTransfer(idHighWater: try await source.idHighWater())
        for (table, count) in counts {
            let copied = try await Self.count(TransferTable.named(table)!, in: destination)
            if copied != count { throw Mismatch(table: table, source: count, destination: copied) }
        }
        return counts
    }

    /// Message rows with their contents, read and written in groups small enough to hold in memory.
    static func copyMessages(_ rows: [[TransferValue]], from source: any MailStore & StoreTransfer,
                             to destination: any MailStore & StoreTransfer) async throws {
        var group: [[TransferValue]] = []
        var octets = 0
        func flush() async throws {
            guard !group.isEmpty else { return }
            let ids = group.map { $0[0].integer! }
            let contents = try await source.contents(of: ids)
            let full = try group.map { row -> [TransferValue] in
                guard let content = contents[row[0].integer!] else { throw StoreError.notFound("content of message \(row[0])") }
                return row + [.blob(content)]
            }
            try await destination.insertTransferRows(TransferTable.named("message")!, full)
            group.removeAll()
            octets = 0
        }
        for row in rows {
            let size = Int(row[1].integer ?? 0)
            if octets + size > contentBatch { try await flush() }
            group.append(row)
            octets += size
        }
        try await flush()
    }

    /// Rows of a table, counted a page at a time.
    public static func count(_ table: TransferTable, in store: any StoreTransfer) async throws -> Int {
        var after: [TransferValue]? = nil
        var n = 0
        while true {
            let rows = try await store.transferRows(table, after: after, limit: 5000)
            guard let last = rows.last else { return n }
            n += rows.count
            after = table.keyIndexes.map { last[$0] }
        }
    }
}
