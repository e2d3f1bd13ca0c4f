// SPDX-License-Identifier: Apache-2.0
/// The abstract syntax tree of .llmp files. Every node carries the `file:line:col` where it
/// starts. The tree is plain data: the parser builds it, Sema checks it (and records what it
/// computed in `Program`), the AST dumper prints it and compiler/Frontend lowers it.
#pragma once

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mlir {
class Location;
class MLIRContext;
} // namespace mlir

namespace llmp::lang {

/// A source position. `file` points into the Program's interned file names.
struct Loc {
  llvm::StringRef file;
  unsigned line = 0, col = 0;
};

/// Returns `loc` as an MLIR FileLineColLoc.
mlir::Location toMLIR(mlir::MLIRContext &ctx, const Loc &loc);

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

/// One expression node. A single struct with a kind keeps the tree small; which fields are
/// used depends on the kind (see the comments).
struct Expr {
  enum class Kind {
    Int,    ///< `intValue`; `text` is the spelling
    Float,  ///< `floatValue`; `text` is the spelling
    String, ///< `text`
    Name,   ///< `text`
    Member, ///< `operands[0]` . `text`
    Call,   ///< `text`(`operands`...), `argNames[i]` empty for positional arguments
    Binary, ///< `operands[0]` `text` `operands[1]`, `text` one of + - * / @
    Neg,    ///< - `operands[0]`
    Tuple,  ///< (`operands`...)
    Batch,  ///< `operands[0]` x `operands[1]` (stage field `batch`)
    Every,  ///< every `operands[0]` (stage field `eval`)
    List,   ///< [`operands`...] (e.g. LoRA targets, reward functions, special tokens)
  };
  Kind kind;
  Loc loc;
  std::string text;
  int64_t intValue = 0;
  double floatValue = 0.0;
  std::vector<ExprPtr> operands;
  std::vector<std::string> argNames;
  std::vector<Loc> argNameLocs;

  Expr(Kind kind, Loc loc) : kind(kind), loc(loc) {}

  /// Returns the named argument `name` of a call, or null.
  const Expr *arg(llvm::StringRef name) const;
  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float; }
};

/// Prints an expression back as source text (used for symbolic dimensions and messages).
std::string printExpr(const Expr &e);

//===----------------------------------------------------------------------===//
// Types, parameters and statements of the tensor sublanguage
//===----------------------------------------------------------------------===//

/// A written type: a scalar (`int`, `float`, `bool`, `f32`) or a tensor `f32[B, T, dim]`.
struct TypeRef {
  Loc loc;
  std::string name;          ///< int, float, bool, f32, i32
  bool isTensor = false;     ///< has a `[...]` shape
  std::vector<ExprPtr> dims; ///< symbolic dimensions
};

/// A formal parameter `name: type (= default)?` of a model family, forward or loss.
struct Formal {
  Loc loc;
  std::string name;
  TypeRef type;
  ExprPtr defaultValue; ///< may be null
};

/// `param name: [dims] = init` inside a model family.
struct ParamDecl {
  Loc loc;
  std::string name;
  std::vector<ExprPtr> shape;
  ExprPtr init;        ///< may be null: normal(0, 0.02)
  int repeat = -1;     ///< index into ModelFamily::repeats, or -1
};

