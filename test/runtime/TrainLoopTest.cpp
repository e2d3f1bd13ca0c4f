// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/TrainLoop.h's StepCalls: the signature each compiled step is called
/// with in packing and unpacked stages (fake step functions record what they receive).
#include "runtime/TrainLoop.h"

#include <gtest/gtest.h>

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

} // namespace
} // namespace lrt
