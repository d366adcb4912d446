import IMAPMailboxView
import Intake
import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailStore
import MailMessage
import NIOCore
import Synchronization

/// A literal announced with its size could not be finished (the content went, or the store failed half-way).
struct IMAPStreamBroken: Error {
    let reason: String
}

/// One IMAP session's state and command handling, independent of the network. Commands run one at a time
/// (the connection handler reads no further command until one is answered).
final class IMAPSession: IMAPSessionRules, @unchecked Sendable {
    enum State {
        case notAuthenticated
        case authenticated(AccountID, String)
        case selected(AccountID, String, SelectedMailbox)
        case logout
    }

    let server: ServerContext
    let caches: IMAPCaches
    let isLoopback: Bool
    var isTLS: Bool
    var state: State = .notAuthenticated
    var utf8 = false
    /// The client enabled IMAP4rev2 (RFC 9051 §6.3.1): some responses differ from IMAP4rev1.
    var rev2 = false
    /// UIDs recent to this session (IMAP4rev1 \Recent, RFC 3501 §2.3.2): claimed at SELECT and as new mail arrives.
    var recentUIDs = UIDRanges()

    func isRecent(_ uid: UID) -> Bool { !rev2 && recentUIDs.contains(uid.rawValue) }

    /// Claims the messages below `uidNext` no session has seen (only tells, for EXAMINE); returns how many of the
    /// view's messages are recent to this session.
    func claimRecent(_ m: SelectedMailbox, below uidNext: UID, known: UID? = nil) async throws -> Int {
        // `known`: the mailbox's first unclaimed UID as read with its state; when every message below uidNext was
        // claimed already (first_recent_uid only grows), there is nothing to ask the store.
        let first = if let known, known >= uidNext { uidNext } else {
            try await store.claimRecent(mailbox: m.id, below: uidNext, claim: !m.readOnly)
        }
        if first.rawValue < uidNext.rawValue { recentUIDs.insert(first.rawValue..<uidNext.rawValue) }
        return recentUIDs.count(in: m.messages)
    }

    /// The account this session counts against `limits.max_connections_per_user` once logged in, and whether the
    /// connection has ended (the event loop ends it while a LOGIN may still be running on another thread).
    private let accounting = Mutex<(account: AccountID?, ended: Bool)>((nil, false))
    var condstore = false
    /// NOTIFY SET in force (RFC 5465), with what the client has been told.
    var notifyState: NotifyState?
    /// Changes the connection was woken for (IDLE, NOTIFY), not yet reported.
    let wakeInbox = WakeInbox()
    /// QRESYNC enabled (RFC 7162): expunges are reported as VANISHED.
    var qresync = false
    var failedLogins = 0
    var compressing = false

    let remoteAddress: String

    init(server: ServerContext, caches: IMAPCaches, isTLS: Bool, isLoopback: Bool, remoteAddress: String) {
        self.caches = caches
        self.server = server
        self.isTLS = isTLS
        self.isLoopback = isLoopback
        self.remoteAddress = remoteAddress
    }

    var store: any MailStore { server.store }

    var loginAllowed: Bool { isTLS || isLoopback }

