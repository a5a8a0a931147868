/// Activations and backward-pass buffers for one (B, T) shape, allocated once and reused.
///
/// Everything the backward pass needs from the forward pass is kept here; `TransformerModel.forward`
/// overwrites it on each call. Allocate one per shape (and per model that runs concurrently), or
/// one for the longest of several passes and `reshape` it for each (`ActivationSets`).
public final class Activations {
    /// Batch size and sequence length of the shape in use: the allocated one, or a smaller one
    /// set by `reshape(batch:length:)`.
    public private(set) var batch: Int, length: Int
    /// The shape the buffers were allocated for.
    public let allocatedBatch: Int, allocatedLength: Int
    let config: ModelConfig
    private(set) var n: Int

    final class Block {
        let ln1, ln1Mean, ln1Rstd, qkv, atty, att, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3: FloatBuffer
        init(_ config: ModelConfig, n: Int, b: Int, t: Int) {
            let c = config.nEmbd
            ln1 = FloatBuffer(count: n * c); ln1Mean = FloatBuffer(count: n); ln1Rstd = FloatBuffer(count: n)
            qkv = FloatBuffer(count: n * config.qkvWidth); atty = FloatBuffer(count: n * config.qDim)
            att = FloatBuffer(count: b * config.nHead * t * t); res2 = FloatBuffer(count: n * c)
            ln2 = FloatBuffer(count: n * c); ln2Mean = FloatBuffer(count: n); ln2Rstd = FloatBuffer(count: n)
            fch = FloatBuffer(count: n * config.mlpInWidth); fchGelu = FloatBuffer(count: n * config.intermediateSize)
            res3 = FloatBuffer(count: n * c)
        }
    }

    let encoded: FloatBuffer
    let blocks: [Block]
    /// Final LayerNorm output (B, T, C): the hidden state the heads read.
    public let lnf: FloatBuffer
    let lnfMean, lnfRstd: FloatBuffer
    /// Scalar-head output at every position (B, T), when the model has a scalar head.
    public let values: FloatBuffer
    private var logitsStorage: FloatBuffer?
    private var dlogitsStorage: FloatBuffer?

    // backward-pass buffers
    let dres, dtmp, dqkv, dfch, dhidden: FloatBuffer
    let lnPartials = Scratch()

    /// True when the set can only run forward passes (see `init(config:batch:length:inferenceOnly:)`).
    public let inferenceOnly: Bool

    /// Allocates buffers for batches of `batch` × `length` tokens.
    ///
    /// With `inferenceOnly`, every layer shares one set of layer buffers and there are no
    /// backward buffers: the forward pass gives the same outputs (hidden states, logits, values)
    /// from about 1/n_layer of the memory, but `TransformerModel.backward` cannot use the set.
    public init(config: ModelConfig, batch: Int, length: Int, inferenceOnly: Bool = false) {
        self.config = config; self.batch = batch; self.length = length; self.inferenceOnly = inferenceOnly
        allocatedBatch = batch; allocatedLength = length
        let n = batch * length
        self.n = n
        let c = config.nEmbd
        encoded = FloatBuffer(count: n * c)
        if inferenceOnly {
            let shared = Block(config, n: n, b: batch, t: length)
            blocks = Array(repeating: shared, count: config.nLayer)
        } else {
            blocks = (0..<config.nLayer).map { _ in Block(config, n: n, b: batch, t: length) }
        }
        lnf = FloatBuffer(count: n * c); lnfMean = FloatBuffer(count: n); lnfRstd = FloatBuffer(count: n)
        values = FloatBuffer(count: n)
        dtmp = FloatBuffer(count: n * max(c, config.qDim))
        let backward = inferenceOnly ? 0 : n
        dres = FloatBuffer(count: backward * c)
        dqkv = FloatBuffer(count: backward * config.qkvWidth); dfch = FloatBuffer(count: backward * config.mlpInWidth)
        dhidden = FloatBuffer(count: config.architecture.isLlamaFamily ? backward * config.intermediateSize : 0)
    }

    /// Whether the buffers can run batches of `batch` × `length` tokens.
    public func canHold(batch: Int, length: Int) -> Bool {
        batch >= 1 && length >= 1 && batch <= allocatedBatch && length <= allocatedLength
    }

    /// Runs later passes on batches of `batch` × `length` tokens, in a prefix of each buffer, so
    /// that passes of different lengths (micro-batches padded only to their own longest row)
    /// share one set instead of allocating one per shape. Clears `logitWindow`, which a loss
    /// then sets for the new shape.
    public func reshape(batch: Int, length: Int) {
        precondition(
            canHold(batch: batch, length: length),
            "a \(batch) × \(length) batch does not fit activations allocated for \(allocatedBatch) × \(allocatedLength)")
        logitWindow = nil
        self.batch = batch; self.length = length; n = batch * length
    }

