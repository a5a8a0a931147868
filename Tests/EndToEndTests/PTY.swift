import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program on a pseudo-terminal, as a person at a terminal would, so that full-screen
/// commands can be driven key by key in tests.
final class PTYProcess {
    let master: Int32
    private(set) var pid: pid_t = 0
    private(set) var output: [UInt8] = []
    private var mark = 0

    init(_ executable: URL, _ args: [String], columns: UInt16 = 80, rows: UInt16 = 24) throws {
        #if os(Linux)
        // Linux's pty multiplexer: unlock the pair (TIOCSPTLCK) and ask for its number (TIOCGPTN).
        // (posix_openpt and friends are not visible to Swift's Glibc module.)
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0, number: UInt32 = 0
        guard master >= 0, ioctl(master, UInt(0x4004_5431), &unlock) == 0, ioctl(master, UInt(0x8004_5430), &number) == 0 else {
            throw NSError(domain: "pty", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot open a pseudo-terminal"])
        }
        _ = fcntl(master, F_SETFD, FD_CLOEXEC)
        var ws = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &ws)
        let slave = "/dev/pts/\(number)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        posix_spawnattr_setflags(&attr, 0x80) // POSIX_SPAWN_SETSID: a new session, so the pty becomes its terminal
        let argv = ([executable.path] + args).map { strdup($0) } + [nil]
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "xterm-256color"
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let rc = posix_spawn(&pid, executable.path, &actions, &attr, argv, envp)
        argv.forEach { free($0) }; envp.forEach { free($0) }
        posix_spawn_file_actions_destroy(&actions); posix_spawnattr_destroy(&attr)
        guard rc == 0 else { throw NSError(domain: "pty", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "posix_spawn failed"]) }
        #else
        // The pseudo-terminal is opened through Linux's /dev/ptmx ioctls; elsewhere these tests skip.
        throw XCTSkip("the terminal tests drive a Linux pseudo-terminal (/dev/ptmx)")
        #endif
    }

    deinit { close(master) }

    /// Types `s`.
    func send(_ s: String) {
        var bytes = Array(s.utf8)
        _ = write(master, &bytes, bytes.count)
    }

    /// Reads what arrives for up to `seconds`.
    private func pump(_ seconds: Double) {
        var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, Int32(seconds * 1000)) > 0 {
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = read(master, &buf, buf.count)
            if n > 0 { output += buf[0..<n] }
        }
    }

    /// Waits until `needle` appears in the output after the last mark; true when it did.
    @discardableResult
    func waitFor(_ needle: String, timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if String(decoding: output[mark...], as: UTF8.self).contains(needle) { return true }
            pump(0.05)
        }
        return false
    }

    /// Forgets the output so far for `waitFor`.
    func markOutput() { mark = output.count }

    var text: String { String(decoding: output, as: UTF8.self) }

    /// Waits for the process to end; returns its exit status (128+signal when killed).
    func wait(timeout: Double = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < deadline {
            pump(0.02)
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                if status & 0x7F == 0 { return (status >> 8) & 0xFF }
                return 128 + (status & 0x7F)
            }
        }
        return nil
    }

    func kill(_ signal: Int32) {
        #if canImport(Glibc)
        _ = Glibc.kill(pid, signal)
        #else
        _ = Darwin.kill(pid, signal)
        #endif
    }

    /// Changes the window size; the kernel sends SIGWINCH to the program.
    func resize(columns: UInt16, rows: UInt16) {
        var ws = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &ws)
    }
}
