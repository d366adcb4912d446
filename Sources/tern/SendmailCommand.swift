import TernAdmin
import ArgumentParser
import Foundation
import Glibc
import Logging
import Intake
import MailCore
import MailMessage
import MailStore
import StoreFactory
import TernConfig

/// `tern sendmail`: the /usr/sbin/sendmail interface that cron, scripts and web applications call. The message is read
/// from standard input and committed to the store (stored for local recipients, queued for the others) before the
/// command returns 0.
struct SendmailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sendmail",
        abstract: "Send a message read from standard input, as /usr/sbin/sendmail does.",
        discussion: """
            Options as Postfix's sendmail takes them: -t (recipients from To, Cc and Bcc, added to those named), -i or -oi \
            (a line with a single dot does not end the message), -f SENDER (envelope sender), -F NAME (the name in a From \
            field that is added when the message has none). Other -o, -B, -N, -R, -V options are accepted and ignored. \
            Addresses without a domain get the first domain served here. Bcc fields are removed. Exit status as sendmail's \
            (sysexits): 0 sent, 64 usage, 65 bad message, 67 unknown local user, 73/75 cannot write.
            A wrapper for /usr/sbin/sendmail: `exec tern sendmail --config /etc/tern/tern.toml "$@"`.
            """)

    @OptionGroup var options: ConfigOption
    @Argument(parsing: .allUnrecognized, help: "sendmail's options and the recipients.")
    var arguments: [String] = []

    struct Invocation: Equatable {
        var recipients: [String] = []
        var fromHeaders = false
        var dotEnds = true
        var sender: String?
        var fullName: String?
    }

    /// sendmail's command line; a usage error's text when it cannot be read.
    static func parse(_ args: [String]) -> Result<Invocation, SendmailExit> {
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

    func run() async throws {
        do {
            try await send()
        } catch let e as SendmailExit {
            FileHandle.standardError.write(Data("tern sendmail: \(e.text)\n".utf8))
            throw ExitCode(e.code)
        }
    }

    func send() async throws {
        let inv: Invocation
        switch Self.parse(arguments) {
        case .success(let v): inv = v
        case .failure(let e): throw e
        }
        let config: TernConfiguration
        let store: any MailStore
        do {
            (config, store) = try await options.openStore()
        } catch {
            throw SendmailExit.cantCreate("cannot open the mail store: \(error)")
        }
        let input = try Self.readInput(limit: config.limits.maxMessageSize)
        let defaultDomain = (try? await store.domains().first?.name) ?? config.hostname
        func qualify(_ a: String) -> String { a.contains("@") ? a : "\(a)@\(defaultDomain)" }
        let login = getpwuid(getuid()).flatMap { String(validatingCString: $0.pointee.pw_name) } ?? "uid\(getuid())"
        let sender = inv.sender.map { $0 == "<>" || $0.isEmpty ? "" : qualify($0) } ?? qualify(login)
        let prepared = Self.prepare(input, sender: sender, fullName: inv.fullName, takeRecipients: inv.fromHeaders,
                                    dotEnds: inv.dotEnds, domain: defaultDomain)
        var recipients: [EmailAddress] = []
        for r in inv.recipients + prepared.recipients {
            let text = qualify(r.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")))
            guard let a = try? EmailAddress.parse(text) else { throw SendmailExit.usage("\"\(r)\" is not a valid address") }
            if !recipients.contains(a) { recipients.append(a) }
        }
        if !sender.isEmpty, (try? EmailAddress.parse(sender)) == nil { throw SendmailExit.usage("\"\(sender)\" is not a valid sender address") }
        guard !recipients.isEmpty else { throw SendmailExit.usage("no recipients (name them, or use -t)") }
        var logger = Logger(label: "tern.sendmail")
        logger.logLevel = .warning
        let intake = Intake(store: store, config: config, checks: nil, work: InlineWork(), logger: logger)
        do {
            _ = try await LocalSubmission.submit(prepared.message, mailFrom: sender, recipients: recipients,
                                                 origin: "\(login) (uid \(getuid()))", intake: intake, now: store.clock.now,
                                                 logger: logger)
        } catch let f as LocalSubmission.Failure {
            switch f {
            case .refused: throw SendmailExit.noUser(f.description)
            case .deferred: throw SendmailExit.tempFail(f.description)
            case .tooLarge: throw SendmailExit.dataError(f.description)
            case .noRecipients: throw SendmailExit.usage(f.description)
            }
        } catch {
            throw SendmailExit.tempFail("the message could not be stored: \(error)")
        }
    }

    /// Standard input up to the end, bounded by the message size limit.
    static func readInput(limit: Int) throws -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, 65536) }
            if n < 0 { if errno == EINTR { continue }; throw SendmailExit.tempFail("cannot read standard input") }
            if n == 0 { break }
            data += buffer[..<n]
            if data.count > limit + 4096 { throw SendmailExit.dataError("message larger than limits.max_message_size (\(limit) octets)") }
        }
        return data
    }

    struct Prepared {
        var message: [UInt8]
        var recipients: [String]
    }

    /// Line ends made CRLF (the input ending at a lone "." line unless -i), a leading mbox "From " line dropped, Bcc
    /// fields removed (their addresses kept for -t), a From field added when there is none, bare local parts in address
    /// fields given `domain`; with `takeRecipients`, the addresses of To, Cc and Bcc.
    static func prepare(_ input: [UInt8], sender: String, fullName: String?, takeRecipients: Bool, dotEnds: Bool,
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
}

extension SendmailCommand {
    /// An address field with a bare local part (`To: root`) written again with the domain added, one address a line;
    /// nil when every address has a domain (the field stays as written) or the field holds a group.
    static func qualified(_ field: RawHeaderField, domain: String) -> [UInt8]? {
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
enum SendmailExit: Error, Equatable {
    case usage(String), dataError(String), noUser(String), cantCreate(String), tempFail(String)

    var code: Int32 {
        switch self {
        case .usage: 64
        case .dataError: 65
        case .noUser: 67
        case .cantCreate: 73
        case .tempFail: 75
        }
    }

    var text: String {
        switch self {
        case .usage(let t), .dataError(let t), .noUser(let t), .cantCreate(let t), .tempFail(let t): t
        }
    }
}
