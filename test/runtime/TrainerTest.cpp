// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Trainer with a hand-written implementation of the step ABI: a bigram
/// softmax-regression model (logits[t] = W[token[t]] + b) with analytic gradients and
/// AdamW, so the loop, metrics, checkpoint, samples and gradient dump are checked without
/// the compiler.
#include "runtime/Trainer.h"

#include "runtime/Checkpoint.h"
#include "runtime/FileUtil.h"
#include "runtime/Safetensors.h"
#include "TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace lrt {
namespace {

constexpr int64_t kVocab = 320;

/// Mean loss of the bigram model over the targets of tokens/targets i32[B, T] that are not
/// kIgnoreIndex (0 when there are none); adds `scale` * dLoss/dParams to `grads` when
/// non-null. params: W f32[V, V] at 0, b f32[V] at V*V.
double bigramLoss(const float *params, const int32_t *tokens, const int32_t *targets, int64_t N,
                  float *grads, double scale = 1.0) {
  const int64_t V = kVocab;
  const float *W = params, *b = params + V * V;
  std::vector<double> row(V);
  double loss = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i)
    count += targets[i] != kIgnoreIndex;
  const double denom = double(std::max<int64_t>(count, 1));
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] == kIgnoreIndex)
      continue;
    double maxv = -1e30;
    for (int64_t v = 0; v < V; ++v)
      maxv = std::max(maxv, row[v] = double(W[tokens[i] * V + v]) + b[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v)
      sum += std::exp(row[v] - maxv);
    loss += std::log(sum) + maxv - row[targets[i]];
    if (!grads)
      continue;
    for (int64_t v = 0; v < V; ++v) {
      double p = std::exp(row[v] - maxv) / sum - (v == targets[i] ? 1.0 : 0.0);
      grads[tokens[i] * V + v] += float(scale * p / denom);
      grads[V * V + v] += float(scale * p / denom);
    }
  }
  return loss / denom;
}

/// grad_step of the ABI: grads += hyper[kHyperGradScale] * dLoss/dParams.
void bigramGrad(MemRef<float, 1> *params, MemRef<float, 1> *grads, MemRef<int32_t, 2> *tokens,
                MemRef<int32_t, 2> *targets, MemRef<float, 1> *hyper,
                MemRef<float, 1> *metrics) {
  const int64_t N = tokens->sizes[0] * tokens->sizes[1];
  metrics->aligned[kMetricLoss] = float(bigramLoss(params->aligned, tokens->aligned,
                                                   targets->aligned, N, grads->aligned,
                                                   hyper->aligned[kHyperGradScale]));
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i)
    count += targets->aligned[i] != kIgnoreIndex;
  metrics->aligned[kMetricTokens] = float(count);
}

/// apply_step of the ABI: norm, clip, AdamW.
void bigramApply(MemRef<float, 1> *params, MemRef<float, 1> *grads, MemRef<float, 1> *m,
                 MemRef<float, 1> *v, MemRef<float, 1> *hyper, MemRef<float, 1> *metrics) {
  const int64_t P = params->sizes[0];
  float *p = params->aligned, *g = grads->aligned, *h = hyper->aligned;
  double norm = 0;
  for (int64_t i = 0; i < P; ++i)
    norm += double(g[i]) * g[i];
  norm = std::sqrt(norm);
  double clip = h[kHyperGradClip];
  double scale = (clip > 0 && norm > clip) ? clip / norm : 1.0;
  double lr = h[kHyperLr], b1 = h[kHyperBeta1], b2 = h[kHyperBeta2], eps = h[kHyperEps];
  double wd = h[kHyperWeightDecay], t = h[kHyperStep];
  for (int64_t i = 0; i < P; ++i) {
    double gi = g[i] * scale;
    m->aligned[i] = float(b1 * m->aligned[i] + (1 - b1) * gi);
    v->aligned[i] = float(b2 * v->aligned[i] + (1 - b2) * gi * gi);
    double mhat = m->aligned[i] / (1 - std::pow(b1, t));
    double vhat = v->aligned[i] / (1 - std::pow(b2, t));
    if (i < kVocab * kVocab) // W decays, b does not
      p[i] -= float(lr * wd * p[i]);
    p[i] -= float(lr * mhat / (std::sqrt(vhat) + eps));
  }
  metrics->aligned[kMetricGradNorm] = float(norm);
}

