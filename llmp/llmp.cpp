// SPDX-License-Identifier: Apache-2.0
/// The C++ embedding API: a Program renders its declarations as .llmp lines (remembering the
/// C++ call site of each), and Checked runs them through lang/ (Loader, Sema) and
/// compiler/Frontend exactly as llmpc does.
#include "llmp/llmp.h"

#include "compiler/Frontend/LLMPGen.h"
#include "compiler/Pipelines/Pipelines.h"
#include "compiler/Target/CPU/JIT.h"
#include "lang/Loader.h"
#include "lang/Sema.h"
#include "runtime/Trainer.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <sstream>

namespace llmp {

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

Value::Value(int v) : text_(std::to_string(v)) {}
Value::Value(int64_t v) : text_(std::to_string(v)) {}
Value::Value(bool v) : text_(v ? "true" : "false") {}
Value::Value(double v) {
  // The shortest spelling that reads back as `v` (0.95, 3e-3, 10000).
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  text_ = buf;
  // A float must not read back as an int (`1.0`, not `1`).
  if (text_.find_first_of(".eEn") == std::string::npos)
    text_ += ".0";
}
Value::Value(const char *s) : Value(std::string(s)) {}
Value::Value(const std::string &s) {
  text_ = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      text_ += '\\';
    if (c == '\n')
      text_ += "\\n";
    else if (c == '\t')
      text_ += "\\t";
    else
      text_ += c;
  }
  text_ += "\"";
}
Value Value::raw(std::string text) {
  Value v;
  v.text_ = std::move(text);
  return v;
}

Value name(const std::string &n) { return Value::raw(n); }

static std::string joinArgs(const std::vector<Arg> &args) {
  std::string s;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i)
      s += ", ";
    if (!args[i].name.empty())
      s += args[i].name + ": ";
    s += args[i].value.text();
  }
  return s;
}

static std::string join(const std::vector<Value> &items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i)
    s += (i ? ", " : "") + items[i].text();
  return s;
}

Value call(const std::string &fn, const std::vector<Arg> &args) {
  return Value::raw(fn + "(" + joinArgs(args) + ")");
}
Value tuple(const std::vector<Value> &items) { return Value::raw("(" + join(items) + ")"); }
Value list(const std::vector<Value> &items) { return Value::raw("[" + join(items) + "]"); }
Value batch(int64_t sequences, int64_t tokens) {
  return Value::raw(std::to_string(sequences) + " x " + std::to_string(tokens));
}
Value every(int64_t n) { return Value::raw("every " + std::to_string(n)); }

std::string Diagnostic::str() const {
  const char *kind = severity == Severity::Error     ? "error"
                     : severity == Severity::Warning ? "warning"
                     : severity == Severity::Note    ? "note"
                                                     : "remark";
  std::string s = file + ":" + std::to_string(line);
  if (!llmpLine)
    s += ":" + std::to_string(col);
  s += std::string(": ") + kind + ": " + message + "\n";
  if (!sourceLine.empty()) {
    s += sourceLine + "\n";
    unsigned c = llmpLine ? llmpCol : col;
    if (c > 0)
      s += std::string(c - 1, ' ') + "^\n";
  }
  return s;
}

//===----------------------------------------------------------------------===//
// Program
//===----------------------------------------------------------------------===//

Program::Program(std::string name) : name_(std::move(name)) {}
Program::~Program() = default;

void Program::import(const std::string &module, SourceLoc at) {
  lines_.push_back({"import " + module, std::move(at)});
}

Ref Program::dataset(const std::string &name, const Value &value, SourceLoc at) {
  lines_.push_back({"dataset " + name + " = " + value.text(), std::move(at)});
  return Ref(name);
}

Ref Program::tokenizer(const std::string &name, const Value &value, SourceLoc at) {
  lines_.push_back({"tokenizer " + name + " = " + value.text(), std::move(at)});
  return Ref(name);
}

Ref Program::model(const std::string &name, const std::string &family,
                   const std::vector<Arg> &args, SourceLoc at) {
  lines_.push_back({"model " + name + " = " + family + "(" + joinArgs(args) + ")", std::move(at)});
  return Ref(name);
}

Stage &Program::stage(const std::string &name, const std::string &kind, SourceLoc at) {
  auto s = std::unique_ptr<Stage>(new Stage());
  s->name_ = name;
  s->kind_ = kind;
  s->at_ = at;
  stages_.push_back(std::move(s));
  // A placeholder that render() expands into the stage's lines.
  lines_.push_back({"\x01" + std::to_string(stages_.size() - 1), std::move(at)});
  return *stages_.back();
}

void Program::pipeline(const std::string &name, const std::vector<std::string> &stages,
                       SourceLoc at) {
  std::string text = "pipeline " + name + " =";
  for (size_t i = 0; i < stages.size(); ++i)
    text += (i ? " -> " : " ") + stages[i];
  lines_.push_back({text, std::move(at)});
}

