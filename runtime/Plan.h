// SPDX-License-Identifier: Apache-2.0
/// What the compiler tells the runtime about one compiled `pretrain` stage: the parameter
/// layout with initialisers, the static shapes, and the stage's configuration. Produced by
/// compiler/Frontend from the checked AST; consumed by runtime/Trainer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lrt {

/// How a parameter is initialised before the first step.
///   KaimingUniform: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = shape[1] (the `in`
///   dimension of a LoRA `lora_A` [rank, in]); PEFT's `nn.init.kaiming_uniform_(A, a=sqrt(5))`,
///   whose bound gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)) is 1/sqrt(fan_in).
enum class InitKind { Normal, Ones, Zeros, KaimingUniform };

/// How a frozen parameter is stored in the frozen byte buffer.
///   F32: `numel` little-endian fp32 values, row-major.
///   NF4: a frozen linear weight of a `base: nf4(...)` stage, quantized as the blob layout of
///        kernels/cpu/Quant.h defines it (`byteSize` bytes).
///   BF16: a frozen linear weight of a LoRA stage with `precision: bf16`: `numel`
///        little-endian bf16 values (the fp32 upper halves, rounded to nearest even),
///        row-major, 2 * numel bytes, read by `llmp.matmul` as a bf16 rhs (llmp-bf16-base).
enum class Storage { F32, NF4, BF16 };

/// The plan JSON's name of a storage: "f32", "nf4" or "bf16".
inline const char *storageName(Storage s) {
  return s == Storage::NF4 ? "nf4" : s == Storage::BF16 ? "bf16" : "f32";
}

/// One model parameter: trainable ones live in the flat fp32 buffers (params, grads, m, v)
/// at `offset`; frozen ones (the base of a LoRA/QLoRA stage) in the frozen byte buffer at
/// `byteOffset`, with no gradient and no optimizer state.
struct ParamInfo {
  std::string name;           ///< dotted path, e.g. "layers.0.attn.wq"
  std::vector<int64_t> shape; ///< row-major
  int64_t offset = 0;         ///< first element in the flat buffer (trainable params)
  int64_t numel = 0;          ///< product of `shape`
  InitKind init = InitKind::Normal;
  float mean = 0.0f, std = 0.02f; ///< for InitKind::Normal
  bool decay = false;         ///< AdamW weight decay applies (matrices, not norms/embeddings)
  bool frozen = false;        ///< lives in the frozen buffer: no gradient, no optimizer state
  int64_t byteOffset = 0;     ///< first byte in the frozen buffer (frozen params; 64-aligned)
  Storage storage = Storage::F32; ///< layout in the frozen buffer (frozen params)
  int64_t byteSize = 0;       ///< bytes in the frozen buffer (frozen params; 4 * numel for F32)
};

/// `adapter: lora(rank, alpha, dropout, targets, rslora)` of a fine-tuning stage (Hu et al.
/// 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): each targeted weight W
/// [in, out] (`x @ W`) becomes `x @ W + scale * (dropout(x) @ A^T) @ B^T` with the trainable
/// adapters `<W>.lora_A` [rank, in] (KaimingUniform) and `<W>.lora_B` [out, rank] (Zeros),
/// PEFT's layout; every base parameter is frozen.
struct LoraSpec {
  bool enabled = false;
  int64_t rank = 0;
  double alpha = 0;
  bool rslora = false;  ///< scale = alpha / sqrt(rank) (Kalajdzievski 2023, rsLoRA)
  double scale = 0;     ///< alpha / rank, or alpha / sqrt(rank) with rslora
  double dropout = 0;   ///< probability of zeroing an element of the adapter input (training)
  std::vector<std::string> targets; ///< the adapted parameters' full names ("layers.0.wq")
};

/// `base: nf4(block, double_quant)`: frozen linear weights stored as NF4 (Dettmers et al.
/// 2023, "QLoRA"); the blob layout is kernels/cpu/Quant.h's.
struct Nf4Spec {
  bool enabled = false;
  int64_t block = 64;       ///< weights per absmax block
  bool doubleQuant = true;  ///< absmax values quantized to 8 bits in blocks of 256
};

/// Where the training text comes from.
struct DatasetSpec {
  std::string name;   ///< the `dataset` declaration's name
  std::string path;   ///< file path as written in the .llmp file
  /// "text" (plain UTF-8) or "osis" (OSIS XML Bible: verse text only) for pretraining;
  /// "chat", "prompt_completion", "qa" (JSONL), "faq" (FAQ text) or "convos" (one JSON
  /// document of scored samples) for fine-tuning
  /// (runtime/SftData.h)
  std::string format;
  /// Fraction used for training: of the tokens (pretraining, split by position) or of the
  /// conversations (fine-tuning, a seeded shuffle); the rest is validation / held out.
  double split = 0.95;
  /// JSONL formats: the JSON key of each field, by the format's argument name
  /// ("messages", "prompt", "completion", "question", "answer"); absent: the argument name.
  std::map<std::string, std::string> keys;
  /// Chat data `train_on: all`: the loss covers every token, not only the assistant's.
  bool trainOnAll = false;
  /// "convos" data `keep: correct`: only the samples the file scores 1 (readConvosJson).
  bool correctOnly = false;
};

/// The tokenizer to train (or load) for the stage.
struct TokenizerSpec {
  std::string name;        ///< the `tokenizer` declaration's name
  std::string kind = "bpe"; ///< "bpe": SentencePiece BPE with byte fallback, trained on the data;
                            ///< "from_gguf": the byte-level BPE (and chat template) of a GGUF file
  int64_t vocabSize = 0;
  std::string path; ///< "from_gguf": the GGUF file
};

/// Everything the host training loop needs for one `pretrain` stage.
struct StagePlan {
  std::string pipeline;  ///< pipeline name ("main"); empty for a stage in no pipeline
  std::string stage;     ///< stage name ("pretrain")
  std::string model;     ///< model declaration name
  std::string kind = "pretrain"; ///< the stage kind: "pretrain" or "sft" (runtime/SftTrainer.h)
  /// `precision:` of the stage: "fp32", or "bf16" (matrix products on bf16 operands with
  /// fp32 accumulation; compiled into the step functions, so informational here).
  std::string precision = "fp32";
  std::vector<ParamInfo> params;
  int64_t numParams = 0;  ///< total elements of the flat buffer (trainable params only)
  /// Bytes of the frozen buffer (frozen params; see ParamInfo::frozen). 0: no frozen
  /// buffer, and the step functions take none (runtime/StepABI.h).
  int64_t frozenBytes = 0;
  LoraSpec lora;          ///< adapter of a LoRA/QLoRA stage (enabled = false otherwise)
  Nf4Spec nf4;            ///< NF4 frozen base of a QLoRA stage
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

/// How messages name a stage: "pipeline.stage", or "stage" for a stage in no pipeline.
inline std::string stageLabel(const std::string &pipeline, const std::string &stage) {
  return pipeline.empty() ? stage : pipeline + "." + stage;
}

} // namespace lrt