void bigramEval(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                MemRef<int32_t, 2> *targets, MemRef<float, 1> *metrics) {
  int64_t N = tokens->sizes[0] * tokens->sizes[1];
  metrics->aligned[kMetricLoss] =
      float(bigramLoss(params->aligned, tokens->aligned, targets->aligned, N, nullptr));
}

void bigramLogits(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                  MemRef<float, 3> *logits) {
  const int64_t V = kVocab, C = tokens->sizes[1];
  const float *W = params->aligned, *b = params->aligned + V * V;
  for (int64_t t = 0; t < C; ++t)
    for (int64_t v = 0; v < V; ++v)
      logits->aligned[t * V + v] = W[tokens->aligned[t] * V + v] + b[v];
}

StepFunctions bigramFns() { return {bigramGrad, bigramApply, bigramEval, bigramLogits}; }

/// A plan for the bigram model on `corpusPath`.
StagePlan bigramPlan(const std::string &corpusPath) {
  StagePlan plan;
  plan.pipeline = "main";
  plan.stage = "pretrain";
  plan.model = "bigram";
  plan.params = {{"bigram.w", {kVocab, kVocab}, 0, kVocab * kVocab, InitKind::Normal, 0.0f, 0.02f, true},
                 {"bigram.b", {kVocab}, kVocab * kVocab, kVocab, InitKind::Zeros, 0.0f, 0.0f, false}};
  plan.numParams = kVocab * kVocab + kVocab;
  plan.vocab = kVocab;
  plan.context = 16;
  plan.dim = kVocab;
  plan.layers = 0;
  plan.batch = 4;
  plan.seqLen = 16;
  plan.steps = 60;
  plan.evalEvery = 20;
  plan.evalBatches = 2;
  plan.warmup = 5;
  plan.lr = 0.05;
  plan.minLr = 0.005;
  plan.weightDecay = 0.01;
  plan.seed = 1234;
  plan.data = {"text", corpusPath, "text", 0.9};
  plan.tokenizer = {"tok", "bpe", kVocab};
  return plan;
}

struct RunFixture {
  std::string dir, corpus, runDir;
  explicit RunFixture(std::string d) : dir(std::move(d)) {
    corpus = dir + "/corpus.txt";
    runDir = dir + "/run";
    std::ofstream(corpus) << test::englishText(600);
  }
};

