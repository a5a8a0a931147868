import Foundation

/// AdamW hyperparameters (PyTorch's defaults except the learning rate).
public struct AdamWConfig: Codable, Equatable, Sendable {
    /// Peak learning rate (schedules scale it per step).
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    /// Decoupled weight decay, applied to matrices only (not biases or LayerNorm parameters).
    public var weightDecay: Float

    /// A configuration; defaults match `torch.optim.AdamW` apart from the learning rate.
    public init(learningRate: Float = 3e-4, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.weightDecay = weightDecay
    }
}

/// AdamW with bias correction over a model's flat parameter buffer.
///
/// For each parameter: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
/// θ ← θ − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε) − lr·λ·θ (λ only on decaying tensors).
public final class AdamW {
    /// Hyperparameters.
    public var config: AdamWConfig
    /// First and second moments, laid out like the parameters.
    public let m: FloatBuffer, v: FloatBuffer
    /// Number of steps taken (t in the bias correction).
    public private(set) var step: Int = 0
    private let ranges: [(offset: Int, count: Int, decays: Bool)]
    private let totalCount: Int

    /// An optimiser for the parameters laid out by `layout`.
    public convenience init(layout: ParameterLayout, config: AdamWConfig) {
        self.init(ranges: layout.slots.map { ($0.offset, $0.count, $0.decays) }, count: layout.count, config: config)
    }

    /// An optimiser for LoRA adapters: every A and B matrix, with weight decay (as the Hugging
    /// Face Trainer decays every matrix it trains), and their head if they have one.
    public convenience init(lora: LoRAAdapters, config: AdamWConfig) {
        self.init(ranges: lora.trainedRanges, count: lora.parameters.count, config: config)
    }

    /// An optimiser for what `model` trains: its adapters when it has them, else every parameter.
    public convenience init(training model: TransformerModel, config: AdamWConfig) {
        if let l = model.lora { self.init(lora: l, config: config) } else { self.init(layout: model.layout, config: config) }
    }

    init(ranges: [(offset: Int, count: Int, decays: Bool)], count: Int, config: AdamWConfig) {
        self.config = config
        m = FloatBuffer(count: count, hugePages: true)
        v = FloatBuffer(count: count, hugePages: true)
        self.ranges = ranges
        totalCount = ranges.reduce(0) { $0 + $1.count }
    }

    /// Restores the step count (with the moments, for resuming).
    public func restore(step: Int) { self.step = step }

    /// Writes the moments and the step count to a safetensors file (tensors `m` and `v`, the step
    /// in the metadata), atomically.
    public func saveState(to url: URL) throws {
        try SafeTensorsWriter.write(
            [
                SafeTensorsOutput(name: "m", shape: [m.count], data: UnsafeBufferPointer(start: m.pointer, count: m.count)),
                SafeTensorsOutput(name: "v", shape: [v.count], data: UnsafeBufferPointer(start: v.pointer, count: v.count)),
            ],
            metadata: ["step": String(step)], to: url)
    }

    /// Reads what `saveState` wrote, after checking the file's SHA-256 against `sha256`.
    public func loadState(from url: URL, sha256: String) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FormatError("\(url.path): the optimiser state to resume from is missing")
        }
        guard try SHA256.hex(of: url) == sha256 else { throw FormatError("\(url.path): the optimiser state changed since it was saved") }
        let f = try SafeTensorsFile(url: url)
        try f.read("m", into: UnsafeMutableBufferPointer(start: m.pointer, count: m.count))
        try f.read("v", into: UnsafeMutableBufferPointer(start: v.pointer, count: v.count))
        guard let s = f.metadata["step"].flatMap(Int.init) else { throw FormatError("\(url.path): no optimiser step in the metadata") }
        step = s
    }

    /// Applies one update to `params` from `grads` with learning rate `lr` (a schedule's value).
    public func update(params: FloatBuffer, grads: FloatBuffer, lr: Float) {
        step += 1
        defer { Gemm.weightsChanged(params.pointer, count: params.count) }
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps
        let bc1 = 1 - powf(b1, Float(step)), bc2 = 1 - powf(b2, Float(step))
        let pp = params.pointer, gp = grads.pointer, mp = m.pointer, vp = v.pointer
        let wd = config.weightDecay
        let kern = Kernels.active
        // Every thread takes an equal share of the elements, not of the tensors: one tensor (the
        // embedding) can be a third of a model. Shares start at multiples of 16 elements into a
        // tensor, so every element takes the kernel's vector or scalar path as it would
        // if its tensor were updated whole, and the result does not depend on the thread count.
        let threads = totalCount >= 1 << 17 ? Parallel.threadCount : 1
        let starts = (0...threads).map { t in position(totalCount * t / threads) }
        Parallel.forEach(threads) { t in
            var (r, off) = starts[t]
            let (endRange, endOffset) = starts[t + 1]
            while r < endRange || (r == endRange && off < endOffset) {
                let (base, count, decays) = ranges[r]
                let stop = r == endRange ? endOffset : count
                let decay = decays ? lr * wd : 0
                if stop > off {
                    kern.adamw(
                        pp + base + off, gp + base + off, mp + base + off, vp + base + off, stop - off,
                        b1, b2, lr / bc1, bc2, eps, 1 - decay)
                }
                r += 1; off = 0
            }
        }
    }

    /// The tensor holding element `index` of the tensors laid end to end, and the offset into
    /// it, rounded down to a multiple of 16; (ranges.count, 0) past the end.
    func position(_ index: Int) -> (range: Int, offset: Int) {
        var rest = index
        for (r, range) in ranges.enumerated() {
            if rest < range.count { return (r, rest / 16 * 16) }
            rest -= range.count
        }
        return (ranges.count, 0)
    }
}

/// Global gradient-norm clipping: scales `grads` so their L2 norm is at most `maxNorm`, like
/// `torch.nn.utils.clip_grad_norm_`. Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ grads: FloatBuffer, maxNorm: Float) -> Float {
    let p = grads.pointer
    let sum = Kernels.active.sumOfSquares(p, grads.count)
    let norm = Float(sum.squareRoot())
    if norm.isFinite && norm > maxNorm {
        scaleInPlace(maxNorm / (norm + 1e-6), p, grads.count)
    }
    return norm
}
