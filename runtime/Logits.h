// SPDX-License-Identifier: Apache-2.0
/// Running a trained model outside the training loop: the flat parameter buffer filled from
/// a checkpoint, and the logits of a prompt (what `llmpc logits` writes for reference tests).
#pragma once

#include "runtime/Generate.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

/// The flat fp32[plan.numParams] buffer with every parameter of `plan` read by name from the
/// safetensors file `path` (e.g. `<run>/checkpoint/model.safetensors`). Errors: NotFound /
/// IoError for the file; InvalidArgument naming a tensor that is missing, not F32 or shaped
/// differently from the plan.
Expected<std::vector<float>> readParams(const StagePlan &plan, const std::string &path);

/// The logits of `ids` (1 <= size <= model.context): fp32[size, vocab], row i scoring the
/// token after ids[i]. One `logitsStep` call on the ids padded with 0 to the context
/// (attention is causal, so the padding does not change these rows). Errors:
/// InvalidArgument for an empty or too long prompt or an incomplete model.
Expected<std::vector<float>> promptLogits(const LogitsModel &model,
                                          const std::vector<int32_t> &ids);

} // namespace lrt
