// SPDX-License-Identifier: Apache-2.0
/// The code generation steps that the JIT and the object writer share: host
/// TargetMachine, one unit per step function, translation and -O3.
#include "compiler/Target/CPU/Codegen.h"

#include "kernels/cpu/Alloc.h"
#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/MatmulBf16.h"
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
#include "llvm/IR/Module.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::llmp;

namespace {

/// A copy of `module` in which the entry functions other than `keep` (and their
/// `_mlir_ciface_` wrappers) are only declared.
OwningOpRef<ModuleOp> moduleFor(ModuleOp module, llvm::StringRef keep,
                                llvm::ArrayRef<StringRef> entries) {
  llvm::StringSet<> drop;
  for (StringRef fn : entries)
    if (fn != keep) {
      drop.insert(fn);
      drop.insert(("_mlir_ciface_" + fn).str());
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
    llvm::SetVector<Value> used;
    used.insert(op->operand_begin(), op->operand_end());
    getUsedValuesDefinedAbove(op->getRegions(), used);
    // Constants (sizes, strides, offsets of static memrefs, loop bounds) are cloned into
    // the new function, not passed: as arguments they would be unknown there, and LLVM
    // could neither count the loops' trips nor bound their accesses, so it vectorised none
    // of the regions' loops.
    llvm::SetVector<Value> captures;
    llvm::SmallVector<Operation *> constants;
    for (Value v : used) {
      Operation *def = v.getDefiningOp();
      if (def && def->getNumRegions() == 0 && def->getNumOperands() == 0 &&
          def->hasTrait<OpTrait::ConstantLike>())
        constants.push_back(def);
      else
        captures.insert(v);
    }
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
    for (Operation *c : constants)
      b.clone(*c, mapping);
    b.clone(*op, mapping);
    LLVM::ReturnOp::create(b, op.getLoc(), ValueRange());
    b.setInsertionPoint(op);
    LLVM::CallOp::create(b, op.getLoc(), fn, captures.getArrayRef());
    op->erase();
  }
}

} // namespace

llvm::Expected<std::unique_ptr<llvm::TargetMachine>> mlir::llmp::createHostTargetMachine() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  return builder->createTargetMachine();
}

llvm::SmallVector<StringRef> mlir::llmp::entryFunctionNames(ModuleOp module) {
  llvm::SmallVector<StringRef> names;
  for (auto fn : module.getOps<LLVM::LLVMFuncOp>())
    if (!fn.isExternal() && fn.getLinkage() == LLVM::Linkage::External &&
        !fn.getSymName().starts_with("_mlir_ciface_"))
      names.push_back(fn.getSymName());
  return names;
}

std::vector<CodegenUnit> mlir::llmp::prepareCodegenUnits(llvm::ArrayRef<ModuleOp> modules,
                                                         bool split) {
  // The step heap's allocation functions return fresh blocks, as malloc does:
  // say so, so that alias analysis can tell temporaries apart (LICM,
  // vectorisation without checks).
  for (ModuleOp module : modules)
    for (StringRef name : {"_mlir_memref_to_llvm_alloc", "_mlir_memref_to_llvm_aligned_alloc"})
      if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
        fn.setResultAttr(0, LLVM::LLVMDialect::getNoAliasAttrName(),
                         UnitAttr::get(fn.getContext()));
  // One LLVM module per step function (a step function inlines everything it
  // calls, so the modules share only declarations), or the whole module as one.
  size_t numEntries = 0;
  for (ModuleOp module : modules)
    numEntries += entryFunctionNames(module).size();
  std::vector<CodegenUnit> units;
  if (!split || numEntries <= 1) {
    for (ModuleOp module : modules)
      units.emplace_back().source = module;
  } else {
    for (ModuleOp module : modules) {
      llvm::SmallVector<StringRef> entries = entryFunctionNames(module);
      for (StringRef name : entries) {
        CodegenUnit &unit = units.emplace_back();
        unit.name = name.str();
        unit.source = module;
        unit.module = moduleFor(module, name, entries);
        module.lookupSymbol<LLVM::LLVMFuncOp>(name).walk([&](Operation *) { ++unit.ops; });
      }
    }
    std::stable_sort(units.begin(), units.end(),
                     [](const CodegenUnit &a, const CodegenUnit &b) { return a.ops > b.ops; });
  }
  for (CodegenUnit &unit : units)
    outlineParallelRegions(unit.op());
  return units;
}

llvm::Expected<std::unique_ptr<llvm::Module>>
mlir::llmp::translateAndOptimize(ModuleOp unit, llvm::LLVMContext &context,
                                 llvm::TargetMachine &tm, std::mutex &translateMutex,
                                 llvm::function_ref<void(const char *)> enterPhase) {
  std::unique_ptr<llvm::Module> module;
  {
    std::lock_guard<std::mutex> lock(translateMutex);
    if (enterPhase)
      enterPhase("translate to LLVM IR");
    module = translateModuleToLLVMIR(unit, context);
  }
  if (!module)
    return llvm::createStringError("translation of the step functions to LLVM IR failed");
  ExecutionEngine::setupTargetTripleAndDataLayout(module.get(), &tm);
  if (enterPhase)
    enterPhase("opt -O3");
  if (llvm::Error err = makeOptimizingTransformer(/*optLevel=*/3, /*sizeLevel=*/0, &tm)(module.get()))
    return std::move(err);
  return module;
}

llvm::ArrayRef<KernelSymbol> mlir::llmp::kernelSymbols() {
  static const KernelSymbol symbols[] = {
      {"_mlir_ciface_lrt_matmul_f32", reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_f32),
       "_mlir_ciface_lrt_matmul_f32"},
      {"_mlir_ciface_lrt_batch_matmul_f32",
       reinterpret_cast<void *>(&_mlir_ciface_lrt_batch_matmul_f32),
       "_mlir_ciface_lrt_batch_matmul_f32"},
      {"_mlir_ciface_lrt_matmul_nf4_f32",
       reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_nf4_f32),
       "_mlir_ciface_lrt_matmul_nf4_f32"},
      {"_mlir_ciface_lrt_matmul_bf16", reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_bf16),
       "_mlir_ciface_lrt_matmul_bf16"},
      {"_mlir_ciface_lrt_matmul_bf16_b",
       reinterpret_cast<void *>(&_mlir_ciface_lrt_matmul_bf16_b),
       "_mlir_ciface_lrt_matmul_bf16_b"},
      {"_mlir_ciface_lrt_batch_matmul_bf16",
       reinterpret_cast<void *>(&_mlir_ciface_lrt_batch_matmul_bf16),
       "_mlir_ciface_lrt_batch_matmul_bf16"},
      // memref.alloc / dealloc (finalize-memref-to-llvm{use-generic-functions}) ->
      // the caching step heap: temporaries are reused across steps, no
      // malloc/page-fault traffic.
      {"_mlir_memref_to_llvm_alloc", reinterpret_cast<void *>(&lrt_alloc), "lrt_alloc"},
      {"_mlir_memref_to_llvm_aligned_alloc", reinterpret_cast<void *>(&lrt_aligned_alloc),
       "lrt_aligned_alloc"},
      {"_mlir_memref_to_llvm_free", reinterpret_cast<void *>(&lrt_free), "lrt_free"},
  };
  return symbols;
}
