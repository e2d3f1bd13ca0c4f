// SPDX-License-Identifier: Apache-2.0
/// llmpc, the llmp compiler driver.
///
///   llmpc check FILE                     parse + check; prints an "ok: ..." summary
///   llmpc emit  FILE [--stage NAME] --compile-to=ast|llmp|grad|linalg|llvm
///
/// Each subcommand is one `run*` function over the shared helpers `loadAndCheck` (read,
/// parse, import, Sema) and `llmp::emitStage` (compiler/Frontend); a new subcommand such
/// as `run` is one more function and one more line in `main`. Source errors print
/// clang-style through MLIR's SourceMgrDiagnosticHandler; errors about the input file
/// itself print one `llmpc: error: ...` line. `--verify-diagnostics` checks
/// `expected-error {{...}}` comments instead of printing (for lit tests).
#include "compiler/Frontend/LLMPGen.h"
#include "lang/ASTDump.h"
#include "lang/Loader.h"
#include "lang/Sema.h"

#if __has_include("compiler/Pipelines/Pipelines.h") && defined(LLMP_HAVE_PIPELINES)
#include "compiler/Pipelines/Pipelines.h"
#define LLMPC_HAVE_PIPELINES 1
#endif

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

namespace cl = llvm::cl;
using namespace llmp;

namespace {

cl::OptionCategory category("llmpc options");
cl::opt<std::string> command(cl::Positional, cl::desc("<check|emit>"), cl::Required,
                             cl::cat(category));
cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.llmp>"), cl::Required,
                               cl::cat(category));
cl::opt<std::string> stageName("stage", cl::desc("stage to emit (default: the first)"),
                               cl::value_desc("name"), cl::cat(category));
cl::opt<std::string> stdlibDir("stdlib", cl::desc("folder that `import std.*` resolves in"),
                               cl::value_desc("dir"), cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("output file"), cl::value_desc("file"),
                                cl::init("-"), cl::cat(category));
cl::opt<bool> verifyDiagnostics(
    "verify-diagnostics",
    cl::desc("check `expected-error {{...}}` comments against the diagnostics"),
    cl::cat(category));

enum class Phase { AST, LLMP, Grad, Linalg, LLVM };
cl::opt<Phase> compileTo(
    "compile-to", cl::desc("phase to stop after (emit)"), cl::init(Phase::LLMP),
    cl::values(clEnumValN(Phase::AST, "ast", "the checked AST, with locations"),
               clEnumValN(Phase::LLMP, "llmp", "@loss and @logits in the llmp dialect"),
               clEnumValN(Phase::Grad, "grad", "after autodiff and the optimizer step"),
               clEnumValN(Phase::Linalg, "linalg", "after lowering to linalg"),
               clEnumValN(Phase::LLVM, "llvm", "the LLVM dialect")),
    cl::cat(category));

/// Prints an error about the invocation or the input file itself (no source position).
int toolError(const llvm::Twine &message) {
  llvm::errs() << "llmpc: error: " << message << "\n";
  return 1;
}

/// The state of one compilation: context, sources and the diagnostic handler.
class Session {
public:
  Session() : ctx(makeRegistry()) { ctx.disableMultithreading(); }

  /// Installs the handler once the main file is in the SourceMgr (the verifier collects
  /// `expected-*` comments from the buffers present when it is created).
  void installHandler() {
    if (verifyDiagnostics)
      verifier = std::make_unique<mlir::SourceMgrDiagnosticVerifierHandler>(sourceMgr, &ctx);
    else
      printer = std::make_unique<mlir::SourceMgrDiagnosticHandler>(sourceMgr, &ctx);
  }

  /// Returns the exit status: in verify mode, whether the expected diagnostics matched.
  int finish(bool ok) {
    if (verifier)
      return mlir::succeeded(verifier->verify()) ? 0 : 1;
    return ok ? 0 : 1;
  }

  mlir::MLIRContext ctx;
  llvm::SourceMgr sourceMgr;

private:
  static mlir::DialectRegistry makeRegistry() {
    mlir::DialectRegistry registry;
    registerFrontendDialects(registry);
#ifdef LLMPC_HAVE_PIPELINES
    mlir::llmp::registerLLMPDialects(registry);
#endif
    return registry;
  }

  std::unique_ptr<mlir::SourceMgrDiagnosticHandler> printer;
  std::unique_ptr<mlir::SourceMgrDiagnosticVerifierHandler> verifier;
};

