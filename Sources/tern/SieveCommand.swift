import ArgumentParser
import Foundation
import MailCore
import MailStore
import Intake
import SieveDelivery
import Sieve

/// `tern sieve …`: a user's Sieve scripts (RFC 5228), as ManageSieve will offer them. A script is checked before it is
/// stored: each error is printed with its line and column, and nothing is stored.
struct SieveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sieve", abstract: "Manage users' Sieve filter scripts.",
        subcommands: [Put.self, Activate.self, Get.self, Delete.self, List.self, Check.self, Test.self])

    /// Parses and validates a script; prints the error (FILE:LINE:COLUMN: message) and fails when there is one.
    static func check(_ text: String, file: String) throws {
        do {
            _ = try SieveScript.compile(text)
        } catch {
            // compile throws SieveError only (typed throws).
            FileHandle.standardError.write(Data("\(file):\(error.position.line):\(error.position.column): \(error.message.escapingControls())\n".utf8))
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

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what the user's active script (or --script) would do with a message, as at delivery; nothing is stored or sent.")
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Argument(help: "The message file.") var message: String
        @Option(help: "Run this script file instead of the active one.") var script: String?
        @Option(help: "The envelope sender (default: the message's Return-Path, else none).") var from: String?
        @Option(help: "The envelope recipient (default: the user).") var to: String?
        func run() async throws {
            guard let bytes = FileManager.default.contents(atPath: message).map({ Array($0) }) else { throw ValidationError("cannot read \(message)") }
            let (config, store) = try await options.openStore()
            let account = try await SieveCommand.account(store, user)
            let text: String
            if let script {
                guard let t = try? String(contentsOfFile: script, encoding: .utf8) else { throw ValidationError("cannot read \(script) as UTF-8") }
                text = t
            } else {
                guard let t = try await store.activeScript(account: account) else { throw ValidationError("\(user) has no active script") }
                text = t
            }
            try SieveCommand.check(text, file: script ?? "active script")
            var m = SieveMessage(bytes: bytes, envelopeFrom: "", envelopeTo: to ?? user)
            m.envelopeFrom = from ?? m.fields.first { $0.name.lowercased() == "return-path" }.map {
                $0.value.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
            } ?? ""
            let boxes = try await store.mailboxes(account: account)
            var env = SieveEnvironment(now: Date(), zoneOffset: TimeZone.current.secondsFromGMT(), items: [
                "name": "Tern", "location": "MDA", "phase": "during", "host": config.hostname, "version": "1",
            ], mailboxes: Set(boxes.map(\.name)))
            for b in boxes { if let use = b.specialUse { env.specialUses[use.rawValue.lowercased()] = b.name } }
            // With the administrator's scripts for the user's domain around it, and what include may name, as at delivery.
            let scripts = try SieveAdminScripts.load(config.sieveScripts)
            let admin = scripts.scripts(domain: (to ?? user).split(separator: "@").last.map(String.init) ?? "")
            env.globalScripts = scripts.global
            for info in try await store.scripts(account: account) {
                if let t = try await store.script(account: account, name: info.name), let s = try? SieveScript.compile(t) { env.personalScripts[info.name] = s }
            }
            let result = SieveInterpreter.run(before: admin.before, script: try SieveScript.compile(text), after: admin.after, message: m, environment: env)
            // Names and texts from the script and the message: control characters escaped for the terminal.
            for line in result.lines { print(line.escapingControls()) }
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
