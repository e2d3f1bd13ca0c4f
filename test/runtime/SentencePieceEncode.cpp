// SPDX-License-Identifier: Apache-2.0
/// Test driver for runtime/Tokenizer with any SentencePiece `.model` file: loads MODEL
/// through libsentencepiece (Tokenizer::load) and writes, for each line of TEXT, a JSON
/// object {"ids": [...], "decoded": "..."} on its own stdout line, so that
/// test/e2e/sentencepiece_model.py can compare with the `sentencepiece` pip package.
///   llmp-spm-encode MODEL TEXT
#include "runtime/FileUtil.h"
#include "runtime/Tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdio>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL TEXT\n", argv[0]);
    return 2;
  }
  auto tok = lrt::Tokenizer::load(argv[1]);
  if (!tok) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  auto text = lrt::readFile(argv[2]);
  if (!text) {
    std::fprintf(stderr, "%s\n", text.status().message().c_str());
    return 1;
  }
  size_t begin = 0;
  while (begin < text->size()) {
    size_t end = text->find('\n', begin);
    if (end == std::string::npos)
      end = text->size();
    std::string line = text->substr(begin, end - begin);
    std::vector<int32_t> ids = tok->encode(line);
    nlohmann::json row = {{"ids", ids}, {"decoded", tok->decode(ids)}};
    std::printf("%s\n", row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    begin = end + 1;
  }
  return 0;
}
