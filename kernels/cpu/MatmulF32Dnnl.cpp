// SPDX-License-Identifier: Apache-2.0
/// fp32 products on oneDNN (kernels/cpu/MatmulF32Dnnl.h). Its own engine, stream and plan
/// cache: the bf16 kernel (MatmulBf16.cpp) keeps its own, as the two plans differ.
#include "kernels/cpu/MatmulF32Dnnl.h"

#include <dnnl.hpp>

#include <algorithm>
#include <array>
#include <cpuid.h>
#include <cstring>
#include <map>
#include <mutex>

namespace lrt {
namespace {

using dnnl::memory;

/// Every input of a plan: shapes, strides and beta.
using Key = std::array<int64_t, 17>;

struct Context {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mu;
  std::map<Key, dnnl::matmul> plans; // a failed creation is cached as an empty matmul
};

Context &context() {
  static Context ctx;
  return ctx;
}

memory::desc desc(const DnnlOperand &x) {
  if (x.batch == 1)
    return memory::desc({x.rows, x.cols}, memory::data_type::f32, {x.s0, x.s1});
  return memory::desc({x.batch, x.rows, x.cols}, memory::data_type::f32, {x.sb, x.s0, x.s1});
}

} // namespace

bool matmulF32AllOnDnnl() {
  static const bool all = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
      return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return std::strcmp(vendor, "AuthenticAMD") == 0 && (isa & avx512) == avx512;
  }();
  return all;
}

bool matmulF32PrefersDnnl(int64_t m, int64_t n, int64_t k) {
  if (matmulF32AllOnDnnl())
    return std::min(m, n) > 4;
  return std::min({m, n, k}) <= 64;
}

bool matmulF32Dnnl(const DnnlOperand &a, const DnnlOperand &b, const DnnlOperand &c,
                   bool accumulate) {
  Context &ctx = context();
  Key key{a.batch, a.rows, a.cols, b.cols, a.sb, a.s0, a.s1, b.sb, b.s0, b.s1,
          c.sb,    c.s0,   c.s1,   accumulate};
  dnnl::matmul mm;
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    auto it = ctx.plans.find(key);
    if (it == ctx.plans.end()) {
      try {
        dnnl::primitive_attr attr;
        if (accumulate) { // C += A B; without it C = A B
          dnnl::post_ops sum;
          sum.append_sum(1.0f);
          attr.set_post_ops(sum);
        }
        mm = dnnl::matmul(dnnl::matmul::primitive_desc(
            dnnl::matmul::desc(desc(a), desc(b), desc(c)), attr, ctx.engine));
      } catch (const dnnl::error &) {
        mm = dnnl::matmul(); // oneDNN refuses these strides: OpenBLAS computes it
      }
      it = ctx.plans.emplace(key, mm).first;
    }
    mm = it->second;
  }
  if (!mm)
    return false;
  try {
    memory am(desc(a), ctx.engine, a.data), bm(desc(b), ctx.engine, b.data),
        cm(desc(c), ctx.engine, c.data);
    mm.execute(ctx.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    ctx.stream.wait();
    return true;
  } catch (const dnnl::error &) {
    return false;
  }
}

} // namespace lrt
