import ArgumentParser
import Foundation
import MailCore
import MailStore
import StoreFactory
import TernAdmin

/// `tern migrate --from sqlite:PATH --to postgres://…` (or back): the whole installation, every id kept.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Copy a whole installation into a new, empty store (SQLite <-> PostgreSQL).",
        discussion: """
            Domains, accounts, aliases, mailboxes with their UIDVALIDITY, UIDs, MODSEQs, flags and subscriptions, message \
            contents, the outbound queue, DKIM keys, spam filter counts and the delivery log are copied as they are, so mail \
            clients do not resynchronise. Stop every server on the source first; a data folder is locked while it runs. \
            Afterwards point `store` in the config at the destination.
            """)
    @Option(help: "The store to copy: sqlite:DATA-FOLDER or postgres://USER@HOST[:PORT]/DATABASE.") var from: String
    @Option(help: "The new, empty store to copy into (same forms).") var to: String
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let clock = SystemClock()
        let source = try await StoreFactory.open(location: from, config: config, clock: clock)
        let destination = try await StoreFactory.open(location: to, config: config, clock: clock)
        let interactive = isatty(STDERR_FILENO) == 1
        let counts = try await StoreMigration.copy(from: source, to: destination) { table, rows in
            if interactive { FileHandle.standardError.write(Data("\r\(table): \(rows) rows".utf8)) }
        }
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        for store in [source, destination] { StoreFactory.removeMigrationSpool(of: store) }
        for (table, rows) in counts { print("\(table)\t\(rows)") }
        print("copied \(counts.reduce(0) { $0 + $1.rows }) rows from \(StoreFactory.shown(from)) to \(StoreFactory.shown(to))")
    }
}
