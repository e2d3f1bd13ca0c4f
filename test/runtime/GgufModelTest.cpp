// SPDX-License-Identifier: Apache-2.0
#include "runtime/GgufModel.h"

#include "runtime/FileUtil.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

TEST(GgufModelTest, TensorNamesOfTheStdlibLlama) {
  EXPECT_EQ(lrt::ggufTensorName("embed"), "token_embd.weight");
  EXPECT_EQ(lrt::ggufTensorName("final_norm"), "output_norm.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.0.wq"), "blk.0.attn_q.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.12.wk"), "blk.12.attn_k.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.3.wv"), "blk.3.attn_v.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.3.wo"), "blk.3.attn_output.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.29.attn_norm"), "blk.29.attn_norm.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.29.mlp_norm"), "blk.29.ffn_norm.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.1.w_gate"), "blk.1.ffn_gate.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.1.w_up"), "blk.1.ffn_up.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.1.w_down"), "blk.1.ffn_down.weight");
  EXPECT_EQ(lrt::ggufTensorName("layers.1.lora_a"), "");
  EXPECT_EQ(lrt::ggufTensorName("wte"), "");
}

TEST(GgufModelTest, UnpermuteRopeByHand) {
  // One head of dimension 4, one input column: GGUF row 2i + t holds Hugging Face row
  // t * 2 + i, so GGUF rows [10, 11, 12, 13] are HF rows [0, 2, 1, 3] -> [10, 12, 11, 13].
  EXPECT_EQ(lrt::unpermuteRope({10, 11, 12, 13}, 4, 1, 1),
            (std::vector<float>{10, 12, 11, 13}));
  // Two heads of dimension 4, two input columns (rows are contiguous pairs): each head
  // is un-permuted on its own.
  std::vector<float> w = {0, 1, 10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71};
  EXPECT_EQ(lrt::unpermuteRope(w, 8, 2, 2),
            (std::vector<float>{0, 1, 20, 21, 10, 11, 30, 31, 40, 41, 60, 61, 50, 51, 70, 71}));
}

/// The installed SmolLM2 GGUF (scripts/setup.sh --tests), or "" when absent.
std::string smolLmPath() {
  const char *home = std::getenv("HOME");
  std::string path =
      std::string(home ? home : "") + "/.cache/llmp/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  return fs::exists(path) ? path : "";
}

/// Runs test/runtime/Inputs/gguf-reference.py (gguf-py's dequantization) once into a
/// per-process folder; "" with `why` set when it cannot run here.
std::string referenceDir(const std::string &model, std::string &why) {
  static std::string dir, failure;
  static bool done = false;
  if (!done) {
    done = true;
    const char *src = std::getenv("LLMP_SOURCE_DIR");
    if (!src) {
      failure = "LLMP_SOURCE_DIR is not set (run through ctest)";
      return "";
    }
    dir = (fs::temp_directory_path() / ("llmp-gguf-ref-" + std::to_string(getpid()))).string();
    std::string cmd = std::string(src) + "/scripts/python.sh " + src +
                      "/test/runtime/Inputs/gguf-reference.py '" + model + "' '" + dir + "'";
    int rc = std::system(cmd.c_str());
    if (rc != 0) {
      failure = "gguf-reference.py failed (exit " + std::to_string(rc) +
                "); the Python references need `scripts/setup.sh --tests` (gguf, safetensors)";
      dir.clear();
    }
  }
  why = failure;
  return dir;
}

class GgufReferenceTest : public ::testing::Test {
protected:
  void SetUp() override {
    model = smolLmPath();
    if (model.empty())
      GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not found in ~/.cache/llmp/models "
                      "(scripts/setup.sh --tests installs it); skipping";
    std::string why;
    dir = referenceDir(model, why);
    if (dir.empty())
      GTEST_SKIP() << why << "; skipping";
    auto ref = lrt::readSafetensors(dir + "/reference.safetensors");
    ASSERT_TRUE(ref.isOk()) << ref.status().message();
    reference = ref.take();
  }
  static void TearDownTestSuite() {
    std::string why;
    std::string d = referenceDir("", why);
    if (!d.empty())
      fs::remove_all(d);
  }

