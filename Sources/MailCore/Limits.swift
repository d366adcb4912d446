/// Protocol limits, each with its source. Configurable limits live in TernConfig; these are fixed by the RFCs.
public enum Limits {
    /// RFC 5321 §4.5.3.1.1: the maximum total length of a user name or other local part is 64 octets.
    public static let maxLocalPartLength = 64
    /// RFC 5321 §4.5.3.1.2: the maximum total length of a domain name or number is 255 octets.
    public static let maxDomainLength = 255
    /// RFC 5321 §4.5.3.1.3: the maximum total length of a reverse-path or forward-path is 256 octets.
    public static let maxPathLength = 256
    /// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF; RFC 1870 and later
    /// extensions add parameters, so Tern allows the 512 plus room for ESMTP parameters (as Postfix does).
    public static let maxCommandLineLength = 2048
    /// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
    public static let maxTextLineLength = 1000
    /// RFC 5321 §4.5.3.1.8: at least 100 recipients must be buffered; Tern's default cap per message.
    public static let defaultMaxRecipients = 100
}
