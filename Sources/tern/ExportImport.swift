import TernAdmin
import ArgumentParser
import Foundation
import Intake
import MailCore
import MailMessage
import MailStore
import StoreFactory

enum MailFileFormat: String, ExpressibleByArgument, CaseIterable {
    case mbox, maildir
}

/// Writes to a file or standard output.
final class Output {
    let handle: FileHandle
    init(path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw ValidationError("cannot create \(path)") }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        } else {
            handle = FileHandle.standardOutput
        }
    }
    func write(_ bytes: [UInt8]) { handle.write(Data(bytes)) }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export an account's mail as mbox or Maildir, for backups and migration.",
        discussion: """
            mbox (mboxrd) goes to standard output or --output FILE. Maildir goes to --output DIR, or to standard output \
            as a tar stream (tern export me@example.com --format maildir | tar x).
            """)
    @OptionGroup var options: ConfigOption
    @Argument var address: String
    @Option(help: "Only this mailbox (default: all).") var mailbox: String?
    @Option(help: "mbox or maildir.") var format: MailFileFormat = .mbox
    @Option(help: "File (mbox) or directory (maildir) to write; default: standard output.") var output: String?

    func run() async throws {
        let (_, store) = try await options.openStore()
        let addr = try parseAddress(address)
        guard let account = try await store.account(addr) else { throw ValidationError("no account \(addr.canonical)") }
        var boxes = try await store.mailboxes(account: account)
        if let mailbox {
            boxes = boxes.filter { $0.name == mailbox || (mailbox.uppercased() == "INBOX" && $0.name == "INBOX") }
            guard !boxes.isEmpty else { throw ValidationError("\(addr.canonical) has no mailbox \(mailbox)") }
        }
        switch format {
        case .mbox:
            let out = try Output(path: output)
            try await MailboxExport.mbox(store, boxes, write: out.write)
        case .maildir:
            if let output {
                try await MailboxExport.maildir(store, boxes, root: URL(fileURLWithPath: output))
            } else {
                let out = try Output(path: nil)
                try await MailboxExport.maildirTar(store, boxes, write: out.write)
            }
        }
    }
}

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an mbox file or a Maildir into an account's mailbox.",
        discussion: "Maildir flags (S, R, F, T, D) become IMAP flags; a Maildir's .Sub folders go to mailboxes of the same name unless --mailbox is given.")
    @OptionGroup var options: ConfigOption
    @Argument var address: String
    @Argument(help: "An mbox file or a Maildir directory.") var source: String
    @Option(help: "Target mailbox (default: INBOX, created if missing).") var mailbox: String?

    struct Item {
        var url: URL
        var mailbox: String
        var flags: MessageFlags
        var date: Date
    }

    func run() async throws {
        let (_, store) = try await options.openStore()
        let addr = try parseAddress(address)
        guard let account = try await store.account(addr) else { throw ValidationError("no account \(addr.canonical)") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else { throw ValidationError("\(source) does not exist") }
        let importer = Importer(store: store, account: account, recipient: addr.canonical)
        if isDir.boolValue {
            let items = try maildirItems(now: store.clock.now)
            for name in Set(items.map(\.mailbox)) { _ = try await store.createMailbox(account: account, name: name) }
            let progress = Progress(total: items.count, label: "importing")
            for (n, item) in items.enumerated() {
                try await importer.add(Array(try Data(contentsOf: item.url)), mailbox: item.mailbox, flags: item.flags, date: item.date)
                progress.update(n + 1)
            }
            try await importer.flush()
            progress.finish()
        } else {
            // An mbox is read in 1 MiB pieces and split as it goes: memory stays bounded whatever its size.
            let target = mailbox ?? "INBOX"
            _ = try await store.createMailbox(account: account, name: target)
            guard let handle = FileHandle(forReadingAtPath: source) else { throw ValidationError("cannot read \(source)") }
            let size = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? Int) ?? 0
            let progress = Progress(total: size, label: "importing")
            var splitter = MboxSplitter()
            var read = 0
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                read += chunk.count
                for m in splitter.feed(Array(chunk)[...]) { try await importer.add(m, mailbox: target, flags: [], date: store.clock.now) }
                progress.update(read)
            }
            for m in splitter.finish() { try await importer.add(m, mailbox: target, flags: [], date: store.clock.now) }
            try await importer.flush()
            progress.finish()
        }
        print("imported \(importer.imported) messages into \(addr.canonical)")
    }

    func maildirItems(now: Date) throws -> [Item] {
        let root = URL(fileURLWithPath: source)
        var folders: [(URL, String)] = [(root, mailbox ?? "INBOX")]
        if mailbox == nil {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] where name.hasPrefix(".") && name.count > 1 {
                let sub = root.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: sub.appendingPathComponent("cur").path) {
                    folders.append((sub, String(name.dropFirst()).replacingOccurrences(of: ".", with: "/")))
                }
            }
        }
        var items: [Item] = []
        for (dir, box) in folders {
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("cur").path)
                    || FileManager.default.fileExists(atPath: dir.appendingPathComponent("new").path) else {
                throw ValidationError("\(dir.path) is neither an mbox file nor a Maildir (no cur/ or new/)")
            }
            for sub in ["new", "cur"] {
                let d = dir.appendingPathComponent(sub)
                for name in ((try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []).sorted() where !name.hasPrefix(".") {
                    let url = d.appendingPathComponent(name)
                    let letters = Maildir.flags(ofFileName: name)
                    var flags: MessageFlags = []
                    if letters.contains("S") { flags.insert(.seen) }
                    if letters.contains("R") { flags.insert(.answered) }
                    if letters.contains("F") { flags.insert(.flagged) }
                    if letters.contains("T") { flags.insert(.deleted) }
                    if letters.contains("D") { flags.insert(.draft) }
                    let date = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? now
                    items.append(Item(url: url, mailbox: box, flags: flags, date: date))
                }
            }
        }
        return items
    }
}


