/// The entry points of one instruction set's kernels, and the tile shapes its drivers must use.
///
/// A kernel target builds its table with `KernelTable.make(_:)`, which specialises every body for
/// the target's `KernelISA` inside that target, so its compiler flags apply. The closures capture
/// nothing; each is one non-generic function of the target.
public final class KernelTable: @unchecked Sendable {
    public typealias Tile = (
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?
    ) -> Void

    /// The path's name, as `RLHF_ISA` spells it.
    public let name: String
    /// Floats per vector.
    public let lanes: Int
    /// Rows and columns of the GEMM micro-tile.
    public let gemmMR: Int, gemmNR: Int
    /// Columns of the 4-row decode tile.
    public let decodeNR: Int

    /// C[0..<gemmMR, 0..<gemmNR] (=|+=) A·B; A packed, gemmMR floats per k.
    public let gemmTile: Tile
    /// C[0..<4, 0..<gemmNR] (=|+=) A·B; A holds 4 floats per k.
    public let gemmTile4: Tile
    /// C[0..<8, 0..<gemmNR] (=|+=) A·B, A holds 8 floats per k, on paths whose gemmMR is over 8
    /// (elsewhere the 4-row tile).
    public let gemmTile8: Tile
    /// C[0..<4, 0..<decodeNR] (=|+=) A·B; A holds 4 floats per k.
    public let decodeTile: Tile
    /// out[i] = a_i·w0, out[8+i] = a_i·w1 for the 8 rows a_i of `a` (8 × k).
    public let dotRows8x2:
        (
            _ a: UnsafePointer<Float>, _ k: Int, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
            _ out: UnsafeMutablePointer<Float>
        ) -> Void

