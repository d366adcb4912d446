import ServerCore
import Foundation
import MailCore
import MailStore
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCodec

/// What one delivery attempt to one host came to.
public enum CourierOutcome: Sendable, Equatable {
    /// The transaction ran: each recipient's reply.
    case results([SMTPClientTransaction.RecipientResult])
    /// The server refused the whole attempt (greeting, EHLO, MAIL, SIZE, SMTPUTF8), for every recipient.
    case refused(SMTPReply, permanent: Bool)
    /// No connection, a timeout or a broken session: try the next address or later.
    case connectionFailed(String)
}

/// Delivers a message over SMTP to one address: connects, drives `SMTPClientTransaction` (the protocol decisions)
/// and does the I/O. TLS is opportunistic (RFC 3207): used whenever offered, the certificate not verified, as
/// Postfix's `smtp_tls_security_level = may`; MTA-STS and DANE would add verification per domain.
public struct SMTPCourier: Sendable {
    public let group: any EventLoopGroup
    public let heloName: String
    public let tls: NIOSSLContext
    public var connectTimeout: TimeAmount = .seconds(30)
    /// RFC 5321 §4.5.3.2: 5 minutes for most replies, 10 for the reply to the content.
    public var replyTimeout: TimeAmount = .minutes(5)
    public var contentTimeout: TimeAmount = .minutes(10)

    public init(group: any EventLoopGroup, heloName: String) throws {
        self.group = group
        self.heloName = heloName
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .none
        tls = try NIOSSLContext(configuration: config)
    }

    /// Delivers one message on a connection of its own.
    public func deliver(_ message: SMTPClientTransaction.Message, content: [UInt8], host: String, port: Int,
                        serverName: String? = nil) async -> CourierOutcome {
        let result = await withSession(host: host, port: port, serverName: serverName) { session in
            await session.send(message, content: content)
        }
        switch result {
        case .success(let outcome): return outcome
        case .failure(let reason): return .connectionFailed(reason.text)
        }
    }

    public struct ConnectFailure: Error, Sendable { public var text: String }

    /// Opens a connection to `host` and runs `body` with a session on it that can carry several messages one after
    /// another (connection reuse); QUIT and close follow when `body` returns. Fails only when no connection was made.
    public func withSession<R: Sendable>(host: String, port: Int, serverName: String? = nil,
                                         _ body: (inout CourierSession) async -> R) async -> Result<R, ConnectFailure> {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { ch in
                    ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
                }
        } catch {
            return .failure(ConnectFailure(text: "cannot connect to \(host):\(port): \(Self.describe(error))"))
        }
        do {
            let value = try await channel.executeThenClose { inbound, outbound in
                var session = CourierSession(channel: channel.channel, heloName: heloName, tls: tls, serverName: serverName ?? host,
                                             inbound: inbound.makeAsyncIterator(), outbound: outbound,
                                             timeouts: (replyTimeout, contentTimeout), peer: "\(host):\(port)")
                let value = await body(&session)
                await session.quit()
                return value
            }
            return .success(value)
        } catch {
            return .failure(ConnectFailure(text: "session with \(host):\(port) failed: \(error)"))
        }
    }

    /// A connection error in a few words ("connection refused", "timed out after 30 s") instead of NIO's dump.
    public static func describe(_ error: any Error) -> String {
        if let e = error as? NIOConnectionError, let first = e.connectionErrors.first { return describe(first.error) }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        if case ChannelError.connectTimeout(let t) = error { return "timed out after \(t.nanoseconds / 1_000_000_000) s" }
        return "\(error)"
    }

    /// Content as it goes on the wire after DATA: dot-stuffed, CRLF at the end, then ".".
    public static func dataPayload(_ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var stuffer = DotStuffer()
        stuffer.append(content[...], to: &out)
        stuffer.finish(&out)
        return out
    }
}

public enum CourierError: Error {
    case closed
    case timeout
    case badReply(String)
}

/// One SMTP connection to a remote server, carrying messages one after another.
public struct CourierSession {
    public let channel: any Channel
    public let heloName: String
    public let tls: NIOSSLContext
    public let serverName: String
    public var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    public let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    public let timeouts: (reply: TimeAmount, content: TimeAmount)
    public let peer: String
    public var transaction: SMTPClientTransaction?
    public var buffer = ByteBuffer()
    public var parser = SMTPReplyParser()
    /// The connection broke or the server ended the session.
    public private(set) var isBroken = false
    /// Messages sent on this connection so far.
    public private(set) var messagesSent = 0

