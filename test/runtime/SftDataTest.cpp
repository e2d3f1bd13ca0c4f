// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/SftData: JSONL chat and prompt/completion rows with their errors, the
/// FAQ text reader (on a hand-written excerpt and on Debian's debian-faq when installed),
/// the JSON sample-conversation reader (by hand, and on the AIME 2025 samples of
/// ../shared/data/rl when present),
/// labels on assistant tokens (SmolLM2's GGUF when installed), the seeded split and the
/// packed/unpacked row layout. The Python side (test/e2e/sft_smollm2.py) compares tokens
/// and targets with transformers.
#include "runtime/SftData.h"

#include "runtime/BpeTokenizer.h"
#include "runtime/Data.h"
#include "runtime/Gguf.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

namespace lrt {
namespace {

std::string writeFile(const std::string &dir, const std::string &name, const std::string &text) {
  std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

/// SmolLM2-135M-Instruct's tokenizer and chat template, from the GGUF file that
/// scripts/setup.sh --models installs.
struct SmolLm2 {
  std::string path; ///< where the file is expected
  std::optional<BpeTokenizer> tok;
  std::optional<ChatTemplate> tmpl;
};

/// Fills `m`; tok and tmpl stay empty when the file is absent.
void loadSmolLm2(SmolLm2 &m) {
  const char *home = std::getenv("HOME");
  m.path = std::string(home ? home : "") + "/.cache/llmp/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(m.path))
    return;
  auto gguf = readGguf(m.path);
  ASSERT_TRUE(gguf) << gguf.status().message();
  auto tok = BpeTokenizer::fromGguf(*gguf);
  ASSERT_TRUE(tok) << tok.status().message();
  auto tmpl = ChatTemplate::fromGguf(*gguf, m.path);
  ASSERT_TRUE(tmpl) << tmpl.status().message();
  m.tok.emplace(tok.take());
  m.tmpl.emplace(tmpl.take());
}

// Tests that chat rows become conversations with their roles, contents and origins, blank
// lines skipped.
TEST(SftDataTest, ChatJsonlRows) {
  std::string dir = test::freshDir();
  std::string path = writeFile(
      dir, "chat.jsonl",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
      "\"content\": \"Hello!\"}]}\n\n"
      "{\"conv\": [{\"role\": \"system\", \"content\": \"Be brief.\"}]}\n");
  auto convs = readChatJsonl(path);
  ASSERT_FALSE(convs) << "line 3 has no \"messages\"";
  EXPECT_EQ(convs.status().message(), path + ":3: missing the key \"messages\"");
  auto other = readChatJsonl(path, "conv");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.status().message(), path + ":1: missing the key \"conv\"");

  path = writeFile(dir, "ok.jsonl",
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": "
                   "\"assistant\", \"content\": \"Hello!\"}]}\n\n"
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}]}\n");
  convs = readChatJsonl(path);
  ASSERT_TRUE(convs) << convs.status().message();
  ASSERT_EQ(convs->size(), 2u);
  EXPECT_EQ((*convs)[0].messages[1].role, "assistant");
  EXPECT_EQ((*convs)[0].messages[1].content, "Hello!");
  EXPECT_EQ((*convs)[1].origin, path + ":3");
}

