import Foundation
import RunStore
import StageKit
import TransformerCore

/// The interactive `rlhf label` loop: shows one item at a time, turns keys into rankings, and
/// stores each submit, skip or flag in its own transaction the moment it happens. On any item
/// the labeler may also write the ideal answer (a demonstration); with `writeOnly` (`rlhf label
/// --write`) the items are the prompts that have no demonstration yet.
public final class LabelApp {
    let store: RunStore
    let queue: LabelQueue
    let guidelines: Guidelines
    let title: String
    /// `rlhf label --write`.
    let writeOnly: Bool
    private var tokenizers: [Int64: Tokenizer?] = [:]
    private let sessionStart = Date()
    /// Prompts passed over with `s` in the --write screen during this session.
    private var passed: Set<Int64> = []
    /// Whether the run has nothing to label at all (with `writeOnly`: no prompt at all).
    public var queueIsEmpty: Bool { writeOnly ? ((try? store.prompts().isEmpty) ?? true) : queue.items.isEmpty }

    /// Items submitted (not counting edits) in this session.
    public private(set) var submitted = 0
    /// Demonstrations submitted in this session (not counting changes to earlier ones).
    public internal(set) var written = 0

    public init(store: RunStore, annotator: String, order: DisplayOrder, guidelines: Guidelines, runName: String, writeOnly: Bool = false) throws {
        self.store = store
        queue = try LabelQueue(store: store, annotator: annotator, order: order)
        self.guidelines = guidelines
        self.writeOnly = writeOnly
        title = "rlhf label\(writeOnly ? " --write" : "") · \(runName) · \(annotator)"
    }

    /// What is on screen.
    struct Current {
        var item: LabelItem
        var shown: [Int64]
        var prompt: String
        var bytes: [[UInt8]]
        var session: LabelSession
        var editing: Int64?
        var startedAt: Double
    }

    private func load(_ item: LabelItem, shown: [Int64], ranks: [Int]?, editing: Int64?) throws -> Current {
        let records = try store.completions(ids: shown)
        let ordered = shown.compactMap { records[$0] }
        let prompt = try store.prompt(id: item.promptId)?.text ?? "(missing prompt)"
        return Current(
            item: item, shown: shown, prompt: prompt, bytes: queue.displayBytes(ordered, tokenizers: &tokenizers),
            session: LabelSession(count: shown.count, ranks: ranks, writeOnly: writeOnly), editing: editing,
            startedAt: Date().timeIntervalSince1970)
    }

    /// The --write screen's next item: the first prompt without a demonstration (and not passed
    /// over), with its samples (the generated completions of the model that wrote the most recent
    /// ones, at most 9); none when every prompt has one.
    func nextWrite() throws -> [LabelItem] {
        guard let p = try store.promptsWithoutDemonstration().first(where: { !passed.contains($0.id) }) else { return [] }
        let comps = try store.completions(promptId: p.id)
        let model = comps.last?.modelId
        let ids = comps.filter { $0.modelId == model }.prefix(9).map(\.id)
        return [LabelItem(promptId: p.id, modelId: model, completionIds: Array(ids))]
    }

    func progressText(pending: Int) -> String {
        let total = writeOnly ? ((try? store.prompts().count) ?? 0) : queue.items.count
        let done = writeOnly ? total - ((try? store.promptsWithoutDemonstration().count) ?? 0) : total - pending
        var s = "\(done)/\(total) \(writeOnly ? "written" : "done")"
        let minutes = Date().timeIntervalSince(sessionStart) / 60
        let count = writeOnly ? written : submitted
        if count > 0 && minutes > 0 {
            let rate = Double(count) / minutes
            s += String(format: " · %.1f/min", rate)
            if pending > 0 { s += " · ETA " + ProgressBar.duration(Double(pending) / rate * 60) }
        }
        return s
    }

    /// The ranking before `current` (or the latest one) that `u` reopens.
    private func previousRanking(before current: Int64?) throws -> RankingRecord? {
        let mine = try store.rankings(annotator: queue.annotator)
        guard let current, let idx = mine.firstIndex(where: { $0.id == current }) else { return mine.last }
        return idx > 0 ? mine[idx - 1] : nil
    }

