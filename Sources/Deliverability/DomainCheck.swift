import MailDNS

/// Whether a domain can receive mail, as a sending server would find out (RFC 5321 §5.1, RFC 7505).
public enum MailDomainStatus: Sendable, Equatable {
    /// Mail goes to these hosts (MX, or the domain itself when it has addresses but no MX).
    case accepts(hosts: [String], implicit: Bool)
    /// A null MX: the domain says it takes no mail.
    case nullMX
    /// No such domain, or neither MX nor address records.
    case noRoute(String)
    /// DNS did not answer: the address is neither good nor bad yet.
    case unknown(String)

    public var isDeliverable: Bool { if case .accepts = self { return true } else { return false } }

    /// The reason an address at this domain cannot receive mail, or nil when it can (or DNS could not tell).
    public var problem: String? {
        switch self {
        case .accepts, .unknown: return nil
        case .nullMX: return "the domain publishes a null MX: it receives no mail"
        case .noRoute(let why): return why
        }
    }

    public var summary: String {
        switch self {
        case .accepts(let hosts, let implicit):
            return implicit ? "no MX; mail goes to the domain's own address" : "MX " + hosts.joined(separator: ", ")
        case .nullMX: return "null MX (no mail)"
        case .noRoute(let why): return why
        case .unknown(let why): return "not known: \(why)"
        }
    }
}

public enum DomainCheck {
    /// Looks up where mail for `domain` (A-label form) goes.
    public static func mailStatus(_ domain: String, resolver: some DNSResolver) async -> MailDomainStatus {
        var random = SystemRandomNumberGenerator()
        switch await RouteSelection.route(for: domain, resolver: resolver, random: &random) {
        case .hosts(let hosts):
            return .accepts(hosts: hosts.map(\.name), implicit: hosts.allSatisfy { $0.preference == 0 && $0.name == domain.lowercased() })
        case .nullMX: return .nullMX
        case .noRoute(let why): return .noRoute(why)
        case .temporaryFailure(let why): return .unknown(why)
        }
    }
}
