import Foundation
import MailCore
import MailMessage
import MailStore
import Sieve
import Synchronization

// Step 3b of the intake pipeline, filters: each local account's active Sieve script (RFC 5228) decides where that
// account's copy goes, after the checks and before the commit, so that the commit writes what the scripts decided and
// a 250 means their results are durable. Accounts without a script keep the plan's targets untouched.

/// One account's script run: the envelope recipient that reached the account (what `envelope :to` sees) and what the
/// script decided.
public struct FilterRun: Sendable, Hashable {
    public var account: AccountID
    public var recipient: String
    public var result: SieveResult

    public init(account: AccountID, recipient: String, result: SieveResult) {
        self.account = account
        self.recipient = recipient
        self.result = result
    }
}

/// What the scripts decided, as the commit needs it (pure).
public struct FilterPlan: Sendable, Hashable {
    public struct Mailbox: Sendable, Hashable {
        public var account: AccountID
        public var name: String
    }

    public struct Redirect: Sendable, Hashable {
        /// The recipient whose script redirects (named in the copy's Delivered-To field), and its account.
        public var from: String
        public var to: String
        public var account: AccountID = 0
    }

    /// The header each account's scripts left (RFC 5293 editheader): that account's copies get it.
    public var edited: [AccountID: [SieveHeaderField]] = [:]

    /// Where the message is stored: the plan's targets for accounts without a script, the scripts' mailboxes for the
    /// others (none for an account whose script discarded it).
    public var targets: [DeliveryTarget]
    /// Mailboxes `fileinto :create` names that do not exist yet: created before the commit.
    public var creates: [Mailbox]
    /// Copies for the outbound queue, one per (recipient, address).
    public var redirects: [Redirect]
    /// One line per account whose script ran, for the delivery log and `tern trace`.
    public var notes: [String]
    /// The accounts whose scripts ran.
    public var filtered: [AccountID]
    /// Vacation actions, for the caller to answer or not (RFC 5230's rules, once per period).
    public var vacations: [Vacation]
    /// Recipients whose scripts rejected the message (RFC 5429).
    public var rejections: [Rejection]
    /// Notifications to send (RFC 5435, by mail: RFC 5436).
    public var notifications: [Notification]

    public struct Notification: Sendable, Hashable {
        public var account: AccountID
        public var recipient: String
        public var action: SieveNotify
    }

    public struct Vacation: Sendable, Hashable {
        public var account: AccountID
        public var recipient: String
        public var action: SieveVacation
    }

    public struct Rejection: Sendable, Hashable {
        public var account: AccountID
        public var recipient: String
        public var reason: String
    }

