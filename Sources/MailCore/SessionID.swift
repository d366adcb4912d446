/// Short ids for sessions and messages, as seen in logs and Received headers.
public enum SessionID {
    public static let alphabet = Array("0123456789BCDFGHJKLMNPQRSTVWXZ".utf8)

    /// 12 characters from 30 (about 59 bits) out of one 64-bit random number: one getrandom call, not twelve.
    public static func make() -> String {
        var rng = SystemRandomNumberGenerator()
        var v = rng.next()
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<12 {
            bytes[i] = alphabet[Int(v % 30)]
            v /= 30
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
