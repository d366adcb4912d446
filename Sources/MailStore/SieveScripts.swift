import Foundation

/// Each account's Sieve scripts (RFC 5228) by name, at most one of them active (RFC 5804's model, which ManageSieve
/// and `tern sieve` present). The store keeps text; checking it is the Sieve module's.
public protocol SieveScriptStore: Sendable {
    /// Stores `content` under `name`, replacing a script of that name (an active one stays active). With `maxScripts`,
    /// a new name is refused (`ScriptLimitReached`) when the account has that many scripts already: counted in the
    /// same transaction, so sessions storing at once cannot pass the limit together.
    func putScript(account: AccountID, name: String, content: String, maxScripts: Int?) async throws
    /// The account's scripts in name order.
    func scripts(account: AccountID) async throws -> [SieveScriptInfo]
    /// A script's text, or nil when there is none of that name.
    func script(account: AccountID, name: String) async throws -> String?
    /// Makes `name` the active script (the others inactive); nil deactivates every script. Throws notFound for a name
    /// the account has no script of.
    func activateScript(account: AccountID, name: String?) async throws
    /// Removes a script; the active one cannot be removed (RFC 5804 §2.10: deactivate it first).
    func deleteScript(account: AccountID, name: String) async throws
    /// Renames a script (an active one stays active); the new name must be free.
    func renameScript(account: AccountID, from: String, to: String) async throws
    /// The text of the active script, if the account has one (what delivery runs).
    func activeScript(account: AccountID) async throws -> String?
    /// The active scripts of `accounts` (an account without one is absent): what delivery runs. Answered from the
    /// store's cache while it is current (a change to any script, by any process or node, empties it).
    func activeScripts(accounts: [AccountID]) async throws -> [AccountID: String]
    /// The same from the cache alone, without waiting: nil unless it holds the answer for every account.
    func cachedActiveScripts(accounts: [AccountID]) -> [AccountID: String]?
    /// Records `key` (a vacation reply's recipient and handle, a duplicate test's id) until `until`: true when it was
    /// not recorded already, or its time had passed. A vacation reply goes out only when this says true, so two nodes
    /// (or two messages at once) never both send it.
    func markSieveSeen(_ key: String, until: Date, now: Date) async throws -> Bool
    /// Forgets `key` (a reply that could not be committed after all).
    func forgetSieveSeen(_ key: String) async throws
    /// Which of `keys` are recorded and not expired at `now`.
    func sieveSeen(_ keys: [String], now: Date) async throws -> Set<String>
}

extension SieveScriptStore {
    public func activeScript(account: AccountID) async throws -> String? {
        try await activeScripts(accounts: [account])[account]
    }
}

/// The backends' caches of active scripts, read the same way.
public enum ActiveScripts {
    /// Every account's script from `cached` (nil: unknown, .some(nil): none); nil unless all are known.
    public static func collect(_ accounts: [AccountID], _ cached: (AccountID) -> String??) -> [AccountID: String]? {
        var found: [AccountID: String] = [:]
        for account in accounts {
            guard let script = cached(account) else { return nil }
            found[account] = script
        }
        return found
    }
}

public struct SieveScriptInfo: Sendable, Hashable {
    public var name: String
    public var active: Bool
    public var size: Int
    public init(name: String, active: Bool, size: Int) {
        self.name = name
        self.active = active
        self.size = size
    }
}

/// `putScript` refused a new script: the account has `maxScripts` already.
public struct ScriptLimitReached: Error, Equatable {
    public init() {}
}

public extension SieveScriptStore {
    func putScript(account: AccountID, name: String, content: String) async throws {
        try await putScript(account: account, name: name, content: content, maxScripts: nil)
    }
}
