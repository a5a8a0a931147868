import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the reward program's answer was refused: one line naming the problem.
public struct RewardProgramError: Error, CustomStringConvertible {
    public let description: String
}

/// A user's reward program (`--reward-cmd`): run through `/bin/sh -c` once per iteration, fed
/// one JSON object per completion on its standard input, and read for one `{"reward": x}` line
/// per completion on its standard output, in the same order.
///
/// It runs in a process group of its own, so that stopping it stops whatever it started. A
/// program that exits non-zero, is killed, writes a line that is not `{"reward": <finite
/// number>}`, answers too few or too many lines, or runs past the timeout is stopped (the whole
/// group, with SIGKILL) and `run` throws one line saying so, with the last line the program wrote
/// on its standard error. Its standard error is read as it comes, so a talkative program never
/// blocks, and handed to `stderrSink`.
public enum RewardProgram {
    /// The most a program may write on its standard output for one iteration.
    static let outputLimit = 64 << 20

    /// The rewards `command` gives the `inputs` (one JSON object each), within `timeout` seconds.
    public static func run(
        _ command: String, inputs: [String], timeout: Double, stderrSink: ((String) -> Void)? = nil
    ) throws -> [Double] {
        let started = Date()
        let name = command.count > 60 ? String(command.prefix(57)) + "..." : command
        func fail(_ what: String, stderr: Data = Data()) -> RewardProgramError {
            let last = String(decoding: stderr, as: UTF8.self).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty }
            var line = "the reward program (\(name)) \(what)"
            if let last { line += "; its last words on stderr: \(last.count > 200 ? String(last.prefix(197)) + "..." : last)" }
            return RewardProgramError(description: line.map { $0.isNewline || $0 == "\t" ? " " : String($0) }.joined())
        }
        let input = Data(inputs.map { $0 + "\n" }.joined().utf8)
        let child = try Child(command)
        defer { child.finish() }

