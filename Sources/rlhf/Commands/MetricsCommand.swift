import Foundation
import RunStore
import TransformerCore

/// `rlhf metrics export`: every metric row as CSV or JSON lines.
enum MetricsCommand: Command {
    static let name = "metrics"
    static let summary = "Export a run's metrics (metrics export --format csv|jsonl)"
    static let help = """
        Usage: rlhf metrics export [--run NAME] --format csv|jsonl [-o FILE]

        Every metric of every stage run: stage_run, stage, name, step, value, time (Unix seconds).
        NaN values are written as empty CSV fields and JSON null. Default output: standard output.
        """

    static func run(_ args: [String]) throws {
        guard args.first == "export" else {
            throw UsageError(
                args.isEmpty ? "missing subcommand; use 'rlhf metrics export'" : "unknown subcommand '\(args[0])'; use 'rlhf metrics export'")
        }
        let a = try Arguments(Array(args.dropFirst()), options: ["--run", "--format", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let format = a.string("--format"), format == "csv" || format == "jsonl" else { throw UsageError("--format csv|jsonl is required") }
        let store = try openRun(a)
        let stages = Dictionary(uniqueKeysWithValues: try store.stageRuns().map { ($0.id, $0.stage) })
        var out = format == "csv" ? "stage_run,stage,name,step,value,time\n" : ""
        func csv(_ s: String) -> String {
            s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        for m in try store.metrics() {
            let stage = stages[m.stageRunId] ?? ""
            let v = m.value.isFinite ? "\(m.value)" : (m.value.isNaN ? "" : (m.value > 0 ? "inf" : "-inf"))
            if format == "csv" {
                out += "\(m.stageRunId),\(csv(stage)),\(csv(m.name)),\(m.step),\(v),\(m.time)\n"
            } else {
                out +=
                    jsonLine([
                        ("stage_run", "\(m.stageRunId)"), ("stage", JSONText.quote(stage)), ("name", JSONText.quote(m.name)),
                        ("step", "\(m.step)"), ("value", m.value.isFinite ? "\(m.value)" : "null"), ("time", "\(m.time)"),
                    ]) + "\n"
            }
        }
        if let path = a.string("-o") {
            try AtomicFile.write(Data(out.utf8), to: URL(fileURLWithPath: path))
            print("wrote \(path)")
        } else {
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}
