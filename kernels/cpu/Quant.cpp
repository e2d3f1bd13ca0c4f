// SPDX-License-Identifier: Apache-2.0
/// NF4 quantization with double quantization of the absmax values, following
/// bitsandbytes' CPU implementation step by step (backends/default/ops.py
/// `quantize_blockwise` and `quantize_4bit`, functional.py `quantize_4bit` and
/// `create_dynamic_map`), in plain loops.
#include "kernels/cpu/Quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace lrt::quant {

const std::array<float, 16> kNf4Code = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

namespace {

/// torch.linspace(start, end, steps, dtype=float32) on the CPU (aten
/// RangeFactoriesKernel.cpp): an fp32 step, the first half counted up from `start`, the
/// second half down from `end`, each element one fused multiply-add (the vectorised
/// kernels are compiled with FMA contraction; bitsandbytes' map differs in the last bit
/// from separately rounded products).
std::vector<float> linspaceF32(float start, float end, int64_t steps) {
  std::vector<float> r(static_cast<size_t>(steps));
  if (steps == 1) {
    r[0] = start;
    return r;
  }
  float step = (end - start) / static_cast<float>(steps - 1);
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    r[static_cast<size_t>(i)] = i < half ? std::fma(step, static_cast<float>(i), start)
                                         : std::fma(-step, static_cast<float>(steps - i - 1), end);
  return r;
}

std::array<float, 256> makeDynamicCode8() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent
  // i = 0..6, 2^i midpoints of linspace(0.1, 1, 2^i + 1), scaled by +-10^(i-6).
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    std::vector<float> b = linspaceF32(0.1f, 1.0f, (int64_t{1} << i) + 1);
    float scale = static_cast<float>(std::pow(10.0, i - 6));
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      float mean = (b[k] + b[k + 1]) / 2.0f;
      data.push_back(mean * scale);
      data.push_back(mean * -scale);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  std::array<float, 256> code{};
  std::copy(data.begin(), data.end(), code.begin());
  return code;
}

Status checkFinite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]))
      return Status::invalid("quantize: weight " + std::to_string(i) + " is not finite (" + std::to_string(x[i]) +
                             ")");
  return Status::ok();
}

} // namespace

const std::array<float, 256> &dynamicCode8() {
  static const std::array<float, 256> code = makeDynamicCode8();
  return code;
}

namespace {

/// Midpoints between neighbouring entries of an ascending table, in fp32 as bitsandbytes
/// computes them (`(code[:-1] + code[1:]) / 2`).
template <size_t N> std::vector<float> midpoints(const std::array<float, N> &code) {
  std::vector<float> mid(N - 1);
  for (size_t k = 0; k + 1 < N; ++k)
    mid[k] = (code[k] + code[k + 1]) / 2.0f;
  return mid;
}

/// Blockwise absmax quantization, bitsandbytes' CPU path (backends/default/ops.py
/// `quantize_blockwise` and `quantize_4bit`): per block, absmax = max |x|; full blocks
/// scale by the fp32 reciprocal of max(absmax, 1e-38), a final partial block divides by
/// it; the scaled value, clamped to [-1, 1], takes the code torch.bucketize gives against
/// `mid` (the number of midpoints strictly below it, so a value on a midpoint takes the
/// lower code). `code(i, c)` receives each code; absmax[ceil(n / blockSize)] is filled.
template <typename Emit>
void blockwise(const float *x, int64_t n, int64_t blockSize, const std::vector<float> &mid, std::vector<float> &absmax,
               Emit code) {
  absmax.assign(static_cast<size_t>((n + blockSize - 1) / blockSize), 0.0f);
  for (int64_t b = 0; b * blockSize < n; ++b) {
    int64_t begin = b * blockSize, end = std::min(n, begin + blockSize);
    float am = 0.0f;
    for (int64_t i = begin; i < end; ++i)
      am = std::max(am, std::fabs(x[i]));
    absmax[static_cast<size_t>(b)] = am;
    float denom = std::max(am, 1e-38f);
    float inv = 1.0f / denom;
    bool partial = end - begin < blockSize;
    for (int64_t i = begin; i < end; ++i) {
      float s = std::clamp(partial ? x[i] / denom : x[i] * inv, -1.0f, 1.0f);
      code(i, static_cast<uint8_t>(std::lower_bound(mid.begin(), mid.end(), s) - mid.begin()));
    }
  }
}

} // namespace

