import Foundation

/// Per-position quantities computed from the logits, and gradients of objectives built from them.
///
/// With z = logits/τ and p = softmax(z):
/// - log p(y) = z_y − logsumexp(z)
/// - H = logsumexp(z) − Σ p·z
/// - ∂log p(y)/∂logits_j = (δ_jy − p_j)/τ
/// - ∂H/∂logits_j = −p_j·(log p_j + H)/τ
public enum LogitHeads {
    static let rowScratch = ScratchSet()

    /// Softmax of row/τ into `probs`; returns (logsumexp(z), Σ p·z).
    @inline(__always)
    static func softmaxRow(_ row: UnsafePointer<Float>, _ v: Int, _ invTemp: Float, _ probs: UnsafeMutablePointer<Float>) -> (Float, Float) {
        Kernels.active.softmaxRow(row, v, invTemp, probs)
    }

    static func forRows(_ n: Int, _ v: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
        let threads = n * v >= (1 << 15) ? Parallel.threadCount : 1
        Parallel.forEachTask(threads, threads: threads) { part, worker in
            let probs = rowScratch(worker).floats(v)
            for i in (n * part / threads)..<(n * (part + 1) / threads) { body(i, probs) }
        }
    }

    /// log p(target) under softmax(logits/τ) for each position; 0 where the target is negative
    /// (ignored).
    public static func targetLogProbs(_ acts: Activations, targets: [Int32], temperature: Float = 1) -> [Float] {
        let n = acts.batch * acts.length, v = acts.config.vocabSize
        precondition(targets.count == n)
        var out = [Float](repeating: 0, count: n)
        let logits = acts.logits.pointer
        out.withUnsafeMutableBufferPointer { o in
            let o = o.baseAddress!
            forRows(acts.logitRowCount, v) { r, probs in
                let i = acts.position(ofLogitRow: r), y = Int(targets[i])
                guard y >= 0 else { return }
                let (lse, _) = softmaxRow(logits + r * v, v, 1 / temperature, probs)
                o[i] = logits[r * v + y] / temperature - lse
            }
        }
        checkWindow(acts, targets)
        return out
    }

    /// Every target lies inside the logit window (a loss asked for one it did not compute).
    static func checkWindow(_ acts: Activations, _ targets: [Int32]) {
        guard let w = acts.logitWindow else { return }
        for (i, y) in targets.enumerated() where y >= 0 {
            precondition(w.contains(i % acts.length), "a target at position \(i % acts.length), outside the logit window \(w)")
        }
    }

    /// Entropy of softmax(logits/τ) at every position (0 outside the logit window).
    public static func entropies(_ acts: Activations, temperature: Float = 1) -> [Float] {
        let n = acts.batch * acts.length, v = acts.config.vocabSize
        var out = [Float](repeating: 0, count: n)
        let logits = acts.logits.pointer
        out.withUnsafeMutableBufferPointer { o in
            let o = o.baseAddress!
            forRows(acts.logitRowCount, v) { r, probs in
                let (lse, pz) = softmaxRow(logits + r * v, v, 1 / temperature, probs)
                o[acts.position(ofLogitRow: r)] = lse - pz
            }
        }
        return out
    }

    /// `targetLogProbs` and `entropies` from one softmax pass over each row (0 outside the logit
    /// window).
    public static func targetLogProbsAndEntropies(_ acts: Activations, targets: [Int32], temperature: Float = 1) -> (
        logProbs: [Float], entropies: [Float]
    ) {
        let n = acts.batch * acts.length, v = acts.config.vocabSize
        precondition(targets.count == n)
        var lp = [Float](repeating: 0, count: n), ent = [Float](repeating: 0, count: n)
        let logits = acts.logits.pointer
        lp.withUnsafeMutableBufferPointer { l in
            ent.withUnsafeMutableBufferPointer { e in
                let l = l.baseAddress!, e = e.baseAddress!
                forRows(acts.logitRowCount, v) { r, probs in
                    let i = acts.position(ofLogitRow: r)
                    let (lse, pz) = softmaxRow(logits + r * v, v, 1 / temperature, probs)
                    e[i] = lse - pz
                    let y = Int(targets[i])
                    if y >= 0 { l[i] = logits[r * v + y] / temperature - lse }
                }
            }
        }
        checkWindow(acts, targets)
        return (lp, ent)
    }

    /// Mean cross-entropy of the targets (negative targets are ignored). With `writeGradient`,
    /// fills `acts.dlogits` with the gradient of that mean.
    public static func crossEntropy(_ acts: Activations, targets: [Int32], writeGradient: Bool) -> Float {
        let count = targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) }
        guard count > 0 else {
            if writeGradient { acts.dlogits.zero() }
            return 0
        }
        let scale = -1 / Float(count)
        if writeGradient {
            let dLogp = targets.map { $0 >= 0 ? scale : 0 }
            let logp = logitGradient(acts, targets: targets, temperature: 1, dLogProb: dLogp, dEntropy: nil)
            return -logp.reduce(0, +) / Float(count)
        }
        return -targetLogProbs(acts, targets: targets).reduce(0, +) / Float(count)
    }

    /// Writes `acts.dlogits` = Σ_positions dLogProb·∂log p(target)/∂logits + dEntropy·∂H/∂logits
    /// under temperature τ; returns the target log-probabilities (0 for ignored targets).
    /// Either gradient may be nil; a negative target contributes no log-probability term.
    @discardableResult
    public static func logitGradient(
        _ acts: Activations, targets: [Int32], temperature: Float,
        dLogProb: [Float]?, dEntropy: [Float]?
    ) -> [Float] {
        let n = acts.batch * acts.length, v = acts.config.vocabSize
        precondition(targets.count == n && (dLogProb?.count ?? n) == n && (dEntropy?.count ?? n) == n)
        let logits = acts.logits.pointer, dlogits = acts.dlogits.pointer
        let invT = 1 / temperature
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            let o = o.baseAddress!
            forRows(acts.logitRowCount, v) { r, probs in
                let i = acts.position(ofLogitRow: r)
                let row = logits + r * v, drow = dlogits + r * v
                let (lse, pz) = softmaxRow(row, v, invT, probs)
                let y = Int(targets[i])
                let gl: Float = y >= 0 ? (dLogProb?[i] ?? 0) : 0
                let ge: Float = dEntropy?[i] ?? 0
                if y >= 0 { o[i] = row[y] * invT - lse }
                // d/dz_j = −gl·p_j − ge·p_j·(log p_j + H), with log p_j = z_j − lse
                let h = lse - pz
                Kernels.active.logitGradientRow(row, probs, drow, v, invT, lse, h, gl, ge)
                if y >= 0 { drow[y] += gl * invT }
            }
        }
        checkWindow(acts, targets)
        if let w = acts.logitWindow, let dEntropy {
            for (i, g) in dEntropy.enumerated() where g != 0 {
                precondition(w.contains(i % acts.length), "an entropy gradient at position \(i % acts.length), outside the logit window \(w)")
            }
        }
        return out
    }
}
