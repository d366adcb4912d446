import DNSResolverLive
import MailDNS
import Testing

/// A generator with a fixed sequence, so that shuffles are repeatable.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }
}

@Suite struct RouteSelectionTests {
    var dns: StaticResolver {
        var r = StaticResolver()
        r.mx["b.test"] = [MXRecord(preference: 20, exchange: "backup.b.test"), MXRecord(preference: 10, exchange: "mx2.b.test"),
                          MXRecord(preference: 10, exchange: "mx1.b.test")]
        r.a["mx1.b.test"] = ["192.0.2.1"]
        r.a["mx2.b.test"] = ["192.0.2.2"]
        r.aaaa["mx2.b.test"] = ["2001:db8::2"]
        r.a["backup.b.test"] = ["192.0.2.3"]
        r.a["plain.test"] = ["192.0.2.9"]
        r.mx["null.test"] = [MXRecord(preference: 0, exchange: "")]
        r.mx["dangling.test"] = [MXRecord(preference: 10, exchange: "nowhere.dangling.test")]
        r.mx["slow.test"] = [MXRecord(preference: 10, exchange: "mx.slow.test")]
        r.failing = ["mx.slow.test", "down.test"]
        r.txt["noaddress.test"] = ["v=spf1 -all"]
        return r
    }

    func route(_ domain: String, seed: UInt64 = 1, addresses: AddressPreference = .ipv6) async -> MailRoute {
        var rng = SeededGenerator(state: seed)
        return await RouteSelection.route(for: domain, resolver: dns, addresses: addresses, random: &rng)
    }

    @Test func mxInPreferenceOrderWithRandomOrderAmongEquals() async {
        var firsts: Set<String> = []
        for seed in 0..<20 {
            guard case .hosts(let hosts) = await route("B.test", seed: UInt64(seed)) else { Issue.record("no hosts"); return }
            #expect(hosts.map(\.preference) == [10, 10, 20])
            #expect(Set(hosts.prefix(2).map(\.name)) == ["mx1.b.test", "mx2.b.test"])
            #expect(hosts.last?.name == "backup.b.test")
            firsts.insert(hosts[0].name)
        }
        #expect(firsts.count == 2)  // both equal-preference hosts come first sometimes
        guard case .hosts(let v6first) = await route("b.test") else { return }
        #expect(v6first.first { $0.name == "mx2.b.test" }?.addresses == ["2001:db8::2", "192.0.2.2"])
    }

    /// RFC 8305 §4: the families alternate, so one unreachable family costs one attempt, not all of its addresses.
    @Test func addressFamiliesAlternateInTheChosenOrder() async {
        var r = StaticResolver()
        r.a["many.test"] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        r.aaaa["many.test"] = ["2001:db8::1", "2001:db8::2"]
        r.a["v4.test"] = ["192.0.2.9"]
        func addresses(_ domain: String, _ p: AddressPreference) async -> [String]? {
            var rng = SeededGenerator(state: 1)
            guard case .hosts(let hosts) = await RouteSelection.route(for: domain, resolver: r, addresses: p, random: &rng) else { return nil }
            return hosts.first?.addresses
        }
        #expect(await addresses("many.test", .ipv6) == ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2", "192.0.2.3"])
        #expect(await addresses("many.test", .ipv4) == ["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2", "192.0.2.3"])
        #expect(await addresses("many.test", .ipv4Only) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        #expect(await addresses("many.test", .ipv6Only) == ["2001:db8::1", "2001:db8::2"])
        // A host with no address of the allowed family is no route at all.
        #expect(await addresses("v4.test", .ipv6) == ["192.0.2.9"])
        var rng1 = SeededGenerator(state: 1)
        guard case .noRoute = await RouteSelection.route(for: "v4.test", resolver: r, addresses: .ipv6Only, random: &rng1) else {
            Issue.record("an IPv4-only domain has no route over IPv6 only"); return
        }
    }

    @Test func noMXFallsBackToTheDomainsAddress() async {
        #expect(await route("plain.test") == .hosts([RouteHost(name: "plain.test", preference: 0, addresses: ["192.0.2.9"])]))
    }

    @Test func nullMXNoDomainAndNoAddress() async {
        #expect(await route("null.test") == .nullMX)
        guard case .noRoute = await route("missing.test") else { Issue.record("NXDOMAIN must be no route"); return }
        guard case .noRoute = await route("dangling.test") else { Issue.record("an MX without address is no route"); return }
        guard case .noRoute = await route("noaddress.test") else { Issue.record("no MX and no address is no route"); return }
    }

    @Test func temporaryFailuresAreNotBounces() async {
        guard case .temporaryFailure = await route("down.test") else { Issue.record("MX timeout must be temporary"); return }
        guard case .temporaryFailure = await route("slow.test") else { Issue.record("address timeout must be temporary"); return }
    }

    @Test func reverseNames() {
        #expect(ReverseDNS.name(for: "192.0.2.1") == "1.2.0.192.in-addr.arpa")
        #expect(ReverseDNS.name(for: "2001:db8::1") == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
        #expect(ReverseDNS.name(for: "not an address") == nil)
        #expect(LiveResolver.Nameserver("127.0.0.1:5353") == LiveResolver.Nameserver(host: "127.0.0.1", port: 5353))
        #expect(LiveResolver.Nameserver("127.0.0.1")?.port == 53)
        #expect(LiveResolver.Nameserver("example.com:53") == nil)
    }
}
