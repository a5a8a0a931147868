import XCTest
@testable import TransformerCore

/// Largest |a[i] − b[i]|.
func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// A small random model with GPT-2 initialisation scaled up so gradients are not tiny.
func randomModel(_ cfg: GPTConfig, seed: UInt64, scalarHead: Bool = false, scale: Float = 1) -> GPTModel {
    let model = GPTModel(config: cfg, scalarHead: scalarHead)
    model.initializeGPT2(seed: seed)
    if scale != 1 {
        var rng = SeededRandom(seed: seed &+ 99)
        for slot in model.layout.slots {
            let t = model.parameters.pointer + slot.offset
            for i in 0..<slot.count {
                t[i] = slot.decays ? t[i] * scale : t[i] + 0.1 * rng.normal()
            }
        }
    }
    return model
}

func randomTokens(_ n: Int, vocab: Int, rng: inout SeededRandom) -> [Int32] {
    (0..<n).map { _ in Int32(rng.int(below: vocab)) }
}
