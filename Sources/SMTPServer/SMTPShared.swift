import MailStore
import Intake
import MailAuth
import MailCore
import NIOCore
import NIOPosix
import ServerCore

/// What the SMTP sessions share beyond the core: the intake pipeline (with the port-25 checks, the mail tester and
/// the signing keys) and the networks allowed to relay.
public final class SMTPShared: Sendable {
    public let intake: Intake
    /// Clients that may relay through port 25 without AUTH (`relay.networks`).
    public let relayNetworks: [IPNetwork]

    public init(context: ServerContext, intake: Intake) {
        self.intake = intake
        relayNetworks = context.config.relayNetworks.compactMap(IPNetwork.init)
    }
}

/// The server's blocking work (spool files, signing) runs on NIO's thread pool.
extension NIOThreadPool: BlockingWork {
    public func submit(_ body: @escaping @Sendable (Bool) -> Void) {
        submit { (state: NIOThreadPool.WorkItemState) in body(state == .active) }
    }
}

extension MessageSink {
    public func append(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { append($0) }
    }
}
