// SPDX-License-Identifier: Apache-2.0
/// llmpc, the llmp compiler driver.
///
///   llmpc check FILE [--json PLAN]       parse + check; prints an "ok: ..." summary and the
///                                        plan (memory and FLOPs per stage)
///   llmpc emit  FILE [--stage NAME] --compile-to=ast|llmp|grad|linalg|llvm
///   llmpc run   FILE [--stage NAME] [--run-dir DIR] [--steps N] [--samples N]
///                    [--resume] [--checkpoint-every N]
///   mpirun -np R llmpc run FILE ...      data parallel over R processes (the stage's
///                                        `ranks: R`); rank 0 prints and writes
///   llmpc build FILE [--stage NAME] [--steps N] [--run-dir DIR] -o BINARY   a standalone
///                                        trainer of a 'pretrain' or 'sft' stage (object files of
///                                        its step functions linked with the runtime)
///   llmpc grads FILE [--stage NAME] -o OUT.safetensors   (loss and gradients of the first
///                                                         batch, for reference tests)
///   llmpc report RUN_DIR [-o OUT_DIR]    charts (PNG, SVG) and report.html of a run
///                                        (default OUT_DIR: RUN_DIR/report)
///   llmpc logits FILE [--stage NAME] [--run-dir DIR] --prompt TEXT... [--greedy N]
///                    -o OUT.safetensors  (the trained model's logits on prompts and their
///                                         greedy continuations, for reference tests)
///   llmpc chat FILE [--stage NAME] [--prompt TEXT...] [--system TEXT] [--max-new N]
///                   [--temperature T] [--top-k K]   chat with the stage's model through
///                                        its chat template; interactive without --prompt
///   llmpc export FILE [--stage NAME] [--run-dir DIR] --format hf|peft -o OUT_DIR
///                                        the trained model as a Hugging Face folder (a
///                                        LoRA stage: merged, or its adapter for PEFT)
///   llmpc import-hf HF_DIR -o RUN_DIR    a Hugging Face llama folder to an llmp checkpoint
///
/// Each subcommand is one `run*` function over the shared helpers `loadAndCheck` (read,
/// parse, import, Sema) and `llmp::emitStage` (compiler/Frontend); a new subcommand such
/// as `run` is one more function and one more line in `main`. Source errors print
/// clang-style through MLIR's SourceMgrDiagnosticHandler; errors about the input file
/// itself print one `llmpc: error: ...` line. `--verify-diagnostics` checks
/// `expected-error {{...}}` comments instead of printing (for lit tests).
#include "compiler/Dialect/LLMP/Transforms/StaticArena.h"
#include "compiler/Dialect/LLMP/Transforms/StepHeapPeak.h"
#include "compiler/Frontend/LLMPGen.h"
#include "lang/ASTDump.h"
#include "lang/Loader.h"
#include "lang/Plan.h"
#include "lang/Sema.h"

#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "compiler/Target/CPU/Link.h"
#include "compiler/Target/CPU/Object.h"
#include "runtime/BpeTokenizer.h"
#include "runtime/Chat.h"
#include "runtime/Checkpoint.h"
#include "runtime/Frozen.h"
#include "runtime/GgufModel.h"
#include "runtime/SftTrainer.h"
#include "runtime/StageRun.h"
#include "runtime/HfExport.h"
#include "runtime/Logits.h"
#include "runtime/PlanJson.h"
#include "runtime/Lora.h"
#include "runtime/PeftExport.h"
#include "runtime/Safetensors.h"
#include "runtime/Tokenizer.h"
#include "runtime/Report.h"
#include "runtime/TrainLoop.h"
#include "runtime/Trainer.h"
#include "runtime/aot/Manifest.h"
#include "runtime/collective/Collective.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <cstdio>
#include <new>
#include <optional>

namespace cl = llvm::cl;
using namespace llmp;

namespace {

cl::OptionCategory category("llmpc options");
cl::opt<std::string> command(cl::Positional, cl::desc("<check|emit|run|build|grads|report|export|import-hf|logits|chat>"),
                             cl::Required, cl::cat(category));
cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.llmp | run dir (report)>"),
                               cl::Required, cl::cat(category));
cl::opt<std::string> stageName("stage", cl::desc("stage to emit, run or build (default: the first; build: the only one)"),
                               cl::value_desc("name"), cl::cat(category));
cl::opt<std::string> stdlibDir("stdlib", cl::desc("folder that `import std.*` resolves in"),
                               cl::value_desc("dir"), cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("output file"), cl::value_desc("file"),
                                cl::init("-"), cl::cat(category));
cl::opt<std::string> runDir("run-dir",
                            cl::desc("run directory (run, grads; build: the binary's default; default runs/<pipeline>/<stage>)"),
                            cl::value_desc("dir"), cl::cat(category));
cl::opt<int64_t> stepsOverride("steps", cl::desc("train this many steps instead of the stage's"),
                               cl::value_desc("n"), cl::init(0), cl::cat(category));
cl::opt<int64_t> numSamples("samples", cl::desc("texts to sample after training (run)"),
                            cl::value_desc("n"), cl::init(3), cl::cat(category));
enum class Progress { Auto, Bar, Lines, Quiet };
cl::opt<Progress> progressStyle(
    "progress", cl::desc("how training progress is shown (run)"), cl::init(Progress::Auto),
    cl::values(clEnumValN(Progress::Auto, "auto", "a bar on a terminal, else plain lines"),
               clEnumValN(Progress::Bar, "bar", "one updating line"),
               clEnumValN(Progress::Lines, "lines", "plain lines"),
               clEnumValN(Progress::Quiet, "quiet", "nothing")),
    cl::cat(category));
cl::opt<bool> resume("resume",
                     cl::desc("continue from the newest valid checkpoint in the run directory"),
                     cl::cat(category));
cl::opt<int64_t> checkpointEvery("checkpoint-every",
                                 cl::desc("checkpoint every N steps (default: at each eval)"),
                                 cl::value_desc("n"), cl::init(0), cl::cat(category));
cl::opt<std::string> planJson("json", cl::desc("write the plan as JSON to this file (check)"),
                              cl::value_desc("file"), cl::cat(category));
cl::opt<bool> verifyDiagnostics(
    "verify-diagnostics",
    cl::desc("check `expected-error {{...}}` comments against the diagnostics"),
    cl::cat(category));

cl::opt<std::string> exportFormat("format",
                                  cl::desc("export format (export): hf, a Hugging Face folder; peft, "
                                           "a LoRA stage's adapter for the peft package"),
                                  cl::value_desc("hf|peft"), cl::init("hf"), cl::cat(category));
cl::list<std::string> prompts("prompt",
                              cl::desc("prompt text (logits; chat: user turns; repeat for several)"),
                              cl::value_desc("text"), cl::cat(category));
cl::opt<int64_t> maxNewTokens("max-new", cl::desc("at most n tokens per reply (chat)"),
                              cl::value_desc("n"), cl::init(256), cl::cat(category));
cl::opt<double> temperature("temperature",
                            cl::desc("sampling temperature; 0 is greedy (chat, default 0)"),
                            cl::value_desc("t"), cl::init(0.0), cl::cat(category));
cl::opt<int64_t> topK("top-k", cl::desc("sample among the k likeliest tokens (chat)"),
                      cl::value_desc("k"), cl::init(0), cl::cat(category));
cl::opt<std::string> systemPrompt("system", cl::desc("a system message first (chat)"),
                                  cl::value_desc("text"), cl::cat(category));
cl::opt<int64_t> greedyTokens("greedy",
                              cl::desc("also continue each prompt greedily by n tokens (logits)"),
                              cl::value_desc("n"), cl::init(0), cl::cat(category));

cl::opt<int64_t> decodeBatch(
    "decode-batch",
    cl::desc("sequences generated together by the compiled prefill/decode_step (logits "
             "--greedy: prompts per batch; emit: also emit @prefill and @decode)"),
    cl::value_desc("n"), cl::init(1), cl::cat(category));
cl::opt<int64_t> prefillLen("prefill-len",
                            cl::desc("prompt tokens per prefill_step call (default: the context)"),
                            cl::value_desc("n"), cl::init(0), cl::cat(category));
cl::opt<bool> kvCache("kv-cache",
                      cl::desc("generate with prefill/decode_step and a KV cache (logits, chat, "
                               "run's sft samples; default; LoRA stages on merged weights); "
                               "=false: one full-window logits_step per token"),
                      cl::init(true), cl::cat(category));

cl::opt<bool> timing("timing",
                      cl::desc("print the wall time of each compile phase of a stage to stderr "
                               "(MLIR passes, translation to LLVM IR, opt -O3, codegen)"),
                      cl::init(false), cl::cat(category));
cl::opt<unsigned> jitThreads("jit-threads",
                             cl::desc("threads that compile the step functions (default: the "
                                      "hardware threads; 1: one LLVM module)"),
                             cl::value_desc("n"), cl::init(0), cl::cat(category));

/// The prompt length of the compiled prefill_step: --prefill-len, else the context.
int64_t prefillLenFor(const lang::StageInfo &stage) {
  if (prefillLen > 0)
    return prefillLen;
  return stage.model ? stage.model->get("context", stage.seqLen) : 0;
}

using mlir::llmp::Phase;
cl::opt<Phase> compileTo(
    "compile-to", cl::desc("phase to stop after (emit)"), cl::init(Phase::LLMP),
    cl::values(clEnumValN(Phase::AST, "ast", "the checked AST, with locations"),
               clEnumValN(Phase::LLMP, "llmp", "@loss and @logits in the llmp dialect"),
               clEnumValN(Phase::Grad, "grad", "after autodiff and the optimizer step"),
               clEnumValN(Phase::Linalg, "linalg", "after lowering to linalg"),
               clEnumValN(Phase::LLVM, "llvm", "the LLVM dialect")),
    cl::cat(category));

/// Prints an error about the invocation or the input file itself (no source position).
/// Progress printed so far (llvm::outs() and the runtime's stdout) is flushed first, so
/// the error comes after it when both streams go to one pipe.
int toolError(const llvm::Twine &message) {
  llvm::outs().flush();
  std::fflush(stdout);
  llvm::errs() << "llmpc: error: " << message << "\n";
  return 1;
}

