import Foundation
import IMAPCodec

// The responses an IMAP server sends (RFC 9051 §7 and the extensions Tern serves), as values; the conditions and
// response codes they carry are in IMAPCodec (the command parser refuses with them too). `IMAPResponseEncoder`
// turns them into bytes and `IMAPResponseParser` reads them back, so a reply can be built and checked without a
// session or a socket.

/// A status response's condition, optional code and human-readable text.
public struct IMAPStatus: Hashable, Sendable {
    public var condition: IMAPCondition
    public var code: IMAPResponseCode?
    public var text: String

    public init(_ condition: IMAPCondition, _ code: IMAPResponseCode? = nil, _ text: String) {
        self.condition = condition
        self.code = code
        self.text = text
    }
}

/// An address in an ENVELOPE: display name, source route (adl), mailbox and host; a group is opened by an address
/// with a nil host and the group's name as mailbox, and closed by one with all four nil (RFC 9051 §7.5.2).
public struct IMAPAddress: Hashable, Sendable {
    public var name: String?
    public var adl: String?
    public var mailbox: String?
    public var host: String?

    public init(name: String?, adl: String?, mailbox: String?, host: String?) {
        self.name = name
        self.adl = adl
        self.mailbox = mailbox
        self.host = host
    }
}

public struct IMAPEnvelope: Hashable, Sendable {
    public var date: String?
    public var subject: String?
    public var from: [IMAPAddress]?
    public var sender: [IMAPAddress]?
    public var replyTo: [IMAPAddress]?
    public var to: [IMAPAddress]?
    public var cc: [IMAPAddress]?
    public var bcc: [IMAPAddress]?
    public var inReplyTo: String?
    public var messageID: String?

    public init(date: String?, subject: String?, from: [IMAPAddress]?, sender: [IMAPAddress]?, replyTo: [IMAPAddress]?,
                to: [IMAPAddress]?, cc: [IMAPAddress]?, bcc: [IMAPAddress]?, inReplyTo: String?, messageID: String?) {
        self.date = date
        self.subject = subject
        self.from = from
        self.sender = sender
        self.replyTo = replyTo
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.inReplyTo = inReplyTo
        self.messageID = messageID
    }
}

/// A body parameter (`charset`, `name`, ...), in the order the message has them.
public struct IMAPParameter: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Content-Disposition, Content-Language and Content-Location: the extension data every part ends with in
/// BODYSTRUCTURE.
public struct IMAPBodyExtension: Hashable, Sendable {
    public var dispositionKind: String?
    public var dispositionParameters: [IMAPParameter] = []
    /// Nil: NIL; one tag is written as a string, several as a list.
    public var language: [String]?
    public var location: String?

    public init(dispositionKind: String? = nil, dispositionParameters: [IMAPParameter] = [], language: [String]? = nil,
                location: String? = nil) {
        self.dispositionKind = dispositionKind
        self.dispositionParameters = dispositionParameters
        self.language = language
        self.location = location
    }
}

/// BODY and BODYSTRUCTURE (RFC 9051 §7.5.2): the latter carries extension data.
public indirect enum IMAPBody: Hashable, Sendable {
    case single(IMAPSinglePart)
    case multipart(parts: [IMAPBody], subtype: String, extension: IMAPMultipartExtension?)
}

public struct IMAPMultipartExtension: Hashable, Sendable {
    public var parameters: [IMAPParameter]
    public var tail: IMAPBodyExtension
    public init(parameters: [IMAPParameter], tail: IMAPBodyExtension) {
        self.parameters = parameters
        self.tail = tail
    }
}

