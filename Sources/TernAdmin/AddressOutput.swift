import Deliverability
import MailDNS
import Foundation

/// What `tern check address --json` prints for one address.
public struct AddressJSON: Encodable {
    public var input: String
    public var valid: Bool
    public var normalized: String?
    public var ascii: String?
    public var smtputf8: Bool
    public var problem: String?
    public var kind: String?
    public var notes: [String]
    public var domain: String?

    public init(_ v: AddressVerdict, _ route: MailRoute?) {
        input = v.input
        valid = v.isValid
        normalized = v.normalized
        ascii = v.ascii
        smtputf8 = v.smtputf8
        problem = v.problem
        kind = v.problemKind
        notes = v.notes
        domain = v.asciiDomain.flatMap { d in route?.summary(for: d) }
    }
}

/// A 128-bit hash of a duplicate key: a million distinct addresses cost 16 MB (plus the set's overhead), not their text.
public struct AddressDigest: Hashable {
    public var high: UInt64, low: UInt64
    public init(_ key: String) {
        // FNV-1a twice with different offsets is enough against accidental collisions at this size (2^-64 per pair).
        var h1: UInt64 = 0xcbf2_9ce4_8422_2325, h2: UInt64 = 0x8422_2325_cbf2_9ce4
        for b in key.utf8 {
            h1 = (h1 ^ UInt64(b)) &* 0x100_0000_01b3
            h2 = (h2 ^ UInt64(b)) &* 0x0000_0100_0000_01b3 &+ 0x9e37_79b9_7f4a_7c15
        }
        high = h1
        low = h2
    }
}

/// RFC 4180 output, buffered. (CSV.swift's writer writes one byte per stream call, too slow for a million rows.)
public final class CSVOut {
    let handle: FileHandle
    var buffer: [UInt8] = []

    public init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw CSVOutError(path: path)
        }
        handle = h
        buffer.reserveCapacity(1 << 16)
    }

    public func write(_ fields: [String]) throws {
        for (i, f) in fields.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: ",")) }
            if f.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }) {
                buffer.append(UInt8(ascii: "\""))
                for b in f.utf8 {
                    if b == UInt8(ascii: "\"") { buffer.append(b) }
                    buffer.append(b)
                }
                buffer.append(UInt8(ascii: "\""))
            } else {
                buffer.append(contentsOf: f.utf8)
            }
        }
        buffer.append(10)
        if buffer.count >= 1 << 16 { try drain() }
    }

    public func drain() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        try drain()
        try handle.synchronize()
        try handle.close()
    }
}

public struct CSVOutError: Error, CustomStringConvertible {
    public var path: String
    public var description: String { "cannot write \(path)" }
}
