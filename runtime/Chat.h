// SPDX-License-Identifier: Apache-2.0
/// Chatting with a pretrained model (`llmpc chat`): the conversation rendered through the
/// model's own chat template (runtime/ChatTemplate.h, e.g. SmolLM2's ChatML from its GGUF
/// metadata), encoded with its byte-level BPE tokenizer, and the assistant's reply
/// generated token by token (runtime/Generate.h: the compiled prefill_step/decode_step
/// with a KV cache, or the full-window logits_step) until an end-of-turn token.
#pragma once

#include "runtime/BpeTokenizer.h"
#include "runtime/ChatTemplate.h"
#include "runtime/Generate.h"
#include "runtime/Status.h"

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace lrt {

/// How replies are sampled.
struct ChatOptions {
  int64_t maxNew = 256;     ///< at most this many tokens per reply
  double temperature = 0.0; ///< <= 0: greedy (argmax), as sampleToken
  int64_t topK = 0;         ///< 0: all tokens
  uint64_t seed = 0;        ///< of the sampling RNG (unused when greedy)
};

/// One conversation. Not thread-safe; the model, tokenizer and template must outlive it.
class ChatSession {
public:
  /// `stopIds`: ids that end a reply (not part of it), e.g. the GGUF's
  /// tokenizer.ggml.eos_token_id (`<|im_end|>` for SmolLM2).
  ChatSession(const LogitsModel &model, const BpeTokenizer &tokenizer,
              const ChatTemplate &chatTemplate, std::vector<int32_t> stopIds,
              ChatOptions options);

  /// Appends the user message `text`, renders the conversation with
  /// `add_generation_prompt`, and generates the assistant's reply: at most
  /// options.maxNew tokens, ending before a stop id. Each decoded piece of the reply
  /// (whole UTF-8 characters) goes to `onText` as it is generated. The reply is appended
  /// to the conversation and returned. Errors: those of rendering, encoding and
  /// generate(); the conversation is left unchanged on error.
  Expected<std::string> reply(const std::string &text,
                              const std::function<void(std::string_view)> &onText = {});

  /// Adds a message without generating (e.g. a "system" message first).
  void add(const std::string &role, const std::string &content) {
    messages_.push_back({role, content});
  }
  const std::vector<ChatMessage> &messages() const { return messages_; }
  /// Token ids of the last reply's prompt (the rendered conversation), for tests.
  const std::vector<int32_t> &lastPromptIds() const { return lastPrompt_; }

private:
  LogitsModel model_;
  const BpeTokenizer *tokenizer_;
  const ChatTemplate *template_;
  std::vector<int32_t> stopIds_;
  ChatOptions options_;
  std::mt19937_64 rng_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> lastPrompt_;
};

} // namespace lrt
