import Foundation
import XCTest

@testable import GRPO

/// The reward program against programs that misbehave: each is a small python3 script written
/// into a scratch folder.
final class RewardProgramTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs /usr/bin/python3")
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("grpo-reward-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { if let dir { try? FileManager.default.removeItem(at: dir) } }

    /// `python3 NAME.py` for a script with `body` after `import sys, json, os, time`.
    func program(_ name: String, _ body: String) throws -> String {
        let url = dir.appendingPathComponent("\(name).py")
        try ("import sys, json, os, time, subprocess\n" + body).write(to: url, atomically: true, encoding: .utf8)
        return "python3 '\(url.path)'"
    }

    func inputs(_ n: Int) -> [String] {
        (0..<n).map { RewardProgram.inputLine(prompt: "prompt \($0 / 2)", completion: "completion \($0) \"quoted\"\nline", promptId: Int64($0 / 2)) }
    }

    /// The error `run` throws, as its one line.
    func failure(_ command: String, n: Int = 6, timeout: Double = 20) -> String {
        do {
            let r = try RewardProgram.run(command, inputs: inputs(n), timeout: timeout)
            XCTFail("expected a failure, got \(r)")
            return ""
        } catch {
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), "one line: \(text)")
            return text
        }
    }

    func testAWellBehavedProgramIsReadInOrder() throws {
        let cmd = try program(
            "echo",
            """
            for line in sys.stdin:
                d = json.loads(line)
                assert set(d) == {"prompt", "completion", "prompt_id"}, d
                print(json.dumps({"reward": len(d["completion"]) + 1000 * d["prompt_id"], "note": "extra keys are fine"}), flush=True)
            """)
        let r = try RewardProgram.run(cmd, inputs: inputs(6), timeout: 20)
        XCTAssertEqual(r, (0..<6).map { Double("completion \($0) \"quoted\"\nline".count + 1000 * ($0 / 2)) })
    }

    func testTooFewAndTooManyLines() throws {
        XCTAssertTrue(failure(try program("few", "sys.stdin.read()\nprint(json.dumps({'reward': 1}))")).contains("answered 1 line for 6 completions"))
        XCTAssertTrue(failure(try program("none", "sys.stdin.read()")).contains("answered 0 lines for 6 completions"))
        XCTAssertTrue(
            failure(try program("many", "sys.stdin.read()\nfor i in range(7): print(json.dumps({'reward': i}))"))
                .contains("more lines than the 6 completions"))
    }

    func testLinesThatAreNotFiniteNumbers() throws {
        for (name, line) in [
            ("nan", "json.dumps({'reward': float('nan')})"), ("inf", "json.dumps({'reward': float('inf')})"),
            ("string", "json.dumps({'reward': '1.5'})"), ("bool", "json.dumps({'reward': True})"), ("bare", "'0.5'"),
            ("missing", "json.dumps({'score': 1})"), ("garbage", "'reward=1'"),
        ] {
            let cmd = try program(name, "for i, _ in enumerate(sys.stdin): print(json.dumps({'reward': i}) if i != 2 else \(line))")
            let text = failure(cmd)
            XCTAssertTrue(text.contains("wrote line 3") && text.contains("not {\"reward\": <finite number>}"), "\(name): \(text)")
        }
    }

    func testACrashIsReportedWithItsLastWordsOnStderr() throws {
        let text = failure(try program("crash", "sys.stdin.readline()\nraise RuntimeError('the grader broke')"))
        XCTAssertTrue(text.contains("exited with status 1"), text)
        XCTAssertTrue(text.contains("RuntimeError: the grader broke"), text)
        let killed = failure(try program("segv", "import signal\nos.kill(os.getpid(), signal.SIGSEGV)"))
        // (Killed itself, or through the shell, which exits with 128 + the signal.)
        XCTAssertTrue(killed.contains("killed by signal 11") || killed.contains("exited with status 139"), killed)
        XCTAssertTrue(failure("exit 3").contains("exited with status 3"))
        XCTAssertTrue(failure("/no/such/program").contains("exited with status 127"))
    }

    /// A program that hangs (after starting a child that would outlive it) is stopped at the
    /// timeout, its child with it.
    func testAHangIsStoppedWithItsChildren() throws {
        let marker = dir.appendingPathComponent("child.pid").path
        let cmd = try program(
            "hang",
            """
            child = subprocess.Popen(["sleep", "300"])
            open("\(marker)", "w").write(str(child.pid))
            time.sleep(300)
            """)
        let t = Date()
        let text = failure(cmd, timeout: 2)
        XCTAssertTrue(text.contains("did not finish within 2 s (--reward-timeout)"), text)
        XCTAssertLessThan(Date().timeIntervalSince(t), 10)
        let pid = pid_t(try String(contentsOfFile: marker, encoding: .utf8))!
        usleep(100_000)
        XCTAssertFalse(isAlive(pid), "the program's child was stopped too")
    }

    /// A program that answers and exits while a child it left behind keeps its stdout open is
    /// stopped at the timeout too.
    func testAChildHoldingTheOutputOpenIsStopped() throws {
        let cmd = try program(
            "orphan",
            """
            sys.stdin.read()
            for i in range(6): print(json.dumps({"reward": i}))
            sys.stdout.flush()
            subprocess.Popen(["sleep", "300"])
            """)
        XCTAssertTrue(failure(cmd, timeout: 2).contains("did not finish within"))
    }

    /// Pages of stderr, written before reading and while answering, neither block the program nor
    /// change its answer, and are passed on.
    func testOutputOnStderrDoesNotBlock() throws {
        let cmd = try program(
            "chatty",
            """
            sys.stderr.write("x" * 300000 + "\\n")
            for line in sys.stdin:
                sys.stderr.write("working on " + line)
                print(json.dumps({"reward": 0.25}))
            sys.stderr.write("y" * 300000 + "\\n")
            """)
        final class Sink: @unchecked Sendable { var bytes = 0 }
        let sink = Sink()
        let r = try RewardProgram.run(cmd, inputs: inputs(50), timeout: 20) { sink.bytes += $0.utf8.count }
        XCTAssertEqual(r, [Double](repeating: 0.25, count: 50))
        XCTAssertGreaterThan(sink.bytes, 600_000)
    }

    /// A program that answers without reading its input (larger than a pipe holds) is judged by
    /// its answer; writing to it does not kill this process with SIGPIPE.
    func testAProgramThatDoesNotReadItsInput() throws {
        let big = (0..<2000).map { RewardProgram.inputLine(prompt: String(repeating: "p", count: 200), completion: "c", promptId: Int64($0)) }
        let answers = try program("deaf", "for i in range(2000): print(json.dumps({'reward': 1}))")
        XCTAssertEqual(try RewardProgram.run(answers, inputs: big, timeout: 20), [Double](repeating: 1, count: 2000))
        let silent = try program("silent", "sys.exit(0)")
        XCTAssertThrowsError(try RewardProgram.run(silent, inputs: big, timeout: 20)) { XCTAssertTrue("\($0)".contains("answered 0 lines")) }
    }

    func isAlive(_ pid: pid_t) -> Bool {
        // A zombie (reaped by nobody yet) is as good as dead: its state letter is Z.
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }
}
