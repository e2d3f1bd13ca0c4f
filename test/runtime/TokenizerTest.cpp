// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Tokenizer: lossless round trips, exact vocabulary size, determinism,
/// save/reload, and (when present) training on the KJV.
#include "runtime/Tokenizer.h"

#include "runtime/Corpus.h"
#include "runtime/Generate.h"
#include "TestUtil.h"

#include <gtest/gtest.h>

#include <chrono>

namespace lrt {
namespace {

Tokenizer trainSmall(int64_t vocab = 320) {
  TokenizerTrainOptions opts;
  opts.vocabSize = vocab;
  auto tok = Tokenizer::train(test::englishText(400), opts);
  EXPECT_TRUE(tok) << tok.status().message();
  return tok.take();
}

// Tests decode(encode(s)) == s on sentences, whitespace runs, newlines, unseen characters
// (byte fallback) and the empty string, and that the vocabulary is exactly as asked.
TEST(TokenizerTest, RoundTripAndVocab) {
  Tokenizer tok = trainSmall();
  EXPECT_EQ(tok.vocabSize(), 320);
  for (std::string s : {"In the beginning God created the heaven and the earth.",
                        "And God said, Let there be light: and there was light.",
                        "  leading and   inner   spaces, trailing  ",
                        "two\nlines\n\nand a tab\there",
                        "unseen: \xE4\xB8\xAD\xE6\x96\x87, emoji \xF0\x9F\x98\x80, Zürich 2024!",
                        ""}) {
    std::vector<int32_t> ids = tok.encode(s);
    for (int32_t id : ids) {
      EXPECT_GE(id, 1) << "no <unk> with byte fallback";
      EXPECT_LT(id, tok.vocabSize());
    }
    EXPECT_EQ(tok.decode(ids), s);
  }
  // Merges make common text shorter than its bytes.
  std::string common = "and the earth and the light";
  EXPECT_LT(tok.encode(common).size(), common.size());
}

// Tests that training twice on the same text gives the same model and ids.
TEST(TokenizerTest, Deterministic) {
  Tokenizer a = trainSmall(), b = trainSmall();
  EXPECT_EQ(a.serialized(), b.serialized());
  std::string s = "It was the best of times, it was the worst of times.";
  EXPECT_EQ(a.encode(s), b.encode(s));
}

// Tests save/load and that loadOrTrain reuses a model only with the same vocabulary size.
TEST(TokenizerTest, LoadOrTrain) {
  std::string path = test::freshDir() + "/tokenizer.model";
  std::string text = test::englishText(400);
  TokenizerTrainOptions opts;
  opts.vocabSize = 320;
  bool trained = false;
  auto first = Tokenizer::loadOrTrain(path, text, opts, &trained);
  ASSERT_TRUE(first) << first.status().message();
  EXPECT_TRUE(trained);
  auto again = Tokenizer::loadOrTrain(path, text, opts, &trained);
  ASSERT_TRUE(again);
  EXPECT_FALSE(trained);
  EXPECT_EQ(again->serialized(), first->serialized());
  opts.vocabSize = 330;
  auto bigger = Tokenizer::loadOrTrain(path, text, opts, &trained);
  ASSERT_TRUE(bigger) << bigger.status().message();
  EXPECT_TRUE(trained);
  EXPECT_EQ(bigger->vocabSize(), 330);
  auto reloaded = Tokenizer::load(path);
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->vocabSize(), 330);
}

// Tests what sampling learns of the pieces: <unk> is special, the 256 byte-fallback pieces
// carry their byte, and everything else is text.
TEST(TokenizerTest, PieceBytes) {
  TokenizerTrainOptions opts;
  opts.vocabSize = 400;
  auto tok = Tokenizer::train(test::englishText(200), opts);
  ASSERT_TRUE(tok) << tok.status().message();
  std::vector<int16_t> pieces = tok->pieceBytes();
  ASSERT_EQ(int64_t(pieces.size()), tok->vocabSize());
  EXPECT_EQ(pieces[0], kSpecialPiece);
  std::vector<int> seen(256, 0);
  int text = 0;
  for (int16_t p : pieces)
    p >= 0 ? ++seen[p] : text += p == kTextPiece;
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(seen[b], 1) << "byte " << b;
  EXPECT_EQ(text, 400 - 256 - 1);
  std::vector<int32_t> newline = tok->encode("\n");
  ASSERT_EQ(newline.size(), 1u);
  EXPECT_EQ(pieces[newline[0]], '\n');
}

// Tests the errors: a too-small vocabulary, one too large for the text, a missing file.
TEST(TokenizerTest, Errors) {
  TokenizerTrainOptions opts;
  opts.vocabSize = 100;
  EXPECT_FALSE(Tokenizer::train("some text\n", opts));
  opts.vocabSize = 5000;
  auto tooBig = Tokenizer::train("tiny text\n", opts);
  ASSERT_FALSE(tooBig);
  EXPECT_NE(tooBig.status().message().find("5000"), std::string::npos);
  EXPECT_FALSE(Tokenizer::load(test::freshDir() + "/missing.model"));
}

// Tests a 2048-piece tokenizer on the KJV: trains, round-trips verses, compresses.
TEST(TokenizerTest, KingJamesBible) {
  const char *kjv = "/usr/share/bibledit/sources/kjv.xml";
  if (!std::filesystem::exists(kjv))
    GTEST_SKIP() << kjv << " is absent (install Debian package bibledit-data)";
  auto corpus = readCorpus(kjv, "osis");
  ASSERT_TRUE(corpus) << corpus.status().message();
  TokenizerTrainOptions opts;
  opts.vocabSize = 2048;
  auto t0 = std::chrono::steady_clock::now();
  auto tok = Tokenizer::train(corpus->text, opts);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(tok) << tok.status().message();
  RecordProperty("kjv_tokenizer_train_seconds", std::to_string(seconds));
  EXPECT_EQ(tok->vocabSize(), 2048);
  std::string verse = "For God so loved the world, that he gave his only begotten Son.";
  EXPECT_EQ(tok->decode(tok->encode(verse)), verse);
  std::string head = corpus->text.substr(0, 100000);
  auto ids = tok->encode(head);
  EXPECT_EQ(tok->decode(ids), head);
  EXPECT_GT(double(head.size()) / double(ids.size()), 3.0) << "chars per token";
}

} // namespace
} // namespace lrt
