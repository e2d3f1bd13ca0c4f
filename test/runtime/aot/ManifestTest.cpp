// SPDX-License-Identifier: Apache-2.0
/// The trainer manifest (runtime/aot/Manifest.h) carries a StagePlan exactly (through
/// runtime/PlanJson.h, the plan.json serializer) and an sft stage's StageExtras (sampler
/// cache shape, merged layout, PEFT settings): every field, doubles and floats to the bit,
/// through JSON and back; malformed manifests are errors.
#include "runtime/aot/Manifest.h"

#include <gtest/gtest.h>

#include <cstring>

namespace {

/// A plan with every field set to a value other than its default; the numbers are chosen
/// to need all their bits (0.1 and 3e-4 have no short binary form; 1/3 as a float).
lrt::AotManifest fullManifest() {
  lrt::AotManifest m;
  lrt::StagePlan &p = m.plan;
  p.pipeline = "main", p.stage = "tune", p.model = "tiny", p.kind = "sft", p.precision = "bf16";
  lrt::ParamInfo a;
  a.name = "layers.0.wq", a.shape = {4, 6}, a.offset = 0, a.numel = 24;
  a.init = lrt::InitKind::KaimingUniform, a.mean = 1.0f / 3.0f, a.std = 0.02f, a.decay = true;
  lrt::ParamInfo b;
  b.name = "embed", b.shape = {10, 4}, b.numel = 40, b.frozen = true, b.byteOffset = 128;
  b.storage = lrt::Storage::NF4, b.byteSize = 33, b.init = lrt::InitKind::Ones;
  p.params = {a, b};
  p.numParams = 24, p.frozenBytes = 192;
  p.lora = {true, 16, 16.0, true, 4.0, 0.05, {"layers.0.wq"}};
  p.nf4 = {true, 64, false};
  p.vocab = 10, p.context = 8, p.dim = 4, p.layers = 1, p.batch = 2, p.seqLen = 8;
  p.accumulate = 3, p.ranks = 2, p.steps = 17, p.evalEvery = 5, p.evalBatches = 4;
  p.warmup = 2, p.lr = 3e-4, p.minLr = 0.1 * 3e-4, p.beta1 = 0.9, p.beta2 = 0.999;
  p.eps = 1e-8, p.weightDecay = 0.1, p.gradClip = 0.7, p.seed = 18446744073709551557ull;
  p.packing = true;
  p.data = {"faq", "/data/faq.jsonl", "qa", 0.9, {{"question", "q"}}, true, true};
  p.tokenizer = {"tok", "from_gguf", 49152, "/models/smol.gguf"};
  m.source = "examples/finetune.llmp", m.runDir = "runs/main/tune", m.steps = 9;
  m.stepHeapPeakBytes = 123456789;
  lrt::SftSource &sft = m.extras.sft;
  sft.weightsPath = "/models/smol.gguf", sft.tokenizerPath = "/models/tok.gguf";
  sft.cache = {2, 1, 3, 8, 5, 7};
  lrt::ParamInfo merged = a;
  merged.name = "layers.0.wo", merged.offset = 40, merged.std = 0.1f;
  sft.mergedParams = {b, merged};
  sft.mergedNumParams = 64;
  m.sampler = true;
  m.extras.peft = lrt::LoraExportSpec{16, 1.0 / 3.0, true, 0.05, "/models/smol.gguf"};
  m.extras.llama = {10, 4, 1, 2, 12, 8, 1, 1e-6 / 3.0, 1e4 / 3.0};
  return m;
}

bool sameBits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }

/// Every field of `x` equals `y`'s (floats bit for bit).
void expectSameParam(const lrt::ParamInfo &x, const lrt::ParamInfo &y) {
  EXPECT_EQ(x.name, y.name);
  EXPECT_EQ(x.shape, y.shape);
  EXPECT_EQ(x.offset, y.offset);
  EXPECT_EQ(x.numel, y.numel);
  EXPECT_EQ(x.init, y.init);
  EXPECT_TRUE(sameBits(x.mean, y.mean) && sameBits(x.std, y.std));
  EXPECT_EQ(x.decay, y.decay);
  EXPECT_EQ(x.frozen, y.frozen);
  EXPECT_EQ(x.byteOffset, y.byteOffset);
  EXPECT_EQ(x.storage, y.storage);
  EXPECT_EQ(x.byteSize, y.byteSize);
}

