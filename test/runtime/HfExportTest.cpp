// SPDX-License-Identifier: Apache-2.0
/// Tests for runtime/HfExport: the llmp <-> Hugging Face tensor names and transposes,
/// config.json, the tokenizer.json that must give SentencePiece's ids, and the folder round
/// trip. test/e2e/hf_interop.py checks the same files against `transformers` itself.
#include "runtime/HfExport.h"

#include "runtime/Tokenizer.h"
#include "test/runtime/TestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace lrt {
namespace {

/// A tensor of `shape` whose elements are distinct floats from `seed`.
Tensor makeTensor(const std::string &name, std::vector<int64_t> shape, uint64_t seed) {
  Tensor t;
  t.name = name;
  t.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t d : t.shape)
    n *= d;
  std::vector<float> v(n);
  std::mt19937_64 rng(seed);
  for (float &x : v)
    x = float(int64_t(rng() % 2000001) - 1000000) * 1e-6f;
  t.bytes.resize(n * sizeof(float));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

float at(const Tensor &t, int64_t r, int64_t c) {
  float x;
  std::memcpy(&x, t.bytes.data() + (r * t.shape[1] + c) * sizeof(float), sizeof(float));
  return x;
}

/// Grouped-query (kvHeads 1 of 2 heads) so wk/wv are not square.
LlamaConfig smallConfig() {
  LlamaConfig c;
  c.vocab = 11, c.dim = 4, c.layers = 2, c.heads = 2, c.kvHeads = 1, c.hidden = 6;
  c.context = 16, c.eps = 1e-5, c.theta = 10000.0;
  return c;
}

/// Every parameter of `c` with llmp names and shapes, in flat-buffer order.
std::vector<Tensor> llmpTensors(const LlamaConfig &c) {
  std::map<std::string, std::vector<int64_t>> shape = {
      {"attn_norm", {c.dim}},        {"wq", {c.dim, c.dim}},
      {"wk", {c.dim, c.dim / c.heads * c.kvHeads}}, {"wv", {c.dim, c.dim / c.heads * c.kvHeads}},
      {"wo", {c.dim, c.dim}},        {"mlp_norm", {c.dim}},
      {"w_gate", {c.dim, c.hidden}}, {"w_up", {c.dim, c.hidden}},
      {"w_down", {c.hidden, c.dim}}};
  std::vector<Tensor> out;
  uint64_t seed = 1;
  for (const std::string &name : llamaParamNames(c.layers)) {
    std::vector<int64_t> s;
    if (name == "embed")
      s = {c.vocab, c.dim};
    else if (name == "final_norm")
      s = {c.dim};
    else
      s = shape.at(name.substr(name.rfind('.') + 1));
    out.push_back(makeTensor(name, s, seed++));
  }
  return out;
}

// Tests that every llama parameter has an HF name, that the linear layers (and only they)
// are transposed, and that the inverse mapping gives the llmp name back.
TEST(HfExportTest, NameMapping) {
  std::map<std::string, std::pair<std::string, bool>> expected = {
      {"embed", {"model.embed_tokens.weight", false}},
      {"final_norm", {"model.norm.weight", false}},
      {"layers.0.attn_norm", {"model.layers.0.input_layernorm.weight", false}},
      {"layers.0.wq", {"model.layers.0.self_attn.q_proj.weight", true}},
      {"layers.0.wk", {"model.layers.0.self_attn.k_proj.weight", true}},
      {"layers.0.wv", {"model.layers.0.self_attn.v_proj.weight", true}},
      {"layers.0.wo", {"model.layers.0.self_attn.o_proj.weight", true}},
      {"layers.1.mlp_norm", {"model.layers.1.post_attention_layernorm.weight", false}},
      {"layers.1.w_gate", {"model.layers.1.mlp.gate_proj.weight", true}},
      {"layers.1.w_up", {"model.layers.1.mlp.up_proj.weight", true}},
      {"layers.12.w_down", {"model.layers.12.mlp.down_proj.weight", true}},
  };
  for (const auto &[llmp, hf] : expected) {
    auto name = hfNameOf(llmp);
    ASSERT_TRUE(name) << name.status().message();
    EXPECT_EQ(name->name, hf.first);
    EXPECT_EQ(name->transposed, hf.second) << llmp;
    auto back = llmpNameOf(hf.first);
    ASSERT_TRUE(back) << back.status().message();
    EXPECT_EQ(back->name, llmp);
    EXPECT_EQ(back->transposed, hf.second);
  }
  EXPECT_EQ(llamaParamNames(2).size(), 2u + 2 * 9);
  for (const char *bad : {"layers.0.bias", "layers.x.wq", "layers..wq", "head", "layers.0"})
    EXPECT_FALSE(hfNameOf(bad)) << bad;
  auto lmHead = llmpNameOf("lm_head.weight");
  ASSERT_FALSE(lmHead);
  EXPECT_NE(lmHead.status().message().find("untied"), std::string::npos);
  EXPECT_FALSE(llmpNameOf("model.layers.0.self_attn.q_proj.bias"));
}

// Tests the transpose: element (r, c) moves to (c, r), twice is the identity bit for bit.
TEST(HfExportTest, Transpose) {
  Tensor t = makeTensor("w", {3, 5}, 7);
  auto tt = transposed(t);
  ASSERT_TRUE(tt);
  EXPECT_EQ(tt->shape, (std::vector<int64_t>{5, 3}));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 5; ++c)
      EXPECT_EQ(at(*tt, c, r), at(t, r, c));
  auto back = transposed(*tt);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->bytes, t.bytes);
  EXPECT_FALSE(transposed(makeTensor("v", {4}, 1)));
  Tensor bad = t;
  bad.bytes.pop_back();
  EXPECT_FALSE(transposed(bad));
}

