// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Checkpoint: crc32, durable writes, the round trip of every piece of a
/// TrainState (including the data order across an epoch boundary), all-or-nothing writes,
/// keep-last-N pruning, and detection of truncated or corrupted files with fallback.
#include "runtime/Checkpoint.h"

#include "runtime/FileUtil.h"
#include "runtime/Safetensors.h"
#include "TestUtil.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>

namespace fs = std::filesystem;

namespace lrt {
namespace {

StagePlan twoParamPlan() {
  StagePlan plan;
  plan.pipeline = "main";
  plan.stage = "pretrain";
  plan.model = "toy";
  plan.params = {{"layer.w", {3, 4}, 0, 12, InitKind::Normal, 0.0f, 0.02f, true},
                 {"layer.b", {5}, 12, 5, InitKind::Zeros, 0.0f, 0.0f, false}};
  plan.numParams = 17;
  plan.batch = 2;
  plan.seqLen = 3;
  plan.seed = 99;
  return plan;
}

/// Batches over 10 windows of 4 tokens (token id = position).
TrainBatches tenWindows() {
  std::vector<int32_t> tokens(40);
  std::iota(tokens.begin(), tokens.end(), 0);
  return TrainBatches::create(tokens, 2, 3, 5).take();
}

/// A state with distinct values everywhere, after `step` batches of tenWindows().
TrainState sampleState(const StagePlan &plan, int64_t step) {
  TrainState s;
  s.step = step;
  s.steps = 100;
  for (int64_t i = 0; i < plan.numParams; ++i) {
    s.params.push_back(0.25f * float(i) - 1.0f + float(step));
    s.m.push_back(1e-3f * float(i + 1));
    s.v.push_back(1e-7f * float(i * i + 1));
  }
  TrainBatches b = tenWindows();
  std::vector<int32_t> tk(6), tg(6);
  for (int64_t i = 0; i < step; ++i)
    b.next(tk.data(), tg.data());
  s.data = b.state();
  s.metricsBytes = 1234 + step;
  s.metricsCrc = 0xdeadbeef;
  s.elapsedSeconds = 1.5;
  s.trainSeconds = 0.75;
  s.firstLoss = 6.25;
  s.lastLoss = 3.1415926535897931;
  s.firstValLoss = 6.2;
  s.lastValLoss = 1.0 / 3.0;
  return s;
}

void flipByte(const std::string &path, int64_t offsetFromEnd) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-offsetFromEnd, std::ios::end);
  char c;
  f.get(c);
  f.seekp(-offsetFromEnd, std::ios::end);
  f.put(char(c ^ 0x10));
}

// Tests the CRC-32 check value and that it can be computed in pieces.
TEST(CheckpointTest, Crc32) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xCBF43926u);
}

// Tests that every piece of the state comes back exactly, and that restored batches
// continue as the original ones would, across the epoch boundary.
TEST(CheckpointTest, RoundTrip) {
  std::string dir = test::freshDir();
  StagePlan plan = twoParamPlan();
  TrainState s = sampleState(plan, 4); // 8 of 10 windows used: the next batch crosses epochs
  ASSERT_TRUE(writeCheckpoint(dir, plan, s, 3, {{"step", "4"}}));
  EXPECT_EQ(listCheckpoints(dir), std::vector<int64_t>{4});
  EXPECT_TRUE(fs::exists(dir + "/step-00000004/manifest.json"));
  auto r = readCheckpoint(checkpointPath(dir, 4), plan);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->step, 4);
  EXPECT_EQ(r->steps, 100);
  EXPECT_EQ(r->params, s.params);
  EXPECT_EQ(r->m, s.m);
  EXPECT_EQ(r->v, s.v);
  EXPECT_EQ(r->data.rng, s.data.rng);
  EXPECT_EQ(r->data.order, s.data.order);
  EXPECT_EQ(r->data.cursor, 8);
  EXPECT_EQ(r->data.epoch, 0);
  EXPECT_EQ(r->metricsBytes, s.metricsBytes);
  EXPECT_EQ(r->metricsCrc, s.metricsCrc);
  EXPECT_EQ(r->elapsedSeconds, s.elapsedSeconds);
  EXPECT_EQ(r->trainSeconds, s.trainSeconds);
  EXPECT_EQ(r->firstLoss, s.firstLoss);
  EXPECT_EQ(r->lastLoss, s.lastLoss);
  EXPECT_EQ(r->firstValLoss, s.firstValLoss);
  EXPECT_EQ(r->lastValLoss, s.lastValLoss);

  // model.safetensors is a plain safetensors file of the weights by name.
  auto model = readSafetensors(checkpointPath(dir, 4) + "/model.safetensors");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->find("layer.b")->as<float>(), std::vector<float>(s.params.begin() + 12, s.params.end()));
  EXPECT_EQ(model->metadata.at("step"), "4");

  // The data order continues identically, through two epoch boundaries.
  TrainBatches original = tenWindows(), restored = tenWindows();
  std::vector<int32_t> tk(6), tg(6), tk2(6), tg2(6);
  for (int i = 0; i < 4; ++i)
    original.next(tk.data(), tg.data());
  ASSERT_TRUE(restored.restore(r->data));
  for (int i = 0; i < 12; ++i) {
    original.next(tk.data(), tg.data());
    restored.next(tk2.data(), tg2.data());
    ASSERT_EQ(tk, tk2) << "batch " << i;
    ASSERT_EQ(tg, tg2);
  }
  EXPECT_EQ(restored.epoch(), original.epoch());
  EXPECT_GE(restored.epoch(), 2);
}