    var capabilities: [String] {
        var caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE",
                    "UNSELECT", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "CONDSTORE", "QRESYNC", "ESEARCH", "BINARY", "WITHIN", "STATUS=SIZE", "QUOTA", "QUOTA=RES-STORAGE", "COMPRESS=DEFLATE", "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES", "OBJECTID", "SAVEDATE", "PREVIEW", "SEARCHRES", "ESORT",
                    "PARTIAL", "CATENATE", "CONTEXT=SEARCH", "CONTEXT=SORT", "NOTIFY"]
        if case .notAuthenticated = state {
            if server.tls != nil && !isTLS { caps.append("STARTTLS") }
            if loginAllowed { caps.append("AUTH=PLAIN") } else { caps.append("LOGINDISABLED") }
        }
        return caps
    }

    var greeting: IMAPResponse {
        .untagged(IMAPStatus(.ok, .capability(capabilities), "\(server.config.hostname) Tern IMAP ready"))
    }

    var selected: SelectedMailbox? {
        if case .selected(_, _, let m) = state { return m }
        return nil
    }

    var account: AccountID? {
        switch state {
        case .authenticated(let a, _), .selected(let a, _, _): return a
        default: return nil
        }
    }

    // MARK: dispatch

    /// Set by the connection handler.
    var stream: ResponseStream?
    /// The current command's APPEND literals that went to spool files, and the token the command names them by.
    var spools: [MessageSink] = []
    var spoolToken: [UInt8] = []

    /// The spool file a message literal of the command stands for (the framer's marker), or nil for literal data.
    func spooled(_ data: [UInt8]) -> MessageSink? {
        IMAPFramer.spoolIndex(data, token: spoolToken).flatMap { spools.indices.contains($0) ? spools[$0] : nil }
    }

    func handle(_ tagged: TaggedCommand) async -> IMAPOutput {
        var out = IMAPOutput()
        out.encoder.utf8 = utf8
        out.stream = stream
        out.heldBack = { [unowned self] in
            guard qresync, case .selected(_, _, let m) = state else { return nil }
            return m.expungesHeldSince
        }
        let tag = tagged.tag
        defer {
            for sink in spools { sink.discard() }
            spools = []
        }
        do {
            try await dispatch(tagged.command, tag: tag, &out)
        } catch is SelectedMailboxGone {
        } catch let error as IMAPFailure {
            out.send(.tagged(tag, error.status))
        } catch let error as StoreError {
            out.send(.tagged(tag, IMAPStatus(.no, Self.storeErrorCode(error), "\(error)")))
        } catch let error as IMAPStreamBroken {
            // Half a literal is on the wire: no response can follow it, so the connection ends.
            server.logger.warning("IMAP response broken off", metadata: ["cmd": "\(tagged.command.name)", "error": "\(error.reason)"])
            out.close = true
        } catch let error as StoreUnavailable {
            // RFC 5530 §3: UNAVAILABLE, a temporary failure of a subsystem the server needs.
            server.logger.warning("IMAP command failed", metadata: ["cmd": "\(tagged.command.name)", "error": "\(error)"])
            out.send(.tagged(tag, IMAPStatus(.no, .unavailable, "The mail store is unavailable, try again later")))
        } catch {
            server.logger.error("IMAP command failed", metadata: ["cmd": "\(tagged.command.name)", "error": "\(error)"])
            out.send(.tagged(tag, IMAPStatus(.no, .serverBug, "Internal error")))
        }
        return out
    }

    typealias IMAPFailure = IMAPMailboxView.IMAPFailure
    /// `poll` found the selected mailbox gone; its output holds the BYE.
    struct SelectedMailboxGone: Error {}

    func requireAuth() throws -> AccountID {
        guard let a = account else { throw IMAPFailure.bad("Log in first") }
        return a
    }

    func requireSelected() throws -> SelectedMailbox {
        guard let m = selected else { throw IMAPFailure.bad("No mailbox selected") }
        return m
    }

    func dispatch(_ command: IMAPCommand, tag: String, _ out: inout IMAPOutput) async throws {
        switch command {
        case .search, .sort:
            // RFC 5267 §4.2: a tag a result is kept up to date under may not be used again for another search (its
            // ESEARCH would be taken for an update).
            if selected?.contexts.contains(where: { $0.tag == tag }) == true {
                throw IMAPFailure.bad("Tag reuse: a result is kept up to date under tag \(tag)")
            }
        default:
            break
        }
        switch command {
        case .search, .fetch, .store, .copy, .move, .sort, .thread, .expunge:
            // What these answer is what the store holds now: another session's flag changes and new messages are
            // taken in (and announced) first; its expunges wait for a command that may report them (RFC 9051 §7.5.1).
            // EXPUNGE so removes what is flagged \Deleted now, also by another session (and the store checks again;
            // UID EXPUNGE names its messages, and the store removes those of them flagged \Deleted).
            if selected != nil { try await poll(&out, expunges: false, verify: false) }
        default:
            break
        }
        switch command {
        case .capability, .logout, .noop, .check, .startTLS, .id, .enable, .login, .authenticate, .namespace, .idle, .compress:
            try await sessionCommand(command, tag: tag, &out)
        case .select, .examine, .create, .delete, .rename, .subscribe, .unsubscribe, .list, .lsub, .status, .append, .getQuotaRoot, .getQuota:
            try await mailboxCommand(command, tag: tag, &out)
        case .close, .unselect, .expunge, .uidExpunge, .search, .fetch, .store, .copy, .move, .sort, .cancelUpdate, .notify, .thread:
            try await selectedCommand(command, tag: tag, &out)
        }
    }

    /// Commands about the session itself: any state.
    private func sessionCommand(_ command: IMAPCommand, tag: String, _ out: inout IMAPOutput) async throws {
        switch command {
        case .capability:
            capability(tag: tag, &out)
        case .logout:
            logout(tag: tag, &out)
        case .noop, .check:
            if selected != nil { try await poll(&out, expunges: true) }
            out.ok(tag, "\(command.name) completed")
        case .startTLS:
            guard server.tls != nil, !isTLS else { throw IMAPFailure.bad("STARTTLS not available") }
            guard case .notAuthenticated = state else { throw IMAPFailure.bad("Already authenticated") }
            out.ok(tag, "Begin TLS negotiation now")
            out.startTLS = true
        case .id:
            out.send(.id([IMAPParameter("name", "Tern"), IMAPParameter("vendor", "Tern")]))
            out.ok(tag, "ID completed")
        case .enable(let caps):
            // RFC 5161 §3.1, RFC 9051 §6.3.1: only once logged in.
            _ = try requireAuth()
            out.send(.enabled(caps.filter(enable)))
            out.ok(tag, "ENABLE completed")
        case .login(let user, let password):
            try await login(user: user, password: password, tag: tag, &out)
        case .authenticate(let mechanism, let initial):
            guard case .notAuthenticated = state else { throw IMAPFailure.bad("Already authenticated") }
            guard mechanism == "PLAIN" else { throw IMAPFailure.no(.cannot, "Unsupported mechanism") }
            guard loginAllowed else { throw IMAPFailure.no(.privacyRequired, "Use STARTTLS first") }
            if let initial {
                try await saslPlain(initial, tag: tag, &out)
            } else {
                out.send(.continuation(""))
                out.saslContinuation = tag
            }
        case .namespace:
            _ = try requireAuth()
            out.send(.namespace(personal: [IMAPParameter("", Self.delimiter)]))
            out.ok(tag, "NAMESPACE completed")
        case .idle:
            _ = try requireAuth()
            out.send(.continuation("idling"))
            out.idle = true
        case .compress(let mechanism):
            _ = try requireAuth()
            guard mechanism == "DEFLATE" else { throw IMAPFailure.bad("Unknown compression mechanism \(mechanism)") }
            guard !compressing else { throw IMAPFailure.no(.compressionActive, "DEFLATE is already active") }
            compressing = true
            out.ok(tag, "DEFLATE active")
            out.compress = true
        default:
            throw IMAPFailure.bad("Unexpected command")
        }
    }

    /// ENABLE of one extension (RFC 5161): true when it is one Tern has, now on for this session.
    private func enable(_ capability: String) -> Bool {
        switch capability {
        case "IMAP4REV2": utf8 = true; rev2 = true
        case "UTF8=ACCEPT": utf8 = true
        case "CONDSTORE": condstore = true
        case "QRESYNC": condstore = true; qresync = true
        default: return false
        }
        return true
    }

    /// Commands on mailboxes by name: authenticated state.
    private func mailboxCommand(_ command: IMAPCommand, tag: String, _ out: inout IMAPOutput) async throws {
        switch command {
        case .select(let name, let cs, let qr), .examine(let name, let cs, let qr):
            if cs { condstore = true }
            if qr != nil && !qresync { throw IMAPFailure.bad("ENABLE QRESYNC first") }
            if case .examine = command {
                try await select(name, readOnly: true, qresyncParameters: qr, tag: tag, &out)
            } else {
                try await select(name, readOnly: false, qresyncParameters: qr, tag: tag, &out)
            }
        case .create(let name):
            try await create(name, tag: tag, &out)
        case .delete(let name):
            let a = try requireAuth()
            let target = try await store.mailboxState(account: a, name: name)?.id
            try await store.deleteMailbox(account: a, name: name)
            // The selected mailbox deleted (by whatever name it now has): no mailbox is selected any more.
            if let target, selected?.id == target { state = .authenticated(a, user) }
            try await ownTreeChange(account: a) { n, _ in n.mailboxes.removeAll { $0.name == name } }
            out.ok(tag, "DELETE completed")
        case .rename(let from, let to):
            try await rename(from, to)
            out.ok(tag, "RENAME completed")
        case .subscribe(let name):
            try await subscribe(name, true)
            out.ok(tag, "SUBSCRIBE completed")
        case .unsubscribe(let name):
            try await subscribe(name, false)
            out.ok(tag, "UNSUBSCRIBE completed")
        case .list(let ref, let patterns, let selSub, let selSpecial, let recursive, let rSub, _, let rSpecial, let rStatus):
            try await list(reference: ref, patterns: patterns, selectSubscribed: selSub, selectSpecialUse: selSpecial, recursiveMatch: recursive,
                           returnSubscribed: rSub || selSub, returnSpecialUse: true || rSpecial, status: rStatus, lsub: false, &out)
            out.ok(tag, "LIST completed")
        case .lsub(let ref, let pattern):
            try await list(reference: ref, patterns: [pattern], selectSubscribed: true, selectSpecialUse: false, returnSubscribed: false,
                           returnSpecialUse: false, status: [], lsub: true, &out)
            out.ok(tag, "LSUB completed")
        case .status(let name, let items):
            let a = try requireAuth()
            guard let box = try await store.mailboxes(account: a).first(where: { $0.name == name }) else {
                throw IMAPFailure.no(.nonExistent, "No such mailbox")
            }
            out.send(try await statusResponse(box, items))
            out.ok(tag, "STATUS completed")
        case .append(let name, let messages):
            try await append(name, messages, tag: tag, &out)
        case .getQuotaRoot(let name):
            try await quota(root: nil, mailbox: name, &out)
            out.ok(tag, "GETQUOTAROOT completed")
        case .getQuota(let root):
            try await quota(root: root, mailbox: nil, &out)
            out.ok(tag, "GETQUOTA completed")
        default:
            throw IMAPFailure.bad("Unexpected command")
        }
    }

    private func create(_ name: String, tag: String, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        let clean = name.hasSuffix(Self.delimiter) ? String(name.dropLast()) : name
        guard !clean.isEmpty, clean.uppercased() != "INBOX" else { throw IMAPFailure.no(.alreadyExists, "Mailbox exists") }
        if let why = Self.impossibleMailboxName(clean) { throw IMAPFailure.no(.cannot, "\(why)") }
        if try await store.mailboxes(account: a).contains(where: { $0.name == clean }) {
            throw IMAPFailure.no(.alreadyExists, "Mailbox exists")
        }
        let id = try await store.createMailbox(account: a, name: clean)
        try await ownTreeChange(account: a) { n, boxes in n.mailboxes += boxes.filter { $0.id == id } }
        out.ok(tag, .mailboxID(Self.mailboxObjectID(id)), "CREATE completed")
    }

    private func rename(_ from: String, _ to: String) async throws {
        let a = try requireAuth()
        if let why = Self.impossibleMailboxName(to) { throw IMAPFailure.no(.cannot, "\(why)") }
        try await store.renameMailbox(account: a, from: from, to: to)
        // The selected mailbox (or one above it) renamed: the session knows it by its new name.
        if case .selected(let account, let login, var m) = state, from != "INBOX", let name = MailboxNames.renamed(m.name, from: from, to: to) {
            m.name = name
            state = .selected(account, login, m)
        }
        try await ownTreeChange(account: a) { n, boxes in
            if from == "INBOX" {
                n.mailboxes += boxes.filter { $0.name == to }
                return
            }
            for i in n.mailboxes.indices { n.mailboxes[i].name = MailboxNames.renamed(n.mailboxes[i].name, from: from, to: to) ?? n.mailboxes[i].name }
        }
    }

    private func subscribe(_ name: String, _ subscribe: Bool) async throws {
        let a = try requireAuth()
        if subscribe, try await !store.mailboxes(account: a).contains(where: { $0.name == name }) {
            throw IMAPFailure.no(.nonExistent, "No such mailbox")
        }
        try await store.setSubscribed(account: a, name: name, subscribe)
        try await ownTreeChange(account: a) { n, _ in
            if subscribe { n.subscriptions.insert(name) } else { n.subscriptions.remove(name) }
        }
    }

    /// GETQUOTAROOT (`mailbox`) and GETQUOTA (`root`), RFC 9208: one quota root, "", over all the account's mailboxes.
    private func quota(root: String?, mailbox: String?, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        let limit = server.config.limits.quota
        if let mailbox {
            guard try await store.mailboxes(account: a).contains(where: { $0.name == mailbox }) else {
                throw IMAPFailure.no(.nonExistent, "No such mailbox")
            }
            out.send(.quotaRoot(mailbox: wireName(mailbox), roots: limit > 0 ? [""] : []))
        } else if root?.isEmpty != true || limit == 0 {
            throw IMAPFailure.no(.nonExistent, "No such quota root")
        }
        guard limit > 0 else { return }
        out.send(.quota(root: "", [IMAPQuotaResource("STORAGE", usage: Int(try await store.usage(account: a) / 1024), limit: limit / 1024)]))
    }

    /// Commands on the selected mailbox's messages.
    private func selectedCommand(_ command: IMAPCommand, tag: String, _ out: inout IMAPOutput) async throws {
        switch command {
        case .close, .unselect:
            let a = try requireAuth()
            let m = try requireSelected()
            // The mailbox is left whatever the expunge meets (the mailbox deleted meanwhile, by another session).
            state = .authenticated(a, user)
            if case .close = command, !m.readOnly {
                // Every message flagged \Deleted now (RFC 9051 §6.4.1), also by another session since this one last
                // looked: read afresh (CLOSE answers nothing untagged, so nothing is announced).
                do {
                    let now = try await server.mailboxes.snapshot(m.id, verify: true).messages
                    _ = try await store.expunge(mailbox: m.id, uids: now.filter { $0.flags.contains(.deleted) }.map(\.uid), onlyDeleted: true)
                } catch StoreError.notFound {
                }
            }
            out.ok(tag, "\(command.name) completed")
        case .expunge, .uidExpunge:
            let m = try requireSelected()
            guard !m.readOnly else { throw IMAPFailure.no(.readOnly, "Mailbox is read-only") }
            // UID EXPUNGE: every message of the set the view holds, whatever flags the view last saw (RFC 4315 §2.1). The
            // store removes those flagged \Deleted now.
            let candidates = if case .uidExpunge(let set) = command { m.resolve(set, uid: true).map(\.message.uid) }
                else { m.messages.filter { $0.flags.contains(.deleted) }.map(\.uid) }
            _ = try await store.expunge(mailbox: m.id, uids: candidates, onlyDeleted: true)
            try await poll(&out, expunges: true)
            out.ok(tag, "\(command.name) completed")
        case .search(let uid, let key, let returning, let partial, let update):
            try await search(uid: uid, key: key, returning: returning, partial: partial, update: update, tag: tag, &out)
        case .fetch(let uid, let set, let attrs, let changedSince, let vanished, let partial):
            try await fetch(uid: uid, set, attrs, changedSince: changedSince, vanished: vanished, partial: partial, tag: tag, &out)
        case .store(let uid, let set, let op, let flags, let silent, let unchangedSince):
            if unchangedSince != nil { condstore = true }   // RFC 7162 §3.1: a CONDSTORE enabling command
            try await storeFlags(uid: uid, set, op, flags, silent: silent, unchangedSince: unchangedSince, tag: tag, &out)
        case .copy(let uid, let set, let target):
            try await copy(uid: uid, set, to: target, move: false, tag: tag, &out)
        case .move(let uid, let set, let target):
            try await copy(uid: uid, set, to: target, move: true, tag: tag, &out)
        case .sort(let uid, let criteria, let key, let returning, let partial, let update):
            try await sort(uid: uid, criteria: criteria, key: key, returning: returning, partial: partial, update: update, tag: tag, &out)
        case .cancelUpdate(let tags):
            try cancelUpdate(tags, tag: tag, &out)
        case .notify(let spec):
            try await notify(spec, tag: tag, &out)
        case .thread(let uid, let algorithm, let key):
            try await thread(uid: uid, algorithm: algorithm, key: key, tag: tag, &out)
        default:
            throw IMAPFailure.bad("Unexpected command")
        }
    }

    var user: String {
        switch state {
        case .authenticated(_, let u), .selected(_, let u, _): return u
        default: return ""
        }
    }

    /// Commands answered without waiting for anything (the connection runs them on its event loop, with no task):
    /// CAPABILITY, LOGOUT, NOOP with no mailbox selected, and LOGIN with a recently verified password. Nil: run
    /// `handle` instead (the connection asks this first; `handle` does not ask again).
    func answerAtOnce(_ tagged: TaggedCommand) -> IMAPOutput? {
        var out = IMAPOutput()
        let tag = tagged.tag
        switch tagged.command {
        case .capability:
            capability(tag: tag, &out)
        case .logout:
            logout(tag: tag, &out)
        case .noop where selected == nil:
            out.ok(tag, "NOOP completed")
        case .login(let user, let password):
            guard case .notAuthenticated = state, loginAllowed,
                  let (account, address) = PasswordCheck.cached(server, remoteAddress: remoteAddress, user: user, password: password)
            else { return nil }
            loggedIn(account, address, tag: tag, &out)
        default:
            return nil
        }
        return out
    }

    func capability(tag: String, _ out: inout IMAPOutput) {
        out.send(.capability(capabilities))
        out.ok(tag, "CAPABILITY completed")
    }

    func logout(tag: String, _ out: inout IMAPOutput) {
        out.send(.untagged(IMAPStatus(.bye, nil, "\(server.config.hostname) logging out")))
        out.ok(tag, "LOGOUT completed")
        out.close = true
        state = .logout
    }

    // MARK: authentication

    func login(user: String, password: String, tag: String, _ out: inout IMAPOutput) async throws {
        guard case .notAuthenticated = state else { throw IMAPFailure.bad("Already authenticated") }
        guard loginAllowed else { throw IMAPFailure.no(.privacyRequired, "LOGIN is disabled until STARTTLS") }
        try await authenticate(user: user, password: password, tag: tag, &out)
    }

    func saslPlain(_ base64: String, tag: String, _ out: inout IMAPOutput) async throws {
        guard base64 != "*" else { throw IMAPFailure.bad("Authentication cancelled") }
        guard let data = Data(base64Encoded: base64) else { throw IMAPFailure.bad("Invalid base64") }
        // RFC 4616: [authzid] NUL authcid NUL passwd
        let parts = Array(data).split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw IMAPFailure.bad("Invalid PLAIN response") }
        let authz = String(decoding: parts[0], as: UTF8.self), user = String(decoding: parts[1], as: UTF8.self)
        guard authz.isEmpty || authz.lowercased() == user.lowercased() else { throw IMAPFailure.no(.authorizationFailed, "Cannot act as another user") }
        try await authenticate(user: user, password: String(decoding: parts[2], as: UTF8.self), tag: tag, &out)
    }

    func authenticate(user: String, password: String, tag: String, _ out: inout IMAPOutput) async throws {
        switch try await PasswordCheck.check(server, service: "IMAP", remoteAddress: remoteAddress, user: user, password: password) {
        case .blocked:
            throw IMAPFailure.no(.unavailable, "Too many failed logins from your address; try again later")
        case .failed:
            // Each failure has cost the client a second; three end the session.
            failedLogins += 1
            if failedLogins >= 3 {
                out.send(.untagged(IMAPStatus(.bye, nil, "Too many failed logins")))
                out.close = true
            }
            throw IMAPFailure.no(.authenticationFailed, "Invalid credentials")
        case .success(let account, let address):
            loggedIn(account, address, tag: tag, &out)
        }
    }

    func loggedIn(_ account: AccountID, _ address: EmailAddress, tag: String, _ out: inout IMAPOutput) {
        let limit = server.config.limits.maxConnectionsPerUser
        let sessions = server.userSessions
        let counted = accounting.withLock { s -> Bool in
            if s.account != nil { return true }
            guard !s.ended, sessions.acquire(account, limit: limit) else { return false }
            s.account = account
            return true
        }
        guard counted else {
            // RFC 5530 LIMIT: the account has as many sessions as it may.
            out.send(.untagged(IMAPStatus(.bye, .limit, "Too many connections for \(address.canonical): \(limit) (limits.max_connections_per_user)")))
            out.close = true
            return
        }
        state = .authenticated(account, address.canonical)
        out.ok(tag, .capability(capabilities), "Logged in")
    }

    // MARK: mailboxes

    /// The session ends: its account's session count goes down.
    func ended() {
        let sessions = server.userSessions
        accounting.withLock { s in
            if let a = s.account { sessions.release(a) }
            s = (nil, true)
        }
    }

    /// A mailbox name as the client sees it: modified UTF-7 (RFC 3501 §5.1.3) unless UTF-8 is enabled.
    func wireName(_ name: String) -> String {
        utf8 ? name : ModifiedUTF7.encode(name)
    }

    func select(_ name: String, readOnly: Bool, qresyncParameters: QResyncParameters?, tag: String, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        // RFC 7162 §3.2.11, RFC 9051 §7.1: tell the client where the previous mailbox's responses end and the new one's
        // begin (QRESYNC and IMAP4rev2 clients, and NOTIFY ones, to whom changes may have been pushed just before).
        if (qresync || rev2 || notifying) && selected != nil {
            out.send(.untagged(IMAPStatus(.ok, .closed, "Previous mailbox is now closed")))
        }
        // A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
        state = .authenticated(a, user)
        guard let (boxID, current) = try await store.mailboxState(account: a, name: name) else {
            throw IMAPFailure.no(.nonExistent, "No such mailbox")
        }
        let box = try await server.mailboxes.snapshot(boxID, current: current)
        let messages = box.messages
        var m = SelectedMailbox(id: boxID, name: name, readOnly: readOnly, uidValidity: box.uidValidity, messages: messages,
                                highestModSeq: box.highestModSeq)
        m.keywords = Set(messages.flatMap(\.keywords)).sorted()
        out.send(.exists(messages.count))
        // RFC 9051 removed \Recent and the RECENT response; an IMAP4rev1 client still expects RECENT (RFC 3501).
        recentUIDs = UIDRanges()
        if !rev2 { out.send(.recent(try await claimRecent(m, below: box.uidNext, known: current.firstRecent))) }
        flagsLines(&out, m.keywords)
        if let firstUnseen = messages.firstIndex(where: { !$0.flags.contains(.seen) }) {
            out.send(.untagged(IMAPStatus(.ok, .unseen(firstUnseen + 1), "First unseen")))
        }
        out.send(.untagged(IMAPStatus(.ok, .uidValidity(box.uidValidity.rawValue), "UIDs valid")))
        out.send(.untagged(IMAPStatus(.ok, .uidNext(box.uidNext.rawValue), "Predicted next UID")))
        out.send(.untagged(IMAPStatus(.ok, .highestModSeq(UInt64(box.highestModSeq.rawValue)), "Highest")))
        out.send(.untagged(IMAPStatus(.ok, .mailboxID(Self.mailboxObjectID(boxID)), "Ok")))
        // RFC 9051 §6.3.2: an IMAP4rev2 client learns the mailbox's canonical name; a rev1 client would take the
        // untagged LIST for part of its next LIST's answer.
        if rev2 { out.send(.list(IMAPListItem(attributes: [], delimiter: Character(Self.delimiter), mailbox: wireName(name)))) }
        if let q = qresyncParameters, q.uidValidity == box.uidValidity.rawValue {
            // RFC 7162 §3.2.5.2: what changed since the client's last sync.
            var vanished = try await store.expunged(mailbox: boxID, since: ModSeq(rawValue: q.modSeq)).map(\.rawValue)
            if let known = q.knownUIDs { vanished = vanished.filter { known.contains($0, largest: UInt32.max) } }
            // A message expunged after the snapshot this SELECT shows is still in it (and counted in EXISTS): it is
            // reported as VANISHED when the session next takes in changes, not as expunged earlier. (UIDs are never
            // reused, so a UID both in the snapshot and in the expunge log was expunged after the snapshot.)
            let present = Set(messages.map(\.uid.rawValue))
            vanished = vanished.filter { !present.contains($0) }
            if !vanished.isEmpty { out.send(.vanished(earlier: true, vanished)) }
            for (i, msg) in messages.enumerated() where msg.modSeq.rawValue > q.modSeq {
                out.send(.fetch(i + 1, [.uid(msg.uid.rawValue), flagsItem(msg), .modSeq(UInt64(msg.modSeq.rawValue))]))
            }
        }
        state = .selected(a, user, m)
        out.ok(tag, readOnly ? .readOnly : .readWrite, readOnly ? "EXAMINE completed" : "SELECT completed")
    }

    func list(reference: String, patterns: [String], selectSubscribed: Bool, selectSpecialUse: Bool, recursiveMatch: Bool = false,
              returnSubscribed: Bool, returnSpecialUse: Bool, status: [StatusItem], lsub: Bool, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        if patterns == [""] {
            out.send(.list(IMAPListItem(lsub: lsub, attributes: ["\\Noselect"], delimiter: Character(Self.delimiter), mailbox: "")))
            return
        }
        let boxes = try await store.mailboxes(account: a)
        let listing = MailboxListing(mailboxes: boxes, subscriptions: Set(try await store.subscriptions(account: a)), rev2: rev2)
        // INBOX matches case-insensitively (RFC 9051 §5.1).
        let matches: (String) -> Bool = { name in
            patterns.contains { p in
                Self.matches(name, reference + p) || (name == "INBOX" && Self.matches("INBOX", (reference + p).uppercased()))
            }
        }
        let entries = lsub ? listing.lsub(matches: matches)
            : listing.list(patterns: patterns, matches: matches, selectSubscribed: selectSubscribed, selectSpecialUse: selectSpecialUse,
                           recursiveMatch: recursiveMatch, returnSubscribed: returnSubscribed, returnSpecialUse: returnSpecialUse)
        for e in entries {
            out.send(.list(IMAPListItem(lsub: lsub, attributes: e.attributes, delimiter: Character(Self.delimiter), mailbox: wireName(e.name),
                                        childInfo: e.childInfo)))
            if !status.isEmpty, e.selectable, let box = boxes.first(where: { $0.name == e.name }) { out.send(try await statusResponse(box, status)) }
        }
    }

    func statusResponse(_ box: MailboxInfo, _ items: [StatusItem]) async throws -> IMAPResponse {
        let needMessages = items.contains { [.unseen, .size, .deleted].contains($0) }
        let messages = needMessages ? try await server.mailboxes.snapshot(box.id, verify: true).messages : []
        let recent = items.contains(.recent) ? try await store.unclaimedRecent(mailbox: box.id) : 0
        if items.contains(.highestModSeq) { condstore = true }   // RFC 7162 §3.1: STATUS HIGHESTMODSEQ enables CONDSTORE
        let values = Self.statusValues(box, items, messages: messages, recent: recent)
        return .status(mailbox: wireName(box.name), values)
    }

    // MARK: changes

    /// Brings the session's view up to date and reports the differences: EXPUNGE (only when allowed), EXISTS,
    /// and FETCH FLAGS for changed flags.
    ///
    /// The session then shares the mailbox's latest snapshot (`MailboxIndex`) instead of keeping its own copy. When
    /// expunges may not be reported now (during FETCH, STORE or SEARCH, RFC 9051 §7.5.1) and some are pending, nothing
    /// is reported and the view stays as it is until a command that may report them. `verify`: ask the store even
    /// when no change was announced in this process (false only for IDLE wake-ups, which a change announced).
    /// `own`: the changes are this session's (its APPEND or MOVE): NOTIFY's FETCH of new messages is not sent for them.
    /// `reportFlags` false: flag changes are taken in without FETCH (NOTIFY without FlagChange).
    func poll(_ out: inout IMAPOutput, expunges: Bool, verify: Bool = true, own: Bool = false, reportFlags: Bool = true) async throws {
        guard case .selected(let a, let u, var m) = state else { return }
        let latest: MailboxSnapshot
        do { latest = try await server.mailboxes.snapshot(m.id, verify: verify) } catch StoreError.notFound {
            // Deleted by another session: as Dovecot and Cyrus do, the connection ends (the client reconnects and
            // lists the mailboxes as they are now) rather than answer NO to every command until CLOSE.
            out.send(.untagged(IMAPStatus(.bye, nil, "Selected mailbox was deleted, have to disconnect")))
            out.close = true
            throw SelectedMailboxGone()
        }
        let old = m.messages, new = latest.messages
        if latest.uidValidity == m.uidValidity && latest.highestModSeq == m.highestModSeq && old.count == new.count {
            // Nothing changed since the view was taken; share the snapshot's storage again if the view was patched.
            m.messages = new
            state = .selected(a, u, m)
            return
        }
        let (gone, changed, previous) = ViewDelta.compare(old: old, new: new)
        if !gone.isEmpty && !expunges {
            if m.expungesHeldSince == nil { m.expungesHeldSince = m.highestModSeq }
            let (changedHeld, addedHeld) = try await holdExpunges(&out, &m, latest: latest, reportFlags: reportFlags)
            state = .selected(a, u, m)
            try await notifyNewMessages(&out, added: addedHeld, own: own)
            try await contextRefresh(&out, changed: changedHeld, added: addedHeld, own: own)
            // After every FETCH (with MODSEQ) these sent: a NOTIFY push has no tagged OK to carry it.
            if qresync && (!changedHeld.isEmpty || addedHeld > 0), let since = m.expungesHeldSince { out.sendHeldBack(since) }
            return
        }
        if !gone.isEmpty {
            m.expungesHeldSince = nil
            contextRemovals(&out, &m, gone: gone)
            if qresync {
                out.send(.vanished(earlier: false, gone.map { old[$0].uid.rawValue }))
            } else {
                // Highest first, so that each number is still valid when the client applies it.
                for index in gone.reversed() { out.send(.expunge(index + 1)) }
            }
        }
        // The messages after the ones kept are new (UIDs only grow).
        let appended = Array(new.dropFirst(old.count - gone.count))
        try await report(&out, &m, view: new, changed: changed, added: appended, latest: latest, reportFlags: reportFlags, previous: previous)
        state = .selected(a, u, m)
        try await notifyNewMessages(&out, added: appended.count, own: own)
        try await contextRefresh(&out, changed: reportFlags ? changed : [], added: appended.count, own: own)
    }

    /// Takes `view` as the session's messages and tells the client: keywords it has not heard of, the flags of the
    /// `changed` messages (indices in `view`), and EXISTS and RECENT when `added` messages came in.
    /// `reportFlags` false (NOTIFY without FlagChange): the changed messages keep what the client was last told
    /// (`previous`), and the view's HIGHESTMODSEQ stays, so that the next command that reports changes reports them.
    func report(_ out: inout IMAPOutput, _ m: inout SelectedMailbox, view: [StoredMessage], changed: [Int], added: [StoredMessage],
                latest: MailboxSnapshot, reportFlags: Bool = true, previous: [Int: StoredMessage] = [:]) async throws {
        var view = view
        if reportFlags {
            announceKeywords(&out, &m, changed.flatMap { view[$0].keywords } + added.flatMap(\.keywords))
            for index in changed {
                let c = view[index]
                out.send(.fetch(index + 1, [.uid(c.uid.rawValue), flagsItem(c)] + (condstore ? [.modSeq(UInt64(c.modSeq.rawValue))] : [])))
            }
        } else {
            announceKeywords(&out, &m, added.flatMap(\.keywords))
            for index in changed { if let p = previous[index] { view[index] = p } }
        }
        m.messages = view
        if reportFlags || changed.isEmpty { m.highestModSeq = latest.highestModSeq }
        if !added.isEmpty {
            out.send(.exists(view.count))
            if !rev2 { out.send(.recent(try await claimRecent(m, below: latest.uidNext))) }
        }
    }

    /// The view brought up to date except for expunges, which may not be reported now: an expunged message keeps its
    /// sequence number (with its last known flags) until a command that may report it; the others take their current
    /// flags and keywords (announced with FETCH), and new messages are added after them (announced with EXISTS).
    /// Returns the indices of the messages whose flags changed and the number of new ones (at the end of the view).
    func holdExpunges(_ out: inout IMAPOutput, _ m: inout SelectedMailbox, latest: MailboxSnapshot,
                      reportFlags: Bool = true) async throws -> (changed: [Int], added: Int) {
        let (merged, changed, previous, added) = ViewDelta.holding(old: m.messages, new: latest.messages)
        try await report(&out, &m, view: merged, changed: changed, added: added, latest: latest, reportFlags: reportFlags, previous: previous)
        return (reportFlags ? changed : [], added.count)
    }

    /// FLAGS and PERMANENTFLAGS: the system flags, the keywords in use, and `\*` (any new keyword may be stored).
    func flagsLines(_ out: inout IMAPOutput, _ keywords: [String]) {
        let names = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"] + keywords
        out.send(.flags(names))
        out.send(.untagged(IMAPStatus(.ok, .permanentFlags(names + ["\\*"]), "Flags permitted")))
    }

    /// Announces (FLAGS, PERMANENTFLAGS) the keywords among `candidates` this session has not yet told the client of;
    /// called before any FETCH response that may name them.
    func announceKeywords(_ out: inout IMAPOutput, _ m: inout SelectedMailbox, _ candidates: some Sequence<String>) {
        if m.learn(keywords: candidates) { flagsLines(&out, m.keywords) }
    }

    func flagsItem(_ m: StoredMessage) -> IMAPFetchItem {
        .flags((isRecent(m.uid) ? ["\\Recent"] : []) + Self.flagNames(m.flags, m.keywords))
    }

    /// RFC 9208 §4.1: refuse what would take the account over its quota.
    func checkQuota(account: AccountID, adding bytes: Int) async throws {
        let quota = server.config.limits.quota
        guard quota > 0 else { return }
        if try await store.usage(account: account) + Int64(bytes) > Int64(quota) {
            throw IMAPFailure.no(.overQuota, "Quota exceeded")
        }
    }

    // MARK: messages

    func append(_ name: String, _ messages: [AppendMessage], tag: String, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        guard let box = try await store.mailboxes(account: a).first(where: { $0.name == name }) else {
            throw IMAPFailure.no(.tryCreate, "No such mailbox")
        }
        var messages = messages
        for i in messages.indices {
            guard let parts = messages[i].catenate else { continue }
            messages[i].data = try await catenate(parts, account: a)
            messages[i].catenate = nil
        }
        // A literal above ContentPieces.streamAbove arrived in a spool file (the data names it).
        let sinks = messages.map { spooled($0.data) }
        func size(_ i: Int) -> Int { sinks[i]?.size ?? messages[i].data.count }
        try await checkQuota(account: a, adding: messages.indices.reduce(0) { $0 + size($1) })
        // Every message is checked before any is written (MULTIAPPEND: all or none).
        var checked: [(flags: MessageFlags, keywords: [String], date: Date)] = []
        for (i, m) in messages.enumerated() {
            guard size(i) <= server.config.limits.maxMessageSize else { throw IMAPFailure.no(.tooBig, "Message too large") }
            let (flags, keywords) = try Self.parseFlags(m.flags)
            var date = server.clock.now
            if let d = m.internalDate {
                guard let parsed = IMAPDateTime.parse(d) else { throw IMAPFailure.bad("Invalid date-time \(d)") }
                date = parsed
            }
            checked.append((flags, keywords, date))
        }
        var deliveries: [Delivery] = []
        for (i, (m, (flags, keywords, date))) in zip(messages, checked).enumerated() {
            let content: MessageContent
            if let sink = sinks[i] {
                content = try sink.finish()   // fsync'd and moved into the blob store, off the event loop
            } else if m.data.count > server.inlineLimit {
                let key = BlobStore.newKey()
                try server.blobs.write(m.data, key: key)
                content = .blob(key: key, size: m.data.count)
            } else {
                content = .inline(m.data)
            }
            deliveries.append(Delivery(content: content, envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                       targets: [DeliveryTarget(account: a, mailbox: box.name)], internalDate: date, flags: flags, keywords: keywords))
        }
        // RFC 3502 §6.3.11: MULTIAPPEND appends all the messages or none.
        let receipts: [DeliveryReceipt]
        do {
            receipts = try await store.deliverAll(deliveries)
        } catch {
            for d in deliveries { if case .blob(let key, _) = d.content { server.blobs.remove(key) } }
            throw error
        }
        if selected?.id == box.id { try await poll(&out, expunges: false, own: true) }
        let uids = receipts.compactMap { $0.placements.first?.uid.rawValue }
        out.ok(tag, .appendUID(validity: box.uidValidity.rawValue, uids: uids), "APPEND completed")
    }

    /// The message a CATENATE APPEND builds (RFC 4469): its text parts and the messages or parts its URLs name, which
    /// must be in this user's own mailboxes on this server. A URL that cannot be used ends the APPEND with
    /// NO [BADURL url].
    func catenate(_ parts: [CatenatePart], account a: AccountID) async throws -> [UInt8] {
        var data: [UInt8] = []
        let limit = server.config.limits.maxMessageSize
        for part in parts {
            switch part {
            case .text(let text):
                if let sink = spooled(text) {
                    // CATENATE puts the message together in memory (it is bounded by the message size limit).
                    try sink.forEachChunk(from: 0) { data.append(contentsOf: $0) }
                } else {
                    data += text
                }
            case .url(let text):
                func bad(_ why: String) -> IMAPFailure { IMAPFailure.no(.badURL(text), why) }
                guard let url = IMAPURL.parse(text) else { throw bad("Not an IMAP URL of a message") }
                if let why = Self.foreign(url, hostname: server.config.hostname, user: user) { throw bad(why) }
                let name = utf8 ? url.mailbox : (ModifiedUTF7.decode(url.mailbox) ?? url.mailbox)
                guard let box = try await store.mailboxes(account: a).first(where: { $0.name == name }) else { throw bad("No such mailbox") }
                if let validity = url.uidValidity, validity != box.uidValidity.rawValue { throw bad("UIDVALIDITY has changed") }
                let messages = selected?.id == box.id ? selected!.messages : try await store.messages(mailbox: box.id)
                guard let message = messages.first(where: { $0.uid.rawValue == url.uid }) else { throw bad("No such message") }
                guard let piece = FetchSource.urlPiece(try await store.content(of: message.messageID), url) else { throw bad("No such part") }
                data += piece
            }
            guard data.count <= limit else { throw IMAPFailure.no(.tooBig, "Message too large") }
        }
        return data
    }

    func storeFlags(uid: Bool, _ set: SequenceSet, _ op: StoreOperation, _ names: [String], silent: Bool, unchangedSince: Int64?,
                    tag: String, _ out: inout IMAPOutput) async throws {
        let m = try requireSelected()
        guard !m.readOnly else { throw IMAPFailure.no(.readOnly, "Mailbox is read-only") }
        let (flags, keywords) = try Self.parseFlags(names)
        let targets = m.resolve(set, uid: uid)
        let operation: FlagOperation = op == .add ? .add : (op == .remove ? .remove : .replace)
        let (changed, failed) = try await store.storeFlags(mailbox: m.id, uids: targets.map(\.message.uid), operation: operation,
                                                             flags: flags, keywords: keywords,
                                                             unchangedSince: unchangedSince.map { ModSeq(rawValue: $0) })
        guard case .selected(let a, let u, var current) = state else { return }
        announceKeywords(&out, &current, changed.flatMap(\.keywords))
        for c in changed {
            guard let seq = current.sequence(of: c.uid) else { continue }
            current.messages[seq - 1] = c
            if !silent || unchangedSince != nil {
                var items = [flagsItem(c)]
                if uid { items.insert(.uid(c.uid.rawValue), at: 0) }
                if condstore || unchangedSince != nil { items.append(.modSeq(UInt64(c.modSeq.rawValue))) }
                out.send(.fetch(seq, items))
            }
        }
        state = .selected(a, u, current)
        // The MODSEQs above are the store's, newer than the view: an expunge between the two is held back now, so
        // that the tagged OK says the sync point below it (QRESYNC).
        if qresync { try await poll(&out, expunges: false) }
        try await contextRefresh(&out, changed: changed.compactMap { current.sequence(of: $0.uid).map { $0 - 1 } }, added: 0, own: true)
        if failed.isEmpty {
            out.ok(tag, "STORE completed")
        } else {
            let ids = failed.compactMap { uid ? $0.rawValue : current.sequence(of: $0).map(UInt32.init) }
            out.ok(tag, .modified(ids), "Conditional STORE failed for some messages")
        }
    }

    func copy(uid: Bool, _ set: SequenceSet, to target: String, move: Bool, tag: String, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        let m = try requireSelected()
        if move && m.readOnly { throw IMAPFailure.no(.readOnly, "Mailbox is read-only") }
        guard let targetID = try await store.mailboxID(account: a, name: target) else {
            throw IMAPFailure.no(.tryCreate, "No such mailbox")
        }
        let chosen = m.resolve(set, uid: uid)
        if !move { try await checkQuota(account: a, adding: chosen.reduce(0) { $0 + $1.message.size }) }
        let (pairs, validity): ([(UID, UID)], UIDValidity)
        do {
            (pairs, validity) = try await store.copy(from: m.id, uids: chosen.map(\.message.uid), to: targetID, move: move, all: true)
        } catch is MessagesExpunged {
            // As Dovecot: nothing copied, the expunges reported, and the client told why (RFC 5530 EXPUNGEISSUED).
            try await poll(&out, expunges: true)
            throw IMAPFailure.no(.expungeIssued, "Some of the requested messages no longer exist")
        }
        // Moving mail into or out of Junk teaches the spam filter (in the background: the reply does not wait).
        let boxes = try await store.mailboxes(account: a)
        if let spam = SpamTraining.lesson(source: boxes.first { $0.id == m.id }?.specialUse, target: boxes.first { $0.id == targetID }?.specialUse) {
            let store = self.store, logger = server.logger, ids = chosen.map(\.message.messageID)
            Task { await SpamTraining.train(store: store, account: a, messages: ids, spam: spam, logger: logger) }
        }
        let code: IMAPResponseCode? = pairs.isEmpty ? nil
            : .copyUID(validity: validity.rawValue, source: pairs.map(\.0.rawValue), destination: pairs.map(\.1.rawValue))
        if move {
            if let code { out.send(.untagged(IMAPStatus(.ok, code, "Moved"))) }
            try await poll(&out, expunges: true)
            out.ok(tag, "MOVE completed")
        } else {
            out.ok(tag, code, "COPY completed")
        }
    }
}