    /// The positions of each sequence whose logits the forward pass computes (nil: all). A loss
    /// that reads only some positions (a completion after its prompt) sets it before the forward
    /// pass: the logit head's products and the passes over the vocabulary then skip the rest, and
    /// `logits` and `dlogits` hold (B, window, V).
    public var logitWindow: Range<Int>? {
        didSet {
            precondition(
                logitWindow.map { $0.lowerBound >= 0 && $0.upperBound <= length && !$0.isEmpty } ?? true, "logit window outside the sequence")
            // The buffers stay when they are big enough (each pass of DPO has a window of its own).
            if let l = logitsStorage, l.count < logitRowCount * config.vocabSize { logitsStorage = nil }
            if let l = dlogitsStorage, l.count < logitRowCount * config.vocabSize { dlogitsStorage = nil }
            if let h = windowHidden, h.count < logitRowCount * config.nEmbd { windowHidden = nil }
        }
    }

    /// Rows of `logits`: B × the window's length (or T).
    public var logitRowCount: Int { batch * (logitWindow?.count ?? length) }

    /// The position (b·T + t) whose logits are row `row` of `logits`.
    @inline(__always)
    public func position(ofLogitRow row: Int) -> Int {
        guard let w = logitWindow else { return row }
        return row / w.count * length + w.lowerBound + row % w.count
    }

    /// The final hidden states of the window's positions, gathered (B·window, C), and their
    /// gradient in the backward pass.
    var windowHidden: FloatBuffer?

    /// Logits (B, T, V), or (B, window, V) with a `logitWindow` (the buffer may be longer);
    /// allocated on first use (scalar-head models never need them).
    public var logits: FloatBuffer {
        if let l = logitsStorage { return l }
        let l = FloatBuffer(count: logitRowCount * config.vocabSize); logitsStorage = l; return l
    }

    /// Whether `dlogits` is the logits' own buffer: a loss that reads each logit only before
    /// writing its gradient (`LogitHeads.logitGradient`) then overwrites the logits, and the
    /// (B, T, V) buffer, the largest of a large-vocabulary model, is held once.
    public var gradientOverwritesLogits = false

    /// Gradient of the objective with respect to the logits (B, T, V), filled by a loss before
    /// `TransformerModel.backward`.
    public var dlogits: FloatBuffer {
        if gradientOverwritesLogits { return logits }
        if let l = dlogitsStorage { return l }
        let l = FloatBuffer(count: logitRowCount * config.vocabSize); dlogitsStorage = l; return l
    }

    /// Floats held by this activation set (for memory reports).
    public var floatCount: Int {
        var total = encoded.count + lnf.count + lnfMean.count * 2 + values.count
        total += dres.count + dtmp.count + dqkv.count + dfch.count + dhidden.count
        for b in inferenceOnly ? Array(blocks.prefix(1)) : blocks {
            let nc = [b.ln1, b.atty, b.res2, b.ln2, b.res3].reduce(0) { $0 + $1.count }
            let stats = [b.ln1Mean, b.ln1Rstd, b.ln2Mean, b.ln2Rstd].reduce(0) { $0 + $1.count }
            total += nc + stats + b.qkv.count + b.att.count + b.fch.count + b.fchGelu.count
        }
        total += (logitsStorage?.count ?? 0) + (dlogitsStorage?.count ?? 0) + (windowHidden?.count ?? 0)
        return total
    }
}

/// One model's activation sets for passes whose lengths change from pass to pass and from
/// iteration to iteration (prompts and completions of different lengths): one set per row
/// count, reshaped for each pass and allocated again only when a pass is longer than it holds.
/// Keeping a set per shape instead would hold a new one for every length a run ever meets.
public final class ActivationSets {
    private let config: ModelConfig
    private let inferenceOnly: Bool
    private var sets: [Int: Activations] = [:]

    /// Sets for `config`'s model; with `inferenceOnly`, forward-only ones. Their logit gradient
    /// overwrites the logits it reads (`Activations.gradientOverwritesLogits`).
    public init(config: ModelConfig, inferenceOnly: Bool = false) {
        self.config = config; self.inferenceOnly = inferenceOnly
    }

    /// The set for a pass of `rows` × `length` tokens, shaped for it. A new set is allocated
    /// with room for `room` tokens per row (at least `length`): pass the longest length of the
    /// passes to come, so that they all fit the first.
    public func shaped(rows: Int, length: Int, room: Int = 0) -> Activations {
        let a: Activations
        if let held = sets[rows], held.canHold(batch: rows, length: length) {
            a = held
        } else {
            sets[rows] = nil // free the shorter set before allocating
            a = Activations(config: config, batch: rows, length: max(length, room), inferenceOnly: inferenceOnly)
            a.gradientOverwritesLogits = true
            sets[rows] = a
        }
        a.reshape(batch: rows, length: length)
        return a
    }

    /// Floats held by the sets.
    public var floatCount: Int { sets.values.reduce(0) { $0 + $1.floatCount } }
}
