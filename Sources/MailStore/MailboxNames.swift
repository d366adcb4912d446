/// The rules every mailbox name follows, whoever makes the mailbox: an IMAP client (CREATE, RENAME) or a Sieve script
/// (`fileinto :create`, whose name may come from the message itself).
public enum MailboxNames {
    /// The hierarchy delimiter.
    public static let delimiter = "/"
    /// Longest name, in octets of UTF-8 (Dovecot's limit is of the same order).
    public static let maxLength = 1000

    /// The name `name` has after RENAME `from` to `to` (the mailbox itself or one below it); nil when the rename does
    /// not touch it.
    public static func renamed(_ name: String, from: String, to: String) -> String? {
        guard name == from || name.hasPrefix(from + delimiter) else { return nil }
        return to + name.dropFirst(from.count)
    }

    /// Why `name` cannot be a mailbox's name; nil when it can.
    public static func problem(_ name: String) -> String? {
        if name.utf8.count > maxLength { return "Mailbox name longer than \(maxLength) octets" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "Control characters in a mailbox name" }
        if name.contains("*") || name.contains("%") { return "* and % are LIST wildcards, not mailbox name characters here" }
        if name.split(separator: Character(delimiter), omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            return "Empty level in mailbox name (\(delimiter) at the start or twice in a row)"
        }
        return nil
    }
}
