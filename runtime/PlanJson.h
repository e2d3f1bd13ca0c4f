// SPDX-License-Identifier: Apache-2.0
/// The one JSON form of a StagePlan (runtime/Plan.h): the run directory's `plan.json`
/// (`llmpc run`, and the trainer binaries of `llmpc build`, whose manifest embeds the same
/// object). Every field is written, in a fixed order, numbers in the shortest form that
/// reads back to the same bits, so readStagePlanJson(writeStagePlanJson(p)) == p exactly.
///
/// Keys (docs/runtime.md "plan.json"): pipeline (null for a stage in no pipeline), stage,
/// kind, model, precision ("fp32" | "bf16"), num_params (trainable elements), frozen_bytes,
/// lora{enabled, rank, alpha, scale, rslora, dropout, targets}, nf4{enabled, block,
/// double_quant}, vocab, context, dim, layers, batch (rows of one rank's micro-batch),
/// seq_len, accumulate, ranks, steps, eval_every, eval_batches, warmup, lr, min_lr,
/// betas [beta1, beta2], eps, weight_decay, grad_clip, seed, packing, data{name, path,
/// format, split, keys, train_on_all, correct_only}, tokenizer{name, kind, vocab, path},
/// params[{name, shape, offset, numel, init, mean, std, decay, frozen, byte_offset,
/// storage ("f32" | "nf4" | "bf16"), byte_size}].
#pragma once

#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <string>
#include <string_view>
#include <vector>

namespace lrt {

/// `plan` as a JSON object, indented by 2, ending in a newline.
std::string writeStagePlanJson(const StagePlan &plan);

/// Reads what writeStagePlanJson wrote. Errors: InvalidArgument for malformed JSON, a
/// missing or mistyped field (the message names it) or an unknown enum value.
Expected<StagePlan> readStagePlanJson(std::string_view json);

/// A parameter layout (e.g. StagePlan::params) as a JSON array of plan.json's `params`
/// objects, on one line; readParamsJson reads it back exactly. Errors (read):
/// InvalidArgument for malformed JSON or a missing or mistyped field (named).
std::string writeParamsJson(const std::vector<ParamInfo> &params);
Expected<std::vector<ParamInfo>> readParamsJson(std::string_view json);

} // namespace lrt
