import ServerCore
import Deliverability
import Foundation
import MailCore
import NIOCore
import NIOSSL
import SMTPCodec
import SwiftASN1
import Synchronization
import X509

extension SMTPCourier {
    /// `probe` for every mail host at `port`, certificates verified against the CA certificates of the PEM file
    /// `caFile`, or the system's trusted roots, as valid at the time `clock` tells.
    public func prober(port: Int, caFile: String?, clock: any WallClock) throws -> @Sendable (_ host: String, _ address: String) async -> SMTPProbeResult {
        let roots: CertificateStore
        if let caFile {
            let pem = try String(contentsOfFile: caFile, encoding: .utf8)
            roots = CertificateStore(try PEMDocument.parseMultiple(pemString: pem).map { try Certificate(pemDocument: $0) })
        } else {
            roots = CertificateStore.systemTrustRoots
        }
        return { host, address in await self.probe(host: host, address: address, port: port, roots: roots, validationTime: clock.now) }
    }

    /// Asks a mail host what a sender would: connects to `address`, reads the greeting, says EHLO, and when STARTTLS
    /// is offered starts TLS (SNI `host`), says EHLO again over it and verifies the certificate for `host` against
    /// `roots` as valid at `validationTime`; then QUIT. Sends no mail. Replies are waited for `replyTimeout` at most.
    public func probe(host: String, address: String, port: Int, roots: CertificateStore, validationTime: Date) async -> SMTPProbeResult {
        var result = SMTPProbeResult(host: host, address: address, port: port)
        let presented = Mutex<[NIOSSLCertificate]>([])
        let context: NIOSSLContext
        do {
            // Verification is ours (below, with swift-certificates), so the handshake completes whatever the
            // certificate and the report can say what is wrong with it; the callback keeps the chain presented.
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .noHostnameVerification
            context = try NIOSSLContext(configuration: config)
        } catch {
            result.failure = "TLS set-up failed: \(error)"
            return result
        }
        var probed: SMTPProbeResult?
        let outcome = await withSession(host: address, port: port, serverName: host) { session in
            var r = result
            defer { probed = r }
            do {
                try await session.probe(&r, tls: context) { certificates, promise in
                    presented.withLock { $0 = certificates }
                    promise.succeed(.certificateVerified)
                }
            } catch {
                if r.greeting == nil { r.failure = "\(error)" }
                else if r.offersSTARTTLS && r.tlsVersion == nil && r.tlsFailure == nil { r.tlsFailure = "the TLS handshake failed: \(error)" }
                else if r.tlsVersion == nil { r.failure = "the session broke: \(error)" }
            }
            return r
        }
        switch outcome {
        case .success(let r): result = r
        case .failure(let f):
            // The session ended badly after the probe (closing it failed): what was learnt still counts.
            guard let probed else {
                result.failure = f.text
                return result
            }
            result = probed
        }
        let chain = presented.withLock { $0 }
        guard result.tlsVersion != nil, let first = chain.first else { return result }
        do {
            let leaf = try Certificate(derEncoded: try first.toDERBytes())
            let intermediates = CertificateStore(try chain.dropFirst().map { try Certificate(derEncoded: try $0.toDERBytes()) })
            result.certificateExpires = leaf.notValidAfter
            if let names = try leaf.extensions.subjectAlternativeNames {
                result.certificateNames = names.compactMap { if case .dnsName(let n) = $0 { return n } else { return nil } }
            }
            var verifier = Verifier(rootCertificates: roots) {
                RFC5280Policy(validationTime: validationTime)
                ServerIdentityPolicy(serverHostname: host, serverIP: nil)
            }
            switch await verifier.validate(leaf: leaf, intermediates: intermediates) {
            case .validCertificate: break
            case .couldNotValidate(let failures):
                result.certificateProblem = failures.first.map { "\($0.policyFailureReason)" } ?? "no chain to a trusted root certificate"
            }
        } catch {
            result.certificateProblem = "the certificate cannot be read: \(error)"
        }
        return result
    }
}

extension CourierSession {
    /// Greeting, EHLO, STARTTLS, EHLO over TLS, filling in `r` as it goes.
    public mutating func probe(_ r: inout SMTPProbeResult, tls: NIOSSLContext,
                        verify: @escaping NIOSSLCustomVerificationCallback) async throws {
        let greeting = try await readReply(channel: channel, timeout: timeouts.reply)
        r.greeting = "\(greeting.code.rawValue) " + (greeting.lines.first ?? "")
        guard greeting.code.rawValue == 220 else { return }
        try await outbound.write(ByteBuffer(string: "EHLO \(heloName)\r\n"))
        let ehlo = try await readReply(channel: channel, timeout: timeouts.reply)
        guard ehlo.code.rawValue == 250 else {
            r.ehloRefused = "\(ehlo.code.rawValue) " + ehlo.lines.joined(separator: " ")
            return
        }
        r.extensions = ehlo.lines.dropFirst().compactMap { $0.split(separator: " ").first.map { $0.uppercased() } }
        r.offersSTARTTLS = EHLOCapabilities(ehlo).startTLS
        guard r.offersSTARTTLS else { return }
        try await outbound.write(ByteBuffer(string: "STARTTLS\r\n"))
        let ready = try await readReply(channel: channel, timeout: timeouts.reply)
        guard ready.code.rawValue == 220 else {
            r.tlsFailure = "STARTTLS was refused (\(ready.code.rawValue) " + ready.lines.joined(separator: " ") + ")"
            return
        }
        guard buffer.readableBytes == 0 else { throw CourierError.badReply("data after the reply to STARTTLS") }
        let handler = try NIOSSLClientHandler(context: tls, serverHostname: sniName, customVerificationCallback: verify)
        try await channel.pipeline.addHandler(handler, position: .first)
        // The reply to EHLO over TLS shows that the handshake completed.
        try await outbound.write(ByteBuffer(string: "EHLO \(heloName)\r\n"))
        let again = try await readReply(channel: channel, timeout: timeouts.reply)
        let version = try await channel.pipeline.handler(type: NIOSSLClientHandler.self).map { $0.tlsVersion }.get()
        r.tlsVersion = switch version {
        case .tlsv13: "TLS 1.3"
        case .tlsv12: "TLS 1.2"
        case .tlsv11: "TLS 1.1"
        case .tlsv1: "TLS 1.0"
        case nil: "TLS"
        }
        if again.code.rawValue != 250 { r.tlsFailure = "EHLO over TLS was refused (\(again.code.rawValue))" }
    }
}
