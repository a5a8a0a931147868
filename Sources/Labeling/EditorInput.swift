import Foundation
import StageKit

#if canImport(Glibc)
import Glibc
#endif

/// A key press in the writing screen: the keys the ranking screen knows, plus the ones an
/// editor needs that it leaves undecoded (left and right arrows, Delete, Tab, control keys).
public enum EditKey: Equatable, Sendable {
    /// A key `KeyDecoder` decodes.
    case key(Key)
    case left, right, delete, tab
    /// A control key (Ctrl-A is 1, … Ctrl-Z is 26) that `KeyDecoder` reads as `.other`.
    case control(UInt8)
}

/// Reads and decodes the writing screen's keys from the terminal the ranking screen has put in
/// raw mode. `KeyDecoder` decodes everything it knows; the sequences and control bytes it reads
/// as `.other` are decoded here first.
public enum EditorInput {
    /// Waits up to `timeoutMs` for input on `fd` and decodes the keys that arrived; end of input
    /// reads as Ctrl-C.
    public static func read(fd: Int32 = 0, timeoutMs: Int32) -> [EditKey] {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return [] }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = Glibc.read(fd, &buf, buf.count)
        guard n > 0 else { return n == 0 ? [.key(.interrupt)] : [] }
        return decode(Array(buf[0..<n]))
    }

    /// Decodes terminal input bytes.
    public static func decode(_ bytes: [UInt8]) -> [EditKey] {
        var keys: [EditKey] = []
        var plain: [UInt8] = []
        func flush() {
            keys += KeyDecoder.decode(plain).map { .key($0) }
            plain = []
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B, i + 2 < bytes.count, bytes[i + 1] == UInt8(ascii: "[") || bytes[i + 1] == UInt8(ascii: "O") {
                var j = i + 2
                while j < bytes.count && !(0x40...0x7E).contains(bytes[j]) { j += 1 }
                let end = min(j + 1, bytes.count)
                let params = String(decoding: bytes[(i + 2)..<min(j, bytes.count)], as: UTF8.self)
                let final = j < bytes.count ? bytes[j] : 0
                // Arrows may carry modifiers ("1;5C"); they move the cursor all the same.
                let mine: EditKey? =
                    switch (final, params) {
                    case (UInt8(ascii: "C"), _): .right
                    case (UInt8(ascii: "D"), _): .left
                    case (UInt8(ascii: "~"), "3"): .delete
                    default: nil
                    }
                if let k = mine {
                    flush()
                    keys.append(k)
                } else {
                    plain += bytes[i..<end]
                }
                i = end
                continue
            }
            switch b {
            case 0x09:
                flush(); keys.append(.tab)
            case 0x01...0x1A where b != 0x03 && b != 0x08 && b != 0x0A && b != 0x0D:
                flush(); keys.append(.control(b))
            default:
                plain.append(b)
            }
            i += 1
        }
        flush()
        return keys
    }
}
