// SPDX-License-Identifier: Apache-2.0
#include "runtime/Chat.h"

#include <algorithm>

namespace lrt {

ChatSession::ChatSession(const LogitsModel &model, const BpeTokenizer &tokenizer,
                         const ChatTemplate &chatTemplate, std::vector<int32_t> stopIds,
                         ChatOptions options)
    : model_(model), tokenizer_(&tokenizer), template_(&chatTemplate),
      stopIds_(std::move(stopIds)), options_(options), rng_(options.seed) {}

Expected<std::string> ChatSession::reply(const std::string &text,
                                         const std::function<void(std::string_view)> &onText) {
  std::vector<ChatMessage> conversation = messages_;
  conversation.push_back({"user", text});
  ChatRenderOptions render;
  render.addGenerationPrompt = true;
  auto rendered = template_->render(conversation, render);
  if (!rendered)
    return rendered.status();
  auto ids = tokenizer_->encode(rendered->text, /*parseSpecial=*/true);
  if (!ids)
    return ids.status();
  lastPrompt_ = *ids;
  std::vector<int32_t> context = ids.take();
  BpeStreamDecoder decoder(*tokenizer_);
  std::string out;
  for (int64_t n = 0; n < options_.maxNew; ++n) {
    // One token per call: generate() runs the whole window (no KV cache yet, #4).
    auto next = generate(model_, std::move(context), 1, options_.temperature, options_.topK,
                         rng_);
    if (!next)
      return next.status();
    context = next.take();
    int32_t id = context.back();
    if (std::find(stopIds_.begin(), stopIds_.end(), id) != stopIds_.end())
      break;
    std::string piece = decoder.push(id);
    out += piece;
    if (onText && !piece.empty())
      onText(piece);
  }
  std::string rest = decoder.flush();
  out += rest;
  if (onText && !rest.empty())
    onText(rest);
  messages_ = std::move(conversation);
  messages_.push_back({"assistant", out});
  return out;
}

} // namespace lrt
