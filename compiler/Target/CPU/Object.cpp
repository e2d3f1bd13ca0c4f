// SPDX-License-Identifier: Apache-2.0
/// Object files for `llmpc build`: the JIT's units (Codegen.h), emitted by the
/// TargetMachine's object-file pipeline instead of ORC's in-memory one.
#include "compiler/Target/CPU/Object.h"

#include "compiler/Target/CPU/Codegen.h"

#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

#include <mutex>

using namespace mlir;
using namespace mlir::llmp;

namespace {

/// Runs `tm`'s code generation to an object file for `module` and writes it to `path`.
/// SimpleCompiler, which the JIT's ORC layer uses, runs the same passes
/// (TargetMachine::addPassesToEmitMC) into memory.
llvm::Error emitObject(llvm::Module &module, llvm::TargetMachine &tm, llvm::StringRef path) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError(ec, "cannot write '" + path + "': " + ec.message());
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
    return llvm::createStringError("the host target cannot emit object files");
  pm.run(module);
  os.close();
  if (os.has_error())
    return llvm::createStringError(os.error(), "cannot write '" + path +
                                                   "': " + os.error().message());
  return llvm::Error::success();
}

/// Binds the calls of `module` to kernel symbols whose definition has another name
/// (the step heap's `_mlir_memref_to_llvm_*`) to that definition, as the JIT binds them.
void bindKernelSymbols(llvm::Module &module) {
  for (const KernelSymbol &symbol : kernelSymbols()) {
    llvm::Function *fn = module.getFunction(symbol.name);
    if (!fn || llvm::StringRef(symbol.name) == symbol.definition)
      continue;
    if (llvm::Function *existing = module.getFunction(symbol.definition)) {
      fn->replaceAllUsesWith(existing);
      fn->eraseFromParent();
    } else {
      fn->setName(symbol.definition);
    }
  }
}

} // namespace

llvm::Expected<std::vector<std::string>> mlir::llmp::writeObjectFiles(ModuleOp module,
                                                                      llvm::StringRef stem) {
  std::vector<std::string> paths;
  std::mutex translateMutex;
  std::vector<CodegenUnit> units = prepareCodegenUnits(module, /*split=*/true);
  for (size_t i = 0; i < units.size(); ++i) {
    // A TargetMachine per unit, as the JIT creates one per ExecutionEngine.
    auto tm = createHostTargetMachine();
    if (!tm)
      return tm.takeError();
    llvm::LLVMContext context;
    auto llvmModule = translateAndOptimize(units[i].op(), context, **tm, translateMutex);
    if (!llvmModule)
      return llvmModule.takeError();
    bindKernelSymbols(**llvmModule);
    std::string path = (stem + "." + llvm::Twine(i) + ".o").str();
    if (llvm::Error err = emitObject(**llvmModule, **tm, path))
      return std::move(err);
    paths.push_back(path);
  }
  return paths;
}

llvm::Error mlir::llmp::writeDataObject(llvm::StringRef path, llvm::StringRef symbol,
                                        llvm::StringRef data) {
  auto tm = createHostTargetMachine();
  if (!tm)
    return tm.takeError();
  llvm::LLVMContext context;
  llvm::Module module("data", context);
  module.setTargetTriple((*tm)->getTargetTriple());
  module.setDataLayout((*tm)->createDataLayout());
  llvm::Constant *bytes = llvm::ConstantDataArray::getString(context, data, /*AddNull=*/true);
  new llvm::GlobalVariable(module, bytes->getType(), /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage, bytes, symbol);
  return emitObject(module, **tm, path);
}
