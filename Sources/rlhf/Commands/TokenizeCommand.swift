import Foundation
import TransformerCore

/// `rlhf tokenize`: the token ids of a text under a model folder's tokenizer.
enum TokenizeCommand: Command {
    static let name = "tokenize"
    static let summary = "Print the token ids of a text"
    static let help = """
        Usage: rlhf tokenize --model DIR|ORG/NAME (--text T | --file F) [--chat] [--no-special-tokens]
                             [--json]

        Encodes the text with the byte-level BPE tokenizer of DIR (tokenizer.json, or vocab.json with
        merges.txt; a model folder or a folder from 'rlhf tokenizer train'), exactly as GPT-2's
        tokenizer does. Special tokens written in the text, such as <|endoftext|>, become their ids.
        The tokens the tokenizer's post-processor adds come with it by default, as transformers'
        tokenizer(T) gives them: Llama 3's <|begin_of_text|> before the text (GPT-2, SmolLM2 and
        Qwen2.5 add none); --no-special-tokens leaves them out, as
        tokenizer(T, add_special_tokens=False) does. With --chat the text is one user turn of the folder's chat template (chat_template.jinja or
        tokenizer_config.json), with the assistant's generation prompt after it: the ids of
        transformers' apply_chat_template([{"role": "user", "content": T}], add_generation_prompt=True).

        \(modelArgumentRule)

        Options:
          --model DIR|ORG/NAME  folder holding the tokenizer, or a Hub model
          --text T              the text
          --file F              read the text from a UTF-8 file instead
          --chat                apply the folder's chat template to the text first
          --no-special-tokens   leave out the tokens the post-processor adds (BOS); no effect with --chat
          --json                print {"text": ..., "ids": [...], "tokens": [...]}: the text encoded (with
                                --chat, the rendered template) and tokens in the vocabulary's spelling
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--model", "--text", "--file"], flags: ["--json", "--chat", "--no-special-tokens"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let dir = a.string("--model") else { throw UsageError("--model DIR is required (a folder or a Hub name ORG/NAME)") }
        let text: String
        switch (a.string("--text"), a.string("--file")) {
        case (let t?, nil): text = t
        case (nil, let f?): text = try readUTF8File(f)
        default: throw UsageError("give exactly one of --text and --file")
        }
        let folder = try locateModel(dir).folder
        let tok = try Tokenizer.load(folder: folder)
        var notes = ModelAnnotations()
        if a.flag("--chat") { notes.chatTemplate = try ChatTemplate.load(folder: folder)?.source }
        let ids =
            a.flag("--chat")
            ? try notes.promptIds(text, tokenizer: tok, chat: true)
            : a.flag("--no-special-tokens") ? tok.encode(text) : tok.encodeWithSpecialTokens(text)
        if a.flag("--json") {
            let encoded = a.flag("--chat") ? try notes.promptText(text, tokenizer: tok, chat: true) : text
            print(
                jsonLine([
                    ("text", JSONText.quote(encoded)),
                    ("ids", "[" + ids.map(String.init).joined(separator: ",") + "]"),
                    ("tokens", "[" + ids.map { JSONText.quote(tok.token($0)) }.joined(separator: ",") + "]"),
                ]))
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }
}
