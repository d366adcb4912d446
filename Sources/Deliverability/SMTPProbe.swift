import Foundation

/// What a mail host said when asked, as a sender would: connection, greeting, EHLO, STARTTLS and the TLS handshake,
/// then QUIT. Filled in by the probe that does the I/O (MailServer's SMTPCourier.probe); judged here.
public struct SMTPProbeResult: Sendable, Equatable, Encodable {
    public var host: String
    public var address: String
    public var port: Int
    /// No session: the connection was refused, timed out or broke.
    public var failure: String?
    /// The greeting's first line with its code, e.g. "220 mx.example.com ESMTP".
    public var greeting: String?
    /// The reply to EHLO when it was not 250.
    public var ehloRefused: String?
    /// The EHLO keywords the host offers (before TLS).
    public var extensions: [String] = []
    public var offersSTARTTLS = false
    /// STARTTLS was refused or the handshake failed.
    public var tlsFailure: String?
    /// "TLS 1.3" once the handshake completed and EHLO was answered over it.
    public var tlsVersion: String?
    /// The names the certificate is for (subject alternative DNS names), and when it expires.
    public var certificateNames: [String] = []
    public var certificateExpires: Date?
    /// Why the certificate does not verify for `host` against the trusted roots; nil when it does.
    public var certificateProblem: String?

    public init(host: String, address: String, port: Int) {
        self.host = host
        self.address = address
        self.port = port
    }

    /// The finding for `tern check domain`.
    public var finding: (verdict: DomainFinding.Verdict, detail: String) {
        if let failure { return (.problem, "no SMTP session: \(failure); senders cannot deliver through this address") }
        guard let greeting, greeting.hasPrefix("220") else {
            return (.problem, "greeting \(greeting ?? "missing"): the host refuses mail")
        }
        if let ehloRefused { return (.problem, "\(greeting); EHLO refused: \(ehloRefused)") }
        guard offersSTARTTLS else {
            return (.warning, "\(greeting); no STARTTLS offered: mail to this host travels in plain text, and senders that require TLS "
                + "(MTA-STS in enforce mode) will not deliver")
        }
        if let tlsFailure {
            return (.problem, "\(greeting); STARTTLS offered but \(tlsFailure): senders defer or fall back to plain text")
        }
        let expiry = certificateExpires.map { " until " + ReceivedPath.timestamp($0).prefix(10) } ?? ""
        let names = certificateNames.isEmpty ? "" : " for " + certificateNames.prefix(4).joined(separator: ", ")
            + (certificateNames.count > 4 ? " …" : "")
        if let certificateProblem {
            return (.warning, "\(greeting); STARTTLS, \(tlsVersion ?? "TLS"); certificate\(names)\(expiry) does not verify for \(host): "
                + "\(certificateProblem) (senders using opportunistic TLS still deliver; MTA-STS and certificate-checking senders do not)")
        }
        return (.ok, "\(greeting); STARTTLS, \(tlsVersion ?? "TLS"), certificate\(names) valid\(expiry)")
    }
}