public struct IMAPSinglePart: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case basic
        case text(lines: Int)
        case message(envelope: IMAPEnvelope, body: IMAPBody, lines: Int)
    }

    /// MD5 and the common tail: present in BODYSTRUCTURE, absent in BODY.
    public struct Extension: Hashable, Sendable {
        public var md5: String?
        public var tail: IMAPBodyExtension
        public init(md5: String?, tail: IMAPBodyExtension) {
            self.md5 = md5
            self.tail = tail
        }
    }

    public var type: String
    public var subtype: String
    public var parameters: [IMAPParameter]
    public var id: String?
    public var description: String?
    public var encoding: String
    public var size: Int
    public var kind: Kind
    public var `extension`: Extension?

    public init(type: String, subtype: String, parameters: [IMAPParameter], id: String?, description: String?, encoding: String,
                size: Int, kind: Kind, extension: Extension?) {
        self.type = type
        self.subtype = subtype
        self.parameters = parameters
        self.id = id
        self.description = description
        self.encoding = encoding
        self.size = size
        self.kind = kind
        self.extension = `extension`
    }
}

/// One item of a FETCH response.
public enum IMAPFetchItem: Hashable, Sendable {
    case uid(UInt32)
    case flags([String])
    case internalDate(Date)
    case rfc822Size(Int)
    case modSeq(UInt64)
    case rfc822(ArraySlice<UInt8>)
    case rfc822Header(ArraySlice<UInt8>)
    case rfc822Text(ArraySlice<UInt8>)
    /// `BODY[section]<origin>`; the section as the client wrote it (`1.2.HEADER.FIELDS (SUBJECT)`).
    case bodySection(section: String, origin: Int?, data: ArraySlice<UInt8>?)
    /// `BINARY[part]<origin>`: sent as literal8 when the data holds NUL.
    case binary(part: [Int], origin: Int?, data: ArraySlice<UInt8>)
    case binarySize(part: [Int], size: Int)
    case envelope(IMAPEnvelope)
    case body(IMAPBody)
    case bodyStructure(IMAPBody)
    /// OBJECTID (RFC 8474): the message's id and its thread's (nil: NIL, no thread id).
    case emailID(String)
    case threadID(String?)
    /// SAVEDATE (RFC 8514): nil when unknown.
    case saveDate(Date?)
    /// PREVIEW (RFC 8970): nil when none can be made (LAZY).
    case preview(String?)
    /// An ENVELOPE, BODY or BODYSTRUCTURE encoded earlier by `IMAPResponseEncoder` and kept in a cache.
    case encoded(IMAPEncodedItem)
}

/// The bytes of a FETCH item as `IMAPResponseEncoder` wrote them: the only way to make one is to encode an item, so
/// a cache of them still sends nothing that did not go through the encoder.
public struct IMAPEncodedItem: Hashable, Sendable {
    public let bytes: [UInt8]
    public init(_ item: IMAPFetchItem) {
        var encoder = IMAPResponseEncoder()
        encoder.fetchItem(item)
        bytes = encoder.bytes
    }
}

/// A LIST or LSUB response.
public struct IMAPListItem: Hashable, Sendable {
    public var lsub: Bool
    public var attributes: [String]
    public var delimiter: Character?
    /// The name as the client sees it (modified UTF-7, or UTF-8 once enabled).
    public var mailbox: String
    /// CHILDINFO extended data (RFC 5258 §4): the selection options a child matched.
    public var childInfo: [String]
    /// OLDNAME extended data (RFC 5465 §5.4): the name a renamed mailbox had.
    public var oldName: String?

    public init(lsub: Bool = false, attributes: [String], delimiter: Character?, mailbox: String, childInfo: [String] = [],
                oldName: String? = nil) {
        self.oldName = oldName
        self.lsub = lsub
        self.attributes = attributes
        self.delimiter = delimiter
        self.mailbox = mailbox
        self.childInfo = childInfo
    }
}

