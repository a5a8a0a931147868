import Foundation

/// A failure to read, validate or write a tokenizer or model file. The message names the file
/// and, where there is one, the entry at fault.
public struct FormatError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, and where.
    public let description: String
    /// An error with this message.
    public init(_ message: String) { description = message }
}

/// A byte-level BPE tokenizer that encodes and decodes exactly as Hugging Face `tokenizers` does
/// for GPT-2, Llama 3 and Qwen2.
///
/// Text is split around special tokens, normalised (NFC, for Qwen2), pre-tokenised with the
/// model's pattern, mapped to byte-level symbols and merged pair by pair in merge-rank order. Encoding is thread-safe; words already
/// seen are served from a cache.
public final class Tokenizer: @unchecked Sendable {
    /// Token strings by id (byte-level spelling; special tokens as written).
    public let tokens: [String]
    /// The merges, in rank order, as pairs of token ids.
    public let merges: [(Int32, Int32)]
    /// Special tokens (matched in text before pre-tokenisation), by content.
    public let specialTokens: [String: Int32]
    /// The end-of-text token, when the vocabulary has one (`eos_token` of tokenizer_config.json,
    /// else `<|endoftext|>`).
    public let eosId: Int32?
    /// The beginning-of-text token, when tokenizer_config.json names one (`bos_token`).
    public let bosId: Int32?
    /// The padding token, when the vocabulary has one distinct from EOS.
    public let padId: Int32?
    /// Whether a space is put in front of text that does not start with a space.
    public let addPrefixSpace: Bool
    /// Whether a piece that is itself in the vocabulary skips the merges (tokenizers' `ignore_merges`).
    public let ignoreMerges: Bool
    /// The pre-tokenisation pattern.
    public let preTokenization: PreTokenization
    /// Whether text between special tokens is put in Unicode NFC first (Qwen2's normalizer).
    public let normalizesNFC: Bool
    /// What the post-processor puts around a text when special tokens are added (Llama 3's
    /// `<|begin_of_text|>` first); see `encodeWithSpecialTokens`.
    public let prefixIds: [Int32], suffixIds: [Int32]

    let vocab: [String: Int32]
    private let byteIds: [Int32]
    private let mergeTable: [UInt64: (rank: Int32, merged: Int32)]
    private let specialBytes: [(bytes: [UInt8], id: Int32)]
    private let specialIds: Set<Int32>
    private var cache = WordCache()
    private let lock = NSLock()

    /// The named special tokens a chat template may use: `bos_token`, `eos_token`, `pad_token`.
    public var namedSpecialTokens: [String: String] {
        var d: [String: String] = [:]
        if let b = bosId { d["bos_token"] = tokens[Int(b)] }
        if let e = eosId { d["eos_token"] = tokens[Int(e)] }
        if let p = padId { d["pad_token"] = tokens[Int(p)] }
        return d
    }

    /// The number of ids (the model's vocabulary size must be at least this).
    public var count: Int { tokens.count }