// Tests that every field reads back as written (doubles bit for bit) and that writing the
// read manifest gives the same text.
TEST(ManifestTest, RoundTripsEveryField) {
  lrt::AotManifest m = fullManifest();
  std::string text = lrt::writeAotManifest(m);
  auto read = lrt::readAotManifest(text);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  const lrt::StagePlan &p = read->plan, &q = m.plan;
  EXPECT_EQ(p.pipeline, q.pipeline);
  EXPECT_EQ(p.stage, q.stage);
  EXPECT_EQ(p.model, q.model);
  EXPECT_EQ(p.kind, q.kind);
  EXPECT_EQ(p.precision, "bf16");
  ASSERT_EQ(p.params.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    expectSameParam(p.params[i], q.params[i]);
  EXPECT_EQ(p.numParams, q.numParams);
  EXPECT_EQ(p.frozenBytes, q.frozenBytes);
  EXPECT_EQ(p.lora.enabled, q.lora.enabled);
  EXPECT_EQ(p.lora.rank, q.lora.rank);
  EXPECT_TRUE(sameBits(p.lora.alpha, q.lora.alpha) && sameBits(p.lora.scale, q.lora.scale) &&
              sameBits(p.lora.dropout, q.lora.dropout));
  EXPECT_EQ(p.lora.rslora, q.lora.rslora);
  EXPECT_EQ(p.lora.targets, q.lora.targets);
  EXPECT_EQ(p.nf4.enabled, q.nf4.enabled);
  EXPECT_EQ(p.nf4.block, q.nf4.block);
  EXPECT_EQ(p.nf4.doubleQuant, q.nf4.doubleQuant);
  EXPECT_EQ(p.vocab, q.vocab);
  EXPECT_EQ(p.context, q.context);
  EXPECT_EQ(p.dim, q.dim);
  EXPECT_EQ(p.layers, q.layers);
  EXPECT_EQ(p.batch, q.batch);
  EXPECT_EQ(p.seqLen, q.seqLen);
  EXPECT_EQ(p.accumulate, q.accumulate);
  EXPECT_EQ(p.ranks, q.ranks);
  EXPECT_EQ(p.steps, q.steps);
  EXPECT_EQ(p.evalEvery, q.evalEvery);
  EXPECT_EQ(p.evalBatches, q.evalBatches);
  EXPECT_EQ(p.warmup, q.warmup);
  for (auto [x, y] : {std::pair{p.lr, q.lr}, {p.minLr, q.minLr}, {p.beta1, q.beta1},
                      {p.beta2, q.beta2}, {p.eps, q.eps}, {p.weightDecay, q.weightDecay},
                      {p.gradClip, q.gradClip}, {p.data.split, q.data.split}})
    EXPECT_TRUE(sameBits(x, y)) << x << " vs " << y;
  EXPECT_EQ(p.seed, q.seed);
  EXPECT_EQ(p.packing, q.packing);
  EXPECT_EQ(p.data.name, q.data.name);
  EXPECT_EQ(p.data.path, q.data.path);
  EXPECT_EQ(p.data.format, q.data.format);
  EXPECT_EQ(p.data.keys, q.data.keys);
  EXPECT_EQ(p.data.trainOnAll, q.data.trainOnAll);
  EXPECT_EQ(p.data.correctOnly, q.data.correctOnly);
  EXPECT_EQ(p.tokenizer.name, q.tokenizer.name);
  EXPECT_EQ(p.tokenizer.kind, q.tokenizer.kind);
  EXPECT_EQ(p.tokenizer.vocabSize, q.tokenizer.vocabSize);
  EXPECT_EQ(p.tokenizer.path, q.tokenizer.path);
  EXPECT_EQ(read->source, m.source);
  EXPECT_EQ(read->runDir, m.runDir);
  EXPECT_EQ(read->steps, m.steps);
  EXPECT_EQ(read->stepHeapPeakBytes, m.stepHeapPeakBytes);
  EXPECT_EQ(lrt::writeAotManifest(*read), text);
}

// Tests that an sft stage's extras read back as written: paths, the sampler's KV cache
// shape and merged layout, the PEFT settings and llama config (doubles bit for bit); and
// that a pretrain manifest has none (sft and peft are null).
TEST(ManifestTest, RoundTripsSftExtras) {
  lrt::AotManifest m = fullManifest();
  auto read = lrt::readAotManifest(lrt::writeAotManifest(m));
  ASSERT_TRUE(read.isOk()) << read.status().message();
  const lrt::SftSource &x = read->extras.sft, &y = m.extras.sft;
  EXPECT_EQ(x.weightsPath, y.weightsPath);
  EXPECT_EQ(x.tokenizerPath, y.tokenizerPath);
  EXPECT_TRUE(read->sampler);
  EXPECT_TRUE(x.prefillStep == nullptr && x.decodeStep == nullptr); // bound at run time
  EXPECT_EQ(x.cache.layers, 2);
  EXPECT_EQ(x.cache.batch, 1);
  EXPECT_EQ(x.cache.kvHeads, 3);
  EXPECT_EQ(x.cache.context, 8);
  EXPECT_EQ(x.cache.headDim, 5);
  EXPECT_EQ(x.cache.prefillLen, 7);
  EXPECT_EQ(x.mergedNumParams, 64);
  ASSERT_EQ(x.mergedParams.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    expectSameParam(x.mergedParams[i], y.mergedParams[i]);
  ASSERT_TRUE(read->extras.peft.has_value());
  const lrt::LoraExportSpec &p = *read->extras.peft, &q = *m.extras.peft;
  EXPECT_EQ(p.rank, q.rank);
  EXPECT_TRUE(sameBits(p.alpha, q.alpha) && sameBits(p.dropout, q.dropout));
  EXPECT_EQ(p.rslora, q.rslora);
  EXPECT_EQ(p.baseModel, q.baseModel);
  const lrt::LlamaConfig &c = read->extras.llama, &d = m.extras.llama;
  EXPECT_EQ(std::vector<int64_t>({c.vocab, c.dim, c.layers, c.heads, c.hidden, c.context,
                                  c.kvHeads}),
            std::vector<int64_t>({d.vocab, d.dim, d.layers, d.heads, d.hidden, d.context,
                                  d.kvHeads}));
  EXPECT_TRUE(sameBits(c.eps, d.eps) && sameBits(c.theta, d.theta));

  lrt::AotManifest pretrain;
  pretrain.plan.kind = "pretrain";
  std::string text = lrt::writeAotManifest(pretrain);
  EXPECT_NE(text.find("\"sft\": null"), std::string::npos) << text;
  EXPECT_NE(text.find("\"peft\": null"), std::string::npos) << text;
  auto back = lrt::readAotManifest(text);
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_FALSE(back->sampler);
  EXPECT_FALSE(back->extras.peft.has_value());
  EXPECT_TRUE(back->extras.sft.weightsPath.empty());
}

// Tests that malformed JSON, a missing field and another version are InvalidArgument
// errors that say what is wrong.
TEST(ManifestTest, RejectsMalformedManifests) {
  auto broken = lrt::readAotManifest("{\"version\": 3,");
  ASSERT_FALSE(broken.isOk());
  EXPECT_EQ(broken.status().code(), lrt::StatusCode::InvalidArgument);
  EXPECT_NE(broken.status().message().find("malformed trainer manifest"), std::string::npos);

  std::string text = lrt::writeAotManifest(fullManifest());
  std::string noSeed = text;
  size_t at = noSeed.find("\"seed\"");
  ASSERT_NE(at, std::string::npos);
  noSeed.replace(at, 6, "\"sead\"");
  auto missing = lrt::readAotManifest(noSeed);
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("seed"), std::string::npos)
      << missing.status().message();

  std::string v2 = text;
  at = v2.find("\"version\": 3");
  ASSERT_NE(at, std::string::npos);
  v2.replace(at, 12, "\"version\": 2");
  auto other = lrt::readAotManifest(v2);
  ASSERT_FALSE(other.isOk());
  EXPECT_EQ(other.status().message(), "trainer manifest version 2, expected 3");

  // A merged parameter without its name: the error names the field.
  std::string noName = text;
  at = noName.find("\"name\": \"layers.0.wo\"");
  ASSERT_NE(at, std::string::npos) << text;
  noName.replace(at, 6, "\"nome\"");
  auto unnamed = lrt::readAotManifest(noName);
  ASSERT_FALSE(unnamed.isOk());
  EXPECT_NE(unnamed.status().message().find("merged_params"), std::string::npos)
      << unnamed.status().message();
}

} // namespace
