import RunStore

/// Wins, losses, ties and skips of the first model in a set of judgments, with its win rate.
public struct JudgeTally: Equatable, Sendable {
    public var wins = 0, losses = 0, ties = 0, skips = 0

    public init(wins: Int = 0, losses: Int = 0, ties: Int = 0, skips: Int = 0) {
        self.wins = wins; self.losses = losses; self.ties = ties; self.skips = skips
    }

    /// Counts each judgment's outcome.
    public init(_ outcomes: [JudgeOutcome]) {
        for o in outcomes { add(o) }
    }

    /// Counts one outcome.
    public mutating func add(_ o: JudgeOutcome) {
        switch o {
        case .win: wins += 1
        case .loss: losses += 1
        case .tie: ties += 1
        case .skip: skips += 1
        }
    }

    /// Judgments that are not skips: the win rate's denominator.
    public var judged: Int { wins + losses + ties }

    /// (wins + ties / 2) / (wins + losses + ties): a tie counts half a win; skips do not count.
    /// NaN when nothing was judged.
    public var winRate: Double { judged > 0 ? (Double(wins) + Double(ties) / 2) / Double(judged) : .nan }

    /// The 95% Wilson score interval of `winRate`, with n = wins + losses + ties.
    public var interval: (low: Double, high: Double) {
        HeadToHead.wilson(successes: Double(wins) + Double(ties) / 2, trials: judged)
    }
}

/// How far two annotators agree on the items both judged (neither skipped).
public struct JudgeAgreement: Equatable, Sendable {
    public let annotators: (String, String)
    /// Items both judged without skipping.
    public let items: Int
    /// The fraction of those items with the same un-blinded verdict (first better, second better,
    /// or tie).
    public let percent: Double
    /// Cohen's kappa over the three verdicts; NaN when undefined (no items, or chance agreement 1).
    public let kappa: Double

    public static func == (l: Self, r: Self) -> Bool {
        l.annotators == r.annotators && l.items == r.items && l.percent.bitPattern == r.percent.bitPattern
            && l.kappa.bitPattern == r.kappa.bitPattern
    }
}

/// The results of one human comparison: the tallies per annotator and overall, and the
/// agreement of each pair of annotators.
public struct JudgmentResults: Sendable {
    /// The compare stage run and its two models (the figures are the first one's).
    public let stageRunId: Int64
    public let modelId: Int64, otherModelId: Int64
    /// Items of the comparison, and how many of them at least one annotator judged (a skip counts).
    public let items: Int, judgedItems: Int
    /// Every current judgment pooled: an item judged by three annotators counts three times.
    public let overall: JudgeTally
    /// Per annotator, by name.
    public let annotators: [(name: String, tally: JudgeTally)]
    /// Each pair of annotators who judged at least one item in common, by name.
    public let agreements: [JudgeAgreement]

    /// The results of `comparison`'s current judgments.
    public static func of(_ comparison: HumanComparison, store: RunStore) throws -> JudgmentResults {
        let js = try store.judgments(stageRunId: comparison.stageRunId).map(\.judgment)
        return compute(
            js, stageRunId: comparison.stageRunId, modelId: comparison.config.a, otherModelId: comparison.config.b, items: comparison.items.count)
    }

    /// The results of judgments `js` (current ones, at most one per annotator and item).
    public static func compute(_ js: [NewJudgment], stageRunId: Int64, modelId: Int64, otherModelId: Int64, items: Int) -> JudgmentResults {
        let names = Array(Set(js.map(\.annotator))).sorted()
        var byAnnotator: [String: [String: JudgeOutcome]] = [:]
        for j in js { byAnnotator[j.annotator, default: [:]]["\(j.completionId):\(j.otherCompletionId)"] = j.outcome }
        var agreements: [JudgeAgreement] = []
        for (i, x) in names.enumerated() {
            for y in names[(i + 1)...] {
                let ox = byAnnotator[x]!, oy = byAnnotator[y]!
                let shared = ox.keys.filter { k in oy[k].map { $0 != .skip && ox[k] != .skip } ?? false }.sorted()
                guard !shared.isEmpty else { continue }
                let vx = shared.map { ox[$0]! }, vy = shared.map { oy[$0]! }
                let same = zip(vx, vy).filter { $0 == $1 }.count
                agreements.append(
                    JudgeAgreement(annotators: (x, y), items: shared.count, percent: Double(same) / Double(shared.count), kappa: cohenKappa(vx, vy)))
            }
        }
        return JudgmentResults(
            stageRunId: stageRunId, modelId: modelId, otherModelId: otherModelId, items: items,
            judgedItems: Set(js.map { "\($0.completionId):\($0.otherCompletionId)" }).count, overall: JudgeTally(js.map(\.outcome)),
            annotators: names.map { n in (n, JudgeTally(js.filter { $0.annotator == n }.map(\.outcome))) }, agreements: agreements)
    }

    /// Cohen's kappa of two raters' labels of the same items: (p_o − p_e) / (1 − p_e), where p_o
    /// is the fraction of items they label alike and p_e = Σ_k p_x(k)·p_y(k) the agreement
    /// expected from each rater's own label frequencies. NaN for no items or when p_e = 1.
    public static func cohenKappa<L: Hashable>(_ x: [L], _ y: [L]) -> Double {
        precondition(x.count == y.count, "two labels per item")
        guard !x.isEmpty else { return .nan }
        let n = Double(x.count)
        let po = Double(zip(x, y).filter { $0 == $1 }.count) / n
        var cx: [L: Double] = [:], cy: [L: Double] = [:]
        for l in x { cx[l, default: 0] += 1 }
        for l in y { cy[l, default: 0] += 1 }
        let pe = cx.reduce(0.0) { $0 + ($1.value / n) * ((cy[$1.key] ?? 0) / n) }
        return pe < 1 ? (po - pe) / (1 - pe) : .nan
    }
}
