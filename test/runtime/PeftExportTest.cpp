// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/PeftExport: module and tensor names (as `peft` names them for a
/// LlamaForCausalLM, written out by hand here), target_modules, the adapter folder, and
/// the merged export. test/e2e/peft_export.py loads the folders with `peft` and
/// `transformers` and compares logits.
#include "runtime/PeftExport.h"

#include "runtime/FileUtil.h"
#include "runtime/Lora.h"
#include "test/runtime/TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>

namespace lrt {
namespace {

Tensor tensor(const std::string &name, std::vector<int64_t> shape, float start) {
  Tensor t;
  t.name = name;
  t.shape = std::move(shape);
  std::vector<float> v(t.numel());
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = start + 0.25f * float(i);
  t.bytes.resize(v.size() * sizeof(float));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

TEST(PeftExportTest, ModuleNames) {
  // PEFT's module names for LlamaForCausalLM (model.named_modules()), by hand.
  EXPECT_EQ(*hfModuleOf("layers.0.wq"), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(*hfModuleOf("layers.3.wk"), "model.layers.3.self_attn.k_proj");
  EXPECT_EQ(*hfModuleOf("layers.1.wv"), "model.layers.1.self_attn.v_proj");
  EXPECT_EQ(*hfModuleOf("layers.1.wo"), "model.layers.1.self_attn.o_proj");
  EXPECT_EQ(*hfModuleOf("layers.12.w_gate"), "model.layers.12.mlp.gate_proj");
  EXPECT_EQ(*hfModuleOf("layers.0.w_up"), "model.layers.0.mlp.up_proj");
  EXPECT_EQ(*hfModuleOf("layers.0.w_down"), "model.layers.0.mlp.down_proj");
  EXPECT_FALSE(hfModuleOf("embed"));
  EXPECT_FALSE(hfModuleOf("layers.0.attn_norm"));
  EXPECT_FALSE(hfModuleOf("layers.0.w_side"));

  std::vector<Tensor> adapters = {tensor("layers.0.wq.lora_A", {2, 4}, 0),
                                  tensor("layers.0.wq.lora_B", {4, 2}, 1),
                                  tensor("layers.0.mlp_norm", {4}, 0)};
  auto peft = toPeftTensors(adapters);
  ASSERT_TRUE(peft) << peft.status().message();
  ASSERT_EQ(peft->size(), 2u);
  EXPECT_EQ((*peft)[0].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ((*peft)[1].name, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ((*peft)[0].shape, (std::vector<int64_t>{2, 4})); // a copy: same layout
  EXPECT_EQ((*peft)[1].bytes, adapters[1].bytes);
}

TEST(PeftExportTest, ConfigTargetModules) {
  LoraExportSpec spec;
  spec.rank = 16, spec.alpha = 16, spec.rslora = true, spec.dropout = 0.05;
  // wq on both layers -> "q_proj"; w_down on layer 1 only -> its full module name.
  auto text = peftAdapterConfigJson(spec, {"layers.0.wq", "layers.1.wq", "layers.1.w_down"}, 2);
  ASSERT_TRUE(text) << text.status().message();
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["target_modules"],
            nlohmann::json({"model.layers.1.mlp.down_proj", "q_proj"}));
  EXPECT_EQ(j["r"], 16);
  EXPECT_EQ(j["lora_alpha"], 16);
  EXPECT_TRUE(j["lora_alpha"].is_number_integer()); // PEFT writes lora_alpha=16 as 16
  EXPECT_EQ(j["lora_dropout"], 0.05);
  EXPECT_EQ(j["use_rslora"], true);
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["bias"], "none");
  EXPECT_TRUE(j["base_model_name_or_path"].is_null());
  EXPECT_EQ(j["fan_in_fan_out"], false);
  // Sorted keys, two-space indent, as json.dumps(indent=2, sort_keys=True).
  EXPECT_EQ(text->substr(0, 36), "{\n  \"alora_invocation_tokens\": null,");
  spec.baseModel = "HuggingFaceTB/SmolLM2-135M-Instruct";
  spec.alpha = 2.5;
  j = nlohmann::json::parse(*peftAdapterConfigJson(spec, {"layers.0.wq"}, 1));
  EXPECT_EQ(j["base_model_name_or_path"], spec.baseModel);
  EXPECT_EQ(j["lora_alpha"], 2.5);
  EXPECT_EQ(j["target_modules"], nlohmann::json({"q_proj"}));
  EXPECT_FALSE(peftAdapterConfigJson(spec, {}, 1));
  EXPECT_FALSE(peftAdapterConfigJson(spec, {"embed"}, 1));
}

/// A llama config with one layer (dim 4, 2 heads, 1 KV head, hidden 6) and its weights.
LlamaConfig tinyConfig() {
  LlamaConfig c;
  c.vocab = 8, c.dim = 4, c.layers = 1, c.heads = 2, c.kvHeads = 1, c.hidden = 6, c.context = 8;
  return c;
}

std::vector<Tensor> tinyBase(const LlamaConfig &c) {
  std::map<std::string, std::vector<int64_t>> shapes = {
      {"embed", {c.vocab, c.dim}},      {"layers.0.attn_norm", {c.dim}},
      {"layers.0.wq", {c.dim, c.dim}},  {"layers.0.wk", {c.dim, 2}},
      {"layers.0.wv", {c.dim, 2}},      {"layers.0.wo", {c.dim, c.dim}},
      {"layers.0.mlp_norm", {c.dim}},   {"layers.0.w_gate", {c.dim, c.hidden}},
      {"layers.0.w_up", {c.dim, c.hidden}}, {"layers.0.w_down", {c.hidden, c.dim}},
      {"final_norm", {c.dim}}};
  std::vector<Tensor> out;
  float start = 0;
  for (const std::string &name : llamaParamNames(c.layers))
    out.push_back(tensor(name, shapes.at(name), start += 1));
  return out;
}

Status writeCheckpoint(const std::string &runDir, const std::vector<Tensor> &tensors) {
  if (Status st = makeDirs(runDir + "/checkpoint"); !st)
    return st;
  std::vector<TensorRef> refs;
  for (const Tensor &t : tensors)
    refs.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  return writeSafetensors(runDir + "/checkpoint/model.safetensors", refs);
}

TEST(PeftExportTest, AdapterFolderAndErrors) {
  std::string dir = test::freshDir();
  LlamaConfig c = tinyConfig();
  LoraExportSpec spec;
  spec.rank = 2, spec.alpha = 4;
  // wv is [4, 2] ([in, out]): A [2, 4], B [2, 2].
  std::vector<Tensor> adapters = {tensor("layers.0.wv.lora_A", {2, 4}, 0.5f),
                                  tensor("layers.0.wv.lora_B", {2, 2}, -1)};
  ASSERT_TRUE(writeCheckpoint(dir + "/run", adapters));
  ASSERT_TRUE(exportPeftAdapter(spec, c, dir + "/run", dir + "/peft"));
  auto file = readSafetensors(dir + "/peft/adapter_model.safetensors");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->metadata.at("format"), "pt");
  ASSERT_EQ(file->tensors.size(), 2u);
  const Tensor *b = file->find("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->bytes, adapters[1].bytes);
  auto configText = readFile(dir + "/peft/adapter_config.json");
  ASSERT_TRUE(configText);
  EXPECT_EQ(nlohmann::json::parse(*configText)["target_modules"], nlohmann::json({"v_proj"}));

  // Wrong rank for the stage, no adapter, no checkpoint.
  spec.rank = 3;
  Status st = exportPeftAdapter(spec, c, dir + "/run", dir + "/peft2");
  EXPECT_NE(st.message().find("adapter of 'layers.0.wv' must be F32 lora_A [3, 4] and lora_B "
                              "[2, 3] (rank 3); got F32 [2, 4] and F32 [2, 2]"),
            std::string::npos)
      << st.message();
  spec.rank = 2;
  ASSERT_TRUE(writeCheckpoint(dir + "/plain", tinyBase(c)));
  st = exportPeftAdapter(spec, c, dir + "/plain", dir + "/peft3");
  EXPECT_NE(st.message().find("holds no LoRA adapter"), std::string::npos) << st.message();
  st = exportPeftAdapter(spec, c, dir + "/missing", dir + "/peft4");
  EXPECT_EQ(st.code(), StatusCode::NotFound) << st.message();
}

} // namespace
} // namespace lrt
