/// Runs a scalar-head model (reward or value model) over lists of token sequences of different
/// lengths, a micro-batch at a time, reading the head at each sequence's last token.
///
/// For training, sequences are right-padded into a fixed number of rows and a length rounded up
/// to a multiple of 32, so only a few activation shapes are ever allocated; unused rows are pure
/// padding. Scoring sorts the sequences by length first and pads each micro-batch only to its
/// own longest, rounded up to a multiple of 8, so little of the work goes to padding.
public final class ScalarHeadRunner {
    /// The model (it must have a scalar head).
    public let model: TransformerModel
    /// Sequences per forward pass.
    public let rows: Int
    private var activations: [Int: Activations] = [:]
    /// Forward-only activation sets for `scores` (one layer's buffers each).
    private var inferenceActivations: [Int: Activations] = [:]

    /// Floats held by the activation sets allocated so far.
    public var activationFloatCount: Int {
        (Array(activations.values) + Array(inferenceActivations.values)).reduce(0) { $0 + $1.floatCount }
    }

    public init(model: TransformerModel, rows: Int = 16) {
        precondition(model.hasScalarHead, "ScalarHeadRunner needs a model with a scalar head")
        self.model = model; self.rows = max(1, rows)
    }

    private func prepare(_ seqs: [[Int32]], inferenceOnly: Bool = false) -> (TokenBatch, Activations) {
        precondition(!seqs.isEmpty && seqs.count <= rows, "1...\(rows) sequences per micro-batch")
        precondition(seqs.allSatisfy { !$0.isEmpty && $0.count <= model.config.nCtx }, "sequences must be non-empty and fit n_ctx")
        let longest = seqs.map(\.count).max()!
        let step = inferenceOnly ? 8 : 32
        let t = min(model.config.nCtx, (longest + step - 1) / step * step)
        // Scoring runs only the rows it has; training keeps one row count (fewer shapes to hold).
        let rows = inferenceOnly ? seqs.count : self.rows
        var padded = seqs
        while padded.count < rows { padded.append([]) }
        var batch = TokenBatch(rightPadding: padded, pad: 0)
        if batch.length < t { // widen to the bucket length with more padding
            let extra = t - batch.length
            var tokens: [Int32] = [], mask: [UInt8] = [], pos: [Int32] = []
            for r in 0..<rows {
                let row = r * batch.length
                tokens += batch.tokens[row..<(row + batch.length)] + [Int32](repeating: 0, count: extra)
                mask += batch.mask[row..<(row + batch.length)] + [UInt8](repeating: 0, count: extra)
                pos += batch.positions[row..<(row + batch.length)] + [Int32](repeating: batch.positions[row + batch.length - 1], count: extra)
            }
            batch = TokenBatch(tokens: tokens, batch: rows, length: t)
            batch.mask = mask; batch.positions = pos
        }
        if inferenceOnly {
            let key = rows << 32 | t
            if let a = inferenceActivations[key] { return (batch, a) }
            // Hold a few shapes (each is one layer's buffers), not every length ever scored.
            if inferenceActivations.count >= 8 { inferenceActivations.removeAll() }
            let a = Activations(config: model.config, batch: rows, length: t, inferenceOnly: true)
            inferenceActivations[key] = a
            return (batch, a)
        }
        if activations[t] == nil { activations[t] = Activations(config: model.config, batch: rows, length: t) }
        return (batch, activations[t]!)
    }

    /// Head values at the last token of each sequence, in the order given.
    public func scores(_ seqs: [[Int32]]) -> [Float] {
        var out = [Float](repeating: 0, count: seqs.count)
        // Longest first, so each micro-batch holds sequences of about one length.
        let order = seqs.indices.sorted { seqs[$0].count > seqs[$1].count || (seqs[$0].count == seqs[$1].count && $0 < $1) }
        var i = 0
        while i < order.count {
            let chunk = Array(order[i..<min(i + rows, order.count)])
            let (batch, acts) = prepare(chunk.map { seqs[$0] }, inferenceOnly: true)
            model.forward(batch, acts, computeLogits: false)
            for (value, at) in zip(model.lastTokenValues(batch, acts), chunk) { out[at] = value }
            i += rows
        }
        return out
    }

    /// One forward and backward pass over at most `rows` sequences. `objective` receives the
    /// scores and returns the gradient of the loss with respect to each; the parameter gradients
    /// are accumulated into `model.gradients`. Returns the scores.
    @discardableResult
    public func accumulateGradients(_ seqs: [[Int32]], objective: ([Float]) -> [Float]) -> [Float] {
        let (batch, acts) = prepare(seqs)
        model.forward(batch, acts, computeLogits: false)
        let scores = Array(model.lastTokenValues(batch, acts).prefix(seqs.count))
        let d = objective(scores)
        precondition(d.count == seqs.count, "one gradient per sequence")
        var dValues = [Float](repeating: 0, count: rows * batch.length)
        for (i, g) in d.enumerated() { dValues[i * batch.length + batch.lastRealIndex(i)] = g }
        model.backward(batch, acts, fromLogits: false, dValues: dValues)
        return scores
    }
}
