import Foundation
import Logging
import MailCore
import MailStore
import NIOCore
import NIOPosix
import NIOSSL
import TernConfig

/// What every session needs, passed explicitly: no global state.
public struct ServerContext: Sendable {
    public var config: TernConfiguration
    public var store: any MailStore
    public var blobs: BlobStore
    public var tls: NIOSSLContext?
    public var logger: Logger
    public var threadPool: NIOThreadPool
    /// Messages up to this size are kept in memory and stored inline.
    public var inlineLimit: Int

    public init(config: TernConfiguration, store: any MailStore, blobs: BlobStore, tls: NIOSSLContext?, logger: Logger,
                threadPool: NIOThreadPool, inlineLimit: Int) {
        self.config = config
        self.store = store
        self.blobs = blobs
        self.tls = tls
        self.logger = logger
        self.threadPool = threadPool
        self.inlineLimit = inlineLimit
    }
}

/// Short ids for sessions and messages, as seen in logs and Received headers.
enum SessionID {
    static func make() -> String {
        let alphabet = Array("0123456789BCDFGHJKLMNPQRSTVWXZ")
        var rng = SystemRandomNumberGenerator()
        return String((0..<12).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }
}