// Tests the file:line errors of bad rows.
TEST(SftDataTest, BadRowsNameTheirLine) {
  std::string dir = test::freshDir();
  struct Case {
    std::string text, error;
  } cases[] = {
      {"{\"messages\": [{\"role\": \"user\"}]}\n", ":1: message 0: missing the key \"content\""},
      {"\n{not json}\n", ":2: not a JSON value"},
      {"[1, 2]\n", ":1: expected a JSON object per line"},
      {"{\"messages\": []}\n", ":1: \"messages\" must be a non-empty list of messages"},
      {"{\"messages\": [{\"role\": 1, \"content\": \"x\"}]}\n",
       ":1: message 0: \"role\" is number, expected a string"},
      {"\n\n", ""},
  };
  for (const Case &c : cases) {
    std::string path = writeFile(dir, "bad.jsonl", c.text);
    auto convs = readChatJsonl(path);
    ASSERT_FALSE(convs) << c.text;
    if (c.error.empty())
      EXPECT_EQ(convs.status().message(), "'" + path + "' holds no conversation");
    else
      EXPECT_EQ(convs.status().message(), path + c.error);
  }
  std::string path = writeFile(dir, "pc.jsonl", "{\"prompt\": \"Q\", \"answer\": \"A\"}\n");
  auto pc = readPromptCompletionJsonl(path, "prompt", "completion");
  ASSERT_FALSE(pc);
  EXPECT_EQ(pc.status().message(), path + ":1: missing the key \"completion\"");
  EXPECT_FALSE(readChatJsonl(dir + "/missing.jsonl"));
}

// Tests that prompt/completion rows (and question/answer rows through the dataset spec's
// keys) become a user and an assistant message.
TEST(SftDataTest, PromptCompletionRows) {
  std::string dir = test::freshDir();
  std::string path = writeFile(dir, "qa.jsonl",
                               "{\"q\": \"What is 2+2?\", \"a\": \"4\"}\n"
                               "{\"q\": \"And 3+3?\", \"a\": \"6\"}\n");
  DatasetSpec spec;
  spec.path = path;
  spec.format = "qa";
  spec.keys = {{"question", "q"}, {"answer", "a"}};
  auto convs = readConversations(spec);
  ASSERT_TRUE(convs) << convs.status().message();
  ASSERT_EQ(convs->size(), 2u);
  EXPECT_EQ((*convs)[1].messages[0].role, "user");
  EXPECT_EQ((*convs)[1].messages[0].content, "And 3+3?");
  EXPECT_EQ((*convs)[1].messages[1].role, "assistant");
  EXPECT_EQ((*convs)[1].messages[1].content, "6");
  spec.format = "osis";
  auto bad = readConversations(spec);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("format 'osis' holds no conversations"),
            std::string::npos);
}

// Tests the FAQ reader on an excerpt laid out as debian-faq.en.txt: wrapped questions,
// no-break spaces after the number and in the indentation, paragraphs joined, list lines kept, sections that are
// not questions and the table of contents skipped. Expected values written by hand.
TEST(SftDataTest, FaqExcerptByHand) {
  const std::string nbsp = "\xc2\xa0";
  std::string text = "Table of Contents\n\n1. Definitions\n    1.1. What is this FAQ?\n\n"
                     "Chapter" + nbsp + "1. Definitions and overview\n\n"
                     "1.1." + nbsp + "What is this FAQ?\n\n"
                     "    This document gives frequently asked\n" + nbsp + nbsp + "  questions.\n\n"
                     "    See Section 12.1.\n\n"
                     "1.2." + nbsp + "What is the difference between Debian and other\n"
                     "distributions?\n\n"
                     "    Debian is:\n\n"
                     "      * free\n"
                     "      * stable\n\n"
                     "12.2.1." + nbsp + "Mailing lists\n\n"
                     "    Not a question.\n\n"
                     "3.1. An empty one?\n\n"
                     "Chapter 2. Getting started\n";
  auto convs = parseFaqText(text, "faq.txt");
  ASSERT_EQ(convs.size(), 2u);
  EXPECT_EQ(convs[0].messages[0].content, "What is this FAQ?");
  EXPECT_EQ(convs[0].messages[1].content,
            "This document gives frequently asked questions.\n\nSee Section 12.1.");
  EXPECT_EQ(convs[0].origin, "faq.txt:8"); // counted by hand from line 1 above
  EXPECT_EQ(convs[1].messages[0].content,
            "What is the difference between Debian and other distributions?");
  EXPECT_EQ(convs[1].messages[1].content, "Debian is:\n\n  * free\n  * stable");
}