std::vector<nlohmann::json> readJsonl(const std::string &path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::string readAll(std::FILE *f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    s.append(buf, n);
  return s;
}

// Tests a full run: the loss falls, metrics.jsonl has one row per step plus the eval rows,
// the progress lines and report are printed, the checkpoint reads back, samples exist.
TEST(TrainerTest, RunWritesEverything) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  TrainResult result;
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.numSamples = 3;
  opts.sampleTokens = 20;
  opts.progress = ProgressStyle::Lines;
  opts.logEvery = 10;
  std::FILE *log = std::tmpfile();
  opts.out = log;
  opts.result = &result;
  Status st = runPretrain(plan, bigramFns(), opts);
  std::string printed = readAll(log);
  std::fclose(log);
  ASSERT_TRUE(st) << st.message() << "\n" << printed;

  EXPECT_EQ(result.steps, 60);
  EXPECT_LT(result.lastValLoss, 0.8 * result.firstValLoss)
      << result.firstValLoss << " -> " << result.lastValLoss;
  EXPECT_NEAR(result.firstValLoss, std::log(double(kVocab)), 0.1);
  EXPECT_LT(result.lastLoss, result.firstLoss);
  EXPECT_GT(result.corpusTokens, 0);
  EXPECT_GT(result.tokensPerSecond, 0);

  auto rows = readJsonl(fx.runDir + "/metrics.jsonl");
  int stepRows = 0, evalRows = 0;
  for (const auto &r : rows) {
    if (r.contains("loss")) {
      ++stepRows;
      EXPECT_EQ(r["step"].get<int64_t>(), stepRows);
      for (const char *k : {"lr", "grad_norm", "tokens_per_s", "elapsed_s"})
        EXPECT_TRUE(r.contains(k)) << k;
    } else {
      ++evalRows;
      EXPECT_TRUE(r.contains("val_loss"));
    }
  }
  EXPECT_EQ(stepRows, 60);
  EXPECT_EQ(evalRows, 4); // steps 0, 20, 40, 60

  EXPECT_NE(printed.find("step 10/60 | loss "), std::string::npos) << printed;
  EXPECT_NE(printed.find("step 60/60 | loss "), std::string::npos);
  EXPECT_NE(printed.find("val_loss: first"), std::string::npos);
  EXPECT_NE(printed.find("ratio"), std::string::npos);
  EXPECT_NE(printed.find("tok/s"), std::string::npos);

  auto ckpt = readSafetensors(fx.runDir + "/checkpoint/model.safetensors");
  ASSERT_TRUE(ckpt) << ckpt.status().message();
  ASSERT_EQ(ckpt->tensors.size(), 2u);
  const Tensor *w = ckpt->find("bigram.w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{kVocab, kVocab}));
  EXPECT_EQ(ckpt->find("bigram.b")->shape, std::vector<int64_t>{kVocab});
  EXPECT_EQ(ckpt->metadata.at("step"), "60");
  EXPECT_EQ(ckpt->metadata.at("stage"), "pretrain");
  EXPECT_TRUE(std::filesystem::exists(fx.runDir + "/checkpoint/tokenizer.model"));
  EXPECT_TRUE(std::filesystem::exists(fx.runDir + "/tokenizer.model"));

  ASSERT_EQ(result.samples.size(), 3u);
  EXPECT_EQ(result.samples[0].rfind("In the beginning", 0), 0u) << result.samples[0];
  EXPECT_GT(result.samples[0].size(), std::string("In the beginning").size());
  std::ifstream samples(fx.runDir + "/samples.txt");
  std::string sampleText((std::istreambuf_iterator<char>(samples)), {});
  EXPECT_NE(sampleText.find("--- sample 3"), std::string::npos);
}

// Tests that a second run in the same directory reuses the tokenizer and token cache and
// reproduces the losses exactly, and that a steps override shortens the run.
TEST(TrainerTest, DeterministicRerun) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.numSamples = 1;
  opts.sampleTokens = 5;
  opts.steps = 12;
  opts.progress = ProgressStyle::Quiet;
  TrainResult a, b;
  opts.result = &a;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  auto rowsA = readJsonl(fx.runDir + "/metrics.jsonl");
  opts.result = &b;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  auto rowsB = readJsonl(fx.runDir + "/metrics.jsonl");
  EXPECT_EQ(b.tokenizerSeconds, 0.0) << "tokenizer reloaded";
  ASSERT_EQ(rowsA.size(), rowsB.size());
  EXPECT_EQ(a.steps, 12);
  for (size_t i = 0; i < rowsA.size(); ++i) {
    if (rowsA[i].contains("loss"))
      EXPECT_EQ(rowsA[i]["loss"], rowsB[i]["loss"]) << "row " << i;
  }
  EXPECT_EQ(a.samples, b.samples);
}

