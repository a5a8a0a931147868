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
func randomModel(_ cfg: ModelConfig, seed: UInt64, scalarHead: Bool = false, scale: Float = 1) -> TransformerModel {
    let model = TransformerModel(config: cfg, scalarHead: scalarHead)
    model.initialize(seed: seed)
    if scale != 1 {
        var rng = SeededRandom(seed: seed &+ 99)
        for slot in model.layout.slots {
            let t = model.parameters.pointer + slot.offset
            for i in 0..<slot.count {
                t[i] = slot.decays ? t[i] * scale : t[i] + 0.1 * rng.normal()
            }
        }
        model.weightsChanged()
    }
    return model
}

/// The central difference of `objective` in the float at `p` (step h), against the analytic
/// gradient `analytic`: within 2e-3 plus 2% of the larger of the two.
func assertFiniteDifference(
    _ p: UnsafeMutablePointer<Float>, analytic: Float, _ what: @autoclosure () -> String, h: Float = 1e-2,
    objective: () -> Double, file: StaticString = #filePath, line: UInt = #line
) {
    let saved = p.pointee
    p.pointee = saved + h; let up = objective()
    p.pointee = saved - h; let down = objective()
    p.pointee = saved
    let numeric = (up - down) / (2 * Double(h)), a = Double(analytic)
    XCTAssertLessThanOrEqual(
        abs(numeric - a), 2e-3 + 2e-2 * max(abs(numeric), abs(a)),
        "\(what()): analytic \(a), numeric \(numeric)", file: file, line: line)
}

/// The gradient checks' batch: two left-padded sequences (lengths 6 and 4) with next-token targets.
func gradientCheckBatch(vocab: Int) -> (TokenBatch, [Int32]) {
    var rng = SeededRandom(seed: 11)
    let seqs = [randomTokens(6, vocab: vocab, rng: &rng), randomTokens(4, vocab: vocab, rng: &rng)]
    let b = TokenBatch(leftPadding: seqs, pad: 0)
    var targets = [Int32](repeating: -1, count: b.tokens.count)
    for i in 0..<(b.tokens.count - 1) where b.mask[i] == 1 && b.mask[i + 1] == 1 && (i + 1) % b.length != 0 {
        targets[i] = b.tokens[i + 1]
    }
    return (b, targets)
}

/// The reward-model objective of the gradient checks: a weighted sum of the scalar head at the
/// last real token of each sequence, and its gradient with respect to the head's outputs.
struct LastTokenObjective {
    let weights: [Float] = [1.0, -0.7]

    func value(_ model: TransformerModel, _ b: TokenBatch, _ acts: Activations) -> Double {
        model.forward(b, acts, computeLogits: false)
        let r = model.lastTokenValues(b, acts)
        return Double(r[0] * weights[0] + r[1] * weights[1])
    }

    func dValues(_ b: TokenBatch) -> [Float] {
        var dv = [Float](repeating: 0, count: b.tokens.count)
        for i in 0..<b.batch { dv[i * b.length + b.lastRealIndex(i)] = weights[i] }
        return dv
    }
}

func randomTokens(_ n: Int, vocab: Int, rng: inout SeededRandom) -> [Int32] {
    (0..<n).map { _ in Int32(rng.int(below: vocab)) }
}

/// A fixture file or folder under Fixtures/.
func fixtureURL(_ path: String) -> URL {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(path)
}