    /// out[4·i + r] = a_i·w_r for the 4 rows a_i of `a` (4 × k) and 4 rows w_r of `w`, `ldw` apart.
    public let dotRows4x4:
        (
            _ a: UnsafePointer<Float>, _ k: Int, _ w: UnsafePointer<Float>, _ ldw: Int,
            _ out: UnsafeMutablePointer<Float>
        ) -> Void
    /// The decode-sized kernels above with B in bfloat16 (frozen weights held at half size).
    public let bf16: BF16Kernels
    /// The bfloat16 product tile, emulated in this path's fp32 vectors (`--precision bf16` on a
    /// CPU without AVX512-BF16, or with that path not chosen).
    public let bf16Tile: BF16Tile
    /// Rounding floats to bfloat16 pairs, as the bfloat16 products pack their operands.
    public let bf16Rows: BF16Rows
    public let bf16Interleave: BF16Interleave
    public let dot: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float
    public let axpy: (Float, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    public let addInPlace: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    public let add: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void
    public let scaleInPlace: (Float, UnsafeMutablePointer<Float>, Int) -> Void
    public let maxElement: (UnsafePointer<Float>, Int) -> Float
    public let expShiftSum: (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>, Int) -> Float
    public let sumOfSquares: (UnsafePointer<Float>, Int) -> Double
    /// exp of 16 floats in place (for tests of the vector exp).
    public let exp16: (UnsafeMutablePointer<Float>) -> Void
    /// tanh of 16 floats in place (for tests of the vector tanh).
    public let tanh16: (UnsafeMutablePointer<Float>) -> Void

    public let layerNormRows:
        (
            UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
            UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int, Float
        ) -> Void
    public let layerNormBackwardRows:
        (
            UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
            UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
            UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int
        ) -> Void
    public let geluForward: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void
    public let geluBackward: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void
    public let softmaxRow: (UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>) -> (Float, Float)
    public let logitGradientRow:
        (
            UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
            Int, Float, Float, Float, Float, Float
        ) -> Void
    public let adamw:
        (
            UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
            Int, Float, Float, Float, Float, Float, Float
        ) -> Void

    public let attentionTile:
        (
            UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int, Int,
            UnsafeMutablePointer<Float>, Int, Int
        ) -> Void
    public let attentionSoftmaxRow: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>, Int) -> Void
    public let softmaxGradRow: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Int) -> Void
    public let decodeScores: (UnsafePointer<Float>, Float, UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
    public let decodeWeightedValues: (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void
    /// RMSNorm rows lo..<hi (out, rstd, inp, w, lo, hi, C, eps).
    public let rmsNormRows:
        (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int, Float) -> Void
    /// RMSNorm backward rows lo..<hi (dinp, pdw, dout, inp, w, rstd, lo, hi, C).
    public let rmsNormBackwardRows:
        (
            UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
            UnsafePointer<Float>, Int, Int, Int
        ) -> Void
    /// SwiGLU rows lo..<hi (out, gate|up, lo, hi, I).
    public let swigluRows: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void
    /// SwiGLU backward rows lo..<hi (dgate|dup, gate|up, dout, lo, hi, I).
    public let swigluBackwardRows: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void

    @usableFromInline
    init(
        name: String,
        lanes: Int,
        gemmMR: Int,
        gemmNR: Int,
        decodeNR: Int,
        gemmTile: @escaping Tile,
        gemmTile4: @escaping Tile,
        gemmTile8: @escaping Tile,
        decodeTile: @escaping Tile,
        dotRows8x2:
            @escaping (
                _ a: UnsafePointer<Float>, _ k: Int, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>
            ) -> Void,
        dotRows4x4:
            @escaping (_ a: UnsafePointer<Float>, _ k: Int, _ w: UnsafePointer<Float>, _ ldw: Int, _ out: UnsafeMutablePointer<Float>) -> Void,
        bf16: BF16Kernels,
        bf16Tile: @escaping BF16Tile,
        bf16Rows: @escaping BF16Rows,
        bf16Interleave: @escaping BF16Interleave,
        dot: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float,
        axpy: @escaping (Float, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
        addInPlace: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
        add: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void,
        scaleInPlace: @escaping (Float, UnsafeMutablePointer<Float>, Int) -> Void,
        maxElement: @escaping (UnsafePointer<Float>, Int) -> Float,
        expShiftSum: @escaping (UnsafePointer<Float>, Float, UnsafeMutablePointer<Float>, Int) -> Float,
        sumOfSquares: @escaping (UnsafePointer<Float>, Int) -> Double,
        exp16: @escaping (UnsafeMutablePointer<Float>) -> Void,
        tanh16: @escaping (UnsafeMutablePointer<Float>) -> Void,
        layerNormRows:
            @escaping (
                UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                UnsafePointer<Float>, Int, Int, Int, Float
            ) -> Void,
        layerNormBackwardRows:
            @escaping (
                UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int
            ) -> Void,
        geluForward: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void,
        geluBackward: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void,
        softmaxRow: @escaping (UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>) -> (Float, Float),
        logitGradientRow:
            @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Float, Float, Float, Float) -> Void,
        adamw:
            @escaping (
                UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Float, Float,
                Float, Float, Float
            ) -> Void,
        attentionTile: @escaping (UnsafePointer<Float>, Int, Int, UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>, Int, Int) -> Void,
        attentionSoftmaxRow: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>, Int) -> Void,
        softmaxGradRow: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Float, Int) -> Void,
        decodeScores: @escaping (UnsafePointer<Float>, Float, UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void,
        decodeWeightedValues: @escaping (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void,
        rmsNormRows:
            @escaping (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int, Float) ->
            Void,
        rmsNormBackwardRows:
            @escaping (
                UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                UnsafePointer<Float>, Int, Int, Int
            ) -> Void,
        swigluRows: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void,
        swigluBackwardRows: @escaping (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int, Int) -> Void
    ) {
        self.name = name
        self.lanes = lanes
        self.gemmMR = gemmMR
        self.gemmNR = gemmNR
        self.decodeNR = decodeNR
        self.gemmTile = gemmTile
        self.gemmTile4 = gemmTile4
        self.gemmTile8 = gemmTile8
        self.decodeTile = decodeTile
        self.dotRows8x2 = dotRows8x2
        self.dotRows4x4 = dotRows4x4
        self.bf16 = bf16
        self.bf16Tile = bf16Tile
        self.bf16Rows = bf16Rows
        self.bf16Interleave = bf16Interleave
        self.dot = dot
        self.axpy = axpy
        self.addInPlace = addInPlace
        self.add = add
        self.scaleInPlace = scaleInPlace
        self.maxElement = maxElement
        self.expShiftSum = expShiftSum
        self.sumOfSquares = sumOfSquares
        self.exp16 = exp16
        self.tanh16 = tanh16
        self.layerNormRows = layerNormRows
        self.layerNormBackwardRows = layerNormBackwardRows
        self.geluForward = geluForward
        self.geluBackward = geluBackward
        self.softmaxRow = softmaxRow
        self.logitGradientRow = logitGradientRow
        self.adamw = adamw
        self.attentionTile = attentionTile
        self.attentionSoftmaxRow = attentionSoftmaxRow
        self.softmaxGradRow = softmaxGradRow
        self.decodeScores = decodeScores
        self.decodeWeightedValues = decodeWeightedValues
        self.rmsNormRows = rmsNormRows
        self.rmsNormBackwardRows = rmsNormBackwardRows
        self.swigluRows = swigluRows
        self.swigluBackwardRows = swigluBackwardRows
    }

    /// The table of `I`'s kernels. Call it only from the kernel target that declares `I`, so the
    /// bodies are compiled with that target's flags.
    @inlinable @inline(__always)
    public static func make<I: KernelISA>(_: I.Type) -> KernelTable {
        typealias B = Body<I>
        precondition([4, 6, 8, 12].contains(I.gemmMR) && [2, 3, 4, 6].contains(I.decodeVectors))
        return KernelTable(
            name: I.name, lanes: I.V.scalarCount,
            gemmMR: I.gemmMR, gemmNR: 2 * I.V.scalarCount, decodeNR: I.decodeVectors * I.V.scalarCount,
            gemmTile: { kc, a, b, ldb, c, ldc, mode, bias in B.tile2(rows: I.gemmMR, kc, a, b, ldb, c, ldc, mode, bias) },
            gemmTile4: { kc, a, b, ldb, c, ldc, mode, bias in B.tile2(rows: 4, kc, a, b, ldb, c, ldc, mode, bias) },
            gemmTile8: { kc, a, b, ldb, c, ldc, mode, bias in B.tile2(rows: I.gemmMR > 8 ? 8 : 4, kc, a, b, ldb, c, ldc, mode, bias) },
            decodeTile: { kc, a, b, ldb, c, ldc, mode, bias in B.decodeTile(vectors: I.decodeVectors, kc, a, b, ldb, c, ldc, mode, bias) },
            dotRows8x2: { B.dotRows8x2($0, $1, $2, $3, $4) },
            dotRows4x4: { B.dotRows4x4($0, $1, $2, $3, $4) },
            bf16: BF16Kernels(
                gemmTile4: { kc, a, b, ldb, c, ldc, mode, bias in B.decodeTile(vectors: 2, kc, a, b, ldb, c, ldc, mode, bias) },
                decodeTile: { kc, a, b, ldb, c, ldc, mode, bias in B.decodeTile(vectors: I.decodeVectors, kc, a, b, ldb, c, ldc, mode, bias) },
                dotRows8x2: { B.dotRows8x2($0, $1, $2, $3, $4) },
                dotRows4x4: { B.dotRows4x4($0, $1, $2, $3, $4) }),
            bf16Tile: { rows, kp, a, ars, aps, b, c, ldc, mode, bias in
                switch rows {
                case 12: B.bf16Tile(rows: 12, kp, a, ars, aps, b, c, ldc, mode, bias)
                case 8: B.bf16Tile(rows: 8, kp, a, ars, aps, b, c, ldc, mode, bias)
                default: B.bf16Tile(rows: 4, kp, a, ars, aps, b, c, ldc, mode, bias)
                }
            },
            bf16Rows: { B.bf16Rows($0, $1, $2) },
            bf16Interleave: { B.bf16Interleave($0, $1, $2, $3) },
            dot: { B.dot($0, $1, $2) },
            axpy: { B.axpy($0, $1, $2, $3) },
            addInPlace: { B.addInPlace($0, $1, $2) },
            add: { B.add($0, $1, $2, $3) },
            scaleInPlace: { B.scaleInPlace($0, $1, $2) },
            maxElement: { B.maxElement($0, $1) },
            expShiftSum: { B.expShiftSum($0, $1, $2, $3) },
            sumOfSquares: { B.sumOfSquares($0, $1) },
            exp16: { p in
                var i = 0; while i < 16 { B.store(B.exp(B.load(p + i)), p + i); i += B.lanes }
            },
            tanh16: { p in
                var i = 0; while i < 16 { B.store(B.tanh(B.load(p + i)), p + i); i += B.lanes }
            },
            layerNormRows: { B.layerNormRows($0, $1, $2, $3, $4, $5, $6, $7, $8, $9) },
            layerNormBackwardRows: { B.layerNormBackwardRows($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) },
            geluForward: { B.geluForward($0, $1, $2, $3) },
            geluBackward: { B.geluBackward($0, $1, $2, $3, $4) },
            softmaxRow: { B.softmaxRow($0, $1, $2, $3) },
            logitGradientRow: { B.logitGradientRow($0, $1, $2, $3, $4, $5, $6, $7, $8) },
            adamw: { B.adamw($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) },
            attentionTile: { B.attentionTile($0, $1, $2, $3, $4, $5, $6, $7, $8, $9) },
            attentionSoftmaxRow: { B.attentionSoftmaxRow($0, $1, $2, $3, $4, $5) },
            softmaxGradRow: { B.softmaxGradRow($0, $1, $2, $3, $4, $5) },
            decodeScores: { B.decodeScores($0, $1, $2, $3, $4, $5, $6) },
            decodeWeightedValues: { B.decodeWeightedValues($0, $1, $2, $3, $4) },
            rmsNormRows: { B.rmsNormRows($0, $1, $2, $3, $4, $5, $6, $7) },
            rmsNormBackwardRows: { B.rmsNormBackwardRows($0, $1, $2, $3, $4, $5, $6, $7, $8) },
            swigluRows: { B.swigluRows($0, $1, $2, $3, $4) },
            swigluBackwardRows: { B.swigluBackwardRows($0, $1, $2, $3, $4, $5) })
    }
}

/// Decode-sized kernels whose B operand is bfloat16, widened to floats as it is loaded.
public struct BF16Kernels: Sendable {
    public typealias Tile =
        @Sendable (
            _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<BFloat16>, _ ldb: Int,
            _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?
        ) -> Void
    /// C[0..<4, 0..<gemmNR] (=|+=) A·B; A holds 4 floats per k.
    public let gemmTile4: Tile
    /// C[0..<4, 0..<decodeNR] (=|+=) A·B; A holds 4 floats per k.
    public let decodeTile: Tile
    /// out[i] = a_i·w0, out[8+i] = a_i·w1 for the 8 rows a_i of `a` (8 × k).
    public let dotRows8x2:
        @Sendable (
            _ a: UnsafePointer<Float>, _ k: Int, _ w0: UnsafePointer<BFloat16>, _ w1: UnsafePointer<BFloat16>,
            _ out: UnsafeMutablePointer<Float>
        ) -> Void
    /// out[4·i + r] = a_i·w_r for the 4 rows a_i of `a` (4 × k) and 4 rows w_r of `w`, `ldw` apart.
    public let dotRows4x4:
        @Sendable (
            _ a: UnsafePointer<Float>, _ k: Int, _ w: UnsafePointer<BFloat16>, _ ldw: Int,
            _ out: UnsafeMutablePointer<Float>
        ) -> Void

    @inlinable
    public init(
        gemmTile4: @escaping Tile, decodeTile: @escaping Tile,
        dotRows8x2:
            @escaping @Sendable (UnsafePointer<Float>, Int, UnsafePointer<BFloat16>, UnsafePointer<BFloat16>, UnsafeMutablePointer<Float>) -> Void,
        dotRows4x4: @escaping @Sendable (UnsafePointer<Float>, Int, UnsafePointer<BFloat16>, Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        self.gemmTile4 = gemmTile4
        self.decodeTile = decodeTile
        self.dotRows8x2 = dotRows8x2
        self.dotRows4x4 = dotRows4x4
    }
}