// Tests gradient accumulation through the step protocol: 2 micro-batches of 4 rows per
// step train exactly like 1 batch of 8 rows (same rows, same order: TrainBatches draws rows
// in sequence), so the step losses and grad norms agree to fp32 rounding (the reference is
// the unaccumulated run; a wrong scale, e.g. 1 instead of n_i / N, doubles the gradient and
// changes every loss after the first step).
TEST(TrainerTest, AccumulationEqualsLargerBatch) {
  RunFixture fx(test::freshDir());
  StagePlan big = bigramPlan(fx.corpus);
  big.batch = 8;
  StagePlan accum = big;
  accum.batch = 4;
  accum.accumulate = 2;
  TrainOptions opts;
  opts.numSamples = 0;
  opts.steps = 10;
  opts.progress = ProgressStyle::Quiet;
  opts.runDir = fx.dir + "/big";
  ASSERT_TRUE(runPretrain(big, bigramFns(), opts));
  auto rowsBig = readJsonl(opts.runDir + "/metrics.jsonl");
  opts.runDir = fx.dir + "/accum";
  ASSERT_TRUE(runPretrain(accum, bigramFns(), opts));
  auto rowsAccum = readJsonl(opts.runDir + "/metrics.jsonl");
  ASSERT_EQ(rowsBig.size(), rowsAccum.size());
  int stepRows = 0;
  for (size_t i = 0; i < rowsBig.size(); ++i) {
    if (!rowsBig[i].contains("loss"))
      continue;
    ++stepRows;
    double a = rowsBig[i]["loss"], b = rowsAccum[i]["loss"];
    EXPECT_NEAR(a, b, 1e-5 * std::fabs(a)) << "row " << i;
    double ga = rowsBig[i]["grad_norm"], gb = rowsAccum[i]["grad_norm"];
    EXPECT_NEAR(ga, gb, 1e-4 * std::fabs(ga)) << "row " << i;
  }
  EXPECT_EQ(stepRows, 10);
}

// Tests that validatePlan rejects a non-positive accumulation count.
TEST(TrainerTest, AccumulateMustBePositive) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  plan.accumulate = 0;
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.progress = ProgressStyle::Quiet;
  Status st = runPretrain(plan, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("accumulate 0 must be positive"), std::string::npos) << st.message();
}

/// metrics.jsonl rows without the timing fields.
std::vector<nlohmann::json> untimed(std::vector<nlohmann::json> rows) {
  for (auto &r : rows) {
    r.erase("elapsed_s");
    r.erase("tokens_per_s");
  }
  return rows;
}

