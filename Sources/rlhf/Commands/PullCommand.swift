import Foundation
import Hub
import TransformerCore

/// `rlhf pull`: a model from the Hugging Face Hub into the shared cache (and a plain folder).
enum PullCommand: Command {
    static let name = "pull"
    static let summary = "Download a model from the Hugging Face Hub into the shared cache"
    static let help = """
        Usage: rlhf pull ORG/NAME [--revision REV] [-o DIR]

        Downloads what a model folder needs from the Hugging Face Hub: config.json,
        generation_config.json, the tokenizer's files (tokenizer.json, tokenizer_config.json,
        special_tokens_map.json, vocab.json, merges.txt, added_tokens.json), the chat template
        (chat_template.jinja or .json) and the safetensors weights: model.safetensors, or
        model.safetensors.index.json and every shard it names. Nothing else is requested: no
        pickled weights (.bin, .pt, .pth), no files in subfolders.

        The files go into the shared Hugging Face cache, laid out as huggingface_hub lays it out
        (models--ORG--NAME/blobs, snapshots/COMMIT, refs/REV), so transformers, vLLM and 'hf
        download' find what rlhf pulled, and rlhf finds what they downloaded without any network.
        Files the cache holds are not fetched again. An interrupted download resumes where it
        stopped (an HTTP range request); every large file's SHA-256 is checked against the one the
        Hub published before it takes its final name (a mismatch is deleted and reported).
        Concurrent pulls of one model wait for each other on the cache's lock files
        (.locks/models--ORG--NAME/*.lock, as the Python client).

        Gated models (Llama) need a token of an account that accepted the licence: HF_TOKEN, or the
        file 'hf auth login' writes (HF_HOME/token). The token is sent to the endpoint's own host
        only, never along a redirect to another host (the Hub's file storage).

        Environment:
          HF_ENDPOINT               the Hub's address (default https://huggingface.co; a mirror)
          HF_HUB_CACHE, HF_HOME     the cache: HF_HUB_CACHE, else HF_HOME/hub, else
                                    ~/.cache/huggingface/hub
          HF_TOKEN, HF_TOKEN_PATH   the access token, or the file holding it
          HF_HUB_OFFLINE=1          no network: the model must already be in the cache
          HF_HUB_DOWNLOAD_TIMEOUT   seconds without a byte before a request is retried (default 10)

        Options:
          --revision REV   a branch, tag or commit (default main); the cache records which commit
                           REV named (refs/REV)
          -o DIR           also write the model as a plain folder DIR (the files themselves, not
                           links; written whole under a temporary name, then renamed; DIR is replaced)

        Prints the snapshot folder (or DIR) on standard output; progress goes to standard error.
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--revision", "-o"], flags: [])
        guard let name = a.positional.first else {
            throw UsageError("give the model's Hub name, ORG/NAME (for example HuggingFaceTB/SmolLM2-135M-Instruct)")
        }
        if a.positional.count > 1 { throw UsageError("unexpected argument '\(a.positional[1])'") }
        guard let repo = RepoName(name) else {
            throw UsageError(
                "'\(name)' is not a Hub model name: ORG/NAME, one slash, letters, digits, '-', '_' and '.' (a model without an owner, gpt2, is now openai-community/gpt2)"
            )
        }
        let revision = a.string("--revision") ?? "main"
        let client = HubClient(environment: try HubEnvironment.current())
        let pulled = try client.pull(repo, revision: revision, output: a.string("-o").map { URL(fileURLWithPath: $0) })
        printError(
            "\(repo) at commit \(pulled.commit): "
                + (pulled.bytesFetched > 0 ? "\(ProgressBar.bytes(Double(pulled.bytesFetched))) fetched" : "nothing to fetch, the cache held it all"))
        print(pulled.folder.path)
    }
}
