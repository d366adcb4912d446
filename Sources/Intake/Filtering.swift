import Foundation
import Logging
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
        /// The recipient whose script redirects (named in the copy's Delivered-To field).
        public var from: String
        public var to: String
    }

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
        var vacations: [Vacation] = [], rejections: [Rejection] = []
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
                    } else if create {
                        let mailbox = Mailbox(account: target.account, name: name)
                        if !creates.contains(mailbox) { creates.append(mailbox) }
                        add(Self.flagged(DeliveryTarget(account: target.account, mailbox: name), flags))
                        done.append("filed into \"\(name)\" (created)")
                    } else {
                        // RFC 5490 §3.2 leaves it to the server: filing into a mailbox that does not exist keeps the
                        // message, so that a typing error in a script loses nothing.
                        add(Self.flagged(target, flags))
                        done.append("kept in INBOX: no mailbox \"\(name)\"")
                    }
                case .redirect(let address):
                    if looping.contains(run.recipient.lowercased()) {
                        add(target)
                        done.append("kept in INBOX: redirect to <\(address)> would loop")
                    } else {
                        let r = Redirect(from: run.recipient, to: address)
                        if !redirects.contains(r) { redirects.append(r) }
                        done.append("redirected to <\(address)>")
                    }
                case .discard:
                    done.append("discarded")
                case .vacation(let v):
                    vacations.append(Vacation(account: target.account, recipient: run.recipient, action: v))
                case .reject(let reason):
                    rejections.append(Rejection(account: target.account, recipient: run.recipient, reason: reason))
                    done.append("rejected: \(SieveReplies.oneLine(reason).prefix(200))")
                }
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
    }

    /// A target with the flags and keywords a script's imap4flags gave it (RFC 5232): the five system flags by name
    /// (\\Recent is the server's own and is dropped), keywords that are IMAP atoms.
    static func flagged(_ target: DeliveryTarget, _ names: [String]?) -> DeliveryTarget {
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
final class CompiledScripts: Sendable {
    private let cache = Mutex<[String: Result<SieveScript, SieveError>]>([:])
    static let maxEntries = 1_000

    func compiled(_ text: String) -> Result<SieveScript, SieveError> {
        if let hit = cache.withLock({ $0[text] }) { return hit }
        let result = Result { () throws(SieveError) -> SieveScript in try SieveScript.compile(text) }
        cache.withLock { c in
            if c.count >= Self.maxEntries { c.removeAll() }
            c[text] = result
        }
        return result
    }
}

extension IntakeCommit {
    /// The deliveries of a filtered message, all committed in one transaction: the message for its mailboxes and queued
    /// recipients (absent when the scripts left it nowhere), then one copy per redirect, queued under an id of its own
    /// with a Delivered-To field naming the redirecting recipient (the loop check of the next hop) and without the
    /// Return-Path this server added. `redirected(from:)` gives a redirect copy's content. When nothing is stored or
    /// queued (every script discarded the message), no delivery is made and `log` holds the lines to write.
    public static func filtered(plan: RoutingPlan, prepared: Prepared, filter: FilterPlan, queueID: String, now: Date, received: String?,
                                redirected: (String) throws -> MessageContent,
                                newID: () -> String) rethrows -> (deliveries: [Delivery], log: [DeliveryEvent]) {
        var main = delivery(plan: plan, prepared: prepared, queueID: queueID, now: now, received: received)
        main.targets = filter.targets
        if received != nil {
            // The receipt's "stored" line says where each recipient's copy went; the filters' lines say the rest.
            main.log.removeAll { $0.kind == .stored }
            // Recipients with an account that ran no script (an alias may reach both kinds).
            let unfiltered = zip(plan.localAddresses, plan.localAccounts).filter { !$0.1.allSatisfy(filter.filtered.contains) }.map(\.0)
            if !unfiltered.isEmpty {
                main.log.append(DeliveryEvent(at: now, queueID: queueID, kind: .stored, detail: unfiltered.map { "<\($0)>" }.joined(separator: ", ")
                                              + (prepared.junk ? " in Junk" : " in INBOX")))
            }
            main.log += filter.notes.map { DeliveryEvent(at: now, queueID: queueID, kind: .filtered, detail: $0) }
        }
        var deliveries: [Delivery] = []
        for r in filter.redirects {
            let id = newID()
            var envelope = plan.envelope
            envelope.recipients = [.init(address: r.to)]
            envelope.envelopeID = nil
            let log = received == nil ? [] : [
                DeliveryEvent(at: now, queueID: queueID, kind: .filtered, detail: "redirected by <\(r.from)> to <\(r.to)> as \(id)"),
                DeliveryEvent(at: now, queueID: id, kind: .queued, detail: "for <\(r.to)>", related: queueID),
            ]
            deliveries.append(Delivery(content: try redirected(r.from), envelope: envelope, targets: [], internalDate: now,
                                       remoteRecipients: envelope.recipients, queueID: id, log: log))
        }
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
}

extension Intake {
    /// Steps 3b and 4 for a message some of whose recipients have an active script: the scripts run on its header,
    /// the mailboxes `fileinto :create` names are made, and the message, its redirected copies and the log lines are
    /// committed in one transaction. A script that fails keeps the message (in INBOX, or Junk for spam).
    func commitFiltered(_ m: IncomingMessage, _ plan: RoutingPlan, _ prepared: Prepared, base: [DeliveryTarget],
                        completion: @escaping @Sendable (IntakeOutcome) -> Void) async {
        let store = self.store, content = prepared.content
        var made: [String] = []   // blob files written for redirected copies
        var seen: [String] = []   // vacation replies claimed in the store
        do {
            let scripts = try await store.activeScripts(accounts: base.map(\.account))
            let compiled = scripts.mapValues { compiledScripts.compiled($0) }
            var recipientOf: [AccountID: String] = [:]
            for (r, route) in zip(m.envelope.recipients, m.routes) {
                if case .local(let accounts) = route { for a in accounts where recipientOf[a] == nil { recipientOf[a] = r.address } }
            }
            func domain(_ account: AccountID) -> String { recipientOf[account].flatMap { $0.split(separator: "@").last.map(String.init) } ?? "" }
            // The accounts whose mail goes through the filters: a script of their own, or the administrator's for the domain.
            let filtered = Set(base.map(\.account).filter { compiled[$0] != nil || adminScripts.applies(to: domain($0)) })
            let everyScript = compiled.values.compactMap { try? $0.get() }
                + filtered.flatMap { let a = adminScripts.scripts(domain: domain($0)); return a.before + a.after }
            // The header, or as much of the message as the body test reads (bounded).
            let readsBody = everyScript.contains(where: \.readsBody)
            let limit = readsBody ? Self.bodyReadLimit : Self.headerReadLimit
            let head: [UInt8]
            switch content {
            case .inline(let bytes): head = Array(bytes.prefix(limit))
            case .blob(let key, _):
                let url = store.blobs.url(for: key)
                head = try await work.run { try Self.readPrefix(url, max: limit) }
            }
            let fields = SieveMessage(bytes: head, envelopeFrom: "", envelopeTo: "").fields
            var boxes: [AccountID: [MailboxInfo]] = [:]
            if everyScript.contains(where: { !$0.required.isDisjoint(with: ["mailbox", "special-use"]) }) {
                for account in filtered { boxes[account] = try await store.mailboxes(account: account) }
            }
            var environment = SieveEnvironment(now: m.arrived, zoneOffset: TimeZone.current.secondsFromGMT(for: m.arrived), items: [
                "domain": config.hostname.split(separator: ".").dropFirst().joined(separator: "."), "host": config.hostname,
                "location": "MDA", "name": "Tern", "phase": "during", "version": "1",
            ])
            if let client = m.client { environment.items["remote-ip"] = client.address }
            if let iprev = m.client?.facts?.iprev, iprev.result == .pass, let name = iprev.name { environment.items["remote-host"] = name }
            // Mail the checks sent to Junk (a spam score over the threshold, DMARC quarantine) is at least 50%.
            if prepared.spamPercent != nil || prepared.junk {
                let percent = max(prepared.spamPercent ?? 0, prepared.junk ? 50 : 0)
                environment.spamPercent = percent
                environment.spamScore = 1 + Int((Double(percent) * 9 / 100).rounded())
            }
            var runs: [FilterRun] = []
            for target in base where filtered.contains(target.account) {
                let recipient = recipientOf[target.account] ?? ""
                let message = SieveMessage(fields: fields, size: content.size, envelopeFrom: m.envelope.mailFrom, envelopeTo: recipient,
                                           bytes: readsBody ? head : nil)
                environment.mailboxes = boxes[target.account].map { Set($0.map(\.name)) }
                environment.specialUses = Self.specialUses(boxes[target.account] ?? [])
                let admin = adminScripts.scripts(domain: domain(target.account))
                let result: SieveResult
                switch compiled[target.account] {
                case .failure(let error)?: result = SieveResult(actions: [.keep], error: error)
                case .success(let script)?:
                    result = SieveInterpreter.run(before: admin.before, script: script, after: admin.after, message: message, environment: environment)
                case nil:
                    result = SieveInterpreter.run(before: admin.before, script: nil, after: admin.after, message: message, environment: environment)
                }
                if let error = result.error {
                    m.logger.warning("sieve script failed, message kept", metadata: ["msg": "\(m.queueID)", "rcpt": "\(recipient)", "error": "\(error)"])
                }
                runs.append(FilterRun(account: target.account, recipient: recipient, result: result))
            }
            for run in runs where boxes[run.account] == nil && run.result.actions.contains(where: { if case .fileinto = $0 { true } else { false } }) {
                boxes[run.account] = try await store.mailboxes(account: run.account)
            }
            let trace = FilterPlan.deliveredTo(fields)
            // The filters decide where spam goes for the accounts they ran for (Tern's after script files it in Junk).
            let filterBase = base.map { filtered.contains($0.account) ? DeliveryTarget(account: $0.account) : $0 }
            let filter = FilterPlan(base: filterBase, runs: runs, mailboxes: boxes.mapValues { Set($0.map(\.name)) },
                                    specialUses: boxes.mapValues(Self.specialUses),
                                    looping: trace.everyone ? Set(runs.map { $0.recipient.lowercased() }) : trace.addresses)
            // Rejected by every recipient's script, with nothing else to do: refused at SMTP time (RFC 5429 §2.1).
            if !filter.rejections.isEmpty, filter.targets.isEmpty, filter.redirects.isEmpty, plan.remote.isEmpty,
               filter.rejections.count == base.count {
                let reason = SieveReplies.oneLine(filter.rejections[0].reason).prefix(200)
                let reply = SMTPReply(550, "5.7.1", reason.isEmpty ? "Rejected by the recipient's filter" : String(reason))
                if m.received != nil {
                    let (_, log) = IntakeCommit.filtered(plan: plan, prepared: prepared, filter: filter, queueID: m.queueID, now: m.arrived,
                                                         received: m.received, redirected: { _ in content }, newID: { "" })
                    try? await store.log(log + [DeliveryEvent(at: m.arrived, queueID: m.queueID, kind: .refused,
                                                               detail: reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))])
                }
                if case .blob(let key, _) = content { store.blobs.remove(key) }
                return completion(.refused(reply))
            }
            for mailbox in filter.creates { _ = try await store.createMailbox(account: mailbox.account, name: mailbox.name) }
            let (notices, claimed, replyLog) = await replies(m, filter, fields: fields)
            seen = claimed
            let blobs = store.blobs, skip = m.returnPathLength
            let (filteredDeliveries, filteredLog, copies) = try await work.run {
                var copies: [String] = []
                do {
                    let (deliveries, log) = try IntakeCommit.filtered(
                        plan: plan, prepared: prepared, filter: filter, queueID: m.queueID, now: m.arrived, received: m.received,
                        redirected: { from in
                            let copy = try Self.redirectCopy(content, from: from, skip: skip, blobs: blobs)
                            if case .blob(let key, _) = copy { copies.append(key) }
                            return copy
                        }, newID: SessionID.make)
                    return (deliveries, log, copies)
                } catch {
                    for key in copies { blobs.remove(key) }
                    throw error
                }
            }
            made = copies
            let filteredCommit = (deliveries: filteredDeliveries, log: filteredLog)
            var (deliveries, log) = (filteredCommit.deliveries, filteredCommit.log)
            if deliveries.isEmpty { log += replyLog } else { deliveries[0].log += replyLog }
            let keptMain = deliveries.first?.queueID == m.queueID
            var receipt = DeliveryReceipt(messageID: 0, placements: [])
            if deliveries.isEmpty && notices.isEmpty {
                if !log.isEmpty { try await store.log(log) }
            } else {
                var all = deliveries + notices
                if deliveries.isEmpty { all[0].log = log + all[0].log }
                let receipts = try await store.deliverAll(all)
                if keptMain { receipt = receipts[0] }
            }
            // Every script discarded or redirected it: the received file is referenced by nothing.
            if !keptMain, case .blob(let key, _) = content { store.blobs.remove(key) }
            completion(.committed(receipt, queueID: m.queueID, size: content.size, queued: !plan.remote.isEmpty || !filter.redirects.isEmpty))
        } catch {
            if case .blob(let key, _) = content { store.blobs.remove(key) }
            for key in made { store.blobs.remove(key) }
            // The replies were not sent after all: their senders may get one with the next message.
            for key in seen { try? await store.forgetSieveSeen(key) }
            completion(.failed(error))
        }
    }

    /// The vacation replies that go out (RFC 5230's rules, and once per sender and period: the store remembers, on
    /// every node) and the rejection notices, as deliveries for the same commit; with the keys claimed for the replies.
    func replies(_ m: IncomingMessage, _ filter: FilterPlan, fields: [(name: String, value: String)]) async
        -> (deliveries: [Delivery], claimed: [String], log: [DeliveryEvent]) {
        var out: [Delivery] = [], claimed: [String] = [], events: [DeliveryEvent] = []
        let sender = m.envelope.mailFrom, hostname = config.hostname, logging = m.received != nil
        for v in filter.vacations {
            var refusal = SieveReplies.vacationRefusal(fields: fields, sender: sender, recipient: v.recipient, addresses: v.action.addresses)
            let key = SieveReplies.vacationKey(account: v.account, sender: sender, handle: v.action.handle)
            if refusal == nil {
                let until = m.arrived.addingTimeInterval(TimeInterval(v.action.seconds))
                do {
                    if try await store.markSieveSeen(key, until: until, now: m.arrived) { claimed.append(key) } else { refusal = "already replied to this sender" }
                } catch {
                    refusal = "the store could not say whether a reply was sent (\(error))"
                }
            }
            if let refusal {
                m.logger.debug("no vacation reply", metadata: ["msg": "\(m.queueID)", "why": "\(refusal)"])
                if logging {
                    events.append(DeliveryEvent(at: m.arrived, queueID: m.queueID, kind: .filtered,
                                                detail: "<\(v.recipient)>: no vacation reply to <\(sender)>: \(refusal)"))
                }
                continue
            }
            let id = SessionID.make()
            let bytes = SieveReplies.vacation(v.action, original: fields, sender: sender, recipient: v.recipient, hostname: hostname, id: id, now: m.arrived)
            out.append(await signed(bytes, id: id, from: v.recipient, to: sender, about: m.queueID, sent: "vacation reply of <\(v.recipient)>",
                                    logging: logging, now: m.arrived, logger: m.logger))
        }
        for r in filter.rejections where !sender.isEmpty {
            let id = SessionID.make()
            let bytes = SieveReplies.rejection(reason: r.reason, original: fields, sender: sender, recipient: r.recipient, hostname: hostname, id: id,
                                               now: m.arrived)
            out.append(await SenderNotice.delivery(bytes, to: sender, about: m.queueID, kind: .filtered, sent: "rejection notice",
                                                   received: "from Tern (rejected by the filter of <\(r.recipient)>)", logging: logging,
                                                   store: store, now: m.arrived))
        }
        return (out, claimed, events)
    }

    /// A reply signed as submitted mail from the user's domain (DKIM), then made a notice with a null sender.
    private func signed(_ bytes: [UInt8], id: String, from: String, to sender: String, about original: String, sent: String, logging: Bool,
                        now: Date, logger: Logger) async -> Delivery {
        var content = bytes
        let keys = await keyring.current()
        let sink = MessageSink(blobs: store.blobs, inlineLimit: Int.max, maxSize: Int.max, prefix: "")
        sink.append(bytes)
        if let prefix = try? SubmissionPreparation.prefix(sink, keys: keys, hostname: config.hostname, queueID: id, mailFrom: from, now: now,
                                                          logger: logger).prefix {
            content = prefix + bytes
        }
        sink.discard()
        return await SenderNotice.delivery(content, to: sender, about: original, kind: .filtered, sent: sent,
                                           received: "from Tern (\(sent))", logging: logging, store: store, now: now)
    }

    /// An account's special-use mailboxes by their flag in lower case.
    static func specialUses(_ boxes: [MailboxInfo]) -> [String: String] {
        var out: [String: String] = [:]
        for b in boxes { if let use = b.specialUse, out[use.rawValue.lowercased()] == nil { out[use.rawValue.lowercased()] = b.name } }
        return out
    }

    /// How much of a stored message's start the scripts read for its header, and for the body test.
    static let headerReadLimit = 256 << 10
    static let bodyReadLimit = 4 << 20

    static func readPrefix(_ url: URL, max: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        return Array(try handle.read(upToCount: max) ?? Data())
    }

    /// A redirected copy: a Delivered-To field naming the recipient whose script sent it on, then the message without
    /// the `skip` octets of Return-Path at its start (a message leaving carries none: RFC 5321 §4.4). A stored file is
    /// copied a piece at a time into a new one, fsync'd.
    static func redirectCopy(_ content: MessageContent, from: String, skip: Int, blobs: BlobStore) throws -> MessageContent {
        let field = Array("Delivered-To: \(from)\r\n".utf8)
        switch content {
        case .inline(let bytes):
            return .inline(field + bytes[min(skip, bytes.count)...])
        case .blob(let key, let size):
            let source = try FileHandle(forReadingFrom: blobs.url(for: key))
            defer { try? source.close() }
            try source.seek(toOffset: UInt64(skip))
            let (url, handle) = try blobs.makeTempFile()
            do {
                try handle.write(contentsOf: field)
                while let piece = try source.read(upToCount: 1 << 20), !piece.isEmpty { try handle.write(contentsOf: piece) }
                let copy = BlobStore.newKey()
                try blobs.commit(tempFile: url, handle: handle, key: copy)
                return .blob(key: copy, size: field.count + size - skip)
            } catch {
                try? FileManager.default.removeItem(at: url)
                throw error
            }
        }
    }
}
