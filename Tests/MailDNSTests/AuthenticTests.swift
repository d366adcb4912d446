import Testing
import MailDNS
@testable import DNSResolverLive

/// DNSSEC's verdict on an answer, which DANE will need: the plain-data resolver says it per name, the live one reads
/// the AD bit of the response header.
@Suite struct AuthenticTests {
    @Test func theTestResolverCallsOnlyListedNamesAuthentic() async {
        var dns = StaticResolver()
        dns.mx["signed.test"] = [MXRecord(preference: 10, exchange: "mx.signed.test")]
        dns.mx["plain.test"] = [MXRecord(preference: 10, exchange: "mx.plain.test")]
        dns.authentic = ["signed.test"]
        #expect(await dns.isAuthentic("SIGNED.test", .mx))
        #expect(!(await dns.isAuthentic("plain.test", .mx)))
        dns.failing = ["signed.test"]
        #expect(!(await dns.isAuthentic("signed.test", .mx)))
    }

    /// A response header (RFC 1035 §4.1.1) with no records: ID, then QR|RD and RA, with AD (RFC 4035 §3.2.3) or not.
    static func header(ad: Bool) -> [UInt8] {
        [0x12, 0x34, 0x81, ad ? 0xA0 : 0x80, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    @Test func theLiveResolverReadsTheADBit() {
        #expect(LiveResolver.isAuthentic(answer: Self.header(ad: true)))
        #expect(!LiveResolver.isAuthentic(answer: Self.header(ad: false)))
        #expect(!LiveResolver.isAuthentic(answer: [0x12, 0x34, 0x81]))   // malformed: not authentic
    }
}
