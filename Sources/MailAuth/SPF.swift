import Foundation
import MailCore
import MailDNS

/// Sender Policy Framework (RFC 7208): may this IP address send mail for this domain?
///
/// `check_host()` as §4 defines it, over any `DNSResolver`, with the RFC's limits: 10 lookups of mechanisms and
/// modifiers that query DNS (§4.6.4), 10 MX or PTR names each, and 2 "void" lookups (no records) before permerror.
public enum SPFResult: String, Sendable, Equatable {
    case none, neutral, pass, fail, softfail, temperror, permerror
}

public struct SPFOutcome: Sendable, Equatable {
    public var result: SPFResult
    /// For `fail`: the explanation (the exp= text, macro-expanded), when the domain gives one.
    public var explanation: String?
    /// The mechanism that matched, or why the evaluation ended (for Received-SPF / Authentication-Results comments).
    public var reason: String
    /// DNS lookups counted against the limit of 10.
    public var lookups: Int
}

public struct SPFChecker: Sendable {
    public let resolver: any DNSResolver
    /// The receiving host's name (%{r} in explanations).
    public let receiver: String
    /// The time of a check (%{t} in explanations).
    public let clock: any WallClock
    public static let lookupLimit = 10
    public static let voidLimit = 2

    public init(resolver: any DNSResolver, receiver: String = "unknown", clock: any WallClock) {
        self.resolver = resolver
        self.receiver = receiver
        self.clock = clock
    }

    /// Checks the MAIL FROM identity (or, when it is empty, postmaster@HELO, §2.4) for `ip`.
    public func check(ip: String, mailFrom: String, helo: String) async -> SPFOutcome {
        var sender = mailFrom
        if sender.isEmpty { sender = "postmaster@\(helo)" }
        var domain = sender
        var local = "postmaster"
        if let at = sender.lastIndex(of: "@") {
            local = String(sender[..<at])
            domain = String(sender[sender.index(after: at)...])
            if local.isEmpty { local = "postmaster" }
        }
        return await checkHost(ip: ip, domain: domain, sender: "\(local)@\(domain)", helo: helo)
    }

    /// The SPF records among a name's TXT records (§4.5: "v=spf1" alone or followed by a space).
    public static func spfRecords(_ txt: [String]) -> [String] {
        txt.filter { r in
            let lower = r.lowercased()
            return lower == "v=spf1" || lower.hasPrefix("v=spf1 ")
        }
    }

    /// Checks the HELO identity (§2.3).
    public func checkHELO(ip: String, helo: String) async -> SPFOutcome {
        await checkHost(ip: ip, domain: helo, sender: "postmaster@\(helo)", helo: helo)
    }

    public func checkHost(ip: String, domain: String, sender: String, helo: String) async -> SPFOutcome {
        guard let address = IPAddress(ip) else { return SPFOutcome(result: .permerror, reason: "bad client address", lookups: 0) }
        var state = Evaluation(checker: self, ip: address, sender: sender, helo: helo)
        let result = await state.checkHost(domain: domain, depth: 0)
        var explanation: String?
        if result.result == .fail, let exp = result.exp {
            explanation = await state.explanation(exp.domainSpec, domain: exp.domain)
        }
        return SPFOutcome(result: result.result, explanation: explanation, reason: result.reason, lookups: state.lookups)
    }
}

/// An IP address as bytes (4 or 16); IPv4-mapped IPv6 addresses count as IPv4.
struct IPAddress: Sendable, Hashable {
    var bytes: [UInt8]
    var isV4: Bool { bytes.count == 4 }

    init?(_ text: String) {
        var t = text
        if t.hasPrefix("[") && t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
        if t.lowercased().hasPrefix("ipv6:") { t = String(t.dropFirst(5)) }
        if let v4 = IPAddress.parse4(t) { bytes = v4; return }
        guard var v6 = IPAddress.parse6(t) else { return nil }
        if v6[0..<10].allSatisfy({ $0 == 0 }) && v6[10] == 0xff && v6[11] == 0xff { v6 = Array(v6[12...]) }
        bytes = v6
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    static func parse4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), p.allSatisfy(\.isNumber), let v = UInt8(p) else { return nil }
            out.append(v)
        }
        return out
    }

    static func parse6(_ s: String) -> [UInt8]? {
        guard s.contains(":") else { return nil }
        var text = s
        var tail: [UInt8] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parse4(String(text[text.index(after: lastColon)...])) else { return nil }
            tail = v4
            text = String(text[...lastColon]) + "0:0"
        }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ h: String) -> [UInt16]? {
            if h.isEmpty { return [] }
            var out: [UInt16] = []
            for g in h.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let rest = groups(halves[1]), head.count + rest.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - rest.count) + rest
        }
        guard all.count == 8 else { return nil }
        var bytes = all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        if !tail.isEmpty { bytes.replaceSubrange(12..<16, with: tail) }
        return bytes
    }

    func matches(_ network: IPAddress, prefix: Int) -> Bool {
        guard bytes.count == network.bytes.count else { return false }
        var bits = prefix
        for i in 0..<bytes.count {
            if bits <= 0 { return true }
            let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
            if bytes[i] & mask != network.bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    /// %{i}: dotted decimal, or dot-separated nibbles for IPv6 (§7.3).
    var macroForm: String {
        if isV4 { return bytes.map(String.init).joined(separator: ".") }
        return bytes.flatMap { [String($0 >> 4, radix: 16, uppercase: true), String($0 & 0xf, radix: 16, uppercase: true)] }
            .joined(separator: ".")
    }

    /// %{c}: the usual text form.
    var readable: String {
        if isV4 { return macroForm }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16)) }
        // The longest run of zero groups becomes "::".
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            if groups[i] == "0" {
                var j = i
                while j < 8 && groups[j] == "0" { j += 1 }
                if j - i > best.length && j - i > 1 { best = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        if best.start < 0 { return groups.joined(separator: ":") }
        let left = groups[..<best.start].joined(separator: ":")
        let right = groups[(best.start + best.length)...].joined(separator: ":")
        return left + "::" + right
    }

}
