// SPDX-License-Identifier: Apache-2.0
/// The C++ embedding of the llmp language. A host program declares a pipeline in code --
/// tokenizers, datasets, model instances of stdlib families, stages and pipelines -- checks
/// it with the same Sema as `llmpc check`, and emits the llmp module or trains a stage on the
/// same path as `llmpc run`:
///
///   llmp::Program p;
///   p.import("std.models.llama");
///   auto corpus = p.dataset("corpus", llmp::call("text", {{"", "kjv.xml"}, {"split", 0.95}}));
///   auto tok = p.tokenizer("tok", llmp::call("bpe", {{"train_on", corpus}, {"vocab", 2048}}));
///   auto tiny = p.model("tiny", "llama", {{"vocab", tok.member("vocab")}, {"dim", 128}, ...});
///   p.stage("pretrain").set("model", tiny).set("batch", llmp::batch(16, 128)) ...;
///   p.pipeline("main", {"pretrain"});
///   std::unique_ptr<llmp::Checked> checked = p.check(printDiagnostic);
///
/// How it works: each declaration and stage field becomes one line of .llmp text (see
/// `Program::source()`), which is parsed and checked like a file. A program built in code is
/// therefore exactly the program of that text: same AST, same IR, same plans. Each line
/// remembers the C++ call that made it (file and line, from `__builtin_FILE()` /
/// `__builtin_LINE()` default arguments), and a diagnostic at that line is reported at the
/// C++ call site; diagnostics inside stdlib files keep their own file names.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace lrt {
struct StagePlan;
}

namespace llmp {

/// Where a declaration was made in the host program.
struct SourceLoc {
  std::string file;
  unsigned line = 0;
};

/// The call site of the function that takes this as a default argument.
inline SourceLoc here(const char *file = __builtin_FILE(), unsigned line = __builtin_LINE()) {
  return SourceLoc{file, line};
}

/// A value of a declaration or stage field: a number, a string, a name, a call, a tuple or
/// a list. It holds its .llmp spelling.
class Value {
public:
  Value(int v);
  Value(int64_t v);
  Value(double v);
  Value(bool v);        ///< `true` / `false`
  Value(const char *s); ///< a string literal
  Value(const std::string &s); ///< a string literal
  /// The .llmp spelling.
  const std::string &text() const { return text_; }
  /// Wraps already-formed .llmp text (used by name(), call(), ...).
  static Value raw(std::string text);

private:
  Value() = default;
  std::string text_;
};

/// A call argument: `name: value`, or positional when `name` is empty.
struct Arg {
  std::string name;
  Value value;
};

/// A bare name: `osis`, `true`, `all_linear`, or a declared name.
Value name(const std::string &n);
/// `fn(args...)`.
Value call(const std::string &fn, const std::vector<Arg> &args = {});
/// `(a, b, ...)`, e.g. betas.
Value tuple(const std::vector<Value> &items);
/// `[a, b, ...]`, e.g. LoRA targets or rewards.
Value list(const std::vector<Value> &items);
/// `sequences x tokens` (the `batch` field).
Value batch(int64_t sequences, int64_t tokens);
/// `every n` (the `eval` field).
Value every(int64_t n);

/// A declared tokenizer, dataset, model or stage; converts to its name.
class Ref {
public:
  explicit Ref(std::string name) : name_(std::move(name)) {}
  operator Value() const { return name(name_); }
  /// `ref.member` (e.g. `tok.vocab`).
  Value member(const std::string &m) const { return Value::raw(name_ + "." + m); }
  const std::string &str() const { return name_; }

private:
  std::string name_;
};

/// One diagnostic. `file`/`line` are the C++ call site for declarations made in code (then
/// `llmpLine`/`llmpCol` locate it in `Program::source()`), or the .llmp file it is in.
struct Diagnostic {
  enum class Severity { Error, Warning, Note, Remark };
  Severity severity = Severity::Error;
  std::string message;
  std::string file;
  unsigned line = 0, col = 0;
  unsigned llmpLine = 0, llmpCol = 0; ///< in the synthesized source; 0 for other files
  std::string sourceLine;             ///< the .llmp line the diagnostic points at
  /// `file:line:col: error: message` followed by the .llmp source line, like llmpc.
  std::string str() const;
};
using DiagnosticHandler = std::function<void(const Diagnostic &)>;

class Stage;
class Checked;

/// A pipeline under construction.
class Program {
public:
  /// `name` names the synthesized source (`<name>.llmp` in diagnostics).
  explicit Program(std::string name = "embedded");
  ~Program();
  Program(const Program &) = delete;
  Program &operator=(const Program &) = delete;