// Tests exact resume across an epoch boundary: a run stopped after a checkpoint (rows
// and checkpoints after it lost or half-written) and resumed ends with the same weights,
// AdamW state, metrics and samples as an uninterrupted one; a damaged newest checkpoint
// is skipped with a message; a fresh run removes old checkpoints.
TEST(TrainerTest, ResumeIsExact) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  plan.batch = 64; // 60 steps of 64 rows use 3840 windows: more than an epoch
  TrainOptions opts;
  opts.numSamples = 2;
  opts.sampleTokens = 8;
  opts.progress = ProgressStyle::Quiet;
  opts.checkpointEvery = 7;
  opts.keepCheckpoints = 0;
  TrainResult full, resumed;
  opts.runDir = fx.dir + "/full";
  opts.result = &full;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  auto last = readCheckpoint(checkpointPath(opts.runDir + "/checkpoint", 60), plan);
  ASSERT_TRUE(last) << last.status().message();
  EXPECT_GE(last->data.epoch, 1) << "the run must cross an epoch boundary";

  // The "crashed" run: the same run with everything after step 35 lost except a
  // half-written row and a truncated checkpoint of step 42.
  std::string run = fx.dir + "/crashed";
  opts.runDir = run;
  opts.result = nullptr;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  std::string ckpt = run + "/checkpoint";
  ASSERT_TRUE(removeCheckpointsAfter(ckpt, 42));
  fs::resize_file(checkpointPath(ckpt, 42) + "/optimizer.safetensors", 100);
  auto s35 = readCheckpoint(checkpointPath(ckpt, 35), plan);
  ASSERT_TRUE(s35);
  fs::resize_file(run + "/metrics.jsonl", s35->metricsBytes + 30);
  fs::remove(ckpt + "/model.safetensors");

  opts.resume = true;
  opts.result = &resumed;
  opts.progress = ProgressStyle::Lines;
  std::FILE *log = std::tmpfile();
  opts.out = log;
  Status st = runPretrain(plan, bigramFns(), opts);
  std::string printed = readAll(log);
  std::fclose(log);
  ASSERT_TRUE(st) << st.message() << printed;
  EXPECT_NE(printed.find("checkpoint: skipping a newer checkpoint: '" + checkpointPath(ckpt, 42) +
                         "/optimizer.safetensors' is truncated or resized: 100 bytes"),
            std::string::npos)
      << printed;
  EXPECT_NE(printed.find("resume: from " + checkpointPath(ckpt, 35) + " (step 35/60"),
            std::string::npos)
      << printed;

  for (const char *file : {"model.safetensors", "optimizer.safetensors", "data.safetensors"})
    EXPECT_EQ(*readFile(checkpointPath(ckpt, 60) + "/" + file),
              *readFile(checkpointPath(fx.dir + "/full/checkpoint", 60) + "/" + file))
        << file;
  EXPECT_EQ(*readFile(ckpt + "/model.safetensors"),
            *readFile(fx.dir + "/full/checkpoint/model.safetensors"));
  auto rowsFull = untimed(readJsonl(fx.dir + "/full/metrics.jsonl"));
  auto rowsResumed = untimed(readJsonl(run + "/metrics.jsonl"));
  ASSERT_EQ(rowsFull.size(), rowsResumed.size());
  for (size_t i = 0; i < rowsFull.size(); ++i)
    EXPECT_EQ(rowsFull[i], rowsResumed[i]) << "row " << i;
  EXPECT_EQ(full.samples, resumed.samples);
  EXPECT_EQ(full.firstLoss, resumed.firstLoss);
  EXPECT_EQ(full.firstValLoss, resumed.firstValLoss);
  EXPECT_EQ(full.lastValLoss, resumed.lastValLoss);

  // Resuming with another step count is refused; a fresh run clears the checkpoints.
  opts.steps = 70;
  opts.out = nullptr;
  st = runPretrain(plan, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("is from a run of 60 steps, this run has 70"), std::string::npos)
      << st.message();
  opts.resume = false;
  opts.steps = 3;
  opts.checkpointEvery = 0;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  EXPECT_EQ(listCheckpoints(ckpt), std::vector<int64_t>{3});
  opts.resume = true;
  opts.runDir = fx.dir + "/empty";
  st = runPretrain(plan, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), StatusCode::NotFound);
  EXPECT_NE(st.message().find("resume: no checkpoint in"), std::string::npos) << st.message();
}

// Tests the terminal style: one line redrawn with carriage returns, with ETA and tok/s.
TEST(TrainerTest, ProgressBar) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.numSamples = 0;
  opts.steps = 5;
  opts.progress = ProgressStyle::Bar;
  std::FILE *log = std::tmpfile();
  opts.out = log;
  Status st = runPretrain(plan, bigramFns(), opts);
  std::string printed = readAll(log);
  std::fclose(log);
  ASSERT_TRUE(st) << st.message();
  EXPECT_NE(printed.find("\r\033[K[#"), std::string::npos) << printed;
  EXPECT_NE(printed.find("5/5 | loss "), std::string::npos) << printed;
  EXPECT_NE(printed.find("| ETA "), std::string::npos);
  EXPECT_EQ(printed.find("step 5/5 | loss"), std::string::npos) << "no plain lines on a bar";
  EXPECT_FALSE(std::filesystem::exists(fx.runDir + "/samples.txt"));
}

// Tests that inconsistent plans are rejected with the numbers in the message.
TEST(TrainerTest, PlanErrors) {
  RunFixture fx(test::freshDir());
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.progress = ProgressStyle::Quiet;
  StagePlan plan = bigramPlan(fx.corpus);
  plan.tokenizer.vocabSize = 300;
  Status st = runPretrain(plan, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("model vocab 320 differs from tokenizer 'tok' vocab 300"),
            std::string::npos)
      << st.message();
  plan = bigramPlan(fx.corpus);
  plan.params[1].offset = plan.numParams - 1;
  st = runPretrain(plan, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("'bigram.b'"), std::string::npos) << st.message();
  plan = bigramPlan(fx.dir + "/missing.txt");
  EXPECT_EQ(runPretrain(plan, bigramFns(), opts).code(), StatusCode::NotFound);
  EXPECT_FALSE(runPretrain(bigramPlan(fx.corpus), StepFunctions{}, opts));
}

