import Foundation

/// What a model folder says besides the network and its weights: this project's `rlhf_*` keys in
/// `config.json` (Hugging Face keeps unknown keys, so they survive a round trip through
/// transformers), and the chat templates and stop tokens of the Hugging Face files.
public struct ModelAnnotations: Equatable, Sendable {
    /// How a prompt is wrapped before it is fed to the model, with `{prompt}` where the prompt
    /// goes (for example `Q: {prompt}\nA:`); nil means the raw prompt.
    public var promptTemplate: String?
    /// Reward normalisation: reward = gain · head + bias (reward models only).
    public var rewardGain: Float?
    /// See `rewardGain`.
    public var rewardBias: Float?
    /// The float type the weights were published in (F32, F16 or BF16), which `rlhf export`
    /// writes by default: `rlhf_source_dtype` when the folder has it, else the type of its
    /// weights. Weights are always computed on, and checkpointed, in F32.
    public var sourceDType: SafeTensorsDType?
    /// The model's own chat template (Jinja source), from `chat_template.jinja` or
    /// `tokenizer_config.json`; written back as `chat_template.jinja`.
    public var chatTemplate: String?
    /// The ids that end generation (`eos_token_id` of generation_config.json, else of
    /// config.json; a list for Llama 3 Instruct). Empty: the tokenizer's end-of-text token.
    public var stopTokenIds: [Int32] = []
    /// Named chat templates besides the default one, written as
    /// `additional_chat_templates/NAME.jinja` (transformers 5 offers them by name).
    public var additionalChatTemplates: [String: String] = [:]
    /// Where the weights came from (run, model id, stage run, …), as one JSON object, written
    /// under `rlhf_provenance` in config.json by `rlhf export`. Not inherited.
    public var provenance: String?

    /// Annotations.
    public init(
        promptTemplate: String? = nil, rewardGain: Float? = nil, rewardBias: Float? = nil, sourceDType: SafeTensorsDType? = nil,
        chatTemplate: String? = nil, stopTokenIds: [Int32] = []
    ) {
        self.promptTemplate = promptTemplate; self.rewardGain = rewardGain; self.rewardBias = rewardBias
        self.sourceDType = sourceDType; self.chatTemplate = chatTemplate; self.stopTokenIds = stopTokenIds
    }

    /// What a model derived from this one (a policy, reward or value checkpoint) keeps: the
    /// prompt template, chat template and stop tokens, without reward normalisation.
    public var inherited: ModelAnnotations {
        ModelAnnotations(promptTemplate: promptTemplate, sourceDType: sourceDType, chatTemplate: chatTemplate, stopTokenIds: stopTokenIds)
    }

    /// The text fed to the model for `prompt` with the explicit prompt template (no chat template).
    public func format(prompt: String) -> String {
        guard let t = promptTemplate else { return prompt }
        return t.replacingOccurrences(of: "{prompt}", with: prompt)
    }

    /// How a prompt reaches the model. Precedence: the run's explicit prompt template, then the
    /// model's chat template (one user turn, generation prompt added, as transformers'
    /// `apply_chat_template(..., add_generation_prompt=True)`), then the raw prompt. `chat`
    /// false skips the chat template; true requires one.
    public func promptText(_ prompt: String, tokenizer: Tokenizer, chat: Bool? = nil) throws -> String {
        guard usesChatTemplate(chat) else { return format(prompt: prompt) }
        guard let source = chatTemplate else {
            throw FormatError("the model has no chat template (chat_template.jinja or chat_template in tokenizer_config.json)")
        }
        return try ChatTemplate.parsed(source).render(
            messages: [ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true,
            specialTokens: tokenizer.namedSpecialTokens)
    }

    /// The token ids of a prompt, as `promptText` lays it out. A chat-templated prompt is
    /// encoded as transformers encodes the rendered template (special tokens in the text are
    /// matched, and nothing is added); otherwise special-token text in the prompt is plain text
    /// and the tokenizer's post-processor prefix (Llama 3's `<|begin_of_text|>`) comes first, as
    /// `tokenizer(prompt)` in transformers gives it.
    public func promptIds(_ prompt: String, tokenizer: Tokenizer, chat: Bool? = nil) throws -> [Int32] {
        let text = try promptText(prompt, tokenizer: tokenizer, chat: chat)
        if usesChatTemplate(chat) { return tokenizer.encode(text) }
        return tokenizer.prefixIds + tokenizer.encode(text, allowSpecial: false)
    }

    /// Whether `promptText` applies the chat template.
    public func usesChatTemplate(_ chat: Bool? = nil) -> Bool {
        chat == true || (chat == nil && promptTemplate == nil && chatTemplate != nil)
    }

    /// The tokens that end generation: `stopTokenIds`, else the tokenizer's end-of-text token.
    public func stopTokens(_ tokenizer: Tokenizer) -> [Int32] {
        stopTokenIds.isEmpty ? (tokenizer.eosId.map { [$0] } ?? []) : stopTokenIds
    }
}

/// A model with its tokenizer and annotations, as loaded from a folder.
public final class PretrainedModel {
    /// The network.
    public let model: TransformerModel
    /// Its tokenizer.
    public let tokenizer: Tokenizer
    /// Prompt template, chat template, stop tokens and reward normalisation.
    public var annotations: ModelAnnotations

    /// Bundles a model with its tokenizer.
    public init(model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations = .init()) {
        self.model = model; self.tokenizer = tokenizer; self.annotations = annotations
    }
}

/// Hugging Face model folders: `config.json`, `model.safetensors` (or shards listed in
/// `model.safetensors.index.json`), the tokenizer files, and `generation_config.json` and chat
/// templates where there are any. Two families: GPT-2 (`model_type` gpt2) and Llama (`llama`:
/// Llama 3.x, SmolLM2; `qwen2`: Qwen2, Qwen2.5), each as a causal LM or, for reward and value
/// models, with a scalar head (`…ForSequenceClassification`).
///
/// Loading accepts GPT-2 tensor names with or without the `transformer.` prefix, Conv1D weights in
/// their [in, out] layout (the core's own layout) and a tied `lm_head.weight` (absent, or equal
/// to `wte`); Llama-family names with or without the `model.` prefix, and an LM head tied or
/// untied as `tie_word_embeddings` says. It refuses, naming the field, what the core cannot
/// compute exactly: another architecture or activation, an untied GPT-2 head, a non-default
/// attention scaling, cross-attention, sliding-window attention, rotary scaling other than
/// Llama 3's.
///
/// `config.json` is read and written in ModelFolder+Config, folders loaded in ModelFolder+Load and
/// saved in ModelFolder+Save.
public enum ModelFolder {
    /// File names inside a model folder.
    public static let configFile = "config.json", weightsFile = "model.safetensors"
}
