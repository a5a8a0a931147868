import Foundation
import RunStore
import TransformerCore

/// A word-list scorer: positive words minus negative words.
public struct Lexicon: Sendable {
    public let positive: Set<String>
    public let negative: Set<String>

    public init(positive: Set<String>, negative: Set<String>) { self.positive = positive; self.negative = negative }

    /// Reads `positive.txt` and `negative.txt` (one word per line, `#` comments) from `folder`.
    public init(folder: URL) throws {
        func words(_ name: String) throws -> Set<String> {
            let url = folder.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url) else {
                throw StoreError("\(url.path): cannot read the lexicon (run from the project folder, or pass --lexicon DIR)")
            }
            return Set(
                String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
                    .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty && !$0.hasPrefix("#") })
        }
        positive = try words("positive.txt")
        negative = try words("negative.txt")
        if positive.isEmpty || negative.isEmpty { throw StoreError("\(folder.path): the lexicon word lists are empty") }
    }

    /// Lower-cased words of a text (letters and apostrophes).
    public static func words(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0 == "'") }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "'")) }.filter {
            !$0.isEmpty
        }
    }

    /// Positive minus negative word occurrences.
    public func score(_ text: String) -> Int {
        Self.words(text).reduce(0) { $0 + (positive.contains($1) ? 1 : 0) - (negative.contains($1) ? 1 : 0) }
    }
}

/// How a simulated labeler prefers completions.
public enum SimulationRule: Sendable {
    /// More positive and fewer negative lexicon words is better.
    case lexicon(Lexicon)
    /// Closer to this many words is better.
    case length(target: Int)

    /// Higher is better.
    public func score(_ text: String) -> Double {
        switch self {
        case .lexicon(let l): return Double(l.score(text))
        case .length(let t): return -Double(abs(Lexicon.words(text).count - t))
        }
    }

    /// `lexicon` or `length`, as stored in a ranking's source.
    public var name: String {
        switch self {
        case .lexicon: return "lexicon";
        case .length: return "length"
        }
    }
}

/// Ranks every pending item without a terminal, through the same storage code as `rlhf label`.
public enum SimulatedLabeler {
    /// Ranks by score (equal scores tie); then, with probability `noise`, swaps each pair of
    /// adjacent places, as an inconsistent person would. Returns ranks per display index.
    public static func ranks(scores: [Double], noise: Double, rng: inout SeededRandom) -> [Int] {
        let distinct = Array(Set(scores)).sorted(by: >)
        var groups = distinct.map { s in scores.indices.filter { scores[$0] == s } }
        if noise > 0 && groups.count > 1 {
            for i in 0..<(groups.count - 1) where rng.uniformDouble() < noise { groups.swapAt(i, i + 1) }
        }
        var r = [Int](repeating: 0, count: scores.count)
        for (g, members) in groups.enumerated() { for m in members { r[m] = g + 1 } }
        return r
    }

    /// Labels everything `annotator` has not labeled yet. Each item is one transaction.
    public static func run(
        store: RunStore, rule: SimulationRule, noise: Double, seed: UInt64, annotator: String,
        order: DisplayOrder, guidelinesVersion: String?, progress: ((Int, Int) -> Void)? = nil
    ) throws -> Int {
        let queue = try LabelQueue(store: store, annotator: annotator, order: order)
        let pending = try queue.pending()
        progress?(0, pending.count)
        for (n, item) in pending.enumerated() {
            let shown = queue.shownOrder(item)
            let records = try store.completions(ids: shown)
            let scores = shown.map { rule.score(records[$0]?.text ?? "") }
            var rng = SeededRandom(seed: seed ^ LabelQueue.seed(annotator, item.promptId, item.modelId))
            let r = ranks(scores: scores, noise: noise, rng: &rng)
            let now = Date().timeIntervalSince1970
            try store.submitRanking(
                NewRanking(
                    promptId: item.promptId, modelId: item.modelId, annotator: annotator, shownOrder: shown,
                    ranks: r, status: .ranked, guidelineVersion: guidelinesVersion,
                    source: "simulated:\(rule.name)", startedAt: now, submittedAt: now))
            progress?(n + 1, pending.count)
        }
        return pending.count
    }
}
