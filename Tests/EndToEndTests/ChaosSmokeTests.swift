import Foundation
import XCTest

/// A few seconds of Tests/Chaos/chaos.py, which Sources/rlhf/rlhf.docc/Reliability.md documents for
/// its long run (120 kills and more): every stage of the loop killed at least once with SIGKILL and
/// resumed, then the script's checks (database integrity, checkpoint hashes, no stage left running,
/// every confirmed ranking stored exactly once, PPO and DPO metrics equal to uninterrupted runs').
final class ChaosSmokeTests: XCTestCase {
    func testAShortChaosRunPasses() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Chaos/chaos.py")
        guard
            let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("python3 is missing"); return }
            throw XCTSkip("python3 is not installed")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script.path, "--kills", "6", "--prompts", "6", "--ppo-iterations", "3", "--seed", "5", "--rlhf", rlhfBinary.path]
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("chaos PASS"), text)
        XCTAssertTrue(text.contains("0 lost, 0 duplicated"), text)
        XCTAssertEqual(
            text.components(separatedBy: " values, 0 differ from the uninterrupted run").count, 3, "PPO and DPO metrics equal after resume: \(text)")
    }
}