    /// Builds a tokenizer from a vocabulary, merges given as token-string pairs, and special
    /// tokens. Every byte's symbol must be in the vocabulary, and so must both halves and the
    /// result of every merge. `pad` names the padding token, `eos` the end-of-text token.
    public init(
        vocab: [String: Int], merges: [(String, String)], special: [String: Int],
        eos: String? = "<|endoftext|>", pad: String? = "<|pad|>", bos: String? = nil,
        addPrefixSpace: Bool = false, ignoreMerges: Bool = false, preTokenization: PreTokenization = .gpt2,
        normalizesNFC: Bool = false, prefixIds: [Int32] = [], suffixIds: [Int32] = []
    ) throws {
        var all = vocab
        for (s, id) in special {
            if let existing = all[s], existing != id { throw FormatError("special token \(s) has id \(id) but the vocabulary gives it \(existing)") }
            all[s] = id
        }
        guard let maxId = all.values.max(), maxId < 1 << 24, all.values.min()! >= 0 else {
            throw FormatError("the vocabulary is empty or has ids outside 0..<16777216")
        }
        // Ids run 0..<count without gaps, so a larger id is refused before the table is sized by it.
        guard maxId < all.count else {
            throw FormatError("the vocabulary has \(all.count) tokens but an id of \(maxId); ids must run from 0 to \(all.count - 1) without gaps")
        }
        var tokens = [String?](repeating: nil, count: maxId + 1)
        for (s, id) in all {
            if let other = tokens[id], other != s { throw FormatError("id \(id) is given to both \(JSONText.quote(other)) and \(JSONText.quote(s))") }
            tokens[id] = s
        }
        if let gap = tokens.firstIndex(where: { $0 == nil }) { throw FormatError("the vocabulary has no token with id \(gap)") }
        self.tokens = tokens.map { $0! }
        var v32: [String: Int32] = [:]
        v32.reserveCapacity(all.count)
        for (s, id) in all { v32[s] = Int32(id) }
        self.vocab = v32

        var byteIds = [Int32](repeating: 0, count: 256)
        for b in 0..<256 {
            let sym = ByteLevel.encode([UInt8(b)])
            guard let id = vocab[sym] else {
                throw FormatError(
                    "the vocabulary lacks the byte-level symbol for byte \(b) (\(JSONText.quote(sym))); is this a byte-level BPE vocabulary?")
            }
            byteIds[b] = Int32(id)
        }
        self.byteIds = byteIds

        var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
        table.reserveCapacity(merges.count)
        var pairs: [(Int32, Int32)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw FormatError("merge \(rank + 1) (\(a) \(b)) uses a token that is not in the vocabulary")
            }
            guard let im = vocab[a + b] else { throw FormatError("merge \(rank + 1) (\(a) \(b)) produces \(a + b), which is not in the vocabulary") }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if table[key] == nil { table[key] = (Int32(rank), Int32(im)) }
            pairs.append((Int32(ia), Int32(ib)))
        }
        self.mergeTable = table
        self.merges = pairs

