import MailAuth
import SpamFilter

/// The checks run on a saved message (`tern check message`): each result, and what the server would have done.
public struct CheckReport: Sendable {
    public var clientAddress: String
    public var helo: String
    public var mailFrom: String
    public var iprev: IPRevOutcome?
    public var blocklisted: DNSListCheck.Listing?
    public var allowlisted: DNSListCheck.Listing?
    public var spf: SPFOutcome?
    /// SPF of the HELO name on its own (only when MAIL FROM was not null and HELO is a domain name).
    public var spfHelo: SPFOutcome?
    public var dkim: [DKIMOutcome]
    public var dmarc: DMARCOutcome?
    public var spam: SpamReport?
    public var junkScore: Double
    public var rejectScore: Double
    /// The Authentication-Results field the server would add.
    public var authenticationResults: String
    /// "accept", "junk" or the reply the message (or its sender) would get.
    public var action: String

    public init(clientAddress: String, helo: String, mailFrom: String, iprev: IPRevOutcome?, blocklisted: DNSListCheck.Listing?,
                allowlisted: DNSListCheck.Listing?, spf: SPFOutcome?, spfHelo: SPFOutcome?, dkim: [DKIMOutcome], dmarc: DMARCOutcome?,
                spam: SpamReport?, junkScore: Double, rejectScore: Double, authenticationResults: String, action: String) {
        self.clientAddress = clientAddress
        self.helo = helo
        self.mailFrom = mailFrom
        self.iprev = iprev
        self.blocklisted = blocklisted
        self.allowlisted = allowlisted
        self.spf = spf
        self.spfHelo = spfHelo
        self.dkim = dkim
        self.dmarc = dmarc
        self.spam = spam
        self.junkScore = junkScore
        self.rejectScore = rejectScore
        self.authenticationResults = authenticationResults
        self.action = action
    }
}
