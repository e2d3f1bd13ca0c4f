// SPDX-License-Identifier: Apache-2.0
/// Chat templates: a conversation (messages with a role and a content) rendered to the
/// prompt text a model was trained on, through the model's own Jinja template, exactly as
/// `transformers`' `tokenizer.apply_chat_template(messages, tokenize=False,
/// add_generation_prompt=...)` renders it (the Jinja subset is in ChatTemplateJinja.h).
/// Templates come from a Hugging Face `tokenizer_config.json` (`chat_template`, with the
/// special tokens `bos_token`, `eos_token`, `unk_token`, `pad_token`) or from GGUF metadata
/// (`tokenizer.chat_template`, special tokens from `tokenizer.ggml.*_token_id`).
///
/// For supervised fine-tuning, rendering also reports where each assistant turn's bytes
/// landed (by tracking the bytes of each assistant message's content through the
/// template, not by searching the text), and `assistantTokenMask` turns those spans into
/// a per-token mask that is 1 exactly on the assistant tokens.
#pragma once

#include "runtime/ChatTemplateJinja.h"
#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lrt {

class BpeTokenizer;
struct GgufFile;

/// One message of a conversation. `role` is what the template expects ("system",
/// "user", "assistant", "tool", ...); `content` is UTF-8 text.
struct ChatMessage {
  std::string role;
  std::string content;
};

/// Options of one rendering, as `apply_chat_template`'s keyword arguments.
struct ChatRenderOptions {
  /// Appends the header that starts an assistant turn (`add_generation_prompt`).
  bool addGenerationPrompt = false;
  /// Extra boolean template variables (e.g. Qwen3's `enable_thinking`).
  std::map<std::string, bool> flags;
  /// Strings that end an assistant turn. An assistant span extends over one of them when
  /// it follows the message's content directly (ChatML `<|im_end|>`, Llama 3
  /// `<|eot_id|>`). Empty: the template's `eos_token`.
  std::vector<std::string> endOfTurn;
};

/// A rendered conversation.
struct RenderedChat {
  /// The prompt text (UTF-8), byte-identical to `apply_chat_template(tokenize=False)`.
  std::string text;
  /// For each assistant message with non-empty rendered content, in order: the byte range
  /// [first, last) of `text` from the first to the last byte that came from that
  /// message's content (so text the template writes inside it, such as a `<think>`
  /// block's tags, is included), extended over an end-of-turn string that follows it
  /// directly (ChatRenderOptions::endOfTurn). Copies of the same words in other messages
  /// are never included.
  std::vector<std::pair<size_t, size_t>> assistantSpans;
};

/// A parsed chat template with the special-token strings it is rendered with.
class ChatTemplate {
public:
  /// Parses `source` (Jinja). `name` prefixes messages; `specialTokens` maps variable
  /// names (`bos_token`, `eos_token`, ...) to their text. Errors: InvalidArgument
  /// "`name`:LINE:COL: ..." for a syntax error or an unsupported construct.
  static Expected<ChatTemplate> parse(const std::string &source, std::string name,
                                      std::map<std::string, std::string> specialTokens);

  /// The `chat_template` of a Hugging Face `tokenizer_config.json` (a string, or a list
  /// of {name, template} of which the one named "default" is used), with its special
  /// tokens (strings or {"content": ...} objects; null ones are left undefined, as
  /// `transformers` leaves them out). Errors: NotFound/IoError for the file,
  /// InvalidArgument for bad JSON, NotFound "... has no chat template" when the field is
  /// absent or null (e.g. GPT-2), and parse()'s errors.
  static Expected<ChatTemplate> fromTokenizerConfig(const std::string &path);

  /// `tokenizer.chat_template` of GGUF metadata, with `bos_token`, `eos_token`,
  /// `unk_token` and `pad_token` from `tokenizer.ggml.{bos,eos,unknown,padding}_token_id`
  /// looked up in `tokenizer.ggml.tokens`. `name` prefixes messages. Errors: NotFound when
  /// the key is absent, InvalidArgument for a token id outside the vocabulary, parse()'s.
  static Expected<ChatTemplate> fromGguf(const GgufFile &gguf, const std::string &name);

  /// Renders `messages` (available to the template as `messages`, a list of dicts with
  /// `role` and `content`), with `add_generation_prompt`, the special tokens and the
  /// flags as variables. Errors: InvalidArgument with the template position for an
  /// evaluation error or `raise_exception(...)` (e.g. a role the template rejects); more
  /// than 65535 messages.
  Expected<RenderedChat> render(const std::vector<ChatMessage> &messages,
                                const ChatRenderOptions &opts = {}) const;

  const std::string &source() const { return source_; }
  const std::map<std::string, std::string> &specialTokens() const { return special_; }

private:
  std::string source_;
  std::map<std::string, std::string> special_;
  jinja::Template tmpl_;
};

/// The SFT label mask of a rendered conversation: out[t] = 1 when token t of `ids` is an
/// assistant token, i.e. its first byte lies inside one of `chat.assistantSpans`, else 0.
/// `ids` must be a tokenization of `chat.text` (special tokens parsed), so that the bytes
/// of the tokens (BpeTokenizer::tokenBytes) concatenate to the text. A token crossing a
/// span boundary counts for the span only if it starts inside it. Errors:
/// InvalidArgument when an id is outside the vocabulary or the tokens' bytes do not
/// reproduce `chat.text` (naming the first differing token).
Expected<std::vector<uint8_t>> assistantTokenMask(const RenderedChat &chat,
                                                  const std::vector<int32_t> &ids,
                                                  const BpeTokenizer &tok);

} // namespace lrt
