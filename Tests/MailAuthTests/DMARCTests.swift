import DKIM
import Foundation
import MailAuth
import MailDNS
import Testing

@Suite struct PublicSuffixListTests {
    /// Cases from the list's own test file (publicsuffix.org/list/test_psl.txt): name → organizational domain, nil when
    /// the name is itself a public suffix.
    @Test func organizationalDomains() {
        let psl = PublicSuffixList.builtIn
        #expect(psl.ruleCount > 9000)
        let cases: [(String, String?)] = [
            ("com", nil), ("example.com", "example.com"), ("b.example.com", "example.com"), ("a.b.example.com", "example.com"),
            ("uk.com", nil), ("example.uk.com", "example.uk.com"), ("b.example.uk.com", "example.uk.com"),
            ("test.ac", "test.ac"), ("mm", nil), ("c.mm", nil), ("b.c.mm", "b.c.mm"), ("a.b.c.mm", "b.c.mm"),
            ("test.jp", "test.jp"), ("www.test.jp", "test.jp"), ("ac.jp", nil), ("test.ac.jp", "test.ac.jp"),
            ("kyoto.jp", nil), ("test.kyoto.jp", "test.kyoto.jp"), ("ide.kyoto.jp", nil), ("b.ide.kyoto.jp", "b.ide.kyoto.jp"),
            ("c.kobe.jp", nil), ("b.c.kobe.jp", "b.c.kobe.jp"), ("city.kobe.jp", "city.kobe.jp"), ("www.city.kobe.jp", "city.kobe.jp"),
            ("ck", nil), ("test.ck", nil), ("b.test.ck", "b.test.ck"), ("www.ck", "www.ck"), ("www.www.ck", "www.ck"),
            ("us", nil), ("test.us", "test.us"), ("www.test.us", "test.us"), ("ak.us", nil), ("test.ak.us", "test.ak.us"),
            ("食狮.com.cn", "xn--85x722f.com.cn"), ("xn--85x722f.com.cn", "xn--85x722f.com.cn"),
            ("www.xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"), ("xn--fiqs8s", nil), ("shishi.xn--fiqs8s", "shishi.xn--fiqs8s"),
            ("EXAMPLE.COM.", "example.com"), ("unlisted-tld-example", nil), ("a.b.unlisted-tld-example", "b.unlisted-tld-example"),
        ]
        for (name, expected) in cases {
            let org = psl.organizationalDomain(of: name)
            let isSuffix = psl.publicSuffix(of: name) == org
            #expect((isSuffix ? nil : org) == expected, "\(name)")
        }
    }

    @Test func ownList() {
        let psl = PublicSuffixList(text: "// comment\nexample\n*.wild.example\n!keep.wild.example\n")
        #expect(psl.ruleCount == 3)
        #expect(psl.organizationalDomain(of: "a.b.example") == "b.example")
        #expect(psl.organizationalDomain(of: "a.b.wild.example") == "a.b.wild.example")
        #expect(psl.organizationalDomain(of: "x.keep.wild.example") == "keep.wild.example")
    }
}

@Suite struct DMARCTests {
    func dkim(_ domain: String, _ result: DKIMResult = .pass) -> DKIMOutcome {
        DKIMOutcome(result: result, domain: domain, selector: "s", identity: "@" + domain, algorithm: "rsa-sha256",
                    shortSignature: "", reason: nil, testing: false)
    }

    var resolver: StaticResolver {
        var r = StaticResolver()
        r.txt["_dmarc.example.com"] = ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com"]
        r.txt["_dmarc.strict.example"] = ["v=DMARC1; p=quarantine; adkim=s; aspf=s"]
        r.txt["_dmarc.half.example"] = ["v=DMARC1; p=reject; pct=50"]
        r.txt["_dmarc.watch.example"] = ["v=DMARC1; p=none"]
        r.txt["_dmarc.two.example"] = ["v=DMARC1; p=reject", "v=DMARC1; p=none"]
        r.txt["_dmarc.other.example"] = ["v=spf1 -all"]
        r.txt["_dmarc.ruaonly.example"] = ["v=DMARC1; p=bogus; rua=mailto:x@ruaonly.example"]
        r.failing = ["_dmarc.flaky.example"]
        return r
    }

