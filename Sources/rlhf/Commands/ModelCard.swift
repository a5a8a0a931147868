import Curves
import Foundation
import RunStore
import TransformerCore

/// The model card `rlhf export` writes beside an exported model: a `README.md` whose YAML front
/// matter the Hugging Face Hub reads (`base_model`, `library_name`, `tags`, `pipeline_tag`),
/// then the method (the stages from the base model to this one) and the run's figures.
enum ModelCard {
    /// What each stage did, in one phrase, and the tag the Hub lists it under.
    static let stages: [String: (phrase: String, tag: String)] = [
        "sft": ("supervised fine-tuning on demonstrations", "sft"),
        "train-reward": ("a reward model trained on pairwise human preferences (Bradley-Terry loss)", "reward-model"),
        "ppo": ("PPO against the reward model, with a per-token KL penalty to the frozen reference", "ppo"),
        "dpo": ("DPO on pairwise human preferences", "dpo"),
        "grpo": ("GRPO (group-relative policy optimisation) against a reward", "grpo"),
        "pretrain": ("pretraining from a text corpus", "pretraining"),
    ]

    /// The card's text for model `record` of `store`, exported to `folder`; `adapter` for a PEFT folder.
    static func text(for record: ModelRecord, store: RunStore, folder: URL, adapter: Bool) throws -> String {
        // The models from the base up to this one, and the stages that made each.
        var chain: [ModelRecord] = [record]
        while let p = chain.last?.parentId, let m = try store.model(id: p), !chain.contains(where: { $0.id == m.id }) { chain.append(m) }
        chain.reverse()
        let runs = Dictionary(try store.stageRuns().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let stagesUsed = chain.compactMap { $0.stageRunId.flatMap { runs[$0]?.stage } }.filter { stages[$0] != nil }
        let base = chain.first
        let origin = try base.flatMap { try store.modelOrigin(id: $0.id) }
        let isScorer = record.role == .reward || record.role == .value

        var lines = ["---"]
        if let o = origin { lines.append("base_model: \(o.repo)") }
        lines.append("library_name: \(adapter ? "peft" : "transformers")")
        lines.append("tags:")
        var tags = ["rlhf"] + stagesUsed.compactMap { stages[$0]?.tag }
        if adapter { tags.append("lora") }
        for t in tags.reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) { lines.append("- \(t)") }
        lines.append("pipeline_tag: \(isScorer ? "text-classification" : "text-generation")")
        lines.append("---")
        lines.append("")
        lines.append("# \(markdown(folder.lastPathComponent))")
        lines.append("")
        let from =
            origin.map { "[\($0.repo)](https://huggingface.co/\($0.repo)) at commit `\($0.commit)`" }
            ?? base.map { "a local base model (\(markdown($0.note ?? $0.path)))" } ?? "a local base model"
        lines.append(
            "The \(record.role.rawValue) model #\(record.id) of the rlhf run `\(markdown(store.folder.lastPathComponent))`, whose base model is \(from)"
                + (adapter ? ", written as LoRA adapters (PEFT)." : "."))
        lines.append("")
        lines.append("## Method")
        lines.append("")
        if stagesUsed.isEmpty {
            lines.append("No training stage: this is the run's base model as it was imported.")
        } else {
            for m in chain.dropFirst() {
                guard let run = m.stageRunId.flatMap({ runs[$0] }), let s = stages[run.stage] else { continue }
                lines.append("- `\(run.stage)` (stage run #\(run.id)\(m.step.map { ", step \($0)" } ?? "")): \(s.phrase).")
            }
        }
        lines.append("")
        lines.append("## Data")
        lines.append("")
        let c = try store.counts()
        lines.append("| prompts (train) | prompts (eval) | completions | rankings | preference pairs |")
        lines.append("|---:|---:|---:|---:|---:|")
        lines.append(
            "| \(c.promptsBySplit["train"] ?? 0) | \(c.promptsBySplit["eval"] ?? 0) | \(c.completions) | \(c.rankingsByStatus["ranked"] ?? c.rankings) | \(c.comparisons) |"
        )
        if let runId = record.stageRunId, let run = runs[runId], stages[run.stage] != nil {
            let points = try store.metrics(stageRunId: runId)
            var last: [String: MetricPoint] = [:]
            for p in points where p.value.isFinite { if (last[p.name]?.step ?? Int.min) <= p.step { last[p.name] = p } }
            if !last.isEmpty {
                lines.append("")
                lines.append("## Figures")
                lines.append("")
                lines.append("The last value of each metric the `\(run.stage)` stage run #\(run.id) logged (names as TRL logs them):")
                lines.append("")
                lines.append("| metric | step | value |")
                lines.append("|---|---:|---:|")
                for (name, p) in last.sorted(by: { $0.key < $1.key }) {
                    lines.append("| `\(markdown(name))` | \(p.step) | \(String(format: "%.6g", p.value)) |")
                }
            }
        }
        lines.append("")
        lines.append("## Use")
        lines.append("")
        lines.append("```python")
        if adapter {
            lines.append("from peft import AutoPeftModelForCausalLM")
            lines.append("model = AutoPeftModelForCausalLM.from_pretrained(\"PATH_OR_REPO\")")
        } else if isScorer {
            lines.append("from transformers import AutoModelForSequenceClassification, AutoTokenizer")
            lines.append("model = AutoModelForSequenceClassification.from_pretrained(\"PATH_OR_REPO\")")
            lines.append("tokenizer = AutoTokenizer.from_pretrained(\"PATH_OR_REPO\")")
        } else {
            lines.append("from transformers import AutoModelForCausalLM, AutoTokenizer")
            lines.append("model = AutoModelForCausalLM.from_pretrained(\"PATH_OR_REPO\")")
            lines.append("tokenizer = AutoTokenizer.from_pretrained(\"PATH_OR_REPO\")")
        }
        lines.append("```")
        lines.append("")
        lines.append("Trained with rlhf, an RLHF pipeline in Swift; config.json's `rlhf_provenance` names the checkpoint and its SHA-256.")
        return lines.joined(separator: "\n") + "\n"
    }

    /// User text made inert in Markdown and in the HTML the Hub renders it to: HTML escaped as the
    /// reports escape it, and no code span, table cell or line broken open.
    static func markdown(_ s: String) -> String {
        SVGChart.escape(String(s.map { "`|\n\r\t".contains($0) ? " " : $0 }))
    }
}
