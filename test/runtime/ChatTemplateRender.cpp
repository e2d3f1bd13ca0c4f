// SPDX-License-Identifier: Apache-2.0
/// Test driver for runtime/ChatTemplate: reads a JSON list of cases from argv[1] and
/// writes a JSON list of results to stdout, so that test/e2e/chat_template.py can compare
/// the C++ renderer and label mask with `transformers`. A case is
///   {"config": "tokenizer_config.json" | "gguf": "model.gguf",
///    "messages": [{"role", "content"}], "add_generation_prompt": bool,
///    "flags": {"name": bool}, "end_of_turn": ["..."],
///    "tokenizer_json": "tokenizer.json" (optional: tokenize and compute the label mask)}
/// and its result {"text", "spans": [[first, last]], "ids", "mask"} (byte offsets into
/// the UTF-8 text; ids/mask only with a tokenizer) or {"error": "message"}.
#include "runtime/BpeTokenizer.h"
#include "runtime/ChatTemplate.h"
#include "runtime/FileUtil.h"
#include "runtime/Gguf.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <memory>

using nlohmann::json;

namespace {

std::map<std::string, std::shared_ptr<lrt::BpeTokenizer>> tokenizers;

json runCase(const json &c) {
  lrt::Expected<lrt::ChatTemplate> tmpl = lrt::Status::invalid("case names neither 'config' nor 'gguf'");
  std::shared_ptr<lrt::BpeTokenizer> tok;
  if (c.contains("config")) {
    tmpl = lrt::ChatTemplate::fromTokenizerConfig(c["config"].get<std::string>());
  } else if (c.contains("gguf")) {
    std::string path = c["gguf"].get<std::string>();
    auto g = lrt::readGguf(path);
    if (!g)
      return {{"error", g.status().message()}};
    tmpl = lrt::ChatTemplate::fromGguf(*g, path);
  }
  if (c.contains("tokenizer_json")) {
    std::string path = c["tokenizer_json"].get<std::string>();
    auto &t = tokenizers[path];
    if (!t) {
      auto bt = lrt::BpeTokenizer::fromHuggingFaceJson(path);
      if (!bt)
        return {{"error", bt.status().message()}};
      t = std::make_shared<lrt::BpeTokenizer>(bt.take());
    }
    tok = t;
  }
  if (!tmpl)
    return {{"error", tmpl.status().message()}};
  std::vector<lrt::ChatMessage> msgs;
  for (const auto &m : c["messages"])
    msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  lrt::ChatRenderOptions opts;
  opts.addGenerationPrompt = c.value("add_generation_prompt", false);
  if (c.contains("flags"))
    for (const auto &[k, v] : c["flags"].items())
      opts.flags[k] = v.get<bool>();
  if (c.contains("end_of_turn"))
    opts.endOfTurn = c["end_of_turn"].get<std::vector<std::string>>();
  auto r = tmpl->render(msgs, opts);
  if (!r)
    return {{"error", r.status().message()}};
  json out = {{"text", r->text}, {"spans", r->assistantSpans}};
  if (tok) {
    auto ids = tok->encode(r->text);
    if (!ids)
      return {{"error", ids.status().message()}};
    auto mask = lrt::assistantTokenMask(*r, *ids, *tok);
    if (!mask)
      return {{"error", mask.status().message()}};
    out["ids"] = *ids;
    out["mask"] = *mask;
  }
  return out;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CASES.json\n", argv[0]);
    return 2;
  }
  auto text = lrt::readFile(argv[1]);
  if (!text) {
    std::fprintf(stderr, "%s\n", text.status().message().c_str());
    return 1;
  }
  json results = json::array();
  for (const auto &c : json::parse(*text))
    results.push_back(runCase(c));
  std::printf("%s\n", results.dump().c_str());
  return 0;
}
