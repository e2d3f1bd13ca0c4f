// SPDX-License-Identifier: Apache-2.0
// Exact-match tests of the byte-level BPE tokenizers against independent references:
// the shipped GPT-2 cases (tiktoken's test plans), llama.cpp's Qwen2 GGUF vocab tests, and
// ids from the Hugging Face `tokenizers` package (test/runtime/bpe_reference.py) on the KJV,
// the State of the Union corpus and tricky strings. Needs ../shared/data (LLMP_SHARED_DATA)
// and, for the Hugging Face comparison, `scripts/python.sh` with `tokenizers`.
#include "runtime/BpeTokenizer.h"
#include "runtime/Corpus.h"
#include "runtime/FileUtil.h"
#include "test/runtime/TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using lrt::BpeTokenizer;

namespace {

std::string sourceDir() {
  const char *s = std::getenv("LLMP_SOURCE_DIR");
  return s ? s : ".";
}

/// ../shared/data, or LLMP_SHARED_DATA; empty if absent.
std::string sharedData() {
  const char *e = std::getenv("LLMP_SHARED_DATA");
  std::string d = e ? e : sourceDir() + "/../shared/data";
  return fs::is_directory(d + "/tokenizers") ? d : std::string();
}

#define REQUIRE_SHARED_DATA(var)                                                              \
  std::string var = sharedData();                                                             \
  if (var.empty())                                                                            \
    GTEST_SKIP() << "shared data not found (set LLMP_SHARED_DATA or put it at "               \
                    "<source>/../shared/data); skipping";

std::string tokDir(const std::string &data) { return data + "/tokenizers"; }

BpeTokenizer loadOrDie(lrt::Expected<BpeTokenizer> t) {
  EXPECT_TRUE(t.isOk()) << t.status().message();
  if (!t)
    throw std::runtime_error(t.status().message());
  return t.take();
}

std::vector<int32_t> enc(const BpeTokenizer &t, const std::string &s, bool special = true) {
  auto ids = t.encode(s, special);
  EXPECT_TRUE(ids.isOk()) << ids.status().message();
  return ids ? *ids : std::vector<int32_t>{};
}

/// Strings that exercise the pre-tokenizers: whitespace runs, newlines, digits,
/// contractions, emoji, CJK, combining marks, special tokens.
std::vector<std::string> trickyStrings() {
  return {
      "",
      " ",
      "  ",
      "   leading and trailing   ",
      "\t\ttabs\tand  \n\n\n newlines\r\n\r\nCRLF \n",
      "line one\nline two\n\n  indented\n    more\n",
      "1 12 123 1234 12345 123456 3.14159 1,000,000 2024-11-29 0x1F 10e-5",
      "I'm, you're, he's, we've, they'll, I'd, don't, DON'T, It'S, WE'VE, y'all'd've",
      "Hello world! Hello World!! HELLO, WORLD? hello...world;;;",
      "emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷 🇺🇸 ❤️ ✨",
      "中文测试：你好，世界！日本語のテキスト。한국어 텍스트.",
      "Ελληνικά, русский текст, עברית, العربية, हिन्दी, ไทย",
      "café naïve Ångström résumé coöperate",
      "<|endoftext|>",
      "before<|endoftext|>after <|endoftext|> spaced <|endoftext|><|endoftext|>",
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "<|im_start|> <|im_end|><|imstart|> <|endoftext",
      "code: def f(x):\n    return x**2  # square\n\tif a != b: print(\"a\\tb\")",
      "symbols ~!@#$%^&*()_+-=[]{}|;':\",./<>?` and «quotes» „low“ — dashes – …",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "                                                                                 x",
      "mixed123abc456DEF 7 eight 9ten",
      "\u00a0non-breaking\u00a0space\u2003em\u3000ideographic",
      "zero\u200bwidth\u200djoiner",
  };
}

} // namespace