  /// Checks that `file`'s tensor `name` dequantizes to reference tensor `key`, bit for bit.
  void expectSameBits(const std::string &file, const std::string &name, const std::string &key) {
    auto mapped = lrt::MappedFile::open(file);
    ASSERT_TRUE(mapped.isOk()) << mapped.status().message();
    auto f = lrt::parseGguf(mapped->bytes(), file);
    ASSERT_TRUE(f.isOk()) << f.status().message();
    const lrt::GgufTensorInfo *t = f->findTensor(name);
    ASSERT_NE(t, nullptr) << name;
    auto got = lrt::readGgufTensor(*f, mapped->bytes(), *t);
    ASSERT_TRUE(got.isOk()) << got.status().message();
    const lrt::Tensor *want = reference.find(key);
    ASSERT_NE(want, nullptr) << key;
    std::vector<float> w = want->as<float>();
    ASSERT_EQ(got->size(), w.size()) << name;
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < w.size(); ++i)
      if (std::memcmp(&(*got)[i], &w[i], 4) != 0 && differ++ == 0)
        first = i;
    EXPECT_EQ(differ, 0u) << name << ": first difference at " << first << ": " << (*got)[first]
                          << " vs " << w[first];
  }

  std::string model, dir;
  lrt::SafetensorsFile reference;
};

// The real file's Q8_0 embedding, Q4_1 matrices (first and last layer) and F32 norm equal
// gguf-py's dequantization exactly (fp32 bits).
TEST_F(GgufReferenceTest, RealTensorsEqualGgufPy) {
  for (const char *name : {"token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                           "blk.0.attn_norm.weight"})
    expectSameBits(model, name, std::string("real.") + name);
}

// Random values quantized by gguf-py to each supported type read back as gguf-py
// dequantizes them.
TEST_F(GgufReferenceTest, EveryTypeEqualsGgufPy) {
  for (const char *type : {"Q4_0", "Q4_1", "Q8_0", "F16", "F32"})
    expectSameBits(dir + "/made.gguf", std::string("made.") + type, std::string("made.") + type);
}

// The flat parameters of the stdlib llama for SmolLM2 (30 layers, dim 576, 9 heads, 3
// key/value heads, hidden 1536, vocab 49152): the embedding as stored, a projection
// transposed from GGUF's [out, in] to [in, out] (value projection: no RoPE permutation).
TEST_F(GgufReferenceTest, FlatParamsOfSmolLm2) {
  auto g = lrt::readGguf(model);
  ASSERT_TRUE(g.isOk()) << g.status().message();
  auto c = lrt::ggufLlamaConfig(*g);
  ASSERT_TRUE(c.isOk()) << c.status().message();
  EXPECT_EQ(c->vocab, 49152);
  EXPECT_EQ(c->dim, 576);
  EXPECT_EQ(c->layers, 30);
  EXPECT_EQ(c->heads, 9);
  EXPECT_EQ(c->kvHeads, 3);
  EXPECT_EQ(c->hidden, 1536);
  EXPECT_EQ(c->contextLength, 8192);
  EXPECT_EQ(c->theta, 100000.0);
  EXPECT_FLOAT_EQ(float(c->eps), 1e-5f);
  EXPECT_TRUE(c->tiedOutput);

  // Only layer 0's value projection and the embedding, at made-up offsets.
  std::vector<lrt::ParamInfo> params(2);
  params[0].name = "embed";
  params[0].shape = {49152, 576};
  params[0].numel = 49152 * 576;
  params[1].name = "layers.0.wv";
  params[1].shape = {576, 192};
  params[1].numel = 576 * 192;
  params[1].offset = params[0].numel;
  auto flat = lrt::readGgufParams(params, params[0].numel + params[1].numel, model);
  ASSERT_TRUE(flat.isOk()) << flat.status().message();
  std::vector<float> embed = reference.find("real.token_embd.weight")->as<float>();
  EXPECT_EQ(std::memcmp(flat->data(), embed.data(), embed.size() * 4), 0);
  // GGUF attn_v rows are outputs: wv[i, o] = v[o * 576 + i].
  auto mapped = lrt::MappedFile::open(model);
  ASSERT_TRUE(mapped.isOk());
  auto v = lrt::readGgufTensor(*g, mapped->bytes(), *g->findTensor("blk.0.attn_v.weight"));
  ASSERT_TRUE(v.isOk());
  const float *wv = flat->data() + params[1].offset;
  for (int64_t i : {0, 1, 300, 575})
    for (int64_t o : {0, 7, 191})
      EXPECT_EQ(wv[i * 192 + o], (*v)[o * 576 + i]) << i << "," << o;

  // A shape that does not fit the file's tensor is an error naming both.
  params[1].shape = {576, 576};
  params[1].numel = 576 * 576;
  auto bad = lrt::readGgufParams(params, params[0].numel + params[1].numel, model);
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find(
                "parameter 'layers.0.wv' of shape [576, 576] does not fit GGUF tensor "
                "'blk.0.attn_v.weight' of shape [576, 192]"),
            std::string::npos)
      << bad.status().message();
}

} // namespace