  /// `import std.models.llama`.
  void import(const std::string &module, SourceLoc at = here());
  /// `dataset name = value`.
  Ref dataset(const std::string &name, const Value &value, SourceLoc at = here());
  /// `tokenizer name = value`.
  Ref tokenizer(const std::string &name, const Value &value, SourceLoc at = here());
  /// `model name = family(args...)` (arguments by name).
  Ref model(const std::string &name, const std::string &family, const std::vector<Arg> &args,
            SourceLoc at = here());
  /// `stage name (: kind)? { ... }`; fields are added with Stage::set, in order.
  Stage &stage(const std::string &name, const std::string &kind = "", SourceLoc at = here());
  /// `pipeline name = a -> b -> c`.
  void pipeline(const std::string &name, const std::vector<std::string> &stages,
                SourceLoc at = here());
  /// Any further .llmp text (e.g. a model family or loss written inline), one declaration.
  void declare(const std::string &llmpText, SourceLoc at = here());

  /// The .llmp text this program stands for.
  std::string source() const;

  /// Parses and checks the program (imports from `stdlibDir`, default the source tree's
  /// stdlib/). Diagnostics go to `handler` (default: printed to stderr). Returns null when
  /// there was an error.
  std::unique_ptr<Checked> check(const DiagnosticHandler &handler = nullptr,
                                 const std::string &stdlibDir = "") const;

private:
  friend class Stage;
  struct Line {
    std::string text;
    SourceLoc at;
  };
  std::string name_;
  std::vector<Line> lines_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<Line> render() const;
};

/// A stage under construction; `set` adds one `field: value` line.
class Stage {
public:
  Stage &set(const std::string &field, const Value &value, SourceLoc at = here());
  operator Ref() const { return Ref(name_); }
  const std::string &name() const { return name_; }

private:
  friend class Program;
  std::string name_, kind_;
  SourceLoc at_;
  std::vector<Program::Line> fields_;
};

/// Options of Checked::run (those of `llmpc run`).
struct RunOptions {
  std::string runDir;       ///< "" -> runs/<pipeline>/<stage>
  int64_t steps = 0;        ///< > 0 overrides the stage's steps
  int64_t samples = 3;      ///< texts sampled after training
  bool quiet = false;       ///< no progress output
};

/// A program that passed the checks; emits and runs its stages.
class Checked {
public:
  ~Checked();
  /// Checks a .llmp file (what `llmpc check` does before specialising stages).
  static std::unique_ptr<Checked> fromFile(const std::string &path,
                                           const DiagnosticHandler &handler = nullptr,
                                           const std::string &stdlibDir = "");
  /// The stages of the program, in order.
  std::vector<std::string> stages() const;
  /// The llmp module of `stage` (what `llmpc emit --compile-to=llmp` prints), with or
  /// without locations. Returns "" after reporting a diagnostic.
  std::string emit(const std::string &stage, bool withLocations = false) const;
  /// The runtime's plan of `stage` (as `llmpc run` builds it). Returns false after
  /// reporting a diagnostic.
  bool stagePlan(const std::string &stage, lrt::StagePlan &plan) const;
  /// Compiles `stage` to native code and trains it, as `llmpc run` does. Returns "" on
  /// success, else the error.
  std::string run(const std::string &stage, const RunOptions &options = {}) const;

private:
  friend class Program;
  struct Impl;
  explicit Checked(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace llmp