// Tests that llmp -> HF renames and transposes each tensor to HF's [out, in], and that
// HF -> llmp restores every tensor bit for bit, in flat-buffer order.
TEST(HfExportTest, TensorsRoundTrip) {
  LlamaConfig c = smallConfig();
  std::vector<Tensor> llmp = llmpTensors(c);
  auto hf = toHfTensors(llmp, c);
  ASSERT_TRUE(hf) << hf.status().message();
  ASSERT_EQ(hf->size(), llmp.size());
  std::map<std::string, const Tensor *> byName;
  for (const Tensor &t : *hf)
    byName[t.name] = &t;
  const Tensor *k = byName.at("model.layers.1.self_attn.k_proj.weight");
  const Tensor &wk = llmp[1 + 9 + 2]; // layers.1.wk
  ASSERT_EQ(wk.name, "layers.1.wk");
  EXPECT_EQ(k->shape, (std::vector<int64_t>{2, 4})); // [kv_heads * head_dim, dim]
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t o = 0; o < 2; ++o)
      EXPECT_EQ(at(*k, o, i), at(wk, i, o));
  EXPECT_EQ(byName.at("model.layers.0.mlp.down_proj.weight")->shape,
            (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(byName.at("model.embed_tokens.weight")->bytes, llmp[0].bytes);

  // Reverse the HF order to check the import puts tensors back in llmp order.
  std::vector<Tensor> shuffled(hf->rbegin(), hf->rend());
  auto back = fromHfTensors(shuffled, c);
  ASSERT_TRUE(back) << back.status().message();
  ASSERT_EQ(back->size(), llmp.size());
  for (size_t i = 0; i < llmp.size(); ++i) {
    EXPECT_EQ((*back)[i].name, llmp[i].name);
    EXPECT_EQ((*back)[i].shape, llmp[i].shape);
    EXPECT_EQ((*back)[i].bytes, llmp[i].bytes) << llmp[i].name;
  }
}

// Tests the errors: a missing, extra, duplicated, misshapen or non-F32 tensor.
TEST(HfExportTest, TensorErrors) {
  LlamaConfig c = smallConfig();
  auto expectError = [&](std::vector<Tensor> ts, const std::string &words) {
    auto r = toHfTensors(ts, c);
    ASSERT_FALSE(r);
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  std::vector<Tensor> ts = llmpTensors(c);
  ts.pop_back();
  expectError(ts, "'final_norm' is missing");
  ts = llmpTensors(c);
  ts.push_back(makeTensor("layers.2.wq", {4, 4}, 1));
  expectError(ts, "not a parameter of a llama model with 2 layers");
  ts = llmpTensors(c);
  ts.push_back(ts[0]);
  expectError(ts, "appears twice");
  ts = llmpTensors(c);
  ts[1 + 2] = makeTensor("layers.0.wk", {4, 4}, 1);
  expectError(ts, "'layers.0.wk' has shape [4, 4], expected [4, 2]");
  ts = llmpTensors(c);
  ts[1].dtype = DType::I32;
  expectError(ts, "only F32");
  auto hf = toHfTensors(llmpTensors(c), c);
  ASSERT_TRUE(hf);
  hf->pop_back();
  auto missing = fromHfTensors(*hf, c);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("'model.norm.weight' is missing"), std::string::npos);
}

// Tests that config.json carries every field transformers' LlamaConfig needs, reads back to
// the same config, and that architectures llmp cannot represent are refused by name.
TEST(HfExportTest, ConfigJson) {
  LlamaConfig c = smallConfig();
  std::string text = hfConfigJson(c);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["hidden_size"], 4);
  EXPECT_EQ(j["intermediate_size"], 6);
  EXPECT_EQ(j["num_attention_heads"], 2);
  EXPECT_EQ(j["num_key_value_heads"], 1);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["hidden_act"], "silu");
  EXPECT_EQ(j["torch_dtype"], "float32");
  EXPECT_TRUE(j["bos_token_id"].is_null());
  auto back = parseHfConfigJson(text);
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->vocab, c.vocab);
  EXPECT_EQ(back->dim, c.dim);
  EXPECT_EQ(back->layers, c.layers);
  EXPECT_EQ(back->heads, c.heads);
  EXPECT_EQ(back->kvHeads, c.kvHeads);
  EXPECT_EQ(back->hidden, c.hidden);
  EXPECT_EQ(back->context, c.context);
  EXPECT_EQ(back->eps, c.eps);
  EXPECT_EQ(back->theta, c.theta);

  auto expectRefused = [&](const char *field, nlohmann::json value, const std::string &words) {
    auto k = j;
    if (value.is_discarded())
      k.erase(field);
    else
      k[field] = value;
    auto r = parseHfConfigJson(k.dump());
    ASSERT_FALSE(r) << field;
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  expectRefused("model_type", "mistral", "model_type is 'mistral'");
  expectRefused("tie_word_embeddings", false, "tie_word_embeddings");
  expectRefused("tie_word_embeddings", nlohmann::json::value_t::discarded, "tie_word_embeddings");
  expectRefused("num_key_value_heads", 3, "does not divide");
  expectRefused("hidden_act", "gelu", "hidden_act");
  expectRefused("attention_bias", true, "no biases");
  expectRefused("rope_scaling", {{"rope_type", "linear"}}, "rope_scaling");
  expectRefused("head_dim", 4, "head_dim");
  expectRefused("hidden_size", nullptr, "no 'hidden_size'");
  EXPECT_FALSE(parseHfConfigJson("{not json"));
}

