import Foundation
import TransformerCore

/// `rlhf bench --only bf16`: how much bfloat16 projections change a model's logits
/// (`bf16LogitChange` in TransformerCore measures it).
extension BenchCommand {
    /// The bf16 rows, for the model folder `folder` or else each configuration's random model.
    static func reportBF16(_ out: BenchOutput, folder: String?, configs: [String]) throws {
        var models: [(String, TransformerModel)] = []
        if let dir = folder {
            models.append((dir, try ModelFolder.load(locateModel(dir).folder).model))
        } else {
            for name in configs {
                let m = TransformerModel(config: ModelConfig.preset(name)!)
                m.initialize(seed: 1)
                models.append((label(name), m))
            }
        }
        for (name, model) in models {
            for (what, value) in bf16LogitChange(model) {
                out.emit(
                    ["what": "bf16", "model": name, "measure": what, "value": value],
                    text: "bf16 \(name)  \(what)\(precisionTag)".column(64) + String(format: "%.6g", value))
            }
        }
    }
}
