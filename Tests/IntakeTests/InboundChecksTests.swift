import Foundation
import MailAuth
import MailCore
import MailDNS
import MailMessage
import TernConfig
import TernTestSupport
import Deliverability
import Testing
@testable import Intake

/// The checks port 25 runs before it accepts a message, on a DNS made of plain data and a manual clock: blocklists
/// and allowlists, reverse DNS, SPF of the sender, and DMARC's verdict on the content.
@Suite struct InboundChecksTests {
    static func checks(_ dns: (inout StaticResolver) -> Void, _ tweak: (inout TernConfiguration.Checks) -> Void = { _ in }) -> InboundChecks {
        var config = TernConfiguration.embeddedDefault(dataDirectory: URL(fileURLWithPath: "/nonexistent"))
        config.hostname = "mx.here.test"
        config.checks.spamFilter = false
        tweak(&config.checks)
        var resolver = StaticResolver()
        dns(&resolver)
        return InboundChecks(config: config, resolver: resolver, clock: ManualClock(Date(timeIntervalSince1970: 2_000_000_000)))
    }

    @Test func blocklistedClientsAreRefusedAtMailFromUnlessAllowlistedOrExempt() async {
        let inbound = Self.checks({ dns in
            dns.a["99.2.0.192.bl.test"] = ["127.0.0.2"]
            dns.txt["99.2.0.192.bl.test"] = ["Listed\u{1B}[2J for spam"]   // a control byte must not reach the reply
            dns.a["98.2.0.192.bl.test"] = ["127.0.0.2"]
            dns.a["98.2.0.192.good.test"] = ["127.0.0.10"]
        }) { $0.blocklists = ["bl.test"]; $0.allowlists = ["good.test"]; $0.spf = false; $0.exemptNetworks = ["192.0.2.96/31"] }
        let listed = await inbound.connect("192.0.2.99")
        #expect(listed.blocklisted?.zone == "bl.test")
        let refusal = await inbound.mailFrom(client: listed, helo: "x.test", sender: "a@remote.test").refusal
        #expect(refusal?.code.rawValue == 554)
        let text = refusal?.encoded() ?? ""
        #expect(text.contains("bl.test") && !text.contains("\u{1B}"))
        // Listed too, but on the allowlist: the allowlist wins and the blocklist is not asked.
        let allowed = await inbound.connect("192.0.2.98")
        #expect(allowed.allowlisted?.zone == "good.test" && allowed.blocklisted == nil)
        #expect(await inbound.mailFrom(client: allowed, helo: "x.test", sender: "a@remote.test").refusal == nil)
        // Not listed anywhere.
        let clean = await inbound.connect("192.0.2.50")
        #expect(clean.blocklisted == nil)
        #expect(await inbound.mailFrom(client: clean, helo: "x.test", sender: "a@remote.test").refusal == nil)
        // An exempt network is not looked up at all.
        let exempt = await inbound.connect("192.0.2.97")
        #expect(exempt.exempt && exempt.blocklisted == nil)
    }

    /// DMARC asks the DNS about the From field's domain: only a domain name is asked about (in its ASCII form), never an
    /// address literal or text no DNS name can be.
    @Test func theFromDomainIsADomainName() {
        func from(_ value: String) -> String? {
            InboundChecks.fromDomain(RawHeader.fields(Array("From: \(value)\r\nSubject: x\r\n\r\n".utf8)[...]))
        }
        #expect(from("Alice <alice@Example.COM>") == "example.com")
        #expect(from("alice@b\u{FC}cher.example") == "xn--bcher-kva.example")
        #expect(from("alice@bad..example") == nil)
        #expect(from("alice@-bad.example") == nil)
        #expect(from("alice@[192.0.2.1]") == nil)
        #expect(from("alice@exa_mple.com") == nil)
        #expect(from("alice@example.com, bob@example.org") == nil)
    }

