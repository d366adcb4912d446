import MailStore

/// What LIST and LSUB answer (RFC 9051 §6.3.9, RFC 3501 §6.3.8–9, RFC 5258 LIST-EXTENDED): pure, over the account's
/// mailboxes and subscriptions, so that every case can be tested without a session.
public struct MailboxListing {
    public struct Entry: Equatable {
        public var name: String
        public var attributes: [String]
        /// RFC 5258 CHILDINFO: a descendant the pattern does not reach matches the selection (`"SUBSCRIBED"`).
        public var childInfo: [String] = []
        /// The mailbox exists and may be selected (STATUS may be returned for it).
        public var selectable: Bool
    }

    public var mailboxes: [MailboxInfo]
    public var subscriptions: Set<String>
    public var delimiter: Character = "/"
    /// IMAP4rev2 names a name that does not exist `\NonExistent`; IMAP4rev1's word is `\Noselect`.
    public var rev2: Bool

    public init(mailboxes: [MailboxInfo], subscriptions: Set<String>, delimiter: Character = "/", rev2: Bool) {
        self.mailboxes = mailboxes
        self.subscriptions = subscriptions
        self.delimiter = delimiter
        self.rev2 = rev2
    }

    /// The names above `name` in the hierarchy ("a/b/c" → "a", "a/b").
    public func ancestors(_ name: String) -> [String] {
        var out: [String] = []
        var prefix = ""
        for part in name.split(separator: delimiter, omittingEmptySubsequences: false).dropLast() {
            prefix += (prefix.isEmpty && out.isEmpty ? "" : String(delimiter)) + part
            out.append(prefix)
        }
        return out
    }

    /// `LIST [(selection)] reference patterns [RETURN (...)]`.
    public func list(patterns: [String], matches: (String) -> Bool, selectSubscribed: Bool, selectSpecialUse: Bool, recursiveMatch: Bool,
              returnSubscribed: Bool, returnSpecialUse: Bool) -> [Entry] {
        let byName = Dictionary(mailboxes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let existing = Set(byName.keys)
        // Every name the hierarchy holds: the mailboxes, the names above them, and (for SUBSCRIBED) the subscriptions.
        var names = existing
        for n in existing { names.formUnion(ancestors(n)) }
        if selectSubscribed {
            names.formUnion(subscriptions)
            for n in subscriptions { names.formUnion(ancestors(n)) }
        }
        func hasChildren(_ name: String) -> Bool {
            existing.contains { $0.hasPrefix(name + String(delimiter)) }
        }
        func selected(_ name: String) -> Bool {
            if selectSubscribed && !subscriptions.contains(name) { return false }
            if selectSpecialUse && byName[name]?.specialUse == nil { return false }
            return true
        }
        var out: [Entry] = []
        for name in names.sorted(by: Self.order) where matches(name) {
            var childInfo: [String] = []
            if recursiveMatch {
                // RFC 5258 §3.5: a descendant that matches the selection but not the pattern is told of here.
                let descendantSelected = names.contains { $0.hasPrefix(name + String(delimiter)) && !matches($0) && selected($0) }
                if descendantSelected { childInfo = selectSubscribed ? ["SUBSCRIBED"] : ["SPECIAL-USE"] }
            }
            guard selected(name) || !childInfo.isEmpty else { continue }
            let box = byName[name]
            var attributes: [String] = []
            if box == nil { attributes.append(rev2 || selectSubscribed ? "\\NonExistent" : "\\Noselect") }
            attributes.append(hasChildren(name) ? "\\HasChildren" : "\\HasNoChildren")
            if returnSpecialUse, let use = box?.specialUse { attributes.append(use.rawValue) }
            if (returnSubscribed || selectSubscribed) && subscriptions.contains(name) { attributes.append("\\Subscribed") }
            out.append(Entry(name: name, attributes: attributes, childInfo: childInfo, selectable: box != nil))
        }
        return out
    }

    /// `LSUB reference pattern` (IMAP4rev1): the subscribed names the pattern matches; a name above subscribed ones that
    /// is not itself subscribed, when a `%` stops the pattern at it, comes back `\Noselect` (RFC 3501 §6.3.9).
    public func lsub(matches: (String) -> Bool) -> [Entry] {
        var out: [Entry] = []
        var names = subscriptions
        for n in subscriptions { names.formUnion(ancestors(n)) }
        for name in names.sorted(by: Self.order) where matches(name) {
            if subscriptions.contains(name) {
                out.append(Entry(name: name, attributes: [], selectable: mailboxes.contains { $0.name == name }))
            } else if subscriptions.contains(where: { $0.hasPrefix(name + String(delimiter)) && !matches($0) }) {
                out.append(Entry(name: name, attributes: ["\\Noselect"], selectable: false))
            }
        }
        return out
    }

    /// INBOX first, then by name.
    public static func order(_ a: String, _ b: String) -> Bool {
        if a == "INBOX" { return b != "INBOX" }
        if b == "INBOX" { return false }
        return a < b
    }
}
