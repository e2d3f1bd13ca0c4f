// SPDX-License-Identifier: Apache-2.0
#include "runtime/Frozen.h"

#include "kernels/cpu/MatmulBf16.h"
#include "kernels/cpu/Quant.h"
#include "runtime/GgufModel.h"
#include "runtime/Safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace lrt {

namespace {

/// Checks that `p` is frozen, that its byteSize is its storage's size and that it fits.
Status checkFrozen(const ParamInfo &p, const Nf4Spec &nf4, int64_t frozenBytes) {
  if (!p.frozen)
    return Status::invalid(fmt::format("frozen buffer: param '{}' is not frozen", p.name));
  int64_t bytes = (p.storage == Storage::BF16 ? 2 : 4) * p.numel;
  if (p.storage == Storage::NF4) {
    if (nf4.block < 1)
      return Status::invalid(fmt::format("frozen buffer: param '{}': NF4 block {} < 1", p.name, nf4.block));
    bytes = quant::nf4Layout(p.numel, nf4.block, nf4.doubleQuant).byteSize;
  }
  if (p.byteSize != bytes || p.byteOffset < 0 || p.byteOffset + bytes > frozenBytes)
    return Status::invalid(fmt::format(
        "frozen buffer: param '{}' ({}, {} bytes at byte {}) does not match its storage ({} bytes) "
        "or does not fit {} bytes",
        p.name, storageName(p.storage), p.byteSize, p.byteOffset, bytes, frozenBytes));
  return Status::ok();
}

} // namespace

Status storeFrozenParam(const ParamInfo &p, const Nf4Spec &nf4, const float *values, uint8_t *frozen,
                        int64_t frozenBytes) {
  if (Status s = checkFrozen(p, nf4, frozenBytes); !s)
    return s;
  if (p.storage == Storage::F32) {
    std::memcpy(frozen + p.byteOffset, values, size_t(4 * p.numel));
    return Status::ok();
  }
  if (p.storage == Storage::BF16) {
    auto *out = reinterpret_cast<uint16_t *>(frozen + p.byteOffset);
    for (int64_t i = 0; i < p.numel; ++i)
      out[i] = toBf16(values[i]);
    return Status::ok();
  }
  auto q = quant::quantizeNf4(values, p.numel, {nf4.block, nf4.doubleQuant, 256});
  if (!q)
    return Status::invalid(fmt::format("frozen buffer: param '{}': {}", p.name, q.status().message()));
  return quant::writeNf4Blob(*q, frozen + p.byteOffset);
}

Status loadFrozenParam(const ParamInfo &p, const Nf4Spec &nf4, const uint8_t *frozen, int64_t frozenBytes,
                       float *values) {
  if (Status s = checkFrozen(p, nf4, frozenBytes); !s)
    return s;
  if (p.storage == Storage::F32) {
    std::memcpy(values, frozen + p.byteOffset, size_t(4 * p.numel));
  } else if (p.storage == Storage::BF16) {
    const auto *in = reinterpret_cast<const uint16_t *>(frozen + p.byteOffset);
    for (int64_t i = 0; i < p.numel; ++i)
      values[i] = fromBf16(in[i]);
  } else {
    quant::dequantizeNf4Range(frozen + p.byteOffset, quant::nf4Layout(p.numel, nf4.block, nf4.doubleQuant), 0,
                              p.numel, values);
  }
  return Status::ok();
}

Status readFrozenBase(const StagePlan &plan, const std::string &path,
                      std::vector<uint8_t> &frozen) {
  std::vector<ParamInfo> base;
  for (const ParamInfo &p : plan.params)
    if (p.frozen)
      base.push_back(p);
  frozen.assign(size_t(std::max<int64_t>(0, plan.frozenBytes)), 0);
  auto store = [&](const ParamInfo &p, const float *values) {
    return storeFrozenParam(p, plan.nf4, values, frozen.data(), plan.frozenBytes);
  };
  const bool gguf = path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
  if (gguf)
    return forEachGgufParam(base, path, store);
  auto file = readSafetensors(path);
  if (!file)
    return file.status();
  for (const ParamInfo &p : base) {
    auto t = file->findF32(p.name, p.shape, path);
    if (!t)
      return t.status();
    std::vector<float> values = (*t)->as<float>();
    if (Status st = store(p, values.data()); !st)
      return st;
  }
  return Status::ok();
}

} // namespace lrt
