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

    /// The From domains DMARC checks: each address's domain once, lowercased, in ASCII form; no address literal.
    @Test func theFromDomains() {
        func from(_ header: String) -> [String] {
            InboundChecks.fromDomains(RawHeader.fields(Array("\(header)Subject: x\r\n\r\n".utf8)[...]))
        }
        #expect(from("From: Alice <alice@Example.COM>\r\n") == ["example.com"])
        #expect(from("From: alice@b\u{FC}cher.example\r\n") == ["xn--bcher-kva.example"])
        #expect(from("From: alice@[192.0.2.1]\r\n") == [])
        #expect(from("From: alice@[IPv6:2001:db8::1]\r\n") == [])
        #expect(from("From: alice@[Bank.test]\r\n") == ["bank.test"])   // not a literal: a domain in brackets
        #expect(from("To: alice@example.com\r\n") == [])
        #expect(from("From: alice@example.com, bob@example.org, carol@EXAMPLE.com\r\n") == ["example.com", "example.org"])
        #expect(from("From: alice@example.com\r\nFrom: bob@example.org\r\n") == ["example.com", "example.org"])
        // Kept as written when not a valid DNS name: the organizational domain's policy still applies.
        #expect(from("From: alice@bad..Example\r\n") == ["bad..example"])
    }

    /// A From that names a domain with `p=reject` is refused when neither SPF nor DKIM align, however the From is
    /// written: a trailing dot, a label no host name may have, a second address or a second From field beside it,
    /// or more domains than are checked.
    @Test func dmarcCannotBeSidesteppedByTheFormOfFrom() async {
        let inbound = Self.checks { dns in
            dns.txt["_dmarc.bank.test"] = ["v=DMARC1; p=reject"]
            dns.txt["_dmarc.other.test"] = ["v=DMARC1; p=none"]
        }
        func verdict(_ header: String) async -> (DMARCResult?, String) {
            let message = Array("\(header)To: <b@here.test>\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\nhello\r\n".utf8)
            let report = await inbound.evaluate(message: message, clientAddress: "198.51.100.7", helo: "x.test", mailFrom: "a@elsewhere.test")
            return (report.dmarc?.result, report.action)
        }
        for header in ["From: <alerts@bank.test>\r\n", "From: <alerts@bank.test.>\r\n", "From: <alerts@secure_login.bank.test>\r\n",
                       "From: <alerts@-x.bank.test>\r\n", "From: <alerts@a..bank.test>\r\n", "From: <alerts@BANK.test>\r\n",
                       "From: <alerts@[bank.test]>\r\n",
                       "From: <me@other.test>, <alerts@bank.test>\r\n", "From: <me@other.test>\r\nFrom: <alerts@bank.test>\r\n",
                       "From: " + (1...11).map { "<x@d\($0).test>" }.joined(separator: ", ") + "\r\n"] {
            let (result, action) = await verdict(header)
            #expect(result == .fail, "\(header)")
            #expect(action.hasPrefix("refused at end of DATA: 550 5.7.1"), "\(header): \(action)")
        }
        // A domain whose policy asks for nothing: a failure, and the message goes on.
        let (result, action) = await verdict("From: <me@other.test>\r\n")
        #expect(result == .fail && action == "accept")
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
