/// GPT-2's reversible map between the 256 byte values and printable Unicode scalars.
///
/// Byte-level BPE vocabularies spell every token as a string of these scalars, so a vocabulary
/// never contains raw control bytes or spaces: printable Latin-1 bytes stand for themselves and the
/// remaining 68 bytes (controls, space, DEL, NBSP, soft hyphen) take U+0100 onwards, in byte order.
public enum ByteLevel {
    /// `scalar[b]` is the code point that stands for byte `b`.
    public static let scalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if isSelfMapped(b) { table[b] = UInt32(b) } else { table[b] = next; next += 1 }
        }
        return table
    }()

    /// Inverse of `scalar`: the byte for code points below 324, or -1.
    static let byteOf: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for b in 0..<256 { table[Int(scalar[b])] = Int16(b) }
        return table
    }()

    private static func isSelfMapped(_ b: Int) -> Bool {
        (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
    }

    /// The vocabulary spelling of some bytes.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(scalar[Int(b)])!) }
        return String(s)
    }

    /// The bytes a vocabulary string stands for; nil when it has a scalar outside the map.
    public static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for u in token.unicodeScalars {
            let v = Int(u.value)
            guard v < byteOf.count, byteOf[v] >= 0 else { return nil }
            out.append(UInt8(byteOf[v]))
        }
        return out
    }
}