    @Test func reverseDNSWhenRequired() async {
        let inbound = Self.checks({ dns in
            dns.ptr["192.0.2.10"] = ["mail.remote.test"]
            dns.a["mail.remote.test"] = ["192.0.2.10"]
            dns.ptr["192.0.2.11"] = ["forged.remote.test"]
            dns.a["forged.remote.test"] = ["198.51.100.1"]
            dns.failing = ["192.0.2.12"]
        }) { $0.requireReverseDNS = true; $0.spf = false }
        func reply(_ ip: String) async -> Int? {
            let client = await inbound.connect(ip)
            return await inbound.mailFrom(client: client, helo: "x.test", sender: "a@remote.test").refusal?.code.rawValue
        }
        #expect(await reply("192.0.2.10") == nil)    // forward-confirmed
        #expect(await reply("192.0.2.11") == 550)    // the name does not point back
        #expect(await reply("192.0.2.13") == 550)    // no PTR at all
        #expect(await reply("192.0.2.12") == 450)    // DNS failed: try later, not a refusal
    }

    @Test func spfOfTheSenderAndDMARCRejectOnTheContent() async {
        let inbound = Self.checks { dns in
            dns.txt["remote.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
            dns.txt["_dmarc.remote.test"] = ["v=DMARC1; p=reject"]
            dns.txt["soft.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
            dns.txt["_dmarc.soft.test"] = ["v=DMARC1; p=quarantine"]
        }
        let client = await inbound.connect("192.0.2.10")
        let pass = await inbound.mailFrom(client: client, helo: "mail.remote.test", sender: "a@remote.test")
        #expect(pass.spf?.mailFrom?.result == .pass && pass.refusal == nil)
        let outsider = await inbound.connect("198.51.100.7")
        #expect(await inbound.mailFrom(client: outsider, helo: "x.test", sender: "a@remote.test").spf?.mailFrom?.result == .fail)
        // DMARC: From remote.test, SPF failed and no DKIM: p=reject refuses at the end of DATA, p=quarantine files it as Junk.
        func message(_ from: String) -> [UInt8] {
            Array("From: <\(from)>\r\nTo: <b@here.test>\r\nSubject: hi\r\nDate: Tue, 18 May 2033 03:33:20 +0000\r\nMessage-ID: <m@x>\r\n\r\nhello\r\n".utf8)
        }
        let rejected = await inbound.evaluate(message: message("a@remote.test"), clientAddress: "198.51.100.7", helo: "x.test", mailFrom: "a@remote.test")
        #expect(rejected.dmarc?.result == .fail)
        #expect(rejected.action.hasPrefix("refused at end of DATA: 550 5.7.1"))
        let junk = await inbound.evaluate(message: message("a@soft.test"), clientAddress: "198.51.100.7", helo: "x.test", mailFrom: "a@soft.test")
        #expect(junk.action == "deliver to Junk")
        let fine = await inbound.evaluate(message: message("a@remote.test"), clientAddress: "192.0.2.10", helo: "x.test", mailFrom: "a@remote.test")
        #expect(fine.dmarc?.result == .pass && fine.action == "accept")
    }

    @Test func theReportNeverCarriesControlBytesFromTheMessage() async {
        let inbound = Self.checks { _ in }
        let message = Array(("Received: from evil\u{1B}]2;pwned\u{07}.test ([192.0.2.1]) by mx.here.test; Tue, 18 May 2033 03:33:20 +0000\r\n"
                             + "From: <a@remote.test>\r\nSubject: \u{1B}[2Jcleared\r\nDate: Tue, 18 May 2033 03:33:20 +0000\r\n\r\nhi\r\n").utf8)
        let checks = await inbound.evaluate(message: message, clientAddress: "192.0.2.1", helo: "x.test", mailFrom: "a@remote.test")
        let text = MessageReport(checks: checks, message: message).render()
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D })
        #expect(text.contains("\\x1B"), "the escaped byte is shown")
    }
}
