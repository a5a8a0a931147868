import Foundation
import TransformerCore
import RunStore
import Labeling

/// The folder named by `--run` (default `default`).
func runFolder(_ a: Arguments) -> URL {
    RunStore.folder(forRun: a.string("--run") ?? "default")
}

/// Opens the run named by `--run`.
func openRun(_ a: Arguments) throws -> RunStore {
    try RunStore(folder: runFolder(a))
}

/// A progress bar fed (done, total) by a stage.
func progressCallback(_ label: String, unit: String) -> (bar: () -> ProgressBar?, update: (Int, Int) -> Void) {
    var bar: ProgressBar?
    return ({ bar }, { done, total in
        if bar == nil { bar = ProgressBar(label, total: total, unit: unit) }
        bar!.update(done)
    })
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
