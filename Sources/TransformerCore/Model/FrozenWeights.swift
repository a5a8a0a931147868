/// The float type a model's frozen weights are held in (`--frozen-dtype`).
public enum FrozenDType: String, Codable, CaseIterable, Sendable {
    /// Single precision, as loaded.
    case f32
    /// The block projections in bfloat16 (half the bytes), widened to floats as the kernels read
    /// them; everything else (embeddings, norms, biases, a scalar head) stays single precision.
    case bf16
}

/// A model's block projections held in bfloat16, in place of their single-precision copies,
/// whose memory is given back.
final class HalfProjections {
    /// Every projection of every block, one after another.
    let storage: FloatBuffer
    /// Where the projection at each site of each layer starts (elements), `layer * 4 + site`.
    let starts: [Int]
    /// The parameters whose single-precision values are gone.
    let released: Set<String>
    /// Bytes of the single-precision buffer given back to the operating system.
    let releasedBytes: Int
    /// Elements held.
    let count: Int

    init(storage: FloatBuffer, starts: [Int], released: Set<String>, releasedBytes: Int, count: Int) {
        self.storage = storage; self.starts = starts; self.released = released; self.releasedBytes = releasedBytes; self.count = count
    }

    /// The projection at `site` of `layer`.
    @inline(__always)
    func weights(_ layer: Int, _ site: ProjectionSite) -> UnsafePointer<BFloat16> {
        UnsafeRawPointer(storage.pointer).assumingMemoryBound(to: BFloat16.self) + starts[layer * 4 + site.rawValue]
    }
}

/// What models sharing one parameter buffer also share: the bfloat16 copy of their projections,
/// once one of them has made it.
final class WeightStore {
    var half: HalfProjections?
}

extension TransformerModel {
    /// The float type the block projections are held in.
    public var frozenDType: FrozenDType { weightStore.half == nil ? .f32 : .bf16 }

    /// The parameters in each projection (site) of a block, in layout order: fused groups
    /// (q|k|v, gate|up) are one range.
    func projectionSlots(layer l: Int) -> [(ProjectionSite, [String])] {
        if config.architecture.isLlamaFamily {
            let h = "model.layers.\(l)."
            return [
                (.qkv, [h + "self_attn.q_proj.weight", h + "self_attn.k_proj.weight", h + "self_attn.v_proj.weight"]),
                (.attentionOut, [h + "self_attn.o_proj.weight"]),
                (.mlpIn, [h + "mlp.gate_proj.weight", h + "mlp.up_proj.weight"]),
                (.mlpOut, [h + "mlp.down_proj.weight"]),
            ]
        }
        let h = "h.\(l)."
        return [
            (.qkv, [h + "attn.c_attn.weight"]), (.attentionOut, [h + "attn.c_proj.weight"]),
            (.mlpIn, [h + "mlp.c_fc.weight"]), (.mlpOut, [h + "mlp.c_proj.weight"]),
        ]
    }

    /// Holds the weights of every block projection (attention q|k|v and output, MLP in and out)
    /// in bfloat16 from now on, rounded to nearest even, and gives their single-precision
    /// memory back: the model then takes about half the memory for the same work, and every
    /// product with those weights widens them as it reads them. Models sharing this one's
    /// weights (`init(sharingWeightsOf:)`) see the change.
    ///
    /// Only for weights that no longer change: the model must not have a gradient buffer, and
    /// nothing may write or read those parameters as floats afterwards (`tensor(_:)`,
    /// `copyParameters`, saving full weights and merging adapters refuse). Embeddings, norms,
    /// biases and a scalar head stay in single precision. Calling it again does nothing.
    public func holdProjectionsInBFloat16() {
        if weightStore.half != nil { return }
        precondition(!hasGradientBuffer, "holdProjectionsInBFloat16: the model trains its own weights")
        var ranges: [Range<Int>] = []
        var names: Set<String> = []
        for l in 0..<config.nLayer {
            for (_, slots) in projectionSlots(layer: l) {
                let first = layout[slots[0]]!, last = layout[slots[slots.count - 1]]!
                ranges.append(first.offset..<(last.offset + last.count))
                names.formUnion(slots)
            }
        }
        var starts: [Int] = [], total = 0
        for r in ranges {
            starts.append(total)
            total += (r.count + 31) / 32 * 32 // each projection 64-byte aligned
        }
        let storage = FloatBuffer(count: (total + 1) / 2, hugePages: true)
        let dst = UnsafeMutableRawPointer(storage.pointer)
        let src = parameters.pointer
        Parallel.forEachTask(ranges.count, threads: Parallel.threadCount) { i, _ in
            let r = ranges[i], out = dst + 2 * starts[i]
            for (j, e) in r.enumerated() { out.storeBytes(of: BFloat16(src[e]).bits, toByteOffset: 2 * j, as: UInt16.self) }
        }
        var given = 0
        for r in ranges { given += parameters.release(r) }
        weightStore.half = HalfProjections(storage: storage, starts: starts, released: names, releasedBytes: given, count: total)
    }

    /// The bfloat16 projection at `site` of `layer`, when the model holds them so.
    @inline(__always)
    func halfWeights(_ layer: Int, _ site: ProjectionSite) -> UnsafePointer<BFloat16>? {
        weightStore.half?.weights(layer, site)
    }

    /// Bytes of the model's weights as held: the single-precision buffer less what was given
    /// back, plus a bfloat16 copy of the projections (a model sharing another's weights counts
    /// the same bytes as it).
    public var weightBytes: Int {
        guard let h = weightStore.half else { return 4 * layout.count }
        return 4 * layout.count - h.releasedBytes + 2 * h.count
    }

    /// Whether the parameter `name` still holds its single-precision values.
    func holdsFloats(_ name: String) -> Bool { !(weightStore.half?.released.contains(name) ?? false) }
}