/// Checks the run options: a given --steps must be positive, --samples and
/// --checkpoint-every not negative, a given --run-dir not empty (`--run-dir "$DIR"` with
/// DIR unset would otherwise train into the default folder). Returns the exit status after
/// reporting, or nullopt.
std::optional<int> checkRunOptions() {
  if (runDir.getNumOccurrences() && runDir.empty())
    return toolError("--run-dir is empty; give a folder, or leave it out for "
                     "runs/<pipeline>/<stage>");
  if (stepsOverride.getNumOccurrences() && stepsOverride < 1)
    return toolError("--steps must be at least 1, got " + llvm::Twine(int64_t(stepsOverride)) +
                     " (leave it out to run the stage's own steps)");
  if (numSamples < 0)
    return toolError("--samples must be 0 or more, got " + llvm::Twine(int64_t(numSamples)));
  // Left out: checkpoints at each evaluation and the last step; an explicit 0 (or less)
  // names no interval.
  if (checkpointEvery.getNumOccurrences() && checkpointEvery < 1)
    return toolError("--checkpoint-every must be at least 1, got " +
                     llvm::Twine(int64_t(checkpointEvery)) +
                     " (leave it out to checkpoint at each evaluation and the last step)");
  return std::nullopt;
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
    mlir::llmp::registerLLMPDialects(registry);
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

/// The stage to compile: `--stage`, else the first stage of the file. Returns nullopt
/// after reporting (no stages, or `--stage` names none of them); `status` then holds the
/// exit status.
std::optional<std::string> pickStage(const lang::Program &program, llvm::StringRef verb,
                                     int &status) {
  auto stages = program.stages();
  if (stages.empty()) {
    status = toolError("'" + inputFile + "' declares no stage to " + verb);
    return std::nullopt;
  }
  if (stageName.empty())
    return stages.front()->name;
  std::string names;
  for (const lang::StageDecl *stage : stages) {
    if (stage->name == stageName)
      return stageName.getValue();
    names += (names.empty() ? "" : ", ") + stage->name;
  }
  status = toolError("no stage '" + stageName + "' in " + inputFile + " (it declares " + names +
                     ")");
  return std::nullopt;
}

/// For `run` without --stage: the stages of the file's first pipeline when it has several
/// (`run` trains them one after another, in order), else empty (one stage runs).
std::vector<std::string> pipelineStagesToRun(const lang::Program &program) {
  std::vector<std::string> stages;
  if (!stageName.empty())
    return stages;
  for (const lang::DeclPtr &d : program.main().decls)
    if (d->kind == lang::Decl::Kind::Pipeline) {
      const auto &p = static_cast<const lang::PipelineDecl &>(*d);
      if (p.stages.size() >= 2)
        for (const auto &stage : p.stages)
          stages.push_back(stage.first);
      break;
    }
  return stages;
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

/// The pipeline that lists `stage`, or empty (a stage in no pipeline).
std::string ownPipelineOf(const lang::Program &program, llvm::StringRef stage) {
  for (const lang::DeclPtr &d : program.main().decls)
    if (d->kind == lang::Decl::Kind::Pipeline) {
      const auto &p = static_cast<const lang::PipelineDecl &>(*d);
      for (const auto &s : p.stages)
        if (s.first == stage)
          return p.name;
    }
  return "";
}

/// The pipeline that lists `stage`, or the first pipeline, or empty.
std::string pipelineOf(const lang::Program &program, llvm::StringRef stage) {
  std::string first;
  for (const lang::DeclPtr &d : program.main().decls)
    if (d->kind == lang::Decl::Kind::Pipeline) {
      const auto &p = static_cast<const lang::PipelineDecl &>(*d);
      if (first.empty())
        first = p.name;
      for (const auto &s : p.stages)
        if (s.first == stage)
          return p.name;
    }
  return first;
}

/// Lowers the emitted module of a stage that runs (pretrain, sft) as far as
/// llmp-step-heap-peak (bufferized, not to the LLVM dialect) and replaces the plan's
/// activation estimate by the largest step heap peak of its step functions; `arena`
/// receives that function's static arena (llmp-static-arena). False after reporting.
bool computeActivations(mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module,
                        lang::StagePlanFigures &f, mlir::llmp::StepArena &arena) {
  if (mlir::failed(module) || mlir::failed(mlir::llmp::computeStepHeapPeaks(**module)))
    return false;
  f.activationBytes = mlir::llmp::largestStepHeapPeak(**module);
  f.activationsComputed = true;
  arena = mlir::llmp::arenaOfLargestStepHeap(**module);
  return true;
}

/// "; arena A for N buffers, live peak L" (bytes) for a step function's static arena,
/// or "" when it has none.
std::string arenaText(const mlir::llmp::StepArena &arena) {
  if (arena.buffers == 0)
    return "";
  return "; arena " + withCommas(arena.bytes) + " for " + std::to_string(arena.buffers) +
         " buffers, live peak " + withCommas(arena.livePeak);
}

/// Why `llmpc run` cannot train the stage today (defined below), or nullopt.
std::optional<std::string> notExecutable(const lang::StageInfo &info);

/// `llmpc check FILE [--json PLAN]`: parse, check and specialise every stage; print a
/// summary and the plan.
int runCheck(Session &s) {
  int status = 0;
  auto program = loadAndCheck(s, inputFile, status);
  if (!program)
    return status;
  bool ok = true;
  std::vector<std::string> lines;
  std::vector<lang::StagePlanFigures> figures;
  std::map<std::string, mlir::llmp::StepArena> arenas; // by stage, where computed
  for (const lang::StageDecl *stage : program->stages()) {
    const lang::StageInfo &info = program->stageInfo.at(stage->name);
    figures.push_back(lang::planStage(info));
    if (info.kind != "pretrain") {
      lines.push_back(llvm::formatv("stage '{0}' ({1}): model '{2}' ({3}, {4} layers, dim {5}) "
                                    "with {6} parameters{7}",
                                    stage->name, info.kind, info.model->decl->name,
                                    info.model->family->name, info.model->get("layers"),
                                    info.model->get("dim"), withCommas(info.model->numParams),
                                    info.parent ? "; from '" + info.parent->decl->name + "'"
                                                : std::string())
                          .str());
      if (info.kind == "sft") {
        // A fine-tuning stage the compiler cannot build yet (e.g. a model family or loss
        // it does not lower) keeps the estimate; `llmpc run` reports why it cannot run.
        mlir::ScopedDiagnosticHandler quiet(&s.ctx, [](mlir::Diagnostic &) {
          return mlir::success();
        });
        lrt::StagePlan plan;
        computeActivations(emitStage(s.ctx, *program, stage->name, plan), figures.back(),
                           arenas[stage->name]);
      }
      continue;
    }
    lrt::StagePlan plan;
    // Emitting catches the shape facts that need numbers (e.g. `heads` divides `dim`).
    auto module = emitStage(s.ctx, *program, stage->name, plan);
    if (mlir::failed(module) ||
        !computeActivations(std::move(module), figures.back(), arenas[stage->name])) {
      ok = false;
      continue;
    }
    lines.push_back(llvm::formatv("stage '{0}': model '{1}' ({2}, {3} layers, dim {4}) "
                                  "with {5} parameters; {6} steps of {7} x {8} tokens{10}; "
                                  "vocab {9}",
                                  plan.stage, plan.model,
                                  program->models.at(plan.model).family->name, plan.layers,
                                  plan.dim, withCommas(plan.numParams), plan.steps,
                                  plan.batch * plan.ranks, plan.seqLen,
                                  plan.tokenizer.vocabSize,
                                  plan.ranks > 1 ? llvm::formatv(" on {0} ranks", plan.ranks).str()
                                                 : std::string())
                        .str());
  }
  if (!ok)
    return s.finish(false);
  // Pipeline totals: stages run one after another, so memory is the peak over stages and
  // FLOPs add up over every stage's steps.
  int64_t peak = 0;
  std::string peakStage;
  double totalFlops = 0;
  for (const lang::StagePlanFigures &f : figures) {
    if (f.totalBytes() > peak)
      peak = f.totalBytes(), peakStage = f.stage;
    totalFlops += f.flopsPerStep * double(f.kind == "deploy" ? 0 : f.steps);
  }
  if (!verifyDiagnostics) {
    llvm::outs() << "ok: " << inputFile << ": " << program->stages().size() << " stage(s)\n";
    for (const std::string &line : lines)
      llvm::outs() << "  " << line << "\n";
    llvm::outs() << "plan:\n";
    for (const lang::StagePlanFigures &f : figures) {
      auto info = program->stageInfo.find(f.stage);
      bool bf16 = info != program->stageInfo.end() && info->second.precision == "bf16";
      std::string recompute = info != program->stageInfo.end() && info->second.recompute != "none"
                                  ? ", recompute " + info->second.recompute
                                  : "";
      llvm::outs() << "  stage '" << f.stage << "' (" << f.kind
                   << (bf16 ? ", bf16 matrix products" : "") << recompute << "): parameters "
                   << withCommas(f.params) << ", trainable " << withCommas(f.trainable)
                   << (f.frozenParams > 0 ? ", frozen " + withCommas(f.frozenParams)
                                          : std::string())
                   << "\n"
                   << "    bytes: weights " << withCommas(f.weightBytes) << ", frozen "
                   << withCommas(f.frozenBytes) << ", gradients "
                   << withCommas(f.gradientBytes) << ", optimizer "
                   << withCommas(f.optimizerBytes) << ", activations "
                   << withCommas(f.activationBytes)
                   << (f.activationsComputed ? " (step heap peak, computed" +
                                                   arenaText(arenas[f.stage]) + ")"
                               : f.activationBytes > 0 ? " (estimate)" : "")
                   << ", kv cache "
                   << withCommas(f.kvCacheBytes) << "; total " << withCommas(f.totalBytes())
                   << llvm::formatv(" ({0:F1} MiB)", f.totalBytes() / 1048576.0) << "\n"
                   << llvm::formatv("    FLOPs per {0}: {1:E3}", f.kind == "deploy" ? "token" : "step",
                                    f.flopsPerStep)
                   << "\n";
    }
    llvm::outs() << "  pipeline total: peak " << withCommas(peak) << " bytes"
                 << (peakStage.empty() ? "" : " (stage '" + peakStage + "')")
                 << llvm::formatv(", {0:E3} FLOPs over all steps", totalFlops) << "\n";
    // What `llmpc run` (and `build`) would refuse before any compute, in its words.
    for (const lang::StageDecl *stage : program->stages())
      if (std::optional<std::string> why = notExecutable(program->stageInfo.at(stage->name)))
        llvm::outs() << "not runnable: stage '" << stage->name << "' " << *why << "\n";
  }
  if (!planJson.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(planJson, ec);
    if (ec)
      return toolError("cannot write '" + planJson + "': " + ec.message());
    llvm::json::OStream j(os, 2);
    j.object([&] {
      j.attribute("file", inputFile);
      j.attributeArray("stages", [&] {
        for (const lang::StagePlanFigures &f : figures) {
          const lang::StageInfo &info = program->stageInfo.at(f.stage);
          const lang::ModelSpec &m = *info.model;
          j.object([&] {
            // The fields of the run directory's plan.json, then the figures.
            // null for a stage in no pipeline, as in plan.json
            if (std::string pipeline = ownPipelineOf(*program, f.stage); !pipeline.empty())
              j.attribute("pipeline", pipeline);
            else
              j.attribute("pipeline", nullptr);
            j.attribute("stage", f.stage);
            j.attribute("kind", f.kind);
            j.attribute("model", f.model);
            j.attribute("precision", info.precision);
            j.attribute("num_params", f.params);
            j.attribute("trainable_params", f.trainable);
            j.attribute("frozen_params", f.frozenParams);
            j.attribute("vocab", m.get("vocab"));
            j.attribute("context", m.get("context"));
            j.attribute("dim", m.get("dim"));
            j.attribute("layers", m.get("layers"));
            j.attribute("batch", info.batch);
            j.attribute("seq_len", info.seqLen);
            j.attribute("steps", info.steps);
            if (info.parent)
              j.attribute("from", info.parent->decl->name);
            j.attribute("bytes", llvm::json::Object{{"weights", f.weightBytes},
                                                    {"frozen", f.frozenBytes},
                                                    {"gradients", f.gradientBytes},
                                                    {"optimizer", f.optimizerBytes},
                                                    {"activations", f.activationBytes},
                                                    {"kv_cache", f.kvCacheBytes},
                                                    {"total", f.totalBytes()}});
            j.attribute("activations_computed", f.activationsComputed);
            if (const mlir::llmp::StepArena &arena = arenas[f.stage]; arena.buffers > 0)
              j.attribute("step_arena", llvm::json::Object{{"bytes", arena.bytes},
                                                           {"buffers", arena.buffers},
                                                           {"live_peak", arena.livePeak}});
            j.attribute("flops_per_step", f.flopsPerStep);
            // Why `llmpc run` refuses the stage before any compute (absent: it runs).
            if (std::optional<std::string> why = notExecutable(info))
              j.attribute("not_runnable", "stage '" + f.stage + "' " + *why);
          });
        }
      });
      j.attribute("total", llvm::json::Object{{"peak_bytes", peak},
                                              {"peak_stage", peakStage},
                                              {"flops", totalFlops}});
    });
    os << "\n";
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
  std::optional<std::string> stage = pickStage(*program, "emit", status);
  if (!stage)
    return status;
  lrt::StagePlan plan;
  // --decode-batch: the inference functions (@logits, @prefill, @decode) instead.
  lrt::KVCacheShape cache;
  auto stageInfo = program->stageInfo.find(*stage);
  auto module = decodeBatch.getNumOccurrences() && stageInfo != program->stageInfo.end()
                    ? emitInference(s.ctx, *program, *stage, decodeBatch,
                                    prefillLenFor(stageInfo->second), plan, cache)
                    : emitStage(s.ctx, *program, *stage, plan);
  if (mlir::failed(module))
    return s.finish(false);
  if (compileTo != Phase::LLMP && mlir::failed(mlir::llmp::lowerToPhase(**module, compileTo)))
    return s.finish(false);
  if (!verifyDiagnostics)
    // Locations inline (`loc("llama.llmp":24:11)`): each op names the .llmp expression
    // it came from.
    (*module)->print(output->os(),
                     mlir::OpPrintingFlags().enableDebugInfo(true, false).useLocalScope());
  output->keep();
  return s.finish(true);
}

/// `llmpc run`'s processes (set before compiling): under an MPI launcher
/// (`mpirun -np R llmpc run ...`, seen in its environment) the MPI collective layer, else
/// this process alone.
lrt::Collective *runWorld = nullptr;

/// For `run`: an error unless the stage's `ranks` equals the number of processes that
/// run it, checked before compiling. Returns the exit status after reporting, or nullopt.
std::optional<int> checkRanks(const lang::StageInfo &info) {
  const int64_t ranks = std::max<int64_t>(1, info.ranks), size = runWorld ? runWorld->size() : 1;
  if (ranks == size)
    return std::nullopt;
  const std::string stage = info.decl->name;
  if (size == 1)
    return toolError("stage '" + stage + "' has ranks: " + llvm::Twine(ranks) +
                     "; launch it as " + llvm::Twine(ranks) + " processes: mpirun -np " +
                     llvm::Twine(ranks) + " llmpc run " + inputFile + " ...");
  return toolError("stage '" + stage + "' has ranks: " + llvm::Twine(ranks) +
                   " but mpirun started " + llvm::Twine(size) + " processes (rank " +
                   llvm::Twine(runWorld->rank()) + "); set 'ranks: " + llvm::Twine(size) +
                   "' in the stage or launch with -np " + llvm::Twine(ranks));
}

/// Lowers an emitted stage module to LLVM and JIT-compiles it. Returns null after
/// reporting (emission or lowering diagnostics, or the JIT's error); `status` then holds the
/// exit status.
/// `heapPeak` (optional) receives the largest step heap peak of the module's functions
/// (llmp-step-heap-peak), in bytes.
std::unique_ptr<mlir::llmp::JitModule>
jitStage(Session &s, mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module,
         const std::string &stage, int &status, int64_t *heapPeak = nullptr) {
  // --timing: the phases' wall times, printed (tree) once the stage is compiled.
  mlir::DefaultTimingManager timer;
  timer.setEnabled(timing);
  timer.setDisplayMode(mlir::DefaultTimingManager::DisplayMode::Tree);
  std::optional<mlir::TimingScope> root, lower;
  if (timing) {
    root.emplace(timer.getRootScope());
    lower.emplace(root->nest(mlir::TimingIdentifier::get("lower '" + stage + "' to LLVM dialect",
                                                         timer)));
  }
  if (mlir::failed(module) ||
      mlir::failed(mlir::llmp::lowerToPhase(**module, mlir::llmp::Phase::LLVM,
                                            mlir::llmp::Phase::LLMP,
                                            lower ? &*lower : nullptr))) {
    status = s.finish(false);
    return nullptr;
  }
  lower.reset();
  if (heapPeak)
    *heapPeak = mlir::llmp::largestStepHeapPeak(**module);
  if (timing) {
    // The entry points this module compiles (their C interfaces), so that a reader of the
    // timings knows what each JIT built.
    llvm::SmallVector<llvm::StringRef> entries;
    for (auto fn : (**module).getOps<mlir::FunctionOpInterface>())
      if (llvm::StringRef n = fn.getName(); !fn.isExternal() && n.consume_front("_mlir_ciface_"))
        entries.push_back(n);
    llvm::sort(entries);
    llvm::errs() << "compiling '" << stage << "': " << llvm::join(entries, ", ") << "\n";
  }
  mlir::llmp::JitOptions jitOptions;
  jitOptions.threads = jitThreads;
  std::optional<mlir::TimingScope> jitScope;
  if (root) {
    jitScope.emplace(root->nest("JIT to machine code"));
    jitOptions.timing = &*jitScope;
  }
  auto jit = mlir::llmp::JitModule::create(**module, jitOptions);
  if (root) {
    jitScope.reset();
    root->stop();
    root.reset();
    timer.print();
    timer.setEnabled(false); // printed: no second, empty report at destruction
  }
  if (!jit) {
    status = toolError("compiling stage '" + stage + "': " + llvm::toString(jit.takeError()));
    return nullptr;
  }
  return std::move(*jit);
}

/// A stage compiled to native code, with the plan the runtime needs.
struct CompiledStage {
  lrt::StagePlan plan;
  std::unique_ptr<mlir::llmp::JitModule> jit;
  /// An `sft` stage's starting weights and tokenizer (extras.sft); a LoRA stage of a
  /// stdlib `llama` model: its adapter and model, for the PEFT folder `run` writes to
  /// <run>/adapter (extras.peft, runtime/StageRun.h writeStageAdapter).
  lrt::StageExtras extras;
  /// An `sft` stage's prefill_step / decode_step for its samples (extras.sft's prefillStep,
  /// decodeStep point into it; a LoRA stage's take its merged weights); null otherwise.
  std::unique_ptr<mlir::llmp::JitModule> sampler;
  int64_t stepHeapPeak = 0; ///< the largest computed step heap peak (llmp-step-heap-peak)
};

/// The run directory of `stage` without --run-dir: runs/<pipeline>/<stage>.
std::string defaultRunDirectory(const lang::Program &program, const std::string &stage);

/// The PEFT export settings of a stage with `adapter: lora(...)` (rank, alpha, rsLoRA,
/// dropout); baseModel is left empty.
lrt::LoraExportSpec loraSpecOf(const lang::StageInfo &stage) {
  lrt::LoraExportSpec spec;
  spec.rank = stage.loraRank, spec.alpha = stage.loraAlpha, spec.rslora = stage.rslora;
  spec.dropout = stage.loraDropout;
  return spec;
}

/// `base_model_name_or_path` of a LoRA stage's adapter: the weights it starts from (the
/// GGUF file of its `from_gguf` model, or the `from:` stage's checkpoint), else the name of
/// its model declaration.
std::string baseModelOf(const lang::StageInfo &stage, const lrt::SftSource &sft) {
  if (!sft.weightsPath.empty())
    return sft.weightsPath;
  if (stage.model && !stage.model->ggufPath.empty())
    return stage.model->ggufPath;
  return stage.model ? stage.model->decl->name : std::string();
}

/// The weights the `sft` stage `info` starts from (a LoRA stage's frozen base): the
/// checkpoint of its `from:` stage, else the GGUF file of its `from_gguf` model, into
/// source.weightsPath. Returns the exit status after reporting, or nullopt.
std::optional<int> sftWeights(const lang::Program &program, const lang::StageInfo &info,
                              lrt::SftSource &source) {
  const std::string stage = info.decl->name;
  if (info.parent) {
    source.weightsPath =
        defaultRunDirectory(program, info.parent->decl->name) + "/checkpoint/model.safetensors";
    if (!llvm::sys::fs::exists(source.weightsPath))
      return toolError("stage '" + stage + "' starts from stage '" + info.parent->decl->name +
                       "', which has no checkpoint yet ('" + source.weightsPath +
                       "'); run that stage first");
  } else if (info.model && !info.model->ggufPath.empty()) {
    source.weightsPath = info.model->ggufPath;
  } else {
    return toolError("stage '" + stage + "' fine-tunes model '" +
                     (info.model ? info.model->decl->name : std::string("?")) +
                     "', which has no weights: declare it with from_gguf(\"model.gguf\") or "
                     "start from a trained stage with 'from: STAGE'");
  }
  return std::nullopt;
}

/// Where the `sft` stage `info` starts (sftWeights); the conversations are rendered and
/// tokenised with its `from_gguf` tokenizer. Returns the exit status after reporting, or
/// nullopt.
std::optional<int> sftSource(const lang::Program &program, const lang::StageInfo &info,
                             lrt::SftSource &source) {
  if (std::optional<int> bad = sftWeights(program, info, source))
    return bad;
  const std::string stage = info.decl->name;
  const lang::TokenizerInfo *tok = nullptr;
  if (info.tokenizer)
    if (auto it = program.tokenizers.find(info.tokenizer->name); it != program.tokenizers.end())
      tok = &it->second;
  if (!tok || tok->kind != "from_gguf") // compileStage refused it already (notExecutable)
    return toolError("stage '" + stage + "' " +
                     notExecutable(info).value_or("has no from_gguf tokenizer"));
  source.tokenizerPath = tok->path;
  return std::nullopt;
}

/// Erases `@logits` from an emitted module, so that no `logits_step` is built and
/// JIT-compiled for a caller that never calls it (a SmolLM2 logits_step is 20-40 s of JIT).
/// Passes failure through.
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
withoutLogits(mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>> module) {
  if (mlir::succeeded(module))
    if (auto logits = (**module).lookupSymbol<mlir::func::FuncOp>("logits"))
      logits.erase();
  return module;
}

/// Whether `a` and `b` lay out the same parameters (names, offsets, sizes) in the same
/// flat buffer.
bool sameLayout(const lrt::StagePlan &a, const lrt::StagePlan &b) {
  if (a.numParams != b.numParams || a.params.size() != b.params.size())
    return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].name != b.params[i].name || a.params[i].offset != b.params[i].offset ||
        a.params[i].numel != b.params[i].numel)
      return false;
  return true;
}

/// For the samples of an `sft` stage whose step functions lay out `stagePlan`: emits the
/// model's prefill_step / decode_step with a KV cache for one sequence and prompts of up to
/// the context into `module`, its cache shape into sft.cache. A full fine-tuning stage's
/// take its own parameter layout (emitInference; `module` left null, sampling through
/// logits_step, if the layout differs). A LoRA or QLoRA stage's are the model's without
/// adapter (emitBaseInference), whose layout goes to sft.mergedParams / mergedNumParams:
/// the samples run on the merged weights (runtime/Lora.h mergedStageParams). `llmpc run`
/// JIT-compiles the module (compileSampler), `llmpc build` links its objects. Returns the
/// exit status after reporting, or nullopt.
std::optional<int> emitSampler(Session &s, const lang::Program &program,
                               const lang::StageInfo &info, const lrt::StagePlan &stagePlan,
                               lrt::SftSource &sft, mlir::OwningOpRef<mlir::ModuleOp> &module) {
  const std::string stage = info.decl->name;
  const bool lora = stagePlan.frozenBytes > 0;
  lrt::StagePlan plan;
  lrt::KVCacheShape cache;
  auto emitted = withoutLogits(lora ? emitBaseInference(s.ctx, program, stage, /*batch=*/1,
                                                        prefillLenFor(info), plan, cache)
                                    : emitInference(s.ctx, program, stage, /*batch=*/1,
                                                    prefillLenFor(info), plan, cache));
  if (mlir::failed(emitted))
    return s.finish(false);
  if (lora) {
    if (lrt::Status st = lrt::checkMergedLayout(stagePlan, plan.params, plan.numParams); !st)
      return toolError("stage '" + stage + "': the samples' model without adapter: " +
                       st.message());
    sft.mergedParams = std::move(plan.params);
    sft.mergedNumParams = plan.numParams;
  } else if (!sameLayout(plan, stagePlan)) {
    return std::nullopt; // the samples run through the stage's own logits_step
  }
  sft.cache = cache;
  module = std::move(*emitted);
  return std::nullopt;
}

/// For the samples of an `sft` stage: JIT-compiles emitSampler's module and points
/// compiled.extras.sft's prefillStep / decodeStep at its functions (and compiled.sampler
/// at the module, which has no logits_step); nothing when emitSampler gives none. Returns
/// the exit status after reporting, or nullopt.
std::optional<int> compileSampler(Session &s, const lang::Program &program,
                                  const lang::StageInfo &info, CompiledStage &compiled) {
  const std::string stage = info.decl->name;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  if (std::optional<int> bad =
          emitSampler(s, program, info, compiled.plan, compiled.extras.sft, module))
    return bad;
  if (!module)
    return std::nullopt;
  int status = 0;
  auto sampler = jitStage(s, std::move(module), stage, status);
  if (!sampler)
    return status;
  auto prefill = sampler->lookup("_mlir_ciface_prefill_step");
  auto decode = sampler->lookup("_mlir_ciface_decode_step");
  if (llvm::Error missing = llvm::joinErrors(prefill.takeError(), decode.takeError()))
    return toolError("stage '" + stage + "': the sampler lacks prefill_step or decode_step: " +
                     llvm::toString(std::move(missing)));
  compiled.extras.sft.prefillStep = reinterpret_cast<lrt::PrefillStepFn>(*prefill);
  compiled.extras.sft.decodeStep = reinterpret_cast<lrt::DecodeStepFn>(*decode);
  compiled.sampler = std::move(sampler);
  return std::nullopt;
}

/// Why `llmpc run` cannot train the stage today, or nullopt when it can: 'pretrain' stages
/// that start from fresh weights with a `bpe` tokenizer (the runtime trains a SentencePiece
/// BPE on the data, runtime/Trainer.h), and 'sft' stages whose tokenizer is `from_gguf` (its
/// chat template renders the conversations). `run` (each stage of a pipeline before the
/// first starts) and `build` refuse such a stage with this reason; `check` prints it.
std::optional<std::string> notExecutable(const lang::StageInfo &info) {
  const std::string tokenizerKind =
      info.tokenizer && info.tokenizer->value ? info.tokenizer->value->text : std::string();
  if (info.kind != "pretrain" && info.kind != "sft")
    return "(kind " + info.kind + ") is not yet executable: only 'pretrain' and 'sft' stages "
           "run today" +
           // A deploy stage with a GGUF tokenizer (examples/chat.llmp) does run, through chat.
           std::string(info.kind == "deploy" && tokenizerKind == "from_gguf"
                           ? "; 'llmpc chat' and 'llmpc logits' run its model"
                           : "");
  if (info.kind == "pretrain" && info.parent)
    return "(kind pretrain) continues from stage '" + info.parent->decl->name +
           "': a pretrain stage that starts from a checkpoint is not yet executable (it would "
           "start from fresh weights); leave out 'from:', or continue as an 'sft' stage";
  if (info.kind == "pretrain" && info.tokenizer && tokenizerKind != "bpe")
    return "(kind pretrain) uses tokenizer '" + info.tokenizer->name + "' (" + tokenizerKind +
           "): a pretrain stage trains a SentencePiece BPE on its data; give it a 'bpe' "
           "tokenizer, e.g. 'tokenizer tok = bpe(train_on: DATA, vocab: N)' and 'tokenizer: tok'";
  if (info.kind == "sft" && tokenizerKind != "from_gguf")
    return "(kind sft) renders its conversations with the chat template of a GGUF tokenizer" +
           (info.tokenizer ? ", and its tokenizer '" + info.tokenizer->name + "' is '" +
                                 tokenizerKind + "'" +
                                 (info.parent && !info.decl->field("tokenizer")
                                      ? " (inherited from stage '" +
                                                    info.parent->decl->name + "')"
                                              : std::string())
                           : std::string()) +
           "; give it one, e.g. 'tokenizer tok = from_gguf(\"model.gguf\")' and 'tokenizer: tok'";
  return std::nullopt;
}

/// A relative dataset path is relative to the .llmp file that names it: makes
/// plan.data.path so.
void resolveDataPath(lrt::StagePlan &plan) {
  lrt::DatasetSpec &data = plan.data;
  if (!data.path.empty() && llvm::sys::path::is_relative(data.path)) {
    llvm::SmallString<256> resolved(llvm::sys::path::parent_path(inputFile));
    llvm::sys::path::append(resolved, data.path);
    data.path = std::string(resolved);
  }
}

/// `path` made absolute against the working directory (unchanged if it is already, or
/// empty). False if it cannot be.
bool makeAbsolute(std::string &path) {
  llvm::SmallString<256> p(path);
  if (p.empty())
    return true;
  if (llvm::sys::fs::make_absolute(p))
    return false;
  path = std::string(p);
  return true;
}

/// What the runtime needs besides the plan to train `info` (runtime/StageRun.h), shared by
/// `run` and `build`: an `sft` stage's starting weights and tokenizer (sftSource; with
/// `absolute`, as absolute paths: `build` writes them into the trainer's manifest), and a
/// LoRA stage's PEFT adapter settings when its model is of the llama family (only it has
/// PEFT module names, runtime/PeftExport.h; other models train their adapters without the
/// PEFT folder). Returns the exit status after reporting, or nullopt.
std::optional<int> stageExtras(const lang::Program &program, const lang::StageInfo &info,
                               lrt::StageExtras &extras, bool absolute = false) {
  if (info.kind == "sft") {
    if (std::optional<int> bad = sftSource(program, info, extras.sft))
      return bad;
    for (std::string *path : {&extras.sft.weightsPath, &extras.sft.tokenizerPath})
      if (absolute && !makeAbsolute(*path))
        return toolError("cannot resolve the path '" + *path + "'");
  }
  if (info.lora && info.model) {
    auto config = lrt::llamaConfigFromArgs(info.model->family->name, info.model->args);
    if (config) {
      extras.llama = *config;
      extras.peft = loraSpecOf(info);
      extras.peft->baseModel = baseModelOf(info, extras.sft);
    }
  }
  return std::nullopt;
}

/// Loads, checks, emits and JIT-compiles the selected stage (--stage, else the first).
/// Returns null after reporting; `status` then holds the exit status.
std::unique_ptr<CompiledStage> compileStage(Session &s, int &status, bool run) {
  auto program = loadAndCheck(s, inputFile, status);
  if (!program)
    return nullptr;
  std::optional<std::string> stage = pickStage(*program, "run", status);
  if (!stage)
    return nullptr;
  auto info = program->stageInfo.find(*stage);
  if (info != program->stageInfo.end())
    if (std::optional<std::string> why = notExecutable(info->second)) {
      status = toolError("stage '" + *stage + "' " + *why +
                         "; 'llmpc check' has checked it and prints its plan");
      return nullptr;
    }
  if (run && info != program->stageInfo.end())
    if (std::optional<int> bad = checkRanks(info->second)) {
      status = *bad;
      return nullptr;
    }
  const bool sft = info != program->stageInfo.end() && info->second.kind == "sft";
  if (!sft && info != program->stageInfo.end() && info->second.model &&
      !info->second.model->ggufPath.empty()) {
    status = toolError("stage '" + *stage + "' pretrains model '" +
                       info->second.model->decl->name +
                       "', declared with from_gguf; fine-tune pretrained GGUF weights in an "
                       "'sft' stage (llmpc logits and llmpc chat run them as they are)");
    return nullptr;
  }
  auto compiled = std::make_unique<CompiledStage>();
  if (sft) {
    if (!run) {
      status = toolError("'grads' dumps the gradients of 'pretrain' stages; stage '" + *stage +
                         "' is an 'sft' stage");
      return nullptr;
    }
  }
  if (info != program->stageInfo.end())
    if (std::optional<int> bad = stageExtras(*program, info->second, compiled->extras)) {
      status = *bad;
      return nullptr;
    }
  auto module = emitStage(s.ctx, *program, *stage, compiled->plan);
  if (mlir::succeeded(module) && sft && run && numSamples > 0 && kvCache)
    if (std::optional<int> bad = compileSampler(s, *program, info->second, *compiled)) {
      status = *bad;
      return nullptr;
    }
  // The stage's own logits_step samples only when no KV-cache sampler does.
  const bool needLogits = run && numSamples > 0 && !compiled->sampler;
  compiled->jit = jitStage(s, needLogits ? std::move(module) : withoutLogits(std::move(module)),
                           *stage, status, &compiled->stepHeapPeak);
  if (!compiled->jit)
    return nullptr;
  resolveDataPath(compiled->plan);
  status = 0;
  return compiled;
}

std::string defaultRunDirectory(const lang::Program &program, const std::string &stage) {
  // As runDirectory(plan): a stage in no pipeline runs in runs/main/<stage>.
  std::string pipeline = ownPipelineOf(program, stage);
  llvm::SmallString<128> dir("runs");
  llvm::sys::path::append(dir, pipeline.empty() ? "main" : pipeline, stage);
  return std::string(dir);
}

/// The run directory: --run-dir, else runs/<pipeline>/<stage>.
std::string runDirectory(const lrt::StagePlan &plan) {
  if (!runDir.empty())
    return runDir;
  llvm::SmallString<128> dir("runs");
  llvm::sys::path::append(dir, plan.pipeline.empty() ? "main" : plan.pipeline, plan.stage);
  return std::string(dir);
}

/// `plan` as JSON (runtime/PlanJson.h) with the steps this run takes (--steps): the run
/// directory's plan.json, which the runtime writes when the run starts.
std::string planJsonText(const lrt::StagePlan &plan) {
  lrt::StagePlan written = plan;
  if (stepsOverride.getNumOccurrences())
    written.steps = stepsOverride;
  return lrt::writeStagePlanJson(written);
}

/// The runtime options shared by `run` and `grads`.
lrt::TrainOptions trainOptions(const lrt::StagePlan &plan) {
  lrt::TrainOptions opts;
  opts.runDir = runDirectory(plan);
  opts.dataPath = plan.data.path;
  opts.steps = stepsOverride;
  opts.numSamples = numSamples;
  opts.resume = resume;
  opts.checkpointEvery = checkpointEvery;
  switch (progressStyle) {
  case Progress::Auto: opts.progress = lrt::ProgressStyle::Auto; break;
  case Progress::Bar: opts.progress = lrt::ProgressStyle::Bar; break;
  case Progress::Lines: opts.progress = lrt::ProgressStyle::Lines; break;
  case Progress::Quiet: opts.progress = lrt::ProgressStyle::Quiet; break;
  }
  return opts;
}

/// Creates the run directory; returns the exit status after reporting, or nullopt.
std::optional<int> makeRunDirectory(const std::string &dir) {
  if (llvm::sys::fs::exists(dir) && !llvm::sys::fs::is_directory(dir))
    return toolError("cannot use run directory '" + dir +
                     "': it exists and is not a directory (give --run-dir a folder)");
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return toolError("cannot create run directory '" + dir + "': " + ec.message());
  return std::nullopt;
}

/// Set by SIGINT/SIGTERM during training; the runtime polls it after each step.
std::atomic<bool> stopRequested{false};
extern "C" void onStopSignal(int) { stopRequested.store(true); }

/// While alive: runtime calls get standard allocation failures (std::bad_alloc, which the
/// runtime turns into a Status) instead of InitLLVM's abort, and SIGINT/SIGTERM set
/// `stopRequested` (once: SA_RESETHAND, so a second Ctrl-C kills as usual).
class RuntimeCallScope {
public:
  RuntimeCallScope() : oldNewHandler(std::set_new_handler(nullptr)) {
    stopRequested.store(false);
    struct sigaction sa = {};
    sa.sa_handler = onStopSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(SIGINT, &sa, &oldInt);
    sigaction(SIGTERM, &sa, &oldTerm);
  }
  ~RuntimeCallScope() {
    sigaction(SIGINT, &oldInt, nullptr);
    sigaction(SIGTERM, &oldTerm, nullptr);
    std::set_new_handler(oldNewHandler);
  }

private:
  std::new_handler oldNewHandler;
  struct sigaction oldInt = {}, oldTerm = {};
};

/// The command line that continues this run.
std::string resumeCommand() {
  std::string cmd = "llmpc run " + inputFile;
  if (runWorld && runWorld->size() > 1)
    cmd = "mpirun -np " + std::to_string(runWorld->size()) + " " + cmd;
  if (!stageName.empty())
    cmd += " --stage " + stageName;
  if (!runDir.empty())
    cmd += " --run-dir " + runDir;
  if (stepsOverride.getNumOccurrences())
    cmd += " --steps " + std::to_string(stepsOverride);
  if (checkpointEvery > 0)
    cmd += " --checkpoint-every " + std::to_string(checkpointEvery);
  if (!stdlibDir.empty())
    cmd += " --stdlib " + stdlibDir;
  return cmd + " --resume";
}

/// The shared prologue of `run` and `grads`: checks the run options, compiles the stage
/// and makes its run directory. Null after reporting; `status` then holds the exit status.
std::unique_ptr<CompiledStage> prepareRun(Session &s, bool run, lrt::TrainOptions &opts,
                                          int &status) {
  if (std::optional<int> bad = checkRunOptions()) {
    status = *bad;
    return nullptr;
  }
  auto compiled = compileStage(s, status, run);
  if (!compiled)
    return nullptr;
  opts = trainOptions(compiled->plan);
  if (std::optional<int> bad = makeRunDirectory(opts.runDir)) {
    status = *bad;
    return nullptr;
  }
  return compiled;
}

/// Compiles the selected stage and trains it, with the collective `world` of this
/// process. `last`: the last stage this process runs (the world is finalized after it, or
/// after a failure every rank agreed on). Returns the exit status: 130 when interrupted
/// (SIGINT/SIGTERM) after the checkpoint of the step in progress. Under mpirun every rank
/// runs this; the runtime lets rank 0 alone print and write (runtime/DataParallel.h).
int runStage(Session &s, lrt::Collective *world, bool last) {
  int status = 0;
  lrt::TrainOptions opts;
  auto compiled = prepareRun(s, /*run=*/true, opts, status);
  if (!compiled)
    return status;
  opts.world = world;
  opts.planJson = planJsonText(compiled->plan);
  opts.stop = &stopRequested;
  opts.stepHeapPeakBytes = compiled->stepHeapPeak;
  lrt::Status result = lrt::Status::ok();
  {
    RuntimeCallScope scope;
    result = lrt::trainStage(compiled->plan, compiled->jit->stepFunctions(), opts,
                             compiled->extras);
  }
  // A rank that failed alone exits without MPI_Finalize, so mpirun ends the job rather
  // than leave the other ranks waiting for it; failures and stops that every rank agreed
  // on (the runtime makes them so) finalize first.
  if ((result.isOk() && last) || result.code() == lrt::StatusCode::Cancelled)
    if (lrt::Status st = world->finalize(); !st)
      return toolError(st.message());
  if (world->rank() > 0) {
    // Rank 0 prints the outcome; the others add only their own errors.
    if (!result.isOk() && result.code() != lrt::StatusCode::Cancelled &&
        !llvm::StringRef(result.message()).starts_with("stopped: "))
      return toolError("rank " + llvm::Twine(world->rank()) + ": " + result.message());
    return result.isOk() ? 0 : result.code() == lrt::StatusCode::Cancelled ? 130 : 1;
  }
  if (result.code() == lrt::StatusCode::Cancelled) {
    llvm::outs().flush();
    std::fflush(stdout);
    llvm::errs() << "llmpc: " << result.message() << "\n";
    // Before the first step nothing was written (an earlier run's checkpoints may be
    // there, but resuming them is not what was interrupted).
    bool wroteCheckpoint = llvm::StringRef(result.message()).starts_with("interrupted at step");
    if (wroteCheckpoint && !lrt::listCheckpoints(opts.runDir + "/checkpoint").empty())
      llvm::errs() << "llmpc: continue with: " << resumeCommand() << "\n";
    return 130;
  }
  if (!result.isOk())
    return toolError(result.message());
  llvm::outs().flush();
  if (lrt::Status st = lrt::writeStageAdapter(compiled->extras, opts.runDir); !st)
    return toolError(st.message());
  return 0;
}

/// `llmpc run FILE`: compile the stage and train it; without --stage, when the file's
/// first pipeline has several stages, every stage of it in order (each compiled when its
/// turn comes, each in runs/<pipeline>/<stage>, a `from:` stage starting from the
/// checkpoint its predecessor just wrote). Every stage's kind is checked to be executable
/// before the first one starts. Returns the exit status of the first stage that fails.
int runRun(Session &s) {
  auto created = lrt::createCollective();
  if (!created)
    return toolError(created.status().message());
  std::unique_ptr<lrt::Collective> world = std::move(*created);
  runWorld = world.get();
  std::vector<std::string> stages;
  {
    Session probe;
    int status = 0;
    auto program = loadAndCheck(probe, inputFile, status);
    if (!program)
      return status;
    stages = pipelineStagesToRun(*program);
    std::string chain;
    for (const std::string &stage : stages) {
      chain += (chain.empty() ? "" : " -> ") + stage;
      auto info = program->stageInfo.find(stage);
      if (info != program->stageInfo.end())
        if (std::optional<std::string> why = notExecutable(info->second))
          return toolError("pipeline '" + pipelineOf(*program, stage) + "' (" + chain +
                           "...): stage '" + stage + "' " + *why +
                           "; nothing was run (run single stages with --stage NAME)");
    }
    if (!stages.empty() && !runDir.empty())
      return toolError("--run-dir names one stage's folder, and pipeline '" +
                       pipelineOf(*program, stages.front()) + "' has " +
                       llvm::Twine(stages.size()) + " stages (" + chain +
                       "): give --stage NAME too, or leave --run-dir out (each stage then "
                       "runs in runs/<pipeline>/<stage>)");
    if (!stages.empty() && world->rank() == 0)
      llvm::outs() << "pipeline '" << pipelineOf(*program, stages.front()) << "': "
                   << stages.size() << " stages, " << chain << "\n";
  }
  if (stages.empty())
    return runStage(s, world.get(), /*last=*/true);
  for (size_t i = 0; i < stages.size(); ++i) {
    stageName = stages[i];
    if (world->rank() == 0) {
      std::fflush(stdout); // the runtime prints through stdio, the driver through llvm::outs
      llvm::outs() << "\n=== stage " << (i + 1) << " of " << stages.size() << ": "
                   << stages[i] << " ===\n";
      llvm::outs().flush();
    }
    Session session;
    if (int status = runStage(session, world.get(), /*last=*/i + 1 == stages.size()))
      return status;
    llvm::outs().flush();
  }
  return 0;
}

/// `llmpc grads FILE -o OUT`: loss and gradients of the first batch, for reference tests.
int runGrads(Session &s) {
  if (outputFile == "-")
    return toolError("'grads' writes a safetensors file; give it with -o FILE");
  int status = 0;
  lrt::TrainOptions opts;
  auto compiled = prepareRun(s, /*run=*/false, opts, status);
  if (!compiled)
    return status;
  lrt::Status result = lrt::Status::ok();
  {
    RuntimeCallScope scope;
    result = lrt::dumpGradients(compiled->plan, compiled->jit->stepFunctions(), outputFile, opts);
  }
  if (!result.isOk())
    return toolError(result.message());
  return 0;
}

/// `llmpc build FILE [--stage NAME] [--steps N] [--run-dir DIR] -o BINARY`: compiles the
/// stage's step functions ahead of time to object files (compiler/Target/CPU/Object.h: the
/// JIT's target machine, units and -O3, so the binary computes what `llmpc run` computes
/// bit for bit), writes its manifest (runtime/aot/Manifest.h: the plan, --steps, the
/// default run directory --run-dir or runs/<pipeline>/<stage>) into one more object and
/// links them with the trainer's main and the static runtime (Link.h) into BINARY, which
/// trains the stage without llmpc (runtime/aot/TrainerMain.cpp). 'pretrain' stages of
/// models it initialises, and 'sft' stages (full fine-tuning, LoRA, QLoRA; a `from_gguf`
/// model or a `from:` stage's checkpoint, read at run time from the absolute path in the
/// manifest) with their KV-cache sampler (prefill_step / decode_step, unless
/// --kv-cache=false) and the extras `run` computes (stageExtras, emitSampler).
int runBuild(Session &s) {
  if (outputFile == "-")
    return toolError("'build' writes an executable; give it with -o FILE");
  if (std::optional<int> bad = checkRunOptions())
    return *bad;
  // Options of the built trainer, not of the build: refused rather than silently dropped.
  for (const char *flag : {"samples", "resume", "checkpoint-every", "progress"})
    if (cl::getRegisteredOptions().lookup(flag)->getNumOccurrences())
      return toolError(llvm::Twine("--") + flag + " is an option of the built trainer (BINARY --" +
                       flag + " ...), not of 'llmpc build'");
  // An unwritable output is reported before any compile time is spent.
  llvm::SmallString<256> parent(llvm::sys::path::parent_path(outputFile));
  if (parent.empty())
    parent = ".";
  if (llvm::sys::fs::is_directory(outputFile))
    return toolError("cannot write '" + outputFile + "': it is a directory");
  if (!llvm::sys::fs::is_directory(parent))
    return toolError("cannot write '" + outputFile + "': no directory '" + parent + "'");
  if (llvm::sys::fs::access(parent, llvm::sys::fs::AccessMode::Write))
    return toolError("cannot write '" + outputFile + "': directory '" + parent +
                     "' is not writable");
  bool same = false;
  if (!llvm::sys::fs::equivalent(inputFile, outputFile, same) && same)
    return toolError("-o '" + outputFile + "' is the input file; give the binary another name");
  int status = 0;
  auto program = loadAndCheck(s, inputFile, status);
  if (!program)
    return status;
  if (stageName.empty() && program->stages().size() > 1) {
    std::string names;
    for (const lang::StageDecl *decl : program->stages())
      names += (names.empty() ? "" : ", ") + decl->name;
    return toolError("'" + inputFile + "' declares several stages (" + names +
                     "); give the one to build with --stage NAME");
  }
  std::optional<std::string> stage = pickStage(*program, "build", status);
  if (!stage)
    return status;
  const lang::StageInfo &info = program->stageInfo.at(*stage);
  if (info.kind != "pretrain" && info.kind != "sft")
    return toolError("stage '" + *stage + "' (kind " + info.kind +
                     ") cannot be built into a trainer yet: 'llmpc build' builds 'pretrain' "
                     "and 'sft' stages");
  if (std::optional<std::string> why = notExecutable(info))
    return toolError("stage '" + *stage + "' " + *why);
  if (info.kind == "pretrain" && info.model && !info.model->ggufPath.empty())
    return toolError("stage '" + *stage + "' pretrains model '" + info.model->decl->name +
                     "', declared with from_gguf; 'llmpc build' builds 'pretrain' stages of "
                     "models it initialises (fine-tune GGUF weights in an 'sft' stage)");
  lrt::AotManifest manifest;
  // As `llmpc run` (compileStage): the extras of an sft or LoRA stage, with absolute paths.
  if (std::optional<int> bad = stageExtras(*program, info, manifest.extras, /*absolute=*/true))
    return *bad;
  auto module = emitStage(s.ctx, *program, *stage, manifest.plan);
  if (mlir::failed(module))
    return s.finish(false);
  // An sft stage's samples: prefill_step / decode_step linked beside the step functions,
  // as `run` JIT-compiles them (the binary's --samples decides at run time whether they run).
  mlir::OwningOpRef<mlir::ModuleOp> sampler;
  if (info.kind == "sft" && kvCache)
    if (std::optional<int> bad =
            emitSampler(s, *program, info, manifest.plan, manifest.extras.sft, sampler))
      return *bad;
  manifest.sampler = bool(sampler);
  if (sampler) // the stage's own logits_step samples only when no KV-cache sampler does
    module = withoutLogits(std::move(module));
  for (mlir::ModuleOp m : {**module, sampler ? *sampler : mlir::ModuleOp()})
    if (m && mlir::failed(mlir::llmp::lowerToPhase(m, mlir::llmp::Phase::LLVM,
                                                   mlir::llmp::Phase::LLMP)))
      return s.finish(false);
  resolveDataPath(manifest.plan);
  for (std::string *path : {&manifest.plan.data.path, &manifest.plan.tokenizer.path})
    if (!makeAbsolute(*path))
      return toolError("cannot resolve the path '" + *path + "'");
  manifest.source = inputFile;
  manifest.runDir = runDirectory(manifest.plan);
  manifest.steps = stepsOverride.getNumOccurrences() ? int64_t(stepsOverride) : 0;
  manifest.stepHeapPeakBytes = mlir::llmp::largestStepHeapPeak(**module);

  llvm::SmallString<128> dir;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory("llmpc-build", dir))
    return toolError("cannot create a temporary directory: " + ec.message());
  llvm::scope_exit cleanup([&] { llvm::sys::fs::remove_directories(dir); });
  auto objects = mlir::llmp::writeObjectFiles(**module, (dir + "/stage").str());
  if (!objects)
    return toolError("compiling stage '" + *stage + "': " + llvm::toString(objects.takeError()));
  if (sampler) {
    auto more = mlir::llmp::writeObjectFiles(*sampler, (dir + "/sampler").str());
    if (!more)
      return toolError("compiling the sampler of stage '" + *stage +
                       "': " + llvm::toString(more.takeError()));
    objects->insert(objects->end(), more->begin(), more->end());
  }
  std::string manifestObject = (dir + "/manifest.o").str();
  if (llvm::Error err = mlir::llmp::writeDataObject(manifestObject, "llmp_aot_manifest",
                                                    lrt::writeAotManifest(manifest)))
    return toolError("writing the manifest of stage '" + *stage +
                     "': " + llvm::toString(std::move(err)));
  objects->push_back(manifestObject);
  if (llvm::Error err = mlir::llmp::linkTrainer(*objects, outputFile))
    return toolError(llvm::toString(std::move(err)));
  llvm::outs() << "built " << outputFile << ": trains stage '" << *stage << "' of " << inputFile
               << " (" << objects->size() - 1 << " step functions; run directory "
               << manifest.runDir << ")\n";
  return s.finish(true);
}

