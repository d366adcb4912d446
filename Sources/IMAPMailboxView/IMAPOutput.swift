import IMAPCodec
import IMAPResponses
import MailStore

/// Where a long response goes in parts before its command completes (the connection's channel).
public protocol IMAPResponseSink: Sendable {
    /// Sends `bytes` and empties it once it holds a chunk or more.
    func sendIfLarge(_ bytes: inout [UInt8]) async throws
}

/// What a command produced for the wire, and what the connection must do next.
public struct IMAPOutput: Sendable {
    /// Every response goes through the encoder (IMAPCodec): the session builds values, never bytes.
    public var encoder = IMAPResponseEncoder()
    public var bytes: [UInt8] {
        get { encoder.bytes }
        _modify { yield &encoder.bytes }
    }
    public var startTLS = false
    public var close = false
    /// Enter IDLE: the continuation was written; wait for DONE.
    public var idle = false
    /// The tag to answer when a SASL exchange continues (the next line is the client's response).
    public var saslContinuation: String?
    /// Start DEFLATE compression after this response (RFC 4978).
    public var compress = false
    /// Where a long response (FETCH over many messages) sends what it has so far, so that the client reads while
    /// the server still works, and memory holds one chunk rather than the whole response.
    public var stream: (any IMAPResponseSink)?

    /// Sends what is buffered once it is a chunk (`IMAPResponseSink`).
    public mutating func flushIfLarge() async throws {
        try await stream?.sendIfLarge(&bytes)
    }

    public mutating func send(_ response: IMAPResponse) { encoder.response(response) }

    /// The session's sync point while expunges are held back (QRESYNC), sent before a command's tagged OK.
    public var heldBack: (@Sendable () -> ModSeq?)?

    /// The tagged OK that completes a command.
    public mutating func ok(_ tag: String, _ text: String) {
        ok(tag, nil, text)
    }

    public mutating func ok(_ tag: String, _ code: IMAPResponseCode?, _ text: String) {
        if let since = heldBack?(), heldBackEnd != encoder.bytes.count { sendHeldBack(since) }
        encoder.response(.tagged(tag, IMAPStatus(.ok, code, text)))
    }

    /// RFC 7162 §3.2.10: MODSEQ values sent while an expunge with a lower one is held back come with a HIGHESTMODSEQ
    /// below that expunge's, which a client takes as its sync point instead of the largest MODSEQ it saw.
    public mutating func sendHeldBack(_ since: ModSeq) {
        encoder.response(.untagged(IMAPStatus(.ok, .highestModSeq(UInt64(since.rawValue)), "Expunges pending")))
        heldBackEnd = encoder.bytes.count
    }

    /// Where the last of those ended in `bytes`: the tagged OK right after it needs no second one.
    private var heldBackEnd: Int?

    public init() {}
}
