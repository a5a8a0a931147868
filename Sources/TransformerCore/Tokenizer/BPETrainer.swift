/// Learns a byte-level BPE vocabulary from a corpus, deterministically.
///
/// The corpus is cut around special tokens and pre-tokenised with GPT-2's pattern; the base
/// vocabulary is the 256 byte symbols in GPT-2's order. Each step merges the most frequent
/// adjacent pair, ties going to the pair whose spelling sorts first, until the vocabulary (with
/// the special tokens appended at the end) reaches the requested size or no pair occurs twice.
public enum BPETrainer {
    /// Progress callback: merges done, merges planned.
    public typealias Progress = (Int, Int) -> Void

    /// Trains a tokenizer of at most `vocabSize` ids on `corpus`.
    public static func train(
        corpus: String, vocabSize: Int, specialTokens: [String] = ["<|endoftext|>", "<|pad|>"],
        progress: Progress? = nil
    ) throws -> Tokenizer {
        guard vocabSize >= 256 + specialTokens.count else {
            throw FormatError(
                "a byte-level vocabulary needs at least \(256 + specialTokens.count) ids (256 bytes + \(specialTokens.count) special tokens); got \(vocabSize)"
            )
        }
        // Base symbols: the 256 bytes, ordered by their byte-level code point (GPT-2's order).
        let byteOrder = (0..<256).sorted { ByteLevel.scalar[$0] < ByteLevel.scalar[$1] }
        var spelling: [[UInt8]] = Array(repeating: [], count: 256)
        var idOfByte = [Int32](repeating: 0, count: 256)
        for (id, b) in byteOrder.enumerated() { spelling[id] = [UInt8(b)]; idOfByte[b] = Int32(id) }

        // Word frequencies.
        var counts: [[UInt8]: Int] = [:]
        let specialBytes = specialTokens.map { Array($0.utf8) }.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        let bytes = Array(corpus.utf8)
        PreTokenizer.forEachSegment(bytes, specials: specialBytes) { from, to, _ in
            PreTokenizer.forEachPiece(bytes, from, to) { counts[Array($0), default: 0] += 1 }
        }
        let sortedWords = counts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words: [[Int32]] = sortedWords.map { $0.key.map { idOfByte[Int($0)] } }
        let freq: [Int] = sortedWords.map(\.value)

        var pairCount: [UInt64: Int] = [:]
        var pairWords: [UInt64: [Int32]] = [:]
        func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        for (w, sym) in words.enumerated() where sym.count > 1 {
            for i in 0..<(sym.count - 1) {
                let k = key(sym[i], sym[i + 1])
                pairCount[k, default: 0] += freq[w]
                pairWords[k, default: []].append(Int32(w))
            }
        }
        var heap = BinaryHeap<PairCount>()
        for (k, c) in pairCount.sorted(by: { $0.key < $1.key }) { heap.push(PairCount(count: c, key: k), by: PairCount.before(spelling)) }

        var merges: [(Int32, Int32)] = []
        let planned = vocabSize - specialTokens.count - 256
        var stamp = [Int](repeating: -1, count: words.count)
        while merges.count < planned, let top = heap.pop(by: PairCount.before(spelling)) {
            guard pairCount[top.key] == top.count else { continue } // stale entry
            guard top.count >= 2 else { break }
            let a = Int32(truncatingIfNeeded: top.key >> 32), b = Int32(truncatingIfNeeded: top.key & 0xFFFF_FFFF)
            let newId = Int32(spelling.count)
            spelling.append(spelling[Int(a)] + spelling[Int(b)])
            merges.append((a, b))
            var touched = Set<UInt64>()
            for w32 in pairWords[top.key] ?? [] {
                let w = Int(w32)
                if stamp[w] == merges.count { continue }
                stamp[w] = merges.count
                let old = words[w]
                // Remove the word's pairs, merge, add them back.
                for i in 0..<(old.count - 1) { let k = key(old[i], old[i + 1]); pairCount[k]! -= freq[w]; touched.insert(k) }
                var merged: [Int32] = []
                merged.reserveCapacity(old.count)
                var i = 0
                while i < old.count {
                    if i + 1 < old.count && old[i] == a && old[i + 1] == b { merged.append(newId); i += 2 } else { merged.append(old[i]); i += 1 }
                }
                words[w] = merged
                if merged.count > 1 {
                    for i in 0..<(merged.count - 1) {
                        let k = key(merged[i], merged[i + 1])
                        pairCount[k, default: 0] += freq[w]
                        touched.insert(k)
                        if merged[i] == newId || merged[i + 1] == newId { pairWords[k, default: []].append(w32) }
                    }
                }
            }
            pairWords[top.key] = nil
            for k in touched {
                let c = pairCount[k] ?? 0
                if c > 0 { heap.push(PairCount(count: c, key: k), by: PairCount.before(spelling)) } else { pairCount[k] = nil }
            }
            progress?(merges.count, planned)
        }

        var vocab: [String: Int] = [:]
        for (id, s) in spelling.enumerated() { vocab[ByteLevel.encode(s)] = id }
        var special: [String: Int] = [:]
        for (i, s) in specialTokens.enumerated() { special[s] = spelling.count + i }
        let mergeStrings = merges.map { (ByteLevel.encode(spelling[Int($0.0)]), ByteLevel.encode(spelling[Int($0.1)])) }
        return try Tokenizer(
            vocab: vocab, merges: mergeStrings, special: special,
            eos: specialTokens.first, pad: specialTokens.count > 1 ? specialTokens[1] : nil)
    }
}

/// A pair and its count in the trainer's heap.
struct PairCount {
    var count: Int
    var key: UInt64

    /// Higher counts first; ties go to the pair whose (left, right) spelling sorts first.
    static func before(_ sp: [[UInt8]]) -> (PairCount, PairCount) -> Bool {
        { x, y in
            if x.count != y.count { return x.count > y.count }
            let xa = sp[Int(x.key >> 32)], ya = sp[Int(y.key >> 32)]
            if xa != ya { return xa.lexicographicallyPrecedes(ya) }
            return sp[Int(x.key & 0xFFFF_FFFF)].lexicographicallyPrecedes(sp[Int(y.key & 0xFFFF_FFFF)])
        }
    }
}
