import Foundation
import MailMessage
import MailStore

/// `tern export`: an account's mailboxes as mboxrd, as a Maildir++ tree, or as that tree in a tar stream. Maildir files
/// are written from the store a piece at a time (a large message is never whole in memory); an mbox entry is built
/// whole (its lines are escaped), one message at a time.
public enum MailboxExport {
    public static func mbox(_ store: any MailStore, _ boxes: [MailboxInfo], write: ([UInt8]) -> Void) async throws {
        for box in boxes {
            for m in try await store.messages(mailbox: box.id) {
                let content = try await store.content(of: m.messageID)
                write(Mbox.entry(message: content, sender: envelopeSender(content), date: m.internalDate))
            }
        }
    }

    public static func maildir(_ store: any MailStore, _ boxes: [MailboxInfo], root: URL) async throws {
        for box in boxes {
            let dir = root.appendingPathComponent(folder(for: box))
            for sub in ["cur", "new", "tmp"] {
                try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
            }
            for m in try await store.messages(mailbox: box.id) {
                let url = dir.appendingPathComponent("cur").appendingPathComponent(fileName(m, box: box))
                guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw StoreError.invalid("cannot create \(url.path)") }
                let handle = try FileHandle(forWritingTo: url)
                defer { try? handle.close() }
                try await store.openContent(of: m.messageID).pieces { handle.write(Data($0)) }
                try FileManager.default.setAttributes([.modificationDate: m.internalDate], ofItemAtPath: url.path)
            }
        }
    }

    public static func maildirTar(_ store: any MailStore, _ boxes: [MailboxInfo], write: ([UInt8]) -> Void) async throws {
        let tar = TarWriter()
        let now = store.clock.now
        for box in boxes {
            let dir = folder(for: box).isEmpty ? "Maildir" : "Maildir/\(folder(for: box))"
            for sub in ["", "/cur", "/new", "/tmp"] {
                write(tar.header(path: "\(dir)\(sub)/", size: 0, mode: 0o700, isDirectory: true, mtime: now))
            }
            for m in try await store.messages(mailbox: box.id) {
                let reader = try await store.openContent(of: m.messageID)
                write(tar.header(path: "\(dir)/cur/\(fileName(m, box: box))", size: reader.size, mode: 0o600, isDirectory: false, mtime: m.internalDate))
                try await reader.pieces { write($0) }
                write(tar.padding(for: reader.size))
            }
        }
        write(tar.trailer)
    }

    /// The Return-Path Tern wrote at delivery, for the mbox From line.
    public static func envelopeSender(_ content: [UInt8]) -> String {
        let head = String(decoding: content.prefix(512), as: UTF8.self)
        guard head.hasPrefix("Return-Path: <"), let end = head.firstIndex(of: ">") else { return "MAILER-DAEMON" }
        let s = head[head.index(head.startIndex, offsetBy: 14)..<end]
        return s.isEmpty ? "MAILER-DAEMON" : String(s)
    }

    /// Maildir++ layout: INBOX is the top folder, others are `.Name` folders.
    public static func folder(for box: MailboxInfo) -> String {
        box.name == "INBOX" ? "" : "." + box.name.replacingOccurrences(of: "/", with: ".")
    }

    public static func fileName(_ m: StoredMessage, box: MailboxInfo) -> String {
        let f = m.flags
        return "\(Int(m.internalDate.timeIntervalSince1970)).U\(box.uidValidity.rawValue)_\(m.uid.rawValue).tern,S=\(m.size)"
            + Maildir.infoSuffix(seen: f.contains(.seen), answered: f.contains(.answered), flagged: f.contains(.flagged),
                                 deleted: f.contains(.deleted), draft: f.contains(.draft))
    }
}
