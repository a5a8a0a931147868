import Foundation
import RunStore
import StageKit
import TransformerCore

/// The interactive `rlhf compare --judge human` loop: shows one item at a time with the two
/// completions on sides drawn per item and annotator, and stores each verdict in its own
/// transaction the moment it is given.
public final class JudgeApp {
    let store: RunStore
    let comparison: HumanComparison
    let annotator: String
    let title: String
    private var tokenizers: [Int64: Tokenizer?] = [:]
    private let sessionStart = Date()

    /// Verdicts given in this session (not counting changed ones).
    public private(set) var judged = 0

    public init(store: RunStore, comparison: HumanComparison, annotator: String, runName: String) {
        self.store = store; self.comparison = comparison; self.annotator = annotator
        title = "rlhf compare · \(runName) · \(annotator)"
    }

    /// What is on screen.
    struct Current {
        var item: JudgeItem
        var firstSide: JudgeSide
        var prompt: String
        var sideA: [UInt8], sideB: [UInt8]
        var session = JudgeSession()
        /// The judgment being redone (after undo) and its verdict.
        var reopened: JudgmentRecord?
        var shownAt: Double
    }

    private func load(_ item: JudgeItem, firstSide: JudgeSide, reopened: JudgmentRecord?) throws -> Current {
        let cs = try store.completions(ids: [item.completionId, item.otherCompletionId])
        guard let c1 = cs[item.completionId], let c2 = cs[item.otherCompletionId] else {
            throw StoreError("a completion of prompt #\(item.promptId) is missing from the run database")
        }
        let shown = CompletionText.displayBytes([c1, c2], store: store, tokenizers: &tokenizers)
        let first = shown[0], second = shown[1]
        return Current(
            item: item, firstSide: firstSide, prompt: try store.prompt(id: item.promptId)?.text ?? "(missing prompt)",
            sideA: firstSide == .a ? first : second, sideB: firstSide == .a ? second : first, reopened: reopened,
            shownAt: Date().timeIntervalSince1970)
    }

    private func progressText(pending: Int) -> String {
        let total = comparison.items.count
        var s = "\(total - pending)/\(total) done"
        let minutes = Date().timeIntervalSince(sessionStart) / 60
        if judged > 0 && minutes > 0 {
            let rate = Double(judged) / minutes
            s += String(format: " · %.1f/min", rate)
            if pending > 0 { s += " · ETA " + ProgressBar.duration(Double(pending) / rate * 60) }
        }
        return s
    }

    /// The judgment before `current` (or the latest one) that `u` reopens.
    private func previousJudgment(before current: Int64?) throws -> JudgmentRecord? {
        let mine = try store.judgments(stageRunId: comparison.stageRunId, annotator: annotator)
        guard let current, let i = mine.firstIndex(where: { $0.id == current }) else { return mine.last }
        return i > 0 ? mine[i - 1] : nil
    }

    /// Runs until the user quits or every item is judged; returns the verdicts given.
    public func run(terminal: Terminal) throws -> Int {
        var reopen: JudgmentRecord?
        var carriedMessage: String?
        while true {
            let pending = try comparison.pending(store: store, annotator: annotator)
            var current: Current
            if let r = reopen {
                let j = r.judgment
                let item = JudgeItem(promptId: j.promptId, completionId: j.completionId, otherCompletionId: j.otherCompletionId)
                current = try load(item, firstSide: j.firstSide, reopened: r)
            } else if let next = pending.first {
                current = try load(next, firstSide: comparison.firstSide(annotator: annotator, item: next), reopened: nil)
            } else {
                if try waitWhenDone(terminal: terminal, reopen: &reopen) { return judged }
                continue
            }
            if let m = carriedMessage { current.session.message = m; carriedMessage = nil }
            reopen = nil

            itemLoop: while true {
                let (w, h) = terminal.size
                let view = JudgeView(
                    title: title, progress: progressText(pending: pending.count), prompt: current.prompt, sideA: current.sideA,
                    sideB: current.sideB, session: current.session, reopened: current.reopened?.judgment.verdict)
                if w < 40 || h < 10 {
                    terminal.draw(["Terminal too small (\(w)×\(h)); judging needs at least 40×10.", "q quits."])
                } else {
                    let screen = JudgeScreen.render(view, width: w, height: h)
                    terminal.draw(screen.lines)
                    current.session.clampScroll(contentLines: screen.contentLines, page: screen.page)
                }
                var keys: [Key] = []
                while keys.isEmpty {
                    keys = terminal.readKeys(timeoutMs: 250)
                    if terminal.takeResize() { terminal.clear(); break }
                }
                for key in keys {
                    switch current.session.handle(key, page: max(1, terminal.size.height - 9)) {
                    case .none: continue
                    case .quit: return judged
                    case .undo:
                        if let prev = try previousJudgment(before: current.reopened?.id) {
                            reopen = prev
                            break itemLoop
                        }
                        current.session.message = current.reopened == nil ? "nothing judged yet to undo" : "this is your first verdict"
                    case .verdict(let v):
                        let j = NewJudgment(
                            stageRunId: comparison.stageRunId, promptId: current.item.promptId, modelId: comparison.config.a,
                            otherModelId: comparison.config.b, completionId: current.item.completionId,
                            otherCompletionId: current.item.otherCompletionId, firstSide: current.firstSide, verdict: v,
                            annotator: annotator, shownAt: current.shownAt, judgedAt: Date().timeIntervalSince1970)
                        do {
                            try store.submitJudgment(j, replacing: current.reopened?.id)
                        } catch {
                            // Judged meanwhile in another session of the same annotator: move on.
                            if current.reopened == nil, try !comparison.pending(store: store, annotator: annotator).contains(current.item) {
                                carriedMessage = "that item was already judged in another session; not saved again"
                                break itemLoop
                            }
                            // The advice first: the line is cut to the terminal's width.
                            current.session.message = "NOT SAVED (press the verdict again to retry, q quits): \(error)"
                            continue
                        }
                        if current.reopened == nil { judged += 1 }
                        let said = v == .tie ? "tie" : v == .skip ? "skipped" : "\(v.rawValue) is better"
                        carriedMessage = current.reopened != nil ? "changed: \(said)" : "saved: \(said)"
                        break itemLoop
                    }
                }
            }
        }
    }

    /// The screen after the last item: `u` reopens, anything else quits. True means quit.
    private func waitWhenDone(terminal: Terminal, reopen: inout JudgmentRecord?) throws -> Bool {
        let (w, h) = terminal.size
        var lines = [
            "\u{1B}[7m" + TextLayout.pad(TerminalSafe.escape(title, keepNewlines: false) + " · " + progressText(pending: 0), max(20, w))
                + "\u{1B}[0m",
            "", "  Every item is judged. Thank you!", "",
            "  u  reopen your last verdict    any other key: quit and show the results",
        ]
        while lines.count < h { lines.append("") }
        terminal.draw(Array(lines.prefix(h)))
        while true {
            for key in terminal.readKeys(timeoutMs: 250) {
                if key == .char("u"), let last = try previousJudgment(before: nil) { reopen = last; return false }
                if key != .other { return true }
            }
            _ = terminal.takeResize()
        }
    }
}
