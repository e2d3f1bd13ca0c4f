// SPDX-License-Identifier: Apache-2.0
/// The C++ embedding API: the pipeline of examples/pretrain.llmp built in code gives the
/// same llmp module (modulo locations) and the same runtime StagePlan as the file, and
/// diagnostics point at the C++ call that made the offending declaration.
#include "examples/embed/pretrain_embedded.h"
#include "runtime/Plan.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

namespace {

std::string sourceDir() {
  const char *dir = std::getenv("LLMP_SOURCE_DIR");
  return dir ? dir : ".";
}

/// Every field of a StagePlan, one per line, for a readable comparison.
std::string dump(const lrt::StagePlan &p) {
  std::ostringstream s;
  s << p.pipeline << "|" << p.stage << "|" << p.model << "|" << p.numParams << "|" << p.vocab
    << "|" << p.context << "|" << p.dim << "|" << p.layers << "|" << p.batch << "|" << p.seqLen
    << "|" << p.steps << "|" << p.evalEvery << "|" << p.evalBatches << "|" << p.warmup << "|"
    << p.lr << "|" << p.minLr << "|" << p.beta1 << "|" << p.beta2 << "|" << p.eps << "|"
    << p.weightDecay << "|" << p.gradClip << "|" << p.seed << "\n"
    << p.data.name << "|" << p.data.path << "|" << p.data.format << "|" << p.data.split << "\n"
    << p.tokenizer.name << "|" << p.tokenizer.kind << "|" << p.tokenizer.vocabSize << "\n";
  for (const lrt::ParamInfo &q : p.params) {
    s << q.name << "|" << q.offset << "|" << q.numel << "|" << int(q.init) << "|" << q.mean
      << "|" << q.std << "|" << q.decay << "|";
    for (int64_t d : q.shape)
      s << d << ",";
    s << "\n";
  }
  return s.str();
}

TEST(Embed, SameModuleAndPlanAsTheFile) {
  llmp::Program program("pretrain_embedded");
  declarePretrain(program);
  std::vector<std::string> errors;
  auto onDiag = [&](const llmp::Diagnostic &d) { errors.push_back(d.str()); };
  auto embedded = program.check(onDiag);
  ASSERT_TRUE(embedded) << (errors.empty() ? "" : errors.front()) << program.source();
  auto textual = llmp::Checked::fromFile(sourceDir() + "/examples/pretrain.llmp", onDiag);
  ASSERT_TRUE(textual) << (errors.empty() ? "" : errors.front());
  ASSERT_EQ(embedded->stages(), textual->stages());

  std::string a = embedded->emit("pretrain"), b = textual->emit("pretrain");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  // With locations the two differ only in the main file's name and positions: ops of the
  // stdlib model keep their llama.llmp locations in both.
  std::string la = embedded->emit("pretrain", true);
  EXPECT_NE(la.find("llama.llmp"), std::string::npos);
  EXPECT_NE(la.find("pretrain_embedded.llmp"), std::string::npos);

  lrt::StagePlan pa, pb;
  ASSERT_TRUE(embedded->stagePlan("pretrain", pa));
  ASSERT_TRUE(textual->stagePlan("pretrain", pb));
  EXPECT_EQ(dump(pa), dump(pb));
  EXPECT_GT(pa.params.size(), 0u);
  EXPECT_TRUE(errors.empty());
}

TEST(Embed, SourceIsOneLinePerDeclarationAndField) {
  llmp::Program program("p");
  declarePretrain(program);
  std::string src = program.source();
  EXPECT_NE(src.find("model tiny = llama(vocab: tok.vocab, dim: 128, layers: 4, heads: 4, "
                     "context: 128)\n"),
            std::string::npos)
      << src;
  EXPECT_NE(src.find("  batch: 16 x 128\n"), std::string::npos) << src;
  EXPECT_NE(src.find("  optimizer: adamw(lr: 0.003, betas: (0.9, 0.95), weight_decay: 0.1, "
                     "eps: 1e-08)\n"),
            std::string::npos)
      << src;
  EXPECT_NE(src.find("dataset corpus = text(\"/usr/share/bibledit/sources/kjv.xml\", "
                     "format: osis, split: 0.95)\n"),
            std::string::npos)
      << src;
  EXPECT_NE(src.find("pipeline main = pretrain\n"), std::string::npos) << src;
}

TEST(Embed, DiagnosticsPointAtTheCppCall) {
  using namespace llmp;
  Program p("bad");
  p.import("std.models.llama");
  p.import("std.losses");
  Ref d = p.dataset("d", call("text", {{"", "/dev/null"}}));
  Ref tok = p.tokenizer("tok", call("bpe", {{"train_on", d}, {"vocab", 260}}));
  Ref m = p.model("m", "llama", {{"vocab", tok.member("vocab")}, {"dim", 16}, {"layers", 1},
                                 {"heads", 2}, {"context", 8}});
  unsigned badLine = __LINE__ + 3;
  p.stage("s")
      .set("model", m)
      .set("optimiser", call("adamw", {{"lr", 1e-3}}))
      .set("data", d);
  std::vector<Diagnostic> diags;
  auto checked = p.check([&](const Diagnostic &x) { diags.push_back(x); });
  EXPECT_FALSE(checked);
  ASSERT_FALSE(diags.empty());
  const Diagnostic &e = diags.front();
  EXPECT_EQ(e.severity, Diagnostic::Severity::Error);
  EXPECT_NE(e.file.find("EmbedTest.cpp"), std::string::npos) << e.str();
  EXPECT_EQ(e.line, badLine) << e.str();
  EXPECT_NE(e.message.find("unknown stage field 'optimiser'; did you mean 'optimizer'?"),
            std::string::npos)
      << e.str();
  EXPECT_EQ(e.sourceLine, "  optimiser: adamw(lr: 0.001)");
  EXPECT_EQ(e.llmpCol, 3u);
}

TEST(Embed, StdlibDiagnosticsKeepTheirFile) {
  using namespace llmp;
  Program p("gqa");
  p.import("std.models.llama");
  p.import("std.losses");
  Ref d = p.dataset("d", call("text", {{"", "/dev/null"}}));
  Ref tok = p.tokenizer("tok", call("bpe", {{"train_on", d}, {"vocab", 260}}));
  unsigned modelLine = __LINE__ + 1;
  Ref m = p.model("m", "llama", {{"vocab", tok.member("vocab")}, {"dim", 16}, {"layers", 1},
                                 {"heads", 4}, {"kv_heads", 3}, {"context", 8}});
  std::vector<Diagnostic> diags;
  EXPECT_FALSE(p.check([&](const Diagnostic &x) { diags.push_back(x); }));
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_EQ(diags[0].line, modelLine) << diags[0].str();
  EXPECT_NE(diags[0].message.find("'kv_heads' (3) must divide 'heads' (4)"), std::string::npos);
  EXPECT_NE(diags[1].file.find("llama.llmp"), std::string::npos) << diags[1].str();
  EXPECT_EQ(diags[1].severity, Diagnostic::Severity::Note);
}

} // namespace
