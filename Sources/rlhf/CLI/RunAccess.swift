import Foundation
import TransformerCore
import RunStore

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
