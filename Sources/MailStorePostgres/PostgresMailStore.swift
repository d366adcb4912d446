import Foundation
import Logging
import MailCore
import MailStore
import PostgresDatabase
import PostgresNIO
import Synchronization

/// The store on PostgreSQL, for installations that outgrow one machine: several Tern nodes share one database and so
/// one installation (issue 21). Every store protocol, run through the same conformance suites as the SQLite backend.
/// Message contents live in the database (above the inline limit in chunks), so that a node keeps nothing of its own
/// but the spool where a session writes a large message as it arrives. Not yet offered in the config: what several
/// nodes need of each other (change notices between nodes, queue leases) comes next.
public final class PostgresMailStore: PostgresTransactional {
    /// Contents up to this size are written with their message row; larger ones are spooled to a file while they
    /// arrive, then copied into the database in chunks.
    public static let inlineLimit = 256 * 1024
    public let clock: any WallClock
    /// How long a queue scan holds the recipients it takes (`delivery.lease`).
    public let queueLease: TimeInterval
    /// The spool: large contents on their way in (`Delivery.content` `.blob`), removed once in the database.
    public let blobs: BlobStore
    let changes = Observers<MailboxID>()
    let treeChanges = Observers<AccountID>()
    let queueChanges = Signal()
    /// Recipient resolutions, forgotten at every directory notice (from any node) and whenever notices may have been
    /// missed; not used while the listening connection is lost.
    let resolutions = ResolutionCache()
    /// Logins verified recently (the slow hash skipped), under the same rule.
    let verifiedLogins = VerifiedLogins<Int>()
    /// Contents read recently (FETCH, SEARCH BODY and RETR read them again and again), bounded.
    let contentCache = ContentCache()
    /// Deliveries that share a transaction.
    let committer = PostgresCommitter()
    /// Sessions' other writes (STORE, EXPUNGE, COPY, MOVE) that share a transaction.
    let writes = PostgresWriteBatcher()
    /// This store's name in the directory notices it causes.
    let node = BlobStore.newKey()
    let client: PostgresClient
    let logger: Logger
    /// Runs the client's connection pool until `close()`.
    private let runner: Task<Void, Never>
    /// Listens for the changes other nodes commit (and this one's, which its observers hear twice: harmless, as an
    /// observer only looks again) until `close()`.
    private let listener = ListenerTask()
    /// False while the listening connection is lost (the database is down or unreachable, as far as this node can
    /// tell): operations then give up after `outageDeadline` instead of `deadline`, so that clients hear a temporary
    /// failure at once rather than after a long wait.
    let reachable = Mutex(true)
    /// The deadlines of operations under way (`bounded`).
    let deadlines = Deadlines()
    /// The clean-up after expunges and deletions: whether one runs, and whether another was asked for meanwhile.
    let garbage = BatchQueue<Void>(maxBatch: .max)
    /// When the listening connection last heard this node's own check notice.
    let heardCheck = Mutex(ContinuousClock.now)
    /// The notices the listener ended itself on (it stopped hearing them), for tests.
    let staleListens = Mutex(0)

    /// Connects to the database `url` names (see `PostgresURL`), brings its schema up to date and returns the store.
    /// Throws `StoreError.schemaTooNew` for a database a newer Tern wrote.
    /// `spool` is a local folder for contents on their way in.
    /// `listenerCheck`: how often the listening connection proves it still hears (see `listenForChanges`).
    public static func open(url: String, password: String? = nil, spool: URL, clock: any WallClock,
                            queueLease: TimeInterval = QueueLease.duration, listenerCheck: Duration = .seconds(30),
                            logger: Logger = Logger(label: "tern.postgres")) async throws -> PostgresMailStore {
        let blobs = try BlobStore(root: spool.appendingPathComponent("incoming"), tmp: spool.appendingPathComponent("tmp"))
        let store = PostgresMailStore(configuration: try PostgresURL.parse(url, password: password).configuration, blobs: blobs,
                                      clock: clock, queueLease: queueLease, logger: logger)
        do {
            try await PostgresSchema.migrate(store.client, logger: logger)
        } catch {
            store.close()
            throw error
        }
        store.listener.start { [weak store] in await store?.listenForChanges(check: listenerCheck) }
        return store
    }