void Program::declare(const std::string &llmpText, SourceLoc at) {
  // Multi-line text keeps one origin for all its lines.
  std::istringstream in(llmpText);
  for (std::string line; std::getline(in, line);)
    lines_.push_back({line, at});
}

std::vector<Program::Line> Program::render() const {
  std::vector<Line> out;
  out.push_back({"// Generated by the llmp C++ API (llmp/llmp.h) for '" + name_ + "'.", {}});
  for (const Line &l : lines_) {
    if (l.text.empty() || l.text[0] != '\x01') {
      out.push_back(l);
      continue;
    }
    const Stage &s = *stages_[std::stoul(l.text.substr(1))];
    out.push_back({"stage " + s.name_ + (s.kind_.empty() ? "" : " : " + s.kind_) + " {", s.at_});
    for (const Line &f : s.fields_)
      out.push_back({"  " + f.text, f.at});
    out.push_back({"}", s.at_});
  }
  return out;
}

std::string Program::source() const {
  std::string s;
  for (const Line &l : render())
    s += l.text + "\n";
  return s;
}

Stage &Stage::set(const std::string &field, const Value &value, SourceLoc at) {
  fields_.push_back({field + ": " + value.text(), std::move(at)});
  return *this;
}

//===----------------------------------------------------------------------===//
// Checked
//===----------------------------------------------------------------------===//

namespace {
mlir::DialectRegistry makeRegistry() {
  mlir::DialectRegistry registry;
  registerFrontendDialects(registry);
  mlir::llmp::registerLLMPDialects(registry);
  return registry;
}
} // namespace

struct Checked::Impl {
  Impl() : ctx(makeRegistry()) { ctx.disableMultithreading(); }
  mlir::MLIRContext ctx;
  llvm::SourceMgr sourceMgr;
  std::unique_ptr<lang::Program> program;
  std::string bufferName;            ///< the synthesized source, when built in code
  std::vector<SourceLoc> origins;    ///< C++ call site of each line of that source
  std::string inputFile;             ///< the .llmp file, when checked from a file
  DiagnosticHandler handler;
  std::unique_ptr<mlir::ScopedDiagnosticHandler> scoped;

  /// Returns line `line` (1-based) of the buffer named `file`, or "".
  std::string sourceLine(llvm::StringRef file, unsigned line) {
    for (unsigned id = 1; id <= sourceMgr.getNumBuffers(); ++id) {
      const llvm::MemoryBuffer *buf = sourceMgr.getMemoryBuffer(id);
      if (buf->getBufferIdentifier() != file)
        continue;
      llvm::SMLoc start = sourceMgr.FindLocForLineAndColumn(id, line, 1);
      if (!start.isValid())
        return "";
      const char *p = start.getPointer(), *end = buf->getBufferEnd();
      const char *e = p;
      while (e < end && *e != '\n')
        ++e;
      return std::string(p, e);
    }
    return "";
  }

  Diagnostic convert(mlir::Location loc, Diagnostic::Severity severity, std::string message) {
    Diagnostic d;
    d.severity = severity;
    d.message = std::move(message);
    if (auto flc = mlir::dyn_cast<mlir::FileLineColLoc>(loc)) {
      d.file = flc.getFilename().str();
      d.line = flc.getLine();
      d.col = flc.getColumn();
      d.sourceLine = sourceLine(d.file, d.line);
      if (!bufferName.empty() && d.file == bufferName && d.line >= 1 &&
          d.line <= origins.size() && !origins[d.line - 1].file.empty()) {
        d.llmpLine = d.line;
        d.llmpCol = d.col;
        d.file = origins[d.line - 1].file;
        d.line = origins[d.line - 1].line;
        d.col = 0;
      }
    }
    return d;
  }

  static Diagnostic::Severity severityOf(mlir::DiagnosticSeverity s) {
    switch (s) {
    case mlir::DiagnosticSeverity::Error:
      return Diagnostic::Severity::Error;
    case mlir::DiagnosticSeverity::Warning:
      return Diagnostic::Severity::Warning;
    case mlir::DiagnosticSeverity::Note:
      return Diagnostic::Severity::Note;
    case mlir::DiagnosticSeverity::Remark:
      return Diagnostic::Severity::Remark;
    }
    return Diagnostic::Severity::Error;
  }

  void install(DiagnosticHandler h) {
    handler = h ? std::move(h)
                : [](const Diagnostic &d) { llvm::errs() << d.str(); };
    scoped = std::make_unique<mlir::ScopedDiagnosticHandler>(&ctx, [this](mlir::Diagnostic &diag) {
      handler(convert(diag.getLocation(), severityOf(diag.getSeverity()), diag.str()));
      for (mlir::Diagnostic &note : diag.getNotes())
        handler(convert(note.getLocation(), Diagnostic::Severity::Note, note.str()));
      return mlir::success();
    });
  }