/// The stage named by --stage, else the first, if it has a model. Null after reporting;
/// `status` then holds the exit status.
const lang::StageInfo *stageWithModel(const lang::Program &program, int &status) {
  for (const lang::StageDecl *stage : program.stages())
    if (stageName.empty() || stage->name == stageName) {
      auto it = program.stageInfo.find(stage->name);
      if (it != program.stageInfo.end() && it->second.model)
        return &it->second;
      break;
    }
  status = toolError(stageName.empty()
                         ? "'" + inputFile + "' declares no stage with a model"
                         : "'" + inputFile + "' declares no stage '" + stageName + "' with a model");
  return nullptr;
}

/// Loads and checks FILE into `program` and picks its stage with a model
/// (stageWithModel). Null after reporting; `status` then holds the exit status.
const lang::StageInfo *loadModelStage(Session &s, std::unique_ptr<lang::Program> &program,
                                      int &status) {
  program = loadAndCheck(s, inputFile, status);
  return program ? stageWithModel(*program, status) : nullptr;
}

/// The run directory of `stage`: --run-dir, else runs/<pipeline>/<stage> (as `run`).
std::string stageRunDirectory(const lang::Program &program, const std::string &stage) {
  if (!runDir.empty())
    return runDir;
  return defaultRunDirectory(program, stage);
}

