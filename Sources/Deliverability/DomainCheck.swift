import MailDNS

/// What list checks say about a domain's route (RFC 5321 §5.1, RFC 7505).
extension MailRoute {
    /// The reason an address at this domain cannot receive mail, or nil when it can (or DNS could not tell).
    public var problem: String? {
        switch self {
        case .hosts, .temporaryFailure: return nil
        case .nullMX: return "the domain publishes a null MX: it receives no mail"
        case .noRoute(let why): return why
        }
    }

    /// One line on where mail for `domain` goes.
    public func summary(for domain: String) -> String {
        switch self {
        case .hosts(let hosts):
            return hosts.allSatisfy { $0.isImplicitMX(of: domain) } ? "no MX; mail goes to the domain's own address"
                : "MX " + hosts.map(\.name).joined(separator: ", ")
        case .nullMX: return "null MX (no mail)"
        case .noRoute(let why): return why
        case .temporaryFailure(let why): return "not known: \(why)"
        }
    }
}

extension AddressVerdict {
    /// Refuses a valid address whose domain takes no mail (`tern check address --dns` and list cleansing).
    public mutating func apply(_ route: MailRoute) {
        guard isValid, let problem = route.problem else { return }
        self.problem = problem
        problemKind = "domain"
    }
}
