// SPDX-License-Identifier: Apache-2.0
/// Chat templates from tokenizer_config.json and GGUF metadata, rendering with assistant
/// spans, and the SFT label mask over tokens.
#include "runtime/ChatTemplate.h"

#include "runtime/BpeTokenizer.h"
#include "runtime/FileUtil.h"
#include "runtime/Gguf.h"

#include <nlohmann/json.hpp>

namespace lrt {

Expected<ChatTemplate> ChatTemplate::parse(const std::string &source, std::string name,
                                           std::map<std::string, std::string> specialTokens) {
  auto t = jinja::Template::parse(source, std::move(name));
  if (!t)
    return t.status();
  ChatTemplate ct;
  ct.source_ = source;
  ct.special_ = std::move(specialTokens);
  ct.tmpl_ = t.take();
  return ct;
}

Expected<ChatTemplate> ChatTemplate::fromTokenizerConfig(const std::string &path) {
  auto text = readFile(path);
  if (!text)
    return text.status().withContext("tokenizer config '" + path + "'");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(*text);
  } catch (const std::exception &e) {
    return Status::invalid("tokenizer config '" + path + "': invalid JSON: " + e.what());
  }
  if (!cfg.is_object())
    return Status::invalid("tokenizer config '" + path + "': expected a JSON object");
  std::string source;
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null())
    return Status::error(StatusCode::NotFound, "tokenizer config '" + path + "' has no chat template");
  if (it->is_string()) {
    source = it->get<std::string>();
  } else if (it->is_array()) {
    // Several named templates (transformers: a list of {"name", "template"}); the
    // conversation template is the one named "default".
    for (const auto &e : *it)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        source = e["template"].get<std::string>();
    if (source.empty())
      return Status::error(StatusCode::NotFound,
                           "tokenizer config '" + path + "' has no chat template named 'default'");
  } else {
    return Status::invalid("tokenizer config '" + path + "': 'chat_template' must be a string or a list");
  }
  std::map<std::string, std::string> special;
  for (const char *key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    auto t = cfg.find(key);
    if (t == cfg.end() || t->is_null())
      continue;
    if (t->is_string())
      special[key] = t->get<std::string>();
    else if (t->is_object() && t->contains("content") && (*t)["content"].is_string())
      special[key] = (*t)["content"].get<std::string>();
    else
      return Status::invalid("tokenizer config '" + path + "': '" + key + "' must be a string or {\"content\": ...}");
  }
  return parse(source, path + ": chat_template", std::move(special));
}

Expected<ChatTemplate> ChatTemplate::fromGguf(const GgufFile &gguf, const std::string &name) {
  auto source = gguf.getString("tokenizer.chat_template");
  if (!source)
    return source.status().withContext(name);
  std::map<std::string, std::string> special;
  auto tokens = gguf.getStringArray("tokenizer.ggml.tokens");
  static const std::pair<const char *, const char *> kIds[] = {
      {"tokenizer.ggml.bos_token_id", "bos_token"},
      {"tokenizer.ggml.eos_token_id", "eos_token"},
      {"tokenizer.ggml.unknown_token_id", "unk_token"},
      {"tokenizer.ggml.padding_token_id", "pad_token"},
  };
  for (const auto &[key, var] : kIds) {
    auto id = gguf.getInt(key);
    if (!id)
      continue;
    if (!tokens)
      return tokens.status().withContext(name + ": '" + key + "' needs the vocabulary");
    if (*id < 0 || *id >= static_cast<int64_t>(tokens->size()))
      return Status::invalid(name + ": '" + key + "' = " + std::to_string(*id) + " is outside the vocabulary of " +
                             std::to_string(tokens->size()) + " tokens");
    special[var] = (*tokens)[static_cast<size_t>(*id)];
  }
  return parse(*source, name + ": tokenizer.chat_template", std::move(special));
}

Expected<RenderedChat> ChatTemplate::render(const std::vector<ChatMessage> &messages,
                                            const ChatRenderOptions &opts) const {
  if (messages.size() >= 65535)
    return Status::invalid("chat template: " + std::to_string(messages.size()) +
                           " messages; at most 65534 are supported");
  using jinja::Value;
  Value globals = Value::makeDict();
  std::vector<Value> msgs;
  for (size_t k = 0; k < messages.size(); ++k) {
    Value m = Value::makeDict();
    m.dict->set("role", Value::string(messages[k].role));
    // Mark each assistant message's bytes with its index + 1 to find them in the output.
    uint16_t mark = messages[k].role == "assistant" ? static_cast<uint16_t>(k + 1) : 0;
    m.dict->set("content", Value::string(messages[k].content, mark));
    msgs.push_back(std::move(m));
  }
  globals.dict->set("messages", Value::makeList(std::move(msgs)));
  globals.dict->set("add_generation_prompt", Value::boolean(opts.addGenerationPrompt));
  // transformers passes tools=None and documents=None when none are given.
  globals.dict->set("tools", Value::none());
  globals.dict->set("documents", Value::none());
  for (const auto &[k, v] : special_)
    globals.dict->set(k, Value::string(v));
  for (const auto &[k, v] : opts.flags)
    globals.dict->set(k, Value::boolean(v));
  auto out = tmpl_.render(globals);
  if (!out)
    return out.status();

  RenderedChat r;
  r.text = std::move(out->text);
  if (out->marks.empty())
    return r;
  std::vector<std::string> eot = opts.endOfTurn;
  if (eot.empty()) {
    auto e = special_.find("eos_token");
    if (e != special_.end())
      eot.push_back(e->second);
  }
  // First and last byte of each assistant message's content in the output.
  std::map<uint16_t, std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < out->marks.size(); ++i) {
    uint16_t m = out->marks[i];
    if (!m)
      continue;
    auto [it, fresh] = spans.try_emplace(m, i, i + 1);
    if (!fresh)
      it->second.second = i + 1;
  }
  for (auto [m, span] : spans) {
    for (const auto &e : eot)
      if (!e.empty() && r.text.compare(span.second, e.size(), e) == 0) {
        span.second += e.size();
        break;
      }
    r.assistantSpans.push_back(span);
  }
  return r;
}

Expected<std::vector<uint8_t>> assistantTokenMask(const RenderedChat &chat, const std::vector<int32_t> &ids,
                                                  const BpeTokenizer &tok) {
  std::vector<uint8_t> mask(ids.size(), 0);
  size_t pos = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= tok.vocabSize())
      return Status::invalid("assistant token mask: token " + std::to_string(t) + " has id " +
                             std::to_string(ids[t]) + ", outside the vocabulary of " +
                             std::to_string(tok.vocabSize()));
    const std::string &bytes = tok.tokenBytes(ids[t]);
    if (chat.text.compare(pos, bytes.size(), bytes) != 0 || pos + bytes.size() > chat.text.size())
      return Status::invalid("assistant token mask: token " + std::to_string(t) + " (id " + std::to_string(ids[t]) +
                             ") does not match the rendered text at byte " + std::to_string(pos) +
                             "; the ids must be a tokenization of the rendered text");
    for (const auto &[first, last] : chat.assistantSpans)
      if (first <= pos && pos < last)
        mask[t] = 1;
    pos += bytes.size();
  }
  if (pos != chat.text.size())
    return Status::invalid("assistant token mask: the tokens cover " + std::to_string(pos) + " of the " +
                           std::to_string(chat.text.size()) + " bytes of the rendered text");
  return mask;
}

} // namespace lrt