    /// Runs until the user quits; returns the number of items submitted (with `writeOnly`:
    /// demonstrations written). First offers back any answer the annotator left unsubmitted.
    public func run(terminal: Terminal) throws -> Int {
        var terminal = terminal
        if try offerDrafts(terminal: &terminal) { return writeOnly ? written : submitted }
        var reopen: RankingRecord?
        var carriedMessage: String?
        while true {
            let pending = try writeOnly ? nextWrite() : queue.pending()
            var current: Current
            if writeOnly, let next = pending.first {
                current = try load(next, shown: next.completionIds, ranks: nil, editing: nil)
            } else if let r = reopen {
                let item = LabelItem(promptId: r.ranking.promptId, modelId: r.ranking.modelId, completionIds: r.ranking.shownOrder.sorted())
                current = try load(item, shown: r.ranking.shownOrder, ranks: r.ranking.status == .ranked ? r.ranking.ranks : nil, editing: r.id)
                current.session.message =
                    "editing your \(r.ranking.status == .ranked ? "ranking" : r.ranking.status.rawValue) of this item; Enter saves the change"
            } else if let next = pending.first {
                current = try load(next, shown: queue.shownOrder(next), ranks: nil, editing: nil)
            } else {
                if try waitWhenDone(terminal: terminal, pending: pending.count, reopen: &reopen) { return writeOnly ? written : submitted }
                passed = []
                continue
            }
            if let m = carriedMessage { current.session.message = m; carriedMessage = nil }
            reopen = nil

            // One item.
            itemLoop: while true {
                let (w, h) = terminal.size
                let draftWaiting = (try? store.drafts(annotator: queue.annotator).contains { $0.promptId == current.item.promptId }) ?? false
                let view = LabelView(
                    title: title, progress: progressText(pending: pending.count), prompt: current.prompt,
                    completions: current.bytes, session: current.session, editing: current.editing != nil,
                    guidelines: guidelines.text, guidelinesSource: guidelines.source, draftWaiting: draftWaiting)
                if w < 40 || h < 10 {
                    terminal.draw(["Terminal too small (\(w)×\(h)); rlhf label needs at least 40×10.", "q quits."])
                } else {
                    let screen = LabelScreen.render(view, width: w, height: h)
                    terminal.draw(screen.lines)
                    // The screen never scrolls past the content; keep the stored position there too,
                    // so that k scrolls back at once after j was pressed too often.
                    current.session.clampScroll(contentLines: screen.contentLines, page: screen.page)
                    current.session.clampGuidelinesScroll(contentLines: screen.contentLines, page: screen.page)
                }
                var keys: [Key] = []
                while keys.isEmpty {
                    keys = terminal.readKeys(timeoutMs: 250)
                    if terminal.takeResize() { terminal.clear(); break }
                }
                for key in keys {
                    let page = max(1, terminal.size.height - 9)
                    let action = current.session.handle(key, page: page)
                    let now = Date().timeIntervalSince1970
                    /// Stores the answer; on a failed write (a full disk, say) the answer stays on
                    /// screen with the error, and Enter tries again.
                    func save(_ status: RankingStatus, ranks: [Int]?, reason: String?) -> Bool {
                        do {
                            try self.store.submitRanking(
                                NewRanking(
                                    promptId: current.item.promptId, modelId: current.item.modelId,
                                    annotator: queue.annotator, shownOrder: current.shown, ranks: ranks,
                                    status: status, reason: reason, guidelineVersion: guidelines.version,
                                    source: "human", startedAt: current.startedAt, submittedAt: now),
                                replacing: current.editing)
                        } catch {
                            if let reason { current.session.mode = .flagReason(reason) }
                            let again = status == .skipped ? "s" : "Enter"
                            // The advice first: the line is cut to the terminal's width.
                            current.session.message = "NOT SAVED (your answer is kept; \(again) tries again, q quits): \(error)"
                            return false
                        }
                        if current.editing == nil { submitted += 1 }
                        carriedMessage = current.editing != nil ? "change saved" : "saved: \(status == .ranked ? "ranked" : status.rawValue)"
                        return true
                    }
                    switch action {
                    case .none: continue
                    case .write, .writeInEditor:
                        var from: Int? = nil
                        if case .write(let f) = action { from = f }
                        let records = try store.completions(ids: current.shown)
                        let start = try writeStart(
                            promptId: current.item.promptId, from: from.flatMap { i in records[current.shown[i]] },
                            label: from.map { "completion [\($0 + 1)]" })
                        let outcome = try write(
                            start, prompt: current.prompt, progress: progressText(pending: pending.count), terminal: &terminal,
                            editorFirst: action == .writeInEditor)
                        switch outcome {
                        case .quit: return writeOnly ? written : submitted
                        case .submitted where writeOnly:
                            carriedMessage = "saved: your answer"
                            break itemLoop
                        case .submitted: current.session.message = "saved: your answer; now rank the completions"
                        case .left(let kept): current.session.message = kept ? "draft kept: w resumes it" : "draft dropped"
                        }
                        terminal.clear()
                        break
                    case .submit(let ranks): if save(.ranked, ranks: ranks, reason: nil) { break itemLoop }
                    case .skip where writeOnly:
                        passed.insert(current.item.promptId)
                        break itemLoop
                    case .skip: if save(.skipped, ranks: nil, reason: nil) { break itemLoop }
                    case .flag(let reason): if save(.flagged, ranks: nil, reason: reason) { break itemLoop }
                    case .quit: return submitted
                    case .reopenPrevious:
                        if let prev = try previousRanking(before: current.editing) {
                            reopen = prev
                            break itemLoop
                        }
                        current.session.message = current.editing == nil ? "nothing submitted yet to reopen" : "this is your first submitted item"
                    }
                }
            }
        }
    }

    /// The screen after the last item: `u` reopens, anything else quits. True means quit.
    private func waitWhenDone(terminal: Terminal, pending: Int, reopen: inout RankingRecord?) throws -> Bool {
        let (w, h) = terminal.size
        var lines = [
            "\u{1B}[7m" + TextLayout.pad(title + " · " + progressText(pending: pending), max(20, w)) + "\u{1B}[0m", "",
            writeOnly ? "  Every prompt has an answer, or you passed over it. Thank you!" : "  Every item is labeled. Thank you!", "",
            writeOnly ? "  s  show the prompts you passed over    q  quit" : "  u  reopen your last item    q  quit",
        ]
        while lines.count < h { lines.append("") }
        terminal.draw(Array(lines.prefix(h)))
        while true {
            for key in terminal.readKeys(timeoutMs: 250) {
                if writeOnly && key == .char("s") && !passed.isEmpty { return false }
                if !writeOnly, key == .char("u"), let last = try previousRanking(before: nil) { reopen = last; return false }
                if key != .other { return true }
            }
            _ = terminal.takeResize()
        }
    }
}
