// SPDX-License-Identifier: Apache-2.0
/// Test driver for kernels/cpu/Quant: quantizes raw fp32 weights to NF4 and writes every
/// part of the result, so that test/e2e/nf4_bitsandbytes.py can compare it with the
/// `bitsandbytes` package.
///   llmp-nf4-quantize IN.f32 BLOCK ABSMAX_BLOCK|0 OUTDIR
/// (ABSMAX_BLOCK 0: no double quantization). OUTDIR gets packed.u8, absmax.f32 (raw, or
/// empty), absmax_codes.u8, absmax_scales.f32, offset.f32, block_absmax.f32,
/// dequant.f32, nf4_code.f32 and dynamic_code.f32; stdout gets bits per parameter.
#include "kernels/cpu/Quant.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

template <typename T> bool write(const std::string &path, const T *data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(n * sizeof(T)));
  return static_cast<bool>(f);
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s IN.f32 BLOCK ABSMAX_BLOCK|0 OUTDIR\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  std::vector<float> x(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(x.size() * sizeof(float)),
            reinterpret_cast<char *>(x.data()));
  lrt::quant::Nf4Options opts;
  opts.blockSize = std::atoll(argv[2]);
  opts.absmaxBlockSize = std::atoll(argv[3]);
  opts.doubleQuant = opts.absmaxBlockSize > 0;
  auto q = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()), opts);
  if (!q) {
    std::fprintf(stderr, "%s\n", q.status().message().c_str());
    return 1;
  }
  std::vector<float> deq(x.size());
  if (lrt::Status s = lrt::quant::dequantizeNf4(*q, deq.data()); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::string out = argv[4];
  std::vector<float> blockAbsmax = q->blockAbsmax();
  bool ok = write(out + "/packed.u8", q->packed.data(), q->packed.size()) &&
            write(out + "/absmax.f32", q->absmax.data(), q->absmax.size()) &&
            write(out + "/absmax_codes.u8", q->absmaxCodes.data(), q->absmaxCodes.size()) &&
            write(out + "/absmax_scales.f32", q->absmaxScales.data(), q->absmaxScales.size()) &&
            write(out + "/offset.f32", &q->absmaxOffset, 1) &&
            write(out + "/block_absmax.f32", blockAbsmax.data(), blockAbsmax.size()) &&
            write(out + "/dequant.f32", deq.data(), deq.size()) &&
            write(out + "/nf4_code.f32", lrt::quant::kNf4Code.data(), 16) &&
            write(out + "/dynamic_code.f32", lrt::quant::dynamicCode8().data(), 256);
  if (!ok) {
    std::fprintf(stderr, "cannot write to %s\n", out.c_str());
    return 1;
  }
  std::printf("%.6f\n", q->bitsPerParameter());
  return 0;
}
