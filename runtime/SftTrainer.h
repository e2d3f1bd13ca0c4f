// SPDX-License-Identifier: Apache-2.0
/// The host side of an `sft` stage with full fine-tuning: conversations rendered with the
/// model's chat template and labelled on assistant tokens (runtime/SftData.h), the weights
/// of a pretrained model (a GGUF file, or the checkpoint of the `from:` stage), and the
/// shared training loop (runtime/TrainLoop.h), with greedy answers to held-out questions
/// before and after training.
#pragma once

#include "runtime/KVCache.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"
#include "runtime/StepABI.h"
#include "runtime/Trainer.h"

#include <string>

namespace lrt {

/// Where an `sft` stage starts from.
struct SftSource {
  /// The starting weights: a GGUF file (".gguf": readGgufParams, the `from_gguf` model) or a
  /// safetensors checkpoint of the same model (the `from:` stage's
  /// checkpoint/model.safetensors).
  std::string weightsPath;
  /// The GGUF file whose byte-level BPE tokenizer and `tokenizer.chat_template` render and
  /// tokenise the conversations (plan.tokenizer.path of a `from_gguf` tokenizer).
  std::string tokenizerPath;
  /// Optional (both set, or neither): the model's compiled prefill_step / decode_step with a
  /// KV cache of `cache`'s shape (runtime/KVCache.h). The held-out answers are then
  /// generated with one prefill per prompt and one decode_step per new token
  /// (runtime/Generate.h) instead of a full-window logits_step per token; greedy answers
  /// are the same either way (up to fp32 rounding of near ties). For a full fine-tuning
  /// stage they take the stage's own fp32 parameter layout.
  PrefillStepFn prefillStep = nullptr;
  DecodeStepFn decodeStep = nullptr;
  KVCacheShape cache;
  /// A LoRA or QLoRA stage (plan.frozenBytes > 0): the parameter layout fp32[mergedNumParams]
  /// of the model without adapter that prefillStep / decodeStep take. Before each round of
  /// samples the merged weights are built in it (runtime/Lora.h mergedStageParams: the
  /// frozen base, NF4 dequantized, plus scale * (B A)^T on each target) and freed after.
  std::vector<ParamInfo> mergedParams;
  int64_t mergedNumParams = 0;
};

/// Fine-tunes every parameter of `plan`'s model on its conversations.
///
/// 1. Reads the conversations of plan.data (readConversations; opts.dataPath overrides the
///    path), splits them (splitConversations with plan.data.split and plan.seed), renders
///    and labels each with the GGUF's chat template and tokenizer (encodeConversation; BOS
///    or EOS added only when tokenizer.ggml.add_bos_token / add_eos_token ask and the
///    template did not write them), and lays them out as rows of plan.seqLen
///    (makeSftRows: packed with segments when plan.packing, else one per row), printing
///    how many were truncated. The held-out rows form the evaluation batches (all of them,
///    in batches of plan.batch x ranks rows; the loss is the mean over their target tokens).
/// 2. Loads the starting weights (SftSource::weightsPath).
/// 3. Runs the loop of runPretrain (step protocol, schedule, accumulation, metrics.jsonl,
///    held-out loss before step 1 / every plan.evalEvery steps / after the last, checkpoints
///    and --resume, data parallel).
/// 4. Before step 1 and after the last step, with opts.numSamples > 0: greedy answers
///    (at most opts.sampleTokens tokens, ending at tokenizer.ggml.eos_token_id) to the first
///    opts.numSamples held-out questions (the conversation up to its last assistant turn,
///    rendered with add_generation_prompt); both written to `<run>/samples.txt` with the
///    reference answer. With source.prefillStep/decodeStep through the KV cache (a LoRA
///    stage on its merged weights, 4 bytes per model parameter while the samples run), else
///    through logits_step. The model goes to `<run>/checkpoint/model.safetensors`.
///
/// Errors: those of runPretrain; NotFound/IoError/InvalidArgument from reading the data,
/// the GGUF file or the weights; InvalidArgument if the tokenizer's vocabulary is larger
/// than the model's, or no conversation is left for training or held out.
Status runSft(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
              const SftSource &source);

} // namespace lrt
