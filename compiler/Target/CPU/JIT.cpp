// SPDX-License-Identifier: Apache-2.0
/// JitModule: one mlir::ExecutionEngine per step function at -O3 for the host,
/// compiled on several threads, with the kernel symbols registered.
#include "compiler/Target/CPU/JIT.h"

#include "kernels/cpu/Alloc.h"
#include "kernels/cpu/FloatEnv.h"
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/Nf4Matmul.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

using namespace mlir;
using namespace mlir::llmp;

JitModule::~JitModule() = default;

namespace {

/// The kernels/cpu symbols that generated code calls, for
/// ExecutionEngine::registerSymbols.
llvm::orc::SymbolMap kernelSymbols(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  auto add = [&](const char *name, void *fn) {
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  };
  add("_mlir_ciface_lrt_matmul_f32",
      reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_f32));
  add("_mlir_ciface_lrt_batch_matmul_f32",
      reinterpret_cast<void *>(&_mlir_ciface_lrt_batch_matmul_f32));
  add("_mlir_ciface_lrt_matmul_nf4_f32",
      reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_nf4_f32));
  // memref.alloc / dealloc (finalize-memref-to-llvm{use-generic-functions}) ->
  // the caching step heap: temporaries are reused across steps, no
  // malloc/page-fault traffic.
  add("_mlir_memref_to_llvm_alloc", reinterpret_cast<void *>(&lrt_alloc));
  add("_mlir_memref_to_llvm_aligned_alloc",
      reinterpret_cast<void *>(&lrt_aligned_alloc));
  add("_mlir_memref_to_llvm_free", reinterpret_cast<void *>(&lrt_free));
  return map;
}

/// The public functions with a body that are not `_mlir_ciface_` wrappers: the
/// step functions, each compiled in its own LLVM module with its wrapper.
llvm::SmallVector<LLVM::LLVMFuncOp> entryFunctions(ModuleOp module) {
  llvm::SmallVector<LLVM::LLVMFuncOp> fns;
  for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
    if (!fn.isExternal() && fn.getLinkage() == LLVM::Linkage::External &&
        !fn.getSymName().starts_with("_mlir_ciface_"))
      fns.push_back(fn);
  return fns;
}

/// A copy of `module` in which the entry functions other than `keep` (and their
/// `_mlir_ciface_` wrappers) are only declared.
OwningOpRef<ModuleOp> moduleFor(ModuleOp module, llvm::StringRef keep,
                                llvm::ArrayRef<LLVM::LLVMFuncOp> entries) {
  llvm::StringSet<> drop;
  for (LLVM::LLVMFuncOp fn : entries)
    if (fn.getSymName() != keep) {
      drop.insert(fn.getSymName());
      drop.insert(("_mlir_ciface_" + fn.getSymName()).str());
    }
  OpBuilder b(module.getContext());
  OwningOpRef<ModuleOp> out = ModuleOp::create(module.getLoc());
  (*out)->setAttrs(module->getAttrDictionary());
  b.setInsertionPointToEnd(out->getBody());
  for (Operation &op : module.getBody()->getOperations()) {
    auto fn = dyn_cast<LLVM::LLVMFuncOp>(op);
    if (fn && drop.contains(fn.getSymName())) {
      // A declaration (an empty body region) keeps any reference valid.
      b.insert(op.cloneWithoutRegions());
      continue;
    }
    b.clone(op);
  }
  return out;
}

/// Moves each outermost `omp.parallel` of a function into a function of its own
/// (internal, called in its place with the values it uses from above as
/// arguments). Translation to LLVM IR outlines every parallel region with
/// OpenMPIRBuilder, whose CodeExtractor scans the whole enclosing function per
/// region (CodeExtractorAnalysisCache, findAllocas): with the 2270 regions of a
/// SmolLM2 SFT stage in a few huge step functions, that is quadratic and took
/// 148 s of a 271 s JIT. In a function of its own each region costs its own
/// size; LLVM's inliner puts the small wrappers back at -O3.
void outlineParallelRegions(ModuleOp module) {
  llvm::SmallVector<omp::ParallelOp> regions;
  for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
    fn.walk<WalkOrder::PreOrder>([&](omp::ParallelOp op) {
      regions.push_back(op);
      return WalkResult::skip();
    });
  OpBuilder b(module.getContext());
  int64_t counter = 0;
  for (omp::ParallelOp op : regions) {
    auto parent = op->getParentOfType<LLVM::LLVMFuncOp>();
    llvm::SetVector<Value> captures;
    captures.insert(op->operand_begin(), op->operand_end());
    getUsedValuesDefinedAbove(op->getRegions(), captures);
    llvm::SmallVector<Type> types;
    for (Value v : captures)
      types.push_back(v.getType());
    b.setInsertionPointToEnd(module.getBody());
    auto fnType = LLVM::LLVMFunctionType::get(
        LLVM::LLVMVoidType::get(b.getContext()), types);
    auto fn = LLVM::LLVMFuncOp::create(
        b, op.getLoc(),
        (parent.getSymName() + ".parallel." + llvm::Twine(counter++)).str(),
        fnType, LLVM::Linkage::Internal);
    Block *entry = fn.addEntryBlock(b);
    IRMapping mapping;
    for (auto [v, arg] : llvm::zip(captures, entry->getArguments()))
      mapping.map(v, arg);
    b.setInsertionPointToStart(entry);
    b.clone(*op, mapping);
    LLVM::ReturnOp::create(b, op.getLoc(), ValueRange());
    b.setInsertionPoint(op);
    LLVM::CallOp::create(b, op.getLoc(), fn, captures.getArrayRef());
    op->erase();
  }
}

} // namespace

