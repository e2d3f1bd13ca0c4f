// SPDX-License-Identifier: Apache-2.0
/// Test driver for kernels/cpu/Quant: quantizes raw fp32 weights and writes every part of
/// the result, so that test/e2e/nf4_bitsandbytes.py and test/e2e/int_quant.py can compare
/// it with bitsandbytes and gguf-py.
///   llmp-quantize nf4 IN.f32 BLOCK ABSMAX_BLOCK|0 OUTDIR   (0: no double quantization)
///     OUTDIR gets packed.u8, absmax.f32 (raw, or empty), absmax_codes.u8,
///     absmax_scales.f32, offset.f32, block_absmax.f32, dequant.f32, nf4_code.f32 and
///     dynamic_code.f32; stdout gets bits per parameter.
///   llmp-quantize int8 IN.f32 ROWS COLS OUTDIR      -> q.i8, absmax.f32, dequant.f32
///   llmp-quantize int4 IN.f32 ROWS COLS GROUP OUTDIR -> packed.u8, scales.f32, dequant.f32
#include "kernels/cpu/Quant.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
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

bool readFloats(const char *path, std::vector<float> &x) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  x.resize(bytes.size() / sizeof(float));
  std::memcpy(x.data(), bytes.data(), x.size() * sizeof(float));
  return true;
}

int fail(const std::string &msg) {
  std::fprintf(stderr, "%s\n", msg.c_str());
  return 1;
}

int runNf4(const std::vector<float> &x, char **argv) {
  lrt::quant::Nf4Options opts;
  opts.blockSize = std::atoll(argv[0]);
  opts.absmaxBlockSize = std::atoll(argv[1]);
  opts.doubleQuant = opts.absmaxBlockSize > 0;
  std::string out = argv[2];
  auto q = lrt::quant::quantizeNf4(x.data(), static_cast<int64_t>(x.size()), opts);
  if (!q)
    return fail(q.status().message());
  std::vector<float> deq(x.size());
  if (lrt::Status s = lrt::quant::dequantizeNf4(*q, deq.data()); !s)
    return fail(s.message());
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
  if (!ok)
    return fail("cannot write to " + out);
  std::printf("%.6f\n", q->bitsPerParameter());
  return 0;
}

int runInt(const std::vector<float> &x, bool int4, char **argv) {
  int64_t rows = std::atoll(argv[0]), cols = std::atoll(argv[1]);
  int64_t group = int4 ? std::atoll(argv[2]) : 0;
  std::string out = argv[int4 ? 3 : 2];
  if (rows * cols != static_cast<int64_t>(x.size()))
    return fail("the input has " + std::to_string(x.size()) + " weights, not rows * cols");
  std::vector<float> deq(x.size());
  bool ok;
  if (int4) {
    auto t = lrt::quant::quantizeInt4Groupwise(x.data(), rows, cols, group);
    if (!t)
      return fail(t.status().message());
    if (lrt::Status s = lrt::quant::dequantizeInt4(*t, deq.data()); !s)
      return fail(s.message());
    ok = write(out + "/packed.u8", t->packed.data(), t->packed.size()) &&
         write(out + "/scales.f32", t->scales.data(), t->scales.size());
  } else {
    auto t = lrt::quant::quantizeInt8PerChannel(x.data(), rows, cols);
    if (!t)
      return fail(t.status().message());
    if (lrt::Status s = lrt::quant::dequantizeInt8(*t, deq.data()); !s)
      return fail(s.message());
    ok = write(out + "/q.i8", t->q.data(), t->q.size()) &&
         write(out + "/absmax.f32", t->absmax.data(), t->absmax.size());
  }
  if (!ok || !write(out + "/dequant.f32", deq.data(), deq.size()))
    return fail("cannot write to " + out);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  int want = mode == "nf4" ? 6 : mode == "int8" ? 6 : mode == "int4" ? 7 : -1;
  if (argc != want) {
    std::fprintf(stderr, "usage: %s nf4 IN.f32 BLOCK ABSMAX_BLOCK|0 OUTDIR\n"
                         "       %s int8 IN.f32 ROWS COLS OUTDIR\n"
                         "       %s int4 IN.f32 ROWS COLS GROUP OUTDIR\n",
                 argv[0], argv[0], argv[0]);
    return 2;
  }
  std::vector<float> x;
  if (!readFloats(argv[2], x))
    return fail(std::string("cannot read ") + argv[2]);
  return mode == "nf4" ? runNf4(x, argv + 3) : runInt(x, mode == "int4", argv + 3);
}
