import DKIM
import Foundation
import MailAuth
import MailDNS
import MailMessage
import Testing

@Suite struct DKIMVerifyTests {
    /// RFC 8463 Appendix A: the example message signed with Ed25519 and with RSA, and the key records (A.2).
    /// The time the checks run at: a few years after RFC 8463's example was signed (t=1528637909), never the machine's.
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    static let rfc8463 = [
        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;",
        " d=football.example.com; i=@football.example.com;",
        " q=dns/txt; s=brisbane; t=1528637909; h=from : to :",
        " subject : date : message-id : from : subject : date;",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;",
        " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus",
        " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;",
        " d=football.example.com; i=@football.example.com;",
        " q=dns/txt; s=test; t=1528637909; h=from : to : subject :",
        " date : message-id : from : subject : date;",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;",
        " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3",
        " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz",
        " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=",
        "From: Joe SixPack <joe@football.example.com>",
        "To: Suzie Q <suzie@shopping.example.net>",
        "Subject: Is dinner ready?",
        "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)",
        "Message-ID: <20030712040037.46341.5F8J@football.example.com>",
        "",
        "Hi.",
        "",
        "We lost the game.  Are you hungry yet?",
        "",
        "Joe.",
        "",
    ].joined(separator: "\r\n")

    static var rfc8463Resolver: StaticResolver {
        var r = StaticResolver()
        r.txt["brisbane._domainkey.football.example.com"] = ["v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="]
        r.txt["test._domainkey.football.example.com"] = [
            "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
                + "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
                + "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
                + "Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
        ]
        return r
    }

    @Test func rfc8463ExampleVerifies() async {
        let results = await DKIMCheck.verify(message: Array(Self.rfc8463.utf8), resolver: Self.rfc8463Resolver, now: Self.now)
        #expect(results.map(\.result) == [.pass, .pass])
        #expect(results.map(\.algorithm) == ["ed25519-sha256", "rsa-sha256"])
        #expect(results[1].keyBits == 1024)
        #expect(results[0].domain == "football.example.com" && results[0].selector == "brisbane")
    }

    @Test func rfc8463TamperedFails() async {
        let changedBody = Self.rfc8463.replacingOccurrences(of: "hungry yet", with: "hungry now")
        var results = await DKIMCheck.verify(message: Array(changedBody.utf8), resolver: Self.rfc8463Resolver, now: Self.now)
        #expect(results.map(\.result) == [.fail, .fail])
        #expect(results[0].reason == DKIMFailure.bodyHashMismatch.description)
        let changedSubject = Self.rfc8463.replacingOccurrences(of: "Subject: Is dinner ready?", with: "Subject: Is lunch ready?")
        results = await DKIMCheck.verify(message: Array(changedSubject.utf8), resolver: Self.rfc8463Resolver, now: Self.now)
        #expect(results.map(\.result) == [.fail, .fail])
        #expect(results[0].reason == DKIMFailure.badSignature.description)
        // Relaxed canonicalization forgives whitespace changes in the header.
        let respaced = Self.rfc8463.replacingOccurrences(of: "Subject: Is dinner ready?", with: "Subject:   Is dinner  ready?  ")
        results = await DKIMCheck.verify(message: Array(respaced.utf8), resolver: Self.rfc8463Resolver, now: Self.now)
        #expect(results.map(\.result) == [.pass, .pass])
        // A From added above the signed one: the oversigned "from" in h= catches it.
        let extraFrom = Self.rfc8463.replacingOccurrences(of: "From: Joe", with: "From: Mallory <m@evil.example>\r\nFrom: Joe")
        results = await DKIMCheck.verify(message: Array(extraFrom.utf8), resolver: Self.rfc8463Resolver, now: Self.now)
        #expect(results.map(\.result) == [.fail, .fail])
    }

    @Test func keyProblems() async {
        var r = Self.rfc8463Resolver
        r.txt["brisbane._domainkey.football.example.com"] = ["v=DKIM1; k=ed25519; p="]
        r.txt["test._domainkey.football.example.com"] = nil
        r.failing = []
        var results = await DKIMCheck.verify(message: Array(Self.rfc8463.utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.permerror, .permerror])
        #expect(results[0].reason == "key revoked")
        #expect(results[1].reason == DKIMFailure.noKey.description)
        r = Self.rfc8463Resolver
        r.failing = ["test._domainkey.football.example.com"]
        results = await DKIMCheck.verify(message: Array(Self.rfc8463.utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.pass, .temperror])
        // A key of the wrong type for the algorithm.
        r = Self.rfc8463Resolver
        r.txt["brisbane._domainkey.football.example.com"] = r.txt["test._domainkey.football.example.com"]
        results = await DKIMCheck.verify(message: Array(Self.rfc8463.utf8), resolver: r, now: Self.now)
        #expect(results[0].result == .permerror)
    }