// Tests that restore rejects a state that cannot belong to these batches.
TEST(CheckpointTest, DataRestoreErrors) {
  TrainBatches b = tenWindows();
  TrainBatches::State s = b.state();
  s.order[0] = s.order[1];
  Status st = b.restore(s);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("not a permutation"), std::string::npos) << st.message();
  s = b.state();
  s.order.pop_back();
  EXPECT_NE(b.restore(s).message().find("9 entries, expected 10"), std::string::npos);
  s = b.state();
  s.rng = "not numbers";
  EXPECT_NE(b.restore(s).message().find("RNG"), std::string::npos);
  s = b.state();
  s.cursor = 11;
  EXPECT_FALSE(b.restore(s));
}

// Tests keep-last-N: older checkpoints go, newer stay; keep < 1 keeps all; leftover
// temporary folders are cleaned up.
TEST(CheckpointTest, KeepLastN) {
  std::string dir = test::freshDir();
  StagePlan plan = twoParamPlan();
  for (int64_t step : {5, 10, 15, 20, 25})
    ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, step), 3));
  EXPECT_EQ(listCheckpoints(dir), (std::vector<int64_t>{15, 20, 25}));
  fs::create_directories(dir + "/.step-00000030.tmp");
  fs::create_directories(dir + "/not-a-checkpoint");
  ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, 30), 0));
  EXPECT_EQ(listCheckpoints(dir), (std::vector<int64_t>{15, 20, 25, 30}));
  EXPECT_FALSE(fs::exists(dir + "/.step-00000030.tmp"));
  EXPECT_TRUE(fs::exists(dir + "/not-a-checkpoint"));
  ASSERT_TRUE(pruneCheckpoints(dir, 1));
  EXPECT_EQ(listCheckpoints(dir), std::vector<int64_t>{30});
  ASSERT_TRUE(removeCheckpointsAfter(dir, 29));
  EXPECT_TRUE(listCheckpoints(dir).empty());
}

// Tests that a write failing after its first file leaves no partial checkpoint (neither the
// step folder nor the temporary one) and the existing checkpoints intact.
TEST(CheckpointTest, FailedWriteLeavesNothing) {
  std::string dir = test::freshDir();
  StagePlan plan = twoParamPlan();
  ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, 10), 3));
  TrainState bad = sampleState(plan, 20);
  bad.v.resize(3); // model.safetensors is written before this is noticed
  Status st = writeCheckpoint(dir, plan, bad, 3);
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("checkpoint step 20: checkpoint: AdamW v has 3 values, expected "
                              "numParams 17"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(listCheckpoints(dir), std::vector<int64_t>{10});
  EXPECT_FALSE(fs::exists(dir + "/.step-00000020.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/step-00000020"));
  EXPECT_TRUE(readCheckpoint(checkpointPath(dir, 10), plan));
}

