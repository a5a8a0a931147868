/// A ranking being built by picks: groups of completions (by display index, 0-based), best
/// first. Completions in one group are tied.
public struct RankingBuilder: Equatable, Sendable {
    /// How many completions are shown.
    public let count: Int
    /// Picked completions, best group first.
    public private(set) var groups: [[Int]] = []
    /// Whether `=` was pressed: the next pick joins the last group.
    public private(set) var tiePending = false

    /// Why a key did nothing.
    public enum Problem: Equatable, Sendable {
        case outOfRange, alreadyPicked, nothingToTie, nothingToRemove, incomplete(left: Int)
    }

    /// An empty ranking of `count` completions.
    public init(count: Int) { self.count = count }

    /// A ranking rebuilt from stored ranks (one per display index, 1 = best).
    public init(count: Int, ranks: [Int]) {
        self.count = count
        let distinct = Array(Set(ranks)).sorted()
        groups = distinct.map { r in ranks.indices.filter { ranks[$0] == r } }
    }

    /// Display indices already picked.
    public var picked: Set<Int> { Set(groups.joined()) }

    /// Display indices not yet picked, in order.
    public var remaining: [Int] { (0..<count).filter { !picked.contains($0) } }

    /// Whether every completion has a rank.
    public var isComplete: Bool { picked.count == count }

    /// Picks completion `index` as the next best (or, after `=`, as tied with the previous pick).
    public mutating func pick(_ index: Int) -> Problem? {
        guard index >= 0 && index < count else { return .outOfRange }
        guard !picked.contains(index) else { return .alreadyPicked }
        if tiePending, !groups.isEmpty { groups[groups.count - 1].append(index) } else { groups.append([index]) }
        tiePending = false
        return nil
    }

    /// `=`: the next pick ties with the previous one.
    public mutating func tie() -> Problem? {
        guard !groups.isEmpty else { return .nothingToTie }
        tiePending = true
        return nil
    }

    /// Backspace: cancels a pending `=`, else removes the last pick.
    public mutating func removeLast() -> Problem? {
        if tiePending { tiePending = false; return nil }
        guard !groups.isEmpty else { return .nothingToRemove }
        groups[groups.count - 1].removeLast()
        if groups[groups.count - 1].isEmpty { groups.removeLast() }
        return nil
    }

    /// Enter: the ranking is complete, or exactly one completion is left, which then takes the
    /// last place (or joins the last group after `=`).
    public mutating func finish() -> Problem? {
        let left = remaining
        if left.count == 1 { _ = pick(left[0]) }
        return isComplete ? nil : .incomplete(left: remaining.count)
    }

    /// Rank per display index (1 = best, tied completions share a rank); nil until complete.
    public var ranks: [Int]? {
        guard isComplete else { return nil }
        var r = [Int](repeating: 0, count: count)
        for (g, members) in groups.enumerated() { for m in members { r[m] = g + 1 } }
        return r
    }

    /// "2 > 1 = 4 > 3" with 1-based numbers, and a trailing "=" while a tie is pending.
    public var summary: String {
        let s = groups.map { $0.map { String($0 + 1) }.joined(separator: " = ") }.joined(separator: " > ")
        return tiePending ? s + " = …" : s
    }
}