/// The export of a LoRA stage (runExport): its adapter as a PEFT folder, or merged into
/// the base model, the `from:` stage's, read from that stage's run directory
/// runs/<pipeline>/<from> (where an `sft` stage starts from).
int runExportLora(Session &s, const lang::Program &program, const lang::StageInfo &stage,
                  const lrt::LlamaConfig &config, const std::string &dir) {
  lrt::LoraExportSpec spec = loraSpecOf(stage);
  if (exportFormat == "peft") {
    if (lrt::Status st = lrt::exportPeftAdapter(spec, config, dir, outputFile); !st)
      return toolError(st.message());
    llvm::outs() << "exported the LoRA adapter of " << dir << " to " << outputFile
                 << " (PEFT: adapter_config.json, adapter_model.safetensors)\n";
    return s.finish(true);
  }
  std::string baseDir;
  if (stage.parent) {
    std::string pipeline = pipelineOf(program, stage.parent->decl->name);
    llvm::SmallString<128> path("runs");
    llvm::sys::path::append(path, pipeline.empty() ? "main" : pipeline, stage.parent->decl->name);
    baseDir = std::string(path);
  }
  if (lrt::Status st = lrt::exportMergedHuggingFace(spec, config, dir, baseDir, outputFile); !st)
    return toolError(st.message());
  llvm::outs() << "exported " << dir << " with its LoRA adapter merged to " << outputFile
               << " (LlamaForCausalLM: config.json, model.safetensors, tokenizer.json, "
                  "tokenizer_config.json, tokenizer.model)\n";
  return s.finish(true);
}

