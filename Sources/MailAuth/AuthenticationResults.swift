import DKIM

/// The Authentication-Results header field (RFC 8601) that records what the receiving server found: iprev, SPF, each
/// DKIM signature and DMARC. One field, folded one method per line.
public struct AuthenticationResults: Sendable {
    public var authservID: String
    public var iprev: (outcome: IPRevOutcome, address: String)?
    /// SPF of MAIL FROM (or of HELO for a null sender), with the identities checked.
    public var spf: (outcome: SPFOutcome, mailFrom: String, helo: String)?
    /// SPF of the HELO name on its own (RFC 7208 §2.3), when the sender was not null.
    public var spfHelo: (outcome: SPFOutcome, helo: String)?
    public var dkim: [DKIMOutcome] = []
    public var dmarc: DMARCOutcome?
    /// A word on why nothing was checked (trusted client).
    public var note: String?

    public init(authservID: String) { self.authservID = authservID }

    /// The whole field with its final CRLF.
    public var field: String {
        var methods: [String] = []
        if let (o, address) = iprev {
            var m = "iprev=\(o.result.rawValue) policy.iprev=\(Self.value(address))"
            if let name = o.name { m += " (\(Self.comment(name)))" }
            methods.append(m)
        }
        if let (o, mailFrom, helo) = spf {
            var m = "spf=\(o.result.rawValue) (\(Self.comment(o.reason)))"
            if !mailFrom.isEmpty { m += " smtp.mailfrom=\(Self.value(mailFrom))" }
            if !helo.isEmpty { m += " smtp.helo=\(Self.value(helo))" }
            methods.append(m)
        }
        if let (o, helo) = spfHelo {
            methods.append("spf=\(o.result.rawValue) (HELO: \(Self.comment(o.reason))) smtp.helo=\(Self.value(helo))")
        }
        for d in dkim {
            var m = "dkim=\(d.result.rawValue)"
            var notes: [String] = []
            if let reason = d.reason { notes.append(reason) }
            if let bits = d.keyBits { notes.append("\(bits)-bit key") }
            if d.testing { notes.append("key in testing mode") }
            if d.unsignedBodyOctets > 0 { notes.append("\(d.unsignedBodyOctets) body octets not signed") }
            if !notes.isEmpty { m += " (\(Self.comment(notes.joined(separator: "; "))))" }
            if !d.domain.isEmpty {
                m += " header.d=\(Self.value(d.domain)) header.i=\(Self.value(d.identity)) header.s=\(Self.value(d.selector))"
                m += " header.a=\(d.algorithm) header.b=\(Self.value(String(d.shortSignature.prefix(8))))"
            }
            methods.append(m)
        }
        if let d = dmarc {
            var m = "dmarc=\(d.result.rawValue)"
            if let r = d.record {
                m += " (p=\(r.policy.rawValue)"
                if let sp = r.subdomainPolicy { m += " sp=\(sp.rawValue)" }
                m += " dis=\(d.result == .fail ? d.disposition.rawValue : "none"))"
            } else if !d.reason.isEmpty {
                m += " (\(Self.comment(d.reason)))"
            }
            if !d.fromDomain.isEmpty { m += " header.from=\(Self.value(d.fromDomain))" }
            methods.append(m)
        }
        var head = "Authentication-Results: \(authservID)"
        if methods.isEmpty {
            return head + ";" + (note.map { " (\(Self.comment($0)))" } ?? "") + " none\r\n"
        }
        if let note { head += " (\(Self.comment(note)))" }
        return head + ";\r\n\t" + methods.joined(separator: ";\r\n\t") + "\r\n"
    }

    /// A property value: as it is when it is a token or an address of token characters, else a quoted-string.
    static func value(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            c.value > 32 && c.value < 127 && !"()<>,;:\\\"[]?= ".unicodeScalars.contains(c)
        }
        if plain { return s }
        let escaped = s.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.map { c -> String in
            c == "\"" || c == "\\" ? "\\\(c)" : String(c)
        }.joined()
        return "\"\(escaped)\""
    }

    /// Text safe inside a comment: parentheses and backslashes escaped, controls dropped, kept short.
    static func comment(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.prefix(160).map { c -> String in
            c == "(" || c == ")" || c == "\\" ? "\\\(c)" : String(c)
        }.joined())
    }
}
