import Foundation
import MailCore
import MailDNS

/// One check_host() run with its counters (§4.6.4) shared by every nested include and redirect.
struct Evaluation {
    let checker: SPFChecker
    let ip: IPAddress
    let sender: String
    let helo: String
    var lookups = 0
    var voids = 0

    struct Result {
        var result: SPFResult
        var reason: String
        /// The exp= of the record that produced a fail (evaluated only at the top, §6.2).
        var exp: (domainSpec: String, domain: String)?
    }

    enum Stop: Error {
        case perm(String)
        case temp(String)
    }

    init(checker: SPFChecker, ip: IPAddress, sender: String, helo: String) {
        self.checker = checker
        self.ip = ip
        self.sender = sender
        self.helo = helo
    }

    mutating func checkHost(domain: String, depth: Int) async -> Result {
        // §4.3: a domain that is not a multi-label FQDN with sane labels gives "none".
        guard SPFDomain.isValid(domain) else { return Result(result: .none, reason: "invalid domain \(domain)") }
        let records: [String]
        do {
            records = try await checker.resolver.txt(domain)
        } catch {
            switch error {
            case .nxdomain, .noData: return Result(result: .none, reason: "no SPF record at \(domain)")
            case .temporary: return Result(result: .temperror, reason: "DNS failure looking up \(domain)")
            case .permanent: return Result(result: .temperror, reason: "DNS failure looking up \(domain)")
            }
        }
        let spf = SPFChecker.spfRecords(records)
        guard !spf.isEmpty else { return Result(result: .none, reason: "no SPF record at \(domain)") }
        guard spf.count == 1 else { return Result(result: .permerror, reason: "more than one SPF record at \(domain)") }
        do {
            return try await evaluate(record: spf[0], domain: domain, depth: depth)
        } catch Stop.perm(let why) {
            return Result(result: .permerror, reason: why)
        } catch Stop.temp(let why) {
            return Result(result: .temperror, reason: why)
        } catch {
            return Result(result: .temperror, reason: "\(error)")
        }
    }

    enum Qualifier: Character {
        case pass = "+", fail = "-", softfail = "~", neutral = "?"
        var result: SPFResult {
            switch self {
            case .pass: return .pass
            case .fail: return .fail
            case .softfail: return .softfail
            case .neutral: return .neutral
            }
        }
    }

    mutating func evaluate(record: String, domain: String, depth: Int) async throws -> Result {
        // §4.6.1: terms are separated by spaces only.
        let terms = record.split(separator: " ", omittingEmptySubsequences: true).dropFirst().map(String.init)
        var redirect: String?
        var exp: String?
        var mechanisms: [(Qualifier, String, String?)] = []  // qualifier, name, argument (after ':' or '/' or '=')
        for term in terms {
            guard term.allSatisfy({ $0.isASCII && !$0.isNewline && $0 != "\t" && ($0.asciiValue ?? 0) >= 0x21 }) else {
                throw Stop.perm("invalid character in record")
            }
            // Modifier: name=value, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
            if let eq = term.firstIndex(of: "="), let first = term.first, first.isLetter,
               term[..<eq].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) {
                let name = term[..<eq].lowercased()
                let value = String(term[term.index(after: eq)...])
                switch name {
                case "redirect":
                    guard redirect == nil else { throw Stop.perm("two redirect= modifiers") }
                    try SPFMacro.validateDomainSpec(value)
                    redirect = value
                case "exp":
                    guard exp == nil else { throw Stop.perm("two exp= modifiers") }
                    try SPFMacro.validateDomainSpec(value)
                    exp = value
                default:
                    try SPFMacro.validate(value, explanation: true)  // unknown modifiers are ignored, but must parse
                }
                continue
            }
            var rest = Substring(term)
            var qualifier = Qualifier.pass
            if let q = rest.first, let parsed = Qualifier(rawValue: q) { qualifier = parsed; rest = rest.dropFirst() }
            let nameEnd = rest.firstIndex { $0 == ":" || $0 == "/" } ?? rest.endIndex
            let name = rest[..<nameEnd].lowercased()
            var argument: String? = nil
            if nameEnd < rest.endIndex { argument = String(rest[nameEnd...]) }
            guard ["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"].contains(name) else {
                throw Stop.perm("unknown mechanism \(term)")
            }
            mechanisms.append((qualifier, name, argument))
        }
        // Syntax of every mechanism is checked before any is evaluated (§4.6: a syntax error anywhere is permerror).
        for (_, name, argument) in mechanisms { try Self.checkSyntax(name, argument) }

