// SPDX-License-Identifier: Apache-2.0
/// Test driver for runtime/SftData: `llmp-sft-encode MODEL.gguf SPEC.json` reads the
/// conversations of the dataset spec {"path", "format", "keys": {...}, "train_on_all"}
/// (readConversations), labels each with the GGUF's chat template and tokenizer
/// (encodeConversation) and writes {"conversations": [{"origin", "tokens", "targets"}]}
/// to stdout, or {"error": "message"}, so that test/e2e/sft_smollm2.py can compare them
/// with transformers' apply_chat_template.
#include "runtime/BpeTokenizer.h"
#include "runtime/ChatTemplate.h"
#include "runtime/FileUtil.h"
#include "runtime/Gguf.h"
#include "runtime/SftData.h"

#include <nlohmann/json.hpp>

#include <cstdio>

using nlohmann::json;

namespace {

json run(const std::string &ggufPath, const std::string &specPath) {
  auto specText = lrt::readFile(specPath);
  if (!specText)
    return {{"error", specText.status().message()}};
  json j = json::parse(*specText);
  lrt::DatasetSpec spec;
  spec.path = j.at("path").get<std::string>();
  spec.format = j.at("format").get<std::string>();
  if (j.contains("keys"))
    spec.keys = j["keys"].get<std::map<std::string, std::string>>();
  auto gguf = lrt::readGguf(ggufPath);
  if (!gguf)
    return {{"error", gguf.status().message()}};
  auto tok = lrt::BpeTokenizer::fromGguf(*gguf);
  if (!tok)
    return {{"error", tok.status().message()}};
  auto tmpl = lrt::ChatTemplate::fromGguf(*gguf, ggufPath);
  if (!tmpl)
    return {{"error", tmpl.status().message()}};
  auto convs = lrt::readConversations(spec);
  if (!convs)
    return {{"error", convs.status().message()}};
  lrt::SftEncodeOptions opts;
  opts.trainOnAll = j.value("train_on_all", false);
  json out = json::array();
  for (const lrt::Conversation &c : *convs) {
    auto ex = lrt::encodeConversation(*tmpl, *tok, c, opts);
    if (!ex)
      return {{"error", ex.status().message()}};
    out.push_back({{"origin", c.origin}, {"tokens", ex->tokens}, {"targets", ex->targets}});
  }
  return {{"conversations", out}};
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: llmp-sft-encode MODEL.gguf SPEC.json\n");
    return 2;
  }
  std::string text = run(argv[1], argv[2]).dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
