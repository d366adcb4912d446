import ArgumentParser
import Foundation
import MailCore
import MailStore
import Sieve

/// `tern sieve …`: a user's Sieve scripts (RFC 5228), as ManageSieve will offer them. A script is checked before it is
/// stored: each error is printed with its line and column, and nothing is stored.
struct SieveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sieve", abstract: "Manage users' Sieve filter scripts.",
        subcommands: [Put.self, Activate.self, Get.self, Delete.self, List.self, Check.self])

    /// Parses and validates a script; prints the error (FILE:LINE:COLUMN: message) and fails when there is one.
    static func check(_ text: String, file: String) throws {
        do {
            try SieveValidator.validate(try SieveParser.parse(text))
        } catch let e as SieveError {
            FileHandle.standardError.write(Data("\(file):\(e.position.line):\(e.position.column): \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func account(_ store: any MailStore, _ user: String) async throws -> AccountID {
        guard let a = try await store.account(try EmailAddress.parse(user)) else { throw ValidationError("no account \(user)") }
        return a
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a script for a user (refused if it has an error).")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Argument var name: String
        @Argument(help: "The script file.") var file: String
        func run() async throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file) as UTF-8") }
            try SieveCommand.check(text, file: file)
            let (_, store) = try await options.openStore()
            try await store.putScript(account: try await SieveCommand.account(store, user), name: name, content: text)
            print("stored \(name) for \(user)")
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a script the user's active one (--none: no script runs).")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Argument var name: String?
        @Flag(help: "Deactivate the active script.") var none = false
        func run() async throws {
            guard (name == nil) == none else { throw ValidationError("name a script, or give --none") }
            let (_, store) = try await options.openStore()
            try await store.activateScript(account: try await SieveCommand.account(store, user), name: name)
            print(name.map { "\($0) is active for \(user)" } ?? "no script is active for \(user)")
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a script.")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Argument var name: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            guard let text = try await store.script(account: try await SieveCommand.account(store, user), name: name) else {
                throw ValidationError("\(user) has no script \(name)")
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a script (not the active one).")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Argument var name: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            do {
                try await store.deleteScript(account: try await SieveCommand.account(store, user), name: name)
            } catch StoreError.invalid {
                throw ValidationError("\(name) is active: activate another script or --none first")
            }
            print("deleted \(name) of \(user)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a user's scripts (the active one marked).")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            for s in try await store.scripts(account: try await SieveCommand.account(store, user)) {
                print("\(s.name)\t\(s.size) octets\(s.active ? "\tactive" : "")")
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a script file: every error with its line and column.")
        @OptionGroup var options: ConfigOption   // accepted like every command's; a check needs no server
        @Argument(help: "The script file.") var file: String
        func run() throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file) as UTF-8") }
            try SieveCommand.check(text, file: file)
            print("\(file): no errors")
        }
    }
}