// Tests the real Debian FAQ (package debian-faq), gzip-compressed as installed: 148
// numbered headings in the body (`zcat ... | grep -c $'^[0-9][0-9.]*\.\xc2\xa0'`), of
// which those ending in '?' with an answer are conversations.
TEST(SftDataTest, DebianFaq) {
  const std::string path = "/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz";
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << path << " not found (apt-get install debian-faq); skipping";
  auto convs = readFaq(path);
  ASSERT_TRUE(convs) << convs.status().message();
  EXPECT_GT(convs->size(), 100u);
  EXPECT_LE(convs->size(), 148u);
  EXPECT_EQ((*convs)[0].messages[0].content, "What is this FAQ?");
  EXPECT_EQ((*convs)[0].messages[1].content.rfind("This document gives frequently asked "
                                                  "questions (with their answers!) about the "
                                                  "Debian distribution",
                                                  0),
            0u);
  for (const Conversation &c : *convs) {
    EXPECT_EQ(c.messages[0].content.back(), '?') << c.origin;
    EXPECT_FALSE(c.messages[1].content.empty()) << c.origin;
    EXPECT_EQ(c.messages[1].content.find("\nChapter "), std::string::npos) << c.origin;
  }
  std::string dir = test::freshDir();
  auto corrupt = readFaq(writeFile(dir, "x.txt.gz", "\x1f\x8b\x08garbage"));
  EXPECT_FALSE(corrupt);
}

// Tests the split: deterministic for a seed, a partition, sizes round(f * n) clamped to
// keep one conversation on each side, different seeds giving different sets.
TEST(SftDataTest, SplitIsSeededPartition) {
  ConversationSplit a = splitConversations(100, 0.9, 7), b = splitConversations(100, 0.9, 7);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.train.size(), 90u);
  EXPECT_EQ(a.heldOut.size(), 10u);
  std::set<size_t> all(a.train.begin(), a.train.end());
  all.insert(a.heldOut.begin(), a.heldOut.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.train.begin(), a.train.end()));
  EXPECT_NE(splitConversations(100, 0.9, 8).heldOut, a.heldOut);
  EXPECT_EQ(splitConversations(3, 0.99, 1).heldOut.size(), 1u);
  EXPECT_EQ(splitConversations(3, 0.0, 1).train.size(), 1u);
}

