import Testing
@testable import ServerCore

/// The PROXY protocol header parser on the specification's examples and on broken headers, whole and fed in pieces.
@Suite struct ProxyProtocolTests {
    static func v2(command: UInt8 = 0x21, family: UInt8, body: [UInt8]) -> [UInt8] {
        ProxyProtocol.v2Signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    @Test func versionOneForIPv4IPv6AndUnknown() {
        let line = Array("PROXY TCP4 192.0.2.9 198.51.100.1 56324 25\r\nEHLO x\r\n".utf8)
        #expect(ProxyProtocol.parse(line) == .header(.proxied(source: "192.0.2.9", sourcePort: 56324, destination: "198.51.100.1",
                                                             destinationPort: 25), length: 44))
        let six = Array("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:198.51.100.1 4000 993\r\n".utf8)
        #expect(ProxyProtocol.parse(six) == .header(.proxied(source: "2001:db8::1", sourcePort: 4000, destination: "::ffff:198.51.100.1",
                                                            destinationPort: 993), length: six.count))
        #expect(ProxyProtocol.parse(Array("PROXY UNKNOWN\r\n".utf8)) == .header(.local, length: 15))
        #expect(ProxyProtocol.parse(Array("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".utf8)) == .header(.local, length: 35))
    }

    @Test func versionTwoForIPv4IPv6LocalAndTLVs() {
        let v4 = Self.v2(family: 0x11, body: [192, 0, 2, 9, 198, 51, 100, 1, 0xDC, 0x04, 0, 25])
        #expect(ProxyProtocol.parse(v4 + Array("EHLO".utf8)) == .header(.proxied(source: "192.0.2.9", sourcePort: 56324,
                                                                                 destination: "198.51.100.1", destinationPort: 25), length: 28))
        // An IPv6 pair followed by a TLV (type 0x01 ALPN "imap"): the TLVs are skipped with the length.
        var body: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [5]
        body += [0xFE, 0x80] + Array(repeating: 0, count: 13) + [1] + [0x0F, 0xA0, 0x03, 0xE1]
        body += [0x01, 0x00, 0x04] + Array("imap".utf8)
        #expect(ProxyProtocol.parse(Self.v2(family: 0x21, body: body)) == .header(.proxied(source: "2001:db8::5", sourcePort: 4000,
                                                                                          destination: "fe80::1", destinationPort: 993),
                                                                                 length: 16 + body.count))
        // LOCAL (a health check) and UNSPEC: the connection's own address stands.
        #expect(ProxyProtocol.parse(Self.v2(command: 0x20, family: 0x00, body: [])) == .header(.local, length: 16))
        #expect(ProxyProtocol.parse(Self.v2(family: 0x00, body: [1, 2, 3])) == .header(.local, length: 19))
    }

    @Test func aHeaderArrivingInPiecesIsWaitedFor() {
        for whole in [Array("PROXY TCP4 192.0.2.9 198.51.100.1 56324 25\r\n".utf8),
                      Self.v2(family: 0x11, body: [192, 0, 2, 9, 198, 51, 100, 1, 0xDC, 0x04, 0, 25])] {
            for n in 0..<whole.count { #expect(ProxyProtocol.parse(whole.prefix(n)) == .needMore, "\(n) octets") }
            guard case .header(_, let length) = ProxyProtocol.parse(whole) else { Issue.record("not parsed"); continue }
            #expect(length == whole.count)
        }
    }

    @Test func malformedHeadersAreRefused() {
        func invalid(_ bytes: [UInt8]) -> Bool { if case .invalid = ProxyProtocol.parse(bytes) { return true } else { return false } }
        #expect(invalid(Array("EHLO client.example\r\n".utf8)))                                   // no header at all
        #expect(invalid(Array("PROXY TCP4 192.0.2.9 198.51.100.1 56324 25\n".utf8)))             // LF without CR
        #expect(invalid(Array("PROXY TCP4 192.0.2.999 198.51.100.1 1 25\r\n".utf8)))             // not an address
        #expect(invalid(Array("PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n".utf8)))             // IPv6 under TCP4
        #expect(invalid(Array("PROXY TCP4 192.0.2.9 198.51.100.1 65536 25\r\n".utf8)))           // port out of range
        #expect(invalid(Array("PROXY TCP4 192.0.2.9 198.51.100.1 0025 25\r\n".utf8)))            // leading zero
        #expect(invalid(Array("PROXY TCP4 192.0.2.9 198.51.100.1 1\r\n".utf8)))                  // a field missing
        #expect(invalid(Array("PROXY TCP4 ".utf8) + Array(repeating: UInt8(ascii: "1"), count: 120)))  // no CRLF in 107 octets
        #expect(invalid(Self.v2(command: 0x11, family: 0x11, body: Array(repeating: 0, count: 12))))   // version 1 in a v2 header
        #expect(invalid(Self.v2(command: 0x22, family: 0x11, body: Array(repeating: 0, count: 12))))   // command 2
        #expect(invalid(Self.v2(family: 0x11, body: [192, 0, 2])))                                      // addresses cut short
        #expect(invalid(Self.v2(family: 0x31, body: Array(repeating: 0, count: 216))))                  // AF_UNIX
        #expect(invalid(ProxyProtocol.v2Signature + [0x21, 0x11, 0xFF, 0xFF]))                         // longer than the bound
    }

    @Test func ipv6TextIsCanonical() {
        #expect(ProxyProtocol.canonical("2001:0db8:0000:0000:0000:ff00:0042:8329", v4: false) == "2001:db8::ff00:42:8329")
        #expect(ProxyProtocol.canonical("::1", v4: false) == "::1")
        #expect(ProxyProtocol.canonical("::", v4: false) == "::")
        #expect(ProxyProtocol.canonical("2001:db8:0:1:0:0:0:1", v4: false) == "2001:db8:0:1::1")   // the longer run of zeros
        #expect(ProxyProtocol.canonical("2001:db8::1::2", v4: false) == nil)
        #expect(ProxyProtocol.canonical("1:2:3:4:5:6:7:8:9", v4: false) == nil)
        #expect(ProxyProtocol.canonical("010.1.1.1", v4: true) == "10.1.1.1")
    }
}
