import Foundation
import XCTest

@testable import RunStore

/// A run folder from someone else is data, not instructions: an HTML report and an SVG of a run
/// whose every string (run name, prompts, completions, annotator, stage names, configs, errors,
/// model paths and notes) is markup that would run a script are opened in headless Chromium, and
/// no script may run. A control page proves that scripts do run there, so the check can fail.
final class HostileReportTests: ScratchFolderTestCase {
    /// Markup that, if it reached the page unescaped, would set `data-pwned` on the root element.
    static func payloads(_ field: String) -> [String] {
        let set = { (tag: String) in "document.documentElement.setAttribute('data-pwned','\(field)-\(tag)')" }
        return [
            "<script>\(set("script"))</script>",
            "<img src=x onerror=\"\(set("img"))\">",
            "<svg onload=\"\(set("svg"))\"></svg>",
            "\"><script>\(set("attr"))</script>",
            "'><img src=x onerror=\"\(set("attr2"))\">",
            "</title></style></textarea>]]><!-- --><script>\(set("close"))</script>",
            "<iframe srcdoc=\"<script>parent.\(set("iframe"))</script>\"></iframe>",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:\(set("meta"))\">",
            "<a href=\"javascript:\(set("href"))\" id=\"pwned-link\">click</a>",
        ]
    }

    func testHostileRunRendersWithoutLiveMarkup() throws {
        let browser = try Self.chromium()
        // The run's folder name is markup too: one path component (no slash) and no comma (curves
        // takes a comma-separated list of runs).
        let run = dir.appendingPathComponent("<img src=x onerror=\"document.documentElement.dataset.pwned='runname'\">").path
        try rlhf(["init", "--run", run, "--base", "random:S"])
        let pairs = zip(Self.payloads("prompt"), Self.payloads("completion")).map { p, c in
            "{\"prompt\":\(jsonString(p)),\"chosen\":\(jsonString(c)),\"rejected\":\(jsonString("plain"))}"
        }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", run, "--annotator", Self.payloads("annotator")[1]])
        do {
            let store = try RunStore(folder: URL(fileURLWithPath: run))
            let base = try store.latestModel(role: .policy)!
            for (i, p) in Self.payloads("stage").enumerated() {
                let id = try store.beginStageRun(stage: "ppo", config: "{\"note\":\(jsonString(Self.payloads("config")[i]))}", seed: nil)
                try store.logMetrics(stageRunId: id, step: 1, [("objective/scores", 0.5), ("objective/kl", 0.1)])
                let prompt = try store.prompts().first!
                try store.addCompletions([
                    NewCompletion(
                        promptId: prompt.id, modelId: base.id, stageRunId: id, text: Self.payloads("sample")[i],
                        tokenIds: [], finishReason: "eos", logprobSum: nil, sampling: "{}", iteration: 1, score: 0.25)
                ])
                try store.finishStageRun(id, status: .failed, error: p)
                try store.registerModel(
                    role: .policy, path: "checkpoints/" + Self.payloads("path")[i], sha256: base.sha256, config: base.config,
                    promptTemplate: nil, parentId: base.id, stageRunId: id, step: i, note: Self.payloads("note")[i])
            }
            let stage = try store.beginStageRun(stage: Self.payloads("stagename")[0], config: "{}", seed: nil)
            try store.finishStageRun(stage, status: .succeeded)
        }
        let report = dir.appendingPathComponent("report.html"), svg = dir.appendingPathComponent("curves.svg")
        try rlhf(["report", "--run", run, "-o", report.path])
        try rlhf(["curves", "--run", run, "--stage", "ppo", "--svg", svg.path])

        let html = try String(contentsOf: report, encoding: .utf8)
        XCTAssertTrue(
            html.contains("setAttribute(&#39;data-pwned&#39;") || html.contains("setAttribute('data-pwned'"),
            "the hostile strings are in the report, as text")
        for (name, text) in [("report", html), ("svg", try String(contentsOf: svg, encoding: .utf8))] {
            let lower = text.lowercased()
            for tag in ["<script", "<img", "<iframe", "<meta http-equiv", "<a href", "<svg onload"] {
                XCTAssertFalse(lower.contains(tag), "\(name) holds live \(tag)")
            }
        }

        // Control: the same browser runs a script when there is one.
        let control = dir.appendingPathComponent("control.html")
        try "<!doctype html><html><body>\(Self.payloads("control")[0])</body></html>".write(to: control, atomically: true, encoding: .utf8)
        XCTAssertTrue(try Self.dumpDOM(browser, control).contains("data-pwned=\"control-script\""), "the control page's script must run")

        for page in [report, svg] {
            let dom = try Self.dumpDOM(browser, page)
            XCTAssertFalse(dom.isEmpty, "Chromium rendered nothing for \(page.lastPathComponent)")
            XCTAssertFalse(dom.contains("data-pwned=\""), "a script ran in \(page.lastPathComponent): \(dom.prefix(400))")
            XCTAssertTrue(dom.contains("pwned"), "the payload text reached the DOM as text in \(page.lastPathComponent)")
            // In the serialised DOM, text has its < escaped, so these appear only as elements.
            for element in ["<script>document", "<img src", "<iframe", "<meta http-equiv", "<a href=\"javascript", "<svg onload"] {
                XCTAssertFalse(dom.contains(element), "a live \(element) element in \(page.lastPathComponent)")
            }
        }
    }

    func jsonString(_ s: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed]), as: UTF8.self)
    }

    /// The DOM after load, as headless Chromium serialises it.
    static func dumpDOM(_ browser: String, _ page: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: browser)
        p.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=3000",
            "--user-data-dir=" + FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-chromium-\(getpid())").path,
            "--dump-dom", page.absoluteString,
        ]
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// A headless Chromium: one on PATH, else Debian's chromium-headless-shell installed with
    /// apt-get (as root). Without one the test is skipped, except under CI.
    static func chromium() throws -> String {
        func find() -> String? {
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            for name in ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"] {
                for d in path + ["/usr/bin"] where FileManager.default.isExecutableFile(atPath: "\(d)/\(name)") { return "\(d)/\(name)" }
            }
            return nil
        }
        if let found = find() { return found }
        if getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") {
            for args in [["update", "-qq"], ["install", "-y", "-qq", "chromium-headless-shell"]] {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
                p.arguments = args
                p.environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
                p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
                try p.run(); p.waitUntilExit()
            }
            if let found = find() { return found }
        }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("no headless Chromium, and apt-get could not install chromium-headless-shell")
        }
        throw XCTSkip("no headless Chromium (Debian package chromium-headless-shell)")
    }
}