/// `llmpc export FILE --format hf|peft -o OUT_DIR`: the model trained in the stage's run
/// directory as a Hugging Face LlamaForCausalLM folder (runtime/HfExport.h); the
/// hyper-parameters come from the model declaration in FILE. For a stage with
/// `adapter: lora(...)`, `hf` merges the adapter into the base model and `peft` writes the
/// adapter as a PEFT folder (runtime/PeftExport.h).
int runExport(Session &s) {
  if (exportFormat != "hf" && exportFormat != "peft")
    return toolError("unknown export format '" + exportFormat + "'; expected 'hf' or 'peft'");
  if (outputFile == "-")
    return toolError("'export' writes a folder; give it with -o DIR");
  int status = 0;
  std::unique_ptr<lang::Program> program;
  const lang::StageInfo *stage = loadModelStage(s, program, status);
  if (!stage)
    return status;
  auto config = lrt::llamaConfigFromArgs(stage->model->family->name, stage->model->args);
  if (!config)
    return toolError(config.status().message());
  std::string dir = stageRunDirectory(*program, stage->decl->name);
  if (stage->lora)
    return runExportLora(s, *program, *stage, *config, dir);
  if (exportFormat == "peft")
    return toolError("stage '" + stage->decl->name + "' has no adapter; '--format peft' "
                     "exports the adapter of a stage with 'adapter: lora(...)'");
  if (lrt::Status st = lrt::exportHuggingFace(*config, dir, outputFile); !st)
    return toolError(st.message());
  llvm::outs() << "exported " << dir << " to " << outputFile
               << " (LlamaForCausalLM: config.json, model.safetensors, tokenizer.json, "
                  "tokenizer_config.json, tokenizer.model)\n";
  return s.finish(true);
}