        var sp: [String: Int32] = [:]
        for (s, id) in special { sp[s] = Int32(id) }
        self.specialTokens = sp
        self.specialIds = Set(sp.values)
        // Longest first, so that a special token that contains another wins.
        self.specialBytes = sp.map { (Array($0.key.utf8), $0.value) }.filter { !$0.0.isEmpty }
            .sorted { $0.0.count != $1.0.count ? $0.0.count > $1.0.count : $0.1 < $1.1 }
        self.eosId = eos.flatMap { v32[$0] }
        self.bosId = bos.flatMap { v32[$0] }
        let p = pad.flatMap { v32[$0] }
        self.padId = (p != nil && p != self.eosId) ? p : nil
        self.addPrefixSpace = addPrefixSpace
        self.ignoreMerges = ignoreMerges
        self.preTokenization = preTokenization
        self.normalizesNFC = normalizesNFC
        for id in prefixIds + suffixIds where id < 0 || Int(id) >= tokens.count {
            throw FormatError("the post-processor adds token id \(id), outside the vocabulary")
        }
        self.prefixIds = prefixIds; self.suffixIds = suffixIds
    }

    /// Forgets the cached encodings of words (for measuring cold-cache speed).
    public func clearCache() {
        lock.lock(); cache.removeAll(); lock.unlock()
    }

    /// Throws unless every id is one of this tokenizer's tokens. Token ids read back from a run
    /// database are data, not trusted: a damaged database, or one written with another
    /// tokenizer, gets this error instead of reaching the model.
    public func checkStored(_ ids: [Int32], _ what: @autoclosure () -> String) throws {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= count }) {
            throw FormatError(
                "\(what()) holds token id \(bad), outside the tokenizer's \(count) tokens; the run database is damaged or was written with another tokenizer"
            )
        }
    }

    /// Whether `id` is a special token.
    public func isSpecial(_ id: Int32) -> Bool { specialIds.contains(id) }

    // MARK: Encoding

    /// The token ids of `text`. Special tokens written in the text become their ids, as in
    /// Hugging Face tokenizers, unless `allowSpecial` is false.
    public func encode(_ text: String, allowSpecial: Bool = true) -> [Int32] {
        var bytes = Array(text.utf8)
        // Hugging Face's ByteLevel adds the space unless the text already starts with one.
        if addPrefixSpace, let first = bytes.first, first != 32 { bytes.insert(32, at: 0) }
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 4)
        lock.lock()
        defer { lock.unlock() }
        PreTokenizer.forEachSegment(bytes, specials: allowSpecial ? specialBytes.map(\.bytes) : []) { from, to, special in
            if let special { out.append(specialBytes[special].id); return }
            func encodePiece(_ piece: ArraySlice<UInt8>) {
                piece.withUnsafeBufferPointer { word in
                    let hash = WordCache.hash(word)
                    if cache.append(word, hash: hash, to: &out) { return }
                    let ids = bpe(Array(word))
                    if cache.count >= 200_000 || cache.storedBytes >= 1 << 26 { cache.removeAll() }
                    cache.insert(word, hash: hash, ids: ids)
                    out.append(contentsOf: ids)
                }
            }
            if normalizesNFC {
                // Special tokens are found in the raw text; the text between them is normalised.
                let text = Self.nfc(bytes[from..<to])
                PreTokenizer.forEachPiece(text, 0, text.count, pattern: preTokenization, encodePiece)
            } else {
                PreTokenizer.forEachPiece(bytes, from, to, pattern: preTokenization, encodePiece)
            }
        }
        return out
    }

    /// UTF-8 text in Unicode NFC. Only the non-ASCII stretches, each with the character before
    /// it, go through Foundation's normaliser: an ASCII character is a starter that never
    /// composes with what precedes it, so the text may be cut before any of them.
    static func nfc(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        let end = bytes.endIndex
        while i < end {
            guard let j = bytes[i...].firstIndex(where: { $0 >= 0x80 }) else { out.append(contentsOf: bytes[i...]); break }
            let start = j > i ? j - 1 : j // the character before may compose with what follows
            out.append(contentsOf: bytes[i..<start])
            let k: Int = bytes[j...].firstIndex(where: { $0 < 0x80 }) ?? end
            out.append(contentsOf: String(decoding: bytes[start..<k], as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
            i = k
        }
        return out
    }

    /// The token ids of `text` with what the post-processor adds, as `tokenizer(text)` gives them
    /// in transformers (`add_special_tokens=True`): Llama 3's `<|begin_of_text|>` in front.
    public func encodeWithSpecialTokens(_ text: String) -> [Int32] {
        prefixIds + encode(text) + suffixIds
    }

    /// Applies the merges to one pre-tokenised word: repeatedly merges the adjacent pair with
    /// the lowest rank (leftmost first among equals), using a heap so long words stay O(n log n).
    func bpe(_ word: [UInt8]) -> [Int32] {
        if word.count == 1 { return [byteIds[Int(word[0])]] }
        if ignoreMerges, let whole = vocab[ByteLevel.encode(word)] { return [whole] }
        let n = word.count
        var sym = word.map { byteIds[Int($0)] }
        var next = Array(1...n) // n means none
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = BinaryHeap<MergeCandidate>()
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let m = mergeTable[UInt64(UInt32(sym[i])) << 32 | UInt64(UInt32(sym[j]))] else { return }
            heap.push(MergeCandidate(rank: m.rank, pos: Int32(i), left: sym[i], right: sym[j]), by: MergeCandidate.before)
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop(by: MergeCandidate.before) {
            let i = Int(top.pos)
            guard alive[i], sym[i] == top.left else { continue }
            let j = next[i]
            guard j < n, sym[j] == top.right else { continue }
            let key = UInt64(UInt32(top.left)) << 32 | UInt64(UInt32(top.right))
            sym[i] = mergeTable[key]!.merged
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var out: [Int32] = []
        var i = 0
        while i < n { out.append(sym[i]); i = next[i] }
        return out
    }

    // MARK: Decoding

    /// The bytes that `ids` stand for. Ids outside the vocabulary are skipped.
    public func decodeBytes(_ ids: [Int32], skipSpecial: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokens.count {
            if specialIds.contains(id) {
                if !skipSpecial { out.append(contentsOf: tokens[Int(id)].utf8) }
            } else if let b = ByteLevel.decode(tokens[Int(id)]) {
                out.append(contentsOf: b)
            } else {
                out.append(contentsOf: tokens[Int(id)].utf8)
            }
        }
        return out
    }

    /// The text that `ids` stand for. Bytes that do not form valid UTF-8 (such as a cut inside a
    /// multi-byte character) become U+FFFD, as in Hugging Face's decoder.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    /// The vocabulary spelling of one id.
    public func token(_ id: Int32) -> String { tokens[Int(id)] }

    /// The id of a token string.
    public func id(of token: String) -> Int32? { vocab[token] }
}

/// A candidate merge in `Tokenizer.bpe`: ordered by (rank, position).
struct MergeCandidate {
    var rank: Int32, pos: Int32, left: Int32, right: Int32
    static func before(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos }
}
