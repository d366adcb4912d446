import Intake
import ServerCore
import Foundation
import Logging
import MailCore
import MailDNS
import MailMessage
import MailStore
import SMTPCodec
import Synchronization
import TernConfig

/// Delivers the outbound queue: finds due messages, groups their recipients by domain, looks up each domain's route
/// (RFC 5321 §5.1), and hands the messages to the remote servers over SMTP — several connections per domain, each
/// carrying message after message. Records each recipient's result; bounces (RFC 3464) what failed for good, retries
/// the rest on the configured schedule.
///
/// Restart-safe by construction: everything it knows is in the store, and a message leaves the queue only in the
/// same transaction that stores its bounce (if one is owed).
public final class OutboundQueue: Sendable {
    public let store: any MailStore
    public let resolver: any DNSResolver
    public let courier: SMTPCourier
    public let config: TernConfiguration
    /// The time retries are scheduled by, and expiry and delay notices judged by.
    public let clock: any WallClock
    public let logger: Logger
    private let state = Mutex(State())
    private let signal = WakeSignal()

    public struct State {
        /// (queue row, domain) pairs being delivered now (or waiting for a connection), with their leased recipients.
        var inFlight: [JobKey: InFlight] = [:]
        var nextTicket = 0
        var domains: [String: DomainRun] = [:]
        var messagesBeingCompleted = Set<Int64>()
        /// A scan left due messages behind because `maxInFlight` was reached.
        var leftBehind = false
        var rescanRequested = false
    }

    public struct JobKey: Hashable, Sendable { var message: Int64; var domain: String }

    /// A job's leased recipients while it is in flight. `ticket` tells this job from a later one of the same message
    /// and domain; `lost`: recipients whose lease a renewal found gone (the message deleted, or the lease taken over by
    /// another runner after it ran out), which the job, if not yet sent, leaves to their new holder. `heldUntil`: the
    /// end of the lease as last confirmed (by the scan that took it, or a renewal that kept it).
    public struct InFlight: Sendable {
        var ids: [Int64]
        var ticket: Int
        var lost = Set<Int64>()
        var heldUntil: Date
    }

    /// One message's recipients at one domain.
    public struct Job: Sendable {
        var message: QueuedMessage
        var recipients: [QueuedRecipient]
        var domain: String
        /// Times this job was put back after a reused connection broke.
        var requeued = 0
        var key: JobKey { JobKey(message: message.id, domain: domain) }
    }

    public init(store: any MailStore, resolver: any DNSResolver, courier: SMTPCourier, config: TernConfiguration, clock: any WallClock,
                logger: Logger) {
        self.store = store
        self.clock = clock
        self.resolver = resolver
        self.courier = courier
        self.config = config
        var l = logger
        l[metadataKey: "service"] = "queue"
        self.logger = l
    }

    /// Something was queued or finished: look again soon.
    public func wake() { signal.signal() }

    /// Nothing is being delivered, completed or notified now (tests wait for this between scans).
    public var isIdle: Bool { state.withLock { $0.inFlight.isEmpty && $0.messagesBeingCompleted.isEmpty && $0.domains.isEmpty } }

    /// Look at the whole queue now (`tern queue retry` made messages due).
    public func rescan() {
        state.withLock { $0.rescanRequested = true }
        signal.signal()
    }