llvm::Expected<std::unique_ptr<JitModule>>
JitModule::create(ModuleOp module, const JitOptions &jitOptions) {
  return create(llvm::ArrayRef<ModuleOp>(module), jitOptions);
}

llvm::Expected<std::unique_ptr<JitModule>>
JitModule::create(llvm::ArrayRef<ModuleOp> modules, const JitOptions &jitOptions) {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  // The step heap's allocation functions return fresh blocks, as malloc does:
  // say so, so that alias analysis can tell temporaries apart (LICM,
  // vectorisation without checks).
  for (ModuleOp module : modules)
    for (StringRef name : {"_mlir_memref_to_llvm_alloc", "_mlir_memref_to_llvm_aligned_alloc"})
      if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
        fn.setResultAttr(0, LLVM::LLVMDialect::getNoAliasAttrName(),
                         UnitAttr::get(fn.getContext()));

  // One LLVM module per step function (a step function inlines everything it
  // calls, so the modules share only declarations); the whole module as one
  // with a single thread.
  size_t numEntries = 0;
  for (ModuleOp module : modules)
    numEntries += entryFunctions(module).size();
  unsigned threads = jitOptions.threads
                         ? jitOptions.threads
                         : std::max(1u, std::thread::hardware_concurrency());
  struct Part {
    std::string name; ///< the step function, or empty for a whole module
    ModuleOp source;  ///< the module it comes from
    OwningOpRef<ModuleOp> module; ///< its own module (null: all of `source`)
    size_t ops = 0; ///< its size, to start the largest first
    std::unique_ptr<ExecutionEngine> engine;
    llvm::Error error = llvm::Error::success();
  };
  std::vector<Part> parts;
  if (threads <= 1 || numEntries <= 1) {
    for (ModuleOp module : modules)
      parts.emplace_back().source = module;
  } else {
    std::optional<TimingScope> split;
    if (jitOptions.timing)
      split.emplace(
          jitOptions.timing->nest("split into one module per step function"));
    for (ModuleOp module : modules) {
      llvm::SmallVector<LLVM::LLVMFuncOp> entries = entryFunctions(module);
      for (LLVM::LLVMFuncOp fn : entries) {
        Part &part = parts.emplace_back();
        part.name = fn.getSymName().str();
        part.source = module;
        part.module = moduleFor(module, part.name, entries);
        fn.walk([&](Operation *) { ++part.ops; });
      }
    }
    std::stable_sort(
        parts.begin(), parts.end(),
        [](const Part &a, const Part &b) { return a.ops > b.ops; });
  }

  {
    std::optional<TimingScope> outline;
    if (jitOptions.timing)
      outline.emplace(
          jitOptions.timing->nest("outline OpenMP parallel regions"));
    for (Part &part : parts)
      outlineParallelRegions(part.module ? *part.module : part.source);
  }
  // Translation reads the MLIR context, which is not thread-safe (llmpc
  // disables its multithreading): one translation at a time; -O3 and code
  // generation in parallel.
  std::mutex translateMutex;
  auto compile = [&](Part &part) {
    ModuleOp m = part.module ? *part.module : part.source;
    std::string label =
        part.name.empty() ? std::string("whole module") : part.name;
    std::optional<TimingScope> scope, phase;
    if (jitOptions.timing)
      scope.emplace(
          jitOptions.timing->nest(llvm::StringRef("compile " + label)));
    auto enter = [&](const char *name) {
      if (scope)
        phase.emplace(scope->nest(name));
    };
    auto tmBuilder = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!tmBuilder) {
      part.error = tmBuilder.takeError();
      return;
    }
    auto tm = tmBuilder->createTargetMachine();
    if (!tm) {
      part.error = tm.takeError();
      return;
    }
    auto builder = [&](Operation *op, llvm::LLVMContext &llvmContext) {
      std::lock_guard<std::mutex> lock(translateMutex);
      enter("translate to LLVM IR");
      return translateModuleToLLVMIR(op, llvmContext);
    };
    std::function<llvm::Error(llvm::Module *)> optimize =
        makeOptimizingTransformer(/*optLevel=*/3, /*sizeLevel=*/0, tm->get());
    std::function<llvm::Error(llvm::Module *)> transformer =
        [&](llvm::Module *llvmModule) {
          enter("opt -O3");
          return optimize(llvmModule);
        };
    ExecutionEngineOptions options;
    options.llvmModuleBuilder = builder;
    options.transformer = transformer;
    // Machine code at the TargetMachine's level (CodeGenOptLevel::Default, llc
    // -O2): ExecutionEngine ignores jitCodeGenOptLevel when it is given a
    // TargetMachine. memref.copy of non-contiguous views lowers to a call to
    // `memrefCopy` from here.
    llvm::SmallVector<llvm::StringRef, 1> libs = {LLMP_MLIR_C_RUNNER_UTILS};
    options.sharedLibPaths = libs;
    auto engine = ExecutionEngine::create(m, options, std::move(*tm));
    if (!engine) {
      part.error = engine.takeError();
      return;
    }
    (*engine)->registerSymbols(kernelSymbols);
    // ORC generates machine code for the whole module at its first lookup.
    enter("codegen");
    std::string first = part.name;
    if (first.empty()) {
      llvm::SmallVector<LLVM::LLVMFuncOp> entries = entryFunctions(part.source);
      if (!entries.empty())
        first = entries.front().getSymName().str();
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