/// Reads, parses and checks `path` with its imports. Returns null after reporting (a
/// `llmpc: error:` line for unreadable input, diagnostics for everything else); `status`
/// then holds the exit status.
std::unique_ptr<lang::Program> loadAndCheck(Session &s, llvm::StringRef path, int &status) {
  std::string why;
  unsigned buffer = lang::readSourceFile(s.sourceMgr, path, why);
  if (!buffer) {
    status = toolError(why);
    return nullptr;
  }
  s.installHandler();
  lang::LoadOptions options;
  options.stdlibDir = stdlibDir;
  std::unique_ptr<lang::Program> program =
      lang::loadProgram(s.sourceMgr, s.ctx, buffer, options);
  if (!program || mlir::failed(lang::checkProgram(*program, s.ctx))) {
    status = s.finish(false);
    return nullptr;
  }
  status = 0;
  return program;
}

/// The stage to compile: `--stage`, else the first stage of the file.
std::optional<std::string> pickStage(const lang::Program &program) {
  if (!stageName.empty())
    return stageName.getValue();
  auto stages = program.stages();
  if (stages.empty())
    return std::nullopt;
  return stages.front()->name;
}

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

/// `llmpc check FILE`: parse, check and specialise every stage; print a summary.
int runCheck(Session &s) {
  int status = 0;
  auto program = loadAndCheck(s, inputFile, status);
  if (!program)
    return status;
  bool ok = true;
  std::vector<std::string> lines;
  for (const lang::StageDecl *stage : program->stages()) {
    lrt::StagePlan plan;
    // Emitting catches the shape facts that need numbers (e.g. `heads` divides `dim`).
    auto module = emitStage(s.ctx, *program, stage->name, plan);
    if (mlir::failed(module)) {
      ok = false;
      continue;
    }
    lines.push_back(llvm::formatv("stage '{0}': model '{1}' ({2}, {3} layers, dim {4}) "
                                  "with {5} parameters; {6} steps of {7} x {8} tokens; "
                                  "vocab {9}",
                                  plan.stage, plan.model,
                                  program->models.at(plan.model).family->name, plan.layers,
                                  plan.dim, withCommas(plan.numParams), plan.steps,
                                  plan.batch, plan.seqLen, plan.tokenizer.vocabSize)
                        .str());
  }
  if (!ok)
    return s.finish(false);
  if (!verifyDiagnostics) {
    llvm::outs() << "ok: " << inputFile << ": " << program->stages().size() << " stage(s)\n";
    for (const std::string &line : lines)
      llvm::outs() << "  " << line << "\n";
  }
  return s.finish(true);
}

/// `llmpc emit FILE --compile-to=PHASE [--stage NAME]`.
int runEmit(Session &s) {
  int status = 0;
  auto program = loadAndCheck(s, inputFile, status);
  if (!program)
    return status;
  std::string error;
  auto output = mlir::openOutputFile(outputFile, &error);
  if (!output)
    return toolError(error);
  if (compileTo == Phase::AST) {
    if (!verifyDiagnostics)
      lang::dumpAST(*program, output->os());
    output->keep();
    return s.finish(true);
  }
  std::optional<std::string> stage = pickStage(*program);
  if (!stage)
    return toolError("'" + inputFile + "' declares no stage to emit");
  lrt::StagePlan plan;
  auto module = emitStage(s.ctx, *program, *stage, plan);
  if (mlir::failed(module))
    return s.finish(false);
  if (compileTo != Phase::LLMP) {
#ifdef LLMPC_HAVE_PIPELINES
    mlir::llmp::Phase target = compileTo == Phase::Grad     ? mlir::llmp::Phase::Grad
                               : compileTo == Phase::Linalg ? mlir::llmp::Phase::Linalg
                                                            : mlir::llmp::Phase::LLVM;
    if (mlir::failed(mlir::llmp::lowerToPhase(**module, target)))
      return s.finish(false);
#else
    return toolError("--compile-to=grad|linalg|llvm needs compiler/Pipelines, which this "
                     "llmpc was built without");
#endif
  }
  if (!verifyDiagnostics)
    // Locations inline (`loc("llama.llmp":24:11)`): each op names the .llmp expression
    // it came from.
    (*module)->print(output->os(),
                     mlir::OpPrintingFlags().enableDebugInfo(true, false).useLocalScope());
  output->keep();
  return s.finish(true);
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv, "llmp compiler driver\n");
  Session session;
  if (command == "check")
    return runCheck(session);
  if (command == "emit")
    return runEmit(session);
  return toolError("unknown command '" + command + "'; expected 'check' or 'emit'");
}