  bool load(unsigned buffer, const std::string &stdlibDir) {
    lang::LoadOptions options;
    options.stdlibDir = stdlibDir;
    program = lang::loadProgram(sourceMgr, ctx, buffer, options);
    return program && mlir::succeeded(lang::checkProgram(*program, ctx));
  }
};

Checked::Checked(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checked::~Checked() = default;

std::unique_ptr<Checked> Program::check(const DiagnosticHandler &handler,
                                        const std::string &stdlibDir) const {
  auto impl = std::make_unique<Checked::Impl>();
  impl->bufferName = name_ + ".llmp";
  std::string text;
  for (const Line &l : render()) {
    text += l.text + "\n";
    impl->origins.push_back(l.at);
  }
  impl->install(handler);
  unsigned buffer = impl->sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, impl->bufferName), llvm::SMLoc());
  if (!impl->load(buffer, stdlibDir))
    return nullptr;
  return std::unique_ptr<Checked>(new Checked(std::move(impl)));
}

std::unique_ptr<Checked> Checked::fromFile(const std::string &path,
                                           const DiagnosticHandler &handler,
                                           const std::string &stdlibDir) {
  auto impl = std::make_unique<Impl>();
  impl->inputFile = path;
  impl->install(handler);
  std::string why;
  unsigned buffer = lang::readSourceFile(impl->sourceMgr, path, why);
  if (!buffer) {
    Diagnostic d;
    d.file = path;
    d.message = why;
    impl->handler(d);
    return nullptr;
  }
  if (!impl->load(buffer, stdlibDir))
    return nullptr;
  return std::unique_ptr<Checked>(new Checked(std::move(impl)));
}

std::vector<std::string> Checked::stages() const {
  std::vector<std::string> out;
  for (const lang::StageDecl *s : impl_->program->stages())
    out.push_back(s->name);
  return out;
}

std::string Checked::emit(const std::string &stage, bool withLocations) const {
  lrt::StagePlan plan;
  auto module = emitStage(impl_->ctx, *impl_->program, stage, plan);
  if (mlir::failed(module))
    return "";
  std::string out;
  llvm::raw_string_ostream os(out);
  mlir::OpPrintingFlags flags;
  if (withLocations)
    flags.enableDebugInfo(true, false);
  (*module)->print(os, flags.useLocalScope());
  return out;
}

bool Checked::stagePlan(const std::string &stage, lrt::StagePlan &plan) const {
  return mlir::succeeded(emitStage(impl_->ctx, *impl_->program, stage, plan));
}

std::string Checked::run(const std::string &stage, const RunOptions &options) const {
  auto info = impl_->program->stageInfo.find(stage);
  if (info == impl_->program->stageInfo.end())
    return "no checked stage '" + stage + "'";
  if (info->second.kind != "pretrain")
    return "stage '" + stage + "' (kind " + info->second.kind +
           ") is not yet executable: only 'pretrain' stages run today";
  lrt::StagePlan plan;
  auto module = emitStage(impl_->ctx, *impl_->program, stage, plan);
  if (mlir::failed(module) ||
      mlir::failed(mlir::llmp::lowerToPhase(**module, mlir::llmp::Phase::LLVM)))
    return "stage '" + stage + "' did not compile (see the diagnostics)";
  auto jit = mlir::llmp::JitModule::create(**module);
  if (!jit)
    return "compiling stage '" + stage + "': " + llvm::toString(jit.takeError());
  // As llmpc: a relative dataset path is relative to the .llmp file (or the working
  // directory for a program built in code).
  if (!impl_->inputFile.empty() && llvm::sys::path::is_relative(plan.data.path)) {
    llvm::SmallString<256> resolved(llvm::sys::path::parent_path(impl_->inputFile));
    llvm::sys::path::append(resolved, plan.data.path);
    plan.data.path = std::string(resolved);
  }
  lrt::TrainOptions opts;
  opts.runDir = options.runDir;
  if (opts.runDir.empty()) {
    llvm::SmallString<128> dir("runs");
    llvm::sys::path::append(dir, plan.pipeline.empty() ? "main" : plan.pipeline, plan.stage);
    opts.runDir = std::string(dir);
  }
  opts.dataPath = plan.data.path;
  opts.steps = options.steps;
  opts.numSamples = options.samples;
  opts.progress = options.quiet ? lrt::ProgressStyle::Quiet : lrt::ProgressStyle::Auto;
  if (std::error_code ec = llvm::sys::fs::create_directories(opts.runDir))
    return "cannot create run directory '" + opts.runDir + "': " + ec.message();
  lrt::Status status = lrt::runPretrain(plan, (*jit)->stepFunctions(), opts);
  return status.isOk() ? "" : status.message();
}

} // namespace llmp