    /// `base`: the plan's targets (INBOX, or Junk for a message the checks judged spam: a script's keep files it there
    /// too). `mailboxes`: each scripted account's mailbox names, `specialUses` its special-use mailboxes by flag (lower
    /// case). `looping`: recipients a redirect would send the message
    /// back through (its header already names them in a Delivered-To field): their redirects keep the message instead.
    public init(base: [DeliveryTarget], runs: [FilterRun], mailboxes: [AccountID: Set<String>], specialUses: [AccountID: [String: String]] = [:],
                looping: Set<String> = []) {
        var targets: [DeliveryTarget] = [], creates: [Mailbox] = [], redirects: [Redirect] = [], notes: [String] = []
        var filtered: [AccountID] = []
        var vacations: [Vacation] = [], rejections: [Rejection] = [], notifications: [Notification] = []
        func add(_ t: DeliveryTarget) { if !targets.contains(t) { targets.append(t) } }
        for target in base {
            guard let run = runs.first(where: { $0.account == target.account }) else {
                add(target)
                continue
            }
            var done: [String] = []
            let names = mailboxes[target.account] ?? []
            for action in run.result.actions {
                switch action {
                case .keep(let flags):
                    add(Self.flagged(target, flags))
                    done.append(target.specialUse == .junk ? "kept in Junk" : "kept in INBOX")
                case .fileinto(let name, let create, let flags, let use):
                    // :specialuse (RFC 8579) names the user's mailbox with that use first, the given name otherwise.
                    let special = use.flatMap { specialUses[target.account]?[$0.lowercased()] }
                    let existing = special ?? (name.uppercased() == "INBOX" ? "INBOX" : names.contains(name) ? name : nil)
                    if let existing {
                        add(Self.flagged(DeliveryTarget(account: target.account, mailbox: existing), flags))
                        done.append("filed into \"\(existing)\"")
                    } else if create, let why = MailboxNames.problem(name) {
                        add(Self.flagged(target, flags))
                        done.append("kept in INBOX: \"\(name.escapingControls(limit: 200))\" cannot be a mailbox name (\(why))")
                    } else if create {
                        let mailbox = Mailbox(account: target.account, name: name)
                        if !creates.contains(mailbox) { creates.append(mailbox) }
                        add(Self.flagged(DeliveryTarget(account: target.account, mailbox: name), flags))
                        done.append("filed into \"\(name)\" (created)")
                    } else {
                        // RFC 5490 §3.2 leaves it to the server: filing into a mailbox that does not exist keeps the
                        // message, so that a typing error in a script loses nothing.
                        add(Self.flagged(target, flags))
                        done.append("kept in INBOX: no mailbox \"\(name.escapingControls(limit: 200))\"")
                    }
                case .redirect(let address):
                    if looping.contains(run.recipient.lowercased()) {
                        add(target)
                        done.append("kept in INBOX: redirect to <\(address)> would loop")
                    } else {
                        let r = Redirect(from: run.recipient, to: address, account: target.account)
                        if !redirects.contains(r) { redirects.append(r) }
                        done.append("redirected to <\(address)>")
                    }
                case .discard:
                    done.append("discarded")
                case .vacation(let v):
                    vacations.append(Vacation(account: target.account, recipient: run.recipient, action: v))
                case .notify(let n):
                    notifications.append(Notification(account: target.account, recipient: run.recipient, action: n))
                    done.append("notified \(n.method.prefix(200))")
                case .reject(let reason):
                    rejections.append(Rejection(account: target.account, recipient: run.recipient, reason: reason))
                    done.append("rejected: \(SieveReplies.oneLine(reason).prefix(200))")
                }
            }
            if let header = run.result.header, run.result.error == nil {
                edited[target.account] = header
                done.append("header edited")
            }
            // A discard cancels the implicit keep and adds no action of its own (RFC 5228 §4.4).
            if done.isEmpty { done.append("discarded") }
            filtered.append(run.account)
            if let error = run.result.error { done.append("script error at \(error)") }
            notes.append("<\(run.recipient)>: " + done.joined(separator: "; "))
        }
        self.targets = targets
        self.creates = creates
        self.redirects = redirects
        self.notes = notes
        self.filtered = filtered
        self.vacations = vacations
        self.rejections = rejections
        self.notifications = notifications
    }

    /// A target with the flags and keywords a script's imap4flags gave it (RFC 5232): the five system flags by name
    /// (\\Recent is the server's own and is dropped), keywords that are IMAP atoms.
    public static func flagged(_ target: DeliveryTarget, _ names: [String]?) -> DeliveryTarget {
        guard let names else { return target }
        var t = target
        var flags: MessageFlags = [], keywords: [String] = []
        let system: [String: MessageFlags] = ["\\seen": .seen, "\\answered": .answered, "\\flagged": .flagged, "\\deleted": .deleted, "\\draft": .draft]
        for name in names {
            if let f = system[name.lowercased()] {
                flags.insert(f)
            } else if !name.hasPrefix("\\"), name.utf8.count <= 100,
                      name.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 && !"(){%*\"\\]".unicodeScalars.contains($0) }),
                      !keywords.contains(where: { $0.lowercased() == name.lowercased() }) {
                keywords.append(name)
            }
        }
        t.flags = flags
        t.keywords = keywords
        return t
    }

    /// The addresses named in the header's Delivered-To fields (lower-cased): a redirect by one of them would loop. More
    /// than `maxHops` such fields is a loop whoever redirects (`everyone`).
    public static func deliveredTo(_ fields: [(name: String, value: String)], maxHops: Int = 20) -> (addresses: Set<String>, everyone: Bool) {
        let values = fields.filter { $0.name.lowercased() == "delivered-to" }.map { $0.value.trimmingCharacters(in: .whitespaces).lowercased() }
        return (Set(values.map { $0.hasPrefix("<") && $0.hasSuffix(">") ? String($0.dropFirst().dropLast()) : $0 }), values.count > maxHops)
    }
}

