// SPDX-License-Identifier: Apache-2.0
/// The host side of a `pretrain` stage: reads and tokenises the corpus, initialises the
/// parameters, runs the compiled train/eval steps with the learning-rate schedule, reports
/// progress, and writes metrics, a safetensors checkpoint and text samples to the run
/// directory. See docs/runtime.md for the run directory layout and metrics.jsonl fields.
#pragma once

#include "runtime/Plan.h"
#include "runtime/Status.h"
#include "runtime/StepABI.h"
#include "runtime/collective/Collective.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace lrt {

/// How progress is shown.
enum class ProgressStyle {
  Auto,  ///< Bar if `out` is a terminal (isatty), else Lines
  Bar,   ///< one updating line: step/steps, loss, lr, tok/s, ETA
  Lines, ///< "step 100/1000 | loss 4.21 | lr 2.9e-03 | 12345 tok/s" every `logEvery` steps
  Quiet, ///< nothing but errors' absence; files are still written
};

/// What a finished run measured (filled when TrainOptions::result is set).
struct TrainResult {
  int64_t steps = 0;
  double firstLoss = 0, lastLoss = 0;       ///< training loss of the first and last step
  double firstValLoss = 0, lastValLoss = 0; ///< before step 1, and after the last step
  double tokensPerSecond = 0;               ///< mean over the run (train steps only)
  double elapsedSeconds = 0;                ///< wall time of the training loop
  int64_t corpusChars = 0, corpusTokens = 0, trainTokens = 0, valTokens = 0;
  double tokenizerSeconds = 0;              ///< training time, 0 when loaded
  std::vector<std::string> samples;
};

/// Options of runPretrain and dumpGradients that are not part of the plan.
struct TrainOptions {
  std::string runDir;   ///< "" -> "runs/<pipeline>/<stage>" (relative to the cwd)
  std::string dataPath; ///< "" -> plan.data.path; the driver passes it resolved
  int64_t steps = 0;    ///< > 0 overrides plan.steps (the schedule uses the override)
  int64_t numSamples = 3;
  int64_t sampleTokens = 64;         ///< new tokens per sample
  std::vector<std::string> prompts;  ///< cycled over samples; empty -> built-in prompts
  double temperature = 0.8;
  int64_t topK = 40;
  std::FILE *out = stdout; ///< progress and the report
  ProgressStyle progress = ProgressStyle::Auto;
  int64_t logEvery = 0;    ///< Lines style: every N steps; 0 -> about 20 lines per run
  TrainResult *result = nullptr; ///< optional: receives the measurements
  /// Continue from the newest valid checkpoint in `<run>/checkpoint/` (see runPretrain).
  bool resume = false;
  /// Write a checkpoint every N steps and after the last; 0 -> after every evaluation
  /// (plan.evalEvery) and after the last step.
  int64_t checkpointEvery = 0;
  int64_t keepCheckpoints = 3; ///< newest checkpoints kept; < 1 keeps all
  /// Optional: checked after every step. Once it is true (a SIGINT/SIGTERM handler sets
  /// it), the run finishes that step, writes its checkpoint and returns Cancelled
  /// ("interrupted at step N of M ..."); `--resume` continues it.
  const std::atomic<bool> *stop = nullptr;
  /// Optional: the processes of a data-parallel run (null: this process alone). With
  /// world->size() == plan.ranks > 1, each rank trains its shard of every step, gradients
  /// and losses are all-reduced, and only rank 0 writes files and prints (DataParallel.h).
  Collective *world = nullptr;
  /// Optional: written as `<run>/plan.json` when the run starts (after the data is ready),
  /// so a run that fails before that leaves the folder as the earlier run left it.
  std::string planJson;
  /// The largest step heap peak of the stage's compiled step functions, in bytes, as the
  /// compiler computed it (llmp-step-heap-peak; 0: unknown): the plan side of the memory
  /// line and `<run>/memory.json` (runtime/Memory.h).
  int64_t stepHeapPeakBytes = 0;
};

