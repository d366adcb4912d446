import TernAdmin
import ArgumentParser
import DNSResolverLive
import Foundation
import MailCore
import MailStore
import StoreFactory
import TernConfig

/// Parses the command line; `tern serve`'s root work runs here on the main thread (see Serve.prepare), the rest
/// in the async runtime.
@main
enum Main {
    static func main() {
        nonisolated(unsafe) let command: any ParsableCommand
        do {
            command = try Tern.parseAsRoot()
            if let serve = command as? Serve { Serve.prepared = try serve.prepare() }
        } catch { Tern.exit(withError: error) }
        Task {
            do {
                if let async = command as? any AsyncParsableCommand {
                    nonisolated(unsafe) var c = async
                    try await c.run()
                } else {
                    var c = command
                    try c.run()
                }
                Tern.exit()
            } catch { Tern.exit(withError: error) }
        }
        dispatchMain()
    }
}

struct Tern: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Tern: a complete mail server in one binary.",
        discussion: "Without a subcommand, `tern` runs `tern serve`: the embedded default in ./tern-data when no --config is given.",
        subcommands: [Serve.self, ConfigCommand.self, DomainCommand.self, UserCommand.self, AliasCommand.self,
                      ExportCommand.self, ImportCommand.self, RouteCommand.self, QueueCommand.self, DKIMCommand.self,
                      DNSRecordsCommand.self, CheckCommand.self, PSLCommand.self, SpamCommand.self, TraceCommand.self, QuickstartCommand.self,
                      SendmailCommand.self, MigrateCommand.self, SieveCommand.self],
        defaultSubcommand: Serve.self)
}

/// `--config FILE`, shared by every command: which server's data folder to work on.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The server's config file (TOML). Without it: the embedded default, data in ./tern-data.")
    var config: String?

    func load() throws -> TernConfiguration {
        guard let config else { return TernConfiguration.embeddedDefault() }
        do {
            return try TernConfiguration.load(path: config)
        } catch {
            // Each problem with its file, line and key; no usage text: the command line was right. 78: EX_CONFIG.
            FileHandle.standardError.write(Data("Error: invalid config:\n\(error)\n".utf8))
            throw ExitCode(78)
        }
    }

    /// The DNS resolver with the config's nameservers.
    func resolver() throws -> LiveResolver { LiveResolver(config: try load()) }

    /// The store; started as root with `user` set, the command first becomes that user (as doveadm does), so that
    /// every file in the data folder keeps the server's owner.
    func openStore() async throws -> (TernConfiguration, any MailStore) {
        let cfg = try load()
        umask(0o077)
        if let account = try ServiceAccount.forConfig(cfg, warn: { _ in }) {
            try account.own(cfg.dataDirectory)
            try account.become()
        }
        return (cfg, try await StoreFactory.open(cfg, clock: SystemClock()))
    }
}

extension LiveResolver {
    /// A resolver asking the config's nameservers (the system's when none are set).
    convenience init(config: TernConfiguration) {
        self.init(nameservers: config.nameservers.compactMap(LiveResolver.Nameserver.init))
    }
}

func parseAddress(_ text: String) throws -> EmailAddress {
    do { return try EmailAddress.parse(text) } catch { throw ValidationError("\"\(text)\" is not a valid address: \(error)") }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Check or print configuration.",
                                                    subcommands: [Check.self, Example.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Report every error in a config file, with its line.")
        @Argument(help: "The config file.") var file: String

        func run() throws {
            do {
                let cfg = try TernConfiguration.load(path: file)
                print("\(file): OK (hostname \(cfg.hostname), data \(cfg.dataDirectory.path))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Example: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an annotated config with every setting and its default.")
        func run() { print(ConfigSchema.example(), terminator: "") }
    }
}

struct DomainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "domain", abstract: "Manage the domains Tern receives mail for.",
                                                    subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a domain.")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            try await store.addDomain(domain)
            let name = Domain.canonical(domain)
            print("added domain \(name)")
            // The first DKIM pair, so mail from the domain is signed from the start.
            let keys = try await DKIMKeys.generate(store: store, domain: name)
            print("DKIM keys \(keys.map(\.selector).joined(separator: ", ")) made; `tern dns-records \(name)` prints the records to publish")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List domains.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let (_, store) = try await options.openStore()
            for d in try await store.domains() {
                let unicode = IDNA.toUnicode(d.name)
                print("\(d.name)\(unicode == d.name ? "" : " (\(unicode))")\t\(d.accounts) accounts\t\(d.aliases) aliases")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a domain with its accounts, aliases and mail.")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            try await store.removeDomain(domain)
            print("removed domain \(Domain.canonical(domain))")
        }
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "user", abstract: "Manage accounts (mailboxes and logins).",
                                                    subcommands: [Add.self, List.self, Remove.self, Password.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an account; a password is generated and printed when none is given.")
        @OptionGroup var options: ConfigOption
        @Argument var address: String
        @Option(help: "The password (prefer --password-stdin: arguments show in the process list).") var password: String?
        @Flag(help: "Read the password from standard input.") var passwordStdin = false
        func run() async throws {
            let (_, store) = try await options.openStore()
            let (pw, generated) = try choosePassword(password, fromStdin: passwordStdin)
            let addr = try parseAddress(address)
            _ = try await store.addAccount(addr, password: pw)
            print("added user \(addr.canonical)")
            if generated { print("password: \(pw)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String?
        func run() async throws {
            let (_, store) = try await options.openStore()
            for a in try await store.accounts(domain: domain) {
                print("\(a.address)\t\(a.messages) messages\t\(a.bytes) bytes")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an account and all its mail.")
        @OptionGroup var options: ConfigOption
        @Argument var address: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            try await store.removeAccount(try parseAddress(address))
            print("removed user \(address)")
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set an account's password; a new one is generated and printed when none is given.")
        @OptionGroup var options: ConfigOption
        @Argument var address: String
        @Option var password: String?
        @Flag(help: "Read the password from standard input.") var passwordStdin = false
        func run() async throws {
            let (cfg, store) = try await options.openStore()
            let (pw, generated) = try choosePassword(password, fromStdin: passwordStdin)
            let addr = try parseAddress(address)
            try await store.setPassword(addr, password: pw)
            FirstRun.forget(address: addr.canonical, dataDirectory: cfg.dataDirectory)
            print("password changed for \(addr.canonical)")
            if generated { print("password: \(pw)") }
        }
    }
}

struct AliasCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alias", abstract: "Manage aliases and catch-alls.",
                                                    subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an alias: mail for SOURCE goes to every TARGET.",
            discussion: "SOURCE is local@domain, or @domain for a catch-all that takes mail for every address of the domain that has no account or alias.")
        @OptionGroup var options: ConfigOption
        @Argument var source: String
        @Argument var targets: [String]
        func run() async throws {
            let (_, store) = try await options.openStore()
            try await store.addAlias(source, targets: try targets.map(parseAddress))
            print("alias \(source.lowercased()) -> \(targets.joined(separator: ", "))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List aliases.")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String?
        func run() async throws {
            let (_, store) = try await options.openStore()
            for a in try await store.aliases(domain: domain) {
                print("\(a.source)\t\(a.targets.joined(separator: ", "))")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an alias.")
        @OptionGroup var options: ConfigOption
        @Argument var source: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            try await store.removeAlias(source)
            print("removed alias \(source.lowercased())")
        }
    }
}
