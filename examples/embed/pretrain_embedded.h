// SPDX-License-Identifier: Apache-2.0
/// The pipeline of examples/pretrain.llmp, declared with the C++ API. Shared by the example
/// program and by test/lang/embed, which checks it against the .llmp file.
#pragma once

#include "llmp/llmp.h"

/// Adds examples/pretrain.llmp's declarations to `p`, line for line.
inline void declarePretrain(llmp::Program &p) {
  using namespace llmp;
  p.import("std.models.llama");
  p.import("std.losses");

  Ref corpus = p.dataset("corpus", call("text", {{"", "/usr/share/bibledit/sources/kjv.xml"},
                                                 {"format", name("osis")},
                                                 {"split", 0.95}}));
  Ref tok = p.tokenizer("tok", call("bpe", {{"train_on", corpus}, {"vocab", 2048}}));

  Ref tiny = p.model("tiny", "llama",
                     {{"vocab", tok.member("vocab")}, {"dim", 128}, {"layers", 4},
                      {"heads", 4}, {"context", 128}});

  p.stage("pretrain")
      .set("model", tiny)
      .set("data", corpus)
      .set("loss", name("next_token"))
      .set("optimizer", call("adamw", {{"lr", 3e-3},
                                       {"betas", tuple({0.9, 0.95})},
                                       {"weight_decay", 0.1},
                                       {"eps", 1e-8}}))
      .set("schedule", call("cosine", {{"warmup", 50}, {"min_lr", 3e-4}}))
      .set("grad_clip", 1.0)
      .set("batch", batch(16, 128))
      .set("steps", 1000)
      .set("eval", every(100))
      .set("seed", 1);

  p.pipeline("main", {"pretrain"});
}