/// Fixtures/hf/golden_hf.json, written by Fixtures/hf/make_hf_fixtures.py from Hugging Face's code.
let hfGolden: [String: Any] = {
    let data = try! Data(contentsOf: fixtureURL("hf/golden_hf.json"))
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

/// A fresh empty temporary folder.
func temporaryFolder(_ name: String = #function) -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("rlhf-tests-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// For each (key, value, needle): a copy of the model folder `src` with `config.json`'s key set
/// to value must fail to load with an error containing needle.
func assertConfigEditsRefused(_ src: URL, _ cases: [(String, Any, String)], file: StaticString = #filePath, line: UInt = #line) throws {
    let base = try JSONText.object(Data(contentsOf: src.appendingPathComponent("config.json")), "config")
    for (key, value, needle) in cases {
        let dir = temporaryFolder()
        for f in try FileManager.default.contentsOfDirectory(atPath: src.path) {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        var cfg = base
        cfg[key] = value
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelFolder.load(dir), key, file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(needle), "\(key): \(e)", file: file, line: line)
        }
    }
}

func int32s(_ v: Any?) -> [Int32] { (v as! [NSNumber]).map { Int32($0.intValue) } }

/// A test case whose tests run their checks once on each kernel path this CPU supports
/// (AVX-512, AVX2 and portable on an AVX-512 machine) through `forEachPath`, with the path named
/// in each failure.
class EveryPathTestCase: XCTestCase {
    private var pathUnderTest: KernelPath?

    /// Runs `body` under each available path's kernels in turn.
    /// Small configurations of each architecture with every variant feature switched on: GPT-2;
    /// Llama with grouped-query attention, an untied head and llama3 rotary scaling; Qwen2 with
    /// q/k/v biases, one key/value head, head_dim·heads ≠ hidden size and a tied head.
    static func architectureConfigs(layers: Int = 3, embd: Int = 64, ctx: Int = 40, vocab: Int = 97) -> [ModelConfig] {
        [
            ModelConfig(nLayer: layers, nHead: 4, nEmbd: embd, nCtx: ctx, vocabSize: vocab),
            ModelConfig(
                llama: .llama, nLayer: layers, nHead: 4, nKVHead: 2, nEmbd: embd, intermediateSize: embd * 3 / 2 + 1,
                nCtx: ctx, vocabSize: vocab, ropeTheta: 500,
                ropeScaling: RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8),
                tieWordEmbeddings: false),
            ModelConfig(
                llama: .qwen2, nLayer: layers, nHead: 4, nKVHead: 1, nEmbd: embd, headDim: embd / 2, intermediateSize: embd * 2,
                nCtx: ctx, vocabSize: vocab, rmsNormEpsilon: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true),
        ]
    }

    /// Runs `body` with each configuration on every kernel path.
    func forEachArchitecture(_ configs: [ModelConfig], _ body: (ModelConfig) throws -> Void) rethrows {
        for c in configs { try forEachPath { try body(c) } }
    }

    func forEachPath(_ body: () throws -> Void) rethrows {
        // In single precision avx512bf16 runs the AVX-512 kernels: the same code, tested once.
        for path in Kernels.available where path != .avx512bf16 || Kernels.precision == .bf16 {
            pathUnderTest = path
            defer { pathUnderTest = nil }
            try Kernels.using(path) { try body() }
        }
    }

    override func recordFailure(withDescription description: String, inFile filePath: String, atLine lineNumber: Int, expected: Bool) {
        let tag = pathUnderTest.map { "[\($0.rawValue) kernels] " } ?? ""
        super.recordFailure(withDescription: tag + description, inFile: filePath, atLine: lineNumber, expected: expected)
    }
}

/// The language-model loss of a batch, the objective of a gradient check: its value, and the
/// backward pass that writes its gradients (after `zeroGradients` clears those being checked).
struct LanguageModelLoss {
    let model: TransformerModel
    let batch: TokenBatch
    let targets: [Int32]
    let acts: Activations
    let zeroGradients: () -> Void

    func value() -> Double {
        model.forward(batch, acts)
        return Double(LogitHeads.crossEntropy(acts, targets: targets, writeGradient: false))
    }

    func gradients() {
        model.forward(batch, acts)
        _ = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
        zeroGradients()
        model.backward(batch, acts, fromLogits: true)
    }
}

/// 60 AdamW steps on one fixed batch of random tokens (a 2-layer GPT-2, vocabulary 29) in the
/// current precision: the loss of the first and of the last step, and the trained model.
func memoriseOneBatch() -> (first: Float, last: Float, model: TransformerModel) {
    let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 16, vocabSize: 29)
    let model = randomModel(cfg, seed: 2)
    var rng = SeededRandom(seed: 3)
    let tokens = randomTokens(4 * 16, vocab: cfg.vocabSize, rng: &rng)
    let b = TokenBatch(tokens: tokens, batch: 4, length: 16)
    let targets = (0..<tokens.count).map { $0 % 16 == 15 ? Int32(-1) : tokens[$0 + 1] }
    let acts = Activations(config: cfg, batch: 4, length: 16)
    let opt = AdamW(layout: model.layout, config: AdamWConfig(learningRate: 3e-3))
    var first: Float = 0, last: Float = 0
    for step in 0..<60 {
        model.forward(b, acts)
        let loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
        if step == 0 { first = loss }
        last = loss
        model.zeroGradients()
        model.backward(b, acts, fromLogits: true)
        clipGradientNorm(model.gradients, maxNorm: 1)
        opt.update(params: model.parameters, grads: model.gradients, lr: 3e-3)
    }
    return (first, last, model)
}