// Tests that a model whose parameters, gradients and AdamW moments cannot fit in memory is
// refused up front with the sizes in the message (instead of an abort in operator new).
TEST(TrainerTest, ModelTooLargeForMemory) {
  RunFixture fx(test::freshDir());
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.progress = ProgressStyle::Quiet;
  StagePlan plan = bigramPlan(fx.corpus);
  plan.numParams = int64_t(1) << 50; // 16 PiB of training state
  Status st = runPretrain(plan, bigramFns(), opts);
  ASSERT_EQ(st.code(), StatusCode::OutOfMemory) << st.message();
  EXPECT_NE(st.message().find("model 'bigram' (1125899906842624 parameters) needs 16777216.0 GiB "
                              "for parameters, gradients and AdamW state"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(" GiB"), st.message().rfind(" GiB")) << st.message();
  EXPECT_EQ(dumpGradients(plan, bigramFns(), fx.dir + "/g.safetensors", opts).code(),
            StatusCode::OutOfMemory);
}

std::atomic<bool> gStop{false};
int64_t gStopAfter = 0, gTrainCalls = 0;
/// bigramApply that raises gStop (as a SIGINT handler would) during call gStopAfter.
void stoppingApply(MemRef<float, 1> *params, MemRef<float, 1> *grads, MemRef<float, 1> *m,
                   MemRef<float, 1> *v, MemRef<float, 1> *hyper, MemRef<float, 1> *metrics) {
  if (++gTrainCalls == gStopAfter)
    gStop = true;
  bigramApply(params, grads, m, v, hyper, metrics);
}

std::string fileText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Tests the run directory across reruns: a run stopped by TrainOptions::stop finishes the
// step, checkpoints it and returns Cancelled; the earlier run's samples and final model are
// gone (not mixed with the new metrics); --resume then ends exactly like an uninterrupted
// run. A rerun that fails before its first step leaves the folder (plan.json included) as
// it was, and a rerun with no samples removes the old samples.txt.
TEST(TrainerTest, RunDirectoryAcrossReruns) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.numSamples = 1;
  opts.sampleTokens = 4;
  opts.steps = 30;
  opts.progress = ProgressStyle::Quiet;
  opts.planJson = "{\"run\": 1}\n";
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  const std::string model = fx.runDir + "/checkpoint/model.safetensors";
  const std::string reference = fileText(model);
  ASSERT_FALSE(reference.empty());
  EXPECT_EQ(fileText(fx.runDir + "/plan.json"), "{\"run\": 1}\n");

  // Interrupted during step 13 of a fresh rerun.
  gStop = false, gTrainCalls = 0, gStopAfter = 13;
  opts.stop = &gStop;
  opts.planJson = "{\"run\": 2}\n";
  Status st = runPretrain(plan, {bigramGrad, stoppingApply, bigramEval, bigramLogits}, opts);
  ASSERT_EQ(st.code(), StatusCode::Cancelled) << st.message();
  EXPECT_NE(st.message().find("interrupted at step 13 of 30; checkpoint " +
                              checkpointPath(fx.runDir + "/checkpoint", 13)),
            std::string::npos)
      << st.message();
  EXPECT_EQ(listCheckpoints(fx.runDir + "/checkpoint"), (std::vector<int64_t>{13}));
  int stepRows = 0;
  for (const auto &r : readJsonl(fx.runDir + "/metrics.jsonl"))
    stepRows += r.contains("loss");
  EXPECT_EQ(stepRows, 13);
  EXPECT_FALSE(fs::exists(model)) << "the earlier run's model must not outlive its metrics";
  EXPECT_FALSE(fs::exists(fx.runDir + "/samples.txt"));
  EXPECT_EQ(fileText(fx.runDir + "/plan.json"), "{\"run\": 2}\n");

  gStop = false;
  opts.resume = true;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  EXPECT_EQ(fileText(model), reference) << "resume after the interrupt is exact";
  EXPECT_TRUE(fs::exists(fx.runDir + "/samples.txt"));

  // A rerun that cannot start (no batch fits) changes nothing.
  opts.resume = false;
  opts.planJson = "{\"run\": 3}\n";
  StagePlan huge = plan;
  huge.batch = 100000;
  st = runPretrain(huge, bigramFns(), opts);
  ASSERT_FALSE(st);
  EXPECT_EQ(fileText(fx.runDir + "/plan.json"), "{\"run\": 2}\n");
  EXPECT_EQ(fileText(model), reference);
  EXPECT_TRUE(fs::exists(fx.runDir + "/samples.txt"));

  // No samples this time: the old samples.txt goes.
  opts.numSamples = 0;
  ASSERT_TRUE(runPretrain(plan, bigramFns(), opts));
  EXPECT_FALSE(fs::exists(fx.runDir + "/samples.txt"));
  EXPECT_EQ(fileText(model), reference);
}