    init(configuration: PostgresClient.Configuration, blobs: BlobStore, clock: any WallClock, queueLease: TimeInterval, logger: Logger) {
        self.clock = clock
        self.queueLease = queueLease
        self.blobs = blobs
        self.logger = logger
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// What went wrong with the database in words an admin can act on (PostgresNIO keeps its errors' details out of
    /// their plain description, to keep secrets out of logs; the server's message and the connection error are safe).
    public static func explain(_ error: Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] {
                return "the server said: \(message)" + (e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = e.underlying { return "\(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }

    /// Closes every connection; the store is unusable afterwards.
    public func close() {
        listener.cancel()
        runner.cancel()
    }

    deinit {
        listener.cancel()
        runner.cancel()
    }

    /// Holds one connection listening on `tern_changes` and tells this process's observers what other nodes changed;
    /// reconnects (after 1, 2, 4… up to 30 seconds) when the connection is lost, and then tells every observer to
    /// look again, since notices sent meanwhile are lost.
    ///
    /// A connection can die without a word (a NAT or a firewall dropping it while idle): every `check` the node sends
    /// itself a notice through another connection, and when the listening one has not heard it a few seconds later,
    /// it is closed and listening starts again (with the look at everything that follows a gap).
    func listenForChanges(check: Duration = .seconds(30)) async {
        // The backoff and whether listening ever started, shared with the listening task.
        let state = Shared((delay: 1.0, first: true))
        while !Task.isCancelled {
            do {
                try await client.withConnection { db in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await db.listen(on: "tern_changes") { notices in
                                let first = state.value.withLock { s in
                                    defer { s = (1, false) }
                                    return s.first
                                }
                                self.reachable.withLock { $0 = true }
                                if !first { try await self.resync() }
                                for try await notice in notices { self.dispatch(notice.payload) }
                            }
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: check)
                                let sent = ContinuousClock.now
                                let (client, payload) = (self.client, self.checkPayload)
                                _ = try? await self.bounded { try await client.query("SELECT pg_notify('tern_changes', \(payload))") }
                                // Its echo has a few seconds (at most ten) to come back, however often it is sent.
                                try await Task.sleep(for: min(max(check, .seconds(2)), .seconds(10)))
                                if self.heardCheck.withLock({ $0 }) < sent {
                                    self.staleListens.withLock { $0 += 1 }
                                    throw StoreUnavailable("the listening connection stopped hearing notices")
                                }
                            }
                        }
                        defer { group.cancelAll() }
                        try await group.next()
                    }
                }
            } catch {
                if Task.isCancelled { return }
                // Whenever listening starts again, even when it never started before, what was missed is looked at.
                state.value.withLock { $0.first = false }
                reachable.withLock { $0 = false }
                logger.warning("lost the database's change notices; reconnecting", metadata: ["error": "\(Self.explain(error))"])
            }
            let delay = state.value.withLock { s in
                defer { s.delay = min(s.delay * 2, 30) }
                return s.delay
            }
            try? await Task.sleep(for: .seconds(delay))
        }
    }

    /// The notice this node sends itself to check that it still hears (`listenForChanges`); tests may change it.
    var checkPayload: String { checkPayloadOverride.withLock { $0 } ?? "c " + node }
    let checkPayloadOverride = Mutex<String?>(nil)

    func dispatch(_ payload: String) {
        let parts = payload.split(separator: " ")
        if parts.first == "c" {
            if parts.count > 1, parts[1] == node { heardCheck.withLock { $0 = .now } }
            return
        }
        if parts.first == "d" {
            // A directory change; this node forgot its answers already when the change was its own.
            if parts.count < 2 || parts[1] != node { resolutions.bump() }
            return
        }
        switch (parts.first, parts.count > 1 ? Int64(parts[1]) : nil) {
        case ("m", let id?): changes.notify(id)
        case ("t", let id?): treeChanges.notify(id)
        case ("q", _): queueChanges.notify()
        default: break
        }
    }

    /// After a gap in the notices: every mailbox and mailbox list may have changed, and the queue too.
    func resync() async throws {
        resolutions.bump()
        changes.notify(try await column("SELECT id FROM mailbox", as: Int64.self))
        treeChanges.notify(try await column("SELECT id FROM account", as: Int64.self))
        queueChanges.notify()
    }

    /// Rows of one query, each decoded as `type` (on the transaction's connection, or on any within the deadline).
    func all<each T: PostgresDecodable>(_ query: PostgresQuery, on db: PostgresConnection? = nil,
                                        as type: (repeat each T).Type) async throws -> [(repeat each T)] {
        try await rows(query, on: db).map { try $0.decode((repeat each T).self) }
    }

    /// The first column of every row.
    func column<T: PostgresDecodable>(_ query: PostgresQuery, on db: PostgresConnection? = nil, as type: T.Type) async throws -> [T] {
        try await rows(query, on: db).map { try $0.decode(T.self) }
    }

    /// The rows of one query, read whole.
    func rows(_ query: PostgresQuery, on db: PostgresConnection?) async throws -> [PostgresRow] {
        if let db { return try await db.query(query, logger: logger).collect() }
        let (client, logger) = (self.client, self.logger)
        return try await bounded { try await client.query(query, logger: logger).collect() }
    }