// Tests the model arguments of a .llmp declaration -> config (kv_heads defaults to heads).
TEST(HfExportTest, ConfigFromArgs) {
  std::map<std::string, double> args = {{"vocab", 512}, {"dim", 32},    {"layers", 2},
                                        {"heads", 2},   {"context", 32}, {"hidden", 48},
                                        {"eps", 1e-5},  {"theta", 5e5}};
  auto c = llamaConfigFromArgs("llama", args);
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->kvHeads, 2);
  EXPECT_EQ(c->hidden, 48);
  EXPECT_EQ(c->theta, 5e5);
  auto other = llamaConfigFromArgs("gpt", args);
  ASSERT_FALSE(other);
  EXPECT_NE(other.status().message().find("'gpt'"), std::string::npos);
  args["heads"] = 3;
  EXPECT_FALSE(llamaConfigFromArgs("llama", args));
  args.erase("heads");
  EXPECT_FALSE(llamaConfigFromArgs("llama", args));
}

/// Hugging Face's BPE on one "word" (the whole normalised text, as there is no
/// pre-tokenizer): start from characters, merge the adjacent pair of lowest rank (leftmost
/// on ties) until none applies, then look pieces up, bytes for characters not in the
/// vocabulary (byte_fallback). A second, independent statement of what tokenizers does.
std::vector<int32_t> hfBpe(const nlohmann::json &model, std::string text) {
  std::string out;
  for (char ch : text)
    out += ch == ' ' ? std::string("\xE2\x96\x81") : std::string(1, ch);
  std::map<std::pair<std::string, std::string>, size_t> rank;
  const auto &merges = model["merges"];
  for (size_t i = 0; i < merges.size(); ++i)
    rank.emplace(std::make_pair(merges[i][0].get<std::string>(), merges[i][1].get<std::string>()), i);
  std::vector<std::string> syms;
  for (size_t i = 0; i < out.size();) {
    size_t len = 1;
    unsigned char b = out[i];
    if (b >= 0xF0) len = 4; else if (b >= 0xE0) len = 3; else if (b >= 0xC0) len = 2;
    syms.push_back(out.substr(i, len));
    i += len;
  }
  for (;;) {
    size_t best = SIZE_MAX, at = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = rank.find({syms[i], syms[i + 1]});
      if (it != rank.end() && it->second < best)
        best = it->second, at = i;
    }
    if (best == SIZE_MAX)
      break;
    syms[at] += syms[at + 1];
    syms.erase(syms.begin() + at + 1);
  }
  std::vector<int32_t> ids;
  const auto &vocab = model["vocab"];
  for (const std::string &s : syms) {
    if (vocab.contains(s)) {
      ids.push_back(vocab[s].get<int32_t>());
      continue;
    }
    for (unsigned char b : s) {
      char piece[8];
      std::snprintf(piece, sizeof piece, "<0x%02X>", b);
      ids.push_back(vocab.at(piece).get<int32_t>());
    }
  }
  return ids;
}