        var stdout = Data(), stderrTail = Data()
        var written = 0
        var inputOpen = true, outOpen = true, errOpen = true
        var lines = 0
        let deadline = started.addingTimeInterval(timeout)
        func remainingMilliseconds() -> Int32 { Int32(max(0, min(Double(Int32.max), deadline.timeIntervalSinceNow * 1000).rounded(.up))) }
        if input.isEmpty { child.closeInput(); inputOpen = false }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while outOpen || errOpen {
            var fds: [pollfd] = []
            if inputOpen { fds.append(pollfd(fd: child.stdin, events: Int16(POLLOUT), revents: 0)) }
            if outOpen { fds.append(pollfd(fd: child.stdout, events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: child.stderr, events: Int16(POLLIN), revents: 0)) }
            let wait = remainingMilliseconds()
            if wait == 0 { throw fail(String(format: "did not finish within %g s (--reward-timeout)", timeout), stderr: stderrTail) }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                throw fail("could not be read (poll: \(String(cString: strerror(errno))))")
            }
            for p in fds where p.revents != 0 {
                if p.fd == child.stdin {
                    let n = input.withUnsafeBytes { write(child.stdin, $0.baseAddress! + written, input.count - written) }
                    if n > 0 { written += n }
                    // A program that stops reading (EPIPE) is judged by what it answers.
                    if (n < 0 && errno != EAGAIN && errno != EINTR) || written == input.count || p.revents & Int16(POLLERR | POLLHUP) != 0 {
                        child.closeInput(); inputOpen = false
                    }
                    continue
                }
                let n = read(p.fd, &buffer, buffer.count)
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                if n <= 0 {
                    if p.fd == child.stdout { outOpen = false } else { errOpen = false }
                    continue
                }
                let chunk = Data(buffer[0..<n])
                if p.fd == child.stdout {
                    stdout.append(chunk)
                    lines += chunk.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                    if lines > inputs.count {
                        throw fail("answered more lines than the \(inputs.count) completions it was given", stderr: stderrTail)
                    }
                    if stdout.count > outputLimit { throw fail("wrote more than \(outputLimit >> 20) MiB", stderr: stderrTail) }
                } else {
                    stderrSink?(String(decoding: chunk, as: UTF8.self))
                    stderrTail.append(chunk)
                    if stderrTail.count > 8192 { stderrTail = stderrTail.suffix(4096) }
                }
            }
        }
        // Both outputs are closed: wait for the exit, still within the deadline.
        var status: Int32 = 0
        while true {
            let r = waitpid(child.pid, &status, WNOHANG)
            if r == child.pid { child.reaped = true; break }
            if r < 0 && errno != EINTR { throw fail("could not be waited for (\(String(cString: strerror(errno))))") }
            if remainingMilliseconds() == 0 {
                throw fail(String(format: "did not finish within %g s (--reward-timeout)", timeout), stderr: stderrTail)
            }
            usleep(1000)
        }
        let signal = status & 0x7f, code = (status >> 8) & 0xff
        if signal != 0 { throw fail("was killed by signal \(signal)", stderr: stderrTail) }
        if code != 0 { throw fail("exited with status \(code)", stderr: stderrTail) }

        var text = String(decoding: stdout, as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        let answers = text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard answers.count == inputs.count else {
            throw fail("answered \(answers.count) line\(answers.count == 1 ? "" : "s") for \(inputs.count) completions", stderr: stderrTail)
        }
        return try answers.enumerated().map { i, line in
            guard let x = reward(line) else {
                let shown = line.count > 80 ? String(line.prefix(77)) + "..." : line
                throw fail("wrote line \(i + 1) '\(shown)', which is not {\"reward\": <finite number>}", stderr: stderrTail)
            }
            return x
        }
    }

    /// The number of a `{"reward": x}` line, when x is a finite number (not a boolean or a string).
    static func reward(_ line: String) -> Double? {
        struct Answer: Decodable { var reward: Double }
        guard let x = try? JSONDecoder().decode(Answer.self, from: Data(line.utf8)).reward, x.isFinite else { return nil }
        return x
    }

    /// The JSON line a completion is sent as.
    public static func inputLine(prompt: String, completion: String, promptId: Int64) -> String {
        let object: [String: Any] = ["prompt": prompt, "completion": completion, "prompt_id": promptId]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// `/bin/sh -c command` in a process group of its own, with pipes on its three standard streams
/// (the parent's ends non-blocking and closed on exec). SIGPIPE is blocked in the calling thread
/// while it lives, so that writing to a program that stopped reading fails with EPIPE instead of
/// killing this process.
private final class Child {
    let pid: pid_t
    let stdin: Int32, stdout: Int32, stderr: Int32
    var inputClosed = false, reaped = false
    private var oldMask = sigset_t()

    init(_ command: String) throws {
        var pipes: [[Int32]] = []
        for _ in 0..<3 {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else {
                for p in pipes { close(p[0]); close(p[1]) }
                throw RewardProgramError(description: "cannot start the reward program: pipe: \(String(cString: strerror(errno)))")
            }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            pipes.append(fds)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipes[0][0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[2][1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group (killed whole), every signal unblocked and SIGPIPE at its default.
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t(), pipeSignal = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &pipeSignal)
        let words: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, "/bin/sh", &actions, &attr, argv, environ)
        close(pipes[0][0]); close(pipes[1][1]); close(pipes[2][1])
        guard rc == 0 else {
            close(pipes[0][1]); close(pipes[1][0]); close(pipes[2][0])
            throw RewardProgramError(description: "cannot start the reward program: \(String(cString: strerror(rc)))")
        }
        pid = child
        stdin = pipes[0][1]; stdout = pipes[1][0]; stderr = pipes[2][0]
        for fd in [stdin, stdout, stderr] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &oldMask)
    }

    func closeInput() {
        if !inputClosed { close(stdin); inputClosed = true }
    }

    /// Kills the program's whole group (whatever is left of it), reaps it, closes the pipes, and
    /// lets SIGPIPE through again once a pending one (from writing to it) is consumed.
    func finish() {
        kill(-pid, SIGKILL)
        if !reaped {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        closeInput()
        close(stdout); close(stderr)
        var pending = sigset_t(), pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        sigpending(&pending)
        if sigismember(&pending, SIGPIPE) == 1 {
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            _ = sigtimedwait(&pipeSignal, nil, &zero)
        }
        pthread_sigmask(SIG_SETMASK, &oldMask, nil)
    }
}
