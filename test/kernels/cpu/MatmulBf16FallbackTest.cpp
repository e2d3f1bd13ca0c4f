// SPDX-License-Identifier: Apache-2.0
/// On a CPU without bf16 dot products `_mlir_ciface_lrt_matmul_bf16` is the fp32 kernel.
/// This binary lowers oneDNN's ISA to AVX-512 without BF16 (DNNL_MAX_CPU_ISA, read once at
/// oneDNN's first use) before any test runs, as such a CPU would present it.
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/MatmulBf16.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

TEST(MatmulBf16Fallback, WithoutBf16IsaTheProductIsTheFp32One) {
  EXPECT_FALSE(lrt_matmul_bf16_native());
  const int64_t m = 128, n = 96, k = 160;
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> a(m * k), b(k * n), c1(m * n, 0.5f), c2(m * n, 0.5f);
  for (float &x : a) x = g(rng);
  for (float &x : b) x = g(rng);
  auto av = lrt::viewOf(a.data(), {m, k}), bv = lrt::viewOf(b.data(), {k, n});
  auto cv1 = lrt::viewOf(c1.data(), {m, n}), cv2 = lrt::viewOf(c2.data(), {m, n});
  _mlir_ciface_lrt_matmul_bf16(0, 0, 1, &av, &bv, &cv1);
  _mlir_ciface_lrt_matmul_f32(0, 0, 1, &av, &bv, &cv2);
  EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4));
}

TEST(MatmulBf16Fallback, WithoutBf16IsaAStoredBf16BIsWidenedExactly) {
  // _mlir_ciface_lrt_matmul_bf16_b on a CPU without bf16: the fp32 kernel on B widened
  // exactly from its bf16 bits, bit for bit, in both B layouts, accumulating.
  const int64_t m = 128, n = 96, k = 160;
  std::mt19937 rng(9);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int tb = 0; tb < 2; ++tb) {
    std::vector<float> a(m * k), wide(k * n), c1(m * n, 0.5f), c2(m * n, 0.5f);
    std::vector<uint16_t> bits(k * n);
    for (float &x : a) x = g(rng);
    for (size_t i = 0; i < bits.size(); ++i) {
      bits[i] = lrt::toBf16(g(rng));
      wide[i] = lrt::fromBf16(bits[i]);
    }
    int64_t br = tb ? n : k, bc = tb ? k : n;
    auto av = lrt::viewOf(a.data(), {m, k});
    auto bv = lrt::viewOf(bits.data(), {br, bc});
    auto wv = lrt::viewOf(wide.data(), {br, bc});
    auto cv1 = lrt::viewOf(c1.data(), {m, n}), cv2 = lrt::viewOf(c2.data(), {m, n});
    _mlir_ciface_lrt_matmul_bf16_b(0, tb, 1, &av, &bv, &cv1);
    _mlir_ciface_lrt_matmul_f32(0, tb, 1, &av, &wv, &cv2);
    EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * 4)) << "tb " << tb;
  }
}

int main(int argc, char **argv) {
  setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE", 1);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