// Tests rows by hand: truncation (last target of a cut conversation ignored), dropping a
// conversation without targets, packing with each conversation's own targets and segments,
// and one conversation per row padded with ignored targets.
TEST(SftDataTest, RowsByHand) {
  const int32_t I = kIgnoreIndex;
  std::vector<SftExample> ex = {
      {{1, 2, 3}, {I, 3, I}},          // trains on token 3
      {{4, 5}, {5, I}},                // trains on 5
      {{6, 7, 8, 9, 10, 11}, {I, I, 9, 10, 11, I}}, // cut to 4: {6,7,8,9}, {I,I,9,I}
      {{12, 13}, {I, I}},              // no targets: dropped
  };
  auto packed = makeSftRows(ex, 4, /*packing=*/true, 0);
  ASSERT_TRUE(packed) << packed.status().message();
  EXPECT_EQ(packed->truncated, 1);
  EXPECT_EQ(packed->dropped, 1);
  EXPECT_EQ(packed->targetTokens, 3);
  EXPECT_EQ(packed->rows, 3);
  EXPECT_EQ(packed->tokens, (std::vector<int32_t>{1, 2, 3, 0, 4, 5, 0, 0, 6, 7, 8, 9}));
  EXPECT_EQ(packed->targets, (std::vector<int32_t>{I, 3, I, I, 5, I, I, I, I, I, 9, I}));
  EXPECT_EQ(packed->segments, (std::vector<int32_t>{0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0}));
  auto rows = makeSftRows(ex, 4, /*packing=*/false, 0);
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->rows, 3);
  EXPECT_TRUE(rows->segments.empty());
  EXPECT_EQ(rows->tokens, packed->tokens); // here each conversation fills its own row
  auto wide = makeSftRows(ex, 8, /*packing=*/true, 0);
  ASSERT_TRUE(wide);
  EXPECT_EQ(wide->rows, 2);
  EXPECT_EQ(wide->tokens, (std::vector<int32_t>{1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0}));
  EXPECT_EQ(wide->segments, (std::vector<int32_t>{0, 0, 0, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(wide->targetTokens, 5);
  EXPECT_FALSE(makeSftRows(ex, 0, true, 0));
}

// Tests that batches of rows carry their own targets and segments, and that held-out rows
// are completed with ignored padding rows.
TEST(SftDataTest, RowBatchesAndEvalRows) {
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6}, targets = {2, -100, 4, -100, 6, -100},
                       segments = {0, 1, 0, 0, 0, 1};
  auto b = TrainBatches::fromRows(tokens, targets, segments, 1, 2, 3);
  ASSERT_TRUE(b) << b.status().message();
  std::set<int32_t> firsts;
  for (int i = 0; i < 3; ++i) {
    int32_t tk[2], tg[2], sg[2];
    b->next(tk, tg, sg);
    int r = (tk[0] - 1) / 2;
    EXPECT_EQ(tg[0], targets[2 * r]);
    EXPECT_EQ(sg[1], segments[2 * r + 1]);
    firsts.insert(tk[0]);
  }
  EXPECT_EQ(firsts.size(), 3u); // one epoch visits each row once
  EXPECT_FALSE(TrainBatches::fromRows({1, 2, 3}, {1, 2, 3}, {}, 1, 2, 0));
  auto e = makeEvalRows(tokens, targets, segments, 2, 2, 9);
  ASSERT_TRUE(e) << e.status().message();
  EXPECT_EQ(e->numBatches, 2);
  EXPECT_EQ(e->tokens, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 9, 9}));
  EXPECT_EQ(countTargets(e->targetsOf(1), 4), 1);
  EXPECT_EQ(e->segmentsOf(1)[1], 1);
}

// Tests labels on SmolLM2-135M-Instruct's own template and tokenizer (GGUF metadata) with
// the conversation of issue #6: targets fall exactly on the two assistant answers and
// their <|im_end|> (checked by decoding each run of targets), not on the user's copy of
// "4"; train_on all targets every next token.
TEST(SftDataTest, AssistantTargetsOfSmolLm2) {
  SmolLm2 smol;
  ASSERT_NO_FATAL_FAILURE(loadSmolLm2(smol));
  if (!smol.tok)
    GTEST_SKIP() << smol.path << " not found (scripts/setup.sh --models); skipping";
  auto &tok = smol.tok;
  auto &tmpl = smol.tmpl;
  Conversation c{{{"user", "What is 2+2?"},
                  {"assistant", "4"},
                  {"user", "4"},
                  {"assistant", "Yes, 4."}},
                 "issue-6"};
  auto ex = encodeConversation(*tmpl, *tok, c, {});
  ASSERT_TRUE(ex) << ex.status().message();
  ASSERT_EQ(ex->tokens.size(), ex->targets.size());
  EXPECT_EQ(ex->targets.back(), kIgnoreIndex);
  std::vector<std::string> runs;
  std::vector<int32_t> run;
  for (size_t t = 0; t < ex->targets.size(); ++t) {
    if (ex->targets[t] != kIgnoreIndex) {
      EXPECT_EQ(ex->targets[t], ex->tokens[t + 1]);
      run.push_back(ex->targets[t]);
    } else if (!run.empty()) {
      runs.push_back(tok->decode(run));
      run.clear();
    }
  }
  EXPECT_EQ(runs, (std::vector<std::string>{"4<|im_end|>", "Yes, 4.<|im_end|>"}));
  SftEncodeOptions all;
  all.trainOnAll = true;
  auto every = encodeConversation(*tmpl, *tok, c, all);
  ASSERT_TRUE(every);
  EXPECT_EQ(countTargets(every->targets.data(), int64_t(every->targets.size())),
            int64_t(every->tokens.size()) - 1);
  // BOS added once when asked for, not again when the text starts with it.
  SftEncodeOptions bos;
  bos.bos = 1; // <|im_start|>, which the template already writes first
  auto once = encodeConversation(*tmpl, *tok, c, bos);
  ASSERT_TRUE(once);
  EXPECT_EQ(once->tokens, ex->tokens);
}