    /// Runs until the task is cancelled.
    public func run() async {
        store.observeQueue { [weak self] in self?.wake() }
        logger.info("queue runner started")
        // New arrivals have higher row ids than anything seen: a wake-up scans only above `newest`. Due retries (and
        // `tern queue retry` from another process) are found by a scan from the start: at once when nothing is being
        // delivered (then everything due in the database really waits), else at most every `busyRescan` seconds, since
        // messages being delivered still look due there and would be read again and again.
        var newest: Int64 = 0
        var fromStart = true
        // Elapsed time, not the time of day: a clock set back must not stop the rescans.
        var lastFullScan = ContinuousClock.now
        var lastRenewal = ContinuousClock.now
        var lastPoll = ContinuousClock.now - .seconds(10)
        var knownNext = Date.distantPast
        while !Task.isCancelled {
            if fromStart { lastFullScan = .now }
            var cursor: Int64 = fromStart ? 0 : newest
            var full = true
            while full && !Task.isCancelled {
                do {
                    (full, cursor) = try await scan(after: cursor)
                    newest = max(newest, cursor)
                } catch {
                    logger.error("queue scan failed", metadata: ["error": "\(error)"])
                    full = false
                }
            }
            fromStart = false
            while !Task.isCancelled {
                // Scans are at most 50 a second, however often arrivals wake the runner.
                try? await Task.sleep(for: .milliseconds(20))
                if lastRenewal.duration(to: .now) >= .seconds(store.queueLease / 3) {
                    lastRenewal = .now
                    // A renewal that failed (the store out of reach) is tried again within seconds, not a third of a
                    // lease later: until one succeeds, jobs whose lease runs low are not sent (`send`).
                    if await !renewLeases() { lastRenewal = .now - .seconds(max(0, store.queueLease / 3 - 5)) }
                }
                if await signal.wait(timeout: 0.25) {
                    fromStart = state.withLock { s in defer { s.rescanRequested = false }; return s.rescanRequested }
                    break
                }
                // The earliest due time, read again at most once a second while it lies ahead (a shared store is not
                // asked four times a second by every idle node); a wake-up above reads it at once.
                if knownNext > clock.now, lastPoll.duration(to: .now) < .seconds(1) { continue }
                lastPoll = .now
                knownNext = (try? await store.nextQueueAttempt()) ?? .distantFuture
                let next = knownNext
                guard next <= clock.now else { continue }
                let (busy, refill) = state.withLock { s -> (Bool, Bool) in
                    let refill = s.leftBehind && s.inFlight.count < Self.maxInFlight / 2
                    if refill { s.leftBehind = false }
                    return (!s.inFlight.isEmpty, refill)
                }
                if !busy || refill || lastFullScan.duration(to: .now) >= .seconds(Self.busyRescan) {
                    fromStart = true
                    break
                }
            }
        }
        logger.info("queue runner stopped")
    }

    /// Holds what this runner took for another lease: jobs waiting for a connection to a slow domain may outlast the
    /// lease they were taken with, and must not be taken over (and sent twice) by another node meanwhile.
    /// Returns false when the store could not be asked.
    @discardableResult
    func renewLeases() async -> Bool {
        let jobs = state.withLock { s in s.inFlight.map { ($0.key, $0.value.ticket, $0.value.ids) } }
        let held = jobs.flatMap(\.2)
        guard !held.isEmpty else { return true }
        let until = clock.now.addingTimeInterval(store.queueLease)
        do {
            var kept = Set<Int64>()
            for start in stride(from: 0, to: held.count, by: 1000) {
                kept.formUnion(try await store.renewLeases(Array(held[start..<min(start + 1000, held.count)]), until: until))
            }
            // Finished meanwhile (being recorded), or taken over after a lease ran out: not to be sent from here by the
            // job that held them (a later job of the same message has a lease of its own). The rest are held to `until`.
            state.withLock { s in
                for (key, ticket, ids) in jobs where s.inFlight[key]?.ticket == ticket {
                    s.inFlight[key]!.lost.formUnion(ids.filter { !kept.contains($0) })
                    s.inFlight[key]!.heldUntil = until
                }
            }
            if kept.count < held.count {
                logger.debug("recipients no longer held by this runner (finished, or taken over after a lease ran out)",
                              metadata: ["count": "\(held.count - kept.count)"])
            }
        } catch {
            logger.error("cannot renew queue leases", metadata: ["error": "\(error)"])
            return false
        }
        return true
    }

    public static let scanBatch = 500
    /// Jobs handed to connections and not yet finished, at most (bounds memory: small contents travel with them).
    public static let maxInFlight = 2000
    /// While deliveries are in progress, due retries are looked for this often (seconds).
    public static let busyRescan: TimeInterval = 30

