// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/Logits: parameters read by name into the flat buffer, and prompt
/// logits through a hand-written logits_step.
#include "runtime/Logits.h"

#include "runtime/Safetensors.h"
#include "test/runtime/TestUtil.h"

#include <gtest/gtest.h>

namespace lrt {
namespace {

StagePlan twoParamPlan() {
  StagePlan plan;
  plan.params = {{"a", {2, 3}, 0, 6}, {"b", {4}, 6, 4}};
  plan.numParams = 10;
  return plan;
}

// Tests that each tensor lands at its parameter's offset, and the errors for a missing,
// misshapen or non-F32 tensor.
TEST(LogitsTest, ReadParams) {
  std::string dir = test::freshDir();
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8, 9, 10};
  // In the file, b comes first: placement is by name, not by file order.
  ASSERT_TRUE(writeSafetensors(dir + "/m.safetensors", {{"b", DType::F32, {4}, b.data()},
                                                        {"a", DType::F32, {2, 3}, a.data()}}));
  auto params = readParams(twoParamPlan(), dir + "/m.safetensors");
  ASSERT_TRUE(params) << params.status().message();
  EXPECT_EQ(*params, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));

  ASSERT_TRUE(writeSafetensors(dir + "/missing.safetensors", {{"a", DType::F32, {2, 3}, a.data()}}));
  auto missing = readParams(twoParamPlan(), dir + "/missing.safetensors");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("no tensor 'b'"), std::string::npos);
  ASSERT_TRUE(writeSafetensors(dir + "/shape.safetensors", {{"a", DType::F32, {3, 2}, a.data()},
                                                            {"b", DType::F32, {4}, b.data()}}));
  auto shape = readParams(twoParamPlan(), dir + "/shape.safetensors");
  ASSERT_FALSE(shape);
  EXPECT_NE(shape.status().message().find("F32 [3, 2], expected F32 [2, 3]"), std::string::npos)
      << shape.status().message();
  EXPECT_EQ(readParams(twoParamPlan(), dir + "/none.safetensors").status().code(),
            StatusCode::NotFound);
}

/// logits[t, v] = params[0] * tokens[t] + v, over a context of 4 and a vocabulary of 3.
void fakeLogits(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens, MemRef<float, 3> *out) {
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t v = 0; v < 3; ++v)
      out->aligned[t * 3 + v] = params->aligned[0] * float(tokens->aligned[t]) + float(v);
}

// Tests that the rows of the prompt's positions come back, and the prompt length limits.
TEST(LogitsTest, PromptLogits) {
  std::vector<float> params = {10.0f};
  LogitsModel model{fakeLogits, params.data(), 1, 4, 3};
  auto rows = promptLogits(model, {1, 2});
  ASSERT_TRUE(rows) << rows.status().message();
  EXPECT_EQ(*rows, (std::vector<float>{10, 11, 12, 20, 21, 22}));
  EXPECT_FALSE(promptLogits(model, {}));
  auto tooLong = promptLogits(model, {1, 1, 1, 1, 1});
  ASSERT_FALSE(tooLong);
  EXPECT_NE(tooLong.status().message().find("5 tokens"), std::string::npos);
}

} // namespace
} // namespace lrt