Status quantizeBlockwise8(const float *v, int64_t n, int64_t blockSize, const std::array<float, 256> &code,
                          std::vector<uint8_t> &codes, std::vector<float> &absmax) {
  if (n < 0 || blockSize < 1)
    return Status::invalid("quantizeBlockwise8: bad sizes (n=" + std::to_string(n) +
                           ", blockSize=" + std::to_string(blockSize) + ")");
  if (Status s = checkFinite(v, n); !s)
    return s;
  codes.assign(static_cast<size_t>(n), 0);
  blockwise(v, n, blockSize, midpoints(code), absmax,
            [&](int64_t i, uint8_t c) { codes[static_cast<size_t>(i)] = c; });
  return Status::ok();
}

Expected<Nf4Tensor> quantizeNf4(const float *x, int64_t n, const Nf4Options &opts) {
  if (n < 0 || opts.blockSize < 1 || (opts.doubleQuant && opts.absmaxBlockSize < 1))
    return Status::invalid("quantizeNf4: bad sizes (n=" + std::to_string(n) + ", blockSize=" +
                           std::to_string(opts.blockSize) + ", absmaxBlockSize=" +
                           std::to_string(opts.absmaxBlockSize) + ")");
  if (Status s = checkFinite(x, n); !s)
    return s;
  Nf4Tensor q;
  q.numel = n;
  q.blockSize = opts.blockSize;
  q.doubleQuant = opts.doubleQuant;
  q.absmaxBlockSize = opts.absmaxBlockSize;
  q.packed.assign(static_cast<size_t>((n + 1) / 2), 0);
  std::vector<float> absmax;
  blockwise(x, n, q.blockSize, midpoints(kNf4Code), absmax, [&](int64_t i, uint8_t c) {
    uint8_t &byte = q.packed[static_cast<size_t>(i / 2)];
    byte = i % 2 == 0 ? static_cast<uint8_t>(c << 4) : static_cast<uint8_t>(byte | c);
  });
  if (n % 2 == 1)
    q.packed.back() |= 7; // bitsandbytes pads with 0.0, whose code is 7
  if (!opts.doubleQuant) {
    q.absmax = std::move(absmax);
    return q;
  }
  // Double quantization: subtract the mean, then 8-bit blockwise with the dynamic map.
  double sum = 0;
  for (float a : absmax)
    sum += a;
  q.absmaxOffset = absmax.empty() ? 0.0f : static_cast<float>(sum / static_cast<double>(absmax.size()));
  std::vector<float> centred(absmax.size());
  for (size_t b = 0; b < absmax.size(); ++b)
    centred[b] = absmax[b] - q.absmaxOffset;
  if (Status s = quantizeBlockwise8(centred.data(), static_cast<int64_t>(centred.size()), q.absmaxBlockSize,
                                    dynamicCode8(), q.absmaxCodes, q.absmaxScales);
      !s)
    return s;
  return q;
}

std::vector<float> Nf4Tensor::blockAbsmax() const {
  if (!doubleQuant)
    return absmax;
  const auto &code = dynamicCode8();
  std::vector<float> r(absmaxCodes.size());
  for (size_t b = 0; b < r.size(); ++b) {
    // Two roundings, as bitsandbytes (dequantize_blockwise, then += offset); separate
    // statements so that the compiler cannot fuse them into one FMA.
    float scaled = code[absmaxCodes[b]] * absmaxScales[b / static_cast<size_t>(absmaxBlockSize)];
    r[b] = scaled + absmaxOffset;
  }
  return r;
}

double Nf4Tensor::bitsPerParameter() const {
  if (numel == 0)
    return 0;
  double bits = 4.0 * static_cast<double>(numel);
  if (doubleQuant)
    bits += 8.0 * static_cast<double>(absmaxCodes.size()) + 32.0 * static_cast<double>(absmaxScales.size()) + 32.0;
  else
    bits += 32.0 * static_cast<double>(absmax.size());
  return bits / static_cast<double>(numel);
}

Status dequantizeNf4(const Nf4Tensor &q, float *out) {
  int64_t nb = q.numBlocks();
  bool ok = q.numel >= 0 && q.blockSize >= 1 && q.packed.size() == static_cast<size_t>((q.numel + 1) / 2);
  if (ok && q.doubleQuant)
    ok = q.absmaxBlockSize >= 1 && q.absmaxCodes.size() == static_cast<size_t>(nb) &&
         q.absmaxScales.size() == static_cast<size_t>((nb + q.absmaxBlockSize - 1) / q.absmaxBlockSize);
  else if (ok)
    ok = q.absmax.size() == static_cast<size_t>(nb);
  if (!ok)
    return Status::invalid("dequantizeNf4: inconsistent tensor (numel=" + std::to_string(q.numel) +
                           ", blockSize=" + std::to_string(q.blockSize) + ", packed=" +
                           std::to_string(q.packed.size()) + " bytes)");
  std::vector<float> absmax = q.blockAbsmax();
  for (int64_t i = 0; i < q.numel; ++i) {
    uint8_t byte = q.packed[static_cast<size_t>(i / 2)];
    uint8_t code = i % 2 == 0 ? byte >> 4 : byte & 15;
    out[i] = kNf4Code[code] * absmax[static_cast<size_t>(i / q.blockSize)];
  }
  return Status::ok();
}

