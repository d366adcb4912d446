import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import Sieve
import SieveDelivery

// Step 3b of the intake pipeline, filters: each local account's active Sieve script (and the administrator's around
// it) decides where that account's copy goes, after the checks and before the commit (the decisions themselves are
// SieveDelivery's `FilterPlan`).

extension IntakeCommit {
    /// `FilterPlan.deliveries` for a message of this plan: the plan's delivery with the scripts' mailboxes, its
    /// redirected copies, and the log lines when nothing is stored.
    public static func filtered(plan: RoutingPlan, prepared: Prepared, filter: FilterPlan, queueID: String, now: Date, received: String?,
                                redirected: (FilterPlan.Redirect) throws -> MessageContent,
                                edited: (AccountID) throws -> MessageContent = { _ in .inline([]) },
                                newID: () -> String) rethrows -> (deliveries: [Delivery], log: [DeliveryEvent]) {
        try filter.deliveries(main: delivery(plan: plan, prepared: prepared, queueID: queueID, now: now, received: received),
                              local: zip(plan.localAddresses, plan.localAccounts).map { ($0, $1) }, junk: prepared.junk,
                              logging: received != nil, redirected: redirected, edited: edited, newID: newID)
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
        var remembered: [(String, SieveDuplicate)] = []   // duplicate ids to record once the message is delivered
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
            let limit = readsBody ? FilterPlan.bodyReadLimit : FilterPlan.headerReadLimit
            let head: [UInt8]
            switch content {
            case .inline(let bytes): head = Array(bytes.prefix(limit))
            case .blob(let key, _):
                let url = store.blobs.url(for: key)
                head = try await work.run { try FilterPlan.readPrefix(url, max: limit) }
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
                environment.specialUses = FilterPlan.specialUses(boxes[target.account] ?? [])
                let admin = adminScripts.scripts(domain: domain(target.account))
                var result: SieveResult
                switch compiled[target.account] {
                case .failure(let error)?: result = SieveResult(actions: [.keep], error: error)
                case let script:
                    let user = try? script?.get()
                    // Duplicate tests (RFC 7352) ask the store what it has seen; the script runs again with the answers.
                    var env = environment
                    env.globalScripts = adminScripts.global
                    if user?.required.contains("include") == true || (admin.before + admin.after).contains(where: { $0.required.contains("include") }) {
                        // RFC 6609: the user's other scripts, for include :personal.
                        for info in try await store.scripts(account: target.account) {
                            if info.active, case .success(let s)? = compiled[target.account] {
                                env.personalScripts[info.name] = s
                            } else if !info.active, let text = try await store.script(account: target.account, name: info.name),
                                      case .success(let s) = compiledScripts.compiled(text) {
                                env.personalScripts[info.name] = s
                            }
                        }
                    }
                    result = try await work.run { [env] in SieveInterpreter.run(before: admin.before, script: user, after: admin.after, message: message, environment: env) }
                    for _ in 0..<3 where !result.unknownDuplicates.isEmpty {
                        let keys = result.unknownDuplicates.map { SieveReplies.duplicateKey(account: target.account, $0) }
                        let seen = try await store.sieveSeen(keys, now: m.arrived)
                        for (k, stored) in zip(result.unknownDuplicates, keys) { env.duplicatesSeen[k] = seen.contains(stored) }
                        result = try await work.run { [env] in SieveInterpreter.run(before: admin.before, script: user, after: admin.after, message: message, environment: env) }
                    }
                    for d in result.duplicates {
                        remembered.append((SieveReplies.duplicateKey(account: target.account, d.key), d))
                    }
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
            // More Received fields than any real path has (Postfix's hopcount_limit): a loop, whoever is in it.
            let hops = fields.lazy.filter { $0.name.lowercased() == "received" }.count
            // The filters decide where spam goes for the accounts they ran for (Tern's after script files it in Junk);
            // where a script failed, the message is kept where it would have gone without filters.
            let failed = Set(runs.filter { $0.result.error != nil }.map(\.account))
            let filterBase = base.map { filtered.contains($0.account) && !failed.contains($0.account) ? DeliveryTarget(account: $0.account) : $0 }
            var draft = FilterPlan(base: filterBase, runs: runs, mailboxes: boxes.mapValues { Set($0.map(\.name)) },
                                    specialUses: boxes.mapValues(FilterPlan.specialUses),
                                    looping: trace.everyone || hops > FilterPlan.maxHops ? Set(runs.map { $0.recipient.lowercased() }) : trace.addresses)
            // Header edits need the whole header: one longer than what was read keeps the message as it came.
            let headerEnd = RawHeader.end(head)
            if headerEnd == head.count && head.count >= limit && !draft.edited.isEmpty {
                m.logger.warning("header too long to edit", metadata: ["msg": "\(m.queueID)"])
                draft.edited = [:]
            }
            // The mailboxes fileinto :create names; one that cannot be made (but was not made meanwhile by another
            // session) keeps the message in INBOX for that account instead of failing the delivery.
            for mailbox in draft.creates {
                do {
                    _ = try await store.createMailbox(account: mailbox.account, name: mailbox.name)
                } catch {
                    if try await store.mailboxes(account: mailbox.account).contains(where: { $0.name == mailbox.name }) { continue }
                    m.logger.warning("sieve fileinto :create failed, message kept in INBOX",
                                     metadata: ["msg": "\(m.queueID)", "mailbox": "\(loggable(mailbox.name))", "error": "\(error)"])
                    draft.keepInstead(of: mailbox, because: "\(error)")
                }
            }
            let filter = draft
            let raw = RawHeader.fields(head[..<headerEnd])
            // Rejected by every recipient's script, with nothing else to do: refused at SMTP time (RFC 5429 §2.1).
            if !filter.rejections.isEmpty, filter.targets.isEmpty, filter.redirects.isEmpty, plan.remote.isEmpty,
               filter.rejections.count == base.count {
                let reason = SieveReplies.oneLine(filter.rejections[0].reason).prefix(200)
                let reply = SMTPReply(550, "5.7.1", reason.isEmpty ? "Rejected by the recipient's filter" : String(reason))
                if m.received != nil {
                    let (_, log) = try IntakeCommit.filtered(plan: plan, prepared: prepared, filter: filter, queueID: m.queueID, now: m.arrived,
                                                         received: m.received, redirected: { _ in content }, newID: { "" })
                    try? await store.log(log + [DeliveryEvent(at: m.arrived, queueID: m.queueID, kind: .refused,
                                                               detail: reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))])
                }
                if case .blob(let key, _) = content { store.blobs.remove(key) }
                return completion(.refused(reply))
            }
            let (notices, claimed, replyLog) = await replies(m, filter, fields: fields, spam: prepared.junk)
            seen = claimed
            let blobs = store.blobs, skip = m.returnPathLength
            let (filteredDeliveries, filteredLog, copies) = try await work.run {
                var copies: [String] = []
                do {
                    let (deliveries, log) = try IntakeCommit.filtered(
                        plan: plan, prepared: prepared, filter: filter, queueID: m.queueID, now: m.arrived, received: m.received,
                        redirected: { r in
                            var copy: MessageContent
                            if let layout = filter.edited[r.account] {
                                // The header the script left, without this server's Return-Path, then the body.
                                copy = try FilterPlan.splice(content, from: headerEnd, with: Array("Delivered-To: \(r.from)\r\n".utf8)
                                                             + FilterPlan.header(layout, raw: raw, returnPath: false), blobs: blobs)
                            } else {
                                copy = try FilterPlan.redirectCopy(content, from: r.from, skip: skip, blobs: blobs)
                            }
                            if case .blob(let key, _) = copy { copies.append(key) }
                            return copy
                        }, edited: { account in
                            let copy = try FilterPlan.splice(content, from: headerEnd, with: FilterPlan.header(filter.edited[account] ?? [], raw: raw,
                                                                                                                returnPath: true), blobs: blobs)
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
            // The received file itself is stored (not only copies with an edited header, which have files of their own).
            let fileStored = deliveries.contains { d in
                if case .blob(let stored, _) = d.content, case .blob(let key, _) = content { stored == key } else { false }
            }
            var receipt = DeliveryReceipt(messageID: 0, placements: [])
            if deliveries.isEmpty && notices.isEmpty {
                if !log.isEmpty { try await store.log(log) }
            } else {
                var all = deliveries + notices
                if deliveries.isEmpty { all[0].log = log + all[0].log }
                let receipts = try await store.deliverAll(all)
                if keptMain { receipt = receipts[0] }
            }
            // The ids the duplicate tests saw count from now on (recorded only for a delivered message, RFC 7352 §3).
            for (key, d) in remembered {
                if d.last { try? await store.forgetSieveSeen(key) }
                _ = try? await store.markSieveSeen(key, until: m.arrived.addingTimeInterval(TimeInterval(d.seconds)), now: m.arrived)
            }
            // Every script discarded or redirected it: the received file is referenced by nothing.
            if !fileStored, case .blob(let key, _) = content { store.blobs.remove(key) }
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
    /// Mail judged spam gets neither (RFC 3834 §2: a responder should not answer what it believes is spam; its
    /// sender is most likely forged, and the reply would be backscatter).
    func replies(_ m: IncomingMessage, _ filter: FilterPlan, fields: [(name: String, value: String)], spam: Bool) async
        -> (deliveries: [Delivery], claimed: [String], log: [DeliveryEvent]) {
        var out: [Delivery] = [], claimed: [String] = [], events: [DeliveryEvent] = []
        let sender = m.envelope.mailFrom, hostname = config.hostname, logging = m.received != nil
        for v in filter.vacations {
            var refusal = spam ? "the message was judged spam"
                : SieveReplies.vacationRefusal(fields: fields, sender: sender, recipient: v.recipient, addresses: v.action.addresses)
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
            var action = v.action
            action.from = await ownAddress(action.from, of: v.account, recipient: v.recipient, m)
            let bytes = SieveReplies.vacation(action, original: fields, sender: sender, recipient: v.recipient, hostname: hostname, id: id, now: m.arrived)
            out.append(await signed(bytes, id: id, from: v.recipient, to: sender, about: m.queueID, sent: "vacation reply of <\(v.recipient)>",
                                    logging: logging, now: m.arrived, logger: m.logger))
        }
        // Notifications (RFC 5435 by mail, RFC 5436): a few per recipient, each to a few addresses, with a null sender.
        var sent: [AccountID: Int] = [:]
        for n in filter.notifications {
            sent[n.account, default: 0] += 1
            let id = SessionID.make()
            var action = n.action
            action.from = await ownAddress(action.from, of: n.account, recipient: n.recipient, m)
            guard sent[n.account]! <= 4,
                  let (to, bytes) = SieveReplies.notification(action, original: fields, recipient: n.recipient, hostname: hostname, id: id, now: m.arrived)
            else {
                if logging {
                    events.append(DeliveryEvent(at: m.arrived, queueID: m.queueID, kind: .filtered,
                                                detail: "<\(n.recipient)>: no notification (the message was sent automatically, or too many)"))
                }
                continue
            }
            for address in to.prefix(10) {
                out.append(await signed(bytes, id: id, from: n.recipient, to: address, about: m.queueID, sent: "notification of <\(n.recipient)>",
                                        logging: logging, now: m.arrived, logger: m.logger))
            }
        }
        for r in filter.rejections where !sender.isEmpty && !spam {
            let id = SessionID.make()
            let bytes = SieveReplies.rejection(reason: r.reason, original: fields, sender: sender, recipient: r.recipient, hostname: hostname, id: id,
                                               now: m.arrived)
            out.append(await SenderNotice.delivery(bytes, to: sender, about: m.queueID, kind: .filtered, sent: "rejection notice",
                                                   received: "from Tern (rejected by the filter of <\(r.recipient)>)", logging: logging,
                                                   store: store, now: m.arrived))
        }
        return (out, claimed, events)
    }

    /// A vacation's or notification's :from, when it is an address of the account's own (the recipient, or an address
    /// that reaches the account): the reply is signed for its From domain, so a script may not write as another user
    /// or another domain of this server. Nil otherwise (the reply is from the recipient), with a log line.
    private func ownAddress(_ given: String?, of account: AccountID, recipient: String, _ m: IncomingMessage) async -> String? {
        guard let given else { return nil }
        // One address (two authors would be one of them and anyone), written again from its parts.
        let items = AddressList.parse(given)
        if items.count == 1, case .mailbox(let name, let local, let domain?) = items[0], let parsed = try? EmailAddress.parse("\(local)@\(domain)") {
            let address = parsed.description
            let field = name.map { n in
                let clean = SieveReplies.oneLine(n)
                return (clean.allSatisfy(\.isASCII) ? EmailAddress.quote(clean) : SieveReplies.encoded(clean)) + " <\(address)>"
            } ?? "<\(address)>"
            if address.lowercased() == recipient.lowercased() { return field }
            if case .local(let accounts)? = try? await store.resolve(parsed), accounts.contains(account) { return field }
        }
        m.logger.info("sieve :from not the account's own address, replaced", metadata: ["msg": "\(m.queueID)", "rcpt": "\(recipient)",
                                                                                       "from": "\(loggable(given))"])
        return nil
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
}
