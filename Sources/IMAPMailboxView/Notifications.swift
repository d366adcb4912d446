import IMAPCodec
import MailStore
import Synchronization

/// Wakes IMAP sessions that wait for changes: in IDLE (their selected mailbox) and with NOTIFY (RFC 5465: the mailboxes
/// it watches, and their account's mailbox list). Each registration says what it is interested in, so a change wakes
/// only the sessions it concerns.
public final class IMAPWakeups: Sendable {
    public init() {}
    public struct Interest: Sendable, Equatable {
        public init(account: AccountID, mailboxes: Set<MailboxID>, tree: Bool) {
            self.account = account
            self.mailboxes = mailboxes
            self.tree = tree
        }
        public var account: AccountID
        public var mailboxes: Set<MailboxID>
        /// Mailboxes created, deleted or renamed, or subscriptions changed, in the account.
        public var tree: Bool
    }

    public enum Event: Sendable { case mailbox(MailboxID), tree }

    private let waiters = Mutex<[ObjectIdentifier: (Interest, @Sendable (Event) -> Void)]>([:])

    public func register(_ id: ObjectIdentifier, _ interest: Interest, wake: @escaping @Sendable (Event) -> Void) {
        waiters.withLock { $0[id] = (interest, wake) }
    }

    public func unregister(_ id: ObjectIdentifier) {
        _ = waiters.withLock { $0.removeValue(forKey: id) }
    }

    public func changed(_ mailbox: MailboxID) {
        let wakes = waiters.withLock { $0.values.filter { $0.0.mailboxes.contains(mailbox) }.map(\.1) }
        for w in wakes { w(.mailbox(mailbox)) }
    }

    public func treeChanged(_ account: AccountID) {
        let wakes = waiters.withLock { $0.values.filter { $0.0.tree && $0.0.account == account }.map(\.1) }
        for w in wakes { w(.tree) }
    }
}

/// The changes a session was woken for and has not yet looked at (filled on any thread, drained by the session).
public final class WakeInbox: Sendable {
    private let pending = Mutex<(mailboxes: Set<MailboxID>, tree: Bool)>(([], false))

    public init() {}

    public func record(_ event: IMAPWakeups.Event) {
        pending.withLock { p in
            switch event {
            case .mailbox(let id): p.mailboxes.insert(id)
            case .tree: p.tree = true
            }
        }
    }

    public func drain() -> (mailboxes: Set<MailboxID>, tree: Bool) {
        pending.withLock { p in
            defer { p = ([], false) }
            return p
        }
    }
}

/// What NOTIFY SET asked for (RFC 5465), with what the client has been told so far.
public struct NotifyState {
    public let groups: [NotifyGroup]
    /// The events of the `selected` or `selected-delayed` group (empty without one: then nothing is sent about the
    /// selected mailbox between commands), its FETCH items for new messages, and whether its expunges wait for a
    /// command that may report them (`selected-delayed`).
    public let selectedEvents: NotifyEvents
    public let selectedFetch: [FetchAttribute]
    public let delayed: Bool
    /// The account's mailboxes and subscriptions as the client last heard of them (for MailboxName and
    /// SubscriptionChange, and to know which mailboxes the filters name).
    public var mailboxes: [MailboxInfo] = []
    public var subscriptions: Set<String> = []
    /// Message events watched per mailbox (the selected one aside), from every group that names it.
    public var watched: [MailboxID: NotifyEvents] = [:]
    /// The STATUS values the client last heard for each watched mailbox.
    public var lastStatus: [MailboxID: MailboxInfo] = [:]

    public init(_ spec: NotifySet) {
        groups = spec.groups.filter { !$0.filter.isSelected }
        let selected = spec.groups.first { $0.filter.isSelected }
        selectedEvents = selected?.events ?? []
        selectedFetch = selected?.fetch ?? []
        delayed = selected?.filter == .selectedDelayed
    }

    /// The events the groups (other than `selected`) ask for about the mailbox `name`.
    public func events(for name: String, subscribed: Set<String>) -> NotifyEvents {
        var out: NotifyEvents = []
        for g in groups {
            let covered: Bool
            switch g.filter {
            case .selected, .selectedDelayed: covered = false
            // One personal namespace, and every mailbox in it can be delivered to: inboxes is personal (RFC 5465 §6).
            case .personal, .inboxes: covered = true
            case .subscribed: covered = subscribed.contains(name)
            case .subtree(let roots): covered = roots.contains { Self.same(name, $0) || name.hasPrefix($0 + "/") }
            case .mailboxes(let names): covered = names.contains { Self.same(name, $0) }
            }
            if covered { out.formUnion(g.events) }
        }
        return out
    }

    /// INBOX is named in any case (RFC 9051 §5.1); other names exactly.
    public static func same(_ a: String, _ b: String) -> Bool { a == b || (a.uppercased() == "INBOX" && b.uppercased() == "INBOX") }

    /// Works out `watched` from the mailboxes and subscriptions as they are now.
    public mutating func resolve() {
        watched = [:]
        for box in mailboxes {
            let e = events(for: box.name, subscribed: subscriptions).intersection(.message)
            if !e.isEmpty { watched[box.id] = e }
        }
        lastStatus = lastStatus.filter { watched[$0.key] != nil }
    }

    /// Whether any group reports on mailboxes other than the selected one (then mailbox list changes matter too: a
    /// mailbox created later may fall under a filter).
    public var watchesOthers: Bool { groups.contains { !$0.events.isEmpty } }
}
