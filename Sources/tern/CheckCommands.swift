import TernAdmin
import ArgumentParser
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Deliverability
import DNSResolverLive
import Foundation
import Logging
import MailAuth
import Intake
import MailCore
import MailMessage
import MailStore
import StoreFactory
import NIOCore
import SpamFilter
import TernConfig


struct PSLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "psl", abstract: "The Public Suffix List DMARC uses.",
                                                    subcommands: [Update.self, Show.self])

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch the current Public Suffix List into the data folder (the server reads it at its next start).")
        @OptionGroup var options: ConfigOption
        @Option(help: "Where to fetch it from.") var url = "https://publicsuffix.org/list/public_suffix_list.dat"
        @Option(help: "Read the list from this file instead of fetching it.") var from: String?

        func run() async throws {
            let config = try options.load()
            let text: String
            if let from {
                guard let t = try? String(contentsOfFile: from, encoding: .utf8) else { throw ValidationError("cannot read \(from)") }
                text = t
            } else {
                text = try await Self.fetch(url)
            }
            let list = PublicSuffixList(text: text)
            guard list.ruleCount >= SuffixListFile.minimumRules else {
                throw ValidationError("that is not a Public Suffix List (\(list.ruleCount) rules); nothing was changed")
            }
            try FileManager.default.createDirectory(at: config.dataDirectory, withIntermediateDirectories: true)
            let target = config.dataDirectory.appendingPathComponent(SuffixListFile.fileName)
            try Data(text.utf8).write(to: target, options: .atomic)
            print("\(target.path): \(list.ruleCount) rules (built-in list: \(PublicSuffixList.builtIn.ruleCount) rules of \(PublicSuffixList.builtInVersion)). Restart tern serve to use it.")
        }

        static func fetch(_ url: String) async throws -> String {
            guard let target = URL(string: url), ["http", "https"].contains(target.scheme?.lowercased() ?? "") else {
                throw ValidationError("\(url) is not an http(s) URL")
            }
            var request = URLRequest(url: target, timeoutInterval: 60)
            request.setValue("Tern mail server (psl update)", forHTTPHeaderField: "User-Agent")
            let (body, response): (Data, URLResponse)
            do {
                (body, response) = try await URLSession.shared.data(for: request)
            } catch {
                throw ValidationError("cannot fetch \(url): \(error.localizedDescription)")
            }
            if let http = response as? HTTPURLResponse, http.statusCode != 200 { throw ValidationError("\(url): HTTP \(http.statusCode)") }
            guard body.count <= 16 << 20 else { throw ValidationError("\(url): larger than 16 MiB, not a Public Suffix List") }
            return String(decoding: body, as: UTF8.self)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the organizational domain of each name, and which list is used.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Domain names.") var names: [String] = []

        func run() async throws {
            let config = try options.load()
            let (list, file) = SuffixListFile.loadWithSource(dataDirectory: config.dataDirectory)
            print("list: \(file?.path ?? "built-in (\(PublicSuffixList.builtInVersion))"), \(list.ruleCount) rules")
            for n in names {
                print("\(n): public suffix \(list.publicSuffix(of: n)), organizational domain \(list.organizationalDomain(of: n))")
            }
        }
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Check messages, domains and addresses.",
                                                    subcommands: [Message.self, CheckDomain.self, CheckAddress.self, CheckAddresses.self])

    struct Message: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect a saved message: its Received path with delays, RFC 5322 problems, reverse DNS, DNS lists, SPF, DKIM, DMARC, spam score, and a deliverability score out of 10.",
            discussion: """
                The client address, HELO name and MAIL FROM come from the options, or else from the message: its \
                Return-Path and the newest Received field that names a client address in brackets. DNS is looked up \
                with the configured nameservers.
                """)
        @OptionGroup var options: ConfigOption
        @Argument(help: "The message file (RFC 5322) or an mbox file of one or more messages, or - for standard input.")
        var file: String
        @Option(help: "The client's IP address.") var ip: String?
        @Option(help: "The HELO/EHLO name the client gave.") var helo: String?
        @Option(name: .customLong("mail-from"), help: "The envelope sender (MAIL FROM); \"\" for a null sender.") var mailFrom: String?

        func run() async throws {
            let (config, store) = try await options.openStore()
            let data: Data
            if file == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
                data = d
            }
            let messages = MessageText.messages(in: Array(data))
            let resolver = LiveResolver(config: config)
            let checks = InboundChecks(config: config, resolver: resolver,
                                       suffixes: SuffixListFile.load(dataDirectory: config.dataDirectory), clock: SystemClock())
            var unchecked = 0
            for (n, message) in messages.enumerated() {
                if messages.count > 1 { print("\(n == 0 ? "" : "\n")=== message \(n + 1) of \(messages.count)") }
                let trace = MessageText.trace(message)
                guard let address = ip ?? trace.ip else {
                    let why = "no client address: give --ip (the message has no Received field naming one)"
                    if messages.count == 1 { throw ValidationError(why) }
                    print(why)
                    unchecked += 1
                    continue
                }
                let report = await checks.evaluate(message: message, clientAddress: address, helo: helo ?? trace.helo ?? "",
                                                   mailFrom: mailFrom ?? trace.returnPath ?? "", store: store)
                print(MessageReport(checks: report, message: message).render(), terminator: "")
            }
            if unchecked > 0 {
                FileHandle.standardError.write(Data("\(unchecked) of \(messages.count) messages not checked\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}


struct SpamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spam", abstract: "The Bayesian spam filter's training.",
                                                    subcommands: [Train.self, Evaluate.self, Status.self])

    static func account(_ user: String, _ store: any MailStore) async throws -> AccountID {
        guard let account = try await store.account(try parseAddress(user)) else { throw ValidationError("no account \(user)") }
        return account
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "How many messages the filter was trained on (globally, or for one account).")
        @OptionGroup var options: ConfigOption
        @Option(help: "An account: its own counts.") var user: String?

        func run() async throws {
            let (_, store) = try await options.openStore()
            let global = try await store.bayesCounts(owner: nil, tokens: [])
            print("global: \(global.spamMessages) spam, \(global.hamMessages) ham")
            if let user {
                let both = try await store.bayesCounts(owner: try await SpamCommand.account(user, store), tokens: [])
                print("\(try parseAddress(user).canonical): \(both.spamMessages - global.spamMessages) spam, \(both.hamMessages - global.hamMessages) ham")
            }
            print("the filter scores once it has \(BayesClassifier.minimumTrained) of each (own and global counts together)")
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the filter on saved messages (as sa-learn does): files or folders of them (Maildir included), one message a file or mbox files.",
            discussion: "Without --user the global counts, which every account's scoring adds to its own, are trained. A message trained again the same way changes nothing; the other way moves its counts over.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Train this account's own counts instead of the global ones.") var user: String?
        @Option(help: "Good mail: a file or folder (repeatable).") var ham: [String] = []
        @Option(help: "Spam: a file or folder (repeatable).") var spam: [String] = []

        func validate() throws {
            guard !ham.isEmpty || !spam.isEmpty else { throw ValidationError("give --ham and/or --spam with files or folders") }
        }

        func run() async throws {
            let (_, store) = try await options.openStore()
            var owner: AccountID?
            if let user { owner = try await SpamCommand.account(user, store) }
            let (trained, read) = try await SpamCorpus.train(store: store, owner: owner, ham: ham, spam: spam)
            let counts = try await store.bayesCounts(owner: owner, tokens: [])
            print("trained \(trained) of \(read) messages; the \(user.map { "counts of \($0) (with the global ones)" } ?? "global counts") now hold \(counts.spamMessages) spam and \(counts.hamMessages) ham")
        }
    }

    struct Evaluate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score saved messages as port 25 would, and print how many the filter gets right.",
            discussion: "Each message is scored with the rules and the installation's global counts, and marked spam from checks.junk_score, as the server does. A message the counts were trained on is scored with its own counts taken out, so no message is judged by what it taught. Prints: spam caught X of N (P%), ham marked spam Y of M (Q%).")
        @OptionGroup var options: ConfigOption
        @Option(help: "Good mail: a file or folder (repeatable).") var ham: [String] = []
        @Option(help: "Spam: a file or folder (repeatable).") var spam: [String] = []
        @Flag(help: "List each message wrongly judged, with its score and rules.") var verbose = false

        func validate() throws {
            guard !ham.isEmpty || !spam.isEmpty else { throw ValidationError("give --ham and/or --spam with files or folders") }
        }

        func run() async throws {
            let (config, store) = try await options.openStore()
            let junk = config.checks.junkScore
            let result = try await SpamCorpus.evaluate(store: store, config: config, ham: ham, spam: spam) { path, isSpam, report in
                guard verbose, (report.score >= junk) != isSpam else { return }
                print("\(isSpam ? "missed spam" : "ham marked spam") \(path): \(report.score) \(report.hits.map(\.name).joined(separator: ","))")
            }
            print(result.summary)
            if result.rulesOnly > 0 { print("(\(result.rulesOnly) scored by the rules alone: the filter has too little training)") }
            if result.leftOut > 0 { print("(\(result.leftOut) had been trained on: scored with their own counts taken out)") }
        }
    }
}
