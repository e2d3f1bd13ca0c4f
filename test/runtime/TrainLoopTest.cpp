// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/TrainLoop.h: StepCalls, the signature each compiled step is called
/// with in packing and unpacked stages (fake step functions record what they receive), and
/// runTrainingLoop's measured memory.
#include "runtime/TrainLoop.h"

#include "runtime/Memory.h"
#include "runtime/SftTrainer.h"
#include "TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace lrt {
namespace {

std::vector<int32_t> seenSegments;
int64_t seenRows = 0, seenCols = 0;
bool unpackedCalled = false;

void fakePackedLogits(MemRef<float, 1> *, MemRef<int32_t, 2> *tokens, MemRef<int32_t, 2> *segments,
                      MemRef<float, 3> *logits) {
  seenRows = segments->sizes[0];
  seenCols = segments->sizes[1];
  seenSegments.assign(segments->aligned, segments->aligned + seenRows * seenCols);
  logits->aligned[0] = float(tokens->aligned[0]);
}

void fakeLogits(MemRef<float, 1> *, MemRef<int32_t, 2> *, MemRef<float, 3> *) {
  unpackedCalled = true;
}

void fakePackedEval(MemRef<float, 1> *, MemRef<int32_t, 2> *, MemRef<int32_t, 2> *,
                    MemRef<int32_t, 2> *segments, MemRef<float, 1> *metrics) {
  metrics->aligned[kMetricLoss] = float(segments->aligned[1]);
}

// Tests that in a packing stage logitsStep() passes one document (segments 0, of the
// tokens' shape) to the compiled function, and that an unpacked stage gets its own.
TEST(TrainLoopTest, LogitsOfPackedStageSeeOneDocument) {
  StagePlan plan;
  plan.packing = true;
  plan.numParams = 1;
  plan.seqLen = 3;
  StepFunctions fns;
  fns.logitsStep = reinterpret_cast<LogitsStepFn>(&fakePackedLogits);
  fns.evalStep = reinterpret_cast<EvalStepFn>(&fakePackedEval);
  StepCalls calls(plan, fns);
  float param = 0, logits[4] = {0, 0, 0, 0}, metrics[kNumMetrics] = {};
  int32_t tokens[3] = {7, 8, 9}, targets[3] = {8, 9, -100}, segments[3] = {0, 5, 1};
  auto p = viewOf(&param, {1});
  auto tk = viewOf(tokens, {1, 3});
  auto lg = viewOf(logits, {1, 1, 4});
  calls.logitsStep()(&p, &tk, &lg);
  EXPECT_EQ(seenRows, 1);
  EXPECT_EQ(seenCols, 3);
  EXPECT_EQ(seenSegments, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(logits[0], 7.0f);
  // eval passes the rows' own segments.
  calls.eval(&param, tokens, targets, segments, 1, metrics);
  EXPECT_EQ(metrics[kMetricLoss], 5.0f);

  plan.packing = false;
  fns.logitsStep = &fakeLogits;
  StepCalls unpacked(plan, fns);
  EXPECT_EQ(unpacked.logitsStep(), &fakeLogits);
  unpacked.logitsStep()(&p, &tk, &lg);
  EXPECT_TRUE(unpackedCalled);
}

/// Step functions of a model with one parameter that learns nothing (loss 1): the loop's
/// own memory is all that this test measures.
void constantGrad(MemRef<float, 1> *, MemRef<float, 1> *, MemRef<int32_t, 2> *tokens,
                  MemRef<int32_t, 2> *, MemRef<float, 1> *, MemRef<float, 1> *metrics) {
  metrics->aligned[kMetricLoss] = 1.0f;
  metrics->aligned[kMetricTokens] = float(tokens->sizes[0] * tokens->sizes[1]);
}
void constantApply(MemRef<float, 1> *, MemRef<float, 1> *, MemRef<float, 1> *,
                   MemRef<float, 1> *, MemRef<float, 1> *, MemRef<float, 1> *metrics) {
  metrics->aligned[kMetricGradNorm] = 0.0f;
}
void constantEval(MemRef<float, 1> *, MemRef<int32_t, 2> *, MemRef<int32_t, 2> *,
                  MemRef<float, 1> *metrics) {
  metrics->aligned[kMetricLoss] = 1.0f;
}

// Tests that the samples before training (StageHooks::beforeTraining: a LoRA stage's
// merged weights and the KV cache live only while they run) stay out of the measured
// training peak, and that the process peak keeps them. The hook touches 256 MiB page by
// page and frees it (far above glibc's mmap threshold, so the pages go back); the loop
// resets VmHWM after the samples, so `training_peak_rss` in memory.json stays well below
// after_setup_rss + 256 MiB (the training here allocates nothing), while
// `process_peak_rss` (runtime/Memory.h processResidentPeak) holds it (at least 7/8 of it
// above after_setup_rss: other pages may be reclaimed meanwhile). Without the reset after
// the samples the training peak would hold the block.
TEST(TrainLoopTest, SamplesBeforeTrainingStayOutOfTheTrainingPeak) {
  constexpr int64_t kBlock = int64_t(256) << 20;
  const std::string dir = test::freshDir();
  StagePlan plan;
  plan.pipeline = "main";
  plan.stage = "tune";
  plan.model = "one";
  plan.params = {{"w", {1}, 0, 1, InitKind::Zeros, 0.0f, 0.0f, false}};
  plan.numParams = 1;
  plan.vocab = 8;
  plan.batch = 1;
  plan.seqLen = 4;
  plan.steps = 2;
  plan.evalBatches = 1;
  plan.lr = 1e-3;
  StepFunctions fns{constantGrad, constantApply, constantEval, nullptr};
  StageHooks hooks;
  hooks.prepare = [&](bool, int64_t) -> Expected<PreparedData> {
    std::vector<int32_t> tokens(50);
    for (size_t i = 0; i < tokens.size(); ++i)
      tokens[i] = int32_t(i % 8);
    PreparedData d;
    auto train = TrainBatches::create(tokens, plan.batch, plan.seqLen, 1);
    if (!train)
      return train.status();
    d.train.emplace(std::move(*train));
    auto eval = makeEvalBatches(tokens, plan.batch, plan.seqLen, 1);
    if (!eval)
      return eval.status();
    d.eval = std::move(*eval);
    return d;
  };
  hooks.initialParams = [](std::vector<float> &params) {
    params.assign(1, 0.0f);
    return Status::ok();
  };
  int64_t rssInSamples = 0;
  hooks.beforeTraining = [&](std::vector<float> &) -> Expected<std::string> {
    char *block = static_cast<char *>(std::malloc(kBlock));
    if (!block)
      return Status::outOfMemory("test: no 256 MiB block");
    std::memset(block, 1, kBlock); // resident, not just reserved
    asm volatile("" : : "r"(block) : "memory"); // keeps the compiler from eliding it
    if (auto rss = readResidentMemory())
      rssInSamples = rss->rssBytes;
    std::free(block);
    return std::string("samples: none");
  };
  TrainOptions opts;
  opts.runDir = dir + "/run";
  opts.numSamples = 0;
  opts.progress = ProgressStyle::Quiet;
  std::FILE *log = std::tmpfile();
  opts.out = log;
  Status st = runTrainingLoop(plan, fns, opts, hooks);
  std::fclose(log);
  ASSERT_TRUE(st) << st.message();

  std::ifstream in(opts.runDir + "/memory.json");
  ASSERT_TRUE(in) << "no memory.json in " << opts.runDir;
  nlohmann::json measured = nlohmann::json::parse(in)["measured"];
  const int64_t afterSetup = measured["after_setup_rss"];
  const int64_t trainingPeak = measured["training_peak_rss"];
  const int64_t processPeak = measured["process_peak_rss"];
  ASSERT_GE(rssInSamples, afterSetup + kBlock / 8 * 7) << "the hook's block was not resident";
  EXPECT_LT(trainingPeak, afterSetup + kBlock / 2)
      << "training peak " << trainingPeak << " holds the samples' block (after setup "
      << afterSetup << ")";
  EXPECT_GE(processPeak, afterSetup + kBlock / 8 * 7);
}

// runSft refuses samples it has nothing to run on (neither the stage's logits_step nor a
// KV-cache sampler: llmpc leaves logits_step out when the sampler compiles) before it
// touches data; without samples the same call gets past that check (and fails on the data
// this test does not give).
TEST(TrainLoopTest, SftSamplesNeedLogitsStepOrKVCache) {
  StagePlan plan;
  plan.pipeline = "main";
  plan.stage = "tune";
  plan.params = {{"w", {1}, 0, 1, InitKind::Zeros, 0.0f, 0.0f, false}};
  plan.numParams = 1;
  StepFunctions fns{constantGrad, constantApply, constantEval, nullptr};
  TrainOptions opts;
  opts.runDir = test::freshDir();
  opts.numSamples = 1;
  Status st = runSft(plan, fns, opts, SftSource{});
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("neither a logits_step nor a prefill_step / decode_step"),
            std::string::npos)
      << st.message();
  opts.numSamples = 0;
  st = runSft(plan, fns, opts, SftSource{});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.message().find("logits_step"), std::string::npos) << st.message();
}

} // namespace
} // namespace lrt
