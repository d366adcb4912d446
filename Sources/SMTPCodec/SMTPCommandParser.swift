import MailCore

/// Parses one SMTP command line (without its CRLF) into an `SMTPCommand`.
/// A syntax error comes back as the reply the client should get.
public enum SMTPCommandParser {
    public static func parse(_ line: [UInt8]) throws(SMTPReply) -> SMTPCommand {
        // RFC 5321 §4.1.1: verbs are case-insensitive and separated from arguments by one SP.
        var verbEnd = 0
        while verbEnd < line.count, line[verbEnd] != UInt8(ascii: " ") { verbEnd += 1 }
        let verb = String(decoding: line[0..<verbEnd], as: UTF8.self).uppercased()
        let rest = verbEnd < line.count ? Array(line[(verbEnd + 1)...]) : []
        let argument = String(decoding: rest, as: UTF8.self).trimmingSpaces()

        switch verb {
        case "EHLO", "HELO":
            guard !argument.isEmpty else { throw SMTPReply(501, "5.5.4", "\(verb) requires a domain name or address literal") }
            let domain = argument.split(separator: " ", maxSplits: 1).first.map(String.init) ?? argument
            return verb == "EHLO" ? .ehlo(domain) : .helo(domain)
        case "MAIL":
            let (pathBytes, params) = try splitPath(rest, prefix: "FROM:")
            let reversePath: ReversePath
            if pathBytes.isEmpty {
                reversePath = .null
            } else {
                do { reversePath = .mailbox(try EmailAddress.parse(pathBytes)) } catch {
                    throw SMTPReply(501, "5.1.7", "Bad sender address syntax: \(error)")
                }
            }
            return .mail(reversePath, try parseMailParameters(params))
        case "RCPT":
            let (pathBytes, params) = try splitPath(rest, prefix: "TO:")
            let forwardPath: ForwardPath
            if String(decoding: pathBytes, as: UTF8.self).lowercased() == "postmaster" {
                forwardPath = .postmaster
            } else {
                guard !pathBytes.isEmpty else { throw SMTPReply(501, "5.1.3", "Bad recipient address syntax: the address is empty") }
                do { forwardPath = .mailbox(try EmailAddress.parse(pathBytes)) } catch {
                    throw SMTPReply(501, "5.1.3", "Bad recipient address syntax: \(error)")
                }
            }
            return .rcpt(forwardPath, try parseRecipientParameters(params))
        case "DATA":
            try noArguments(argument, verb)
            return .data
        case "BDAT":
            let parts = argument.split(separator: " ")
            // At most 18 digits: a chunk size and the sum of them fit an Int however many chunks come.
            guard (1...2).contains(parts.count), parts[0].count <= 18, parts[0].allSatisfy(\.isASCII), let size = Int(parts[0]), size >= 0 else {
                throw SMTPReply(501, "5.5.4", "Syntax: BDAT size [LAST]")
            }
            if parts.count == 2 && parts[1].uppercased() != "LAST" { throw SMTPReply(501, "5.5.4", "Syntax: BDAT size [LAST]") }
            return .bdat(size: size, last: parts.count == 2)
        case "RSET":
            try noArguments(argument, verb)
            return .rset
        case "NOOP":
            return .noop // RFC 5321 §4.1.1.9: a parameter may be given and is ignored.
        case "QUIT":
            try noArguments(argument, verb)
            return .quit
        case "STARTTLS":
            try noArguments(argument, verb)
            return .startTLS
        case "VRFY":
            guard !argument.isEmpty else { throw SMTPReply(501, "5.5.4", "Syntax: VRFY address") }
            return .vrfy(argument)
        case "EXPN":
            guard !argument.isEmpty else { throw SMTPReply(501, "5.5.4", "Syntax: EXPN list") }
            return .expn(argument)
        case "HELP":
            return .help(argument.isEmpty ? nil : argument)
        case "AUTH":
            let parts = argument.split(separator: " ")
            guard (1...2).contains(parts.count) else { throw SMTPReply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]") }
            return .auth(mechanism: parts[0].uppercased(), initialResponse: parts.count == 2 ? String(parts[1]) : nil)
        default:
            throw SMTPReply(500, "5.5.2", "Command not recognized")
        }
    }

    private static func noArguments(_ argument: String, _ verb: String) throws(SMTPReply) {
        guard argument.isEmpty else { throw SMTPReply(501, "5.5.4", "\(verb) takes no arguments") }
    }

    /// Splits `FROM:<path> params` into the path's inside and the parameter text.
    /// Accepts `FROM: <path>` (a space after the colon) as Postfix does, and drops an RFC 5321 §4.1.2
    /// source route (`<@a,@b:user@c>`), which §C says must be accepted and ignored.
    static func splitPath(_ rest: [UInt8], prefix: String) throws(SMTPReply) -> ([UInt8], [UInt8]) {
        let p = Array(prefix.utf8)
        let syntax = SMTPReply(501, "5.5.4", "Syntax: \(prefix == "FROM:" ? "MAIL FROM:<address>" : "RCPT TO:<address>")")
        guard rest.count >= p.count, zip(rest, p).allSatisfy({ upper($0) == $1 }) else { throw syntax }
        var i = p.count
        while i < rest.count, rest[i] == UInt8(ascii: " ") { i += 1 }
        guard i < rest.count, rest[i] == UInt8(ascii: "<") else { throw syntax }
        i += 1
        let start = i
        var inQuotes = false
        var end: Int?
        while i < rest.count {
            let c = rest[i]
            if inQuotes {
                if c == UInt8(ascii: "\\") { i += 2; continue }
                if c == UInt8(ascii: "\"") { inQuotes = false }
            } else if c == UInt8(ascii: "\"") {
                inQuotes = true
            } else if c == UInt8(ascii: ">") {
                end = i; break
            }
            i += 1
        }
        guard let close = end else { throw syntax }
        var path = Array(rest[start..<close])
        if path.first == UInt8(ascii: "@"), let colon = path.firstIndex(of: UInt8(ascii: ":")) {
            path = Array(path[(colon + 1)...])
        }
        var params = Array(rest[(close + 1)...])
        if !params.isEmpty {
            guard params.first == UInt8(ascii: " ") else { throw syntax }
            params.removeFirst()
        }
        return (path, params)
    }

