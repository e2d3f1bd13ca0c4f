// SPDX-License-Identifier: Apache-2.0
/// Peak memory and time of one training step: compiles a module at the grad phase
/// (`llmpc emit FILE --compile-to=grad -o step.mlir`) through the linalg and LLVM phases,
/// with `llmp-lower-to-linalg{attention-block=N}` when N is given (0: attention never
/// blockwise; default: the pass's 512), JIT-compiles it and runs grad_step once on
/// parameters drawn from N(0, 0.02) and tokens/targets of id 1. Prints the step heap's peak
/// (kernels/cpu/Alloc.h: every buffer the compiled step allocates; the parameter and
/// gradient buffers the caller passes in are not on it) next to the peak that
/// `llmp-step-heap-peak` computed from the bufferized IR, and the wall time.
///
/// Usage: llmp-step-memory step.mlir [attention-block]
#include "compiler/Dialect/LLMP/Transforms/StepHeapPeak.h"
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "kernels/cpu/Alloc.h"
#include "runtime/Data.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace mlir;

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    llvm::errs() << "usage: llmp-step-memory step.mlir [attention-block]\n";
    return 2;
  }
  DialectRegistry registry;
  llmp::registerLLMPDialects(registry);
  MLIRContext ctx(registry);
  llvm::SourceMgr sources;
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(argv[1], sources, &ctx);
  if (!module)
    return 1;
  auto numParams = (*module)->getAttrOfType<IntegerAttr>("llmp.num_params");
  auto grad = module->lookupSymbol<func::FuncOp>("grad_step");
  if (!numParams || !grad || grad.getNumArguments() != 6) {
    llvm::errs() << "llmp-step-memory: error: '" << argv[1]
                 << "' has no llmp.num_params or no unpacked grad_step; emit it with "
                    "llmpc emit FILE --compile-to=grad\n";
    return 1;
  }
  auto tokensTy = cast<MemRefType>(grad.getArgumentTypes()[2]);
  int64_t n = numParams.getInt(), b = tokensTy.getDimSize(0), t = tokensTy.getDimSize(1);
  if (argc == 3) {
    llmp::registerLLMPPasses();
    PassManager pm(&ctx);
    std::string pipeline = std::string("symbol-dce,llmp-lower-to-linalg{attention-block=") +
                           argv[2] + "},canonicalize,llmp-fuse-elementwise,canonicalize,cse";
    if (failed(parsePassPipeline(pipeline, pm, llvm::errs())) || failed(pm.run(*module)) ||
        failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM, llmp::Phase::Linalg)))
      return 1;
  } else if (failed(llmp::lowerToPhase(*module, llmp::Phase::LLVM, llmp::Phase::Grad))) {
    return 1;
  }
  const int64_t computed = llmp::stepHeapPeakOf(*module, "grad_step");
  auto jit = llmp::JitModule::create(*module);
  if (!jit) {
    llvm::errs() << llvm::toString(jit.takeError()) << "\n";
    return 1;
  }
  lrt::StepFunctions fns = (*jit)->stepFunctions();
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> params(n), grads(n, 0.0f), hyper(lrt::kNumHyper, 0.0f), metrics(4, 0.0f);
  for (float &x : params)
    x = normal(rng);
  std::vector<int32_t> tokens(b * t, 1), targets(b * t, 1);
  hyper[lrt::kHyperGradScale] = 1.0f;
  auto p = lrt::viewOf(params.data(), {n});
  auto g = lrt::viewOf(grads.data(), {n});
  auto tk = lrt::viewOf(tokens.data(), {b, t});
  auto tg = lrt::viewOf(targets.data(), {b, t});
  auto h = lrt::viewOf(hyper.data(), {(int64_t)hyper.size()});
  auto mt = lrt::viewOf(metrics.data(), {4});
  auto start = std::chrono::steady_clock::now();
  fns.gradStep(&p, &g, &tk, &tg, &h, &mt);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  LrtAllocStats stats = lrt_alloc_stats();
  std::printf("grad_step of %lld params on %lld x %lld tokens: loss %.4f, step heap peak %llu "
              "bytes (%.1f MiB), computed %lld bytes (%.1f MiB), %.2f s\n",
              (long long)n, (long long)b, (long long)t, metrics[lrt::kMetricLoss],
              (unsigned long long)stats.peakBytes, stats.peakBytes / 1048576.0,
              (long long)computed, computed / 1048576.0, seconds);
  return 0;
}
