import Foundation
import Labeling
import RunStore
import TransformerCore

/// The folder named by `--run` (default `default`).
func runFolder(_ a: Arguments) -> URL {
    RunStore.folder(forRun: a.string("--run") ?? "default")
}

/// Opens the run named by `--run`.
func openRun(_ a: Arguments) throws -> RunStore {
    try RunStore(folder: runFolder(a))
}

/// A progress bar made at its first update, when the total is known; after `finish`, the next
/// update starts a new one.
final class LazyProgressBar {
    let label: String, unit: String
    private(set) var bar: ProgressBar?

    init(_ label: String, unit: String) {
        self.label = label
        self.unit = unit
    }

    func update(_ done: Int, of total: Int, note: String = "") {
        if bar == nil { bar = ProgressBar(label, total: total, unit: unit) }
        bar!.update(done, note: note)
    }

    func finish() {
        bar?.finish()
        bar = nil
    }
}

/// How the run lays out prompts, for the files other tools read: the tokenizer, chat template,
/// stop tokens and prompt template of its latest policy (the template it was registered with
/// when its folder has none, as train-reward reads it). Nil for a run without a policy.
func promptContext(_ store: RunStore) throws -> LabelsIO.PromptContext? {
    guard let policy = try store.latestModel(role: .policy) else { return nil }
    let loaded = try ModelFolder.loadPrompting(try store.checkpointFolder(policy))
    var notes = loaded.annotations
    if notes.promptTemplate == nil { notes.promptTemplate = policy.promptTemplate }
    return LabelsIO.PromptContext(run: store.folder.lastPathComponent, tokenizer: loaded.tokenizer, annotations: notes)
}
