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
  BpeStreamDecoder decoder(*tokenizer_);
  std::string out;
  GenerateOptions opts;
  opts.maxNew = options_.maxNew;
  opts.temperature = options_.temperature;
  opts.topK = options_.topK;
  // Each id is decoded and streamed as it comes; a stop id ends the reply unprinted.
  opts.onToken = [&](int64_t, int32_t id) {
    if (std::find(stopIds_.begin(), stopIds_.end(), id) != stopIds_.end())
      return false;
    std::string piece = decoder.push(id);
    out += piece;
    if (onText && !piece.empty())
      onText(piece);
    return true;
  };
  auto added = generateStream(model_, *ids, opts, rng_);
  if (!added)
    return added.status();
  std::string rest = decoder.flush();
  out += rest;
  if (onText && !rest.empty())
    onText(rest);
  messages_ = std::move(conversation);
  messages_.push_back({"assistant", out});
  return out;
}

} // namespace lrt