/// `repeat count as var { param... }`: per-layer parameters.
struct RepeatBlock {
  Loc loc;
  std::string count; ///< a family parameter name, also the prefix of parameter paths
  Loc countLoc;
  std::string var;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;

/// A statement of a forward body.
struct Stmt {
  enum class Kind {
    Assign, ///< `name` = `value`
    For,    ///< for `name` in `range` { `body` }
    Return, ///< return `value`
  };
  Kind kind;
  Loc loc;
  std::string name;
  std::string range;
  Loc rangeLoc;
  ExprPtr value;
  std::vector<StmtPtr> body;
  Stmt(Kind kind, Loc loc) : kind(kind), loc(loc) {}
};

/// `forward(inputs) -> result { body }`.
struct ForwardDecl {
  Loc loc;
  std::vector<Formal> inputs;
  TypeRef result;
  std::vector<StmtPtr> body;
};

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

/// A top-level declaration. Use `kind` to pick the subclass.
struct Decl {
  enum class Kind { Import, Tokenizer, Dataset, Model, Family, Loss, Stage, Pipeline };
  Kind kind;
  Loc loc;
  std::string name; ///< empty for imports
  Loc nameLoc;
  Decl(Kind kind, Loc loc) : kind(kind), loc(loc) {}
  virtual ~Decl() = default;
};
using DeclPtr = std::unique_ptr<Decl>;

/// Returns the keyword that introduces a declaration of `kind`.
llvm::StringRef keyword(Decl::Kind kind);

/// `import std.models.llama`.
struct ImportDecl : Decl {
  std::vector<std::string> path; ///< {"std", "models", "llama"}
  std::string resolvedFile;      ///< filled by the loader
  ImportDecl(Loc loc) : Decl(Kind::Import, loc) {}
};

/// `tokenizer x = ...`, `dataset x = ...` and `model x = family(...)`.
struct BindingDecl : Decl {
  ExprPtr value; ///< a Call
  BindingDecl(Kind kind, Loc loc) : Decl(kind, loc) {}
};

/// `model family(formals) { params, repeats, forward }`.
struct FamilyDecl : Decl {
  std::vector<Formal> formals;
  std::vector<ParamDecl> params; ///< in declaration order (= flat-buffer order)
  std::vector<RepeatBlock> repeats;
  std::unique_ptr<ForwardDecl> forward;
  std::vector<const ParamDecl *> embeddingTables; ///< filled by Sema: params used by `embedding`
  FamilyDecl(Loc loc) : Decl(Kind::Family, loc) {}
};

/// `loss name(formals) -> type = expr`, or `reward name(formals) -> type = expr` (a reward
/// function; `isReward`). A reward whose body is the name `builtin` is implemented by the
/// compiler (string matching on decoded text: `exact_answer`, `format`).
struct LossDecl : Decl {
  std::vector<Formal> formals;
  TypeRef result;
  ExprPtr body;                ///< `= expr`; null when the body is a block
  std::vector<StmtPtr> stmts;  ///< `{ x = ...; return ... }` (assignments, then a return)
  bool isReward = false;
  LossDecl(Loc loc) : Decl(Kind::Loss, loc) {}
};

/// One `name: value` field of a stage.
struct Field {
  Loc loc;
  std::string name;
  ExprPtr value;
};

/// `stage name (: kind)? { field... }`. Without `: kind` the kind is the stage's name when
/// that names a kind (`stage sft { ... }`), else `pretrain`.
struct StageDecl : Decl {
  std::string kindName; ///< as written after ':'; empty when omitted
  Loc kindLoc;
  std::vector<Field> fields;
  StageDecl(Loc loc) : Decl(Kind::Stage, loc) {}
  const Field *field(llvm::StringRef name) const;
};

/// `pipeline name = a -> b -> c`.
struct PipelineDecl : Decl {
  std::vector<std::pair<std::string, Loc>> stages;
  PipelineDecl(Loc loc) : Decl(Kind::Pipeline, loc) {}
};

/// One parsed file.
struct Module {
  std::string file;
  Loc loc;
  std::vector<DeclPtr> decls;
  bool isStdlib = false;
};

//===----------------------------------------------------------------------===//
// What Sema computes
//===----------------------------------------------------------------------===//

/// One parameter of a specialised model, in flat-buffer order.
struct ConcreteParam {
  std::string path;           ///< "embed", "layers.0.wq"
  std::vector<int64_t> shape;
  const ParamDecl *decl = nullptr;
  int layer = -1;             ///< repeat iteration, or -1
  int64_t offset = 0, numel = 0;
  bool decay = false;
};

/// A model instance with all family arguments evaluated.
struct ModelSpec {
  const BindingDecl *decl = nullptr;
  const FamilyDecl *family = nullptr;
  std::map<std::string, double> args; ///< every family formal, defaults included
  std::map<std::string, bool> isInt;  ///< whether args[name] is an integer
  std::vector<ConcreteParam> params;
  int64_t numParams = 0;
  /// `from_gguf(...)` models: the GGUF file the weights come from (`~/` expanded, relative
  /// to the .llmp file); empty for models that start from their initialisers.
  std::string ggufPath;
  int64_t get(llvm::StringRef name, int64_t fallback = 0) const;
};

/// A tokenizer declaration, evaluated. `vocab` is 0 when it is not knowable before run
/// time (a tokenizer.json or GGUF file without a declared `vocab:`).
struct TokenizerInfo {
  const BindingDecl *decl = nullptr;
  std::string kind; ///< bpe, from_file, gpt2, from_gguf
  std::string path; ///< from_file, from_gguf: the file (`~/` expanded, relative to the .llmp)
  int64_t vocab = 0;
  const Expr *vocabExpr = nullptr; ///< where the vocabulary is set (for notes)
  bool specialsKnown = false;      ///< whether `specials` is the complete list
  std::vector<std::string> specials;
  const Expr *specialsExpr = nullptr;
};

/// A dataset declaration, evaluated. `shape` is what one example holds: `text`, `chat`,
/// `prompt_completion`, `preference` or `qa`.
struct DatasetInfo {
  const BindingDecl *decl = nullptr;
  std::string kind;  ///< text, jsonl, json, generate
  std::string shape; ///< text, chat, prompt_completion, preference, qa
  std::string path, format = "text";
  double split = 0.95;
  std::string chatTemplate; ///< chat data: chatml, llama3
  std::string trainOn;      ///< chat data: assistant, all
  /// json convos data: "all" samples, or the "correct" ones (score 1 in the file)
  std::string keep = "all";
  /// JSONL data: the JSON key each format argument reads ("messages" -> "messages", ...),
  /// for the arguments given in the file (the others read the key of their own name).
  std::map<std::string, std::string> keys;
  const Expr *templateExpr = nullptr;
  int64_t count = 0, seed = 0; ///< generated data
};

/// A stage's configuration with every field evaluated (defaults filled in).
struct StageInfo {
  const StageDecl *decl = nullptr;
  std::string kind = "pretrain"; ///< pretrain, sft, reward_model, dpo, ppo, grpo, deploy
  const StageInfo *parent = nullptr;    ///< `from:` or `policy:`
  const StageInfo *reference = nullptr; ///< frozen reference (dpo, ppo, grpo)
  const StageInfo *rewardModel = nullptr; ///< ppo/grpo reward given by a reward_model stage
  std::vector<std::string> rewardFunctions; ///< grpo/ppo: exact_answer, format
  const ModelSpec *model = nullptr;
  const BindingDecl *dataset = nullptr;   ///< `dataset x = text(...)`
  const DatasetInfo *data = nullptr;
  const BindingDecl *tokenizer = nullptr; ///< `tokenizer x = bpe(...)`
  const LossDecl *loss = nullptr;
  std::string objective; ///< the loss by name: a stdlib loss, or bradley_terry, dpo, ppo_clip, grpo
  std::string dataPath, dataFormat = "text";
  double split = 0.95;
  int64_t vocab = 0; ///< tokenizer vocabulary
  int64_t batch = 0, seqLen = 0, steps = 0, evalEvery = 0, evalBatches = 8, warmup = 0;
  double lr = 1e-3, minLr = 0.0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weightDecay = 0.1, gradClip = 1.0;
  /// Matrix-product precision: fp32, or bf16 (operands rounded to bf16, fp32 accumulation,
  /// fp32 master weights and everything else fp32; kernels/cpu/MatmulBf16.h).
  std::string precision = "fp32";
  /// Activation recomputation in the backward pass: none, attention (each layer's
  /// attention block, from its input norm to the attention output, is recomputed before
  /// its backward) or layers (each transformer layer's forward is recomputed from the
  /// layer's input before its backward; Chen et al. 2016). llmp-recompute.
  std::string recompute = "none";
  uint64_t seed = 0;
  bool hasOptimizer = false;
  int64_t ranks = 1;
  int64_t accumulate = 1; ///< micro-batches per optimizer step (gradient accumulation)
  bool packing = false;
  // Adapter and quantized base.
  bool lora = false, rslora = false;
  int64_t loraRank = 0;
  double loraAlpha = 0, loraDropout = 0;
  std::vector<const ConcreteParam *> loraTargets; ///< the adapted matrices
  bool nf4 = false, doubleQuant = false;
  int64_t nf4Block = 64;
  // Preference and RL settings.
  bool scalarHead = false; ///< reward_model (scalar head instead of the LM head)
  double beta = 0.1, clip = 0.2, kl = 0.0, gamma = 1.0, lambda = 0.95;
  int64_t group = 0;
  int64_t maxNew = 0, maxPrompt = 0, topK = 0;
  double temperature = 1.0, topP = 1.0;
  // Deploy.
  std::string quantize = "none"; ///< none, int8, int4
  int64_t quantGroup = 0;
  int64_t port = 8080, maxBatch = 1;
  std::string api = "openai";

  bool trains() const { return kind != "deploy"; }
  bool generates() const { return kind == "ppo" || kind == "grpo" || kind == "deploy"; }
};

/// A parsed and checked set of files: the main file plus everything it imports.
struct Program {
  std::vector<std::unique_ptr<Module>> modules; ///< imports first, the main file last
  std::map<std::string, const Decl *> globals;  ///< filled by Sema
  std::map<std::string, ModelSpec> models;      ///< by instance name, filled by Sema
  std::map<std::string, StageInfo> stageInfo;   ///< by stage name, filled by Sema
  std::map<std::string, TokenizerInfo> tokenizers; ///< by name, filled by Sema
  std::map<std::string, DatasetInfo> datasets;     ///< by name, filled by Sema

  const Module &main() const { return *modules.back(); }
  const Decl *lookup(llvm::StringRef name) const;
  template <typename T> const T *lookupAs(llvm::StringRef name, Decl::Kind kind) const {
    const Decl *d = lookup(name);
    return d && d->kind == kind ? static_cast<const T *>(d) : nullptr;
  }
  /// The stages of the main file, in order.
  std::vector<const StageDecl *> stages() const;
};

} // namespace llmp::lang