    func sign(_ message: String, keys: [DKIMKey]) throws -> [UInt8] {
        let bytes = Array(message.utf8)
        let end = RawHeader.end(bytes)
        var hasher = DKIMBodyHasher(canonicalization: .relaxed)
        hasher.update(bytes[end...])
        return try DKIMSigner.sign(headerFields: RawHeader.fields(bytes[..<end]), bodyHash: hasher.finalize(), keys: keys, time: Self.now) + bytes
    }

    @Test func ternSignaturesVerify() async throws {
        let (rsa, _) = try DKIMKey.generate(domain: "example.org", selector: "r1", algorithm: .rsaSHA256)
        let (ed, _) = try DKIMKey.generate(domain: "example.org", selector: "e1", algorithm: .ed25519SHA256)
        var r = StaticResolver()
        r.txt["r1._domainkey.example.org"] = [rsa.dnsRecord]
        r.txt["e1._domainkey.example.org"] = [ed.dnsRecord]
        let message = "From: A <a@example.org>\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nBody line\r\n\r\n"
        let signed = try sign(message, keys: [rsa, ed])
        var results = await DKIMCheck.verify(message: signed, resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.pass, .pass])
        #expect(results[0].keyBits == 2048)
        // Byte-for-byte changes that relaxed body canonicalization ignores still pass; others fail.
        let trailing = String(decoding: signed, as: UTF8.self).replacingOccurrences(of: "Body line\r\n", with: "Body   line \r\n\r\n\r\n")
        results = await DKIMCheck.verify(message: Array(trailing.utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.pass, .pass])
        let changed = String(decoding: signed, as: UTF8.self).replacingOccurrences(of: "Body line", with: "Body lime")
        results = await DKIMCheck.verify(message: Array(changed.utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.fail, .fail])
    }

    /// A signature made by hand with l= and simple/simple canonicalization, to exercise both.
    @Test func bodyLengthAndSimple() async throws {
        let (ed, _) = try DKIMKey.generate(domain: "example.org", selector: "e1", algorithm: .ed25519SHA256)
        var r = StaticResolver()
        r.txt["e1._domainkey.example.org"] = [ed.dnsRecord]
        let header = "From: a@example.org\r\nSubject: x\r\n"
        let body = "first part\r\n"
        var hasher = DKIMBodyHasher(canonicalization: .simple, limit: body.utf8.count)
        hasher.update(Array(body.utf8))
        let bh = Data(hasher.finalize()).base64EncodedString()
        let unsigned = "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; d=example.org; s=e1;\r\n\th=from:subject; l=\(body.utf8.count); bh=\(bh);\r\n\tb="
        let fields = RawHeader.fields(Array(header.utf8)[...])
        let data = fields.flatMap(\.raw) + Array(unsigned.utf8)
        let sig = try ed.sign(data)
        let message = unsigned + Data(sig).base64EncodedString() + "\r\n" + header + "\r\n" + body
        var results = await DKIMCheck.verify(message: Array(message.utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.pass])
        #expect(results[0].unsignedBodyOctets == 0)
        // Appended content beyond l= leaves the signature valid but is counted as unsigned.
        results = await DKIMCheck.verify(message: Array((message + "BUY NOW\r\n").utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.pass])
        #expect(results[0].unsignedBodyOctets == 9)
        // Simple header canonicalization: one extra space breaks it.
        results = await DKIMCheck.verify(message: Array(message.replacingOccurrences(of: "Subject: x", with: "Subject:  x").utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.fail])
        // A body shorter than l=.
        results = await DKIMCheck.verify(message: Array(message.replacingOccurrences(of: "first part\r\n", with: "first\r\n").utf8), resolver: r, now: Self.now)
        #expect(results.map(\.result) == [.fail])
    }

    @Test func malformedSignatures() {
        func parse(_ tags: String) -> DKIMFailure? {
            let field = RawHeaderField(name: "DKIM-Signature", raw: Array("DKIM-Signature: \(tags)\r\n".utf8))
            if case .failure(let f) = DKIMSignature.parse(field, now: Self.now) { return f }
            return nil
        }
        let bh = Data(repeating: 1, count: 32).base64EncodedString()
        let good = "v=1; a=rsa-sha256; d=example.org; s=s; h=from:to; bh=\(bh); b=AAAA"
        #expect(parse(good) == nil)
        #expect(parse(good.replacingOccurrences(of: "v=1", with: "v=2")) != nil)
        #expect(parse(good.replacingOccurrences(of: "rsa-sha256", with: "rsa-sha1")) == .unsupported("algorithm rsa-sha1"))
        #expect(parse(good.replacingOccurrences(of: "h=from:to", with: "h=to")) == .malformed("From is not signed"))
        #expect(parse(good + "; i=joe@other.example") == .malformed("i= is not within d="))
        #expect(parse(good + "; i=joe@sub.example.org") == nil)
        #expect(parse(good + "; x=1000") == .expired)
        #expect(parse(good + "; d=again.example") == .malformed("bad tag list"))
    }
}