    /// One pass over due messages with ids above `cursor`; returns whether the batch was full (more may be due) and
    /// the last id seen.
    public func scan(after cursor: Int64) async throws -> (Bool, Int64) {
        let now = clock.now
        let due = try await store.queuedMessages(dueBy: now, after: cursor, limit: Self.scanBatch)
        var lastID = cursor
        var byDomain: [String: [Job]] = [:]
        var toComplete: [QueuedMessage] = []
        var delayed: [QueuedMessage] = []
        var unused: [Int64] = []
        state.withLock { s in
            for m in due {
                lastID = max(lastID, m.id)
                if m.isFinished {
                    if s.messagesBeingCompleted.insert(m.id).inserted { toComplete.append(m) }
                    continue
                }
                if let notice = config.delivery.delayNotice, !m.delayNotified, !m.envelope.mailFrom.isEmpty,
                   now.timeIntervalSince(m.created) >= notice.seconds, s.messagesBeingCompleted.insert(m.id).inserted {
                    delayed.append(m)
                }
                if s.inFlight.count >= Self.maxInFlight {
                    // Not tried now: its leases go back, so that the next scan (here or on another node) takes it.
                    s.leftBehind = true
                    unused += m.recipients.filter { $0.status == .pending && $0.nextAttempt <= now }.map(\.id)
                    continue
                }
                let pending = m.recipients.filter { $0.status == .pending && $0.nextAttempt <= now }
                for (domain, rcpts) in Dictionary(grouping: pending, by: \.domain) {
                    let job = Job(message: m, recipients: rcpts, domain: domain)
                    if s.inFlight[job.key] == nil {
                        s.nextTicket += 1
                        s.inFlight[job.key] = InFlight(ids: rcpts.map(\.id), ticket: s.nextTicket, heldUntil: now.addingTimeInterval(store.queueLease))
                        byDomain[domain, default: []].append(job)
                    }
                }
            }
        }
        if !unused.isEmpty { try await store.releaseLeases(unused) }
        for m in toComplete { Task { await self.complete(m) } }
        for m in delayed { Task { await self.sendDelayNotice(m) } }
        for (domain, jobs) in byDomain { dispatch(domain: domain, jobs: jobs) }
        return (due.count == Self.scanBatch, lastID)
    }

    // MARK: domains and connections

    /// A domain being delivered to: its route and the jobs waiting for a connection.
    public final class DomainRun: Sendable {
        struct Inner {
            /// Waiting jobs from `head` on (taken from the front without moving the rest).
            var jobs: [Job] = []
            var head = 0
            var workers = 0
            var closed = false
        }
        let domain: String
        let inner = Mutex(Inner())
        init(domain: String) { self.domain = domain }

        /// Adds jobs; returns how many more workers to start, or nil when the run has ended (start a new one).
        func add(_ jobs: [Job], maxWorkers: Int) -> Int? {
            inner.withLock { s in
                guard !s.closed else { return nil }
                s.jobs.append(contentsOf: jobs)
                let wanted = min(maxWorkers, s.jobs.count - s.head + s.workers) - s.workers
                let start = max(0, wanted)
                s.workers += start
                return start
            }
        }

        /// The next job, or nil: the worker ends (and the run with the last worker).
        func take() -> Job? {
            inner.withLock { s in
                if s.head < s.jobs.count {
                    let job = s.jobs[s.head]
                    s.head += 1
                    if s.head > 1024 && s.head * 2 > s.jobs.count { s.jobs.removeFirst(s.head); s.head = 0 }
                    return job
                }
                s.workers -= 1
                if s.workers == 0 { s.closed = true }
                return nil
            }
        }

        func putBack(_ job: Job) {
            inner.withLock { s in
                if s.head > 0 { s.head -= 1; s.jobs[s.head] = job } else { s.jobs.insert(job, at: 0) }
            }
        }

        /// Every waiting job (the destination is unreachable: they all share one fate).
        func drain() -> [Job] { inner.withLock { s in defer { s.jobs = []; s.head = 0 }; return Array(s.jobs[s.head...]) } }
    }

