import Foundation
import RunStore

// The simulated labelers' scores of a text: `rlhf label --simulate` ranks with them, `rlhf compare`
// judges with them and `rlhf grpo` rewards with them.

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