Status writeNf4Blob(const Nf4Tensor &q, uint8_t *out) {
  Nf4Layout l = nf4Layout(q.numel, q.blockSize, q.doubleQuant, q.absmaxBlockSize);
  bool ok = q.numel >= 0 && q.blockSize >= 1 && q.packed.size() == static_cast<size_t>(l.codesBytes);
  if (ok && q.doubleQuant)
    ok = q.absmaxBlockSize >= 1 && q.absmaxCodes.size() == static_cast<size_t>(l.numBlocks) &&
         q.absmaxScales.size() == static_cast<size_t>(l.numScales);
  else if (ok)
    ok = q.absmax.size() == static_cast<size_t>(l.numBlocks);
  if (!ok)
    return Status::invalid("writeNf4Blob: inconsistent tensor (numel=" + std::to_string(q.numel) +
                           ", blockSize=" + std::to_string(q.blockSize) + ")");
  std::fill(out, out + l.byteSize, uint8_t{0});
  std::copy(q.packed.begin(), q.packed.end(), out);
  if (q.doubleQuant) {
    std::copy(q.absmaxCodes.begin(), q.absmaxCodes.end(), out + l.absmaxAt);
    std::memcpy(out + l.scalesAt, q.absmaxScales.data(), 4 * q.absmaxScales.size());
    std::memcpy(out + l.offsetAt, &q.absmaxOffset, 4);
  } else {
    std::memcpy(out + l.absmaxAt, q.absmax.data(), 4 * q.absmax.size());
  }
  return Status::ok();
}

Nf4Tensor readNf4Blob(const uint8_t *blob, const Nf4Layout &l) {
  Nf4Tensor q;
  q.numel = l.numel;
  q.blockSize = l.blockSize;
  q.doubleQuant = l.doubleQuant;
  q.absmaxBlockSize = l.absmaxBlockSize;
  q.packed.assign(blob, blob + l.codesBytes);
  if (l.doubleQuant) {
    q.absmaxCodes.assign(blob + l.absmaxAt, blob + l.absmaxAt + l.numBlocks);
    q.absmaxScales.resize(static_cast<size_t>(l.numScales));
    std::memcpy(q.absmaxScales.data(), blob + l.scalesAt, 4 * q.absmaxScales.size());
    std::memcpy(&q.absmaxOffset, blob + l.offsetAt, 4);
  } else {
    q.absmax.resize(static_cast<size_t>(l.numBlocks));
    std::memcpy(q.absmax.data(), blob + l.absmaxAt, 4 * q.absmax.size());
  }
  return q;
}

void dequantizeNf4Range(const uint8_t *blob, const Nf4Layout &l, int64_t begin, int64_t end, float *out) {
  const auto &code8 = dynamicCode8();
  float offset = 0;
  if (l.doubleQuant)
    std::memcpy(&offset, blob + l.offsetAt, 4);
  int64_t i = begin;
  while (i < end) {
    int64_t block = i / l.blockSize, stop = std::min(end, (block + 1) * l.blockSize);
    float absmax;
    if (l.doubleQuant) {
      float scale;
      std::memcpy(&scale, blob + l.scalesAt + 4 * (block / l.absmaxBlockSize), 4);
      // Two roundings, as Nf4Tensor::blockAbsmax (no FMA: separate statements).
      float scaled = code8[blob[l.absmaxAt + block]] * scale;
      absmax = scaled + offset;
    } else {
      std::memcpy(&absmax, blob + l.absmaxAt + 4 * block, 4);
    }
    float *o = out + (i - begin);
    if (i % 2 == 1) // a low nibble first
      *o++ = kNf4Code[blob[i / 2] & 15] * absmax, ++i;
    for (; i + 1 < stop; i += 2) {
      uint8_t byte = blob[i / 2];
      *o++ = kNf4Code[byte >> 4] * absmax;
      *o++ = kNf4Code[byte & 15] * absmax;
    }
    if (i < stop) // a high nibble last
      *o++ = kNf4Code[blob[i / 2] >> 4] * absmax, ++i;
  }
}

namespace {

Status checkMatrix(const char *what, const float *w, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0)
    return Status::invalid(std::string(what) + ": bad sizes (rows=" + std::to_string(rows) +
                           ", cols=" + std::to_string(cols) + ")");
  return checkFinite(w, rows * cols);
}

} // namespace

