// SPDX-License-Identifier: Apache-2.0
/// The phase pipelines. Each builder reads as the list of steps of its phase.
#include "compiler/Pipelines/Pipelines.h"

#include "compiler/Conversion/LLMPToLinalg/Passes.h"
#include "compiler/Conversion/LinalgToLRT/Passes.h"
#include "compiler/Dialect/LLMP/IR/LLMPOps.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include <mutex>

using namespace mlir;

namespace mlir::llmp {

llvm::StringRef phaseName(Phase phase) {
  switch (phase) {
  case Phase::AST: return "ast";
  case Phase::LLMP: return "llmp";
  case Phase::Grad: return "grad";
  case Phase::Linalg: return "linalg";
  case Phase::LLVM: return "llvm";
  }
  return "";
}

llvm::StringRef phaseDescription(Phase phase) {
  switch (phase) {
  case Phase::AST: return "the checked syntax tree of the .llmp source";
  case Phase::LLMP: return "llmp dialect: @loss and @logits as the frontend emits them";
  case Phase::Grad: return "llmp dialect with gradients and the train/eval/logits step functions";
  case Phase::Linalg: return "linalg on tensors, elementwise chains fused, before bufferization";
  case Phase::LLVM: return "LLVM dialect with BLAS calls, ready for the JIT";
  }
  return "";
}

std::optional<Phase> parsePhase(llvm::StringRef name) {
  for (Phase p : {Phase::AST, Phase::LLMP, Phase::Grad, Phase::Linalg, Phase::LLVM})
    if (phaseName(p) == name)
      return p;
  return std::nullopt;
}

void registerLLMPDialects(DialectRegistry &registry) {
  registry.insert<LLMPDialect>();
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
}

void registerLLMPPasses() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    registerLLMPTransformsPasses();
    registerLLMPToLinalgPasses();
    registerLinalgToLRTPasses();
    // One pipeline per phase, e.g. `llmp-opt --llmp-grad-phase`.
    PassPipelineRegistration<>("llmp-grad-phase", "llmp -> grad (autodiff, step functions)",
                               buildGradPhase);
    PassPipelineRegistration<>("llmp-linalg-phase", "grad -> linalg on tensors, fused",
                               buildLinalgPhase);
    PassPipelineRegistration<>("llmp-llvm-phase", "linalg -> LLVM dialect with BLAS calls",
                               buildLLVMPhase);
  });
}

/// Appends a textual pipeline (no `builtin.module(...)` wrapper: `pm` is module-anchored).
static void addText(OpPassManager &pm, llvm::StringRef text) {
  if (failed(parsePassPipeline(text, pm, llvm::errs())))
    llvm::report_fatal_error("llmp: malformed built-in pass pipeline");
}

void buildGradPhase(OpPassManager &pm) {
  pm.addPass(createLLMPAutodiff());   // @loss -> @loss_grad
  pm.addPass(createLLMPRecompute());  // `recompute:`: layers' forwards cloned before their backwards
  pm.addPass(createLLMPBuildSteps()); // train_step / eval_step / logits_step
  addText(pm, "canonicalize,cse");    // fold transposes into matmuls, drop dead gradients
}

void buildLinalgPhase(OpPassManager &pm) {
  addText(pm, "symbol-dce");              // @loss etc. are private and inlined by now
  pm.addPass(createLLMPLowerToLinalg());  // every llmp op -> linalg/tensor/arith/math
  addText(pm, "canonicalize,"             // fold reshapes and constants
              "llmp-accumulate-into-matmul," // C += A B instead of (0 + A B) + C
              "llmp-fuse-elementwise,"     // fuse elementwise chains, keep named matmuls
              "canonicalize,cse");
}

/// The LLVM phase up to the step heap's peak: bufferization with explicit deallocations,
/// the static arena, then llmp-step-heap-peak (`llmpc check` stops here; buildLLVMPhase
/// goes on).
static void addBufferizeAndStepHeapPeak(OpPassManager &pm) {
  addText(pm,
          // One fill per GEMM / reduction init, so bufferization copies no shared zeros.
          "llmp-duplicate-fills,"
          // Tensors -> buffers; step functions already take memrefs.
          "one-shot-bufferize{bufferize-function-boundaries "
          "function-boundary-type-conversion=identity-layout-map},"
          "buffer-deallocation-pipeline,"
          // ... which frees buffers at the end of the function: free each after its last use.
          "llmp-dealloc-at-last-use,"
          // Those freed in the entry block share one static arena, planned by liveness.
          "llmp-static-arena,"
          // The step heap's peak per function (the arena is one alloc of it), while allocs
          // and deallocs are explicit.
          "llmp-step-heap-peak");
}

void buildLLVMPhase(OpPassManager &pm) {
  addBufferizeAndStepHeapPeak(pm);
  addText(pm,
          // Matrix products -> OpenBLAS (after deallocation, which must see no opaque calls).
          "llmp-linalg-to-lrt,"
          // Zero fills of whole buffers (each GEMM's / reduction's init) -> one memset:
          // as loops they were a fifth of the regions and ~40% of the JIT's time.
          "llmp-fills-to-memset,"
          // exp -> inline polynomial, so softmax / cross-entropy loops vectorise.
          "llmp-approximate-math,"
          // Sums and maxima may be reassociated, so that the loop vectoriser widens them.
          "llmp-reassociate-reductions,"
          // Everything else -> loops: scf.parallel over the parallel dimensions, scf.for
          // over reductions.
          "convert-linalg-to-parallel-loops,"
          // Outermost loops with enough work stay parallel, the rest become scf.for ...
          "llmp-parallelize-loops,"
          // ... and each parallel loop is one OpenMP region over the cores (libomp);
          // canonicalize inlines the alloca scopes around the loop bodies (no allocas).
          "convert-scf-to-openmp,canonicalize,"
          "convert-scf-to-cf,expand-strided-metadata,lower-affine,"
          // Allocations call _mlir_memref_to_llvm_{alloc,free}: the JIT's caching step heap;
          // loads and stores in OpenMP regions get alias scopes, so that LLVM vectorises.
          "llmp-finalize-memref-to-llvm,convert-math-to-llvm,convert-arith-to-llvm,"
          "convert-cf-to-llvm,convert-func-to-llvm,convert-index-to-llvm,convert-openmp-to-llvm,"
          "reconcile-unrealized-casts");
}

LogicalResult lowerToPhase(ModuleOp module, Phase target, Phase from, TimingScope *timing) {
  if (from < Phase::LLMP || target < from)
    return module.emitError() << "cannot lower from phase '" << phaseName(from)
                              << "' to phase '" << phaseName(target) << "'";
  registerLLMPPasses();
  PassManager pm(module->getContext(), ModuleOp::getOperationName());
  if (timing)
    pm.enableTiming(*timing);
  if (from < Phase::Grad && target >= Phase::Grad)
    buildGradPhase(pm);
  if (from < Phase::Linalg && target >= Phase::Linalg)
    buildLinalgPhase(pm);
  if (from < Phase::LLVM && target >= Phase::LLVM)
    buildLLVMPhase(pm);
  return pm.run(module);
}

LogicalResult computeStepHeapPeaks(ModuleOp module) {
  registerLLMPPasses();
  PassManager pm(module->getContext(), ModuleOp::getOperationName());
  buildGradPhase(pm);
  buildLinalgPhase(pm);
  addBufferizeAndStepHeapPeak(pm);
  return pm.run(module);
}

} // namespace mlir::llmp
