import Foundation

/// Internationalised domain names: U-labels (`müller`) to A-labels (`xn--mller-kva`) and back.
///
/// Tern stores and compares domains in their ASCII form, lower-cased, so that `MÜLLER.example`,
/// `müller.example` and `xn--mller-kva.example` are one domain. Labels are lower-cased and NFC-normalised before
/// Punycode (RFC 3492) encoding; this is the IDNA2008 lookup form for the characters mail uses (full UTS #46
/// mapping of rare compatibility characters is not applied).
public enum IDNA {
    /// The ASCII form of a domain: each non-ASCII label as `xn--` + Punycode; ASCII labels lower-cased.
    public static func toASCII(_ domain: String) -> String? {
        if domain.hasPrefix("[") { return domain.lowercased() }
        var labels: [String] = []
        for label in domain.split(separator: ".", omittingEmptySubsequences: false) {
            if label.utf8.allSatisfy({ $0 < 0x80 }) {
                labels.append(label.lowercased())
                continue
            }
            let normalized = label.lowercased().precomposedStringWithCanonicalMapping
            guard let encoded = Punycode.encode(normalized) else { return nil }
            let ace = "xn--" + encoded
            guard ace.utf8.count <= 63 else { return nil }
            labels.append(ace)
        }
        return labels.joined(separator: ".")
    }

    /// The Unicode form, for display: `xn--` labels decoded (left unchanged when they do not decode).
    public static func toUnicode(_ domain: String) -> String {
        domain.split(separator: ".", omittingEmptySubsequences: false).map { label -> String in
            let lower = label.lowercased()
            guard lower.hasPrefix("xn--"), let decoded = Punycode.decode(String(lower.dropFirst(4))) else { return String(label) }
            return decoded
        }.joined(separator: ".")
    }
}

/// Punycode (RFC 3492) with the IDNA parameters.
public enum Punycode {
    static let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700, initialBias = 72, initialN = 128

    static func adapt(_ delta: Int, _ numPoints: Int, _ firstTime: Bool) -> Int {
        var delta = firstTime ? delta / damp : delta / 2
        delta += delta / numPoints
        var k = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    static func digit(_ d: Int) -> Character {
        Character(Unicode.Scalar(UInt8(d < 26 ? 97 + d : 22 + d)))
    }

    static func value(_ c: UInt8) -> Int? {
        switch c {
        case 48...57: return Int(c) - 22
        case 65...90: return Int(c) - 65
        case 97...122: return Int(c) - 97
        default: return nil
        }
    }

    public static func encode(_ input: String) -> String? {
        let scalars = input.unicodeScalars.map { Int($0.value) }
        var output = String(String.UnicodeScalarView(input.unicodeScalars.filter { $0.value < 0x80 }))
        let basic = output.unicodeScalars.count
        var handled = basic
        if basic > 0 { output.append("-") }
        var n = initialN, delta = 0, bias = initialBias
        while handled < scalars.count {
            guard let m = scalars.filter({ $0 >= n }).min() else { return nil }
            guard (m - n) <= (Int.max - delta) / (handled + 1) else { return nil }
            delta += (m - n) * (handled + 1)
            n = m
            for c in scalars {
                if c < n { delta += 1 }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, handled == basic)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return output
    }

    public static func decode(_ input: String) -> String? {
        let bytes = Array(input.utf8)
        var output: [Int] = []
        var start = 0
        if let dash = bytes.lastIndex(of: UInt8(ascii: "-")) {
            for b in bytes[..<dash] {
                guard b < 0x80 else { return nil }
                output.append(Int(b))
            }
            start = dash + 1
        }
        var n = initialN, i = 0, bias = initialBias
        var pos = start
        while pos < bytes.count {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard pos < bytes.count, let d = value(bytes[pos]) else { return nil }
                pos += 1
                guard d <= (Int.max - i) / w else { return nil }
                i += d * w
                let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                if d < t { break }
                guard w <= Int.max / (base - t) else { return nil }
                w *= base - t
                k += base
            }
            bias = adapt(i - oldI, output.count + 1, oldI == 0)
            n += i / (output.count + 1)
            guard n <= 0x10FFFF else { return nil }
            i %= output.count + 1
            output.insert(n, at: i)
            i += 1
        }
        var s = String.UnicodeScalarView()
        for v in output {
            guard let scalar = Unicode.Scalar(UInt32(v)) else { return nil }
            s.append(scalar)
        }
        return String(s)
    }
}