// Tests the JSON convos reader on a hand-written document in simple-evals' layout: roles,
// contents and origins; `correctOnly` keeps the samples whose report says "Score: 1.0"
// (samples 0 and 2 here, chosen by hand), after checking the mean against "score".
TEST(SftDataTest, ConvosJsonByHand) {
  std::string dir = test::freshDir();
  auto conv = [](const std::string &q, const std::string &a) {
    return "[{\"role\": \"user\", \"content\": \"" + q +
           "\"}, {\"content\": \"" + a + "\", \"role\": \"assistant\"}]";
  };
  auto report = [](const std::string &score) {
    return "\"<h3>Results</h3>\\n<p>Correct Answer: 4</p>\\n<p>Score: " + score + "</p>\"";
  };
  std::string body = "\"convos\": [" + conv("2+2?", "4") + ", " + conv("3+3?", "7") + ", " +
                     conv("1+3?", "4") + "], \"htmls\": [" + report("1.0") + ", " +
                     report("0.0") + ", " + report("1.0") + "]";
  std::string path = writeFile(dir, "s.json", "{\"score\": 0.6666666666666666, " + body + "}");
  auto all = readConvosJson(path);
  ASSERT_TRUE(all) << all.status().message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[1].messages[0].role, "user");
  EXPECT_EQ((*all)[1].messages[0].content, "3+3?");
  EXPECT_EQ((*all)[1].messages[1].role, "assistant");
  EXPECT_EQ((*all)[1].messages[1].content, "7");
  EXPECT_EQ((*all)[1].origin, path + ":convos[1]");
  DatasetSpec spec;
  spec.path = path;
  spec.format = "convos";
  spec.correctOnly = true;
  auto correct = readConversations(spec);
  ASSERT_TRUE(correct) << correct.status().message();
  ASSERT_EQ(correct->size(), 2u);
  EXPECT_EQ((*correct)[0].origin, path + ":convos[0]");
  EXPECT_EQ((*correct)[1].origin, path + ":convos[2]");
  EXPECT_EQ((*correct)[1].messages[0].content, "1+3?");

  struct Case {
    std::string text, error;
    bool correctOnly = false;
  } cases[] = {
      {"[1]", ": expected a JSON object, found array"},
      {"{\"convos\": [", ": not a JSON document"},
      {"{\"samples\": []}", ": missing the key \"convos\""},
      {"{\"convos\": []}", ": \"convos\" must be a non-empty list of conversations"},
      {"{\"convos\": [[{\"role\": \"user\"}]]}",
       ": convos[0]: message 0: missing the key \"content\""},
      {"{\"convos\": [{\"role\": \"user\"}]}",
       ": convos[0]: the conversation must be a non-empty list of messages"},
      {"{" + body + ", \"score\": 0.5}",
       ": the samples' scores average 0.6666666666666666 but the file's \"score\" is 0.5", true},
      {"{\"convos\": [" + conv("a", "b") + "]}",
       ": 'keep: correct' needs \"htmls\", one report per conversation (1), to read each "
       "sample's score from",
       true},
      {"{\"convos\": [" + conv("a", "b") + "], \"htmls\": [\"<p>Score: high</p>\"]}",
       ": htmls[0]: no \"<p>Score: X</p>\" line (the score of sample 0)", true},
  };
  for (const Case &c : cases) {
    std::string bad = writeFile(dir, "bad.json", c.text);
    auto convs = readConvosJson(bad, "convos", c.correctOnly);
    ASSERT_FALSE(convs) << c.text;
    EXPECT_EQ(convs.status().message(), bad + c.error);
  }
  std::string wrong = writeFile(dir, "wrong.json",
                                "{\"convos\": [" + conv("a", "b") +
                                    "], \"htmls\": [" + report("0.0") + "], \"score\": 0.0}");
  auto none = readConvosJson(wrong, "convos", true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.status().message(), "'" + wrong + "' holds no correct conversation");
  EXPECT_FALSE(readConvosJson(dir + "/missing.json"));
}

