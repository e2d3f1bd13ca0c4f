// SPDX-License-Identifier: Apache-2.0
/// JitModule: mlir::ExecutionEngine at -O3 for the host, with the kernel symbols registered.
#include "compiler/Target/CPU/JIT.h"

#include "kernels/cpu/Alloc.h"
#include "kernels/cpu/FloatEnv.h"
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/Nf4Matmul.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"

#include <functional>
#include <mutex>

using namespace mlir;
using namespace mlir::llmp;

JitModule::JitModule(std::unique_ptr<ExecutionEngine> engine) : engine(std::move(engine)) {}
JitModule::~JitModule() = default;

llvm::Expected<std::unique_ptr<JitModule>> JitModule::create(ModuleOp module) {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  // The step heap's allocation functions return fresh blocks, as malloc does: say so, so
  // that alias analysis can tell temporaries apart (LICM, vectorisation without checks).
  for (StringRef name : {"_mlir_memref_to_llvm_alloc", "_mlir_memref_to_llvm_aligned_alloc"})
    if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
      fn.setResultAttr(0, LLVM::LLVMDialect::getNoAliasAttrName(),
                       UnitAttr::get(fn.getContext()));
  auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!tmBuilder)
    return tmBuilder.takeError();
  auto tm = tmBuilder->createTargetMachine();
  if (!tm)
    return tm.takeError();
  // Kept in a local that outlives `options`: `transformer` is a function_ref.
  std::function<llvm::Error(llvm::Module *)> transformer =
      makeOptimizingTransformer(/*optLevel=*/3, /*sizeLevel=*/0, tm->get());
  ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  // memref.copy of non-contiguous views lowers to a call to `memrefCopy` from here.
  llvm::SmallVector<llvm::StringRef, 1> libs = {LLMP_MLIR_C_RUNNER_UTILS};
  options.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(module, options, std::move(*tm));
  if (!engine)
    return engine.takeError();
  (*engine)->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    auto add = [&](const char *name, void *fn) {
      map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn), llvm::JITSymbolFlags::Exported};
    };
    add("_mlir_ciface_lrt_matmul_f32", reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_f32));
    add("_mlir_ciface_lrt_batch_matmul_f32",
        reinterpret_cast<void *>(&_mlir_ciface_lrt_batch_matmul_f32));
    add("_mlir_ciface_lrt_matmul_nf4_f32", reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_nf4_f32));
    // memref.alloc / dealloc (finalize-memref-to-llvm{use-generic-functions}) -> the
    // caching step heap: temporaries are reused across steps, no malloc/page-fault traffic.
    add("_mlir_memref_to_llvm_alloc", reinterpret_cast<void *>(&lrt_alloc));
    add("_mlir_memref_to_llvm_aligned_alloc", reinterpret_cast<void *>(&lrt_aligned_alloc));
    add("_mlir_memref_to_llvm_free", reinterpret_cast<void *>(&lrt_free));
    return map;
  });
  // Step code runs with denormals flushed (on this thread and the OpenMP pool that the
  // parallel loops and GEMMs use): denormal softmax tails and AdamW moments otherwise cost
  // a microcode assist per operation late in training.
  lrt_flush_denormals_to_zero();
  return std::unique_ptr<JitModule>(new JitModule(std::move(*engine)));
}

llvm::Expected<void *> JitModule::lookup(llvm::StringRef name) const {
  return engine->lookup(name);
}

lrt::StepFunctions JitModule::stepFunctions() const {
  lrt::StepFunctions fns;
  auto get = [&](llvm::StringRef name) -> void * {
    auto sym = engine->lookup(name);
    if (!sym) {
      llvm::consumeError(sym.takeError());
      return nullptr;
    }
    return *sym;
  };
  fns.gradStep = reinterpret_cast<lrt::GradStepFn>(get("_mlir_ciface_grad_step"));
  fns.applyStep = reinterpret_cast<lrt::ApplyStepFn>(get("_mlir_ciface_apply_step"));
  fns.evalStep = reinterpret_cast<lrt::EvalStepFn>(get("_mlir_ciface_eval_step"));
  fns.logitsStep = reinterpret_cast<lrt::LogitsStepFn>(get("_mlir_ciface_logits_step"));
  return fns;
}