// (1) GPT-2: tiktoken's cases, through encoder.json+vocab.bpe, tokenizer.json and
// r50k_base.tiktoken.
TEST(BpeTokenizerTest, Gpt2CasesExactAllThreeFileForms) {
  REQUIRE_SHARED_DATA(data);
  std::string d = tokDir(data);
  std::vector<std::pair<std::string, BpeTokenizer>> toks;
  toks.emplace_back("encoder.json+vocab.bpe",
                    loadOrDie(BpeTokenizer::fromGpt2Files(d + "/gpt2/encoder.json",
                                                          d + "/gpt2/vocab.bpe")));
  toks.emplace_back("tokenizer.json",
                    loadOrDie(BpeTokenizer::fromHuggingFaceJson(d + "/gpt2/tokenizer.json")));
  toks.emplace_back("r50k_base.tiktoken",
                    loadOrDie(BpeTokenizer::fromTiktoken(d + "/tiktoken/r50k_base.tiktoken",
                                                         "r50k_base")));
  std::ifstream in(d + "/tests/gpt2_cases.jsonl");
  ASSERT_TRUE(in) << "cannot open gpt2_cases.jsonl";
  std::string line;
  int cases = 0;
  int64_t ids = 0;
  while (std::getline(in, line)) {
    if (line.empty())
      continue;
    auto j = nlohmann::json::parse(line);
    std::string text = j.at("text");
    std::vector<int32_t> want = j.at("ids");
    for (auto &[name, tok] : toks) {
      EXPECT_EQ(enc(tok, text), want) << name << " on '" << text << "'";
      EXPECT_EQ(tok.decode(want), text) << name;
    }
    ++cases;
    ids += int64_t(want.size());
  }
  EXPECT_EQ(cases, 32);
  std::printf("gpt2_cases: %d cases, %lld ids, identical via 3 file forms\n", cases,
              static_cast<long long>(ids));
}

// (2) llama.cpp's test inputs and expected ids for its Qwen2 vocab GGUF.
TEST(BpeTokenizerTest, Qwen2GgufVocabTestsExact) {
  REQUIRE_SHARED_DATA(data);
  std::string base = tokDir(data) + "/gguf/ggml-vocab-qwen2.gguf";
  BpeTokenizer tok = loadOrDie(BpeTokenizer::fromGgufFile(base));
  auto inp = lrt::readFile(base + ".inp");
  auto out = lrt::readFile(base + ".out");
  ASSERT_TRUE(inp && out);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp->size();) {
    size_t e = inp->find(sep, pos);
    if (e == std::string::npos)
      break;
    texts.push_back(inp->substr(pos, e - pos));
    pos = e + sep.size();
  }
  std::vector<std::vector<int32_t>> want;
  std::istringstream os(*out);
  for (std::string l; std::getline(os, l);) {
    std::istringstream ls(l);
    std::vector<int32_t> v;
    for (int32_t x; ls >> x;)
      v.push_back(x);
    want.push_back(v);
  }
  ASSERT_EQ(texts.size(), want.size());
  int64_t ids = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(enc(tok, texts[i]), want[i]) << "case " << i << " '" << texts[i] << "'";
    EXPECT_EQ(tok.decode(want[i]), texts[i]) << "case " << i;
    ids += int64_t(want[i].size());
  }
  std::printf("qwen2 gguf: %zu cases, %lld ids\n", texts.size(), static_cast<long long>(ids));
}

