// SPDX-License-Identifier: Apache-2.0
/// plan.json (runtime/PlanJson.h): the keys its readers use (llmpc report, test/e2e, bench/),
/// a stage in no pipeline as null, and errors that name what is wrong. The exact round trip
/// of every field is test/runtime/aot/ManifestTest.cpp's.
#include "runtime/PlanJson.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace {

lrt::StagePlan smallPlan() {
  lrt::StagePlan p;
  p.pipeline = "main", p.stage = "pretrain", p.model = "tiny", p.precision = "bf16";
  lrt::ParamInfo w;
  w.name = "embed", w.shape = {10, 4}, w.numel = 40;
  p.params = {w};
  p.numParams = 40, p.vocab = 10, p.beta1 = 0.9, p.beta2 = 0.95;
  p.tokenizer = {"tok", "bpe", 10, ""};
  return p;
}

// Tests the keys and values readers rely on: betas as a list, the tokenizer's `vocab`,
// the precision, params[].init by name, and a non-frozen parameter's storage "f32".
TEST(PlanJsonTest, WritesTheDocumentedKeys) {
  auto j = nlohmann::json::parse(lrt::writeStagePlanJson(smallPlan()));
  EXPECT_EQ(j.at("pipeline"), "main");
  EXPECT_EQ(j.at("precision"), "bf16");
  EXPECT_EQ(j.at("num_params"), 40);
  EXPECT_EQ(j.at("betas"), nlohmann::json::array({0.9, 0.95}));
  EXPECT_EQ(j.at("tokenizer").at("vocab"), 10);
  EXPECT_EQ(j.at("params").at(0).at("init"), "normal");
  EXPECT_EQ(j.at("params").at(0).at("storage"), "f32");
  EXPECT_EQ(j.at("lora").at("enabled"), false);
}

// Tests that a stage in no pipeline (empty StagePlan::pipeline) is written as null and read
// back as empty.
TEST(PlanJsonTest, NoPipelineIsNull) {
  lrt::StagePlan p = smallPlan();
  p.pipeline.clear();
  std::string text = lrt::writeStagePlanJson(p);
  EXPECT_TRUE(nlohmann::json::parse(text).at("pipeline").is_null()) << text;
  auto read = lrt::readStagePlanJson(text);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  EXPECT_EQ(read->pipeline, "");
  EXPECT_EQ(read->stage, "pretrain");
}

// Tests that a missing key, an unknown init and a wrong `betas` are InvalidArgument errors
// naming the problem.
TEST(PlanJsonTest, RejectsMalformedPlans) {
  auto j = nlohmann::json::parse(lrt::writeStagePlanJson(smallPlan()));
  j.erase("precision");
  auto missing = lrt::readStagePlanJson(j.dump());
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), lrt::StatusCode::InvalidArgument);
  EXPECT_NE(missing.status().message().find("precision"), std::string::npos)
      << missing.status().message();

  j = nlohmann::json::parse(lrt::writeStagePlanJson(smallPlan()));
  j["params"][0]["init"] = "xavier";
  auto init = lrt::readStagePlanJson(j.dump());
  ASSERT_FALSE(init.isOk());
  EXPECT_EQ(init.status().message(), "malformed plan: unknown init 'xavier'");

  j = nlohmann::json::parse(lrt::writeStagePlanJson(smallPlan()));
  j["betas"] = {0.9};
  auto betas = lrt::readStagePlanJson(j.dump());
  ASSERT_FALSE(betas.isOk());
  EXPECT_EQ(betas.status().message(), "malformed plan: 'betas' is not a list of 2 numbers");
}

} // namespace