    /// The rows of a prepared statement (PostgreSQL parses and plans it once per connection, not at every call).
    func prepared<S: PostgresPreparedStatement>(_ statement: S, on db: PostgresConnection?) async throws -> [S.Row] where S.Row: Sendable {
        if let db {
            var out: [S.Row] = []
            for try await row in try await db.execute(statement, logger: logger) { out.append(row) }
            return out
        }
        let (client, logger) = (self.client, self.logger)
        return try await bounded {
            var out: [S.Row] = []
            for try await row in try await client.execute(statement, logger: logger) { out.append(row) }
            return out
        }
    }

    /// The first column of the first row, or nil.
    func one<T: PostgresDecodable>(_ query: PostgresQuery, on db: PostgresConnection? = nil, as type: T.Type) async throws -> T? {
        try await all(query, on: db, as: T.self).first
    }

    /// Runs a statement; returns how many rows it returned (a statement that changes rows says how many with
    /// `RETURNING 1`).
    @discardableResult
    func execute(_ query: PostgresQuery, on db: PostgresConnection) async throws -> Int {
        var count = 0
        for try await _ in try await db.query(query, logger: logger) { count += 1 }
        return count
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws (with its own error,
    /// not the client's wrapper, so that callers see the StoreError they would see from any backend).
    public func transaction<R: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        let (client, logger) = (self.client, self.logger)
        return try await bounded { try await client.inTransaction(logger: logger, body) }
    }

    /// How long one store operation may take, waiting for a connection included, before it is answered as
    /// unavailable (SMTP 451, IMAP NO [UNAVAILABLE]): well inside every client's timeout.
    static let deadline: Duration = .seconds(20)
    static let outageDeadline: Duration = .seconds(3)

    /// Runs `body` within `deadline`; a lost or unreachable database becomes `StoreUnavailable`. The caller is answered
    /// when the deadline passes even if `body` does not end then (a query on a connection that died without a word,
    /// a wait for a connection that cannot be made): `body` is cancelled and left to finish on its own.
    func bounded<R: Sendable>(_ body: @escaping @Sendable () async throws -> R) async throws -> R {
        let limit = reachable.withLock { $0 } ? Self.deadline : Self.outageDeadline
        let answer = Answer<R>()
        let work = Task {
            do { answer.give(.success(try await body())) } catch { answer.give(.failure(error)) }
        }
        let deadline = deadlines.add(limit) {
            if answer.give(.failure(StoreUnavailable("the database did not answer within \(limit)"))) { work.cancel() }
        }
        defer { deadlines.remove(deadline) }
        do {
            return try await withTaskCancellationHandler {
                try await answer.value()
            } onCancel: {
                work.cancel()
                answer.give(.failure(CancellationError()))
            }
        } catch let error where Self.isOutage(error) {
            throw StoreUnavailable(Self.explain(error))
        }
    }

    /// Errors that say the database cannot be reached or is going away (not that a statement was wrong).
    static func isOutage(_ error: Error) -> Bool {
        if error is StoreUnavailable { return false }
        if String(reflecting: type(of: error)).contains("ConnectionPoolError") { return true }
        guard let e = error as? PSQLError else { return false }
        guard let state = e.serverInfo?[.sqlState] else { return true }   // no answer from a server: the connection
        // Connection exceptions (08), the server shutting down or starting (57P0x), too many connections (53300).
        return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
    }
}

/// The listening task, started once the store exists (it needs the store) and cancelled with it.
final class ListenerTask: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var cancelled = false

    func start(_ body: @escaping @Sendable () async -> Void) {
        lock.lock(); defer { lock.unlock() }
        guard !cancelled, task == nil else { return }
        task = Task { await body() }
    }

    func cancel() {
        lock.lock(); defer { lock.unlock() }
        cancelled = true
        task?.cancel()
    }
}

/// The first result given, for one waiter (`PostgresMailStore.bounded`).
final class Answer<R: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<R, Error>?
    private var waiter: CheckedContinuation<R, Error>?

    /// Records `result` unless one was given before; returns whether it was the first.
    @discardableResult
    func give(_ result: Result<R, Error>) -> Bool {
        lock.lock()
        guard self.result == nil else { lock.unlock(); return false }
        self.result = result
        let waiter = self.waiter
        self.waiter = nil
        lock.unlock()
        waiter?.resume(with: result)
        return true
    }

    func value() async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(with: result)
            } else {
                waiter = continuation
                lock.unlock()
            }
        }
    }
}

/// A value behind a lock, as a reference that tasks can share.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
