import Foundation
import StageKit

/// What the application must do after a key.
public enum SessionAction: Equatable, Sendable {
    case none
    /// Store the ranking (ranks per display index) and move on.
    case submit([Int])
    case skip
    case flag(String)
    /// Reopen the previously submitted item.
    case reopenPrevious
    /// Write the ideal answer for this prompt: from scratch (or the draft kept for it), or
    /// starting from the completion at this display index.
    case write(from: Int?)
    /// Write the answer in `$VISUAL` or `$EDITOR`.
    case writeInEditor
    case quit
}

/// The keyboard state machine of `rlhf label`, free of I/O so it can be tested key by key.
public struct LabelSession: Equatable, Sendable {
    /// Which screen is up.
    public enum Mode: Equatable, Sendable {
        case ranking
        /// Typing the reason for a flag.
        case flagReason(String)
        case help
        case guidelines
        /// After `c`: waiting for the number of the completion to start an answer from.
        case pickToCorrect
    }

    public private(set) var builder: RankingBuilder
    public internal(set) var mode: Mode = .ranking
    /// First line shown of the scrolling area (completions, or guidelines).
    public private(set) var scroll = 0
    public private(set) var guidelinesScroll = 0
    /// A one-line note for the user (an error or a confirmation).
    public var message: String?
    /// The `rlhf label --write` screen: the completions are samples to start an answer from, not
    /// an item to rank, so the ranking keys do nothing.
    public let writeOnly: Bool

    /// A session over an item of `count` completions, optionally pre-filled from stored ranks.
    public init(count: Int, ranks: [Int]? = nil, writeOnly: Bool = false) {
        builder = ranks.map { RankingBuilder(count: count, ranks: $0) } ?? RankingBuilder(count: count)
        self.writeOnly = writeOnly
    }

    /// Handles one key. `page` is the height of the scrolling area.
    public mutating func handle(_ key: Key, page: Int = 10) -> SessionAction {
        switch mode {
        case .ranking: return rankingKey(key, page: page)
        case .flagReason(let reason): return flagKey(key, reason)
        case .help:
            if key == .interrupt { return .quit }
            mode = .ranking
            return .none
        case .pickToCorrect:
            mode = .ranking
            switch key {
            case .char(let c) where c.isASCII && c.isNumber && c != "0":
                let n = Int(String(c))!
                guard n <= builder.count else {
                    message = builder.count == 0 ? "this prompt has no samples; w writes from scratch" : "there is no completion \(n)"
                    return .none
                }
                return .write(from: n - 1)
            case .interrupt: return .quit
            default: message = "cancelled"
            }
            return .none
        case .guidelines:
            switch key {
            case .char("j"), .down: guidelinesScroll += 1
            case .char("k"), .up: guidelinesScroll = max(0, guidelinesScroll - 1)
            case .pageDown, .char(" "): guidelinesScroll += max(1, page - 1)
            case .pageUp: guidelinesScroll = max(0, guidelinesScroll - max(1, page - 1))
            case .interrupt: return .quit
            default: mode = .ranking
            }
            return .none
        }
    }

    private mutating func rankingKey(_ key: Key, page: Int) -> SessionAction {
        message = nil
        switch key {
        case .char("w"): return .write(from: nil)
        case .char("e"): return .writeInEditor
        case .char("c"):
            guard builder.count > 0 else { message = "this prompt has no samples to start from; w writes from scratch"; break }
            mode = .pickToCorrect
        case .enter where writeOnly: return .write(from: nil)
        case .char(let c) where writeOnly && (c.isNumber || c == "=" || c == "f" || c == "u"):
            message = "this screen writes answers: w writes, c then a number starts from that sample"
        case .backspace where writeOnly: break
        case .char(let c) where c.isASCII && c.isNumber && c != "0":
            let n = Int(String(c))!
            switch builder.pick(n - 1) {
            case .outOfRange?: message = "there is no completion \(n)"
            case .alreadyPicked?: message = "\(n) is already ranked (Backspace removes the last pick)"
            default: break
            }
        case .char("="):
            if builder.tie() != nil { message = "pick a completion first; = ties the next pick with it" }
        case .backspace:
            if builder.removeLast() != nil { message = "nothing to remove" }
        case .enter:
            switch builder.finish() {
            case nil: return .submit(builder.ranks!)
            case .incomplete(let left)?: message = "rank every completion first (\(left) left)"
            default: break
            }
        case .char("s"): return .skip
        case .char("f"): mode = .flagReason("")
        case .char("u"): return .reopenPrevious
        case .char("j"), .down: scroll += 1
        case .char("k"), .up: scroll = max(0, scroll - 1)
        case .pageDown, .char(" "): scroll += max(1, page - 1)
        case .pageUp: scroll = max(0, scroll - max(1, page - 1))
        case .home: scroll = 0
        case .char("g"): mode = .guidelines; guidelinesScroll = 0
        case .char("?"): mode = .help
        case .char("q"), .interrupt: return .quit
        default: break
        }
        return .none
    }

    private mutating func flagKey(_ key: Key, _ reason: String) -> SessionAction {
        switch key {
        case .enter:
            let r = reason.trimmingCharacters(in: .whitespaces)
            if r.isEmpty { message = "type a reason for the flag, or Esc to cancel"; return .none }
            mode = .ranking
            return .flag(r)
        case .escape: mode = .ranking; message = "flag cancelled"
        case .backspace: mode = .flagReason(String(reason.dropLast()))
        case .char(let c) where !c.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }):
            if reason.count < 500 { mode = .flagReason(reason + String(c)) }
        case .interrupt: return .quit
        default: break
        }
        return .none
    }

    /// Clamps the scroll position to the content height.
    public mutating func clampScroll(contentLines: Int, page: Int) {
        scroll = min(scroll, max(0, contentLines - page))
    }

    /// Clamps the guidelines scroll position.
    public mutating func clampGuidelinesScroll(contentLines: Int, page: Int) {
        guidelinesScroll = min(guidelinesScroll, max(0, contentLines - page))
    }
}
