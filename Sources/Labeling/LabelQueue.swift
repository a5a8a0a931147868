import Foundation
import RunStore
import StageKit
import TransformerCore

/// How completions are ordered on screen.
public enum DisplayOrder: String, CaseIterable, Sendable {
    /// Shuffled per item and annotator (seeded, so a restart shows the same order), to keep
    /// position bias out of the labels.
    case random
    /// In the order they were generated.
    case fixed
}

/// The items one annotator still has to label, in prompt order.
public struct LabelQueue {
    public let store: RunStore
    public let annotator: String
    public let order: DisplayOrder
    /// Every item of the run (train prompts with 2 to 9 completions from one model).
    public let items: [LabelItem]

    public init(store: RunStore, annotator: String, order: DisplayOrder) throws {
        self.store = store; self.annotator = annotator; self.order = order
        items = try store.labelItems(split: .train)
    }

    static func key(_ promptId: Int64, _ modelId: Int64?) -> String { "\(promptId):\(modelId ?? -1)" }

    /// Items this annotator has not ranked, skipped or flagged yet.
    public func pending() throws -> [LabelItem] {
        let done = Set(try store.rankings(annotator: annotator).map { Self.key($0.ranking.promptId, $0.ranking.modelId) })
        return items.filter { !done.contains(Self.key($0.promptId, $0.modelId)) }
    }

    /// The display order of an item's completions for this annotator.
    public func shownOrder(_ item: LabelItem) -> [Int64] {
        guard order == .random else { return item.completionIds }
        var rng = SeededRandom(seed: Self.seed(annotator, item.promptId, item.modelId))
        var ids = item.completionIds
        rng.shuffle(&ids)
        return ids
    }

    /// FNV-1a over the annotator's name and the item.
    static func seed(_ annotator: String, _ promptId: Int64, _ modelId: Int64?) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in annotator.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        for v in [UInt64(bitPattern: promptId), UInt64(bitPattern: modelId ?? -1)] {
            for s in stride(from: 0, to: 64, by: 8) { h = (h ^ ((v >> UInt64(s)) & 0xFF)) &* 0x100_0000_01B3 }
        }
        return h
    }

    /// The bytes to show for each completion: decoded from its token ids with its model's
    /// tokenizer (so invalid UTF-8 the model produced is shown as such), else its stored text.
    public func displayBytes(_ records: [CompletionRecord], tokenizers: inout [Int64: Tokenizer?]) -> [[UInt8]] {
        CompletionText.displayBytes(records, store: store, tokenizers: &tokenizers)
    }
}

/// The guidelines file and its version (a hash of its bytes).
public struct Guidelines {
    public let text: String
    public let source: String
    /// The first 16 hex digits of the file's SHA-256; nil when there is no file.
    public let version: String?

    /// Reads `url`; a missing file gives empty guidelines unless `required`.
    public init(url: URL, required: Bool) throws {
        source = url.path
        guard let data = try? Data(contentsOf: url) else {
            if required { throw StoreError("\(url.path): cannot read the guidelines file") }
            text = ""; version = nil; return
        }
        text = String(decoding: data, as: UTF8.self)
        version = String(SHA256.hex(data).prefix(16))
    }
}