// Tests that the tokenizer.json has SentencePiece's vocabulary and settings, and that BPE
// with its merges gives SentencePiece's ids on every line of a text (and on odd input:
// spaces, a tab, a newline, characters outside the vocabulary).
TEST(HfExportTest, TokenizerJsonGivesSentencePieceIds) {
  TokenizerTrainOptions opts;
  opts.vocabSize = 600;
  auto tok = Tokenizer::train(test::englishText(400), opts);
  ASSERT_TRUE(tok) << tok.status().message();
  auto text = hfTokenizerJson(*tok);
  ASSERT_TRUE(text) << text.status().message();
  auto j = nlohmann::json::parse(*text);
  const auto &model = j["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_EQ(model["byte_fallback"], true);
  EXPECT_EQ(model["vocab"].size(), 600u);
  EXPECT_EQ(model["vocab"]["<unk>"], 0);
  EXPECT_EQ(model["vocab"]["<0x0A>"].get<int>(), 1 + 0x0A);
  EXPECT_GT(model["merges"].size(), 250u);
  EXPECT_TRUE(j["pre_tokenizer"].is_null());
  EXPECT_TRUE(j["post_processor"].is_null()); // no BOS/EOS added
  for (const auto &m : model["merges"])
    EXPECT_TRUE(model["vocab"].contains(m[0].get<std::string>() + m[1].get<std::string>()));

  std::string lines = test::englishText(60);
  size_t pos = 0, checked = 0;
  while (pos < lines.size()) {
    size_t end = lines.find('\n', pos);
    std::string line = lines.substr(pos, end - pos);
    pos = end + 1;
    EXPECT_EQ(hfBpe(model, line), tok->encode(line)) << line;
    ++checked;
  }
  EXPECT_EQ(checked, 60u);
  for (std::string odd : {"  two  spaces ", "tab\there", "line\nbreak", "\xE2\x82\xAC 5 \xF0\x9F\x98\x80",
                          "<unk> and <0x41>", ""})
    EXPECT_EQ(hfBpe(model, odd), tok->encode(odd)) << odd;
}

/// Writes `c`'s tensors and a tokenizer of `tokVocab` pieces as a run directory's
/// checkpoint/; returns the tensors.
std::vector<Tensor> writeRun(const std::string &run, const LlamaConfig &c, int64_t tokVocab) {
  std::vector<Tensor> llmp = llmpTensors(c);
  std::vector<TensorRef> refs;
  for (const Tensor &t : llmp)
    refs.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  std::filesystem::create_directories(run + "/checkpoint");
  EXPECT_TRUE(writeSafetensors(run + "/checkpoint/model.safetensors", refs, {{"step", "3"}}));
  TokenizerTrainOptions opts;
  opts.vocabSize = tokVocab;
  auto tok = Tokenizer::train(test::englishText(300), opts);
  if (!tok) {
    ADD_FAILURE() << tok.status().message();
    return llmp;
  }
  EXPECT_TRUE(tok->save(run + "/checkpoint/tokenizer.model"));
  return llmp;
}

// Tests export -> import of whole folders: the HF folder's files, and llmp weights that
// come back bit for bit with the tokenizer.
TEST(HfExportTest, FolderRoundTrip) {
  std::string dir = test::freshDir();
  LlamaConfig c = smallConfig();
  c.vocab = 400;
  std::vector<Tensor> llmp = writeRun(dir + "/run", c, c.vocab);
  Status st = exportHuggingFace(c, dir + "/run", dir + "/hf");
  ASSERT_TRUE(st) << st.message();
  for (const char *f : {"config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "tokenizer.model"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/hf/" + f)) << f;
  auto hf = readSafetensors(dir + "/hf/model.safetensors");
  ASSERT_TRUE(hf);
  EXPECT_TRUE(hf->find("model.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(hf->find("lm_head.weight")); // tied
  auto tokConfig = nlohmann::json::parse(std::ifstream(dir + "/hf/tokenizer_config.json"));
  EXPECT_EQ(tokConfig["tokenizer_class"], "PreTrainedTokenizerFast");

  st = importHuggingFace(dir + "/hf", dir + "/back");
  ASSERT_TRUE(st) << st.message();
  auto back = readSafetensors(dir + "/back/checkpoint/model.safetensors");
  ASSERT_TRUE(back);
  ASSERT_EQ(back->tensors.size(), llmp.size());
  for (size_t i = 0; i < llmp.size(); ++i) {
    EXPECT_EQ(back->tensors[i].name, llmp[i].name);
    EXPECT_EQ(back->tensors[i].bytes, llmp[i].bytes) << llmp[i].name;
  }
  EXPECT_EQ(back->metadata.at("source"), "huggingface");
  EXPECT_EQ(back->metadata.at("kv_heads"), "1");
  auto tok = Tokenizer::load(dir + "/back/checkpoint/tokenizer.model");
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocabSize(), 400);
  EXPECT_TRUE(std::filesystem::exists(dir + "/back/tokenizer.model"));

  // A tokenizer of another size than the model's vocabulary is refused on export.
  LlamaConfig wrong = c;
  wrong.vocab = 11;
  writeRun(dir + "/small", wrong, c.vocab);
  st = exportHuggingFace(wrong, dir + "/small", dir + "/hf2");
  ASSERT_FALSE(st);
  EXPECT_NE(st.message().find("400 pieces"), std::string::npos) << st.message();
  // No checkpoint: NotFound.
  EXPECT_EQ(exportHuggingFace(c, dir + "/none", dir + "/hf3").code(), StatusCode::NotFound);
}

} // namespace
} // namespace lrt
