// The condition and response code of a status response (RFC 9051 §7.1): what a refused command answers, whether
// the parser or the server refuses it.

/// OK, NO, BAD, PREAUTH or BYE.
public enum IMAPCondition: String, Hashable, Sendable {
    case ok = "OK", no = "NO", bad = "BAD", preauth = "PREAUTH", bye = "BYE"
}

/// A response code: the bracketed part of a status response (RFC 9051 §7.1 and extensions).
public enum IMAPResponseCode: Hashable, Sendable {
    case alert, parse, readOnly, readWrite, tryCreate, closed, noModSeq, overQuota, tooBig, limit, cannot, nonExistent,
         unavailable, serverBug, authenticationFailed, privacyRequired, alreadyExists, inUse, contactAdmin, noPerm,
         clientBug, unknownCTE, expungeIssued, notSaved, authorizationFailed, compressionActive, notificationOverflow
    case capability([String])
    /// The flags, keywords and `\*` the client may store.
    case permanentFlags([String])
    case uidNext(UInt32)
    case uidValidity(UInt32)
    case unseen(Int)
    case highestModSeq(UInt64)
    case appendUID(validity: UInt32, uids: [UInt32])
    case copyUID(validity: UInt32, source: [UInt32], destination: [UInt32])
    case modified([UInt32])
    case badCharset([String])
    case mailboxID(String)
    /// CATENATE (RFC 4469 §6): the URL that could not be used.
    case badURL(String)
    /// NOTIFY (RFC 5465 §4): the events the server supports, when a client asked for one it does not.
    case badEvent([String])
    /// CONTEXT (RFC 5267 §4.2): the server will not keep the result of the search with this tag up to date.
    case noUpdate(String)

    /// The codes that are a bare atom, with their names.
    public static let atoms: [(IMAPResponseCode, String)] = [
        (.alert, "ALERT"), (.parse, "PARSE"), (.readOnly, "READ-ONLY"), (.readWrite, "READ-WRITE"), (.tryCreate, "TRYCREATE"),
        (.closed, "CLOSED"), (.noModSeq, "NOMODSEQ"), (.overQuota, "OVERQUOTA"), (.tooBig, "TOOBIG"), (.limit, "LIMIT"),
        (.cannot, "CANNOT"), (.nonExistent, "NONEXISTENT"), (.unavailable, "UNAVAILABLE"), (.serverBug, "SERVERBUG"),
        (.authenticationFailed, "AUTHENTICATIONFAILED"), (.privacyRequired, "PRIVACYREQUIRED"), (.alreadyExists, "ALREADYEXISTS"),
        (.inUse, "INUSE"), (.contactAdmin, "CONTACTADMIN"), (.noPerm, "NOPERM"), (.clientBug, "CLIENTBUG"),
        (.unknownCTE, "UNKNOWN-CTE"), (.expungeIssued, "EXPUNGEISSUED"), (.notSaved, "NOTSAVED"),
        (.authorizationFailed, "AUTHORIZATIONFAILED"), (.compressionActive, "COMPRESSIONACTIVE"),
        (.notificationOverflow, "NOTIFICATIONOVERFLOW"),
    ]
}