/// `llmpc import-hf HF_DIR -o RUN_DIR`: a Hugging Face llama folder to
/// RUN_DIR/checkpoint/model.safetensors (+ tokenizer.model) with llmp names.
int runImportHf() {
  if (outputFile == "-")
    return toolError("'import-hf' writes a run directory; give it with -o DIR");
  if (lrt::Status st = lrt::importHuggingFace(inputFile, outputFile); !st)
    return toolError(st.message());
  llvm::outs() << "imported " << inputFile << " to " << outputFile
               << "/checkpoint/model.safetensors\n";
  return 0;
}

/// A model compiled for inference (`@logits`, and with a KV cache `@prefill` and
/// `@decode`), with its weights and tokenizer.
struct InferenceModel {
  lrt::StagePlan plan;
  lrt::KVCacheShape cache; ///< all 0 without a KV cache
  std::unique_ptr<mlir::llmp::JitModule> jit;
  std::vector<float> params;
  std::string weightsFrom; ///< the checkpoint or GGUF file, for messages
  /// A LoRA stage: its frozen base u8[plan.frozenBytes] (runtime/Frozen.h) and the calls
  /// that pass it to the compiled logits_step.
  std::vector<uint8_t> frozen;
  std::optional<lrt::StepCalls> calls;
  /// Exactly one of these is set: the run's SentencePiece tokenizer, or the byte-level
  /// BPE of a `from_gguf` tokenizer.
  std::optional<lrt::Tokenizer> spTokenizer;
  std::optional<lrt::BpeTokenizer> bpeTokenizer;