/// Runs the stage to completion.
///
/// 1. Reads the corpus (`plan.data`), trains or reloads `<run>/tokenizer.model`
///    (plan.tokenizer.vocabSize pieces, which must equal plan.vocab), tokenises the corpus
///    (cached in `<run>/tokens.bin`) and splits it by position (plan.data.split).
/// 2. Initialises the flat fp32 parameters from plan.seed (Normal/Ones/Zeros per ParamInfo)
///    and zeroes the AdamW moments.
/// 3. For step = 1..steps: lr = learningRate(step - 1, ...); the next plan.accumulate
///    shuffled micro-batches, each through fns.gradStep with the scale n_i / N of its
///    target tokens (the step protocol of StepABI.h), then fns.applyStep; one
///    metrics.jsonl row with the token-weighted loss of the step (weightedMeanLoss);
///    evaluates plan.evalBatches validation batches before step 1, every plan.evalEvery
///    steps and after the last step.
///    After a step's rows (and any evaluation at that step), every opts.checkpointEvery
///    steps and after the last step, writes `<run>/checkpoint/step-<N>/` (Checkpoint.h:
///    weights, AdamW state, data order/cursor/RNG, metrics offset) and keeps the newest
///    opts.keepCheckpoints. A fresh run deletes the checkpoints of an earlier run there.
///    With opts.resume, continues instead from the newest checkpoint that verifies
///    (printing why newer ones were skipped), truncates metrics.jsonl to what it held at
///    that step, deletes newer checkpoints, and runs the remaining steps, so every file
///    ends as in an uninterrupted run (except timing fields).
///    A fresh run (no opts.resume), once the data is ready, first removes what an earlier
///    run left that it would rewrite: metrics.jsonl, samples.txt,
///    checkpoint/model.safetensors, checkpoint/tokenizer.model and the step checkpoints
///    (tokenizer.model and tokens.bin are caches that are checked before reuse). So the
///    folder never mixes two runs' files.
/// 4. Writes `<run>/checkpoint/model.safetensors` (+ tokenizer.model), generates
///    `opts.numSamples` samples with fns.logitsStep into `<run>/samples.txt`, and prints
///    the first/last validation loss, their ratio and a summary line.
///
/// Data parallel (opts.world with R = plan.ranks > 1 processes, every rank calling this
/// with the same plan and options): rank r trains its shard of each step (nextShard),
/// token counts, gradients and losses are all-reduced between the grad_steps and
/// apply_step, the validation loss is averaged over ranks, and rank 0 alone prints and
/// writes files; the ranks end with bitwise identical parameters (checked). See
/// docs/runtime.md, "Data parallel".
///
/// Errors: OutOfMemory if the parameters, gradients and AdamW moments (16 bytes per
/// parameter) do not fit in usableMemoryBytes(), or an allocation fails (the message says
/// what was being allocated); Cancelled when opts.stop was set (after the checkpoint);
/// InvalidArgument for an inconsistent plan (param offsets/sizes vs numParams,
/// non-positive shapes, vocab mismatch, missing step functions) or too little data;
/// NotFound/IoError for files; Internal if a loss is not finite (the step is named).
/// Data parallel: InvalidArgument if plan.ranks differs from the number of processes;
/// Internal for a failed collective, for parameters that differ between ranks, and on the
/// other ranks when one rank failed ("stopped: 1 of 2 ranks failed").
/// Resume: NotFound if there is no checkpoint; InvalidArgument if none verifies (each
/// problem listed), if it was written for another plan or step count, or if metrics.jsonl
/// is shorter than or differs from what the checkpoint recorded.
Status runPretrain(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts);

/// Writes one safetensors file to `outPath` for checking gradients against a reference:
/// every parameter (by name, initialised from plan.seed), "grad.<name>" for each gradient
/// of the first training batch (one fns.gradStep with scale 1 into zeroed gradients, then
/// fns.applyStep with lr = 0 and weight decay 0 for the norm, so the parameters are
/// unchanged), "tokens" and "targets" (I32 [batch, seqLen]) and "loss"
/// (F32 [1]). Uses the run directory of `opts` for the tokenizer and the token cache.
/// Errors: as runPretrain.
Status dumpGradients(const StagePlan &plan, const StepFunctions &fns, const std::string &outPath,
                     const TrainOptions &opts);

/// Fills `params` (fp32[plan.numParams]) as the trainer does: for each ParamInfo in order,
/// Normal draws N(mean, std) by Box-Muller from one std::mt19937_64 seeded with `seed`,
/// KaimingUniform draws U(-1/sqrt(shape[1]), 1/sqrt(shape[1])) (PEFT's lora_A init) from
/// the same stream, Ones/Zeros fill. Frozen params (ParamInfo::frozen) draw from the same
/// stream in the same order and are written into `frozen` (u8[plan.frozenBytes], resized)
/// by storeFrozenParam (runtime/Frozen.h: fp32, or quantized to NF4 for a QLoRA base), or
/// skipped when `frozen` is null (e.g. when they come from a GGUF file): a LoRA stage's base
/// then equals the full model initialised with the same seed. Errors: InvalidArgument if a
/// param lies outside [0, numParams) (frozen: outside [0, frozenBytes) or not of its
/// storage's size), or its numel disagrees with its shape.
Status initParams(const StagePlan &plan, uint64_t seed, std::vector<float> &params,
                  std::vector<uint8_t> *frozen = nullptr);

/// The frozen fp32 params of `plan` (a LoRA stage's base) as a plan of their own over the
/// frozen buffer viewed as fp32: each at offset byteOffset / 4, numParams = frozenBytes / 4,
/// none frozen. The fp32 readers (readParams, readGgufParams) then fill a buffer whose bytes
/// are the frozen buffer. NF4 and BF16 params are left out (converted by runtime/Frozen.h).
StagePlan frozenAsF32(const StagePlan &plan);

} // namespace lrt
