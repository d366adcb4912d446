import Foundation
import MailMessage

/// What `tern sendmail` reads, without I/O: sendmail's command line (Postfix's options) and the message as given on
/// standard input, made ready for the intake pipeline.
public enum SendmailInput {
    public struct Invocation: Equatable, Sendable {
        public var recipients: [String] = []
        public var fromHeaders = false
        public var dotEnds = true
        public var sender: String?
        public var fullName: String?
    }

    /// sendmail's command line; a usage error's text when it cannot be read.
    public static func parse(_ args: [String]) -> Result<Invocation, SendmailExit> {
        var inv = Invocation()
        var i = 0, optionsDone = false
        func value(_ arg: String, _ flag: String) -> String? {
            if arg.count > flag.count { return String(arg.dropFirst(flag.count)) }
            i += 1
            return i < args.count ? args[i] : nil
        }
        while i < args.count {
            let arg = args[i]
            if optionsDone || !arg.hasPrefix("-") || arg == "-" {
                inv.recipients += arg.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } else if arg == "--" {
                optionsDone = true
            } else if arg == "-t" {
                inv.fromHeaders = true
            } else if arg == "-i" || arg == "-oi" {
                inv.dotEnds = false
            } else if arg.hasPrefix("-f") || arg.hasPrefix("-r") {
                guard let v = value(arg, String(arg.prefix(2))) else { return .failure(.usage("-f needs a sender address")) }
                inv.sender = v
            } else if arg.hasPrefix("-F") {
                guard let v = value(arg, "-F") else { return .failure(.usage("-F needs a name")) }
                inv.fullName = v
            } else if ["-B", "-N", "-R", "-V", "-C", "-L", "-O", "-X"].contains(where: { arg.hasPrefix($0) }) {
                guard value(arg, String(arg.prefix(2))) != nil else { return .failure(.usage("\(arg.prefix(2)) needs a value")) }
            } else if arg.hasPrefix("-o") || ["-v", "-m", "-n", "-U", "-G", "-bm", "-Am", "-Ac", "-odi", "-odb", "-odq"].contains(arg) {
                continue
            } else if arg.hasPrefix("-b") {
                return .failure(.usage("\(arg) is not supported: only sending (-bm) is; see `tern queue list` for the queue"))
            } else {
                return .failure(.usage("unknown option \(arg)"))
            }
            i += 1
        }
        return .success(inv)
    }

    public struct Prepared: Sendable {
        public var message: [UInt8]
        public var recipients: [String]
    }

    /// Line ends made CRLF (the input ending at a lone "." line unless -i), a leading mbox "From " line dropped, Bcc
    /// fields removed (their addresses kept for -t), a From field added when there is none, bare local parts in address
    /// fields given `domain`; with `takeRecipients`, the addresses of To, Cc and Bcc.
    public static func prepare(_ input: [UInt8], sender: String, fullName: String?, takeRecipients: Bool, dotEnds: Bool,
                        domain: String) -> Prepared {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        while start < input.count {
            let end = input[start...].firstIndex(of: 10) ?? input.count
            var line = input[start..<end]
            if line.last == 13 { line = line.dropLast() }
            // Without -i, a line holding a single "." ends the input.
            if dotEnds && line.count == 1 && line.first == UInt8(ascii: ".") { break }
            lines.append(line)
            start = end + 1
        }
        if let first = lines.first, first.starts(with: Array("From ".utf8)) { lines.removeFirst() }
        // The header runs to the empty line; a line that is neither a field nor a continuation (text piped in without
        // a header) starts the body there.
        var headerLines = 0, bodyStart = lines.count
        for (i, line) in lines.enumerated() {
            if line.isEmpty { bodyStart = i + 1; break }
            let continuation = i > 0 && (line.first == 32 || line.first == 9)
            let named = line.firstIndex(of: UInt8(ascii: ":")).map { $0 > line.startIndex && line[..<$0].allSatisfy { $0 > 32 && $0 < 127 } }
            guard continuation || named == true else { bodyStart = i; break }
            headerLines = i + 1
        }
        var header: [UInt8] = []
        for line in lines[..<headerLines] { header += line + [13, 10] }
        let fields = RawHeader.fields(header[...])
        func named(_ f: RawHeaderField, _ names: String...) -> Bool { names.contains(f.name.lowercased()) }

        var recipients: [String] = []
        if takeRecipients {
            for f in fields where named(f, "to", "cc", "bcc") {
                for case .mailbox(_, let local, let domain) in AddressList.parse(f.unfoldedValue) {
                    recipients.append(domain.map { "\(local)@\($0)" } ?? local)
                }
            }
        }
        var out: [UInt8] = []
        if fields.first(named: "From") == nil {
            let address = sender.isEmpty ? "MAILER-DAEMON" : sender
            if let fullName, !fullName.isEmpty, fullName.allSatisfy({ $0.isASCII && $0 != "\"" && $0 != "\\" }) {
                out += Array("From: \"\(fullName)\" <\(address)>\r\n".utf8)
            } else {
                out += Array("From: \(address)\r\n".utf8)
            }
        }
        for f in fields where !named(f, "bcc") {
            out += named(f, "from", "to", "cc", "reply-to", "sender") ? qualified(f, domain: domain) ?? f.raw : f.raw
        }
        out += [13, 10]
        for line in lines[bodyStart...] { out += line + [13, 10] }
        return Prepared(message: out, recipients: recipients)
    }

    /// An address field with a bare local part (`To: root`) written again with the domain added, one address a line;
    /// nil when every address has a domain (the field stays as written) or the field holds a group.
    public static func qualified(_ field: RawHeaderField, domain: String) -> [UInt8]? {
        var bare = false
        var addresses: [String] = []
        for item in AddressList.parse(field.unfoldedValue) {
            guard case .mailbox(let name, let local, let d) = item else { return nil }
            if d == nil { bare = true }
            let address = "\(local)@\(d ?? domain)"
            if let name, !name.isEmpty {
                let phrase = name.contains("=?") ? name
                    : "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
                addresses.append("\(phrase) <\(address)>")
            } else {
                addresses.append(address)
            }
        }
        guard bare, !addresses.isEmpty else { return nil }
        return Array("\(field.name): \(addresses.joined(separator: ",\r\n\t"))\r\n".utf8)
    }
}

/// How `tern sendmail` fails, with sendmail's exit codes (sysexits.h).
public enum SendmailExit: Error, Equatable {
    case usage(String), dataError(String), noUser(String), cantCreate(String), tempFail(String)

    public var code: Int32 {
        switch self {
        case .usage: 64
        case .dataError: 65
        case .noUser: 67
        case .cantCreate: 73
        case .tempFail: 75
        }
    }

    public var text: String {
        switch self {
        case .usage(let t), .dataError(let t), .noUser(let t), .cantCreate(let t), .tempFail(let t): t
        }
    }
}
