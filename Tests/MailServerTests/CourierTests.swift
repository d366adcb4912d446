import Foundation
import MailCore
import MailDelivery
import NIOPosix
import SMTPCodec
import TernTestSupport
import Testing

/// The courier against the real SMTP server on a loopback socket (STARTTLS offered, PIPELINING, SIZE).
@Suite(.serialized) struct CourierTests {
    @Test func deliversOverTLSWithPerRecipientResults() async throws {
        let s = try await InProcessServer.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let courier = try SMTPCourier(group: group, heloName: "mx.a.test")
        let content = Array("From: bob@a.test\r\nSubject: courier\r\n\r\n.leading dot\r\nbody".utf8)
        let message = SMTPClientTransaction.Message(mailFrom: "bob@a.test", recipients: ["alice@example.test", "nobody@example.test"],
                                                    size: content.count, eightBit: false, needsSMTPUTF8: false)
        let outcome = await courier.deliver(message, content: content, host: "127.0.0.1", port: s.port)
        guard case .results(let results) = outcome else { Issue.record("\(outcome)"); return }
        #expect(results.map(\.delivered) == [true, false])
        #expect(results[1].reply.code.rawValue == 550 && results[1].permanent)
        let inbox = try await s.inbox("alice@example.test")
        #expect(inbox.count == 1)
        let text = String(decoding: inbox.first ?? [], as: UTF8.self)
        // The server saw TLS (its Received field says ESMTPS) and the dot-stuffing was undone; CRLF was added at the end.
        #expect(text.contains("with ESMTPS id"), "\(text.prefix(300))")
        #expect(text.hasSuffix("\r\n\r\n.leading dot\r\nbody\r\n"))
        try await s.stop()
        try await group.shutdownGracefully()
    }

    @Test func refusedConnectionIsAConnectionFailure() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let courier = try SMTPCourier(group: group, heloName: "mx.a.test")
        let message = SMTPClientTransaction.Message(mailFrom: "", recipients: ["x@b.test"], size: 10, eightBit: false, needsSMTPUTF8: false)
        // A port nothing listens on: bind one, note it, close it.
        let probe = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        guard case .connectionFailed = await courier.deliver(message, content: [], host: "127.0.0.1", port: port) else {
            Issue.record("expected a connection failure"); return
        }
        try await group.shutdownGracefully()
    }
}
