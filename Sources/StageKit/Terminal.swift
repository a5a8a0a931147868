import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The controlling terminal in raw mode on the alternate screen. The original settings come
/// back on `restore()`, which also runs on SIGTERM, SIGHUP and SIGQUIT (Ctrl-C arrives as a key,
/// since signals from keys are off in raw mode, and so do Ctrl-Z, Ctrl-S and Ctrl-Q).
public final class Terminal {
    private let input: Int32, output: Int32
    private var active = false

    /// Takes over the terminal on stdin/stdout; fails when either is not a terminal.
    public init(input: Int32 = 0, output: Int32 = 1) throws {
        guard isatty(input) == 1, isatty(output) == 1 else {
            throw TerminalError("rlhf label needs a terminal; for scripted labeling use --simulate RULE")
        }
        self.input = input; self.output = output
        var t = termios()
        guard tcgetattr(input, &t) == 0 else { throw TerminalError("cannot read the terminal settings") }
        savedSettings = t
        savedInput = input; savedOutput = output
        var raw = t
        raw.c_iflag &= ~tcflag_t(BRKINT | ICRNL | INPCK | ISTRIP | IXON)
        raw.c_oflag &= ~tcflag_t(OPOST)
        raw.c_cflag |= tcflag_t(CS8)
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(input, TCSAFLUSH, &raw) == 0 else { throw TerminalError("cannot switch the terminal to raw mode") }
        active = true
        terminalActive = 1
        for sig in [SIGTERM, SIGHUP, SIGQUIT] {
            signal(sig) { s in
                restoreTerminalFromSignal()
                _exit(128 + s)
            }
        }
        signal(SIGWINCH) { _ in resized = 1 }
        write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
    }

    deinit { restore() }

    /// Leaves the alternate screen and restores the original settings (idempotent).
    public func restore() {
        guard active else { return }
        active = false
        restoreTerminalFromSignal()
    }

    /// Rows and columns.
    public var size: (width: Int, height: Int) {
        var ws = winsize()
        if ioctl(output, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 { return (Int(ws.ws_col), Int(ws.ws_row)) }
        return (80, 24)
    }

    /// Whether the window changed size since the last call.
    public func takeResize() -> Bool {
        if resized != 0 { resized = 0; return true }
        return false
    }

    /// Draws whole lines from the top of the screen.
    public func draw(_ lines: [String]) {
        var out = "\u{1B}[H"
        for (i, l) in lines.enumerated() {
            out += "\u{1B}[\(i + 1);1H" + l + "\u{1B}[0m\u{1B}[K"
        }
        out += "\u{1B}[J"
        write(out)
    }

    /// Clears the screen (after a resize).
    public func clear() { write("\u{1B}[H\u{1B}[2J") }

    func write(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            var p = buf.baseAddress!, left = buf.count
            while left > 0 {
                let n = Glibc.write(output, p, left)
                if n <= 0 { if errno == EINTR || errno == EAGAIN { continue }; return }
                p += n; left -= n
            }
        }
    }

    /// Waits up to `timeoutMs` for input and decodes the keys that arrived.
    public func readKeys(timeoutMs: Int32) -> [Key] {
        var pfd = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return [] }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(input, &buf, buf.count)
        guard n > 0 else { return n == 0 ? [.interrupt] : [] } // end of input: leave
        return KeyDecoder.decode(Array(buf[0..<n]))
    }
}

/// A terminal that cannot be used.
public struct TerminalError: Error, CustomStringConvertible {
    public let description: String
    init(_ m: String) { description = m }
}

nonisolated(unsafe) private var savedSettings = termios()
nonisolated(unsafe) private var savedInput: Int32 = 0
nonisolated(unsafe) private var savedOutput: Int32 = 1
nonisolated(unsafe) private var terminalActive: Int32 = 0
nonisolated(unsafe) private var resized: Int32 = 0

/// Async-signal-safe: only tcsetattr and write.
private func restoreTerminalFromSignal() {
    guard terminalActive != 0 else { return }
    terminalActive = 0
    let seq: StaticString = "\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"
    _ = write(savedOutput, seq.utf8Start, seq.utf8CodeUnitCount)
    _ = tcsetattr(savedInput, TCSAFLUSH, &savedSettings)
}

/// Turns terminal input bytes into keys.
public enum KeyDecoder {
    public static func decode(_ bytes: [UInt8]) -> [Key] {
        var keys: [Key] = []
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B {
                if i + 2 < bytes.count, bytes[i + 1] == UInt8(ascii: "[") || bytes[i + 1] == UInt8(ascii: "O") {
                    var j = i + 2
                    while j < bytes.count && !(0x40...0x7E).contains(bytes[j]) { j += 1 }
                    let final = j < bytes.count ? bytes[j] : 0
                    let params = String(decoding: bytes[(i + 2)..<min(j, bytes.count)], as: UTF8.self)
                    switch (final, params) {
                    case (UInt8(ascii: "A"), _): keys.append(.up)
                    case (UInt8(ascii: "B"), _): keys.append(.down)
                    case (UInt8(ascii: "H"), _): keys.append(.home)
                    case (UInt8(ascii: "F"), _): keys.append(.end)
                    case (UInt8(ascii: "~"), "5"): keys.append(.pageUp)
                    case (UInt8(ascii: "~"), "6"): keys.append(.pageDown)
                    case (UInt8(ascii: "~"), "1"), (UInt8(ascii: "~"), "7"): keys.append(.home)
                    case (UInt8(ascii: "~"), "4"), (UInt8(ascii: "~"), "8"): keys.append(.end)
                    default: keys.append(.other)
                    }
                    i = j + 1
                    continue
                }
                keys.append(.escape); i += 1; continue
            }
            switch b {
            case 0x0D, 0x0A: keys.append(.enter)
            case 0x7F, 0x08: keys.append(.backspace)
            case 0x03: keys.append(.interrupt)
            case 0x00..<0x20: keys.append(.other) // Ctrl-S, Ctrl-Q, Ctrl-Z and the rest: nothing
            default:
                // One UTF-8 character; a malformed byte is one unknown key.
                var len = 1
                if b & 0xF8 == 0xF0 { len = 4 } else if b & 0xF0 == 0xE0 { len = 3 } else if b & 0xE0 == 0xC0 { len = 2 }
                var end = min(bytes.count, i + len)
                if len > 1, bytes[(i + 1)..<end].contains(where: { $0 & 0xC0 != 0x80 }) || end - i < len { end = i + 1 }
                if let s = String(validating: bytes[i..<end], as: UTF8.self), let c = s.first { keys.append(.char(c)) } else { keys.append(.other) }
                i = end
                continue
            }
            i += 1
        }
        return keys
    }
}
