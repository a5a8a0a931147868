import Foundation
import RunStore
import StageKit
import TransformerCore

/// Where an answer being written starts.
struct WriteStart {
    var promptId: Int64
    var text: String
    var fromCompletionId: Int64?
    var startedAt: Double
    /// As shown above the answer.
    var origin: String
}

/// How the writing screen was left.
enum WriteOutcome: Equatable {
    case submitted
    case left(kept: Bool)
    case quit
}

extension LabelApp {
    /// Keystrokes after which the draft is saved even without a pause in the typing.
    static let draftEveryEdits = 10
    /// A pause this long (milliseconds) in the typing saves the draft.
    static let draftPauseMs: Int32 = 300

    /// The annotator's current answer to a prompt, written in this screen: a new submit
    /// replaces it (one answer per prompt and annotator, as one ranking per item).
    func submittedAnswer(promptId: Int64) throws -> DemonstrationRecord? {
        try store.demonstrations(annotator: queue.annotator).last { $0.demonstration.promptId == promptId && $0.demonstration.source == "human" }
    }

    /// Where `w` (or `c N` with `from`) starts: the completion to correct, else the draft kept
    /// for this prompt, else the answer already submitted for it, else an empty answer.
    func writeStart(promptId: Int64, from: CompletionRecord?, label: String?) throws -> WriteStart {
        let now = Date().timeIntervalSince1970
        if let c = from {
            return WriteStart(
                promptId: promptId, text: c.text, fromCompletionId: c.id, startedAt: now, origin: "starting from \(label ?? "a completion")")
        }
        if let d = try store.drafts(annotator: queue.annotator).first(where: { $0.promptId == promptId }) {
            return WriteStart(
                promptId: promptId, text: d.text, fromCompletionId: d.fromCompletionId, startedAt: d.startedAt,
                origin: d.fromCompletionId == nil ? "your draft" : "your draft, from a completion")
        }
        if let d = try submittedAnswer(promptId: promptId)?.demonstration {
            return WriteStart(
                promptId: promptId, text: d.text, fromCompletionId: d.fromCompletionId, startedAt: now,
                origin: "your submitted answer: Ctrl-S saves the change")
        }
        return WriteStart(promptId: promptId, text: "", fromCompletionId: nil, startedAt: now, origin: "from scratch")
    }

    /// The writing screen, until the answer is submitted or left. The draft is saved (each save
    /// its own transaction) after a short pause in the typing, every few keystrokes, before the
    /// external editor opens and on leaving, so a crash or `kill -9` loses at most the last few
    /// keys. Submitting stores the demonstration and drops the draft in one transaction; it
    /// replaces the annotator's earlier answer to the prompt, which stays in the history.
    func write(_ start: WriteStart, prompt: String, progress: String, terminal: inout Terminal, editorFirst: Bool = false) throws
        -> WriteOutcome
    {
        var session = WriteSession(text: start.text)
        var saved: String?
        let annotator = queue.annotator
        func saveDraft() {
            guard session.unsavedEdits > 0 else { return }
            do {
                let text = session.editor.text
                if text.isEmpty && start.fromCompletionId == nil {
                    try store.discardDraft(promptId: start.promptId, annotator: annotator)
                } else {
                    try store.saveDraft(
                        DemonstrationDraft(
                            promptId: start.promptId, annotator: annotator, text: text, fromCompletionId: start.fromCompletionId,
                            startedAt: start.startedAt, savedAt: Date().timeIntervalSince1970))
                }
                session.draftSaved()
                saved = "draft saved " + Self.clock(Date())
            } catch {
                session.message = "DRAFT NOT SAVED (keep writing; it is tried again): \(error)"
            }
        }
        func external() throws {
            saveDraft()
            terminal.restore()
            let result = Result { try ExternalEditor.edit(session.editor.text) }
            terminal = try Terminal()
            switch result {
            case .success(let text):
                session.replaceText(text)
                saveDraft()
                session.message = "back from the editor: Ctrl-S submits, Ctrl-X edits again"
            case .failure(let e): session.message = "\(e)"
            }
        }
        if editorFirst { try external() }
        while true {
            let (w, h) = terminal.size
            let page: Int
            if w < 40 || h < 10 {
                terminal.draw(
                    ["Terminal too small (\(w)×\(h)); writing needs at least 40×10.", "Ctrl-C quits (the draft is kept)."].map {
                        TextLayout.truncate($0, w)
                    })
                page = 1
            } else {
                let view = WriteView(title: title, progress: progress, prompt: prompt, origin: start.origin, saved: saved, session: session)
                let screen = WriteScreen.render(view, width: w, height: h)
                terminal.draw(screen.lines)
                session.scroll = screen.scroll
                page = screen.page
            }
            let keys = EditorInput.read(timeoutMs: Self.draftPauseMs)
            if terminal.takeResize() { terminal.clear() }
            if keys.isEmpty { saveDraft(); continue }
            for key in keys {
                let action = session.handle(key, width: WriteScreen.answerWidth(w), page: page)
                switch action {
                case .none: continue
                case .submit(let text):
                    let replacing: Int64?
                    do {
                        replacing = try submittedAnswer(promptId: start.promptId)?.id
                        try store.submitDemonstration(
                            NewDemonstration(
                                promptId: start.promptId, text: text, annotator: annotator, source: "human",
                                fromCompletionId: start.fromCompletionId, guidelineVersion: guidelines.version, startedAt: start.startedAt,
                                submittedAt: Date().timeIntervalSince1970), replacing: replacing)
                    } catch {
                        session.message = "NOT SAVED (your answer is kept; Ctrl-S tries again): \(error)"
                        continue
                    }
                    if replacing == nil { written += 1 }
                    return .submitted
                case .leave(let keep):
                    if keep {
                        saveDraft()
                    } else {
                        try store.discardDraft(promptId: start.promptId, annotator: annotator)
                    }
                    return .left(kept: keep && (session.changed || start.origin.hasPrefix("your draft")))
                case .externalEditor: try external()
                case .quit:
                    saveDraft()
                    return .quit
                }
            }
            // Once per read, so that a paste is one save, not one per character.
            if session.unsavedEdits >= Self.draftEveryEdits { saveDraft() }
        }
    }

    /// Offers each unsubmitted draft back (oldest first): resume, discard, or keep it for later.
    /// True when the user quit.
    func offerDrafts(terminal: inout Terminal) throws -> Bool {
        let drafts = try store.drafts(annotator: queue.annotator)
        for (i, d) in drafts.enumerated() {
            let prompt = try store.prompt(id: d.promptId)?.text ?? "(missing prompt)"
            offer: while true {
                let (w, h) = terminal.size
                terminal.draw(
                    WriteScreen.draftOffer(
                        title: title, index: i + 1, count: drafts.count, savedAt: d.savedAt, prompt: prompt, draft: d.text, width: w, height: h))
                for key in terminal.readKeys(timeoutMs: 250) {
                    switch key {
                    case .char("r"), .enter:
                        let start = try writeStart(promptId: d.promptId, from: nil, label: nil)
                        let outcome = try write(start, prompt: prompt, progress: "draft \(i + 1) of \(drafts.count)", terminal: &terminal)
                        terminal.clear()
                        if outcome == .quit { return true }
                        break offer
                    case .char("d"):
                        try store.discardDraft(promptId: d.promptId, annotator: queue.annotator)
                        break offer
                    case .char("l"), .escape: break offer
                    case .char("q"), .interrupt: return true
                    default: continue
                    }
                }
                _ = terminal.takeResize()
            }
        }
        return false
    }

    /// "15:04:05", local time.
    static func clock(_ d: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: d)
    }
}