    private static func upper(_ c: UInt8) -> UInt8 {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) ? c - 32 : c
    }

    /// `esmtp-param = esmtp-keyword ["=" esmtp-value]` separated by SP.
    static func keywordValues(_ bytes: [UInt8]) throws(SMTPReply) -> [(String, String?)] {
        let text = String(decoding: bytes, as: UTF8.self)
        var out: [(String, String?)] = []
        for part in text.split(separator: " ") {
            if let eq = part.firstIndex(of: "=") {
                let key = part[..<eq].uppercased()
                let value = String(part[part.index(after: eq)...])
                guard !key.isEmpty, !value.isEmpty else { throw SMTPReply(501, "5.5.4", "Malformed parameter \"\(part)\"") }
                out.append((key, value))
            } else {
                out.append((part.uppercased(), nil))
            }
        }
        return out
    }

    static func parseMailParameters(_ bytes: [UInt8]) throws(SMTPReply) -> MailParameters {
        var params = MailParameters()
        var seen = Set<String>()
        for (key, value) in try keywordValues(bytes) {
            guard seen.insert(key).inserted else { throw SMTPReply(501, "5.5.4", "Parameter \(key) given twice") }
            switch (key, value) {
            case ("SIZE", let v?):
                guard v.count <= 18, let n = Int(v), n >= 0 else { throw SMTPReply(501, "5.5.4", "SIZE needs a number of octets") }
                params.size = n
            case ("BODY", let v?):
                guard let body = BodyType(rawValue: v.uppercased()) else {
                    throw SMTPReply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
                }
                // BINARYMIME (RFC 3030) is not offered in EHLO: a parameter of an extension not offered gets 555.
                guard body != .binaryMIME else { throw SMTPReply(555, "5.5.4", "BODY=BINARYMIME is not supported") }
                params.body = body
            case ("SMTPUTF8", nil):
                params.smtputf8 = true
            case ("RET", let v?):
                guard let ret = DSNReturn(rawValue: v.uppercased()) else { throw SMTPReply(501, "5.5.4", "RET must be FULL or HDRS") }
                params.dsnReturn = ret
            case ("ENVID", let v?):
                guard let decoded = XText.decode(v), decoded.utf8.count <= 100 else {
                    throw SMTPReply(501, "5.5.4", "ENVID is not valid xtext of at most 100 characters")
                }
                params.envelopeID = decoded
            case ("AUTH", let v?):
                guard let decoded = XText.decode(v) else { throw SMTPReply(501, "5.5.4", "AUTH= is not valid xtext") }
                params.auth = decoded
            default:
                throw SMTPReply(555, "5.5.4", "Unsupported MAIL parameter \(key)")
            }
        }
        return params
    }

    static func parseRecipientParameters(_ bytes: [UInt8]) throws(SMTPReply) -> RecipientParameters {
        var params = RecipientParameters()
        var seen = Set<String>()
        for (key, value) in try keywordValues(bytes) {
            guard seen.insert(key).inserted else { throw SMTPReply(501, "5.5.4", "Parameter \(key) given twice") }
            switch (key, value) {
            case ("NOTIFY", let v?):
                let items = v.uppercased().split(separator: ",").map(String.init)
                if items == ["NEVER"] {
                    params.notifyNever = true
                    params.notify = []
                } else {
                    var set: DSNNotify = []
                    for item in items {
                        switch item {
                        case "SUCCESS": set.insert(.success)
                        case "FAILURE": set.insert(.failure)
                        case "DELAY": set.insert(.delay)
                        default: throw SMTPReply(501, "5.5.4", "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
                        }
                    }
                    params.notify = set
                }
            case ("ORCPT", let v?):
                guard let semi = v.firstIndex(of: ";"), let decoded = XText.decode(String(v[v.index(after: semi)...])) else {
                    throw SMTPReply(501, "5.5.4", "ORCPT must be addr-type;xtext")
                }
                params.originalRecipient = "\(v[..<semi]);\(decoded)"
            default:
                throw SMTPReply(555, "5.5.4", "Unsupported RCPT parameter \(key)")
            }
        }
        return params
    }
}

/// xtext (RFC 3461 §4): printable ASCII except "+" and "=", with "+XX" hex escapes.
public enum XText {
    public static func decode(_ s: String) -> String? {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "+") {
                guard i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) else { return nil }
                out.append(v); i += 3
            } else if (33...126).contains(c) && c != UInt8(ascii: "=") {
                out.append(c); i += 1
            } else {
                return nil
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func encode(_ s: String) -> String {
        var out = ""
        for c in s.utf8 {
            if (33...126).contains(c) && c != UInt8(ascii: "+") && c != UInt8(ascii: "=") {
                out.append(Character(Unicode.Scalar(c)))
            } else {
                out += "+" + String(c, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }

    func leftPadded(to n: Int) -> String {
        count >= n ? self : String(repeating: "0", count: n - count) + self
    }
}
