// SPDX-License-Identifier: Apache-2.0
/// JitModule: one mlir::ExecutionEngine per step function at -O3 for the host,
/// compiled on several threads, with the kernel symbols registered.
#include "compiler/Target/CPU/JIT.h"

#include "compiler/Target/CPU/Codegen.h"
#include "kernels/cpu/FloatEnv.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

using namespace mlir;
using namespace mlir::llmp;

JitModule::~JitModule() = default;

namespace {

/// The kernels/cpu symbols that generated code calls (Codegen.h), for
/// ExecutionEngine::registerSymbols.
llvm::orc::SymbolMap kernelSymbolMap(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  for (const KernelSymbol &symbol : kernelSymbols())
    map[interner(symbol.name)] = {llvm::orc::ExecutorAddr::fromPtr(symbol.address),
                                  llvm::JITSymbolFlags::Exported};
  return map;
}

} // namespace

llvm::Expected<std::unique_ptr<JitModule>>
JitModule::create(ModuleOp module, const JitOptions &jitOptions) {
  return create(llvm::ArrayRef<ModuleOp>(module), jitOptions);
}

llvm::Expected<std::unique_ptr<JitModule>>
JitModule::create(llvm::ArrayRef<ModuleOp> modules, const JitOptions &jitOptions) {
  // One LLVM module per step function with several threads (Codegen.h); the
  // whole module as one with a single thread.
  unsigned threads = jitOptions.threads
                         ? jitOptions.threads
                         : std::max(1u, std::thread::hardware_concurrency());
  struct Part {
    CodegenUnit unit;
    std::unique_ptr<ExecutionEngine> engine;
    llvm::Error error = llvm::Error::success();
  };
  std::vector<Part> parts;
  {
    std::optional<TimingScope> prepare;
    if (jitOptions.timing)
      prepare.emplace(jitOptions.timing->nest(
          "split into one module per step function, outline OpenMP parallel regions"));
    for (CodegenUnit &unit : prepareCodegenUnits(modules, /*split=*/threads > 1))
      parts.emplace_back().unit = std::move(unit);
  }
  // Translation reads the MLIR context, which is not thread-safe (llmpc
  // disables its multithreading): one translation at a time; -O3 and code
  // generation in parallel.
  std::mutex translateMutex;
  auto compile = [&](Part &part) {
    const std::string &name = part.unit.name;
    std::string label = name.empty() ? std::string("whole module") : name;
    std::optional<TimingScope> scope, phase;
    if (jitOptions.timing)
      scope.emplace(
          jitOptions.timing->nest(llvm::StringRef("compile " + label)));
    auto enter = [&](const char *phaseName) {
      if (scope)
        phase.emplace(scope->nest(phaseName));
    };
    auto tm = createHostTargetMachine();
    if (!tm) {
      part.error = tm.takeError();
      return;
    }
    // Translation and -O3 happen in the module builder, as for an object file
    // (Object.h), so that both paths optimise the same LLVM IR; ExecutionEngine
    // then only adds its packed `_mlir_` wrappers, which llmp does not call.
    llvm::TargetMachine &machine = **tm;
    std::optional<llvm::Error> buildError;
    auto builder = [&](Operation *op, llvm::LLVMContext &llvmContext)
        -> std::unique_ptr<llvm::Module> {
      auto module = translateAndOptimize(cast<ModuleOp>(op), llvmContext, machine,
                                         translateMutex, enter);
      if (!module) {
        buildError = module.takeError();
        return nullptr;
      }
      return std::move(*module);
    };
    ExecutionEngineOptions options;
    options.llvmModuleBuilder = builder;
    // Machine code at the TargetMachine's level (CodeGenOptLevel::Default, llc
    // -O2): ExecutionEngine ignores jitCodeGenOptLevel when it is given a
    // TargetMachine. memref.copy of non-contiguous views lowers to a call to
    // `memrefCopy` from here.
    llvm::SmallVector<llvm::StringRef, 1> libs = {LLMP_MLIR_C_RUNNER_UTILS};
    options.sharedLibPaths = libs;
    auto engine = ExecutionEngine::create(part.unit.op(), options, std::move(*tm));
    if (buildError) {
      if (engine)
        part.error = std::move(*buildError);
      else
        part.error = llvm::joinErrors(std::move(*buildError), engine.takeError());
      return;
    }
    if (!engine) {
      part.error = engine.takeError();
      return;
    }
    (*engine)->registerSymbols(kernelSymbolMap);
    // ORC generates machine code for the whole module at its first lookup.
    enter("codegen");
    std::string first = name;
    if (first.empty()) {
      llvm::SmallVector<StringRef> entries = entryFunctionNames(part.unit.source);
      if (!entries.empty())
        first = entries.front().str();
    }
    if (!first.empty()) {
      auto sym = (*engine)->lookup(first);
      if (!sym) {
        part.error = sym.takeError();
        return;
      }
    }
    phase.reset();
    part.engine = std::move(*engine);
  };
  if (parts.size() == 1 || threads <= 1) {
    for (Part &part : parts)
      compile(part);
  } else {
    // Largest first, each thread taking the next module when it is done.
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < std::min<size_t>(threads, parts.size()); ++t)
      pool.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < parts.size();)
          compile(parts[i]);
      });
    for (std::thread &t : pool)
      t.join();
  }
  llvm::Error errors = llvm::Error::success();
  for (Part &part : parts)
    errors = llvm::joinErrors(std::move(errors), std::move(part.error));
  if (errors)
    return std::move(errors);
  // Step code runs with denormals flushed (on this thread and the OpenMP pool
  // that the parallel loops and GEMMs use): denormal softmax tails and AdamW
  // moments otherwise cost a microcode assist per operation late in training.
  lrt_flush_denormals_to_zero();
  std::unique_ptr<JitModule> jit(new JitModule());
  for (Part &part : parts)
    jit->engines.push_back(std::move(part.engine));
  return jit;
}

llvm::Expected<void *> JitModule::lookup(llvm::StringRef name) const {
  std::string errors;
  for (const auto &engine : engines) {
    auto sym = engine->lookup(name);
    if (sym)
      return *sym;
    errors = llvm::toString(sym.takeError());
  }
  return llvm::createStringError(errors);
}

lrt::StepFunctions JitModule::stepFunctions() const {
  lrt::StepFunctions fns;
  auto get = [&](llvm::StringRef name) -> void * {
    auto sym = lookup(name);
    if (!sym) {
      llvm::consumeError(sym.takeError());
      return nullptr;
    }
    return *sym;
  };
  fns.gradStep =
      reinterpret_cast<lrt::GradStepFn>(get("_mlir_ciface_grad_step"));
  fns.applyStep =
      reinterpret_cast<lrt::ApplyStepFn>(get("_mlir_ciface_apply_step"));
  fns.evalStep =
      reinterpret_cast<lrt::EvalStepFn>(get("_mlir_ciface_eval_step"));
  fns.logitsStep =
      reinterpret_cast<lrt::LogitsStepFn>(get("_mlir_ciface_logits_step"));
  return fns;
}