    @Test func policies() async {
        let c = DMARCChecker(resolver: resolver)
        // Aligned DKIM passes, relaxed: a subdomain signature counts.
        var o = await c.check(fromDomain: "example.com", spf: nil, dkim: [dkim("mail.example.com")])
        #expect(o.result == .pass && o.dkimAligned && !o.spfAligned)
        // Aligned SPF alone passes too.
        o = await c.check(fromDomain: "example.com", spf: (.pass, "bounces.example.com"), dkim: [dkim("example.com", .fail)])
        #expect(o.result == .pass && o.spfAligned)
        // Unaligned passes do not count: p=reject applies.
        o = await c.check(fromDomain: "example.com", spf: (.pass, "mailer.example.net"), dkim: [dkim("example.net")])
        #expect(o.result == .fail && o.requestedPolicy == .reject && o.disposition == .reject)
        // A subdomain without its own record: the organizational domain's sp= applies.
        o = await c.check(fromDomain: "news.example.com", spf: nil, dkim: [])
        #expect(o.result == .fail && o.recordDomain == "example.com" && o.organizationalDomain == "example.com" && o.disposition == .quarantine)
        // Strict alignment: a subdomain is not enough.
        o = await c.check(fromDomain: "strict.example", spf: (.pass, "a.strict.example"), dkim: [dkim("b.strict.example")])
        #expect(o.result == .fail && o.disposition == .quarantine)
        o = await c.check(fromDomain: "strict.example", spf: nil, dkim: [dkim("strict.example")])
        #expect(o.result == .pass)
        // pct=50: sampled in → reject; sampled out → one step gentler (quarantine).
        o = await c.check(fromDomain: "half.example", spf: nil, dkim: [], sample: 10)
        #expect(o.disposition == .reject)
        o = await c.check(fromDomain: "half.example", spf: nil, dkim: [], sample: 70)
        #expect(o.result == .fail && o.requestedPolicy == .reject && o.disposition == .quarantine)
        // p=none: a failure with nothing to do.
        o = await c.check(fromDomain: "watch.example", spf: nil, dkim: [])
        #expect(o.result == .fail && o.disposition == .none)
    }

    @Test func discoveryEdges() async {
        let c = DMARCChecker(resolver: resolver)
        var o = await c.check(fromDomain: "nothing.example", spf: nil, dkim: [])
        #expect(o.result == .none)
        o = await c.check(fromDomain: "two.example", spf: nil, dkim: [])
        #expect(o.result == .none)
        o = await c.check(fromDomain: "other.example", spf: nil, dkim: [])
        #expect(o.result == .none)
        o = await c.check(fromDomain: "ruaonly.example", spf: nil, dkim: [])
        #expect(o.result == .fail && o.requestedPolicy == .none)
        o = await c.check(fromDomain: "flaky.example", spf: nil, dkim: [])
        #expect(o.result == .temperror)
        o = await c.check(fromDomain: nil, spf: nil, dkim: [])
        #expect(o.result == .permerror)
    }

    @Test func recordParsing() {
        #expect(DMARCRecord.parse("v=DMARC1; p=reject") != nil)
        #expect(DMARCRecord.parse("p=reject; v=DMARC1") == nil)
        #expect(DMARCRecord.parse("v=DMARC1") == nil)
        let r = DMARCRecord.parse("v=DMARC1;p=quarantine;pct=20;adkim=s;aspf=r;sp=none;rua=mailto:a@x,mailto:b@x")
        #expect(r?.policy == .quarantine && r?.percent == 20 && r?.dkimAlignment == .strict && r?.subdomainPolicy == DMARCRecord.Policy.none)
        #expect(r?.aggregateReports == ["mailto:a@x", "mailto:b@x"])
    }
}