namespace {

bool haveHfTokenizers() {
  std::string cmd = "'" + sourceDir() + "/scripts/python.sh' -c 'import tokenizers' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// KJV verses (50 per text, newline-joined), every State of the Union address, and the
/// tricky strings.
std::vector<std::string> referenceTexts(const std::string &data) {
  std::vector<std::string> texts = trickyStrings();
  auto kjv = lrt::readCorpus("/usr/share/bibledit/sources/kjv.xml", "osis");
  if (kjv) {
    std::istringstream in(kjv->text);
    std::string chunk, verse;
    int n = 0;
    while (std::getline(in, verse)) {
      chunk += verse + "\n";
      if (++n % 50 == 0) {
        texts.push_back(chunk);
        chunk.clear();
      }
    }
    if (!chunk.empty())
      texts.push_back(chunk);
  }
  std::vector<std::string> files;
  if (fs::is_directory(data + "/corpora/sotu"))
    for (const auto &e : fs::directory_iterator(data + "/corpora/sotu"))
      files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const std::string &f : files)
    if (auto t = lrt::readFile(f))
      texts.push_back(*t);
  return texts;
}

void compareWithHf(const std::string &name) {
  std::string data = sharedData();
  std::string tokPath = tokDir(data) + "/" + name + "/tokenizer.json";
  BpeTokenizer tok = loadOrDie(BpeTokenizer::fromHuggingFaceJson(tokPath));
  std::vector<std::string> texts = referenceTexts(data);
  std::string dir = lrt::test::freshDir();
  {
    std::ofstream o(dir + "/texts.jsonl");
    for (const std::string &t : texts)
      o << nlohmann::json{{"text", t}}.dump() << "\n";
  }
  std::string cmd = "'" + sourceDir() + "/scripts/python.sh' '" + sourceDir() +
                    "/test/runtime/bpe_reference.py' '" + tokPath + "' '" + dir +
                    "/texts.jsonl' '" + dir + "/ids.jsonl'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir + "/ids.jsonl");
  std::string line;
  size_t i = 0, mismatches = 0;
  int64_t ids = 0, bytes = 0;
  for (; std::getline(in, line) && i < texts.size(); ++i) {
    std::vector<int32_t> want = nlohmann::json::parse(line).at("ids");
    std::vector<int32_t> got = enc(tok, texts[i]);
    if (got != want && ++mismatches <= 5) {
      size_t k = 0;
      while (k < got.size() && k < want.size() && got[k] == want[k])
        ++k;
      ADD_FAILURE() << name << " text " << i << " differs at id " << k << " (got "
                    << (k < got.size() ? got[k] : -1) << ", want "
                    << (k < want.size() ? want[k] : -1) << "): '" << texts[i].substr(0, 200)
                    << "'";
    }
    // Round trip: byte-exact, except where NFC changed the text.
    if (!texts[i].empty())
      EXPECT_EQ(tok.decode(got), texts[i]) << name << " text " << i;
    ids += int64_t(want.size());
    bytes += int64_t(texts[i].size());
  }
  EXPECT_EQ(i, texts.size());
  EXPECT_EQ(mismatches, 0u);
  std::printf("%s tokenizer.json vs tokenizers: %zu texts, %lld bytes, %lld ids, %zu "
              "mismatching texts\n",
              name.c_str(), i, static_cast<long long>(bytes), static_cast<long long>(ids),
              mismatches);
}

#define REQUIRE_HF()                                                                          \
  REQUIRE_SHARED_DATA(data_);                                                                 \
  if (!haveHfTokenizers())                                                                    \
    GTEST_SKIP() << "the 'tokenizers' pip package is not available through scripts/python.sh " \
                    "(run scripts/setup.sh --tests); skipping";

} // namespace

// (3) tokenizer.json for GPT-2, Llama-3 and Qwen3 vs the `tokenizers` package.
TEST(BpeTokenizerTest, Gpt2TokenizerJsonMatchesHf) {
  REQUIRE_HF();
  compareWithHf("gpt2");
}
TEST(BpeTokenizerTest, Llama3TokenizerJsonMatchesHf) {
  REQUIRE_HF();
  compareWithHf("llama3");
}
TEST(BpeTokenizerTest, Qwen3TokenizerJsonMatchesHf) {
  REQUIRE_HF();
  compareWithHf("qwen3");
}