    public func dispatch(domain: String, jobs: [Job]) {
        let limit = config.delivery.connectionsPerDomain
        let (run, workers) = state.withLock { s -> (DomainRun, Int) in
            if let run = s.domains[domain], let n = run.add(jobs, maxWorkers: limit) { return (run, n) }
            let run = DomainRun(domain: domain)
            s.domains[domain] = run
            return (run, run.add(jobs, maxWorkers: limit) ?? 0)
        }
        guard workers > 0 else { return }
        Task {
            let route = await self.route(domain)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<workers { group.addTask { await self.work(run, route: route) } }
            }
            self.state.withLock { s in if s.domains[domain] === run { s.domains[domain] = nil } }
        }
    }

    public func route(_ domain: String) async -> MailRoute {
        var rng = SystemRandomNumberGenerator()
        return await RouteSelection.route(for: domain, resolver: resolver, addresses: config.delivery.addresses, random: &rng)
    }

    /// One connection worker: takes jobs of the domain and delivers them, over one connection while it lasts.
    public func work(_ run: DomainRun, route: MailRoute) async {
        switch route {
        case .nullMX:
            while let job = run.take() {
                await finish(job, all: .failed, reply: "556 5.1.10 Recipient address rejected: \(job.domain) accepts no mail (null MX, RFC 7505)", host: nil)
            }
            return
        case .noRoute(let why):
            while let job = run.take() { await finish(job, all: .failed, reply: "550 5.1.2 Host or domain name not found: \(why)", host: nil) }
            return
        case .temporaryFailure(let why):
            while let job = run.take() { await finish(job, all: .deferred, reply: "451 4.4.3 \(why)", host: nil) }
            return
        case .hosts(let hosts):
            var job = run.take()
            while let current = job {
                job = await deliver(current, run: run, hosts: hosts)
            }
        }
    }

    /// Tries the route's addresses in order; once connected, carries further jobs of the run on the same connection.
    /// Returns the job to go on with (nil: the run has no more for this worker).
    public func deliver(_ first: Job, run: DomainRun, hosts: [RouteHost]) async -> Job? {
        var lastError = "no mail exchanger could be reached"
        var lastHost: String?
        // The job that opens the next connection: the first one, or the one a server turned away before any transaction.
        var opening = first
        for host in hosts {
            for address in host.addresses {
                let remote = "\(host.name)[\(address)]"
                let result = await courier.withSession(host: address, port: config.delivery.remotePort, serverName: host.name) { session -> Job? in
                    var current: Job? = opening
                    while let job = current {
                        if let turnedAway = await send(job, on: &session, remote: remote, run: run) {
                            lastError = turnedAway
                            lastHost = remote
                            return job
                        }
                        current = session.canSendMore ? run.take() : nil
                    }
                    return nil
                }
                switch result {
                case .success(let turnedAway?):
                    // RFC 5321 §5.1: the server would not take mail now; try the next address.
                    opening = turnedAway
                case .success(nil):
                    // The connection served its jobs; if it ended early, the next job gets a new connection.
                    return run.take()
                case .failure(let f):
                    lastError = f.text
                    lastHost = nil
                }
            }
        }
        // No address took the job: the destination is unreachable now, for every job waiting for it.
        logger.info("destination unreachable", metadata: ["domain": "\(first.domain)", "error": "\(lastError)"])
        let reply = lastError.first?.isNumber == true ? lastError : "451 4.4.1 \(lastError)"
        for job in [opening] + run.drain() { await finish(job, all: .deferred, reply: reply, host: lastHost) }
        return run.take()
    }

    /// Sends one job on an open session and records what came of it. Returns the reason when the server turned the
    /// connection away before any transaction (the caller tries the next address with this job).
    public func send(_ job: Job, on session: inout CourierSession, remote: String, run: DomainRun) async -> String? {
        // Recipients whose lease another runner took over (this one waited past it) are that runner's to send.
        var job = job
        let (lost, heldUntil) = state.withLock { s in (s.inFlight[job.key]?.lost ?? [], s.inFlight[job.key]?.heldUntil ?? .distantFuture) }
        // A lease not confirmed for a while (renewals failing: the store out of reach) may run out during the
        // transaction and be taken over by another node, which would send the message too: the job is sent only while
        // at least a third of a lease is left. Otherwise it is left to the scan that takes it once the lease has ended.
        if clock.now.addingTimeInterval(store.queueLease / 3) > heldUntil {
            logger.warning("queue lease not confirmed in time; not sent now",
                           metadata: ["queue": "\(job.message.queueID)", "recipients": "\(job.recipients.count)"])
            _ = state.withLock { $0.inFlight.removeValue(forKey: job.key) }
            return nil
        }
        if !lost.isEmpty {
            logger.info("lease taken over by another runner; not sent from here",
                        metadata: ["queue": "\(job.message.queueID)", "recipients": "\(lost.count)"])
            job.recipients.removeAll { lost.contains($0.id) }
            if job.recipients.isEmpty {
                _ = state.withLock { $0.inFlight.removeValue(forKey: job.key) }
                return nil
            }
        }
        let content: any ContentReader
        var eightBit = false
        do {
            if let prefetched = job.message.content {
                content = InMemoryContent(prefetched)
                eightBit = prefetched.contains { $0 >= 0x80 }
            } else {
                // Read a piece at a time, as it is sent (a large message is never whole in memory), after one pass
                // that looks for 8-bit octets.
                content = try await store.openContent(of: job.message.messageID)
                eightBit = try await Self.hasEightBit(content)
            }
        } catch {
            logger.error("cannot read queued message", metadata: ["queue": "\(job.message.queueID)", "error": "\(error)"])
            await finish(job, all: .deferred, reply: "451 4.3.0 Local error reading the message", host: nil)
            return nil
        }
        let firstOnConnection = session.messagesSent == 0
        let message = SMTPClientTransaction.Message(
            mailFrom: job.message.envelope.mailFrom, recipients: job.recipients.map(\.address), size: content.size,
            eightBit: eightBit, needsSMTPUTF8: job.message.envelope.smtputf8,
            dsn: SMTPClientTransaction.DSNRequest(
                envelopeID: job.message.envelope.envelopeID, ret: job.message.envelope.dsnReturn,
                recipients: job.recipients.map { .init(notify: $0.notify, originalRecipient: $0.originalRecipient) }))
        switch await session.send(message, content: content) {
        case .results(let results):
            // The bookkeeping (a batched database write) runs beside the next message on this connection instead of
            // before it; the job stays in flight until it is recorded.
            let tls = session.tlsActive, dsn = session.transaction?.capabilities.dsn ?? false
            Task { await self.finish(job, results: results, host: remote, tls: tls, nextHopDSN: dsn) }
        case .refused(let reply, let permanent):
            if !permanent && firstOnConnection { return reply.oneLine }
            await finish(job, all: permanent ? .failed : .deferred, reply: reply.oneLine, host: remote)
        case .connectionFailed(let why):
            if firstOnConnection { return why }
            // A reused connection broke: the job gets one more chance on a fresh connection.
            var again = job
            again.requeued += 1
            if again.requeued <= 1 { run.putBack(again) } else { await finish(job, all: .deferred, reply: "451 4.4.2 \(why)", host: remote) }
        }
        return nil
    }

    /// Whether the content holds an octet above 127, read until the first one.
    static func hasEightBit(_ content: any ContentReader) async throws -> Bool {
        struct Found: Error {}
        do {
            try await content.pieces { piece in if piece.contains(where: { $0 >= 0x80 }) { throw Found() } }
            return false
        } catch is Found {
            return true
        }
    }

    // MARK: results

    /// The same outcome for every recipient of the job.
    public func finish(_ job: Job, all outcome: Outcome, reply: String, host: String?) async {
        await record(job, job.recipients.map { ($0, outcome, reply) }, host: host)
    }

    /// `nextHopDSN`: the server offered DSN, so the recipients it took went with their NOTIFY, ORCPT, ENVID and RET
    /// (RFC 3461 §5.2.2) and their notices are its to send.
    public func finish(_ job: Job, results: [SMTPClientTransaction.RecipientResult], host: String, tls: Bool,
                       nextHopDSN: Bool = false) async {
        var list: [(QueuedRecipient, Outcome, String)] = []
        for (r, result) in zip(job.recipients, results) {
            let text = result.reply.oneLine
            list.append((r, result.delivered ? .delivered : result.permanent ? .failed : .deferred, text))
        }
        await record(job, list, host: host, tls: tls, nextHopDSN: nextHopDSN)
    }

    public enum Outcome { case delivered, failed, deferred }

    public func record(_ job: Job, _ outcomes: [(QueuedRecipient, Outcome, String)], host: String?, tls: Bool = false,
                       nextHopDSN: Bool = false) async {
        let now = clock.now
        let giveUp = job.message.created.addingTimeInterval(config.delivery.giveUpAfter.seconds)
        var attempts: [DeliveryAttempt] = []
        let logging = config.keepsDeliveryLog
        func event(_ kind: DeliveryEvent.Kind, _ r: QueuedRecipient, _ text: String) -> DeliveryEvent? {
            logging ? DeliveryEvent(at: now, queueID: job.message.queueID, kind: kind, detail: "<\(r.address)>" + (host.map { " via \($0)" } ?? "") + ": " + text) : nil
        }
        for (r, outcome, reply) in outcomes {
            var meta: Logger.Metadata = ["queue": "\(job.message.queueID)", "rcpt": "\(r.address)", "reply": "\(reply)"]
            if let host { meta["relay"] = "\(host)" }
            switch outcome {
            case .delivered:
                meta["tls"] = "\(tls)"
                logger.info("delivered", metadata: meta)
                attempts.append(DeliveryAttempt(recipientID: r.id, outcome: .delivered, reply: reply, remoteHost: host,
                                                event: event(.delivered, r, reply + (tls ? " (TLS)" : " (no TLS)")),
                                                notifyPassedOn: nextHopDSN && r.notify != nil))
            case .failed:
                logger.info("bounced", metadata: meta)
                attempts.append(DeliveryAttempt(recipientID: r.id, outcome: .failed, reply: reply, remoteHost: host, event: event(.failed, r, reply)))
            case .deferred:
                let schedule = config.delivery.retry
                let delay = schedule[min(r.attempts, schedule.count - 1)].seconds
                let next = now.addingTimeInterval(delay)
                if now >= giveUp {
                    meta["gave_up_after"] = "\(config.delivery.giveUpAfter)"
                    logger.info("bounced: too long in the queue", metadata: meta)
                    attempts.append(DeliveryAttempt(recipientID: r.id, outcome: .failed, reply: reply, remoteHost: host,
                                                    event: event(.expired, r, reply + "; in the queue longer than delivery.give_up_after")))
                } else {
                    meta["next"] = "\(Int(delay))s"
                    logger.info("deferred", metadata: meta)
                    let retry = min(next, giveUp)
                    attempts.append(DeliveryAttempt(recipientID: r.id, outcome: .deferred(until: retry), reply: reply, remoteHost: host,
                                                    event: event(.deferred, r, reply + "; next attempt in \(Int(retry.timeIntervalSince(now).rounded())) s")))
                }
            }
        }
        do {
            let finished = try await store.recordAttempts(attempts, completing: job.message.id)
            if let finished {
                if state.withLock({ $0.messagesBeingCompleted.insert(finished.id).inserted }) { await complete(finished) }
            }
        } catch {
            logger.error("cannot record delivery results", metadata: ["queue": "\(job.message.queueID)", "error": "\(error)"])
        }
        _ = state.withLock { $0.inFlight.removeValue(forKey: job.key) }
    }

    /// A message whose recipients all have a final result: tell the sender what failed and, where NOTIFY=SUCCESS
    /// asked for it, what was delivered (RFC 3461), then remove it from the queue — both in one transaction.
    public func complete(_ message: QueuedMessage) async {
        defer { _ = state.withLock { $0.messagesBeingCompleted.remove(message.id) } }
        let reported = message.recipients.filter { r in
            switch r.status {
            case .failed: !(r.notify?.contains("NEVER") ?? false) && (r.notify == nil || r.notify!.contains("FAILURE"))
            // A recipient the next hop took with its DSN request has no NOTIFY left (that server notifies).
            case .delivered: r.notify?.contains("SUCCESS") ?? false
            case .pending: false
            }
        }
        var notification: Delivery?
        if !reported.isEmpty && !message.envelope.mailFrom.isEmpty {
            let statuses = reported.map { r -> DeliveryReport.RecipientStatus in
                let failed = r.status == .failed
                let reply = r.lastReply ?? (failed ? "550 5.0.0 Delivery failed" : "250 2.0.0 Ok")
                return DeliveryReport.RecipientStatus(
                    address: r.address, originalRecipient: r.originalRecipient,
                    action: failed ? .failed : r.remoteHost == nil ? .delivered : .relayed,
                    status: DeliveryReport.status(fromReply: reply, permanent: true), diagnostic: reply,
                    remoteMTA: r.remoteHost.map { $0.split(separator: "[").first.map(String.init) ?? $0 }, lastAttempt: r.lastAttempt)
            }
            let failures = reported.filter { $0.status == .failed }.map { "<\($0.address)>" }
            let successes = reported.filter { $0.status == .delivered }.map { "<\($0.address)>" }
            let what = [failures.isEmpty ? nil : "failed: " + failures.joined(separator: ", "),
                        successes.isEmpty ? nil : "delivered: " + successes.joined(separator: ", ")].compactMap { $0 }
            notification = await report(message, statuses, failures.isEmpty ? .notified : .bounced,
                                        "delivery status notification (" + what.joined(separator: "; ") + ")")
        }
        do {
            try await store.completeQueued(id: message.id, notification: notification)
            if notification != nil {
                logger.info("delivery status notification sent", metadata: ["queue": "\(message.queueID)", "to": "\(message.envelope.mailFrom)",
                                                                             "rcpts": "\(reported.count)"])
            }
        } catch {
            logger.error("cannot complete queued message", metadata: ["queue": "\(message.queueID)", "error": "\(error)"])
        }
    }

    public func sendDelayNotice(_ message: QueuedMessage) async {
        defer { _ = state.withLock { $0.messagesBeingCompleted.remove(message.id) } }
        let giveUp = message.created.addingTimeInterval(config.delivery.giveUpAfter.seconds)
        let waiting = message.recipients.filter { r in r.status == .pending && (r.notify?.contains("DELAY") ?? (r.notify == nil)) }
        guard !waiting.isEmpty else { return }
        let statuses = waiting.map { r in
            DeliveryReport.RecipientStatus(address: r.address, originalRecipient: r.originalRecipient, action: .delayed,
                                           status: DeliveryReport.status(fromReply: r.lastReply ?? "", permanent: false),
                                           diagnostic: r.lastReply ?? "not yet attempted", remoteMTA: r.remoteHost, lastAttempt: r.lastAttempt,
                                           willRetryUntil: giveUp)
        }
        let notice = await report(message, statuses, .delayed, "delay notice (still trying: "
                                  + waiting.map { "<\($0.address)>" }.joined(separator: ", ") + ")")
        do {
            try await store.noteDelay(id: message.id, notification: notice)
            logger.info("delay notice sent", metadata: ["queue": "\(message.queueID)", "to": "\(message.envelope.mailFrom)"])
        } catch {
            logger.error("cannot store delay notice", metadata: ["queue": "\(message.queueID)", "error": "\(error)"])
        }
    }

    /// The notification message for the sender (see SenderNotice).
    public func report(_ message: QueuedMessage, _ statuses: [DeliveryReport.RecipientStatus], _ kind: DeliveryEvent.Kind,
                _ what: String) async -> Delivery {
        let now = clock.now
        var original = message.content ?? []
        if message.content == nil { original = (try? await store.content(of: message.messageID)) ?? [] }
        let bytes = DeliveryReport.make(reportingMTA: config.hostname, postmaster: "MAILER-DAEMON@\(config.hostname)", to: message.envelope.mailFrom,
                                        recipients: statuses, original: original, queueID: message.queueID, envelopeID: message.envelope.envelopeID,
                                        arrival: message.created, returnFull: message.envelope.dsnReturn.map { $0 == "FULL" }, now: now)
        return await SenderNotice.delivery(bytes, to: message.envelope.mailFrom, about: message.queueID, kind: kind, sent: what,
                                           received: "\(what) about \(message.queueID), from MAILER-DAEMON@\(config.hostname)",
                                           logging: config.keepsDeliveryLog, store: store, now: now)
    }
}

/// A wake-up that is remembered when nobody waits, with a timeout for the waiter.
public final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Bool, Never>?
        var generation = 0
    }
    private let state = Mutex(State())

    public func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.pending = true
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// True when signalled, false when the timeout passed.
    public func wait(timeout: TimeInterval) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let generation = state.withLock { s -> Int? in
                if s.pending { s.pending = false; return nil }
                s.generation += 1
                s.waiter = c
                return s.generation
            }
            guard let generation else { return c.resume(returning: true) }
            Task {
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                let w = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
                    guard s.generation == generation, let w = s.waiter else { return nil }
                    s.waiter = nil
                    return w
                }
                w?.resume(returning: false)
            }
        }
    }
}


extension SMTPReply {
    /// `550 5.1.1 text text` on one line, for logs, the queue and DSNs.
    public var oneLine: String {
        var s = "\(code.rawValue)"
        if let e = enhanced { s += " \(e)" }
        return s + " " + lines.joined(separator: " ")
    }
}
