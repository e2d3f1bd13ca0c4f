// SPDX-License-Identifier: Apache-2.0
/// Frozen parameters in the frozen byte buffer of a LoRA or QLoRA stage (Plan.h
/// ParamInfo::frozen; docs/internals.md "Frozen parameters"): fp32 copies, or, for the
/// frozen linear weights of a `base: nf4(...)` stage, NF4 blobs (kernels/cpu/Quant.h
/// Nf4Layout) that the compiled `llmp.matmul_nf4` reads.
#pragma once

#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

/// Writes the fp32 values[p.numel] of frozen parameter `p` at frozen[p.byteOffset, +
/// p.byteSize): copied for Storage::F32; rounded to bf16 (nearest even; kernels/cpu/MatmulBf16.h
/// toBf16) for Storage::BF16; for Storage::NF4 quantized as bitsandbytes'
/// `quantize_4bit(quant_type="nf4")` (kernels/cpu/Quant.h quantizeNf4: `nf4.block`
/// weights per absmax, with `nf4.doubleQuant` the absmax values in 8 bits per 256) and
/// written as its blob. Errors: InvalidArgument when `p` is not frozen, its byteSize is not
/// the size of its storage (4 numel, or the NF4 blob's), it does not fit `frozenBytes`, or a
/// weight is not finite (naming the parameter).
Status storeFrozenParam(const ParamInfo &p, const Nf4Spec &nf4, const float *values, uint8_t *frozen,
                        int64_t frozenBytes);

/// Reads frozen parameter `p` back into fp32 values[p.numel] (bf16 widened exactly, NF4
/// dequantized bitwise as dequantizeNf4). Same errors as storeFrozenParam, but for the weights' finiteness.
Status loadFrozenParam(const ParamInfo &p, const Nf4Spec &nf4, const uint8_t *frozen, int64_t frozenBytes,
                       float *values);

/// The frozen buffer u8[plan.frozenBytes] of a LoRA or QLoRA stage (`frozen`, resized)
/// filled with its base from pretrained weights `path`: a GGUF file (name ending in
/// ".gguf"; runtime/GgufModel.h, read one tensor at a time by forEachGgufParam) or a
/// safetensors file with llmp names and F32 tensors (a full model's
/// `checkpoint/model.safetensors`). Each frozen param goes through storeFrozenParam: an fp32
/// copy, or quantized to NF4 per plan.nf4 for a `base: nf4(...)` stage. Bytes between
/// params stay 0. Transient memory besides `frozen`: for GGUF, the mapped file and about
/// three fp32 copies of the largest frozen tensor (the embedding, vocab x dim x 4 bytes
/// each); for safetensors, the whole file as read by readSafetensors. Errors: those of the
/// readers (naming the file and tensor), InvalidArgument for a tensor that is missing, not
/// F32 or shaped differently from the plan, and those of storeFrozenParam.
Status readFrozenBase(const StagePlan &plan, const std::string &path,
                      std::vector<uint8_t> &frozen);

} // namespace lrt