/// Compiled scripts by their text, so that a script is parsed once and not at every delivery (bounded).
public final class CompiledScripts: Sendable {
    private let cache = Mutex<(scripts: [String: Result<SieveScript, SieveError>], octets: Int)>(([:], 0))
    /// Bounds: scripts, and the octets of their texts (a script may be 1 MB; its compiled form is of the same order).
    static let maxEntries = 1_000
    static let maxOctets = 32 << 20

    public init() {}

    public func compiled(_ text: String) -> Result<SieveScript, SieveError> {
        if let hit = cache.withLock({ $0.scripts[text] }) { return hit }
        let result = Result { () throws(SieveError) -> SieveScript in try SieveScript.compile(text) }
        cache.withLock { c in
            if c.scripts.count >= Self.maxEntries || c.octets + text.utf8.count > Self.maxOctets { c = ([:], 0) }
            if c.scripts.updateValue(result, forKey: text) == nil { c.octets += text.utf8.count }
        }
        return result
    }
}

extension FilterPlan {
    /// The deliveries of a filtered message, all committed in one transaction: `main` (the message as the plan would
    /// store it, with its log lines) for the mailboxes the scripts chose and its queued recipients (left out when the
    /// scripts left it nowhere), then one copy per redirect, queued under an id of its own with a Delivered-To field
    /// naming the redirecting recipient (the loop check of the next hop) and without the Return-Path this server added.
    /// `redirected(from:)` gives a redirect copy's content. When nothing is stored or queued (every script discarded
    /// the message), no delivery is made and `log` holds the lines to write. `local`: each local recipient with the
    /// accounts it reaches (the "stored" line names those whose accounts ran no script).
    public func deliveries(main given: Delivery, local: [(address: String, accounts: [AccountID])], junk: Bool, logging: Bool,
                           redirected: (Redirect) throws -> MessageContent, edited editedContent: (AccountID) throws -> MessageContent = { _ in .inline([]) },
                           newID: () -> String) rethrows -> (deliveries: [Delivery], log: [DeliveryEvent]) {
        var main = given
        let (queueID, now) = (main.queueID, main.internalDate)
        main.targets = targets.filter { edited[$0.account] == nil }
        // An account whose scripts edited the header gets its copies from a content of its own, in the same commit.
        var own: [Delivery] = []
        for account in targets.map(\.account) where edited[account] != nil && !own.contains(where: { $0.targets.first?.account == account }) {
            own.append(Delivery(content: try editedContent(account), envelope: main.envelope, targets: targets.filter { $0.account == account },
                                internalDate: now, flags: main.flags, keywords: main.keywords, queueID: queueID))
        }
        if logging {
            // The receipt's "stored" line says where each recipient's copy went; the filters' lines say the rest.
            main.log.removeAll { $0.kind == .stored }
            // Recipients with an account that ran no script (an alias may reach both kinds).
            let unfiltered = local.filter { !$0.accounts.allSatisfy(filtered.contains) }.map(\.address)
            if !unfiltered.isEmpty {
                main.log.append(DeliveryEvent(at: now, queueID: queueID, kind: .stored, detail: unfiltered.map { "<\($0)>" }.joined(separator: ", ")
                                              + (junk ? " in Junk" : " in INBOX")))
            }
            main.log += notes.map { DeliveryEvent(at: now, queueID: queueID, kind: .filtered, detail: $0) }
        }
        var deliveries: [Delivery] = []
        for r in redirects {
            let id = newID()
            var envelope = main.envelope
            envelope.recipients = [.init(address: r.to)]
            envelope.envelopeID = nil
            let log = !logging ? [] : [
                DeliveryEvent(at: now, queueID: queueID, kind: .filtered, detail: "redirected by <\(r.from)> to <\(r.to)> as \(id)"),
                DeliveryEvent(at: now, queueID: id, kind: .queued, detail: "for <\(r.to)>", related: queueID),
            ]
            deliveries.append(Delivery(content: try redirected(r), envelope: envelope, targets: [], internalDate: now,
                                       remoteRecipients: envelope.recipients, queueID: id, log: log))
        }
        deliveries = own + deliveries
        if !main.targets.isEmpty || main.isQueued {
            deliveries.insert(main, at: 0)
        } else if !deliveries.isEmpty {
            // Stored nowhere and queued for nobody: the message's own lines go with the first redirect.
            deliveries[0].log = main.log + deliveries[0].log
        } else {
            return ([], main.log)
        }
        return (deliveries, [])
    }