  lrt::LogitsModel logitsModel() {
    lrt::LogitsModel m;
    m.logitsStep = calls ? calls->logitsStep() : jit->stepFunctions().logitsStep;
    m.params = params.data();
    m.numParams = plan.numParams;
    m.context = plan.context > 0 ? plan.context : plan.seqLen;
    m.vocab = plan.vocab;
    if (cache.numel() > 0) {
      m.prefillStep = lookup<lrt::PrefillStepFn>("_mlir_ciface_prefill_step");
      m.decodeStep = lookup<lrt::DecodeStepFn>("_mlir_ciface_decode_step");
      m.cache = cache;
    }
    return m;
  }
  template <typename Fn>
  Fn lookup(llvm::StringRef name) {
    auto sym = jit->lookup(name);
    if (!sym) {
      llvm::consumeError(sym.takeError());
      return nullptr;
    }
    return reinterpret_cast<Fn>(*sym);
  }
  lrt::Expected<std::vector<int32_t>> encode(const std::string &text) const {
    if (spTokenizer)
      return spTokenizer->encode(text);
    return bpeTokenizer->encode(text);
  }
};

/// Compiles `stage`'s model for inference and loads its weights: from the run
/// directory's checkpoint/ when there is one (model.safetensors + tokenizer.model), else,
/// for a model declared with `from_gguf`, from its GGUF file (runtime/GgufModel.h), with
/// the stage's tokenizer, which must then be a `from_gguf` (or `from_file`) tokenizer.
/// With `decodeRows` > 0 it also compiles prefill_step and decode_step for that many
/// sequences at once (a KV cache; prompts of --prefill-len tokens per prefill), and then
/// `logits` false leaves logits_step out (a caller that only generates).
/// Null after reporting; `status` then holds the exit status.
std::unique_ptr<InferenceModel> loadInferenceModel(Session &s, const lang::Program &program,
                                                   const lang::StageInfo &stage,
                                                   int &status, int64_t decodeRows = 0,
                                                   bool logits = true) {
  auto out = std::make_unique<InferenceModel>();
  std::string name = stage.decl->name;
  std::string dir = stageRunDirectory(program, name);
  std::string checkpoint = dir + "/checkpoint/model.safetensors";
  bool pretrained = !stage.model->ggufPath.empty() && !llvm::sys::fs::exists(checkpoint);
  // A LoRA stage's checkpoint with a KV cache: the model without adapter runs on the merged
  // weights, laid out by the stage's own plan (adapters, frozen base).
  const bool merge = decodeRows > 0 && !pretrained && stage.lora;
  lrt::StagePlan stagePlan;
  if (merge && mlir::failed(emitStage(s.ctx, program, name, stagePlan))) {
    status = s.finish(false);
    return nullptr;
  }
  auto module = merge ? emitBaseInference(s.ctx, program, name, decodeRows,
                                          prefillLenFor(stage), out->plan, out->cache)
                : decodeRows > 0 ? emitInference(s.ctx, program, name, decodeRows,
                                                 prefillLenFor(stage), out->plan, out->cache)
                : pretrained     ? emitLogits(s.ctx, program, name, out->plan)
                                 : emitStage(s.ctx, program, name, out->plan);
  out->jit = jitStage(s,
                      decodeRows > 0 && !logits ? withoutLogits(std::move(module))
                                                : std::move(module),
                      name, status);
  if (!out->jit)
    return nullptr;
  if (!merge)
    stagePlan = out->plan;
  if (!pretrained) {
    // A LoRA stage's checkpoint holds its adapters; its base goes into the frozen buffer.
    lrt::StagePlan trainable = stagePlan;
    trainable.params.erase(std::remove_if(trainable.params.begin(), trainable.params.end(),
                                          [](const lrt::ParamInfo &p) { return p.frozen; }),
                           trainable.params.end());
    auto params = lrt::readParams(trainable, checkpoint);
    if (!params) {
      status = toolError(params.status().message());
      return nullptr;
    }
    out->params = params.take();
    out->weightsFrom = checkpoint;
    if (stagePlan.frozenBytes > 0) {
      lrt::SftSource base;
      if (std::optional<int> bad = sftWeights(program, stage, base)) {
        status = *bad;
        return nullptr;
      }
      if (lrt::Status st = lrt::readFrozenBase(stagePlan, base.weightsPath, out->frozen); !st) {
        status = toolError(st.message());
        return nullptr;
      }
      out->weightsFrom = checkpoint + " on " + base.weightsPath;
      if (merge) {
        // The frozen base and the adapters make way for the merged fp32 weights.
        auto merged = lrt::mergedStageParams(stagePlan, out->params.data(), out->frozen.data(),
                                             out->plan.params, out->plan.numParams);
        if (!merged) {
          status = toolError("stage '" + name + "': merging the LoRA adapters: " +
                             merged.status().message());
          return nullptr;
        }
        out->params = merged.take();
        std::vector<uint8_t>().swap(out->frozen);
        out->weightsFrom += " (LoRA merged)";
      } else {
        out->calls.emplace(out->plan, out->jit->stepFunctions());
        out->calls->setFrozen(out->frozen.data());
      }
    }
    // A pretrain run has its SentencePiece tokenizer; an sft run uses the stage's.
    if (llvm::sys::fs::exists(dir + "/checkpoint/tokenizer.model")) {
      auto tok = lrt::Tokenizer::load(dir + "/checkpoint/tokenizer.model");
      if (!tok) {
        status = toolError(tok.status().message());
        return nullptr;
      }
      out->spTokenizer = tok.take();
      return out;
    }
  } else {
    auto params = lrt::readGgufParams(out->plan.params, out->plan.numParams,
                                      stage.model->ggufPath);
    if (!params) {
      status = toolError(params.status().message());
      return nullptr;
    }
    out->params = params.take();
    out->weightsFrom = stage.model->ggufPath;
  }
  const lang::TokenizerInfo *tok =
      stage.tokenizer ? &program.tokenizers.at(stage.tokenizer->name) : nullptr;
  if (!tok || (tok->kind != "from_gguf" && tok->kind != "from_file")) {
    status = toolError("stage '" + name + "' runs the pretrained model '" +
                       stage.model->decl->name +
                       "'; give it the model's own tokenizer, e.g. 'tokenizer tok = "
                       "from_gguf(\"model.gguf\")' and 'tokenizer: tok'");
    return nullptr;
  }
  auto bpe = tok->kind == "from_gguf" ? lrt::BpeTokenizer::fromGgufFile(tok->path)
                                      : lrt::BpeTokenizer::fromHuggingFaceJson(tok->path);
  if (!bpe) {
    status = toolError("tokenizer '" + tok->decl->name + "': " + bpe.status().message());
    return nullptr;
  }
  if (bpe->vocabSize() > out->plan.vocab) {
    status = toolError(llvm::formatv("tokenizer '{0}' has {1} tokens but model '{2}' only {3}",
                                     tok->decl->name, bpe->vocabSize(), out->plan.model,
                                     out->plan.vocab)
                           .str());
    return nullptr;
  }
  out->bpeTokenizer = bpe.take();
  return out;
}

