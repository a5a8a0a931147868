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

    /// An optimiser for the parameters laid out by `layout`.
    public init(layout: ParameterLayout, config: AdamWConfig) {
        self.config = config
        m = FloatBuffer(count: layout.count, hugePages: true)
        v = FloatBuffer(count: layout.count, hugePages: true)
        ranges = layout.slots.map { ($0.offset, $0.count, $0.decays) }
    }

    /// Restores the step count (with the moments, for resuming).
    public func restore(step: Int) { self.step = step }

    /// Applies one update to `params` from `grads` with learning rate `lr` (a schedule's value).
    public func update(params: FloatBuffer, grads: FloatBuffer, lr: Float) {
        step += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps
        let bc1 = 1 - powf(b1, Float(step)), bc2 = 1 - powf(b2, Float(step))
        let pp = params.pointer, gp = grads.pointer, mp = m.pointer, vp = v.pointer
        let wd = config.weightDecay
        let total = ranges.reduce(0) { $0 + $1.count }
        Parallel.forEach(ranges.count, cost: total, minCostPerThread: 1 << 16) { r in
            let (off, count, decays) = ranges[r]
            let decay = decays ? lr * wd : 0
            let b1v = F16(repeating: b1), b2v = F16(repeating: b2)
            let ob1 = F16(repeating: 1 - b1), ob2 = F16(repeating: 1 - b2)
            let lrc = F16(repeating: lr / bc1), ibc2 = F16(repeating: 1 / bc2), epsv = F16(repeating: eps)
            let keep = F16(repeating: 1 - decay)
            var i = off
            let end = off + count
            while i + 16 <= end {
                let g = vload(gp + i)
                let mi = b1v * vload(mp + i) + ob1 * g
                let vi = b2v * vload(vp + i) + ob2 * g * g
                vstore(mi, mp + i); vstore(vi, vp + i)
                let denom = (vi * ibc2).squareRoot() + epsv
                vstore(vload(pp + i) * keep - lrc * mi / denom, pp + i)
                i += 16
            }
            while i < end {
                let g = gp[i]
                mp[i] = b1 * mp[i] + (1 - b1) * g
                vp[i] = b2 * vp[i] + (1 - b2) * g * g
                let denom = (vp[i] / bc2).squareRoot() + eps
                pp[i] = pp[i] * (1 - decay) - (lr / bc1) * mp[i] / denom
                i += 1
            }
        }
    }
}

/// Global gradient-norm clipping: scales `grads` so their L2 norm is at most `maxNorm`, like
/// `torch.nn.utils.clip_grad_norm_`. Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ grads: FloatBuffer, maxNorm: Float) -> Float {
    let p = grads.pointer
    var acc = SIMD16<Double>()
    var i = 0
    while i + 16 <= grads.count {
        let x = SIMD16<Double>(vload(p + i)); acc = acc.addingProduct(x, x); i += 16
    }
    var sum = acc.sum()
    while i < grads.count { sum += Double(p[i]) * Double(p[i]); i += 1 }
    let norm = Float(sum.squareRoot())
    if norm.isFinite && norm > maxNorm {
        scaleInPlace(maxNorm / (norm + 1e-6), p, grads.count)
    }
    return norm
}
