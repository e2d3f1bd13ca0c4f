// SPDX-License-Identifier: Apache-2.0
/// What the compiler tells the runtime about one compiled `pretrain` stage: the parameter
/// layout with initialisers, the static shapes, and the stage's configuration. Produced by
/// compiler/Frontend from the checked AST; consumed by runtime/Trainer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

/// How a parameter is initialised before the first step.
enum class InitKind { Normal, Ones, Zeros };

/// One model parameter inside the flat fp32 parameter buffer.
struct ParamInfo {
  std::string name;           ///< dotted path, e.g. "layers.0.attn.wq"
  std::vector<int64_t> shape; ///< row-major
  int64_t offset = 0;         ///< first element in the flat buffer
  int64_t numel = 0;          ///< product of `shape`
  InitKind init = InitKind::Normal;
  float mean = 0.0f, std = 0.02f; ///< for InitKind::Normal
  bool decay = false;         ///< AdamW weight decay applies (matrices, not norms/embeddings)
};

/// Where the training text comes from.
struct DatasetSpec {
  std::string name;   ///< the `dataset` declaration's name
  std::string path;   ///< file path as written in the .llmp file
  std::string format; ///< "text" (plain UTF-8) or "osis" (OSIS XML Bible: verse text only)
  double split = 0.95; ///< fraction of tokens used for training; the rest is validation
};

/// The tokenizer to train (or load) for the stage.
struct TokenizerSpec {
  std::string name;        ///< the `tokenizer` declaration's name
  std::string kind = "bpe"; ///< "bpe": SentencePiece BPE with byte fallback, trained on the data
  int64_t vocabSize = 0;
};

/// Everything the host training loop needs for one `pretrain` stage.
struct StagePlan {
  std::string pipeline;  ///< pipeline name ("main")
  std::string stage;     ///< stage name ("pretrain")
  std::string model;     ///< model declaration name
  std::vector<ParamInfo> params;
  int64_t numParams = 0;  ///< total elements of the flat buffer
  int64_t vocab = 0, context = 0, dim = 0, layers = 0; ///< model dims, for reports and FLOPs
  int64_t batch = 0, seqLen = 0; ///< `batch: B x T` (one micro-batch)
  /// Micro-batches per optimizer step (gradient accumulation; `accumulate: K`). A step
  /// trains on accumulate * batch rows; see the step protocol in StepABI.h.
  int64_t accumulate = 1;
  /// Data-parallel processes (`ranks: R`). `batch` is then the rows of one rank: the
  /// file's `batch: G x T` is split into R shards of G / R rows (see DataParallel.h).
  int64_t ranks = 1;
  int64_t steps = 0, evalEvery = 0, evalBatches = 8, warmup = 0;
  double lr = 1e-3, minLr = 1e-4, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weightDecay = 0.1, gradClip = 1.0;
  uint64_t seed = 0;
  /// `packing: true`: rows hold several documents, and the compiled `@loss` / `@logits`
  /// (so train_step, eval_step and logits_step) take one more data argument after the
  /// tokens (and targets): `segments`, i32 (B, T), the document index of each token in its
  /// row (documents contiguous). Attention is then block-diagonal causal and RoPE positions
  /// restart at 0 at each document start.
  bool packing = false;
  DatasetSpec data;
  TokenizerSpec tokenizer;
};

} // namespace lrt
