import Foundation
import Logging
import MailCore
import MailStore
import NIOCore
import NIOPosix
import NIOSSL
import TernConfig

/// What every session of every protocol needs, passed explicitly: no global state. What one protocol alone shares
/// (the SMTP checks and signing keys, IMAP's caches) lives with that protocol.
public struct ServerContext: Sendable {
    public var config: TernConfiguration
    public var store: any MailStore
    /// Where large contents go before they are stored (the store's).
    public var blobs: BlobStore { store.blobs }
    public var tls: NIOSSLContext?
    public var logger: Logger
    /// The time of day for everything the sessions do (Received and Date fields, INTERNALDATE, throttling, checks).
    public var clock: any WallClock
    public var threadPool: NIOThreadPool
    /// Messages up to this size are kept in memory and stored inline (the store's limit).
    public var inlineLimit: Int { store.inlineLimit }
    /// Failed logins per client address, shared by every service.
    public var loginThrottle: LoginThrottle
    /// The latest message list of each mailbox in use, shared by the IMAP and POP3 sessions that have it open.
    public let mailboxes: MailboxIndex
    /// IMAP sessions logged in, per account (`limits.max_connections_per_user`).
    public let userSessions = UserSessions()
    /// Accounts in a POP3 transaction (one POP3 session per maildrop).
    public let pop3Locks = POP3Locks()
    /// Keys the fake SCRAM salts of unknown users (random per process).
    public let saslSecret: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }

    public init(config: TernConfiguration, store: any MailStore, tls: NIOSSLContext?, logger: Logger,
                clock: any WallClock, threadPool: NIOThreadPool) {
        self.clock = clock
        self.config = config
        self.store = store
        self.tls = tls
        self.logger = logger
        self.threadPool = threadPool
        self.loginThrottle = LoginThrottle(maxFailures: config.limits.maxLoginFailures)
        self.mailboxes = MailboxIndex(store: store)
    }
}