// Tests the reader on the real AIME 2025 samples of gpt-oss-120b (../shared/data/rl, from
// llama.cpp's benches): 30 problems x 8 samples = 240 user -> assistant conversations
// (../shared/data/README.md); the file's "score" is 0.925, so 0.925 * 240 = 222 samples are
// correct (also counted with grep -o 'Score: 1.0' | wc -l). The first problem is AIME 2025 I
// problem 1 (bases b > 9 with 17_b | 97_b; answer 70, which its solution boxes). Through
// SmolLM2's own chat template (when the GGUF is installed) the targets are exactly the
// assistant's solution and its <|im_end|>.
TEST(SftDataTest, AimeSamples) {
  std::string data = test::sharedDataDir();
  std::string path = data + "/rl/aime25_gpt-oss-120b_samples.json";
  if (data.empty() || !std::filesystem::exists(path))
    GTEST_SKIP() << "shared data not found (set LLMP_SHARED_DATA or put it at "
                    "<source>/../shared/data); skipping";
  auto all = readConvosJson(path);
  ASSERT_TRUE(all) << all.status().message();
  ASSERT_EQ(all->size(), 240u);
  for (const Conversation &c : *all) {
    ASSERT_EQ(c.messages.size(), 2u) << c.origin;
    EXPECT_EQ(c.messages[0].role, "user") << c.origin;
    EXPECT_EQ(c.messages[1].role, "assistant") << c.origin;
  }
  const Conversation &first = (*all)[0];
  EXPECT_EQ(first.messages[0].content,
            "\nFind the sum of all integer bases $b>9$ for which $17_{b}$ is a divisor of "
            "$97_{b}$.\nPlease reason step by step, and put your final answer within "
            "\\boxed{}.\n");
  EXPECT_NE(first.messages[1].content.find("\\boxed{70}"), std::string::npos);
  // 30 problems, each asked 8 times (the first at indices 0, 24, 53, ..., 204, as a
  // Python count over the file shows).
  std::map<std::string, int> asked;
  for (const Conversation &c : *all)
    ++asked[c.messages[0].content];
  EXPECT_EQ(asked.size(), 30u);
  for (const auto &[problem, n] : asked)
    EXPECT_EQ(n, 8) << problem;
  EXPECT_EQ((*all)[204].messages[0].content, first.messages[0].content);
  auto correct = readConvosJson(path, "convos", /*correctOnly=*/true);
  ASSERT_TRUE(correct) << correct.status().message();
  EXPECT_EQ(correct->size(), 222u);

  SmolLm2 smol;
  ASSERT_NO_FATAL_FAILURE(loadSmolLm2(smol));
  if (!smol.tok)
    GTEST_SKIP() << smol.path << " not found (scripts/setup.sh --models); skipping the "
                 << "template part";
  auto ex = encodeConversation(*smol.tmpl, *smol.tok, first, {});
  ASSERT_TRUE(ex) << ex.status().message();
  std::vector<int32_t> run;
  for (size_t t = 0; t < ex->targets.size(); ++t)
    if (ex->targets[t] != kIgnoreIndex) {
      EXPECT_EQ(ex->targets[t], ex->tokens[t + 1]);
      run.push_back(ex->targets[t]);
    }
  EXPECT_EQ(smol.tok->decode(run), first.messages[1].content + "<|im_end|>");
}

} // namespace
} // namespace lrt
