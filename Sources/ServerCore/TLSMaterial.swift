import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The server's TLS certificate: the configured one, or a self-signed one made on first start and kept in
/// `<data>/tls` so that clients that pinned it keep working across restarts.
public enum TLSMaterial {
    public static func serverContext(certificate: URL?, key: URL?, dataDirectory: URL, hostname: String, now: Date) throws -> NIOSSLContext {
        let (certPath, keyPath) = try paths(certificate: certificate, key: key, dataDirectory: dataDirectory, hostname: hostname, now: now)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certPath.path) } catch {
            throw MaterialError(what: "TLS certificate", path: certPath.path, expected: "a PEM certificate chain", error: error)
        }
        guard !chain.isEmpty else {
            throw MaterialError(what: "TLS certificate", path: certPath.path, expected: "a PEM certificate chain", error: nil)
        }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(file: keyPath.path, format: .pem) } catch {
            throw MaterialError(what: "TLS key", path: keyPath.path, expected: "a PEM private key", error: error)
        }
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                              privateKey: .privateKey(privateKey))
        config.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: config)
    }

    /// A certificate or key file that cannot be used, said with its path: "TLS certificate /etc/x.pem: cannot be read
    /// as a PEM certificate chain".
    public struct MaterialError: Error, CustomStringConvertible {
        public var what: String
        public var path: String
        public var expected: String
        var error: (any Error)?

        public var description: String {
            let reason = FileManager.default.isReadableFile(atPath: path) ? "cannot be read as \(expected)" : "cannot be read (missing, or no permission)"
            return "\(what) \(path): \(reason)\(error.map { " (\($0))" } ?? "")"
        }
    }

    public static func paths(certificate: URL?, key: URL?, dataDirectory: URL, hostname: String, now: Date) throws -> (URL, URL) {
        if let certificate, let key { return (certificate, key) }
        let dir = dataDirectory.appendingPathComponent("tls")
        let cert = dir.appendingPathComponent("selfsigned-cert.pem"), keyFile = dir.appendingPathComponent("selfsigned-key.pem")
        if FileManager.default.fileExists(atPath: cert.path), FileManager.default.fileExists(atPath: keyFile.path) {
            return (cert, keyFile)
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let (certPEM, keyPEM) = try makeSelfSigned(hostname: hostname, now: now)
        FileManager.default.createFile(atPath: keyFile.path, contents: Data(keyPEM.utf8), attributes: [.posixPermissions: 0o600])
        try Data(certPEM.utf8).write(to: cert)
        return (cert, keyFile)
    }

    /// A self-signed P-256 certificate for `hostname`, valid for ten years from an hour before `now`.
    public static func makeSelfSigned(hostname: String, now: Date) throws -> (certificate: String, key: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(hostname) }
        let cert = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames([.dnsName(hostname)])
                try ExtendedKeyUsage([.serverAuth])
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        return (try cert.serializeAsPEM().pemString, key.pemRepresentation)
    }
}