    /// The session may carry another message.
    public var canSendMore: Bool { !isBroken && (transaction?.reusable ?? true) }
    /// TLS is active on the connection.
    public var tlsActive: Bool { transaction?.tlsActive ?? false }
    /// The name sent in TLS SNI: the server's host name, none for an address (RFC 6066 §3).
    public var sniName: String? { AddressLiteral.isIPv4(serverName) || AddressLiteral.isIPv6(serverName) ? nil : serverName }

    /// Sends one message: the first one also runs the greeting, EHLO and STARTTLS.
    public mutating func send(_ message: SMTPClientTransaction.Message, content: [UInt8]) async -> CourierOutcome {
        await send(message, content: InMemoryContent(content))
    }

    /// Sends one message read from `content` a piece at a time (a large message is never whole in memory).
    public mutating func send(_ message: SMTPClientTransaction.Message, content: any ContentReader) async -> CourierOutcome {
        guard canSendMore else { return .connectionFailed("connection to \(peer) cannot be reused") }
        messagesSent += 1
        do {
            if var t = transaction {
                let first = t.nextMessage(message)
                transaction = t
                return try await run(content: content, pending: first)
            }
            transaction = SMTPClientTransaction(message: message, heloName: heloName)
            return try await run(content: content, pending: nil)
        } catch {
            isBroken = true
            return .connectionFailed("session with \(peer) failed: \(error)")
        }
    }

    public mutating func quit() async {
        guard !isBroken else { return }
        try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
    }

    public mutating func run(content: any ContentReader, pending: SMTPClientTransaction.Action?) async throws -> CourierOutcome {
        var timeout = timeouts.reply
        var next = pending
        while true {
            let action: SMTPClientTransaction.Action
            if let n = next {
                action = n
                next = nil
            } else {
                let reply = try await readReply(channel: channel, timeout: timeout)
                guard let a = transaction!.receive(reply) else { continue }
                action = a
            }
            switch action {
            case .send(let lines):
                try await outbound.write(ByteBuffer(string: lines.map { $0 + "\r\n" }.joined()))
                timeout = timeouts.reply
            case .startTLS:
                guard buffer.readableBytes == 0 else { throw CourierError.badReply("data after the reply to STARTTLS") }
                let handler = try NIOSSLClientHandler(context: tls, serverHostname: sniName)
                try await channel.pipeline.addHandler(handler, position: .first)
                next = transaction!.tlsEstablished()
            case .sendContent:
                // Dot-stuffed a piece at a time; each write waits while the connection is not writable.
                let writer = outbound
                var stuffer = DotStuffer(), wire: [UInt8] = []
                try await content.pieces { piece in
                    stuffer.append(piece[...], to: &wire)
                    try await writer.write(ByteBuffer(bytes: wire))
                    wire.removeAll(keepingCapacity: true)
                }
                stuffer.finish(&wire)
                try await writer.write(ByteBuffer(bytes: wire))
                timeout = timeouts.content
            case .finished(let results):
                return .results(results)
            case .failed(let reply, let permanent):
                if !transaction!.reusable { isBroken = true; try? await outbound.write(ByteBuffer(string: "QUIT\r\n")) }
                return .refused(reply, permanent: permanent)
            }
        }
    }

    public mutating func readReply(channel: any Channel, timeout: TimeAmount) async throws -> SMTPReply {
        let deadline = NIODeadline.now() + timeout
        while true {
            while let lf = buffer.readableBytesView.firstIndex(of: 10) {
                var line = Array(buffer.readableBytesView[buffer.readerIndex..<lf])
                buffer.moveReaderIndex(to: lf + 1)
                if line.last == 13 { line.removeLast() }
                if let reply = try parser.feed(line) { return reply }
            }
            if buffer.readableBytes > SMTPReplyParser.maxLineLength { throw CourierError.badReply("reply line too long") }
            let remaining = deadline - .now()
            guard remaining > .zero else { throw CourierError.timeout }
            let timer = channel.eventLoop.scheduleTask(in: remaining) { channel.close(promise: nil) }
            defer { timer.cancel() }
            guard var chunk = try await inbound.next() else { throw CourierError.closed }
            buffer.discardReadBytes()
            buffer.writeBuffer(&chunk)
        }
    }
}
