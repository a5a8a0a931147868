import Foundation

/// The content of `rlhf report`, gathered by the command from the run.
public struct ReportData: Sendable {
    public struct ModelRow: Sendable {
        public var id: Int64, role: String, path: String, parent: Int64?, step: Int?, note: String?, sha: String
        public init(id: Int64, role: String, path: String, parent: Int64?, step: Int?, note: String?, sha: String) {
            self.id = id; self.role = role; self.path = path; self.parent = parent; self.step = step; self.note = note; self.sha = sha
        }
    }
    public struct StageRow: Sendable {
        public var id: Int64, stage: String, status: String, started: Double, finished: Double?, config: String, error: String?
        public init(id: Int64, stage: String, status: String, started: Double, finished: Double?, config: String, error: String?) {
            self.id = id; self.stage = stage; self.status = status; self.started = started; self.finished = finished; self.config = config;
            self.error = error
        }
    }
    public struct Sample: Sendable {
        public var iteration: Int, prompt: String, completion: String, score: Double?
        public init(iteration: Int, prompt: String, completion: String, score: Double?) {
            self.iteration = iteration; self.prompt = prompt; self.completion = completion; self.score = score
        }
    }
    /// The results of one human comparison (`rlhf compare --judge human`), as text.
    public struct Judging: Sendable {
        /// What was compared ("model #3 against #2, 5 of 6 items judged").
        public var title: String
        /// One row per annotator, then the overall row: who, judged, wins, losses, ties, skips,
        /// win rate, 95% interval.
        public var tallies: [[String]]
        /// One row per pair of annotators: the pair, items both judged, percent agreement, kappa.
        public var agreement: [[String]]
        public init(title: String, tallies: [[String]], agreement: [[String]]) {
            self.title = title; self.tallies = tallies; self.agreement = agreement
        }
    }
    public var runName: String
    public var generatedAt: Date
    public var counts: [(String, String)]
    public var models: [ModelRow]
    public var stages: [StageRow]
    /// Label statistics as (label, value) rows.
    public var labels: [(String, String)]
    public var annotators: [[String]]
    public var rewardEpochs: [[String]]
    public var rewardCharts: String
    public var ppoCharts: String
    /// Validation figures of the latest DPO run, one row per epoch, and its curves.
    public var dpoEpochs: [[String]] = []
    public var dpoCharts: String = ""
    /// The curves of the latest GRPO run and the completions it kept, per iteration.
    public var grpoCharts: String = ""
    public var grpoSamples: [Sample] = []
    /// Human judging of two policies, newest comparison first.
    public var judgments: [Judging] = []
    public var samples: [Sample]

    public init(
        runName: String, generatedAt: Date = Date(), counts: [(String, String)] = [], models: [ModelRow] = [], stages: [StageRow] = [],
        labels: [(String, String)] = [], annotators: [[String]] = [], rewardEpochs: [[String]] = [], rewardCharts: String = "",
        ppoCharts: String = "", samples: [Sample] = []
    ) {
        self.runName = runName; self.generatedAt = generatedAt; self.counts = counts; self.models = models; self.stages = stages
        self.labels = labels; self.annotators = annotators; self.rewardEpochs = rewardEpochs; self.rewardCharts = rewardCharts
        self.ppoCharts = ppoCharts; self.samples = samples
    }
}

/// One self-contained HTML page (inline CSS and SVG, no scripts, no external assets).
public enum HTMLReport {
    /// The sections every report has, by id, in page order (a run with DPO also gets "dpo", after
    /// "ppo", one with GRPO "grpo", after that, and one with human judgments "judgments", last but
    /// one).
    public static let sections = ["summary", "models", "stages", "labels", "reward", "ppo", "samples"]