TEST(BpeTokenizerTest, SpecialTokensAndParseSpecialOff) {
  REQUIRE_SHARED_DATA(data);
  BpeTokenizer q = loadOrDie(BpeTokenizer::fromHuggingFaceJson(tokDir(data) + "/qwen3/tokenizer.json"));
  int32_t imStart = q.tokenId("<|im_start|>");
  ASSERT_GE(imStart, 0);
  auto ids = enc(q, "<|im_start|>user");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], imStart);
  auto plain = enc(q, "<|im_start|>user", /*special=*/false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), imStart), 0);
  EXPECT_EQ(q.decode(plain), "<|im_start|>user");
  BpeTokenizer cl = loadOrDie(BpeTokenizer::fromTiktoken(
      tokDir(data) + "/tiktoken/cl100k_base.tiktoken", "cl100k_base"));
  EXPECT_EQ(enc(cl, "<|endoftext|>"), std::vector<int32_t>{100257});
  EXPECT_EQ(enc(cl, "hello world"), (std::vector<int32_t>{15339, 1917}));
}

TEST(BpeTokenizerTest, StreamingDecodeNeverSplitsACharacter) {
  REQUIRE_SHARED_DATA(data);
  BpeTokenizer tok = loadOrDie(
      BpeTokenizer::fromHuggingFaceJson(tokDir(data) + "/llama3/tokenizer.json"));
  for (const std::string &s : trickyStrings()) {
    std::vector<int32_t> ids = enc(tok, s);
    lrt::BpeStreamDecoder dec(tok);
    std::string all;
    for (int32_t id : ids) {
      std::string piece = dec.push(id);
      EXPECT_EQ(lrt::incompleteUtf8Suffix(piece), 0u) << "half a character emitted for '" << s << "'";
      all += piece;
    }
    all += dec.flush();
    EXPECT_EQ(all, s);
  }
  // Emoji bytes split over tokens are held until complete.
  std::string emoji = "\xF0\x9F\x98\x80"; // U+1F600
  lrt::BpeStreamDecoder dec(tok);
  std::string got;
  for (unsigned char b : emoji) {
    int32_t id = tok.tokenId(std::string(1, char(b)));
    ASSERT_GE(id, 0);
    got += dec.push(id);
    if (got.empty())
      EXPECT_GT(dec.pending(), 0u);
  }
  EXPECT_EQ(got, emoji);
  EXPECT_EQ(dec.pending(), 0u);
  // Invalid bytes pass through rather than being held forever.
  lrt::BpeStreamDecoder bad(tok);
  EXPECT_EQ(bad.push(tok.tokenId("\xFF")), "\xFF");
}

TEST(BpeTokenizerTest, InvalidUtf8RoundTrips) {
  REQUIRE_SHARED_DATA(data);
  BpeTokenizer tok = loadOrDie(
      BpeTokenizer::fromGpt2Files(tokDir(data) + "/gpt2/encoder.json", tokDir(data) + "/gpt2/vocab.bpe"));
  std::string s = "ok \xFF\xFE bytes \xE2\x82 cut \xC3";
  EXPECT_EQ(tok.decode(enc(tok, s)), s);
}

TEST(BpeTokenizerTest, LoadErrorsAreClear) {
  auto missing = BpeTokenizer::fromHuggingFaceJson("/nonexistent/tokenizer.json");
  EXPECT_FALSE(missing.isOk());
  std::string dir = lrt::test::freshDir();
  std::ofstream(dir + "/wp.json") << R"({"model": {"type": "WordPiece", "vocab": {}}})";
  auto wp = BpeTokenizer::fromHuggingFaceJson(dir + "/wp.json");
  ASSERT_FALSE(wp.isOk());
  EXPECT_NE(wp.status().message().find("WordPiece"), std::string::npos) << wp.status().message();
  auto enc = BpeTokenizer::fromTiktoken(dir + "/wp.json", "o999k");
  ASSERT_FALSE(enc.isOk());
  EXPECT_NE(enc.status().message().find("o999k"), std::string::npos);
}