// Tests the gradient dump: initial params, analytic gradients of the first batch, tokens,
// targets and loss, with the parameters untouched by the lr = 0 step.
TEST(TrainerTest, DumpGradients) {
  RunFixture fx(test::freshDir());
  StagePlan plan = bigramPlan(fx.corpus);
  TrainOptions opts;
  opts.runDir = fx.runDir;
  opts.progress = ProgressStyle::Quiet;
  std::string out = fx.dir + "/grads.safetensors";
  Status st = dumpGradients(plan, bigramFns(), out, opts);
  ASSERT_TRUE(st) << st.message();
  auto f = readSafetensors(out);
  ASSERT_TRUE(f) << f.status().message();
  for (const char *name : {"bigram.w", "bigram.b", "grad.bigram.w", "grad.bigram.b", "tokens",
                           "targets", "loss"})
    EXPECT_NE(f->find(name), nullptr) << name;
  std::vector<float> init;
  ASSERT_TRUE(initParams(plan, plan.seed, init));
  std::vector<float> w = f->find("bigram.w")->as<float>();
  EXPECT_TRUE(std::equal(w.begin(), w.end(), init.begin()));
  const Tensor *tokens = f->find("tokens"), *targets = f->find("targets");
  EXPECT_EQ(tokens->dtype, DType::I32);
  EXPECT_EQ(tokens->shape, (std::vector<int64_t>{4, 16}));
  auto tk = tokens->as<int32_t>(), tg = targets->as<int32_t>();
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t + 1 < 16; ++t)
      EXPECT_EQ(tg[r * 16 + t], tk[r * 16 + t + 1]);
  // Recompute the loss and the gradient independently.
  std::vector<float> grads(plan.numParams, 0.0f);
  double loss = bigramLoss(init.data(), tk.data(), tg.data(), 64, grads.data());
  EXPECT_EQ(f->find("loss")->shape, std::vector<int64_t>{1});
  EXPECT_NEAR(f->find("loss")->as<float>()[0], loss, 1e-5);
  auto gb = f->find("grad.bigram.b")->as<float>();
  for (int64_t v = 0; v < kVocab; ++v)
    EXPECT_NEAR(gb[v], grads[kVocab * kVocab + v], 1e-7);
}

// Tests parameter initialisation: Normal statistics, Ones/Zeros, the same seed twice.
TEST(TrainerTest, InitParams) {
  StagePlan plan;
  plan.params = {{"a", {100, 100}, 0, 10000, InitKind::Normal, 0.5f, 0.1f, true},
                 {"b", {3}, 10000, 3, InitKind::Ones},
                 {"c", {2}, 10003, 2, InitKind::Zeros}};
  plan.numParams = 10005;
  std::vector<float> p, q;
  ASSERT_TRUE(initParams(plan, 7, p));
  ASSERT_TRUE(initParams(plan, 7, q));
  EXPECT_EQ(p, q);
  double mean = 0, sq = 0;
  for (int i = 0; i < 10000; ++i) {
    mean += p[i];
    sq += double(p[i]) * p[i];
  }
  mean /= 10000;
  double stdev = std::sqrt(sq / 10000 - mean * mean);
  EXPECT_NEAR(mean, 0.5, 0.01);
  EXPECT_NEAR(stdev, 0.1, 0.01);
  EXPECT_EQ(p[10000], 1.0f);
  EXPECT_EQ(p[10004], 0.0f);
  ASSERT_TRUE(initParams(plan, 8, q));
  EXPECT_NE(p, q);
  plan.params[2].numel = 5;
  EXPECT_FALSE(initParams(plan, 7, p));
}