    public static func render(_ d: ReportData) -> String {
        let e = SVGChart.escape
        func table(_ header: [String], _ rows: [[String]]) -> String {
            guard !rows.isEmpty else { return "<p class=\"none\">none yet</p>" }
            // Built in steps: as one expression, Swift 6.2's type checker gives up on it.
            let head: String = header.map { "<th>\(e($0))</th>" }.joined()
            let body: [String] = rows.map { row in "<tr>" + row.map { "<td>\(e($0))</td>" }.joined() + "</tr>" }
            return "<table><thead><tr>\(head)</tr></thead><tbody>\n\(body.joined(separator: "\n"))\n</tbody></table>"
        }
        /// Completions under a heading (of `level`) per iteration.
        func samples(_ list: [ReportData.Sample], level: Int) -> String {
            var out = "", lastIteration = -1
            for s in list {
                if s.iteration != lastIteration { out += "<h\(level)>Iteration \(s.iteration)</h\(level)>\n"; lastIteration = s.iteration }
                out += "<div class=\"sample\"><div><b>Prompt:</b> \(e(s.prompt))</div><pre>\(e(s.completion))</pre>"
                out += "<div class=\"score\">score \(s.score.map { String(format: "%.3f", $0) } ?? "—")</div></div>\n"
            }
            return out
        }
        let df = DateFormatter()
        df.dateFormat = "yyyy-MM-dd HH:mm:ss"
        func when(_ t: Double?) -> String { t.map { df.string(from: Date(timeIntervalSince1970: $0)) } ?? "—" }
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>rlhf report — \(e(d.runName))</title>
            <style>
            body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
            h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
            table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
            th{background:#f4f4f4}.none{color:#888}pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em;font-size:.85em;margin:0}
            details summary{cursor:pointer}.sample{border:1px solid #e4e4e4;border-radius:4px;padding:.6em;margin:.5em 0}
            .score{font-weight:bold}svg{max-width:100%;height:auto}
            </style></head><body>
            <h1>RLHF run report: \(e(d.runName))</h1>
            <p>Generated \(e(df.string(from: d.generatedAt))) by rlhf.</p>

            """
        h += "<section id=\"summary\"><h2>Summary</h2>\n" + table(["what", "count"], d.counts.map { [$0.0, $0.1] }) + "</section>\n"
        h +=
            "<section id=\"models\"><h2>Models and lineage</h2>\n"
            + table(
                ["id", "role", "parent", "step", "path", "sha256", "note"],
                d.models.map {
                    [
                        "#\($0.id)", $0.role, $0.parent.map { "#\($0)" } ?? "—", $0.step.map(String.init) ?? "—", $0.path, String($0.sha.prefix(12)),
                        $0.note ?? "",
                    ]
                }) + "</section>\n"
        h += "<section id=\"stages\"><h2>Stage runs</h2>\n"
        if d.stages.isEmpty {
            h += "<p class=\"none\">none yet</p>"
        } else {
            h += "<table><thead><tr><th>id</th><th>stage</th><th>status</th><th>started</th><th>finished</th><th>config</th></tr></thead><tbody>\n"
            for s in d.stages {
                h +=
                    "<tr><td>#\(s.id)</td><td>\(e(s.stage))</td><td>\(e(s.status))\(s.error.map { "<br><small>\(e($0))</small>" } ?? "")</td><td>\(e(when(s.started)))</td><td>\(e(when(s.finished)))</td>"
                h += "<td><details><summary>config</summary><pre>\(e(s.config))</pre></details></td></tr>\n"
            }
            h += "</tbody></table>"
        }
        h += "</section>\n"
        h +=
            "<section id=\"labels\"><h2>Labels</h2>\n" + table(["figure", "value"], d.labels.map { [$0.0, $0.1] })
            + table(["annotator", "labels", "skipped", "flagged", "median s/item"], d.annotators) + "</section>\n"
        h +=
            "<section id=\"reward\"><h2>Reward model</h2>\n"
            + table(["epoch", "validation loss", "validation accuracy", "validation margin"], d.rewardEpochs)
            + (d.rewardCharts.isEmpty ? "" : "<div class=\"chart\">\n\(d.rewardCharts)</div>") + "</section>\n"
        h +=
            "<section id=\"ppo\"><h2>PPO</h2>\n"
            + (d.ppoCharts.isEmpty ? "<p class=\"none\">no PPO run yet</p>" : "<div class=\"chart\">\n\(d.ppoCharts)</div>") + "</section>\n"
        if !d.dpoCharts.isEmpty || !d.dpoEpochs.isEmpty {
            h +=
                "<section id=\"dpo\"><h2>DPO</h2>\n"
                + table(["epoch", "step", "eval loss", "eval accuracy", "eval margin", "eval chosen", "eval rejected"], d.dpoEpochs)
                + (d.dpoCharts.isEmpty ? "" : "<div class=\"chart\">\n\(d.dpoCharts)</div>") + "</section>\n"
        }
        if !d.grpoCharts.isEmpty {
            h += "<section id=\"grpo\"><h2>GRPO</h2>\n<div class=\"chart\">\n\(d.grpoCharts)</div>\n"
            if !d.grpoSamples.isEmpty {
                h += "<h3>Sample completions per GRPO iteration, with their rewards</h3>\n" + samples(d.grpoSamples, level: 4)
            }
            h += "</section>\n"
        }
        if !d.judgments.isEmpty {
            h += "<section id=\"judgments\"><h2>Human judgments</h2>\n"
            h +=
                "<p>For the first model of each comparison: win rate = (wins + ties/2) / (wins + losses + ties), ties counting half and skips left out, "
                + "with its 95% Wilson score interval. Agreement and Cohen's kappa are over the items both annotators judged without skipping, "
                + "with first better, second better and tie as three verdicts.</p>\n"
            for j in d.judgments {
                h += "<h3>\(e(j.title))</h3>\n"
                h += table(["annotator", "judged", "wins", "losses", "ties", "skips", "win rate", "95% interval"], j.tallies)
                if !j.agreement.isEmpty { h += table(["annotators", "items both judged", "agreement", "Cohen's kappa"], j.agreement) }
            }
            h += "</section>\n"
        }
        h += "<section id=\"samples\"><h2>Sample completions per PPO iteration</h2>\n"
        h += d.samples.isEmpty ? "<p class=\"none\">none yet</p>" : samples(d.samples, level: 3)
        h += "</section>\n</body></html>\n"
        return h
    }
}
