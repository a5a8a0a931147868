import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Edits text in the user's editor as `git commit` does: `$VISUAL`, else `$EDITOR`, else `vi`,
/// run through `sh -c` (so the variable may hold arguments) on a temporary file that only the
/// user can read. The caller hands the terminal back first and takes it again after.
public enum ExternalEditor {
    /// The editor command the environment names.
    public static func command(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        for key in ["VISUAL", "EDITOR"] {
            if let v = environment[key], !v.trimmingCharacters(in: .whitespaces).isEmpty { return v }
        }
        return "vi"
    }

    /// Runs the editor on `text` and returns what the file holds when it exits. The newline an
    /// editor puts at the end of the file is taken off again. Throws, leaving nothing behind,
    /// when the editor cannot start or exits with an error.
    public static func edit(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("rlhf-answer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? fm.removeItem(at: dir) }
        let file = dir.appendingPathComponent("ANSWER.md")
        guard fm.createFile(atPath: file.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EditorError("cannot write \(file.path)")
        }
        let editor = command(environment)
        let status = try run(["/bin/sh", "-c", editor + " \"$@\"", editor, file.path])
        guard status == 0 else { throw EditorError("the editor (\(editor)) exited with status \(status); the answer is unchanged") }
        guard let data = fm.contents(atPath: file.path) else { throw EditorError("the editor left no file; the answer is unchanged") }
        guard var edited = String(data: data, encoding: .utf8) else {
            throw EditorError("the edited answer is not UTF-8 text; the answer is unchanged")
        }
        if edited.hasSuffix("\n") && !text.hasSuffix("\n") { edited.removeLast() }
        return edited
    }

    /// Spawns `argv` on this terminal and waits for it. Ctrl-C and Ctrl-\ go to the editor, not
    /// to rlhf, while it runs (as git does).
    static func run(_ argv: [String]) throws -> Int32 {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT); sigaddset(&defaults, SIGQUIT)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))
        let oldInt = signal(SIGINT, SIG_IGN), oldQuit = signal(SIGQUIT, SIG_IGN)
        defer { signal(SIGINT, oldInt); signal(SIGQUIT, oldQuit) }
        let args = argv.map { strdup($0) } + [nil]
        defer { args.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], nil, &attr, args, environ)
        guard rc == 0 else { throw EditorError("cannot start the editor: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw EditorError("lost the editor: \(String(cString: strerror(errno)))") }
        }
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}

/// An external editor that failed.
public struct EditorError: Error, CustomStringConvertible {
    public let description: String
    init(_ m: String) { description = m }
}