// Tests the LoRA initialisers: lora_A [rank, in] is U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
// kaiming_uniform_(a=sqrt(5)): gain sqrt(2/6) * sqrt(3/in) = 1/sqrt(in)), lora_B zeros, and
// a frozen base gets the values of the same param trainable under the same seed.
TEST(TrainerTest, InitParamsLoraAndFrozen) {
  const int64_t rank = 16, in = 256;
  StagePlan full;
  full.params = {{"w", {in, 8}, 0, in * 8, InitKind::Normal, 0.0f, 0.02f, true}};
  full.numParams = in * 8;
  StagePlan plan;
  ParamInfo w = full.params[0];
  w.frozen = true;
  w.byteOffset = 0;
  w.byteSize = 4 * in * 8;
  plan.params = {w,
                 {"w.lora_A", {rank, in}, 0, rank * in, InitKind::KaimingUniform},
                 {"w.lora_B", {8, rank}, rank * in, 8 * rank, InitKind::Zeros}};
  plan.numParams = rank * in + 8 * rank;
  plan.frozenBytes = 4 * in * 8;
  std::vector<float> base, p;
  std::vector<uint8_t> frozen;
  ASSERT_TRUE(initParams(full, 3, base));
  ASSERT_TRUE(initParams(plan, 3, p, &frozen));
  ASSERT_EQ(frozen.size(), size_t(4 * in * 8));
  EXPECT_EQ(std::memcmp(frozen.data(), base.data(), frozen.size()), 0);
  // U(-b, b) with b = 1/16: every value inside, the extremes near b, mean 0, variance b^2/3.
  const double b = 1.0 / std::sqrt(double(in));
  EXPECT_DOUBLE_EQ(b, 0.0625);
  double mean = 0, sq = 0, mx = 0;
  for (int64_t i = 0; i < rank * in; ++i) {
    EXPECT_LE(std::fabs(p[i]), b);
    mean += p[i];
    sq += double(p[i]) * p[i];
    mx = std::max(mx, std::fabs(double(p[i])));
  }
  mean /= double(rank * in);
  double var = sq / double(rank * in) - mean * mean;
  // 4096 draws: the sample mean's sd is b/sqrt(3 * 4096) = 5.6e-4, 5 sd = 2.8e-3; the
  // variance's relative sd is sqrt(4/5 / 4096) = 1.4%, 5 sd = 7%.
  EXPECT_NEAR(mean, 0.0, 2.8e-3);
  EXPECT_NEAR(var, b * b / 3, 0.07 * b * b / 3);
  EXPECT_GT(mx, 0.99 * b);
  for (int64_t i = rank * in; i < plan.numParams; ++i)
    EXPECT_EQ(p[i], 0.0f);
  // Without a frozen buffer the base is skipped; the adapters are the same.
  std::vector<float> q;
  ASSERT_TRUE(initParams(plan, 3, q));
  EXPECT_EQ(p, q);
  // The base as an fp32 plan over the frozen bytes: what the fp32 readers fill.
  StagePlan basePlan = frozenAsF32(plan);
  ASSERT_EQ(basePlan.params.size(), 1u);
  EXPECT_EQ(basePlan.params[0].name, "w");
  EXPECT_FALSE(basePlan.params[0].frozen);
  EXPECT_EQ(basePlan.params[0].offset, 0);
  EXPECT_EQ(basePlan.numParams, in * 8);
  EXPECT_EQ(basePlan.frozenBytes, 0);
  plan.params[0].byteOffset = 64;
  EXPECT_FALSE(initParams(plan, 3, p, &frozen));
}

} // namespace
} // namespace lrt