// Tests the durable single-file write: content replaced whole; a failing rename (the target
// is a directory) leaves no temporary file and the target untouched.
TEST(CheckpointTest, WriteFileDurable) {
  std::string dir = test::freshDir();
  ASSERT_TRUE(writeFileDurable(dir + "/a.bin", "first"));
  ASSERT_TRUE(writeFileDurable(dir + "/a.bin", "second"));
  EXPECT_EQ(*readFile(dir + "/a.bin"), "second");
  EXPECT_FALSE(fs::exists(dir + "/a.bin.tmp"));
  fs::create_directories(dir + "/d/inner");
  Status st = writeFileDurable(dir + "/d", "data");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.code(), StatusCode::IoError);
  EXPECT_NE(st.message().find("cannot rename"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dir + "/d.tmp"));
  EXPECT_TRUE(fs::is_directory(dir + "/d/inner"));
  EXPECT_FALSE(writeFileDurable(dir + "/missing/x.bin", "data"));
}

// Tests that a truncated file, a flipped byte and a damaged manifest are each reported with
// the file and the problem, and that loading falls back to the previous checkpoint.
TEST(CheckpointTest, DetectsDamageAndFallsBack) {
  std::string dir = test::freshDir();
  StagePlan plan = twoParamPlan();
  for (int64_t step : {10, 20, 30, 40})
    ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, step), 0));
  std::string s40 = checkpointPath(dir, 40), s30 = checkpointPath(dir, 30),
              s20 = checkpointPath(dir, 20);

  fs::resize_file(s40 + "/model.safetensors", fs::file_size(s40 + "/model.safetensors") - 7);
  auto r = readCheckpoint(s40, plan);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("'" + s40 + "/model.safetensors' is truncated or resized"),
            std::string::npos)
      << r.status().message();

  flipByte(s30 + "/optimizer.safetensors", 5);
  r = readCheckpoint(s30, plan);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("'" + s30 + "/optimizer.safetensors' is corrupt: crc32"),
            std::string::npos)
      << r.status().message();

  auto loaded = loadLatestCheckpoint(dir, plan);
  ASSERT_TRUE(loaded) << loaded.status().message();
  EXPECT_EQ(loaded->state.step, 20);
  EXPECT_EQ(loaded->path, s20);
  ASSERT_EQ(loaded->rejected.size(), 2u);
  EXPECT_NE(loaded->rejected[0].find("model.safetensors' is truncated"), std::string::npos);
  EXPECT_NE(loaded->rejected[1].find("optimizer.safetensors' is corrupt"), std::string::npos);

  // A flipped digit in the manifest (the step) fails the manifest's own crc32.
  std::string manifest = *readFile(s20 + "/manifest.json");
  size_t pos = manifest.find("\"step\": 20");
  ASSERT_NE(pos, std::string::npos) << manifest;
  manifest[pos + 8] = '3';
  ASSERT_TRUE(writeFileDurable(s20 + "/manifest.json", manifest));
  r = readCheckpoint(s20, plan);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("manifest.json' is corrupt"), std::string::npos)
      << r.status().message();
  // A truncated manifest.
  fs::resize_file(checkpointPath(dir, 10) + "/manifest.json", 40);
  loaded = loadLatestCheckpoint(dir, plan);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(loaded.status().message().find("no valid checkpoint in '" + dir + "'"),
            std::string::npos);
  EXPECT_NE(loaded.status().message().find("not a complete manifest"), std::string::npos)
      << loaded.status().message();

  // A missing file.
  ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, 50), 0));
  fs::remove(checkpointPath(dir, 50) + "/data.safetensors");
  EXPECT_EQ(readCheckpoint(checkpointPath(dir, 50), plan).status().code(), StatusCode::NotFound);
  EXPECT_EQ(loadLatestCheckpoint(dir + "/none", plan).status().code(), StatusCode::NotFound);
}

// Tests that a checkpoint of another plan is refused with both values in the message.
TEST(CheckpointTest, OtherPlan) {
  std::string dir = test::freshDir();
  StagePlan plan = twoParamPlan();
  ASSERT_TRUE(writeCheckpoint(dir, plan, sampleState(plan, 3), 3));
  StagePlan other = plan;
  other.seed = 100;
  auto r = readCheckpoint(checkpointPath(dir, 3), other);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("another plan: seed 99 in the checkpoint, 100 now"),
            std::string::npos)
      << r.status().message();
  other = plan;
  other.params[1].shape = {1, 5};
  r = readCheckpoint(checkpointPath(dir, 3), other);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("tensor 'layer.b' is F32 [5], the plan has F32 [1, 5]"),
            std::string::npos)
      << r.status().message();
}

} // namespace
} // namespace lrt