    /// More Received fields than this, and a redirect is taken for a loop (Postfix's hopcount_limit).
    public static let maxHops = 50

    /// The mailbox `fileinto :create` named could not be made: that account's copies go to INBOX instead (with their
    /// flags), and its line says why.
    public mutating func keepInstead(of mailbox: Mailbox, because why: String) {
        creates.removeAll { $0 == mailbox }
        var kept: [DeliveryTarget] = []
        for t in targets {
            var t = t
            if t.account == mailbox.account && t.mailbox == mailbox.name { t.mailbox = nil }
            if !kept.contains(t) { kept.append(t) }
        }
        targets = kept
        notes.append("kept in INBOX: the mailbox \"\(mailbox.name.escapingControls(limit: 200))\" could not be created (\(why))")
    }

    /// An account's special-use mailboxes by their flag in lower case.
    public static func specialUses(_ boxes: [MailboxInfo]) -> [String: String] {
        var out: [String: String] = [:]
        for b in boxes { if let use = b.specialUse, out[use.rawValue.lowercased()] == nil { out[use.rawValue.lowercased()] = b.name } }
        return out
    }

    /// How much of a stored message's start the scripts read for its header, and for the body test.
    public static let headerReadLimit = 256 << 10
    public static let bodyReadLimit = 4 << 20

    public static func readPrefix(_ url: URL, max: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        return Array(try handle.read(upToCount: max) ?? Data())
    }

    /// `replacement`, then the content from offset `from` on: new inline bytes, or a new file written a piece at a time
    /// and fsync'd.
    public static func splice(_ content: MessageContent, from skip: Int, with replacement: [UInt8], blobs: BlobStore) throws -> MessageContent {
        switch content {
        case .inline(let bytes):
            return .inline(replacement + bytes[min(skip, bytes.count)...])
        case .blob(let key, let size):
            let source = try FileHandle(forReadingFrom: blobs.url(for: key))
            defer { try? source.close() }
            try source.seek(toOffset: UInt64(skip))
            let (url, handle) = try blobs.makeTempFile()
            do {
                try handle.write(contentsOf: replacement)
                while let piece = try source.read(upToCount: 1 << 20), !piece.isEmpty { try handle.write(contentsOf: piece) }
                let copy = BlobStore.newKey()
                try blobs.commit(tempFile: url, handle: handle, key: copy)
                return .blob(key: copy, size: replacement.count + size - skip)
            } catch {
                try? FileManager.default.removeItem(at: url)
                throw error
            }
        }
    }

    /// The header `layout` describes, from the message's own (raw) fields; without `returnPath`, as a copy that
    /// leaves this server carries it (RFC 5321 §4.4). Ends with the empty line.
    public static func header(_ layout: [SieveHeaderField], raw: [RawHeaderField], returnPath: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for field in layout {
            switch field {
            case .original(let i) where i < raw.count:
                if returnPath || raw[i].name.lowercased() != "return-path" { out += raw[i].raw }
            case .original: continue
            case .added(let name, let value): out += Array("\(name): \(SieveReplies.encoded(value))\r\n".utf8)
            }
        }
        return out + [13, 10]
    }

    /// A redirected copy: a Delivered-To field naming the recipient whose script sent it on, then the message without
    /// the `skip` octets of Return-Path at its start (a message leaving carries none: RFC 5321 §4.4). A stored file is
    /// copied a piece at a time into a new one, fsync'd.
    public static func redirectCopy(_ content: MessageContent, from: String, skip: Int, blobs: BlobStore) throws -> MessageContent {
        try splice(content, from: skip, with: Array("Delivered-To: \(from)\r\n".utf8), blobs: blobs)
    }
}
