import Foundation
import XCTest

@testable import RunStore

#if canImport(FoundationXML)
import FoundationXML
#endif

/// `rlhf curves` (terminal, SVG, --follow), `rlhf report` and `rlhf metrics export` through the binary.
final class CurvesCommandTests: ScratchFolderTestCase {
    var run: String { dir.appendingPathComponent("run").path }

    func testCurvesReportAndExport() throws {
        try rlhf(["init", "--run", run, "--base", "random:S"])
        let empty = try rlhf(["curves", "--run", run])
        XCTAssertTrue(empty.stdout.contains("reward/loss") && empty.stdout.contains("no data yet"), empty.stdout)
        let file = dir.appendingPathComponent("pairs.jsonl")
        try (0..<40).map { "{\"prompt\":\"q\($0)\",\"chosen\":\"thanks <b>\",\"rejected\":\"ugh \\u001b[31m\"}" }.joined(separator: "\n")
            .write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", run])
        try rlhf(["train-reward", "--run", run, "--epochs", "2", "--lr", "1e-3"])

        // --follow while PPO writes: it redraws as iterations land.
        let follow = Process()
        follow.executableURL = rlhfBinary
        follow.arguments = ["curves", "--run", run, "--stage", "ppo", "--follow", "--metrics", "objective/scores"]
        let out = Pipe()
        follow.standardOutput = out; follow.standardError = FileHandle.nullDevice
        try follow.run()
        try rlhf(["ppo", "--run", run, "--iterations", "4", "--batch", "8", "--response-length", "12", "--save-every", "2", "--lr", "1e-4"])
        sleep(2)
        follow.terminate(); follow.waitUntilExit()
        let drawn = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertGreaterThanOrEqual(drawn.components(separatedBy: "objective/scores").count - 1, 2, "redrawn as new points landed: \(drawn)")

        let text = try rlhf(["curves", "--run", run, "--width", "70"], env: ["LANG": "C.UTF-8", "NO_COLOR": "1"])
        for m in ["objective/scores", "objective/kl", "objective/entropy", "loss/value", "policy/clipfrac", "objective/kl_coef"] {
            XCTAssertTrue(text.stdout.contains(m), m)
        }
        XCTAssertFalse(text.stdout.contains("\u{1B}"), "no colour when stdout is not a terminal")
        XCTAssertTrue(text.stdout.unicodeScalars.contains { (0x2801...0x28FF).contains($0.value) }, "braille in a UTF-8 locale")
        let ascii = try rlhf(["curves", "--run", run, "--stage", "reward"], env: ["LANG": "C", "LC_ALL": "C"])
        XCTAssertTrue(ascii.stdout.contains("reward/val_accuracy"))
        XCTAssertFalse(ascii.stdout.unicodeScalars.contains { $0.value > 0x7E }, "plain ASCII outside UTF-8 locales")
        try rlhf(["curves", "--run", "\(run),\(run)", "--stage", "ppo", "--smooth", "0.5"])

        let svg = dir.appendingPathComponent("c.svg")
        try rlhf(["curves", "--run", run, "--svg", svg.path])
        XCTAssertTrue(XMLParser(data: try Data(contentsOf: svg)).parse())

        let html = dir.appendingPathComponent("r.html")
        try rlhf(["report", "--run", run, "-o", html.path])
        let page = try String(contentsOf: html, encoding: .utf8)
        for id in ["summary", "models", "stages", "labels", "reward", "ppo", "samples"] { XCTAssertTrue(page.contains("<section id=\"\(id)\">"), id) }
        XCTAssertTrue(page.contains("Iteration 4"))
        XCTAssertTrue(page.contains("<svg"))
        XCTAssertFalse(page.contains("thanks <b>") || page.contains("\u{1B}"), "text is escaped")

        let csv = try rlhf(["metrics", "export", "--run", run, "--format", "csv"])
        let rows = csv.stdout.split(separator: "\n")
        XCTAssertEqual(rows.first, "stage_run,stage,name,step,value,time")
        let store = try RunStore(folder: URL(fileURLWithPath: run))
        XCTAssertEqual(rows.count - 1, try store.metrics().count)
        let jsonl = try rlhf(["metrics", "export", "--run", run, "--format", "jsonl", "-o", dir.appendingPathComponent("m.jsonl").path])
        XCTAssertTrue(jsonl.stdout.contains("wrote"))
        for line in try String(contentsOf: dir.appendingPathComponent("m.jsonl"), encoding: .utf8).split(separator: "\n") {
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        try rlhf(["curves", "--run", run, "--stage", "pretraining"], expect: 2)
        try rlhf(["curves", "--run", run, "--smooth", "1.5"], expect: 2)
    }
}