/// ESEARCH (RFC 4731) results.
public struct IMAPESearch: Hashable, Sendable {
    public var tag: String?
    public var uid: Bool
    public var min: UInt32?
    public var max: UInt32?
    public var count: Int?
    /// In the order of the result (ESORT keeps the sort order).
    public var all: [UInt32]?
    public var modSeq: UInt64?
    /// PARTIAL (RFC 9394): the window asked for and the numbers in it (empty: NIL).
    public var partial: IMAPPartialResult?
    /// ADDTO and REMOVEFROM (RFC 5267 §4.3), applied by the client in this order.
    public var updates: [IMAPContextUpdate]

    public init(tag: String?, uid: Bool, min: UInt32? = nil, max: UInt32? = nil, count: Int? = nil, all: [UInt32]? = nil,
                modSeq: UInt64? = nil, partial: IMAPPartialResult? = nil, updates: [IMAPContextUpdate] = []) {
        self.partial = partial
        self.updates = updates
        self.tag = tag
        self.uid = uid
        self.min = min
        self.max = max
        self.count = count
        self.all = all
        self.modSeq = modSeq
    }
}

/// One change to a result kept up to date (CONTEXT=SEARCH/SORT): `numbers` join (ADDTO) or leave (REMOVEFROM) the
/// result at consecutive positions from `position` (1-based; 0 for a SEARCH result, which is in mailbox order).
public struct IMAPContextUpdate: Hashable, Sendable {
    public var add: Bool
    public var position: Int
    public var numbers: [UInt32]
    public init(add: Bool, position: Int, numbers: [UInt32]) {
        self.add = add
        self.position = position
        self.numbers = numbers
    }
}

public struct IMAPPartialResult: Hashable, Sendable {
    public var range: PartialRange
    public var numbers: [UInt32]
    public init(range: PartialRange, numbers: [UInt32]) {
        self.range = range
        self.numbers = numbers
    }
}

/// A thread (RFC 5256 §4): a message (nil for a placeholder parent) and its replies.
public struct IMAPThreadNode: Hashable, Sendable {
    public var message: UInt32?
    public var children: [IMAPThreadNode]
    public init(_ message: UInt32?, _ children: [IMAPThreadNode] = []) {
        self.message = message
        self.children = children
    }
}

public struct IMAPQuotaResource: Hashable, Sendable {
    public var name: String
    public var usage: Int
    public var limit: Int
    public init(_ name: String, usage: Int, limit: Int) {
        self.name = name
        self.usage = usage
        self.limit = limit
    }
}

public enum IMAPResponse: Hashable, Sendable {
    case tagged(String, IMAPStatus)
    /// `* OK ...`, `* NO ...`, `* BAD ...`, `* PREAUTH ...`, `* BYE ...`.
    case untagged(IMAPStatus)
    case continuation(String)
    case capability([String])
    case enabled([String])
    /// ID (RFC 2971): field names and values; nil fields answer `* ID NIL`.
    case id([IMAPParameter]?)
    case flags([String])
    case list(IMAPListItem)
    /// STATUS: the mailbox and its items in the order asked.
    case status(mailbox: String, [IMAPParameterValue])
    case search([UInt32], modSeq: UInt64?)
    case esearch(IMAPESearch)
    case exists(Int)
    case recent(Int)
    case expunge(Int)
    case vanished(earlier: Bool, [UInt32])
    case fetch(Int, [IMAPFetchItem])
    /// NAMESPACE with a personal namespace (prefix, delimiter) and no others.
    case namespace(personal: [IMAPParameter])
    case quotaRoot(mailbox: String, roots: [String])
    case quota(root: String, [IMAPQuotaResource])
    case sort([UInt32], modSeq: UInt64?)
    case thread([IMAPThreadNode])
}

/// A STATUS item and its value: a number, or an object id (MAILBOXID, RFC 8474).
public struct IMAPParameterValue: Hashable, Sendable {
    public var name: String
    public var value: UInt64
    public var objectID: String?
    public init(_ name: String, _ value: UInt64) {
        self.name = name
        self.value = value
    }
    public init(_ name: String, objectID: String) {
        self.name = name
        self.value = 0
        self.objectID = objectID
    }
}
