import RunStore
import StageKit

/// What the judging screen must do after a key.
public enum JudgeAction: Equatable, Sendable {
    case none
    /// Store this verdict (as shown: the side preferred, a tie or a skip) and move on.
    case verdict(JudgeVerdict)
    /// Reopen the previous judgment (the latest one, or the one before the reopened one).
    case undo
    case quit
}

/// The keyboard state machine of the judging screen, free of I/O so it can be tested key by key.
public struct JudgeSession: Equatable, Sendable {
    /// Whether the key help is up.
    public private(set) var showingHelp = false
    /// First line shown of the scrolling area.
    public private(set) var scroll = 0
    /// A one-line note for the user (an error or a confirmation).
    public var message: String?

    public init() {}

    /// The key reference, for `--help` and the `?` screen.
    public static let keyHelp: [(String, String)] = [
        ("a", "A is better"),
        ("b", "B is better"),
        ("t", "tie: equally good (or equally bad)"),
        ("s", "skip: cannot judge this item"),
        ("u", "undo: reopen your previous verdict to judge again (again: one further back)"),
        ("j/k, arrows", "scroll; PgUp/PgDn and space scroll a page"),
        ("?", "this help"),
        ("q, Ctrl-C", "quit (every verdict is already saved)"),
    ]

    /// Handles one key. `page` is the height of the scrolling area.
    public mutating func handle(_ key: Key, page: Int = 10) -> JudgeAction {
        if showingHelp {
            if key == .interrupt { return .quit }
            showingHelp = false
            return .none
        }
        message = nil
        switch key {
        case .char("a"): return .verdict(.a)
        case .char("b"): return .verdict(.b)
        case .char("t"): return .verdict(.tie)
        case .char("s"): return .verdict(.skip)
        case .char("u"): return .undo
        case .char("j"), .down: scroll += 1
        case .char("k"), .up: scroll = max(0, scroll - 1)
        case .pageDown, .char(" "): scroll += max(1, page - 1)
        case .pageUp: scroll = max(0, scroll - max(1, page - 1))
        case .home: scroll = 0
        case .char("?"): showingHelp = true
        case .char("q"), .interrupt: return .quit
        case .char(let c) where !c.isWhitespace: message = "'\(c)' does nothing here: a, b, t or s judges, ? lists the keys"
        default: break
        }
        return .none
    }

    /// Clamps the scroll position to the content height.
    public mutating func clampScroll(contentLines: Int, page: Int) {
        scroll = min(scroll, max(0, contentLines - page))
    }
}
