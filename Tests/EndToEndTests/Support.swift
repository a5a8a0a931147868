import Foundation
import RunStore
import XCTest

/// What one run of the binary did.
struct CLIResult { let status: Int32; let stdout: String; let stderr: String }

/// The `rlhf` executable built beside this test bundle.
let rlhfBinary: URL = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [here, Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
        let candidate = dir.appendingPathComponent("rlhf")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    fatalError("rlhf binary not found next to \(here.path)")
}()

/// Runs `rlhf args…` to completion, capturing its output; `stdin` is fed to it when given. With
/// a `launcher` (a program and its arguments, such as an emulator), runs `launcher rlhf args…`.
func runCLI(
    _ args: [String], env: [String: String] = [:], cwd: URL? = nil, stdin: Data? = nil,
    launcher: [String] = []
) throws -> CLIResult {
    let p = Process()
    p.executableURL = launcher.first.map { URL(fileURLWithPath: $0) } ?? rlhfBinary
    p.arguments = launcher.isEmpty ? args : Array(launcher.dropFirst()) + [rlhfBinary.path] + args
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    if let cwd { p.currentDirectoryURL = cwd }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    let input = Pipe()
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try? input.fileHandleForWriting.close()
    // Read both pipes concurrently so a full stderr pipe cannot block the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// Starts `rlhf args…`, waits until `store` holds a point of `metric` at step `step` or later,
/// and kills the process with SIGKILL; returns how it ended (`.uncaughtSignal` when it was still
/// running, as a test of resuming needs).
func killWhenLogged(_ args: [String], store: RunStore, metric: String, step: Int) throws -> Process.TerminationReason {
    let p = Process()
    p.executableURL = rlhfBinary
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
    try p.run()
    while try p.isRunning && store.metrics(names: [metric]).map(\.step).max() ?? 0 < step { usleep(2_000) }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    return p.terminationReason
}

/// A test case with a scratch folder (the working directory of the binary) removed afterwards.
class ScratchFolderTestCase: XCTestCase {
    var dir: URL!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("rlhf-e2e-\(String(describing: type(of: self)))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Runs the binary in the scratch folder and checks its exit status.
    @discardableResult
    func rlhf(_ args: [String], env: [String: String] = [:], expect status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws
        -> CLIResult
    {
        let r = try runCLI(args, env: env, cwd: dir)
        XCTAssertEqual(r.status, status, "rlhf \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r
    }

    /// `rlhf command --run a args…` to its end, and the same on `b` (a copy of `a`) killed with
    /// SIGKILL once `metric` is logged at `step`, then continued with `--resume`, which must say
    /// it is resuming the `label` run: the outputs of the whole run and of the resumed one.
    func wholeAndResumed(_ command: String, _ args: [String], a: String, b: String, metric: String, step: Int, label: String) throws
        -> (whole: CLIResult, resumed: CLIResult)
    {
        let whole = try rlhf([command, "--run", a] + args)
        let store = try RunStore(folder: URL(fileURLWithPath: b))
        XCTAssertEqual(
            try killWhenLogged([command, "--run", b] + args, store: store, metric: metric, step: step), .uncaughtSignal,
            "the run must be killed mid-way")
        let resumed = try rlhf([command, "--run", b, "--resume"])
        XCTAssertTrue(resumed.stdout.contains("resuming \(label) run"), resumed.stdout)
        return (whole, resumed)
    }
}