/// `llmpc logits FILE --prompt TEXT... [--greedy N] -o OUT`: compiles the stage's
/// logits_step and runs it with the weights and tokenizer of the run directory's
/// checkpoint/, or of the GGUF file of a `from_gguf` model that has no checkpoint yet
/// (loadInferenceModel). OUT holds, for prompt i, `ids.<i>` (I32 [n]), `logits.<i>` (F32
/// [n, vocab]) and with --greedy `greedy.<i>` (I32 [N]: the argmax continuation,
/// runtime/Generate at temperature 0) and `greedy_logits.<i>` (F32 [N, vocab]: the logits
/// each id was drawn from). The continuations run through prefill_step / decode_step with
/// a KV cache, --decode-batch prompts together; with --kv-cache=false through one
/// full-window logits_step per token. The metadata's `generate_seconds` is the wall time
/// of the continuations (for bench/).
int runLogits(Session &s) {
  if (outputFile == "-")
    return toolError("'logits' writes a safetensors file; give it with -o FILE");
  if (prompts.empty())
    return toolError("'logits' needs at least one --prompt TEXT");
  if (decodeBatch < 1)
    return toolError("--decode-batch must be at least 1");
  int status = 0;
  std::unique_ptr<lang::Program> program;
  const lang::StageInfo *stage = loadModelStage(s, program, status);
  if (!stage)
    return status;
  const bool cached = greedyTokens > 0 && kvCache;
  auto inference = loadInferenceModel(s, *program, *stage, status, cached ? decodeBatch : 0);
  if (!inference)
    return status;
  const lrt::StagePlan &plan = inference->plan;
  lrt::LogitsModel model = inference->logitsModel();
  std::vector<std::vector<int32_t>> ids(prompts.size()), greedy(prompts.size());
  std::vector<std::vector<float>> logits(prompts.size()), greedyLogits(prompts.size());
  std::vector<std::string> names;
  std::vector<lrt::TensorRef> tensors;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto encoded = inference->encode(prompts[i]);
    if (!encoded)
      return toolError("prompt " + llvm::Twine(i) + ": " + encoded.status().message());
    ids[i] = encoded.take();
    auto rows = lrt::promptLogits(model, ids[i]);
    if (!rows)
      return toolError("prompt " + llvm::Twine(i) + ": " + rows.status().message());
    logits[i] = rows.take();
  }
  std::mt19937_64 rng(0); // unused at temperature 0
  auto started = std::chrono::steady_clock::now();
  if (cached) {
    // --decode-batch prompts at a time through prefill_step / decode_step.
    lrt::GenerateOptions opts;
    opts.maxNew = greedyTokens;
    opts.keepLogits = true;
    for (size_t first = 0; first < prompts.size(); first += size_t(decodeBatch)) {
      size_t last = std::min(prompts.size(), first + size_t(decodeBatch));
      std::vector<std::vector<int32_t>> group(ids.begin() + first, ids.begin() + last);
      auto gen = lrt::generateBatch(model, group, opts, rng);
      if (!gen)
        return toolError(gen.status().message());
      for (size_t i = first; i < last; ++i) {
        greedy[i] = std::move((*gen)[i - first].ids);
        greedyLogits[i] = std::move((*gen)[i - first].logits);
      }
    }
  } else if (greedyTokens > 0) {
    // One full-window logits_step per token; the logits of each drawn token are those
    // of its prefix's last position.
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto out = lrt::generate(model, ids[i], greedyTokens, /*temperature=*/0.0, 0, rng);
      if (!out)
        return toolError(out.status().message());
      greedy[i].assign(out->begin() + ids[i].size(), out->end());
      for (size_t j = 0; j < greedy[i].size(); ++j) {
        size_t len = ids[i].size() + j;
        if (int64_t(len) > model.context)
          break;
        auto rows = lrt::promptLogits(model, std::vector<int32_t>(out->begin(), out->begin() + len));
        if (!rows)
          return toolError(rows.status().message());
        greedyLogits[i].insert(greedyLogits[i].end(), rows->end() - plan.vocab, rows->end());
      }
    }
  }
  double generateSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (size_t i = 0; i < prompts.size(); ++i) {
    int64_t n = int64_t(ids[i].size());
    tensors.push_back({"ids." + std::to_string(i), lrt::DType::I32, {n}, ids[i].data()});
    tensors.push_back(
        {"logits." + std::to_string(i), lrt::DType::F32, {n, plan.vocab}, logits[i].data()});
    if (greedyTokens > 0) {
      tensors.push_back({"greedy." + std::to_string(i), lrt::DType::I32,
                         {int64_t(greedy[i].size())}, greedy[i].data()});
      tensors.push_back({"greedy_logits." + std::to_string(i), lrt::DType::F32,
                         {int64_t(greedyLogits[i].size()) / plan.vocab, plan.vocab},
                         greedyLogits[i].data()});
    }
  }
  if (lrt::Status st = lrt::writeSafetensors(outputFile, tensors,
                                             {{"prompts", std::to_string(prompts.size())},
                                              {"weights", inference->weightsFrom},
                                              {"generate_seconds", std::to_string(generateSeconds)}});
      !st)
    return toolError(st.message());
  return s.finish(true);
}

/// `llmpc chat FILE [--prompt TEXT...]`: a conversation with the stage's pretrained model
/// (loadInferenceModel) through the chat template in its tokenizer's GGUF metadata
/// (runtime/Chat.h). Each --prompt is a user turn whose reply is printed on its own line;
/// without --prompt, lines read from stdin are the user turns (an empty line or EOF ends).
int runChat(Session &s) {
  if (maxNewTokens < 1)
    return toolError("--max-new must be at least 1");
  int status = 0;
  std::unique_ptr<lang::Program> program;
  const lang::StageInfo *stage = loadModelStage(s, program, status);
  if (!stage)
    return status;
  const lang::TokenizerInfo *tokInfo =
      stage->tokenizer ? &program->tokenizers.at(stage->tokenizer->name) : nullptr;
  if (!tokInfo || tokInfo->kind != "from_gguf")
    return toolError("'chat' needs a stage whose tokenizer comes from a GGUF file with a chat "
                     "template, e.g. 'tokenizer tok = from_gguf(\"model.gguf\")'");
  auto gguf = lrt::readGguf(tokInfo->path);
  if (!gguf)
    return toolError(gguf.status().message());
  auto chatTemplate = lrt::ChatTemplate::fromGguf(*gguf, tokInfo->path);
  if (!chatTemplate)
    return toolError(chatTemplate.status().message());
  auto eos = gguf->getInt("tokenizer.ggml.eos_token_id");
  if (!eos)
    return toolError("'" + tokInfo->path + "': " + eos.status().message() +
                     " (the token that ends a reply)");
  if (prompts.empty())
    llvm::errs() << "compiling model '" << stage->model->decl->name << "'...\n";
  auto inference = loadInferenceModel(s, *program, *stage, status, kvCache ? 1 : 0,
                                      /*logits=*/!kvCache);
  if (!inference)
    return status;
  if (!inference->bpeTokenizer)
    return toolError("'chat' runs a pretrained model from its GGUF file; stage '" +
                     stage->decl->name + "' has a trained checkpoint");
  lrt::ChatOptions options;
  options.maxNew = maxNewTokens;
  options.temperature = temperature;
  options.topK = topK;
  lrt::ChatSession chat(inference->logitsModel(), *inference->bpeTokenizer, *chatTemplate,
                        {static_cast<int32_t>(*eos)}, options);
  if (!systemPrompt.empty())
    chat.add("system", systemPrompt);
  auto print = [](std::string_view piece) {
    llvm::outs() << piece;
    llvm::outs().flush();
  };
  auto turn = [&](const std::string &text) -> bool {
    auto reply = chat.reply(text, print);
    llvm::outs() << "\n";
    llvm::outs().flush();
    if (!reply) {
      status = toolError(reply.status().message());
      return false;
    }
    return true;
  };
  if (!prompts.empty()) {
    for (const std::string &p : prompts)
      if (!turn(p))
        return status;
    return s.finish(true);
  }
  llvm::errs() << "chatting with '" << stage->model->decl->name << "' (" << inference->weightsFrom
               << "); an empty line or end of input ends\n";
  std::string line;
  while (true) {
    llvm::outs() << "> ";
    llvm::outs().flush();
    if (!std::getline(std::cin, line) || line.empty())
      break;
    if (!turn(line))
      return status;
  }
  return s.finish(true);
}

/// `llmpc report RUN_DIR [-o OUT_DIR]`: charts and report.html of a run (runtime/Report.h).
int runReport() {
  lrt::ReportOptions opts;
  if (outputFile != "-")
    opts.outDir = outputFile;
  lrt::ReportResult result;
  if (lrt::Status st = lrt::writeReport(inputFile, opts, &result); !st.isOk())
    return toolError(st.message());
  for (const std::string &warning : result.warnings)
    llvm::errs() << "llmpc: warning: " << warning << "\n";
  llvm::outs() << "report: " << result.htmlPath << " (" << (result.files.size() - 1) / 2
               << " charts as PNG and SVG beside it)\n";
  return 0;
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
  if (command == "run")
    return runRun(session);
  if (command == "grads")
    return runGrads(session);
  if (command == "build")
    return runBuild(session);
  if (command == "report")
    return runReport();
  if (command == "export")
    return runExport(session);
  if (command == "import-hf")
    return runImportHf();
  if (command == "logits")
    return runLogits(session);
  if (command == "chat")
    return runChat(session);
  return toolError("unknown command '" + command +
                   "'; expected 'check', 'emit', 'run', 'grads', 'report', 'export', "
                   "'import-hf', 'logits', 'chat' or 'build'");
}
