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

    func run() async throws {
        do {
            try await send()
        } catch let e as SendmailExit {
            FileHandle.standardError.write(Data("tern sendmail: \(e.text)\n".utf8))
            throw ExitCode(e.code)
        }
    }

    func send() async throws {
        let inv: SendmailInput.Invocation
        switch SendmailInput.parse(arguments) {
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
        let prepared = SendmailInput.prepare(input, sender: sender, fullName: inv.fullName, takeRecipients: inv.fromHeaders,
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

}