Expected<Int8Tensor> quantizeInt8PerChannel(const float *w, int64_t rows, int64_t cols) {
  if (Status s = checkMatrix("quantizeInt8PerChannel", w, rows, cols); !s)
    return s;
  Int8Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.q.assign(static_cast<size_t>(rows * cols), 0);
  t.absmax.assign(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = w + r * cols; // row is (cols)
    float am = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      am = std::max(am, std::fabs(row[c]));
    t.absmax[static_cast<size_t>(r)] = am;
    if (am == 0.0f)
      continue;
    // torch evaluates bitsandbytes' `127.0 / absmax` as `absmax.reciprocal() * 127.0`.
    float scale = (1.0f / am) * 127.0f;
    for (int64_t c = 0; c < cols; ++c) // |row[c] * scale| <= 127 up to rounding
      t.q[static_cast<size_t>(r * cols + c)] =
          static_cast<int8_t>(std::clamp(std::nearbyint(row[c] * scale), -127.0f, 127.0f));
  }
  return t;
}

Status dequantizeInt8(const Int8Tensor &t, float *out) {
  if (t.rows < 0 || t.cols < 0 || t.q.size() != static_cast<size_t>(t.rows * t.cols) ||
      t.absmax.size() != static_cast<size_t>(t.rows))
    return Status::invalid("dequantizeInt8: inconsistent tensor (rows=" + std::to_string(t.rows) +
                           ", cols=" + std::to_string(t.cols) + ")");
  // bitsandbytes' int8_vectorwise_dequant: (q * absmax) * fp32(1 / 127), two roundings.
  const float inv127 = 7.874015718698502e-3f;
  for (int64_t r = 0; r < t.rows; ++r) {
    float am = t.absmax[static_cast<size_t>(r)];
    for (int64_t c = 0; c < t.cols; ++c) {
      float scaled = static_cast<float>(t.q[static_cast<size_t>(r * t.cols + c)]) * am;
      out[r * t.cols + c] = scaled * inv127;
    }
  }
  return Status::ok();
}

Expected<Int4Tensor> quantizeInt4Groupwise(const float *w, int64_t rows, int64_t cols, int64_t group) {
  if (Status s = checkMatrix("quantizeInt4Groupwise", w, rows, cols); !s)
    return s;
  if (group < 1 || cols % group != 0)
    return Status::invalid("quantizeInt4Groupwise: group " + std::to_string(group) +
                           " does not divide the input dimension " + std::to_string(cols));
  Int4Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.group = group;
  int64_t n = rows * cols;
  t.packed.assign(static_cast<size_t>((n + 1) / 2), 0);
  t.scales.assign(static_cast<size_t>(n / group), 0.0f);
  for (int64_t g = 0; g * group < n; ++g) {
    const float *x = w + g * group; // the group is (group) consecutive weights of one row
    float m = 0.0f, amax = 0.0f;
    for (int64_t i = 0; i < group; ++i)
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        m = x[i];
      }
    float d = m / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    t.scales[static_cast<size_t>(g)] = d;
    for (int64_t i = 0; i < group; ++i) {
      float scaled = x[i] * id; // separate statements: no fused multiply-add, as ggml's reference
      float shifted = scaled + 8.5f;
      uint8_t code = static_cast<uint8_t>(std::min(15.0f, std::trunc(shifted)));
      int64_t k = g * group + i;
      uint8_t &byte = t.packed[static_cast<size_t>(k / 2)];
      byte = k % 2 == 0 ? static_cast<uint8_t>(code << 4) : static_cast<uint8_t>(byte | code);
    }
  }
  return t;
}

Status dequantizeInt4(const Int4Tensor &t, float *out) {
  int64_t n = t.rows * t.cols;
  if (t.rows < 0 || t.cols < 0 || t.group < 1 || t.cols % t.group != 0 ||
      t.packed.size() != static_cast<size_t>((n + 1) / 2) || t.scales.size() != static_cast<size_t>(n / t.group))
    return Status::invalid("dequantizeInt4: inconsistent tensor (rows=" + std::to_string(t.rows) +
                           ", cols=" + std::to_string(t.cols) + ", group=" + std::to_string(t.group) + ")");
  for (int64_t k = 0; k < n; ++k) {
    uint8_t byte = t.packed[static_cast<size_t>(k / 2)];
    int code = k % 2 == 0 ? byte >> 4 : byte & 15;
    out[k] = static_cast<float>(code - 8) * t.scales[static_cast<size_t>(k / t.group)];
  }
  return Status::ok();
}

} // namespace lrt::quant
