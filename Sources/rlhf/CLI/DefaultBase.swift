import Foundation
import TransformerCore

/// The built-in base model: pretrained from the bundled corpus on first use and cached under
/// runs/.base-cache/, keyed by the corpus, the configuration and the training settings. It is
/// always pretrained in single precision, whatever `--precision` a command runs in, so that one
/// cached model serves every command.
enum DefaultBase {
    static let corpusPath = "prompts/corpus.txt"

    struct Recipe {
        var config = ModelConfig.preset("S")!
        var vocabSize = 1024
        var settings = PretrainSettings()
        var template = "Q: {prompt}\nA:"

        static func full() -> Recipe { var r = Recipe(); r.settings.steps = 600; return r }
        static func quick() -> Recipe { var r = Recipe(); r.settings.steps = 250; return r }
    }

    /// The bundled corpus, found from the current folder (the project's root).
    static func corpus() throws -> Data {
        let url = URL(fileURLWithPath: corpusPath)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw RuntimeError("\(corpusPath) not found; run this from the project's folder (the one with Package.swift and prompts/)")
        }
        return try JSONText.readFile(url)
    }

    /// The cached folder for a recipe, building it when missing. Returns (folder, built now).
    static func ensure(_ recipe: Recipe, log: (String) -> Void) throws -> (URL, Bool) {
        let data = try corpus()
        var h = SHA256()
        h.update(data)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys // key order is not stable otherwise
        let key =
            String(data: try encoder.encode(recipe.settings), encoding: .utf8)!
            + "|\(recipe.config.nLayer),\(recipe.config.nHead),\(recipe.config.nEmbd),\(recipe.config.nCtx)|\(recipe.vocabSize)|\(recipe.template)"
        h.update(Data(key.utf8))
        let hash = h.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
        let folder = URL(fileURLWithPath: "runs/.base-cache/base-\(hash)")
        if (try? ModelFolder.readConfig(folder)) != nil
            && FileManager.default.fileExists(atPath: folder.appendingPathComponent(ModelFolder.weightsFile).path)
        {
            log("using the cached base model \(folder.path)")
            return (folder, false)
        }
        log("building the base model from \(corpusPath) (config S, \(recipe.settings.steps) steps; cached afterwards)")
        let (model, report) = try Kernels.using(precision: .f32) {
            try PretrainCommand.build(
                corpus: String(decoding: data, as: UTF8.self), config: recipe.config,
                vocabSize: recipe.vocabSize, settings: recipe.settings, template: recipe.template)
        }
        try ModelFolder.save(model.model, tokenizer: model.tokenizer, annotations: model.annotations, to: folder)
        log(
            String(
                format: "base model ready: validation loss %.3f (%@) at %@", report.validationLoss, ProgressBar.duration(report.seconds), folder.path)
        )
        return (folder, true)
    }
}
