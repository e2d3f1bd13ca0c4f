// SPDX-License-Identifier: Apache-2.0
/// The program loader: files, imports, SourceMgr buffers.
#include "lang/Loader.h"
#include "lang/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

#ifndef LLMP_STDLIB_DIR
#define LLMP_STDLIB_DIR "stdlib"
#endif

namespace llmp::lang {

llvm::StringRef defaultStdlibDir() { return LLMP_STDLIB_DIR; }

std::string checkText(llvm::StringRef buffer) {
  if (buffer.empty())
    return "it is empty";
  size_t nul = buffer.find('\0');
  if (nul != llvm::StringRef::npos)
    return "it is not a text file (NUL byte at offset " + std::to_string(nul) + ")";
  const auto *start = reinterpret_cast<const llvm::UTF8 *>(buffer.data());
  if (!llvm::isLegalUTF8String(&start, start + buffer.size()))
    return "it is not a text file (invalid UTF-8)";
  return "";
}

namespace {

class Loader {
public:
  Loader(llvm::SourceMgr &mgr, mlir::MLIRContext &ctx, const LoadOptions &options)
      : mgr(mgr), ctx(ctx),
        stdlibDir(options.stdlibDir.empty() ? defaultStdlibDir().str() : options.stdlibDir) {}

  /// Parses the file already in buffer `bufferId`, then its imports (recursively, imports
  /// first). Returns false after a diagnostic.
  bool load(unsigned bufferId, bool isStdlib, unsigned depth,
            const std::vector<Loc> &importedFrom = {}) {
    const llvm::MemoryBuffer *buf = mgr.getMemoryBuffer(bufferId);
    llvm::StringRef file = buf->getBufferIdentifier();
    Parser parser(buf->getBuffer(), file, ctx);
    parser.importedFrom = importedFrom;
    std::unique_ptr<Module> module = parser.parseModule();
    if (!module)
      return false;
    module->file = file.str();
    module->loc = Loc{file, 1, 1};
    module->isStdlib = isStdlib;
    for (DeclPtr &d : module->decls) {
      if (d->kind != Decl::Kind::Import)
        continue;
      auto &imp = static_cast<ImportDecl &>(*d);
      if (!resolve(imp, file))
        return false;
      if (!visited.insert(imp.resolvedFile).second)
        continue;
      if (depth > 64) {
        mlir::emitError(toMLIR(ctx, imp.loc)) << "imports are nested too deeply";
        return false;
      }
      auto bufOr = llvm::MemoryBuffer::getFile(imp.resolvedFile, /*IsText=*/true);
      if (!bufOr) {
        mlir::emitError(toMLIR(ctx, imp.loc))
            << "cannot read '" << imp.resolvedFile << "': " << bufOr.getError().message();
        return false;
      }
      std::string why = checkText((*bufOr)->getBuffer());
      if (!why.empty() && (*bufOr)->getBufferSize() != 0) {
        mlir::emitError(toMLIR(ctx, imp.loc))
            << "cannot import '" << imp.resolvedFile << "': " << why;
        return false;
      }
      unsigned id = mgr.AddNewSourceBuffer(std::move(*bufOr), llvm::SMLoc());
      std::vector<Loc> chain = {imp.loc};
      chain.insert(chain.end(), importedFrom.begin(), importedFrom.end());
      if (!load(id, imp.path.front() == "std", depth + 1, chain))
        return false;
    }
    modules.push_back(std::move(module));
    return true;
  }

  std::vector<std::unique_ptr<Module>> modules;
  llvm::StringSet<> visited;

private:
  /// Fills `imp.resolvedFile`, or reports that the module does not exist.
  bool resolve(ImportDecl &imp, llvm::StringRef fromFile) {
    llvm::SmallString<256> base;
    size_t first = 0;
    if (imp.path.front() == "std") {
      base = stdlibDir;
      first = 1;
    } else {
      base = llvm::sys::path::parent_path(fromFile);
    }
    std::string dotted;
    for (size_t i = 0; i < imp.path.size(); ++i)
      dotted += (i ? "." : "") + imp.path[i];
    if (first >= imp.path.size()) {
      mlir::emitError(toMLIR(ctx, imp.loc))
          << "expected a module name after 'std', found the end of the import";
      return false;
    }
    llvm::SmallString<256> path = base;
    for (size_t i = first; i < imp.path.size(); ++i)
      llvm::sys::path::append(path, imp.path[i]);
    llvm::SmallString<256> asFile = path;
    asFile += ".llmp";
    llvm::SmallString<256> asDir = path;
    llvm::sys::path::append(asDir, imp.path.back() + ".llmp");
    if (llvm::sys::fs::is_regular_file(asFile))
      imp.resolvedFile = std::string(asFile);
    else if (llvm::sys::fs::is_regular_file(asDir))
      imp.resolvedFile = std::string(asDir);
    else {
      mlir::emitError(toMLIR(ctx, imp.loc))
          << "cannot find module '" << dotted << "'; expected '" << asFile << "' or '"
          << asDir << "'";
      return false;
    }
    return true;
  }

  llvm::SourceMgr &mgr;
  mlir::MLIRContext &ctx;
  std::string stdlibDir;
};

} // namespace

unsigned readSourceFile(llvm::SourceMgr &sourceMgr, llvm::StringRef path,
                        std::string &toolError) {
  if (llvm::sys::fs::is_directory(path)) {
    toolError = "cannot read '" + path.str() + "': it is a directory";
    return 0;
  }
  auto bufOr = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!bufOr) {
    toolError = "cannot read '" + path.str() + "': " + bufOr.getError().message();
    return 0;
  }
  std::string why = checkText((*bufOr)->getBuffer());
  if (why.empty() && Lexer((*bufOr)->getBuffer(), path).next().kind == Tok::Eof)
    why = "it is empty (only blanks and comments)";
  if (!why.empty()) {
    toolError = "cannot compile '" + path.str() + "': " + why;
    return 0;
  }
  return sourceMgr.AddNewSourceBuffer(std::move(*bufOr), llvm::SMLoc());
}

std::unique_ptr<Program> loadProgram(llvm::SourceMgr &sourceMgr, mlir::MLIRContext &ctx,
                                     unsigned mainBuffer, const LoadOptions &options) {
  Loader loader(sourceMgr, ctx, options);
  loader.visited.insert(sourceMgr.getMemoryBuffer(mainBuffer)->getBufferIdentifier());
  if (!loader.load(mainBuffer, /*isStdlib=*/false, 0))
    return nullptr;
  auto program = std::make_unique<Program>();
  program->modules = std::move(loader.modules);
  return program;
}

} // namespace llmp::lang
