import Crypto
import _CryptoExtras
import DKIM
import Foundation
import MailMessage
import Testing

@Suite struct DKIMTests {
    /// RFC 6376 §3.4.5: the canonicalization example.
    static let example = Array("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n".utf8)

    @Test func relaxedHeaderExample() {
        let end = RawHeader.end(Self.example)
        let fields = RawHeader.fields(Self.example[..<end])
        #expect(fields.map(\.name) == ["A", "B"])
        let canon = fields.flatMap { DKIMHeaders.relaxed($0) }
        #expect(String(decoding: canon, as: UTF8.self) == "a:X\r\nb:Y Z\r\n")
    }

    func hash(_ body: String, _ c: DKIMCanonicalization, chunk: Int = 1 << 20) -> [UInt8] {
        var h = DKIMBodyHasher(canonicalization: c)
        let bytes = Array(body.utf8)
        var i = 0
        while i < bytes.count { h.update(bytes[i..<min(bytes.count, i + chunk)]); i += chunk }
        return h.finalize()
    }

    @Test func bodyExamples() {
        let body = " C \r\nD \t E\r\n\r\n\r\n"
        #expect(hash(body, .relaxed) == Array(SHA256.hash(data: Array(" C\r\nD E\r\n".utf8))))
        #expect(hash(body, .simple) == Array(SHA256.hash(data: Array(" C \r\nD \t E\r\n".utf8))))
        // Split anywhere, even between CR and LF, the result is the same.
        for size in [1, 2, 3, 5] { #expect(hash(body, .relaxed, chunk: size) == hash(body, .relaxed)) }
        // Empty bodies: nothing under relaxed, one CRLF under simple (§3.4.3, §3.4.4).
        #expect(hash("", .relaxed) == Array(SHA256.hash(data: [UInt8]())))
        #expect(hash("\r\n\r\n", .relaxed) == Array(SHA256.hash(data: [UInt8]())))
        #expect(hash("", .simple) == Array(SHA256.hash(data: Array("\r\n".utf8))))
        // A missing final CRLF is added; whitespace-only lines at the end vanish.
        #expect(hash("abc", .relaxed) == Array(SHA256.hash(data: Array("abc\r\n".utf8))))
        #expect(hash("abc\r\n \t\r\n", .relaxed) == Array(SHA256.hash(data: Array("abc\r\n".utf8))))
        // Empty lines in the middle stay.
        #expect(hash("a\r\n\r\nb\r\n", .relaxed) == Array(SHA256.hash(data: Array("a\r\n\r\nb\r\n".utf8))))
    }

    @Test func selectionIsBottomUp() {
        let msg = Array("Received: 1\r\nFrom: a\r\nReceived: 2\r\nSubject: s\r\n\r\n".utf8)
        let fields = RawHeader.fields(msg[...])
        let picked = DKIMHeaders.select(["received", "received", "received", "from"], from: fields)
        #expect(picked.map { String(decoding: $0.raw, as: UTF8.self) } == ["Received: 2\r\n", "Received: 1\r\n", "From: a\r\n"])
        #expect(DKIMSigner.headerList(for: fields) == ["from", "subject", "from"])
    }

    /// Both algorithms produce signatures that their public keys accept over the data RFC 6376 §3.7 describes.
    @Test func signaturesCheckWithThePublicKeys() throws {
        let message = Array("From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: hi\r\n\r\nHello  world \r\n".utf8)
        let end = RawHeader.end(message)
        let fields = RawHeader.fields(message[..<end])
        var hasher = DKIMBodyHasher(canonicalization: .relaxed)
        hasher.update(message[end...])
        let bh = hasher.finalize()
        for algorithm in DKIMKey.Algorithm.allCases {
            let (key, pem) = try DKIMKey.generate(domain: "a.test", selector: "s1", algorithm: algorithm)
            let field = try DKIMSigner.sign(headerFields: fields, bodyHash: bh, keys: [key], time: Date(timeIntervalSince1970: 1_700_000_000))
            let text = String(decoding: field, as: UTF8.self)
            #expect(text.hasPrefix("DKIM-Signature: v=1; a=\(algorithm.rawValue); c=relaxed/relaxed; d=a.test; s=s1;"))
            #expect(text.contains("bh=\(Data(bh).base64EncodedString());"))
            // Rebuild what was signed: the signed fields, then the signature field with b= emptied, no final CRLF.
            let b64 = text.components(separatedBy: "b=").last!.filter { !" \t\r\n".contains($0) }
            let signature = Data(base64Encoded: b64)!
            let unsigned = String(text[..<text.range(of: "\tb=", options: .backwards)!.upperBound])
            var data: [UInt8] = []
            for f in DKIMHeaders.select(DKIMSigner.headerList(for: fields), from: fields) { data += DKIMHeaders.relaxed(f) }
            data += DKIMHeaders.relaxed(RawHeaderField(name: "DKIM-Signature", raw: Array(unsigned.utf8))).dropLast(2)
            let again = try DKIMKey(domain: "a.test", selector: "s1", algorithm: algorithm, privateKey: pem)
            #expect(again.publicKeyBase64 == key.publicKeyBase64)
            switch algorithm {
            case .rsaSHA256:
                let pub = try _RSA.Signing.PublicKey(derRepresentation: Data(base64Encoded: key.publicKeyBase64)!)
                #expect(pub.keySizeInBits == 2048)
                #expect(pub.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5))
            case .ed25519SHA256:
                let pub = try Curve25519.Signing.PublicKey(rawRepresentation: Data(base64Encoded: key.publicKeyBase64)!)
                #expect(pub.isValidSignature(signature, for: Array(SHA256.hash(data: data))))
            }
        }
    }
}
