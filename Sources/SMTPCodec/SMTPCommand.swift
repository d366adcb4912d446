import MailCore

/// `reverse-path = Path / "<>"` (RFC 5321 §4.1.2)
public enum ReversePath: Hashable, Sendable, CustomStringConvertible {
    /// `<>`: the null reverse-path of bounces and other notifications.
    case null
    case mailbox(EmailAddress)

    public var address: EmailAddress? {
        if case .mailbox(let a) = self { return a }
        return nil
    }
    public var description: String {
        switch self {
        case .null: return "<>"
        case .mailbox(let a): return "<\(a)>"
        }
    }
}

/// `forward-path = Path`, plus the special `<Postmaster>` every server must accept (RFC 5321 §4.5.1).
public enum ForwardPath: Hashable, Sendable, CustomStringConvertible {
    case postmaster
    case mailbox(EmailAddress)

    public var description: String {
        switch self {
        case .postmaster: return "<Postmaster>"
        case .mailbox(let a): return "<\(a)>"
        }
    }
}

/// `BODY=` (RFC 6152 8BITMIME, RFC 3030 BINARYMIME)
public enum BodyType: String, Hashable, Sendable, Codable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
    case binaryMIME = "BINARYMIME"
}

/// `RET=` (RFC 3461 §4.3)
public enum DSNReturn: String, Hashable, Sendable, Codable {
    case full = "FULL"
    case headers = "HDRS"
}

/// Parameters of `MAIL FROM` that Tern understands.
public struct MailParameters: Hashable, Sendable, Codable {
    /// `SIZE=` (RFC 1870): the size the client declares, in octets.
    public var size: Int?
    public var body: BodyType?
    /// `SMTPUTF8` (RFC 6531): the transaction may carry UTF-8 addresses and headers.
    public var smtputf8 = false
    /// `RET=` (RFC 3461)
    public var dsnReturn: DSNReturn?
    /// `ENVID=` (RFC 3461), kept as xtext-decoded text.
    public var envelopeID: String?
    /// `AUTH=` (RFC 4954 §5), the original submitter, xtext-decoded.
    public var auth: String?

    public init() {}
}

/// `NOTIFY=` values (RFC 3461 §4.1)
public struct DSNNotify: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let success = DSNNotify(rawValue: 1)
    public static let failure = DSNNotify(rawValue: 2)
    public static let delay = DSNNotify(rawValue: 4)
    /// `NEVER` is the empty set with `never` true in `RecipientParameters`.
}

/// Parameters of `RCPT TO` that Tern understands.
public struct RecipientParameters: Hashable, Sendable, Codable {
    /// `NOTIFY=`: nil when absent; `never` when `NOTIFY=NEVER`.
    public var notify: DSNNotify?
    public var notifyNever = false
    /// `ORCPT=addr-type;xtext` (RFC 3461 §4.2), the address type and the decoded address.
    public var originalRecipient: String?
    public init() {}
}

/// One SMTP command (RFC 5321 §4.1.1 and the extensions Tern offers).
public enum SMTPCommand: Hashable, Sendable {
    /// `EHLO domain` — starts an extended session.
    case ehlo(String)
    /// `HELO domain` — starts a basic session.
    case helo(String)
    /// `MAIL FROM:<reverse-path> [params]` — starts a transaction.
    case mail(ReversePath, MailParameters)
    /// `RCPT TO:<forward-path> [params]` — adds a recipient.
    case rcpt(ForwardPath, RecipientParameters)
    /// `DATA` — the message follows, ended by `CRLF.CRLF`.
    case data
    /// `BDAT size [LAST]` — a chunk of exactly `size` octets follows (RFC 3030).
    case bdat(size: Int, last: Bool)
    /// `RSET` — aborts the transaction.
    case rset
    /// `NOOP`
    case noop
    /// `QUIT`
    case quit
    /// `STARTTLS` (RFC 3207)
    case startTLS
    /// `VRFY string`
    case vrfy(String)
    /// `EXPN string`
    case expn(String)
    /// `HELP [string]`
    case help(String?)
    /// `AUTH mechanism [initial-response]` (RFC 4954)
    case auth(mechanism: String, initialResponse: String?)

    /// The verb, for logs: never includes arguments (which may hold credentials).
    public var verb: String {
        switch self {
        case .ehlo: return "EHLO"
        case .helo: return "HELO"
        case .mail: return "MAIL"
        case .rcpt: return "RCPT"
        case .data: return "DATA"
        case .bdat: return "BDAT"
        case .rset: return "RSET"
        case .noop: return "NOOP"
        case .quit: return "QUIT"
        case .startTLS: return "STARTTLS"
        case .vrfy: return "VRFY"
        case .expn: return "EXPN"
        case .help: return "HELP"
        case .auth: return "AUTH"
        }
    }
}