        for (qualifier, name, argument) in mechanisms {
            if try await matches(name, argument, domain: domain, depth: depth) {
                var r = Result(result: qualifier.result, reason: "matched \(qualifier == .pass ? "" : String(qualifier.rawValue))\(name)\(argument ?? "") at \(domain)")
                if r.result == .fail, let exp { r.exp = (exp, domain) }
                return r
            }
        }
        if let redirect {
            // §6.1: redirect counts as a lookup; a target without a record is permerror.
            try count()
            let target = try await expandDomain(redirect, domain: domain)
            var r = await checkHost(domain: target, depth: depth + 1)
            if r.result == .none { r = Result(result: .permerror, reason: "redirect to \(target), which has no SPF record") }
            return r
        }
        return Result(result: .neutral, reason: "no mechanism matched at \(domain)")
    }

    static func checkSyntax(_ name: String, _ argument: String?) throws {
        switch name {
        case "all":
            guard argument == nil else { throw Stop.perm("all takes no argument") }
        case "include", "exists":
            guard let a = argument, a.hasPrefix(":"), a.count > 1 else { throw Stop.perm("\(name) needs a domain") }
            try SPFMacro.validateDomainSpec(String(a.dropFirst()))
        case "a", "mx", "ptr":
            if let spec = try splitCIDR(argument, allowCIDR: name != "ptr").0 { try SPFMacro.validateDomainSpec(spec) }
        case "ip4":
            guard let a = argument, a.hasPrefix(":") else { throw Stop.perm("ip4 needs an address") }
            let body = a.dropFirst()
            let parts = body.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, IPAddress.parse4(String(parts[0])) != nil else { throw Stop.perm("bad ip4 \(body)") }
            if parts.count == 2 { guard let n = Int(parts[1]), (0...32).contains(n), !parts[1].hasPrefix("0") || parts[1] == "0" else { throw Stop.perm("bad ip4 prefix") } }
        case "ip6":
            guard let a = argument, a.hasPrefix(":") else { throw Stop.perm("ip6 needs an address") }
            let body = a.dropFirst()
            let slash = body.lastIndex(of: "/")
            let addr = slash.map { String(body[..<$0]) } ?? String(body)
            guard IPAddress.parse6(addr) != nil else { throw Stop.perm("bad ip6 \(body)") }
            if let slash {
                let p = body[body.index(after: slash)...]
                guard let n = Int(p), (0...128).contains(n), !p.hasPrefix("0") || p == "0" else { throw Stop.perm("bad ip6 prefix") }
            }
        default:
            throw Stop.perm("unknown mechanism \(name)")
        }
    }

    /// `[:domain-spec][/cidr4][//cidr6]` of a, mx (and ptr without CIDR). The prefix lengths are taken from the end: a
    /// domain-spec may itself contain "/".
    static func splitCIDR(_ argument: String?, allowCIDR: Bool) throws -> (String?, Int, Int) {
        guard let argument else { return (nil, 32, 128) }
        var rest = Substring(argument)
        var v4 = 32, v6 = 128
        func trailingNumber(_ s: Substring) -> (Substring, Substring)? {
            let digits = s.reversed().prefix { $0.isNumber }
            guard !digits.isEmpty else { return nil }
            let body = s.dropLast(digits.count)
            guard body.hasSuffix("/") else { return nil }
            return (body.dropLast(), Substring(String(digits.reversed())))
        }
        func number(_ s: Substring, max: Int) throws -> Int {
            guard !(s.hasPrefix("0") && s.count > 1), let n = Int(s), n <= max else { throw Stop.perm("bad prefix length /\(s)") }
            return n
        }
        if let (body, digits) = trailingNumber(rest) {
            if body.hasSuffix("/") {
                // "//cidr6", possibly after "/cidr4"
                v6 = try number(digits, max: 128)
                rest = body.dropLast()
                if let (b2, d4) = trailingNumber(rest) { v4 = try number(d4, max: 32); rest = b2 }
            } else {
                v4 = try number(digits, max: 32)
                rest = body
            }
            guard allowCIDR else { throw Stop.perm("ptr takes no prefix length") }
        }
        var spec: String?
        if !rest.isEmpty {
            guard rest.hasPrefix(":"), rest.count > 1 else { throw Stop.perm("bad mechanism argument \(argument)") }
            spec = String(rest.dropFirst())
        }
        return (spec, v4, v6)
    }

    mutating func count() throws {
        lookups += 1
        if lookups > SPFChecker.lookupLimit { throw Stop.perm("more than \(SPFChecker.lookupLimit) DNS lookups") }
    }

    mutating func matches(_ name: String, _ argument: String?, domain: String, depth: Int) async throws -> Bool {
        switch name {
        case "all":
            return true
        case "ip4", "ip6":
            let body = argument!.dropFirst()
            let slash = body.lastIndex(of: "/")
            let network = IPAddress(slash.map { String(body[..<$0]) } ?? String(body))!
            let prefix = slash.map { Int(body[body.index(after: $0)...])! } ?? (name == "ip4" ? 32 : 128)
            if name == "ip4" && !ip.isV4 { return false }
            if name == "ip6" && ip.isV4 { return false }
            return ip.matches(network, prefix: prefix)
        case "include":
            try count()
            let target = try await expandDomain(String(argument!.dropFirst()), domain: domain)
            guard depth < 20 else { throw Stop.perm("include loop") }
            let r = await checkHost(domain: target, depth: depth + 1)
            switch r.result {
            case .pass: return true
            case .fail, .softfail, .neutral: return false
            case .temperror: throw Stop.temp(r.reason)
            case .permerror: throw Stop.perm(r.reason)
            case .none: throw Stop.perm("include of \(target), which has no SPF record")
            }
        case "exists":
            try count()
            let target = try await expandDomain(String(argument!.dropFirst()), domain: domain)
            // §5.7: an A query whatever the client's address family.
            return !(try await addresses(target, v6: false)).isEmpty
        case "a":
            try count()
            let (spec, v4, v6) = try Self.splitCIDR(argument, allowCIDR: true)
            let target = spec == nil ? domain : try await expandDomain(spec!, domain: domain)
            return try await addresses(target, v6: !ip.isV4).contains { ip.matches($0, prefix: ip.isV4 ? v4 : v6) }
        case "mx":
            try count()
            let (spec, v4, v6) = try Self.splitCIDR(argument, allowCIDR: true)
            let target = spec == nil ? domain : try await expandDomain(spec!, domain: domain)
            let records = try await mx(target)
            // §4.6.4: more than 10 MX names is permerror.
            guard records.count <= 10 else { throw Stop.perm("more than 10 MX records at \(target)") }
            for r in records where !r.exchange.isEmpty && r.exchange != "." {
                if try await addresses(r.exchange, v6: !ip.isV4, countVoid: false).contains(where: { ip.matches($0, prefix: ip.isV4 ? v4 : v6) }) {
                    return true
                }
            }
            return false
        case "ptr":
            try count()
            let (spec, _, _) = try Self.splitCIDR(argument, allowCIDR: false)
            let target = spec == nil ? domain : try await expandDomain(spec!, domain: domain)
            for name in await validatedNames() {
                let n = name.lowercased(), t = target.lowercased()
                if n == t || n.hasSuffix("." + t) { return true }
            }
            return false
        default:
            throw Stop.perm("unknown mechanism \(name)")
        }
    }

    /// The client's PTR names that resolve back to its address (§5.5), at most 10 of them looked at.
    mutating func validatedNames() async -> [String] {
        guard let names = try? await checker.resolver.ptr(ip.readable) else { return [] }
        var out: [String] = []
        for name in names.prefix(10) {
            let back = (try? await (ip.isV4 ? checker.resolver.a(name) : checker.resolver.aaaa(name))) ?? []
            if back.compactMap(IPAddress.init).contains(ip) { out.append(name) }
        }
        return out
    }

    // MARK: DNS with the void-lookup limit (§4.6.4)

    mutating func noteVoid() throws {
        voids += 1
        if voids > SPFChecker.voidLimit { throw Stop.perm("more than \(SPFChecker.voidLimit) void DNS lookups") }
    }

    mutating func addresses(_ name: String, v6: Bool, countVoid: Bool = true) async throws -> [IPAddress] {
        do {
            let list = v6 ? try await checker.resolver.aaaa(name) : try await checker.resolver.a(name)
            return list.compactMap(IPAddress.init)
        } catch {
            switch error {
            case .nxdomain, .noData:
                if countVoid { try noteVoid() }
                return []
            case .temporary, .permanent:
                throw Stop.temp("DNS failure looking up \(name)")
            }
        }
    }

    mutating func mx(_ name: String) async throws -> [MXRecord] {
        do {
            return try await checker.resolver.mx(name)
        } catch {
            switch error {
            case .nxdomain, .noData:
                try noteVoid()
                return []
            case .temporary, .permanent:
                throw Stop.temp("DNS failure looking up MX of \(name)")
            }
        }
    }

    // MARK: macros (§7)

    /// A domain-spec after macro expansion. A result that is no valid name is still looked up (and finds nothing),
    /// as the test suite's HELO cases expect.
    mutating func expandDomain(_ spec: String, domain: String) async throws -> String {
        var ctx = context(domain: domain)
        if spec.lowercased().contains("%{p") { ctx.validatedName = await validatedNames().first ?? "unknown" }
        let expanded = try await SPFMacro.expand(spec, context: ctx, explanation: false)
        var name = expanded.hasSuffix(".") ? String(expanded.dropLast()) : expanded
        // §7.3: longer than 253 octets: drop labels from the left.
        while name.utf8.count > 253, let dot = name.firstIndex(of: ".") { name = String(name[name.index(after: dot)...]) }
        return name
    }

    func context(domain: String) -> SPFMacro.Context {
        let at = sender.lastIndex(of: "@")!
        return SPFMacro.Context(sender: sender, local: String(sender[..<at]), senderDomain: String(sender[sender.index(after: at)...]),
                                domain: domain, ip: ip, helo: helo, receiver: checker.receiver, now: checker.clock.now)
    }

    /// The explanation for a fail (§6.2): the TXT record at the expanded exp= domain, itself macro-expanded. Any problem
    /// on the way means no explanation, never a different result.
    mutating func explanation(_ spec: String, domain: String) async -> String? {
        guard let target = try? await expandDomain(spec, domain: domain),
              let records = try? await checker.resolver.txt(target), records.count == 1 else { return nil }
        var ctx = context(domain: domain)
        if records[0].lowercased().contains("%{p"), let name = await validatedNames().first { ctx.validatedName = name }
        guard let text = try? await SPFMacro.expand(records[0], context: ctx, explanation: true),
              text.allSatisfy({ $0.isASCII }) else { return nil }
        return text
    }
}

/// Domain name checks of §4.3 and the toplabel rule of §7.1.
enum SPFDomain {
    static func isValid(_ domain: String) -> Bool {
        var d = domain
        if d.hasSuffix(".") { d.removeLast() }
        let labels = d.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, d.utf8.count <= 253 else { return false }
        return labels.allSatisfy { !$0.isEmpty && $0.utf8.count <= 63 }
    }

    static func hasTopLabel(_ name: String) -> Bool {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, let top = labels.last, !top.isEmpty, labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else { return false }
        // toplabel: alphanumerics with at least one letter, or with inner hyphens.
        guard top.allSatisfy({ ($0.isLetter || $0.isNumber || $0 == "-") && $0.isASCII }), !top.hasPrefix("-"), !top.hasSuffix("-") else { return false }
        return top.contains { $0.isLetter } || top.contains("-")
    }
}
