// SPDX-License-Identifier: Apache-2.0
/// Semantic analysis. Model families and losses are checked once, symbolically: a
/// dimension is the source text of its expression (`dim`, `B`, `4 * dim`), and two
/// dimensions agree when their texts do. Model instances and stages are then checked with
/// numbers. An expression that already failed has type `Error`, which every later check
/// accepts silently, so one mistake gives one diagnostic.
#include "lang/Sema.h"

#include "runtime/GgufModel.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>

namespace llmp::lang {

std::string closestMatch(llvm::StringRef name, llvm::ArrayRef<std::string> candidates) {
  std::string best;
  unsigned bestDist = ~0u;
  for (const std::string &c : candidates) {
    unsigned d = name.edit_distance(c, /*AllowReplacements=*/true);
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  // Replacing every character of a short name is no misspelling ('x' is not 'b').
  unsigned limit = std::max<unsigned>(1, (name.size() + 2) / 3);
  return bestDist <= limit && bestDist > 0 && bestDist < name.size() ? best : "";
}

llvm::ArrayRef<std::string> stageFieldNames() {
  static const std::vector<std::string> names = {
      "model",   "from",      "policy",  "reference",  "reward", "data",       "tokenizer",
      "loss",    "optimizer", "schedule", "batch",     "steps",  "grad_clip",  "eval",
      "eval_batches", "seed", "ranks",   "packing",    "adapter", "base",      "head",
      "accumulate", "precision", "recompute",
      "beta",    "clip",      "kl",      "gamma",      "lambda", "value_head", "group",
      "rollout", "quantize",  "serve"};
  return names;
}

llvm::ArrayRef<std::string> stageKinds() {
  static const std::vector<std::string> kinds = {"pretrain", "sft", "reward_model", "dpo",
                                                 "ppo",      "grpo", "deploy"};
  return kinds;
}

namespace {

/// The largest vocabulary a tokenizer may declare: token ids are i32 tensors in the
/// compiled steps, so ids run up to 2^31 - 1.
constexpr double kMaxVocab = 2147483647.0;

/// A symbolic type: a scalar of the host language, a tensor, or a loop's layer handle.
struct Ty {
  enum class K { Error, Int, Float, Bool, Tensor, Layer };
  K k = K::Error;
  std::string dtype;             ///< f32 or i32, for tensors
  std::vector<std::string> dims; ///< symbolic dimensions, for tensors
  std::string range;             ///< for layers: the repeat count name

  static Ty error() { return Ty(); }
  static Ty scalar(K k) {
    Ty t;
    t.k = k;
    return t;
  }
  static Ty tensor(std::string dtype, std::vector<std::string> dims) {
    Ty t;
    t.k = K::Tensor;
    t.dtype = std::move(dtype);
    t.dims = std::move(dims);
    return t;
  }
  bool isError() const { return k == K::Error; }
  bool isTensor() const { return k == K::Tensor; }
  bool isNumber() const { return k == K::Int || k == K::Float; }
  size_t rank() const { return dims.size(); }
  bool sameShape(const Ty &o) const { return dtype == o.dtype && dims == o.dims; }
};

std::string str(const Ty &t) {
  switch (t.k) {
  case Ty::K::Error:
    return "<error>";
  case Ty::K::Int:
    return "int";
  case Ty::K::Float:
    return "float";
  case Ty::K::Bool:
    return "bool";
  case Ty::K::Layer:
    return "layer of '" + t.range + "'";
  case Ty::K::Tensor:
    if (t.dims.empty())
      return t.dtype;
    return t.dtype + "[" + llvm::join(t.dims, ", ") + "]";
  }
  return "";
}

/// Prints a number the way a user would write it: `0`, `0.5`, `3e-05`.
std::string fmtNum(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<int64_t>(v));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

/// A number computed at compile time. Integers are exact in `i` (checked 64-bit arithmetic);
/// `value` is the number as a double either way.
struct Num {
  double value = 0;
  bool isInt = false;
  int64_t i = 0;
  static Num integer(int64_t v) { return Num{static_cast<double>(v), true, v}; }
  static Num real(double v) { return Num{v, false, 0}; }
  /// Prints the number as the user would write it (`-5`, `0.5`, `3e-05`).
  std::string str() const { return isInt ? std::to_string(i) : fmtNum(value); }
};

/// One argument of a builtin.
struct ArgSpec {
  const char *name;
  Ty::K kind; ///< Tensor, Int, Float or Bool (Int is accepted where Float is)
  bool optional = false;
  bool numberOk = false; ///< a Tensor argument that may also be a number (broadcast)
};

/// Broadcasts two symbolic shapes NumPy-style: dimensions align from the right and agree
/// when their texts are equal or one of them is `1`. Returns nullopt when they do not.
std::optional<std::vector<std::string>> broadcastDims(const std::vector<std::string> &a,
                                                      const std::vector<std::string> &b) {
  size_t n = std::max(a.size(), b.size());
  std::vector<std::string> out(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string *x = i < a.size() ? &a[a.size() - 1 - i] : nullptr;
    const std::string *y = i < b.size() ? &b[b.size() - 1 - i] : nullptr;
    std::string &o = out[n - 1 - i];
    if (!x)
      o = *y;
    else if (!y)
      o = *x;
    else if (*x == "1")
      o = *y;
    else if (*y == "1" || *x == *y)
      o = *x;
    else
      return std::nullopt;
  }
  return out;
}

/// Names visible in a forward or loss body.
struct Scope {
  std::map<std::string, Ty> vars;
  std::map<std::string, const ParamDecl *> params; ///< top-level `param`s, by name
};

class Sema {
public:
  Sema(Program &prog, mlir::MLIRContext &ctx) : prog(prog), ctx(ctx) {}

  mlir::LogicalResult run() {
    collectGlobals();
    for (auto &m : prog.modules)
      for (DeclPtr &d : m->decls) {
        if (d->kind == Decl::Kind::Family) {
          unsigned before = numErrors;
          checkFamily(static_cast<FamilyDecl &>(*d));
          if (numErrors != before)
            badFamilies.insert(d.get()); // its instances would repeat its errors
        }
        else if (d->kind == Decl::Kind::Loss)
          checkLoss(static_cast<const LossDecl &>(*d));
      }
    // Datasets, then tokenizers (which name datasets), then everything that uses them.
    for (const DeclPtr &d : prog.main().decls)
      if (d->kind == Decl::Kind::Dataset)
        checkDataset(static_cast<const BindingDecl &>(*d));
    for (const DeclPtr &d : prog.main().decls)
      if (d->kind == Decl::Kind::Tokenizer)
        checkTokenizer(static_cast<const BindingDecl &>(*d));
    for (const DeclPtr &d : prog.main().decls) {
      switch (d->kind) {
      case Decl::Kind::Model:
        checkModel(static_cast<const BindingDecl &>(*d));
        break;
      case Decl::Kind::Stage:
        ensureStage(static_cast<const StageDecl &>(*d));
        break;
      case Decl::Kind::Pipeline:
        checkPipeline(static_cast<const PipelineDecl &>(*d));
        break;
      default:
        break;
      }
    }
    return mlir::failure(failed);
  }

private:
  //===--------------------------------------------------------------------===//
  // Diagnostics
  //===--------------------------------------------------------------------===//

  mlir::InFlightDiagnostic error(const Loc &loc) {
    failed = true;
    ++numErrors;
    auto diag = mlir::emitError(toMLIR(ctx, loc));
    // An error inside an imported file: show the import chain back to the main file.
    llvm::StringRef file = loc.file;
    for (int hops = 0; hops < 64; ++hops) {
      auto it = importedAt.find(file.str());
      if (it == importedAt.end())
        break;
      diag.attachNote(toMLIR(ctx, it->second)) << "imported from here";
      file = it->second.file;
    }
    return diag;
  }
  mlir::Location mloc(const Loc &loc) { return toMLIR(ctx, loc); }

  /// Reports an unknown name, with a suggestion when one is close.
  void unknown(const Loc &loc, llvm::StringRef what, llvm::StringRef name,
               llvm::ArrayRef<std::string> candidates, llvm::StringRef expected = "",
               llvm::StringRef owner = "") {
    auto diag = error(loc);
    diag << "unknown " << what << " '" << name << "'";
    if (!owner.empty())
      diag << " of " << owner;
    std::string guess = closestMatch(name, candidates);
    if (!guess.empty())
      diag << "; did you mean '" << guess << "'?";
    else if (!expected.empty())
      diag << "; expected " << expected;
  }

  static std::string quoteList(llvm::ArrayRef<std::string> names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) {
      if (i)
        s += i + 1 == names.size() ? " or " : ", ";
      s += "'" + names[i] + "'";
    }
    return s;
  }

  std::vector<std::string> globalsOfKind(Decl::Kind kind) {
    std::vector<std::string> out;
    for (auto &[name, d] : prog.globals)
      if (d->kind == kind)
        out.push_back(name);
    return out;
  }

  static std::string describeDecl(const Decl &d) {
    switch (d.kind) {
    case Decl::Kind::Tokenizer:
      return "a tokenizer";
    case Decl::Kind::Dataset:
      return "a dataset";
    case Decl::Kind::Model:
      return "a model instance";
    case Decl::Kind::Family:
      return "a model family";
    case Decl::Kind::Loss:
      return static_cast<const LossDecl &>(d).isReward ? "a reward function" : "a loss";
    case Decl::Kind::Stage:
      return "a stage";
    case Decl::Kind::Pipeline:
      return "a pipeline";
    default:
      return "an import";
    }
  }

  /// Resolves `e` as a name of a global of `kind`; reports and returns null otherwise.
  const Decl *resolveRef(const Expr &e, Decl::Kind kind, llvm::StringRef what) {
    if (e.kind != Expr::Kind::Name) {
      error(e.loc) << "expected the name of " << what << ", found '" << printExpr(e) << "'";
      return nullptr;
    }
    const Decl *d = prog.lookup(e.text);
    if (!d) {
      unknown(e.loc, what, e.text, globalsOfKind(kind));
      return nullptr;
    }
    if (d->kind != kind) {
      auto diag = error(e.loc);
      diag << "'" << e.text << "' is " << describeDecl(*d) << ", expected " << what;
      diag.attachNote(mloc(d->nameLoc)) << "'" << e.text << "' is declared here";
      return nullptr;
    }
    return d;
  }

  //===--------------------------------------------------------------------===//
  // Globals
  //===--------------------------------------------------------------------===//

  void collectGlobals() {
    for (auto &m : prog.modules)
      for (DeclPtr &d : m->decls)
        if (d->kind == Decl::Kind::Import) {
          const auto &imp = static_cast<const ImportDecl &>(*d);
          if (imp.resolvedFile != prog.main().file)
            importedAt.emplace(imp.resolvedFile, imp.loc); // the first import wins
        }
    for (auto &m : prog.modules)
      for (DeclPtr &d : m->decls) {
        if (d->kind == Decl::Kind::Import)
          continue;
        auto [it, inserted] = prog.globals.emplace(d->name, d.get());
        if (!inserted) {
          auto diag = error(d->nameLoc);
          diag << "redefinition of '" << d->name << "'";
          diag.attachNote(mloc(it->second->nameLoc)) << "previous definition is here";
        }
      }
  }

  //===--------------------------------------------------------------------===//
  // Scalars and constants
  //===--------------------------------------------------------------------===//

  std::optional<Num> overflow(const Expr &e, llvm::StringRef what) {
    error(e.loc) << "integer overflow in " << what << ": '" << printExpr(e)
                 << "' does not fit in 64 bits";
    return std::nullopt;
  }

  /// Evaluates a compile-time number. `env` holds visible numeric names. Reports and
  /// returns nullopt when `e` is not a number.
  std::optional<Num> evalNum(const Expr &e, const std::map<std::string, Num> &env,
                             llvm::StringRef what) {
    switch (e.kind) {
    case Expr::Kind::Int:
      return Num::integer(e.intValue);
    case Expr::Kind::Float:
      return Num::real(e.floatValue);
    case Expr::Kind::Name: {
      auto it = env.find(e.text);
      if (it != env.end())
        return it->second;
      std::vector<std::string> names;
      for (auto &[n, v] : env)
        names.push_back(n);
      if (prog.lookup(e.text)) {
        error(e.loc) << "expected a number for " << what << ", found "
                     << describeDecl(*prog.lookup(e.text)) << " '" << e.text << "'";
        return std::nullopt;
      }
      unknown(e.loc, "name", e.text, names, ("a number for " + what).str());
      return std::nullopt;
    }
    case Expr::Kind::Member: {
      // `tok.vocab`: a tokenizer's vocabulary size.
      const Expr &base = *e.operands[0];
      if (base.kind == Expr::Kind::Name) {
        if (const auto *tok = prog.lookupAs<BindingDecl>(base.text, Decl::Kind::Tokenizer)) {
          if (e.text != "vocab") {
            unknown(e.loc, "tokenizer property", e.text, {"vocab"}, "'vocab'");
            return std::nullopt;
          }
          auto ti = prog.tokenizers.find(tok->name);
          if (ti == prog.tokenizers.end())
            return std::nullopt; // the tokenizer's own error was reported
          if (ti->second.vocab <= 0) {
            error(e.loc) << "the vocabulary size of tokenizer '" << base.text
                         << "' is not known before run time; declare it with 'vocab: N'";
            return std::nullopt;
          }
          return Num::integer(ti->second.vocab);
        }
      }
      error(e.loc) << "expected a number for " << what << ", found '" << printExpr(e) << "'";
      return std::nullopt;
    }
    case Expr::Kind::Neg: {
      auto v = evalNum(*e.operands[0], env, what);
      if (!v)
        return v;
      if (!v->isInt)
        return Num::real(-v->value);
      if (v->i == std::numeric_limits<int64_t>::min())
        return overflow(e, what);
      return Num::integer(-v->i);
    }
    case Expr::Kind::Binary: {
      auto a = evalNum(*e.operands[0], env, what);
      if (!a)
        return std::nullopt;
      auto b = evalNum(*e.operands[1], env, what);
      if (!b)
        return std::nullopt;
      if (e.text == "/" && b->value == 0) {
        error(e.loc) << "division by zero in " << what;
        return std::nullopt;
      }
      if (a->isInt && b->isInt) {
        std::optional<int64_t> r;
        if (e.text == "+")
          r = llvm::checkedAdd(a->i, b->i);
        else if (e.text == "-")
          r = llvm::checkedSub(a->i, b->i);
        else if (e.text == "*")
          r = llvm::checkedMul(a->i, b->i);
        else if (e.text == "/" &&
                 !(a->i == std::numeric_limits<int64_t>::min() && b->i == -1)) {
          // Floor division, as for the non-negative sizes it is meant for.
          int64_t q = a->i / b->i;
          r = q - ((a->i % b->i != 0) && ((a->i < 0) != (b->i < 0)));
        }
        if (e.text != "@") {
          if (!r)
            return overflow(e, what);
          return Num::integer(*r);
        }
      }
      double x = a->value, y = b->value;
      if (e.text == "+")
        return Num::real(x + y);
      if (e.text == "-")
        return Num::real(x - y);
      if (e.text == "*")
        return Num::real(x * y);
      if (e.text == "/")
        return Num::real(x / y);
      error(e.loc) << "operator '" << e.text << "' is not defined on numbers";
      return std::nullopt;
    }
    default:
      error(e.loc) << "expected a number for " << what << ", found '" << printExpr(e) << "'";
      return std::nullopt;
    }
  }

  //===--------------------------------------------------------------------===//
  // Model families (symbolic)
  //===--------------------------------------------------------------------===//

  static Ty::K scalarKind(llvm::StringRef name) {
    if (name == "int")
      return Ty::K::Int;
    if (name == "float")
      return Ty::K::Float;
    if (name == "bool")
      return Ty::K::Bool;
    return Ty::K::Error;
  }

  /// Converts a written tensor type to a symbolic type; dims resolve through `known`
  /// (formal names) or become fresh symbols when `allowFresh`.
  Ty typeOf(const TypeRef &t, const std::map<std::string, Ty> &known, bool allowFresh) {
    if (!t.isTensor) {
      if (t.name == "f32" || t.name == "i32")
        return Ty::tensor(t.name, {});
      Ty::K k = scalarKind(t.name);
      if (k == Ty::K::Error) {
        unknown(t.loc, "type", t.name, {"int", "float", "bool", "f32", "i32"},
                "'int', 'float', 'bool', 'f32' or 'i32'");
        return Ty::error();
      }
      return Ty::scalar(k);
    }
    if (t.name != "f32" && t.name != "i32") {
      unknown(t.loc, "element type", t.name, {"f32", "i32"}, "'f32' or 'i32'");
      return Ty::error();
    }
    std::vector<std::string> dims;
    for (const ExprPtr &d : t.dims) {
      if (!checkDim(*d, known, allowFresh))
        return Ty::error();
      dims.push_back(printExpr(*d));
    }
    return Ty::tensor(t.name, dims);
  }

  /// Checks that a dimension expression only uses integer names (or introduces a fresh
  /// symbol when `allowFresh` and it is a plain name).
  bool checkDim(const Expr &d, const std::map<std::string, Ty> &known, bool allowFresh) {
    switch (d.kind) {
    case Expr::Kind::Int:
      if (d.intValue <= 0) {
        error(d.loc) << "dimension must be positive, found " << d.intValue;
        return false;
      }
      return true;
    case Expr::Kind::Name: {
      auto it = known.find(d.text);
      if (it == known.end()) {
        if (allowFresh)
          return true;
        std::vector<std::string> names;
        for (auto &[n, t] : known)
          if (t.k == Ty::K::Int)
            names.push_back(n);
        unknown(d.loc, "dimension", d.text, names);
        return false;
      }
      if (it->second.k != Ty::K::Int) {
        error(d.loc) << "dimension '" << d.text << "' must be an int, found "
                     << str(it->second);
        return false;
      }
      return true;
    }
    case Expr::Kind::Binary:
      if (d.text == "@") {
        error(d.loc) << "operator '@' is not defined on dimensions";
        return false;
      }
      if (d.text == "/" && d.operands[1]->kind == Expr::Kind::Int && d.operands[1]->intValue == 0) {
        error(d.loc) << "division by zero in the dimension '" << printExpr(d) << "'";
        return false;
      }
      // Operands are checked for names only: `dim - 1` is fine although 1 - 2 is not.
      return checkOperand(*d.operands[0], known) && checkOperand(*d.operands[1], known);
    default:
      error(d.loc) << "expected a dimension (a number, a name or arithmetic on them), found '"
                   << printExpr(d) << "'";
      return false;
    }
  }

  bool checkOperand(const Expr &d, const std::map<std::string, Ty> &known) {
    return d.kind == Expr::Kind::Int || checkDim(d, known, false);
  }

  void checkFamily(FamilyDecl &f) {
    curFamily = &f;
    reportedUndeclared.clear();
    std::map<std::string, Ty> formals;
    std::map<std::string, const Formal *> formalDecls;
    for (const Formal &p : f.formals) {
      if (formalDecls.count(p.name)) {
        auto diag = error(p.loc);
        diag << "duplicate parameter '" << p.name << "'";
        diag.attachNote(mloc(formalDecls[p.name]->loc)) << "previous definition is here";
        continue;
      }
      Ty::K k = scalarKind(p.type.name);
      if (k == Ty::K::Error || p.type.isTensor) {
        unknown(p.type.loc, "model parameter type", p.type.name, {"int", "float", "bool"},
                "'int', 'float' or 'bool'");
        continue;
      }
      if (p.defaultValue) {
        Ty dt = scalarExprType(*p.defaultValue, formals);
        if (!dt.isError() && !fits(dt.k, k))
          error(p.defaultValue->loc) << "default value of '" << p.name << "' must be "
                                     << str(Ty::scalar(k)) << ", found " << str(dt);
      }
      formals[p.name] = Ty::scalar(k);
      formalDecls[p.name] = &p;
    }
    // Parameters: names unique per scope, shapes over int formals, known initialisers.
    Scope scope;
    std::map<std::pair<int, std::string>, const ParamDecl *> seen;
    for (const RepeatBlock &r : f.repeats) {
      auto it = formals.find(r.count);
      if (it == formals.end())
        unknown(r.countLoc, "repeat count", r.count, keysOf(formals, Ty::K::Int));
      else if (it->second.k != Ty::K::Int)
        error(r.countLoc) << "repeat count '" << r.count << "' must be an int, found "
                          << str(it->second);
    }
    for (const ParamDecl &p : f.params) {
      auto [it, inserted] = seen.emplace(std::make_pair(p.repeat, p.name), &p);
      if (!inserted) {
        auto diag = error(p.loc);
        diag << "redefinition of parameter '" << p.name << "'";
        diag.attachNote(mloc(it->second->loc)) << "previous definition is here";
        continue;
      }
      for (const ExprPtr &d : p.shape)
        checkDim(*d, formals, false);
      if (p.init)
        checkInit(*p.init);
      if (p.repeat < 0)
        scope.params[p.name] = &p;
    }
    if (!f.forward) {
      error(f.nameLoc) << "model family '" << f.name << "' has no 'forward'";
      return;
    }
    const ForwardDecl &fwd = *f.forward;
    scope.vars = formals;
    for (const Formal &in : fwd.inputs) {
      Ty t = typeOf(in.type, formals, /*allowFresh=*/true);
      if (!t.isError() && (!t.isTensor() || t.dtype != "i32" || t.rank() != 2))
        error(in.type.loc) << "forward input '" << in.name
                           << "' must be a tensor of token ids i32[B, T], found " << str(t);
      scope.vars[in.name] = t;
    }
    if (fwd.inputs.size() != 1)
      error(fwd.loc) << "forward must take exactly one input (the token ids), found "
                     << fwd.inputs.size();
    std::map<std::string, Ty> resultKnown = formals;
    for (const Formal &in : fwd.inputs)
      if (in.type.isTensor)
        for (const ExprPtr &d : in.type.dims)
          if (d->kind == Expr::Kind::Name && !resultKnown.count(d->text))
            resultKnown[d->text] = Ty::scalar(Ty::K::Int);
    Ty result = typeOf(fwd.result, resultKnown, /*allowFresh=*/false);
    std::optional<Ty> returned;
    for (const StmtPtr &s : fwd.body)
      checkStmt(*s, scope, f, returned, result);
    if (!returned)
      error(fwd.loc) << "forward of model family '" << f.name
                     << "' does not end with a 'return'";
    curFamily = nullptr;
  }

  static std::vector<std::string> keysOf(const std::map<std::string, Ty> &m,
                                         std::optional<Ty::K> kind = std::nullopt) {
    std::vector<std::string> out;
    for (auto &[n, t] : m)
      if (!kind || t.k == *kind)
        out.push_back(n);
    return out;
  }

  static bool fits(Ty::K have, Ty::K want) {
    return have == want || (have == Ty::K::Int && want == Ty::K::Float);
  }

  /// Type of a scalar expression over `formals` (used for default values).
  Ty scalarExprType(const Expr &e, const std::map<std::string, Ty> &formals) {
    Scope s;
    s.vars = formals;
    Ty t = exprType(e, s);
    if (!t.isError() && t.k != Ty::K::Int && t.k != Ty::K::Float && t.k != Ty::K::Bool) {
      error(e.loc) << "expected a number, found " << str(t);
      return Ty::error();
    }
    return t;
  }

  void checkInit(const Expr &init) {
    if (init.kind == Expr::Kind::Name && (init.text == "ones" || init.text == "zeros"))
      return;
    if (init.kind == Expr::Kind::Call && init.text == "normal") {
      std::vector<const Expr *> args;
      static const ArgSpec spec[] = {{"mean", Ty::K::Float}, {"std", Ty::K::Float}};
      if (!bindArgs(init, spec, args))
        return;
      std::map<std::string, Num> none;
      auto mean = evalNum(*args[0], none, "'mean'");
      auto sd = evalNum(*args[1], none, "'std'");
      if (mean && sd && sd->value < 0)
        error(args[1]->loc) << "'std' of 'normal' must be at least 0, found " << sd->value;
      return;
    }
    llvm::StringRef name = init.kind == Expr::Kind::Call || init.kind == Expr::Kind::Name
                               ? llvm::StringRef(init.text)
                               : llvm::StringRef();
    if (!name.empty())
      unknown(init.loc, "initialiser", name, {"normal", "ones", "zeros"},
              "'normal(mean, std)', 'ones' or 'zeros'");
    else
      error(init.loc) << "expected an initialiser ('normal(mean, std)', 'ones' or 'zeros'), "
                         "found '"
                      << printExpr(init) << "'";
  }

  void checkStmt(const Stmt &s, Scope &scope, const FamilyDecl &f, std::optional<Ty> &returned,
                 const Ty &result) {
    if (returned) {
      error(s.loc) << "statement after 'return' is never executed";
      return;
    }
    switch (s.kind) {
    case Stmt::Kind::Assign: {
      Ty t = exprType(*s.value, scope);
      if (scope.params.count(s.name)) {
        auto diag = error(s.loc);
        diag << "cannot assign to parameter '" << s.name << "'";
        diag.attachNote(mloc(scope.params[s.name]->loc)) << "'" << s.name
                                                         << "' is declared here";
        return;
      }
      scope.vars[s.name] = t;
      return;
    }
    case Stmt::Kind::For: {
      bool found = llvm::any_of(f.repeats, [&](const RepeatBlock &r) { return r.count == s.range; });
      if (!found) {
        std::vector<std::string> counts;
        for (const RepeatBlock &r : f.repeats)
          counts.push_back(r.count);
        unknown(s.rangeLoc, "loop range", s.range, counts,
                counts.empty() ? "the count of a 'repeat' block"
                               : quoteList(counts) + " (the count of a 'repeat' block)");
        return;
      }
      Ty layer;
      layer.k = Ty::K::Layer;
      layer.range = s.range;
      Ty saved = scope.vars.count(s.name) ? scope.vars[s.name] : Ty::error();
      bool hadSaved = scope.vars.count(s.name);
      scope.vars[s.name] = layer;
      for (const StmtPtr &b : s.body) {
        if (b->kind == Stmt::Kind::Return) {
          error(b->loc) << "'return' inside a 'for' loop; return after the loop";
          continue;
        }
        checkStmt(*b, scope, f, returned, result);
      }
      if (hadSaved)
        scope.vars[s.name] = saved;
      else
        scope.vars.erase(s.name);
      return;
    }
    case Stmt::Kind::Return: {
      Ty t = exprType(*s.value, scope);
      returned = t;
      if (!t.isError() && !result.isError() && !(t.isTensor() && t.sameShape(result)))
        error(s.value->loc) << "forward returns " << str(t) << " but its declared result is "
                            << str(result);
      return;
    }
    }
  }

  //===--------------------------------------------------------------------===//
  // Expressions of the tensor sublanguage
  //===--------------------------------------------------------------------===//

  Ty exprType(const Expr &e, const Scope &scope) {
    switch (e.kind) {
    case Expr::Kind::Int:
      return Ty::scalar(Ty::K::Int);
    case Expr::Kind::Float:
      return Ty::scalar(Ty::K::Float);
    case Expr::Kind::String:
      error(e.loc) << "strings are not allowed in tensor expressions";
      return Ty::error();
    case Expr::Kind::Name: {
      if (e.text == "true" || e.text == "false")
        return Ty::scalar(Ty::K::Bool);
      auto it = scope.vars.find(e.text);
      if (it != scope.vars.end())
        return it->second;
      auto pit = scope.params.find(e.text);
      if (pit != scope.params.end())
        return paramType(*pit->second);
      std::vector<std::string> names = keysOf(scope.vars);
      for (auto &[n, p] : scope.params)
        names.push_back(n);
      if (curFamily)
        for (const ParamDecl &p : curFamily->params)
          if (p.repeat >= 0 && p.name == e.text) {
            error(e.loc) << "'" << e.text << "' is a per-layer parameter; use it as '"
                         << curFamily->repeats[p.repeat].var << "." << e.text
                         << "' inside 'for " << curFamily->repeats[p.repeat].var << " in "
                         << curFamily->repeats[p.repeat].count << "'";
            return Ty::error();
          }
      // Report each undeclared name once per body; later uses are echoes of the same mistake.
      if (!reportedUndeclared.insert(e.text).second)
        return Ty::error();
      auto diag = error(e.loc);
      diag << "use of undeclared name '" << e.text << "'";
      std::string guess = closestMatch(e.text, names);
      if (!guess.empty())
        diag << "; did you mean '" << guess << "'?";
      return Ty::error();
    }
    case Expr::Kind::Member: {
      Ty base = exprType(*e.operands[0], scope);
      if (base.isError())
        return base;
      if (base.k != Ty::K::Layer) {
        error(e.loc) << "'" << printExpr(*e.operands[0]) << "' of type " << str(base)
                     << " has no member '" << e.text << "'";
        return Ty::error();
      }
      std::vector<std::string> names;
      for (const ParamDecl &p : curFamily->params) {
        if (p.repeat < 0 || curFamily->repeats[p.repeat].count != base.range)
          continue;
        if (p.name == e.text)
          return paramType(p);
        names.push_back(p.name);
      }
      unknown(e.loc, "per-layer parameter", e.text, names);
      return Ty::error();
    }
    case Expr::Kind::Neg: {
      Ty t = exprType(*e.operands[0], scope);
      if (!t.isError() && !t.isNumber() && !(t.isTensor() && t.dtype == "f32")) {
        error(e.loc) << "unary '-' is defined on numbers and f32 tensors, found " << str(t);
        return Ty::error();
      }
      return t;
    }
    case Expr::Kind::Binary:
      return binaryType(e, scope);
    case Expr::Kind::Call:
      return callType(e, scope);
    default:
      error(e.loc) << "'" << printExpr(e) << "' is not a tensor expression";
      return Ty::error();
    }
  }

  Ty paramType(const ParamDecl &p) {
    std::vector<std::string> dims;
    for (const ExprPtr &d : p.shape)
      dims.push_back(printExpr(*d));
    return Ty::tensor("f32", dims);
  }

  Ty binaryType(const Expr &e, const Scope &scope) {
    Ty a = exprType(*e.operands[0], scope);
    Ty b = exprType(*e.operands[1], scope);
    if (a.isError() || b.isError())
      return Ty::error();
    const std::string &op = e.text;
    if (a.isNumber() && b.isNumber()) {
      if (op == "@") {
        error(e.loc) << "operator '@' needs tensors, found " << str(a) << " and " << str(b);
        return Ty::error();
      }
      return Ty::scalar(a.k == Ty::K::Int && b.k == Ty::K::Int ? Ty::K::Int : Ty::K::Float);
    }
    if (op == "@" && (!a.isTensor() || !b.isTensor())) {
      error(e.loc) << "operator '@' needs two tensors, found " << str(a) << " and " << str(b);
      return Ty::error();
    }
    if ((!a.isTensor() && !a.isNumber()) || (!b.isTensor() && !b.isNumber())) {
      error(e.loc) << "operator '" << op << "' needs tensors or numbers, found " << str(a)
                   << " and " << str(b);
      return Ty::error();
    }
    if ((a.isTensor() && a.dtype != "f32") || (b.isTensor() && b.dtype != "f32")) {
      error(e.loc) << "operator '" << op << "' needs f32 tensors, found " << str(a) << " and "
                   << str(b);
      return Ty::error();
    }
    if (op == "@") {
      if (b.rank() != 2 || a.rank() < 2) {
        error(e.loc) << "operator '@' needs a tensor of rank 2 or more on the left and a "
                        "matrix on the right, found "
                     << str(a) << " @ " << str(b);
        return Ty::error();
      }
      if (a.dims.back() != b.dims.front()) {
        error(e.loc) << "shape mismatch in '@': " << str(a) << " @ " << str(b)
                     << "; expected the right operand's first dimension to be '"
                     << a.dims.back() << "', found '" << b.dims.front() << "'";
        return Ty::error();
      }
      Ty r = a;
      r.dims.back() = b.dims.back();
      return r;
    }
    // + - * / elementwise: a number applies to every element; tensors broadcast
    // NumPy-style (dimensions align from the right; a dimension `1` repeats).
    if (!a.isTensor())
      return b;
    if (!b.isTensor())
      return a;
    auto dims = broadcastDims(a.dims, b.dims);
    if (!dims) {
      error(e.loc) << "shape mismatch in '" << op << "': " << str(a) << " " << op << " "
                   << str(b) << "; expected equal shapes, or shapes that broadcast (aligned from "
                      "the right, each dimension equal or 1)";
      return Ty::error();
    }
    return Ty::tensor("f32", *dims);
  }

  /// Binds the arguments of `call` to `spec` by position and name. Reports unknown,
  /// repeated, missing and surplus arguments.
  bool bindArgs(const Expr &call, llvm::ArrayRef<ArgSpec> spec,
                std::vector<const Expr *> &out) {
    out.assign(spec.size(), nullptr);
    size_t nextPositional = 0;
    for (size_t i = 0; i < call.operands.size(); ++i) {
      const std::string &name = call.argNames[i];
      size_t slot;
      if (name.empty()) {
        slot = nextPositional++;
        if (slot >= spec.size()) {
          error(call.operands[i]->loc) << "too many arguments to '" << call.text
                                       << "'; expected at most " << spec.size();
          return false;
        }
      } else {
        auto it = llvm::find_if(spec, [&](const ArgSpec &s) { return name == s.name; });
        if (it == spec.end()) {
          std::vector<std::string> names;
          for (const ArgSpec &s : spec)
            names.push_back(s.name);
          unknown(call.argNameLocs[i], "argument", name, names, quoteList(names),
                  "'" + call.text + "'");
          return false;
        }
        slot = it - spec.begin();
      }
      if (out[slot]) {
        error(call.operands[i]->loc) << "argument '" << spec[slot].name << "' of '"
                                     << call.text << "' is given twice";
        return false;
      }
      out[slot] = call.operands[i].get();
    }
    for (size_t i = 0; i < spec.size(); ++i)
      if (!out[i] && !spec[i].optional) {
        error(call.loc) << "missing argument '" << spec[i].name << "' of '" << call.text
                        << "'";
        return false;
      }
    return true;
  }

  /// The builtins of the tensor sublanguage with their arguments. docs/language.md lists
  /// their types; compiler/Frontend lowers those the llmp dialect has ops for.
  struct Builtin {
    const char *name;
    std::vector<ArgSpec> args;
  };
  static const std::vector<Builtin> &builtinTable() {
    using K = Ty::K;
    static const std::vector<Builtin> builtins = {
        {"embedding", {{"table", K::Tensor}, {"ids", K::Tensor}}},
        {"positions", {{"table", K::Tensor}, {"ids", K::Tensor}}},
        {"rmsnorm", {{"x", K::Tensor}, {"weight", K::Tensor}, {"eps", K::Float, true}}},
        {"layernorm",
         {{"x", K::Tensor}, {"weight", K::Tensor}, {"bias", K::Tensor}, {"eps", K::Float, true}}},
        {"rope", {{"x", K::Tensor}, {"heads", K::Int}, {"theta", K::Float, true}}},
        {"attention",
         {{"q", K::Tensor}, {"k", K::Tensor}, {"v", K::Tensor}, {"heads", K::Int},
          {"kv_heads", K::Int, true}, {"causal", K::Bool, true}}},
        {"silu", {{"x", K::Tensor}}},
        {"gelu", {{"x", K::Tensor}}},
        {"exp", {{"x", K::Tensor}}},
        {"log", {{"x", K::Tensor}}},
        {"sqrt", {{"x", K::Tensor}}},
        {"sigmoid", {{"x", K::Tensor}}},
        {"log_sigmoid", {{"x", K::Tensor}}},
        {"softmax", {{"x", K::Tensor}}},
        {"log_softmax", {{"x", K::Tensor}}},
        {"transpose", {{"x", K::Tensor}}},
        {"unsqueeze", {{"x", K::Tensor}, {"axis", K::Int}}},
        {"cross_entropy", {{"logits", K::Tensor}, {"targets", K::Tensor}}},
        {"target_mean", {{"x", K::Tensor}, {"targets", K::Tensor}}},
        {"take_along", {{"x", K::Tensor}, {"index", K::Tensor}}},
        {"clamp", {{"x", K::Tensor}, {"min", K::Float}, {"max", K::Float}}},
        {"min", {{"a", K::Tensor, false, true}, {"b", K::Tensor, false, true}}},
        {"max", {{"a", K::Tensor, false, true}, {"b", K::Tensor, false, true}}},
        {"where",
         {{"mask", K::Tensor}, {"a", K::Tensor, false, true}, {"b", K::Tensor, false, true}}},
        {"equal", {{"a", K::Tensor}, {"b", K::Tensor}}},
        {"sum", {{"x", K::Tensor}, {"axis", K::Int, true}, {"keepdims", K::Bool, true}}},
        {"mean", {{"x", K::Tensor}, {"axis", K::Int, true}, {"keepdims", K::Bool, true}}},
    };
    return builtins;
  }

  /// Reads an `axis` argument (an integer literal, negative from the end) of a tensor of
  /// rank `rank`; `insert` allows `rank` itself (a new trailing axis). Reports and returns
  /// nullopt when it is not a literal or out of range.
  std::optional<size_t> axisArg(const Expr &call, const Expr &e, size_t rank, bool insert) {
    std::optional<int64_t> v;
    if (e.kind == Expr::Kind::Int)
      v = e.intValue;
    else if (e.kind == Expr::Kind::Neg && e.operands[0]->kind == Expr::Kind::Int)
      v = -e.operands[0]->intValue;
    int64_t n = static_cast<int64_t>(rank) + (insert ? 1 : 0);
    if (!v || *v < -n || *v >= n) {
      auto diag = error(e.loc);
      diag << "argument 'axis' of '" << call.text << "' must be an integer literal in [" << -n
           << ", " << n << ") for a tensor of rank " << rank << ", found '" << printExpr(e)
           << "'";
      return std::nullopt;
    }
    return static_cast<size_t>(*v < 0 ? *v + n : *v);
  }

  Ty callType(const Expr &call, const Scope &scope) {
    using K = Ty::K;
    const auto &builtins = builtinTable();
    auto it = llvm::find_if(builtins, [&](const Builtin &b) { return call.text == b.name; });
    if (it == builtins.end()) {
      std::vector<std::string> names;
      for (const Builtin &b : builtins)
        names.push_back(b.name);
      unknown(call.loc, "function", call.text, names);
      return Ty::error();
    }
    std::vector<const Expr *> args;
    if (!bindArgs(call, it->args, args))
      return Ty::error();
    std::vector<Ty> tys(args.size());
    bool anyError = false;
    for (size_t i = 0; i < args.size(); ++i) {
      if (!args[i])
        continue;
      tys[i] = exprType(*args[i], scope);
      if (tys[i].isError()) {
        anyError = true;
        continue;
      }
      K want = it->args[i].kind;
      bool ok = want == K::Tensor
                    ? tys[i].isTensor() || (it->args[i].numberOk && tys[i].isNumber())
                    : fits(tys[i].k, want);
      if (!ok) {
        error(args[i]->loc) << "argument '" << it->args[i].name << "' of '" << call.text
                            << "' must be "
                            << (want != K::Tensor          ? str(Ty::scalar(want))
                                : it->args[i].numberOk ? std::string("a tensor or a number")
                                                       : std::string("a tensor"))
                            << ", found " << str(tys[i]);
        anyError = true;
      }
    }
    if (anyError)
      return Ty::error();
    auto bad = [&](size_t i, const llvm::Twine &expected) {
      error(args[i]->loc) << "argument '" << it->args[i].name << "' of '" << call.text
                          << "' must be " << expected << ", found " << str(tys[i]);
      return Ty::error();
    };
    llvm::StringRef name = call.text;
    const Ty &x = tys[0];
    if (name == "embedding" || name == "positions") {
      if (x.dtype != "f32" || x.rank() != 2)
        return bad(0, name == "embedding" ? "an f32 matrix [vocab, dim]"
                                          : "an f32 matrix [context, dim]");
      if (tys[1].dtype != "i32")
        return bad(1, "a tensor of i32 token ids");
      if (name == "positions" && tys[1].rank() != 2)
        return bad(1, "i32[B, T] token ids");
      // Tables read by row (token or position) get no weight decay.
      if (curFamily && args[0]->kind == Expr::Kind::Name)
        for (const ParamDecl &p : curFamily->params)
          if (p.repeat < 0 && p.name == args[0]->text &&
              !llvm::is_contained(curFamily->embeddingTables, &p))
            curFamily->embeddingTables.push_back(&p);
      std::vector<std::string> dims = tys[1].dims;
      dims.push_back(x.dims[1]);
      return Ty::tensor("f32", dims);
    }
    if (name == "equal") {
      if (tys[1].dtype != x.dtype)
        return bad(1, "a tensor of the dtype of 'a' (" + x.dtype + ")");
      auto dims = broadcastDims(x.dims, tys[1].dims);
      if (!dims)
        return bad(1, "a shape that broadcasts with " + str(x));
      return Ty::tensor("f32", *dims);
    }
    if (name == "take_along" || name == "cross_entropy") {
      if (x.dtype != "f32" || x.rank() < 2)
        return bad(0, name == "cross_entropy" ? "f32 logits of rank 2 or more"
                                              : "an f32 tensor of rank 2 or more");
      std::vector<std::string> prefix(x.dims.begin(), x.dims.end() - 1);
      if (tys[1].dtype != "i32" || tys[1].dims != prefix)
        return bad(1, "i32[" + llvm::join(prefix, ", ") + "] to match " +
                          (name == "cross_entropy" ? "the logits" : "'x'"));
      return Ty::tensor("f32", prefix);
    }
    if (name == "target_mean") {
      if (x.dtype != "f32")
        return bad(0, "an f32 tensor");
      if (tys[1].dtype != "i32" || tys[1].dims != x.dims)
        return bad(1, "i32[" + llvm::join(x.dims, ", ") + "] to match 'x'");
      return Ty::tensor("f32", {});
    }
    // Everything below takes f32 tensors (numbers where an argument allows them).
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i] && tys[i].isTensor() && tys[i].dtype != "f32")
        return bad(i, "an f32 tensor");
    if (name == "min" || name == "max" || name == "where") {
      Ty r = Ty::tensor("f32", {});
      bool anyTensor = false;
      for (size_t i = 0; i < args.size(); ++i) {
        if (!tys[i].isTensor())
          continue;
        auto dims = anyTensor ? broadcastDims(r.dims, tys[i].dims) : tys[i].dims;
        if (!dims)
          return bad(i, "a shape that broadcasts with " + str(r));
        r.dims = *dims;
        anyTensor = true;
      }
      return anyTensor ? r : Ty::scalar(K::Float);
    }
    if (name == "rmsnorm" || name == "layernorm") {
      if (x.rank() < 1)
        return bad(0, "a tensor of rank 1 or more");
      for (size_t i = 1; i < 3; ++i)
        if (args[i] && tys[i].isTensor() &&
            (tys[i].rank() != 1 || tys[i].dims[0] != x.dims.back()))
          return bad(i, "f32[" + x.dims.back() + "] to match the last dimension of 'x'");
      return x;
    }
    if (name == "rope") {
      if (x.rank() != 3)
        return bad(0, "f32[B, T, D]");
      return x;
    }
    if (name == "attention")
      return attentionType(call, args, tys, bad);
    if (name == "transpose") {
      if (x.rank() != 2)
        return bad(0, "a matrix");
      return Ty::tensor("f32", {x.dims[1], x.dims[0]});
    }
    if (name == "softmax" || name == "log_softmax") {
      if (x.rank() < 1)
        return bad(0, "a tensor of rank 1 or more (normalised over its last dimension)");
      return x;
    }
    if (name == "unsqueeze") {
      auto axis = axisArg(call, *args[1], x.rank(), /*insert=*/true);
      if (!axis)
        return Ty::error();
      Ty r = x;
      r.dims.insert(r.dims.begin() + *axis, "1");
      return r;
    }
    if (name == "sum" || name == "mean") {
      bool keep = args[2] && args[2]->kind == Expr::Kind::Name && args[2]->text == "true";
      if (!args[1]) {
        if (keep)
          return bad(2, "used with 'axis'");
        return Ty::tensor("f32", {});
      }
      if (x.rank() == 0)
        return bad(0, "a tensor of rank 1 or more when 'axis' is given");
      auto axis = axisArg(call, *args[1], x.rank(), /*insert=*/false);
      if (!axis)
        return Ty::error();
      Ty r = x;
      if (keep)
        r.dims[*axis] = "1";
      else
        r.dims.erase(r.dims.begin() + *axis);
      return r;
    }
    // Elementwise: silu, gelu, exp, log, sqrt, sigmoid, log_sigmoid, clamp.
    return x;
  }

  /// `attention(q, k, v, heads, kv_heads?, causal?)`: q is f32[B, T, D]; k and v are
  /// f32[B, T, D * kv_heads / heads] (grouped-query attention), or like q without
  /// `kv_heads`. Dimensions are compared as text, so the expected width is spelled from
  /// q's width and the two arguments, as a family declares it (`dim * kv_heads / heads`).
  template <typename Bad>
  Ty attentionType(const Expr &call, const std::vector<const Expr *> &args,
                   const std::vector<Ty> &tys, Bad &bad) {
    const Ty &q = tys[0];
    if (q.rank() != 3)
      return bad(0, "f32[B, T, D]");
    Ty kv = q;
    // Spelled as printExpr spells `D * kv_heads / heads`: `(D * kv_heads) / heads`.
    auto side = [](std::string t) { return t.find(' ') == std::string::npos ? t : "(" + t + ")"; };
    if (args[4] && printExpr(*args[4]) != printExpr(*args[3]))
      kv.dims.back() = "(" + side(q.dims.back()) + " * " + side(printExpr(*args[4])) + ") / " +
                       side(printExpr(*args[3]));
    for (size_t i = 1; i < 3; ++i)
      if (!tys[i].sameShape(kv))
        return bad(i, str(kv) + (args[4] ? " (grouped-query: D * kv_heads / heads)"
                                         : std::string(" like 'q'")));
    if (curFamily && args[4])
      gqaCalls[curFamily].push_back({&call, args[3], args[4]});
    return q;
  }

  //===--------------------------------------------------------------------===//
  // Losses
  //===--------------------------------------------------------------------===//

  /// Checks a loss or a reward function. Tensor parameters bring fresh symbolic dimensions;
  /// number parameters (`beta: float = 0.1`) need a default. A loss returns f32 (rank 0), a
  /// reward one score per sequence (f32[B]). A reward's body may be the name `builtin` for
  /// the rewards the compiler implements by string matching (`exact_answer`, `format`).
  void checkLoss(const LossDecl &l) {
    reportedUndeclared.clear();
    llvm::StringRef what = l.isReward ? "reward" : "loss";
    Scope scope;
    std::map<std::string, Ty> none;
    size_t tensors = 0;
    bool formalFailed = false;
    for (const Formal &f : l.formals) {
      // Dimensions of earlier parameters are known to later ones (`k: f32[B, T, D / 2]`).
      Ty t = typeOf(f.type, none, /*allowFresh=*/true);
      if (f.type.isTensor)
        for (const ExprPtr &d : f.type.dims)
          if (d->kind == Expr::Kind::Name)
            none[d->text] = Ty::scalar(Ty::K::Int);
      if (!t.isError() && t.isNumber()) {
        if (!f.defaultValue)
          error(f.loc) << what << " parameter '" << f.name << "' is a number and needs a "
                       << "default value (e.g. '" << f.name << ": " << str(t) << " = 0.1')";
        else if (!f.defaultValue->isNumber() &&
                 !(f.defaultValue->kind == Expr::Kind::Neg &&
                   f.defaultValue->operands[0]->isNumber()))
          error(f.defaultValue->loc) << "default value of '" << f.name
                                     << "' must be a number literal, found '"
                                     << printExpr(*f.defaultValue) << "'";
        else if (t.k == Ty::K::Int && f.defaultValue->kind == Expr::Kind::Float)
          error(f.defaultValue->loc) << "default value of '" << f.name
                                     << "' must be int, found float";
      } else if (!t.isError() && !t.isTensor()) {
        error(f.type.loc) << what << " parameter '" << f.name
                          << "' must be a tensor or a number, found " << str(t);
        t = Ty::error();
      }
      tensors += t.isTensor();
      formalFailed |= t.isError();
      scope.vars[f.name] = t;
    }
    if (tensors == 0) {
      // Unless a parameter's type was already reported, say what is missing; either way
      // the body's shapes cannot be checked.
      if (!formalFailed)
        error(l.nameLoc) << what << " '" << l.name
                         << "' must take at least one tensor parameter";
      return;
    }
    Ty result = typeOf(l.result, none, false);
    if (l.isReward) {
      if (!result.isError() && !(result.isTensor() && result.dtype == "f32" && result.rank() == 1)) {
        error(l.result.loc) << "reward '" << l.name
                            << "' must return one score per sequence, f32[B], found "
                            << str(result);
        return;
      }
      if (l.body && l.body->kind == Expr::Kind::Name && l.body->text == "builtin") {
        if (l.name != "exact_answer" && l.name != "format")
          error(l.body->loc) << "'builtin' rewards are 'exact_answer' and 'format' (string "
                                "matching in the compiler); write '"
                             << l.name << "' as a tensor expression";
        return;
      }
    }
    // A block body: assignments, then one `return`.
    Ty body = Ty::error();
    const Expr *bodyExpr = l.body.get();
    for (const StmtPtr &st : l.stmts) {
      if (bodyExpr) {
        error(st->loc) << "statement after 'return' is never executed";
        return;
      }
      if (st->kind == Stmt::Kind::For) {
        error(st->loc) << "'for' loops run over the layers of a model; a " << what
                       << " body holds assignments and a 'return'";
        return;
      }
      Ty t = exprType(*st->value, scope);
      if (st->kind == Stmt::Kind::Return) {
        bodyExpr = st->value.get();
        body = t;
      } else {
        scope.vars[st->name] = t;
      }
    }
    if (!bodyExpr) {
      error(l.nameLoc) << what << " '" << l.name << "' does not end with a 'return'";
      return;
    }
    if (l.body)
      body = exprType(*l.body, scope);
    if (!l.isReward && !result.isError() &&
        !(result.isTensor() && result.dtype == "f32" && result.rank() == 0))
      error(l.result.loc) << "loss '" << l.name << "' must return f32, found " << str(result);
    else if (!body.isError() && !result.isError() && !body.sameShape(result))
      error(bodyExpr->loc) << what << " body has type " << str(body)
                           << " but the declared result is " << str(result);
  }

  //===--------------------------------------------------------------------===//
  // Tokenizers, datasets, model instances
  //===--------------------------------------------------------------------===//

  /// Checks that `b.value` calls one of `kinds`; returns the call or null.
  const Expr *expectCall(const BindingDecl &b, llvm::ArrayRef<std::string> kinds,
                         llvm::StringRef what) {
    const Expr &v = *b.value;
    if (v.kind != Expr::Kind::Call) {
      error(v.loc) << "expected " << what << " (" << quoteList(kinds) << "), found '"
                   << printExpr(v) << "'";
      return nullptr;
    }
    if (!llvm::is_contained(kinds, v.text)) {
      unknown(v.loc, what, v.text, kinds, quoteList(kinds));
      return nullptr;
    }
    return &v;
  }

  std::optional<Num> numArg(const Expr *e, llvm::StringRef what, bool wantInt) {
    std::map<std::string, Num> none;
    auto n = evalNum(*e, none, what);
    if (n && wantInt && !n->isInt) {
      error(e->loc) << what << " must be an integer, found " << printExpr(*e);
      return std::nullopt;
    }
    return n;
  }

  /// Reports unless `lo <(=) value <(=) hi`. Messages name the bound.
  bool checkRange(const Expr *e, double v, llvm::StringRef what, double lo, bool loOpen,
                  double hi = INFINITY, bool hiOpen = true) {
    bool ok = (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
    if (ok)
      return true;
    auto diag = error(e->loc);
    diag << what << " must be " << (loOpen ? "greater than " : "at least ")
         << fmtNum(lo);
    if (hi != INFINITY)
      diag << " and " << (hiOpen ? "less than " : "at most ") << fmtNum(hi);
    diag << ", found " << printExpr(*e);
    return false;
  }

  /// Reports unless `e` is a string literal; returns it.
  std::optional<std::string> stringArg(const Expr *e, llvm::StringRef what) {
    if (e->kind != Expr::Kind::String) {
      error(e->loc) << "expected " << what << " (a string), found '" << printExpr(*e) << "'";
      return std::nullopt;
    }
    return e->text;
  }

  /// Reports unless `e` is `true` or `false`.
  std::optional<bool> boolArg(const Expr *e, llvm::StringRef what) {
    if (e->kind != Expr::Kind::Name || (e->text != "true" && e->text != "false")) {
      error(e->loc) << what << " must be 'true' or 'false', found '" << printExpr(*e) << "'";
      return std::nullopt;
    }
    return e->text == "true";
  }

  /// Reports unless `e` is one of the names `choices`.
  std::optional<std::string> enumArg(const Expr *e, llvm::StringRef what,
                                     llvm::ArrayRef<std::string> choices) {
    if (e->kind == Expr::Kind::Name && llvm::is_contained(choices, e->text))
      return e->text;
    unknown(e->loc, what, printExpr(*e), choices, quoteList(choices));
    return std::nullopt;
  }

  /// Evaluates a numeric argument and checks its range; `out` is left alone on failure.
  template <typename T>
  bool rangeArg(const Expr *e, llvm::StringRef what, bool wantInt, T &out, double lo,
                bool loOpen, double hi = INFINITY, bool hiOpen = true) {
    if (!e)
      return true;
    auto n = numArg(e, what, wantInt);
    if (!n || !checkRange(e, n->value, what, lo, loOpen, hi, hiOpen))
      return false;
    if constexpr (std::is_integral_v<T>)
      out = n->isInt ? static_cast<T>(n->i) : static_cast<T>(n->value);
    else
      out = static_cast<T>(n->value);
    return true;
  }

  /// Reads a list of strings (special tokens).
  std::optional<std::vector<std::string>> stringList(const Expr *e, llvm::StringRef what) {
    if (e->kind != Expr::Kind::List) {
      error(e->loc) << "expected " << what << " as a list of strings such as '[\"<|im_start|>\"]', found '"
                    << printExpr(*e) << "'";
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (const ExprPtr &x : e->operands) {
      auto s = stringArg(x.get(), what);
      if (!s)
        return std::nullopt;
      out.push_back(*s);
    }
    return out;
  }

  void checkTokenizer(const BindingDecl &b) {
    const Expr *call = expectCall(b, {"bpe", "from_file", "gpt2", "from_gguf"}, "tokenizer kind");
    if (!call)
      return;
    TokenizerInfo info;
    info.decl = &b;
    info.kind = call->text;
    std::vector<const Expr *> args;
    const Expr *specials = nullptr;
    if (info.kind == "bpe") {
      static const ArgSpec spec[] = {
          {"train_on", Ty::K::Error}, {"vocab", Ty::K::Int}, {"specials", Ty::K::Error, true}};
      if (!bindArgs(*call, spec, args))
        return;
      if (!resolveRef(*args[0], Decl::Kind::Dataset, "dataset"))
        return;
      // Byte fallback: 256 byte tokens, <unk> and a few merges (as the trainer requires).
      if (!rangeArg(args[1], "'vocab'", true, info.vocab, 260, false, kMaxVocab, false))
        return;
      info.vocabExpr = args[1];
      info.specialsKnown = true; // a trained vocabulary has exactly the declared specials
      specials = args[2];
    } else if (info.kind == "gpt2") {
      static const ArgSpec spec[] = {{"encoder", Ty::K::Error},
                                     {"merges", Ty::K::Error},
                                     {"vocab", Ty::K::Int, true},
                                     {"specials", Ty::K::Error, true}};
      if (!bindArgs(*call, spec, args) || !stringArg(args[0], "the path of encoder.json") ||
          !stringArg(args[1], "the path of vocab.bpe"))
        return;
      info.vocab = 50257; // GPT-2's 50,000 merges + 256 bytes + <|endoftext|>
      info.vocabExpr = call;
      if (!rangeArg(args[2], "'vocab'", true, info.vocab, 256, false, kMaxVocab, false))
        return;
      if (args[2])
        info.vocabExpr = args[2];
      info.specialsKnown = true;
      info.specials = {"<|endoftext|>"};
      specials = args[3];
    } else {
      // from_file("tokenizer.json") / from_gguf("model.gguf"): the vocabulary is in the
      // file; `vocab:` and `specials:` declare it for the checks that need it.
      static const ArgSpec spec[] = {
          {"path", Ty::K::Error}, {"vocab", Ty::K::Int, true}, {"specials", Ty::K::Error, true}};
      if (!bindArgs(*call, spec, args) || !stringArg(args[0], "a file path"))
        return;
      info.path = resolvePath(args[0]->text, args[0]->loc.file);
      if (!rangeArg(args[1], "'vocab'", true, info.vocab, 1, false, kMaxVocab, false))
        return;
      info.vocabExpr = args[1];
      specials = args[2];
      info.specialsKnown = specials != nullptr;
    }
    if (specials) {
      auto list = stringList(specials, "'specials'");
      if (!list)
        return;
      for (const std::string &s : *list)
        if (!llvm::is_contained(info.specials, s))
          info.specials.push_back(s);
      info.specialsExpr = specials;
    }
    prog.tokenizers[b.name] = std::move(info);
  }

  void checkDataset(const BindingDecl &b) {
    const Expr *call = expectCall(b, {"text", "jsonl", "json", "generate"}, "dataset kind");
    if (!call)
      return;
    DatasetInfo info;
    info.decl = &b;
    info.kind = call->text;
    std::vector<const Expr *> args;
    if (info.kind == "generate") {
      static const ArgSpec spec[] = {
          {"generator", Ty::K::Error}, {"count", Ty::K::Int}, {"seed", Ty::K::Int, true}};
      if (!bindArgs(*call, spec, args))
        return;
      const Expr *g = args[0];
      // A string, not a StringRef: printExpr returns a temporary.
      std::string gname = g->kind == Expr::Kind::Call || g->kind == Expr::Kind::Name
                              ? g->text
                              : printExpr(*g);
      if (gname != "arithmetic") {
        unknown(g->loc, "problem generator", gname, {"arithmetic"},
                "'arithmetic(ops: [add, sub, mul], digits: 2)'");
        return;
      }
      if (g->kind == Expr::Kind::Call) {
        static const ArgSpec gspec[] = {{"ops", Ty::K::Error, true},
                                        {"digits", Ty::K::Int, true},
                                        {"terms", Ty::K::Int, true}};
        std::vector<const Expr *> gargs;
        if (!bindArgs(*g, gspec, gargs))
          return;
        if (const Expr *ops = gargs[0]) {
          if (ops->kind != Expr::Kind::List || ops->operands.empty()) {
            error(ops->loc) << "'ops' must be a non-empty list such as '[add, sub, mul]', found '"
                            << printExpr(*ops) << "'";
            return;
          }
          for (const ExprPtr &op : ops->operands)
            if (!enumArg(op.get(), "arithmetic operation", {"add", "sub", "mul", "div"}))
              return;
        }
        int64_t digits = 2, terms = 2;
        if (!rangeArg(gargs[1], "'digits'", true, digits, 1, false, 9, false) ||
            !rangeArg(gargs[2], "'terms'", true, terms, 2, false, 8, false))
          return;
      }
      if (!rangeArg(args[1], "'count'", true, info.count, 0, true) ||
          !rangeArg(args[2], "'seed'", true, info.seed, 0, false))
        return;
      info.shape = "qa";
      prog.datasets[b.name] = std::move(info);
      return;
    }
    static const ArgSpec spec[] = {
        {"path", Ty::K::Error}, {"format", Ty::K::Error, true}, {"split", Ty::K::Float, true}};
    if (!bindArgs(*call, spec, args))
      return;
    auto path = stringArg(args[0], "a file path or glob");
    if (!path)
      return;
    info.path = *path;
    if (args[2] && !rangeArg(args[2], "'split'", false, info.split, 0, true, 1, true))
      return;
    if (info.kind == "text") {
      if (args[1]) {
        auto fmt = enumArg(args[1], "dataset format", {"text", "osis", "faq"});
        if (!fmt)
          return;
        info.format = *fmt;
      }
      // A FAQ ("N.M. Question?" headings, each followed by its answer) holds
      // question/answer pairs, not running text.
      info.shape = info.format == "faq" ? "qa" : "text";
      prog.datasets[b.name] = std::move(info);
      return;
    }
    if (info.kind == "json") {
      checkJsonDataset(args[1], call, info);
      return;
    }
    // jsonl: the format says which JSON keys hold what.
    const Expr *f = args[1];
    static const std::vector<std::string> formats = {"chat", "prompt_completion", "preference",
                                                     "qa"};
    if (!f) {
      error(call->loc) << "'jsonl' needs 'format:', one of 'chat(...)', 'prompt_completion(...)', "
                          "'preference(...)' or 'qa(...)'";
      return;
    }
    if ((f->kind != Expr::Kind::Call && f->kind != Expr::Kind::Name) ||
        !llvm::is_contained(formats, f->text)) {
      unknown(f->loc, "jsonl format", f->kind == Expr::Kind::Call ? f->text : printExpr(*f),
              formats, quoteList(formats));
      return;
    }
    info.format = info.shape = f->text;
    std::vector<std::pair<std::string, std::string>> keys; // argument, default key
    std::vector<ArgSpec> fspec;
    if (f->text == "chat")
      keys = {{"messages", "messages"}};
    else if (f->text == "prompt_completion")
      keys = {{"prompt", "prompt"}, {"completion", "completion"}};
    else if (f->text == "preference")
      keys = {{"prompt", "prompt"}, {"chosen", "chosen"}, {"rejected", "rejected"}};
    else
      keys = {{"question", "question"}, {"answer", "answer"}};
    for (auto &k : keys)
      fspec.push_back({k.first.c_str(), Ty::K::Error, true});
    if (f->text == "chat") {
      fspec.push_back({"template", Ty::K::Error, true});
      fspec.push_back({"train_on", Ty::K::Error, true});
    }
    std::vector<const Expr *> fargs;
    if (f->kind == Expr::Kind::Call && !bindArgs(*f, fspec, fargs))
      return;
    fargs.resize(fspec.size(), nullptr);
    std::map<std::string, const Expr *> seen;
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string key = keys[i].second;
      if (fargs[i]) {
        auto s = stringArg(fargs[i], "the JSON key of '" + keys[i].first + "'");
        if (!s)
          return;
        key = *s;
        info.keys[keys[i].first] = key;
        auto [it, inserted] = seen.emplace(key, fargs[i]);
        if (!inserted) {
          auto diag = error(fargs[i]->loc);
          diag << "'" << keys[i].first << "' reads the JSON key \"" << key
               << "\", which another field of this format already reads";
          diag.attachNote(mloc(it->second->loc)) << "the key \"" << key << "\" is read here";
          return;
        }
      }
    }
    if (f->text == "chat") {
      info.chatTemplate = "chatml";
      info.trainOn = "assistant";
      info.templateExpr = f;
      if (const Expr *t = fargs[1]) {
        auto v = enumArg(t, "chat template", {"chatml", "llama3"});
        if (!v)
          return;
        info.chatTemplate = *v;
        info.templateExpr = t;
      }
      if (const Expr *t = fargs[2]) {
        auto v = enumArg(t, "role to train on", {"assistant", "all"});
        if (!v)
          return;
        info.trainOn = *v;
      }
    }
    prog.datasets[b.name] = std::move(info);
  }

  /// json(PATH, format: convos(messages: "convos", keep: all|correct, train_on: ...)):
  /// one JSON document whose `messages` key lists conversations (runtime/SftData.h
  /// readConvosJson); `keep: correct` keeps the samples the file scores 1.
  void checkJsonDataset(const Expr *f, const Expr *call, DatasetInfo &info) {
    const BindingDecl &b = *info.decl;
    if (!f) {
      error(call->loc) << "'json' needs 'format:', 'convos(...)'";
      return;
    }
    if ((f->kind != Expr::Kind::Call && f->kind != Expr::Kind::Name) || f->text != "convos") {
      unknown(f->loc, "json format", f->kind == Expr::Kind::Call ? f->text : printExpr(*f),
              {"convos"}, "'convos(...)'");
      return;
    }
    info.format = "convos";
    info.shape = "chat";
    info.trainOn = "assistant";
    static const ArgSpec fspec[] = {{"messages", Ty::K::Error, true},
                                    {"keep", Ty::K::Error, true},
                                    {"train_on", Ty::K::Error, true}};
    std::vector<const Expr *> fargs;
    if (f->kind == Expr::Kind::Call && !bindArgs(*f, fspec, fargs))
      return;
    fargs.resize(3, nullptr);
    if (fargs[0]) {
      auto s = stringArg(fargs[0], "the JSON key of 'messages'");
      if (!s)
        return;
      info.keys["messages"] = *s;
    }
    if (fargs[1]) {
      auto v = enumArg(fargs[1], "samples to keep", {"all", "correct"});
      if (!v)
        return;
      info.keep = *v;
    }
    if (fargs[2]) {
      auto v = enumArg(fargs[2], "role to train on", {"assistant", "all"});
      if (!v)
        return;
      info.trainOn = *v;
    }
    prog.datasets[b.name] = std::move(info);
  }

  void checkModel(const BindingDecl &b) {
    const Expr &v = *b.value;
    if (v.kind != Expr::Kind::Call) {
      error(v.loc) << "expected a model family call such as 'llama(dim: 128, ...)', found '"
                   << printExpr(v) << "'";
      return;
    }
    const Decl *d = prog.lookup(v.text);
    if (!d && v.text == "from_gguf") {
      checkGgufModel(b);
      return;
    }
    if (!d || d->kind != Decl::Kind::Family) {
      if (d) {
        auto diag = error(v.loc);
        diag << "'" << v.text << "' is " << describeDecl(*d) << ", expected a model family";
        diag.attachNote(mloc(d->nameLoc)) << "'" << v.text << "' is declared here";
        return;
      }
      auto families = globalsOfKind(Decl::Kind::Family);
      unknown(v.loc, "model family", v.text, families,
              families.empty() ? "a model family; did you forget 'import std.models.llama'?"
                               : quoteList(families));
      return;
    }
    const auto &f = static_cast<const FamilyDecl &>(*d);
    ModelSpec spec;
    spec.decl = &b;
    spec.family = &f;
    std::map<std::string, Num> env;
    std::map<std::string, const Expr *> given;
    std::vector<std::string> formalNames;
    for (const Formal &p : f.formals)
      formalNames.push_back(p.name);
    bool ok = true;
    for (size_t i = 0; i < v.operands.size(); ++i) {
      const std::string &name = v.argNames[i];
      if (name.empty()) {
        error(v.operands[i]->loc) << "arguments of model family '" << f.name
                                  << "' are passed by name, e.g. '" << f.formals.front().name
                                  << ": ...'";
        return;
      }
      if (!llvm::is_contained(formalNames, name)) {
        unknown(v.argNameLocs[i], "argument", name, formalNames, quoteList(formalNames),
                "model family '" + f.name + "'");
        ok = false;
        continue;
      }
      if (given.count(name)) {
        error(v.argNameLocs[i]) << "argument '" << name << "' is given twice";
        ok = false;
        continue;
      }
      given[name] = v.operands[i].get();
    }
    if (!ok)
      return;
    for (const Formal &p : f.formals) {
      const Expr *e = given.count(p.name) ? given[p.name] : p.defaultValue.get();
      if (!e) {
        auto diag = error(v.loc);
        diag << "missing argument '" << p.name << "' of model family '" << f.name << "'";
        diag.attachNote(mloc(p.loc)) << "parameter '" << p.name << "' is declared here";
        return;
      }
      Ty::K k = scalarKind(p.type.name);
      if (k == Ty::K::Bool) {
        bool val = e->kind == Expr::Kind::Name && e->text == "true";
        if (e->kind != Expr::Kind::Name || (e->text != "true" && e->text != "false")) {
          error(e->loc) << "argument '" << p.name << "' must be 'true' or 'false', found '"
                        << printExpr(*e) << "'";
          return;
        }
        env[p.name] = Num::integer(val);
        continue;
      }
      auto n = evalNum(*e, given.count(p.name) ? std::map<std::string, Num>() : env,
                       ("'" + p.name + "'"));
      if (!n)
        return;
      if (k == Ty::K::Int && !n->isInt) {
        error(e->loc) << "argument '" << p.name << "' must be an integer, found "
                      << printExpr(*e);
        return;
      }
      // Sizes, epsilons and RoPE bases alike: every numeric family argument is positive.
      if (!(n->value > 0) && (k == Ty::K::Int || k == Ty::K::Float)) {
        error(e->loc) << "argument '" << p.name << "' must be positive, found " << n->str();
        return;
      }
      env[p.name] = *n;
    }
    layOutModel(b, f, env, std::move(spec));
  }

  /// `model NAME = from_gguf("model.gguf", context: N)`: a pretrained Llama. The GGUF
  /// metadata gives the stdlib `llama` family's arguments (runtime/GgufModel.h); `context`
  /// (default: the trained context length) may lower the context to bound compute. The
  /// weights are read from the file when the model runs.
  void checkGgufModel(const BindingDecl &b) {
    const Expr &call = *b.value;
    static const ArgSpec argSpec[] = {{"path", Ty::K::Error}, {"context", Ty::K::Int, true}};
    std::vector<const Expr *> args;
    if (!bindArgs(call, argSpec, args))
      return;
    auto path = stringArg(args[0], "the path of a GGUF file");
    if (!path)
      return;
    std::string resolved = resolvePath(*path, args[0]->loc.file);
    auto g = lrt::readGguf(resolved);
    if (!g) {
      error(args[0]->loc) << "cannot read model '" << *path << "': " << g.status().message();
      return;
    }
    auto c = lrt::ggufLlamaConfig(*g);
    if (!c) {
      error(args[0]->loc) << "cannot load model '" << *path << "': " << c.status().message();
      return;
    }
    if (!c->tiedOutput) {
      error(args[0]->loc) << "model '" << *path << "' has an untied output matrix "
                          << "('output.weight'); the stdlib 'llama' ties it to the embedding";
      return;
    }
    const Decl *d = prog.lookup("llama");
    if (!d || d->kind != Decl::Kind::Family) {
      error(call.loc) << "'from_gguf' instantiates the model family 'llama'; did you forget "
                         "'import std.models.llama'?";
      return;
    }
    const auto &f = static_cast<const FamilyDecl &>(*d);
    int64_t context = c->contextLength;
    if (!rangeArg(args[1], "'context'", true, context, 0, true, double(c->contextLength), false))
      return;
    std::map<std::string, Num> env = {
        {"vocab", Num::integer(c->vocab)},      {"dim", Num::integer(c->dim)},
        {"layers", Num::integer(c->layers)},    {"heads", Num::integer(c->heads)},
        {"kv_heads", Num::integer(c->kvHeads)}, {"context", Num::integer(context)},
        {"hidden", Num::integer(c->hidden)},    {"eps", Num::real(c->eps)},
        {"theta", Num::real(c->theta)}};
    for (const Formal &p : f.formals)
      if (!env.count(p.name)) {
        auto diag = error(call.loc);
        diag << "'from_gguf' does not set argument '" << p.name << "' of model family 'llama'";
        diag.attachNote(mloc(p.loc)) << "parameter '" << p.name << "' is declared here";
        return;
      }
    ModelSpec spec;
    spec.decl = &b;
    spec.family = &f;
    spec.ggufPath = resolved;
    layOutModel(b, f, env, std::move(spec));
  }

  /// A file path as written in `file`: `~/` is the home directory ($HOME), a relative path
  /// is relative to the folder of `file`.
  static std::string resolvePath(const std::string &path, llvm::StringRef file) {
    if (llvm::StringRef(path).starts_with("~/")) {
      const char *home = std::getenv("HOME");
      return std::string(home ? home : "") + path.substr(1);
    }
    if (path.empty() || llvm::sys::path::is_absolute(path))
      return path;
    llvm::SmallString<256> out(llvm::sys::path::parent_path(file));
    llvm::sys::path::append(out, path);
    return std::string(out);
  }

  /// Evaluated arguments `env` -> the model's parameters in flat-buffer order; adds the
  /// model to `prog.models` unless an error is reported.
  void layOutModel(const BindingDecl &b, const FamilyDecl &f, std::map<std::string, Num> &env,
                   ModelSpec spec) {
    for (auto &[name, n] : env) {
      spec.args[name] = n.value;
      spec.isInt[name] = n.isInt;
    }
    // A family with errors of its own would repeat them in every instance's parameters.
    if (badFamilies.count(&f))
      return;
    // Lay the parameters out in flat-buffer order, expanding `repeat` blocks in place.
    std::vector<bool> expanded(f.repeats.size(), false);
    auto add = [&](const ParamDecl &p, int layer) -> bool {
      ConcreteParam cp;
      cp.decl = &p;
      cp.layer = layer;
      cp.path = layer < 0 ? p.name
                          : f.repeats[p.repeat].count + "." + std::to_string(layer) + "." + p.name;
      cp.numel = 1;
      for (const ExprPtr &d : p.shape) {
        auto n = evalNum(*d, env, "a parameter dimension");
        if (!n)
          return false;
        if (!n->isInt || n->i <= 0) {
          error(d->loc) << "dimension '" << printExpr(*d) << "' of parameter '" << p.name
                        << "' must be a positive integer, found " << n->str();
          return false;
        }
        cp.shape.push_back(n->i);
        auto numel = llvm::checkedMul(cp.numel, n->i);
        if (!numel) {
          tooLarge(b, d->loc, "parameter '" + cp.path + "' has more elements");
          return false;
        }
        cp.numel = *numel;
      }
      cp.offset = spec.numParams;
      cp.decay = cp.shape.size() == 2 && !llvm::is_contained(f.embeddingTables, &p);
      // Four bytes per element (and more for optimizer state) must stay addressable.
      auto total = llvm::checkedAdd(spec.numParams, cp.numel);
      if (!total || !llvm::checkedMul(*total, int64_t(16))) {
        tooLarge(b, p.loc, "model '" + b.name + "' has more parameters");
        return false;
      }
      spec.numParams = *total;
      spec.params.push_back(std::move(cp));
      return true;
    };
    for (const ParamDecl &p : f.params) {
      if (p.repeat < 0) {
        if (!add(p, -1))
          return;
        continue;
      }
      if (expanded[p.repeat])
        continue;
      expanded[p.repeat] = true;
      int64_t count = spec.get(f.repeats[p.repeat].count);
      for (int64_t layer = 0; layer < count; ++layer)
        for (const ParamDecl &q : f.params)
          if (q.repeat == p.repeat && !add(q, static_cast<int>(layer)))
            return;
    }
    if (!checkGroupedQuery(b, f, env))
      return;
    prog.models[b.name] = std::move(spec);
  }

  /// Reports a model too large to count or address, at `loc`, with a note at the model.
  void tooLarge(const BindingDecl &b, const Loc &loc, const std::string &what) {
    auto diag = error(loc);
    diag << what << " than 64-bit sizes can address";
    if (loc.file != b.nameLoc.file || loc.line != b.nameLoc.line)
      diag.attachNote(mloc(b.value->loc)) << "in model '" << b.name << "' declared here";
  }

  /// Evaluates an integer expression over the family's arguments without reporting.
  static std::optional<int64_t> quietInt(const Expr &e, const std::map<std::string, Num> &env) {
    if (e.kind == Expr::Kind::Int)
      return e.intValue;
    if (e.kind == Expr::Kind::Name) {
      auto it = env.find(e.text);
      if (it != env.end() && it->second.isInt)
        return it->second.i;
      return std::nullopt;
    }
    if (e.kind == Expr::Kind::Binary && e.text != "@") {
      auto a = quietInt(*e.operands[0], env), b = quietInt(*e.operands[1], env);
      if (!a || !b || (e.text == "/" && *b == 0))
        return std::nullopt;
      if (e.text == "+")
        return llvm::checkedAdd(*a, *b);
      if (e.text == "-")
        return llvm::checkedSub(*a, *b);
      if (e.text == "*")
        return llvm::checkedMul(*a, *b);
      return *b == -1 ? llvm::checkedMul(*a, *b) : *a / *b;
    }
    return std::nullopt;
  }

  /// Grouped-query attention needs `kv_heads` to divide `heads` (each key/value head serves
  /// heads / kv_heads query heads). Checked per model instance, at the argument.
  bool checkGroupedQuery(const BindingDecl &b, const FamilyDecl &f,
                         const std::map<std::string, Num> &env) {
    auto it = gqaCalls.find(&f);
    if (it == gqaCalls.end())
      return true;
    for (const GroupedQuery &g : it->second) {
      const Expr *call = g.call, *headsE = g.heads, *kvE = g.kvHeads;
      auto heads = quietInt(*headsE, env), kv = quietInt(*kvE, env);
      if (!heads || !kv || (*kv > 0 && *heads % *kv == 0))
        continue;
      // Point at the instance's argument that sets kv_heads (or heads), else the call.
      const Expr *at = b.value.get();
      for (const char *name : {"kv_heads", "heads"})
        if (kvE->kind == Expr::Kind::Name || headsE->kind == Expr::Kind::Name)
          if (const Expr *a = b.value->arg(name)) {
            at = a;
            break;
          }
      auto diag = error(at->loc);
      diag << "'kv_heads' (" << *kv << ") must divide 'heads' (" << *heads
           << ") for grouped-query attention in model '" << b.name << "'";
      diag.attachNote(mloc(call->loc)) << "attention of model family '" << f.name << "' is here";
      return false;
    }
    return true;
  }

  //===--------------------------------------------------------------------===//
  // Stages and pipelines
  //===--------------------------------------------------------------------===//

  enum KindBit : unsigned {
    KP = 1, KS = 2, KR = 4, KD = 8, KO = 16, KG = 32, KY = 64,
    KTrain = KP | KS | KR | KD | KO | KG,
    KAll = KTrain | KY,
    KTune = KS | KR | KD | KO | KG,
  };
  static unsigned kindBit(llvm::StringRef kind) {
    return llvm::StringSwitch<unsigned>(kind)
        .Case("pretrain", KP).Case("sft", KS).Case("reward_model", KR).Case("dpo", KD)
        .Case("ppo", KO).Case("grpo", KG).Case("deploy", KY).Default(0);
  }
  struct FieldSpec {
    const char *name;
    unsigned kinds;
  };
  static llvm::ArrayRef<FieldSpec> fieldTable() {
    static const FieldSpec table[] = {
        {"model", KAll},        {"from", KP | KS | KR | KD | KY}, {"policy", KO | KG},
        {"reference", KD | KO | KG}, {"reward", KO | KG},     {"data", KTrain},
        {"tokenizer", KAll},    {"loss", KP | KS | KR},       {"optimizer", KTrain},
        {"schedule", KTrain},   {"batch", KTrain},            {"steps", KTrain},
        {"grad_clip", KTrain},  {"eval", KTrain},             {"eval_batches", KTrain},
        {"seed", KAll},         {"ranks", KTrain},            {"packing", KS},
        {"accumulate", KTrain},     {"precision", KTrain},
        {"recompute", KTrain},
        {"adapter", KTune},     {"base", KTune},              {"head", KR},
        {"beta", KD},           {"clip", KO | KG},            {"kl", KO | KG},
        {"gamma", KO},          {"lambda", KO},               {"value_head", KO},
        {"group", KG},          {"rollout", KO | KG},         {"quantize", KY},
        {"serve", KY}};
    return table;
  }
  static std::vector<std::string> kindsOf(unsigned bits) {
    std::vector<std::string> out;
    for (const std::string &k : stageKinds())
      if (bits & kindBit(k))
        out.push_back(k);
    return out;
  }

  enum class StageState { InProgress, Ok, Failed };
  std::map<const StageDecl *, StageState> stageState;

  /// Checks stage `s` once (stages that name it check it first); returns its info or null.
  const StageInfo *ensureStage(const StageDecl &s) {
    auto it = stageState.find(&s);
    if (it != stageState.end())
      return it->second == StageState::Ok ? &prog.stageInfo.at(s.name) : nullptr;
    stageState[&s] = StageState::InProgress;
    bool ok = checkStage(s);
    stageState[&s] = ok ? StageState::Ok : StageState::Failed;
    return ok ? &prog.stageInfo.at(s.name) : nullptr;
  }

  /// Resolves the stage that field `f` of stage `s` names. `fatal` is set when the name
  /// was reported; a stage that failed its own checks yields null silently.
  const StageInfo *stageRef(const StageDecl &s, const Field &f, bool &reported) {
    return stageRef(s, *f.value, f.name, reported);
  }
  const StageInfo *stageRef(const StageDecl &s, const Expr &e, llvm::StringRef fieldName,
                            bool &reported) {
    const Decl *d = resolveRef(e, Decl::Kind::Stage, "stage");
    if (!d) {
      reported = true;
      return nullptr;
    }
    const auto &other = static_cast<const StageDecl &>(*d);
    if (&other == &s) {
      error(e.loc) << "stage '" << s.name << "' cannot use itself as its '" << fieldName << "'";
      reported = true;
      return nullptr;
    }
    auto st = stageState.find(&other);
    if (st != stageState.end() && st->second == StageState::InProgress) {
      auto diag = error(e.loc);
      diag << "stages '" << s.name << "' and '" << other.name << "' depend on each other";
      diag.attachNote(mloc(other.nameLoc)) << "stage '" << other.name << "' is declared here";
      reported = true;
      return nullptr;
    }
    return ensureStage(other);
  }

  /// Reports when `parent` (the stage field `f` names) does not produce a language model.
  bool needsLanguageModel(const StageDecl &s, const Field &f, const StageInfo &parent,
                          llvm::StringRef kind) {
    if (parent.kind != "reward_model" && parent.kind != "deploy")
      return true;
    auto diag = error(f.value->loc);
    diag << "stage '" << s.name << "' (kind " << kind << ") cannot use '" << parent.decl->name
         << "' as its '" << f.name << "': ";
    if (parent.kind == "deploy")
      diag << "a deploy stage produces a server, not weights to train";
    else
      diag << "a reward_model stage has a scalar head, not a language-model head";
    diag.attachNote(mloc(parent.decl->nameLoc))
        << "stage '" << parent.decl->name << "' (kind " << parent.kind << ") is declared here";
    return false;
  }

  bool checkStage(const StageDecl &s) {
    StageInfo info;
    info.decl = &s;
    // The kind: written after ':', else the stage's name when that is a kind, else pretrain.
    if (!s.kindName.empty()) {
      if (!kindBit(s.kindName)) {
        unknown(s.kindLoc, "stage kind", s.kindName, stageKinds(), quoteList(stageKinds()));
        return false;
      }
      info.kind = s.kindName;
    } else if (kindBit(s.name)) {
      info.kind = s.name;
    }
    const unsigned bit = kindBit(info.kind);
    std::map<std::string, const Field *> fields;
    bool ok = true;
    std::vector<std::string> applicable;
    for (const FieldSpec &fs : fieldTable())
      if (fs.kinds & bit)
        applicable.push_back(fs.name);
    for (const Field &f : s.fields) {
      const FieldSpec *fs = llvm::find_if(fieldTable(), [&](const FieldSpec &x) {
        return f.name == x.name;
      });
      if (fs == fieldTable().end()) {
        unknown(f.loc, "stage field", f.name, applicable, quoteList(applicable));
        ok = false;
        continue;
      }
      if (!(fs->kinds & bit)) {
        auto diag = error(f.loc);
        diag << "field '" << f.name << "' does not apply to a stage of kind '" << info.kind
             << "'; it applies to " << quoteList(kindsOf(fs->kinds));
        if (s.kindName.empty())
          diag << " (declare the kind with 'stage " << s.name << " : KIND { ... }')";
        ok = false;
        continue;
      }
      auto [it, inserted] = fields.emplace(f.name, &f);
      if (!inserted) {
        auto diag = error(f.loc);
        diag << "field '" << f.name << "' is given twice";
        diag.attachNote(mloc(it->second->loc)) << "previous value is here";
        ok = false;
      }
    }
    auto get = [&](const char *name) -> const Expr * {
      auto it = fields.find(name);
      return it == fields.end() ? nullptr : it->second->value.get();
    };
    // Required fields. A misspelled field was already reported; don't report it as missing.
    // `optimizer` and `batch` of every training kind are checked after inheritance (below).
    std::vector<const char *> required;
    if (info.kind == "pretrain")
      required = {"data", "loss", "steps"};
    else if (info.kind == "sft" || info.kind == "reward_model" || info.kind == "dpo")
      required = {"data", "steps"};
    else if (info.kind == "ppo")
      required = {"policy", "reward", "data", "rollout", "steps"};
    else if (info.kind == "grpo")
      required = {"policy", "reward", "data", "group", "rollout", "steps"};
    else if (!fields.count("model")) // deploy: a trained stage, or a pretrained model
      required = {"from"};
    if (ok && !fields.count("model") && !fields.count("from") && !fields.count("policy") &&
        info.kind != "ppo" && info.kind != "grpo" && info.kind != "deploy") {
      auto diag = error(s.nameLoc);
      diag << "stage '" << s.name << "' is missing the field 'model'";
      if (info.kind != "pretrain")
        diag << " (or 'from: STAGE' to continue from an earlier stage)";
      ok = false;
    }
    for (const char *r : required)
      if (ok && !fields.count(r)) {
        error(s.nameLoc) << "stage '" << s.name << "' is missing the field '" << r << "'";
        ok = false;
      }
    // The stage this one continues from (`from:` or `policy:`), checked first.
    const Field *parentField = fields.count("from")     ? fields["from"]
                               : fields.count("policy") ? fields["policy"]
                                                        : nullptr;
    bool silent = false; // a dependency failed: skip the checks that need it
    if (parentField) {
      bool reported = false;
      info.parent = stageRef(s, *parentField, reported);
      if (!info.parent) {
        ok &= !reported;
        silent = true;
      } else if (info.kind != "reward_model" &&
                 !needsLanguageModel(s, *parentField, *info.parent, info.kind)) {
        ok = false;
      } else if (info.parent->kind == "deploy") {
        needsLanguageModel(s, *parentField, *info.parent, info.kind);
        ok = false;
      }
    }
    // model
    if (const Expr *e = get("model")) {
      const Decl *d = e->kind == Expr::Kind::Name ? prog.lookup(e->text) : nullptr;
      if (d && d->kind == Decl::Kind::Family) {
        auto diag = error(e->loc);
        diag << "'" << e->text << "' is a model family; expected a model instance such as "
             << "'model tiny = " << e->text << "(...)'";
        diag.attachNote(mloc(d->nameLoc)) << "'" << e->text << "' is declared here";
        ok = false;
      } else if (resolveRef(*e, Decl::Kind::Model, "model")) {
        auto it = prog.models.find(e->text);
        if (it == prog.models.end())
          silent = true; // its declaration was reported
        else
          info.model = &it->second;
      } else {
        ok = false;
      }
    }
    if (info.parent && info.parent->model) {
      const ModelSpec *pm = info.parent->model;
      if (info.model && info.model != pm &&
          (info.model->family != pm->family || info.model->args != pm->args)) {
        auto diag = error(get("model")->loc);
        diag << "model '" << info.model->decl->name << "' does not match model '"
             << pm->decl->name << "' that stage '" << info.parent->decl->name
             << "' trains; a stage continues with its '" << parentField->name
             << "' stage's model";
        diag.attachNote(mloc(pm->decl->nameLoc))
            << "model '" << pm->decl->name << "' is declared here";
        ok = false;
      }
      if (!info.model)
        info.model = pm;
    }
    // Inherited settings: tokenizer, optimizer, schedule and batch of the parent stage.
    if (info.parent) {
      const StageInfo &p = *info.parent;
      info.tokenizer = p.tokenizer;
      info.vocab = p.vocab;
      if (p.hasOptimizer) {
        info.lr = p.lr, info.minLr = p.minLr, info.beta1 = p.beta1, info.beta2 = p.beta2;
        info.eps = p.eps, info.weightDecay = p.weightDecay, info.warmup = p.warmup;
        info.hasOptimizer = true;
      }
      info.batch = p.batch, info.seqLen = p.seqLen;
      info.gradClip = p.gradClip;
      info.precision = p.precision;
      info.recompute = p.recompute;
    }
    // data
    if (const Expr *e = get("data")) {
      info.dataset =
          static_cast<const BindingDecl *>(resolveRef(*e, Decl::Kind::Dataset, "dataset"));
      if (!info.dataset) {
        ok = false;
      } else if (auto it = prog.datasets.find(info.dataset->name); it == prog.datasets.end()) {
        silent = true;
      } else {
        info.data = &it->second;
        info.dataPath = info.data->path;
        info.dataFormat = info.data->format;
        info.split = info.data->split;
        ok &= checkDataShape(s, *fields["data"], info);
      }
    }
    // loss
    if (const Expr *e = get("loss")) {
      if (info.kind == "reward_model") {
        if (e->kind != Expr::Kind::Name || e->text != "bradley_terry") {
          unknown(e->loc, "reward-model loss", printExpr(*e), {"bradley_terry"},
                  "'bradley_terry'");
          ok = false;
        }
      } else {
        info.loss = static_cast<const LossDecl *>(resolveRef(*e, Decl::Kind::Loss, "loss"));
        if (info.loss && info.loss->isReward) {
          auto diag = error(e->loc);
          diag << "'" << e->text << "' is a reward function, expected a loss";
          diag.attachNote(mloc(info.loss->nameLoc)) << "'" << e->text << "' is declared here";
          info.loss = nullptr;
        }
        if (!info.loss)
          ok = false;
      }
    } else if (info.kind == "sft") {
      info.loss = prog.lookupAs<LossDecl>("next_token", Decl::Kind::Loss);
      if (!info.loss && ok) {
        error(s.nameLoc) << "stage '" << s.name
                         << "' needs a loss; add 'import std.losses' (for 'next_token') or a "
                            "'loss' field";
        ok = false;
      }
    }
    info.objective = info.loss                   ? info.loss->name
                     : info.kind == "reward_model" ? "bradley_terry"
                     : info.kind == "dpo"          ? "dpo"
                     : info.kind == "ppo"          ? "ppo_clip"
                     : info.kind == "grpo"         ? "grpo"
                                                   : "";
    if (get("optimizer")) {
      ok &= checkOptimizer(get("optimizer"), info);
      info.hasOptimizer = true;
    } else if (info.trains() && ok && !silent && !info.hasOptimizer) {
      error(s.nameLoc) << "stage '" << s.name << "' is missing the field 'optimizer'"
                       << (info.parent ? " (stage '" + info.parent->decl->name +
                                             "' has none to inherit)"
                                       : std::string());
      ok = false;
    }
    ok &= checkSchedule(get("schedule"), info);
    if (const Expr *e = get("grad_clip"))
      ok &= rangeArg(e, "'grad_clip'", false, info.gradClip, 0, true);
    if (const Expr *e = get("batch")) {
      if (e->kind != Expr::Kind::Batch) {
        error(e->loc) << "expected 'batch: SEQUENCES x TOKENS' (e.g. '16 x 128'), found '"
                      << printExpr(*e) << "'";
        ok = false;
      } else {
        auto b = numArg(e->operands[0].get(), "the batch size", true);
        auto t = numArg(e->operands[1].get(), "the sequence length", true);
        ok &= b && t && checkRange(e->operands[0].get(), b->value, "the batch size", 0, true) &&
              checkRange(e->operands[1].get(), t->value, "the sequence length", 0, true);
        if (b && t) {
          info.batch = b->isInt ? b->i : static_cast<int64_t>(b->value);
          info.seqLen = t->isInt ? t->i : static_cast<int64_t>(t->value);
        }
      }
    } else if (info.trains() && ok && !silent && info.batch == 0) {
      error(s.nameLoc) << "stage '" << s.name << "' is missing the field 'batch'";
      ok = false;
    }
    ok &= rangeArg(get("steps"), "'steps'", true, info.steps, 0, true);
    if (ok && info.steps > 0 && info.warmup > info.steps && get("schedule")) {
      const Expr *w = get("schedule")->arg("warmup");
      auto diag = error(w ? w->loc : get("schedule")->loc);
      diag << "'warmup' (" << info.warmup << ") must be at most 'steps' (" << info.steps << ")";
      diag.attachNote(mloc(get("steps")->loc)) << "'steps' is set here";
      ok = false;
    }
    ok &= rangeArg(get("eval_batches"), "'eval_batches'", true, info.evalBatches, 0, true);
    ok &= rangeArg(get("seed"), "'seed'", true, info.seed, 0, false);
    ok &= rangeArg(get("ranks"), "'ranks'", true, info.ranks, 0, true);
    ok &= rangeArg(get("accumulate"), "'accumulate'", true, info.accumulate, 0, true);
    if (const Expr *e = get("eval")) {
      if (e->kind != Expr::Kind::Every) {
        error(e->loc) << "expected 'eval: every N', found '" << printExpr(*e) << "'";
        ok = false;
      } else {
        ok &= rangeArg(e->operands[0].get(), "the evaluation interval", true, info.evalEvery, 0,
                       true);
      }
    }
    if (const Expr *e = get("tokenizer")) {
      info.tokenizer =
          static_cast<const BindingDecl *>(resolveRef(*e, Decl::Kind::Tokenizer, "tokenizer"));
      ok &= info.tokenizer != nullptr;
    }
    if (const Expr *e = get("packing")) {
      auto v = boolArg(e, "'packing'");
      ok &= v.has_value();
      info.packing = v.value_or(false);
    }
    if (const Expr *e = get("precision")) {
      auto v = enumArg(e, "precision", {"fp32", "bf16"});
      ok &= v.has_value();
      info.precision = v.value_or(info.precision);
    }
    if (const Expr *e = get("recompute")) {
      auto v = enumArg(e, "recompute", {"none", "attention", "layers"});
      ok &= v.has_value();
      info.recompute = v.value_or(info.recompute);
    }
    if (const Expr *e = get("head")) {
      ok &= enumArg(e, "reward head", {"scalar"}).has_value();
    }
    if (const Expr *e = get("value_head"))
      ok &= enumArg(e, "value head", {"scalar"}).has_value();
    info.scalarHead = info.kind == "reward_model";
    ok &= rangeArg(get("beta"), "'beta'", false, info.beta, 0, true);
    ok &= rangeArg(get("clip"), "'clip'", false, info.clip, 0, true, 1, true);
    ok &= rangeArg(get("kl"), "'kl'", false, info.kl, 0, false);
    ok &= rangeArg(get("gamma"), "'gamma'", false, info.gamma, 0, false, 1, false);
    ok &= rangeArg(get("lambda"), "'lambda'", false, info.lambda, 0, false, 1, false);
    ok &= rangeArg(get("group"), "'group'", true, info.group, 2, false);
    ok &= checkRollout(get("rollout"), info);
    ok &= checkQuantize(get("quantize"), info);
    ok &= checkServe(get("serve"), info);
    ok &= checkAdapter(get("adapter"), get("base"), info);
    // reference and reward
    if (const Field *f = fields.count("reference") ? fields["reference"] : nullptr) {
      bool reported = false;
      info.reference = stageRef(s, *f, reported);
      if (!info.reference)
        ok &= !reported, silent = true;
      else if (!needsLanguageModel(s, *f, *info.reference, info.kind))
        ok = false;
    } else if (info.kind == "dpo" || info.kind == "ppo" || info.kind == "grpo") {
      info.reference = info.parent; // a frozen copy of the starting policy
    }
    if (const Field *f = fields.count("reward") ? fields["reward"] : nullptr)
      ok &= checkReward(s, *f, info, silent);
    if (!ok)
      return false;
    if (silent || !info.model)
      return false;
    if (!checkFit(s, info) || !checkStageModel(s, info))
      return false;
    prog.stageInfo[s.name] = info;
    return true;
  }

  /// The data a stage's objective needs.
  bool checkDataShape(const StageDecl &s, const Field &f, const StageInfo &info) {
    std::vector<std::string> want;
    std::string need;
    if (info.kind == "pretrain")
      want = {"text"}, need = "text data";
    else if (info.kind == "sft")
      want = {"chat", "prompt_completion", "qa"}, need = "chat, prompt/completion or question/answer data";
    else if (info.kind == "reward_model" || info.kind == "dpo")
      want = {"preference"}, need = "preference data (prompt, chosen, rejected)";
    else if (info.kind == "ppo")
      want = {"chat", "prompt_completion", "qa", "preference"}, need = "prompts (chat, prompt/completion, question/answer or preference data)";
    else
      want = {"qa", "prompt_completion", "chat"}, need = "prompts (question/answer, prompt/completion or chat data)";
    if (llvm::is_contained(want, info.data->shape))
      return true;
    auto diag = error(f.value->loc);
    diag << "stage '" << s.name << "' (kind " << info.kind << ") needs " << need
         << "; dataset '" << info.data->decl->name << "' holds " << info.data->shape << " data";
    diag.attachNote(mloc(info.data->decl->value->loc))
        << "dataset '" << info.data->decl->name << "' is declared here";
    return false;
  }

  /// `rollout: sample(max_new: N, temperature: T, top_k: K, top_p: P)`.
  bool checkRollout(const Expr *e, StageInfo &info) {
    if (!e)
      return true;
    if (e->kind != Expr::Kind::Call || e->text != "sample") {
      unknown(e->loc, "rollout", e->kind == Expr::Kind::Call ? e->text : printExpr(*e),
              {"sample"}, "'sample(max_new: N, temperature: T)'");
      return false;
    }
    static const ArgSpec spec[] = {{"max_new", Ty::K::Int},
                                   {"temperature", Ty::K::Float, true},
                                   {"top_k", Ty::K::Int, true},
                                   {"top_p", Ty::K::Float, true}};
    std::vector<const Expr *> args;
    return bindArgs(*e, spec, args) &&
           rangeArg(args[0], "'max_new'", true, info.maxNew, 0, true) &&
           rangeArg(args[1], "'temperature'", false, info.temperature, 0, true) &&
           rangeArg(args[2], "'top_k'", true, info.topK, 0, false) &&
           rangeArg(args[3], "'top_p'", false, info.topP, 0, true, 1, false);
  }

  /// `quantize: none | int8 | int4(group: G)`.
  bool checkQuantize(const Expr *e, StageInfo &info) {
    if (!e)
      return true;
    llvm::StringRef name = e->kind == Expr::Kind::Call || e->kind == Expr::Kind::Name
                               ? llvm::StringRef(e->text)
                               : "";
    if (name != "none" && name != "int8" && name != "int4") {
      unknown(e->loc, "deploy quantization", name.empty() ? printExpr(*e) : name,
              {"none", "int8", "int4"}, "'none', 'int8' or 'int4(group: 128)'");
      return false;
    }
    info.quantize = name.str();
    if (name == "int4") {
      info.quantGroup = 128;
      if (e->kind == Expr::Kind::Call) {
        static const ArgSpec spec[] = {{"group", Ty::K::Int, true}};
        std::vector<const Expr *> args;
        if (!bindArgs(*e, spec, args) ||
            !rangeArg(args[0], "'group'", true, info.quantGroup, 0, true))
          return false;
      }
    } else if (e->kind == Expr::Kind::Call && !e->operands.empty()) {
      error(e->operands[0]->loc) << "'" << name << "' takes no arguments";
      return false;
    }
    return true;
  }

  /// `serve: http(port: P, api: openai, max_batch: N, api_key: "...")`.
  bool checkServe(const Expr *e, StageInfo &info) {
    info.maxBatch = info.kind == "deploy" ? 8 : 1;
    if (!e)
      return true;
    if (e->kind != Expr::Kind::Call || e->text != "http") {
      unknown(e->loc, "server", e->kind == Expr::Kind::Call ? e->text : printExpr(*e),
              {"http"}, "'http(port: 8080, api: openai)'");
      return false;
    }
    static const ArgSpec spec[] = {{"port", Ty::K::Int, true},
                                   {"api", Ty::K::Error, true},
                                   {"max_batch", Ty::K::Int, true},
                                   {"api_key", Ty::K::Error, true}};
    std::vector<const Expr *> args;
    if (!bindArgs(*e, spec, args) ||
        !rangeArg(args[0], "'port'", true, info.port, 1, false, 65535, false) ||
        !rangeArg(args[2], "'max_batch'", true, info.maxBatch, 0, true))
      return false;
    if (args[1] && !enumArg(args[1], "serving API", {"openai"}))
      return false;
    if (args[3] && !stringArg(args[3], "the name of the environment variable with the API key"))
      return false;
    return true;
  }

  /// `adapter: lora(rank, alpha, dropout, targets, rslora)` and `base: nf4(block, double_quant)`.
  /// Targets are matched against the model's parameters later, in checkStageModel.
  bool checkAdapter(const Expr *adapter, const Expr *base, StageInfo &info) {
    const Expr *loraTargets = nullptr;
    if (adapter) {
      if (adapter->kind != Expr::Kind::Call || adapter->text != "lora") {
        unknown(adapter->loc, "adapter",
                adapter->kind == Expr::Kind::Call || adapter->kind == Expr::Kind::Name
                    ? adapter->text
                    : printExpr(*adapter),
                {"lora"}, "'lora(rank: 8, targets: all_linear)'");
        return false;
      }
      static const ArgSpec spec[] = {{"rank", Ty::K::Int},
                                     {"alpha", Ty::K::Float, true},
                                     {"dropout", Ty::K::Float, true},
                                     {"targets", Ty::K::Error, true},
                                     {"rslora", Ty::K::Bool, true}};
      std::vector<const Expr *> args;
      if (!bindArgs(*adapter, spec, args) ||
          !rangeArg(args[0], "'rank'", true, info.loraRank, 0, true))
        return false;
      info.loraAlpha = static_cast<double>(info.loraRank);
      if (!rangeArg(args[1], "'alpha'", false, info.loraAlpha, 0, true) ||
          !rangeArg(args[2], "'dropout'", false, info.loraDropout, 0, false, 1, true))
        return false;
      if (args[4]) {
        auto v = boolArg(args[4], "'rslora'");
        if (!v)
          return false;
        info.rslora = *v;
      }
      loraTargets = args[3];
      if (loraTargets && loraTargets->kind != Expr::Kind::List &&
          !(loraTargets->kind == Expr::Kind::Name && loraTargets->text == "all_linear")) {
        error(loraTargets->loc) << "'targets' must be 'all_linear' or a list of parameter "
                                   "names such as '[wq, wv]', found '"
                                << printExpr(*loraTargets) << "'";
        return false;
      }
      info.lora = true;
    }
    if (base) {
      if (base->kind != Expr::Kind::Call && base->kind != Expr::Kind::Name) {
        error(base->loc) << "expected a base quantization such as 'nf4(block: 64)', found '"
                         << printExpr(*base) << "'";
        return false;
      }
      if (base->text != "nf4") {
        unknown(base->loc, "base quantization", base->text, {"nf4"}, "'nf4(block: 64)'");
        return false;
      }
      info.nf4 = true;
      info.doubleQuant = true;
      if (base->kind == Expr::Kind::Call) {
        static const ArgSpec spec[] = {{"block", Ty::K::Int, true},
                                       {"double_quant", Ty::K::Bool, true}};
        std::vector<const Expr *> args;
        if (!bindArgs(*base, spec, args) ||
            !rangeArg(args[0], "'block'", true, info.nf4Block, 0, true))
          return false;
        if (args[1]) {
          auto v = boolArg(args[1], "'double_quant'");
          if (!v)
            return false;
          info.doubleQuant = *v;
        }
      }
      if (!adapter) {
        error(base->loc) << "a quantized base is frozen; add an adapter to train, e.g. "
                            "'adapter: lora(rank: 16, targets: all_linear)'";
        return false;
      }
    }
    return true;
  }

  /// `reward:` a reward_model stage (ppo, grpo) or reward functions (grpo).
  bool checkReward(const StageDecl &s, const Field &f, StageInfo &info, bool &silent) {
    static const std::vector<std::string> functions = {"exact_answer", "format"};
    std::vector<const Expr *> items;
    if (f.value->kind == Expr::Kind::List)
      for (const ExprPtr &x : f.value->operands)
        items.push_back(x.get());
    else
      items.push_back(f.value.get());
    if (items.empty()) {
      error(f.value->loc) << "'reward' needs at least one reward";
      return false;
    }
    for (const Expr *x : items) {
      if (x->kind != Expr::Kind::Name) {
        error(x->loc) << "expected a reward function (" << quoteList(functions)
                      << ") or a reward_model stage, found '" << printExpr(*x) << "'";
        return false;
      }
      if (llvm::is_contained(functions, x->text)) {
        if (info.kind == "ppo") {
          error(x->loc) << "'ppo' takes its reward from a reward_model stage; '" << x->text
                        << "' is a reward function (use a 'grpo' stage)";
          return false;
        }
        info.rewardFunctions.push_back(x->text);
        if (x->text == "exact_answer" && info.data && info.data->shape != "qa") {
          auto diag = error(x->loc);
          diag << "reward 'exact_answer' needs data with answers (question/answer); dataset '"
               << info.data->decl->name << "' holds " << info.data->shape << " data";
          diag.attachNote(mloc(info.data->decl->value->loc))
              << "dataset '" << info.data->decl->name << "' is declared here";
          return false;
        }
        continue;
      }
      const Decl *d = prog.lookup(x->text);
      if (d && d->kind == Decl::Kind::Loss && static_cast<const LossDecl *>(d)->isReward) {
        // A reward function written in the tensor sublanguage (stdlib/rewards).
        if (info.kind == "ppo") {
          error(x->loc) << "'ppo' takes its reward from a reward_model stage; '" << x->text
                        << "' is a reward function (use a 'grpo' stage)";
          return false;
        }
        info.rewardFunctions.push_back(x->text);
        continue;
      }
      if (!d || d->kind != Decl::Kind::Stage) {
        std::vector<std::string> cands = functions;
        for (auto &[n, dd] : prog.globals)
          if (dd->kind == Decl::Kind::Stage)
            cands.push_back(n);
        unknown(x->loc, "reward", x->text, cands,
                quoteList(functions) + " or a reward_model stage");
        return false;
      }
      bool reported = false;
      const StageInfo *rm = stageRef(s, *x, f.name, reported);
      if (!rm) {
        if (reported)
          return false;
        silent = true;
        continue;
      }
      if (rm->kind != "reward_model") {
        auto diag = error(x->loc);
        diag << "reward '" << x->text << "' must be a reward_model stage, found a stage of kind '"
             << rm->kind << "'";
        diag.attachNote(mloc(rm->decl->nameLoc)) << "stage '" << x->text << "' is declared here";
        return false;
      }
      info.rewardModel = rm;
    }
    return true;
  }

  /// Checks that need the stage's model: adapter targets, quantization blocks and groups,
  /// the batch against the group size and the ranks, and the rollout against the context.
  bool checkStageModel(const StageDecl &s, StageInfo &info) {
    const ModelSpec &m = *info.model;
    auto isLinear = [&](const ConcreteParam &p) { return p.shape.size() == 2 && p.decay; };
    // Re-read from the stage: checking a dependency may have run checkAdapter since.
    const Expr *loraTargets = s.field("adapter") ? s.field("adapter")->value->arg("targets") : nullptr;
    const Expr *nf4BlockExpr = s.field("base") ? s.field("base")->value->arg("block") : nullptr;
    if (info.lora) {
      if (!loraTargets || loraTargets->kind == Expr::Kind::Name) {
        for (const ConcreteParam &p : m.params)
          if (isLinear(p))
            info.loraTargets.push_back(&p);
      } else {
        std::vector<std::string> names;
        for (const ConcreteParam &p : m.params)
          if (!llvm::is_contained(names, p.decl->name))
            names.push_back(p.decl->name);
        for (const ExprPtr &t : loraTargets->operands) {
          std::string pattern = t->kind == Expr::Kind::String ? t->text : printExpr(*t);
          auto glob = llvm::GlobPattern::create(pattern);
          bool any = false;
          for (const ConcreteParam &p : m.params) {
            bool match = p.decl->name == pattern || p.path == pattern ||
                         (glob && glob->match(p.path));
            if (!match)
              continue;
            any = true;
            if (p.shape.size() != 2) {
              auto diag = error(t->loc);
              diag << "LoRA target '" << pattern << "' names parameter '" << p.path
                   << "' of rank " << p.shape.size() << "; LoRA adapts matrices";
              diag.attachNote(mloc(p.decl->loc)) << "parameter '" << p.decl->name
                                                 << "' is declared here";
              return false;
            }
            if (!llvm::is_contained(info.loraTargets, &p))
              info.loraTargets.push_back(&p);
          }
          if (!glob)
            consumeError(glob.takeError());
          if (!any) {
            auto diag = error(t->loc);
            diag << "LoRA target '" << pattern << "' matches no parameter of model '"
                 << m.decl->name << "'";
            std::string guess = closestMatch(pattern, names);
            if (!guess.empty())
              diag << "; did you mean '" << guess << "'?";
            diag.attachNote(mloc(m.family->nameLoc))
                << "model family '" << m.family->name << "' declares its parameters here";
            return false;
          }
        }
      }
    }
    if (info.nf4)
      for (const ConcreteParam &p : m.params)
        if (isLinear(p) && p.numel % info.nf4Block != 0) {
          auto diag = error(nf4BlockExpr ? nf4BlockExpr->loc : s.field("base")->value->loc);
          diag << "NF4 block " << info.nf4Block << " does not divide the " << p.numel
               << " elements of parameter '" << p.path << "'";
          diag.attachNote(mloc(p.decl->loc)) << "parameter '" << p.decl->name
                                             << "' is declared here";
          return false;
        }
    if (info.quantize == "int4")
      for (const ConcreteParam &p : m.params)
        if (isLinear(p) && p.shape[0] % info.quantGroup != 0) {
          const Expr *q = s.field("quantize")->value.get();
          auto diag = error(q->kind == Expr::Kind::Call && !q->operands.empty()
                                ? q->operands[0]->loc
                                : q->loc);
          diag << "int4 group " << info.quantGroup << " does not divide the input dimension "
               << p.shape[0] << " of parameter '" << p.path << "' of model '" << m.decl->name
               << "'";
          diag.attachNote(mloc(p.decl->loc)) << "parameter '" << p.decl->name
                                             << "' is declared here";
          return false;
        }
    const Field *bf = s.field("batch");
    if (info.kind == "grpo" && info.group > 0 && info.batch % info.group != 0) {
      auto diag = error(bf ? bf->value->operands[0]->loc : s.nameLoc);
      diag << "batch " << info.batch << " is not divisible by the group size " << info.group
           << "; each prompt is sampled " << info.group << " times";
      diag.attachNote(mloc(s.field("group")->value->loc)) << "group size is set here";
      return false;
    }
    if (info.ranks > 1 && info.batch % info.ranks != 0) {
      auto diag = error(bf ? bf->value->operands[0]->loc : s.nameLoc);
      diag << "batch " << info.batch << " is not divisible by the " << info.ranks << " ranks";
      diag.attachNote(mloc(s.field("ranks")->value->loc)) << "ranks are set here";
      return false;
    }
    if (info.maxNew > 0 && info.maxNew >= info.seqLen) {
      const Expr *r = s.field("rollout")->value.get();
      auto diag = error(r->arg("max_new")->loc);
      diag << "rollouts of " << info.maxNew << " new tokens leave no room for the prompt in "
           << "sequences of " << info.seqLen << " tokens";
      if (bf)
        diag.attachNote(mloc(bf->value->operands[1]->loc)) << "sequence length is set here";
      else
        diag.attachNote(mloc(info.parent->decl->nameLoc))
            << "sequence length is inherited from stage '" << info.parent->decl->name << "'";
      return false;
    }
    return true;
  }

  /// Optimizer and schedule arguments are passed by name, like model family arguments.
  bool namedOnly(const Expr &call, llvm::StringRef example) {
    for (size_t i = 0; i < call.operands.size(); ++i)
      if (call.argNames[i].empty()) {
        error(call.operands[i]->loc) << "arguments of '" << call.text
                                     << "' are passed by name, e.g. '" << example << ": ...'";
        return false;
      }
    return true;
  }

  bool checkOptimizer(const Expr *e, StageInfo &info) {
    if (!e)
      return true;
    if (e->kind != Expr::Kind::Call || e->text != "adamw") {
      llvm::StringRef name = e->kind == Expr::Kind::Call || e->kind == Expr::Kind::Name
                                 ? llvm::StringRef(e->text)
                                 : "";
      unknown(e->loc, "optimizer", name.empty() ? printExpr(*e) : name, {"adamw"},
              "'adamw(lr: ...)'");
      return false;
    }
    static const ArgSpec spec[] = {{"lr", Ty::K::Float},
                                   {"betas", Ty::K::Error, true},
                                   {"weight_decay", Ty::K::Float, true},
                                   {"eps", Ty::K::Float, true}};
    std::vector<const Expr *> args;
    if (!namedOnly(*e, "lr") || !bindArgs(*e, spec, args))
      return false;
    auto lr = numArg(args[0], "'lr'", false);
    if (!lr || !checkRange(args[0], lr->value, "'lr'", 0, true))
      return false;
    info.lr = lr->value;
    if (const Expr *b = args[1]) {
      if (b->kind != Expr::Kind::Tuple || b->operands.size() != 2) {
        error(b->loc) << "'betas' must be a pair such as '(0.9, 0.95)', found '" << printExpr(*b)
                      << "'";
        return false;
      }
      auto b1 = numArg(b->operands[0].get(), "'betas'", false);
      auto b2 = numArg(b->operands[1].get(), "'betas'", false);
      if (!b1 || !b2 || !checkRange(b->operands[0].get(), b1->value, "'betas'", 0, false, 1) ||
          !checkRange(b->operands[1].get(), b2->value, "'betas'", 0, false, 1))
        return false;
      info.beta1 = b1->value;
      info.beta2 = b2->value;
    }
    if (const Expr *w = args[2]) {
      auto n = numArg(w, "'weight_decay'", false);
      if (!n || !checkRange(w, n->value, "'weight_decay'", 0, false))
        return false;
      info.weightDecay = n->value;
    }
    if (const Expr *w = args[3]) {
      auto n = numArg(w, "'eps'", false);
      if (!n || !checkRange(w, n->value, "'eps'", 0, true))
        return false;
      info.eps = n->value;
    }
    info.minLr = info.lr;
    return true;
  }

  bool checkSchedule(const Expr *e, StageInfo &info) {
    // Runs after checkOptimizer, which set info.lr (and minLr = lr: a constant schedule).
    if (!e)
      return true;
    if (e->kind == Expr::Kind::Name && e->text == "constant")
      return true;
    if (e->kind != Expr::Kind::Call || e->text != "cosine") {
      llvm::StringRef name = e->kind == Expr::Kind::Call || e->kind == Expr::Kind::Name
                                 ? llvm::StringRef(e->text)
                                 : "";
      unknown(e->loc, "schedule", name.empty() ? printExpr(*e) : name, {"cosine", "constant"},
              "'cosine(warmup: ..., min_lr: ...)' or 'constant'");
      return false;
    }
    static const ArgSpec spec[] = {{"warmup", Ty::K::Int, true}, {"min_lr", Ty::K::Float, true}};
    std::vector<const Expr *> args;
    if (!namedOnly(*e, "warmup") || !bindArgs(*e, spec, args))
      return false;
    info.minLr = 0.0;
    if (const Expr *w = args[0]) {
      auto n = numArg(w, "'warmup'", true);
      if (!n || !checkRange(w, n->value, "'warmup'", 0, false))
        return false;
      info.warmup = n->isInt ? n->i : static_cast<int64_t>(n->value);
    }
    if (const Expr *m = args[1]) {
      auto n = numArg(m, "'min_lr'", false);
      if (!n || !checkRange(m, n->value, "'min_lr'", 0, false, info.lr, false))
        return false;
      info.minLr = n->value;
    }
    return true;
  }

  /// Finds the model argument expression for formal `name` (for pointing diagnostics).
  static const Expr *modelArg(const ModelSpec &m, llvm::StringRef name) {
    const Expr *e = m.decl->value->arg(name);
    return e ? e : m.decl->value.get();
  }

  /// Checks that the stage's model, loss, tokenizer and batch fit together.
  bool checkFit(const StageDecl &s, StageInfo &info) {
    const ModelSpec &m = *info.model;
    const FamilyDecl &f = *m.family;
    // Tokenizer: explicit, else the one the model's arguments name, else the one trained on
    // the stage's data, else the only one.
    if (!info.tokenizer) {
      std::vector<const BindingDecl *> toks;
      for (auto &[name, d] : prog.globals)
        if (d->kind == Decl::Kind::Tokenizer)
          toks.push_back(static_cast<const BindingDecl *>(d));
      for (const auto &arg : m.decl->value->operands)
        if (arg->kind == Expr::Kind::Member && arg->operands[0]->kind == Expr::Kind::Name)
          if (auto *t = prog.lookupAs<BindingDecl>(arg->operands[0]->text, Decl::Kind::Tokenizer))
            info.tokenizer = t;
      for (const BindingDecl *t : toks) {
        const Expr *on = t->value->arg("train_on");
        if (!info.tokenizer && on && info.dataset && on->kind == Expr::Kind::Name &&
            on->text == info.dataset->name)
          info.tokenizer = t;
      }
      if (!info.tokenizer && toks.size() == 1)
        info.tokenizer = toks.front();
      if (!info.tokenizer) {
        error(s.nameLoc) << "stage '" << s.name
                         << "' needs a tokenizer; declare one with 'tokenizer tok = bpe(train_on: "
                         << (info.dataset ? info.dataset->name : std::string("DATA"))
                         << ", vocab: ...)' or add a 'tokenizer' field";
        return false;
      }
    }
    auto ti = prog.tokenizers.find(info.tokenizer->name);
    if (ti == prog.tokenizers.end())
      return false; // reported with the tokenizer
    const TokenizerInfo &tok = ti->second;
    info.vocab = tok.vocab;
    if (m.args.count("vocab") && info.vocab > 0 && info.vocab != m.get("vocab")) {
      auto diag = error(modelArg(m, "vocab")->loc);
      diag << "model '" << m.decl->name << "' has vocab " << m.get("vocab") << " but tokenizer '"
           << info.tokenizer->name << "' has vocab " << info.vocab
           << "; expected them to be equal (use 'vocab: " << info.tokenizer->name << ".vocab')";
      if (s.field("tokenizer"))
        diag.attachNote(mloc(s.field("tokenizer")->value->loc))
            << "stage '" << s.name << "' uses tokenizer '" << info.tokenizer->name << "' here";
      diag.attachNote(mloc(tok.vocabExpr->loc)) << "tokenizer vocabulary is set here";
      return false;
    }
    // A chat template's special tokens must exist in the tokenizer (when its specials are known).
    if (info.data && info.data->shape == "chat" && info.data->templateExpr && tok.specialsKnown) {
      std::vector<std::string> need =
          info.data->chatTemplate == "llama3"
              ? std::vector<std::string>{"<|begin_of_text|>", "<|start_header_id|>",
                                         "<|end_header_id|>", "<|eot_id|>"}
              : std::vector<std::string>{"<|im_start|>", "<|im_end|>"};
      for (const std::string &sp : need)
        if (!llvm::is_contained(tok.specials, sp)) {
          auto diag = error(s.field("data")->value->loc);
          diag << "chat template '" << info.data->chatTemplate << "' of dataset '"
               << info.data->decl->name << "' needs the special token '" << sp
               << "', which tokenizer '" << info.tokenizer->name << "' does not have";
          if (tok.kind == "bpe")
            diag << " (declare it with 'specials: [...]')";
          diag.attachNote(mloc(tok.specialsExpr ? tok.specialsExpr->loc : tok.decl->value->loc))
              << "tokenizer '" << info.tokenizer->name << "' declares its special tokens here";
          diag.attachNote(mloc(info.data->templateExpr->loc))
              << "the template is chosen here";
          return false;
        }
    }
    if (m.args.count("context") && info.seqLen > m.get("context") && s.field("batch")) {
      const Field *bf = s.field("batch");
      auto diag = error(bf->value->operands[1]->loc);
      diag << "sequence length " << info.seqLen << " exceeds the context " << m.get("context")
           << " of model '" << m.decl->name << "'";
      diag.attachNote(mloc(modelArg(m, "context")->loc)) << "context is set here";
      return false;
    }
    // Loss signature against the model: bind the loss's symbols to the concrete shapes.
    const ForwardDecl &fwd = *f.forward;
    std::map<std::string, Num> env;
    for (auto &[name, v] : m.args)
      env[name] = m.isInt.at(name) ? Num::integer(static_cast<int64_t>(v)) : Num::real(v);
    const TypeRef &tokens = fwd.inputs[0].type;
    env[printExpr(*tokens.dims[0])] = Num::integer(info.batch);
    env[printExpr(*tokens.dims[1])] = Num::integer(info.seqLen);
    std::vector<int64_t> out;
    for (const ExprPtr &d : fwd.result.dims) {
      auto n = evalNum(*d, env, "a forward result dimension");
      if (!n)
        return false;
      out.push_back(n->isInt ? n->i : static_cast<int64_t>(n->value));
    }
    if (!info.loss)
      return true;
    // The stage computes logits [batch, sequence, vocab] from the forward's result.
    std::vector<int64_t> logits = {info.batch, info.seqLen, m.get("vocab")};
    if (m.args.count("vocab") && out != logits) {
      auto diag = error(s.field("model") ? s.field("model")->value->loc : s.nameLoc);
      diag << "model '" << m.decl->name << "' returns " << fwd.result.name << "[";
      for (size_t i = 0; i < fwd.result.dims.size(); ++i)
        diag << (i ? ", " : "") << printExpr(*fwd.result.dims[i]);
      diag << "] = " << fwd.result.name << "[";
      for (size_t i = 0; i < out.size(); ++i)
        diag << (i ? ", " : "") << out[i];
      diag << "] but stage '" << s.name << "' needs logits f32[B, T, vocab] = f32["
           << info.batch << ", " << info.seqLen << ", " << m.get("vocab") << "]";
      diag.attachNote(mloc(fwd.result.loc)) << "the result of 'forward' of model family '"
                                            << f.name << "' is declared here";
      return false;
    }
    const LossDecl &l = *info.loss;
    // A stage's loss takes (logits, targets) or (logits, targets, mask), then numbers.
    std::vector<const Formal *> tensorFormals;
    for (const Formal &formal : l.formals)
      if (formal.type.isTensor)
        tensorFormals.push_back(&formal);
    if (tensorFormals.size() < 2 || tensorFormals.size() > 3) {
      auto diag = error(s.field("loss") ? s.field("loss")->value->loc : s.nameLoc);
      diag << "loss '" << l.name << "' cannot be the loss of stage '" << s.name
           << "': a stage's loss takes (logits, targets) or (logits, targets, mask) before "
              "any number parameters, but '"
           << l.name << "' takes " << tensorFormals.size() << " tensor parameters";
      diag.attachNote(mloc(l.nameLoc)) << "loss '" << l.name << "' is declared here";
      return false;
    }
    for (size_t i = 0; i < tensorFormals.size(); ++i)
      if (tensorFormals[i] != &l.formals[i]) {
        auto diag = error(s.field("loss") ? s.field("loss")->value->loc : s.nameLoc);
        diag << "loss '" << l.name << "' cannot be the loss of stage '" << s.name
             << "': its tensor parameters must come before its number parameters";
        diag.attachNote(mloc(l.nameLoc)) << "loss '" << l.name << "' is declared here";
        return false;
      }
    std::map<std::string, int64_t> binding;
    auto shapeStr = [](llvm::ArrayRef<int64_t> dims) {
      std::string s = "[";
      for (size_t i = 0; i < dims.size(); ++i)
        s += (i ? ", " : "") + std::to_string(dims[i]);
      return s + "]";
    };
    auto unify = [&](const Formal &formal, llvm::StringRef dtype, llvm::ArrayRef<int64_t> dims,
                     llvm::StringRef what) -> bool {
      bool match = formal.type.name == dtype && formal.type.dims.size() == dims.size();
      for (size_t i = 0; match && i < dims.size(); ++i) {
        const Expr &d = *formal.type.dims[i];
        if (d.kind == Expr::Kind::Int)
          match = d.intValue == dims[i];
        else if (d.kind == Expr::Kind::Name)
          match = binding.emplace(d.text, dims[i]).first->second == dims[i];
      }
      if (match)
        return true;
      auto diag = error(s.field("loss") ? s.field("loss")->value->loc : s.nameLoc);
      diag << "loss '" << l.name << "' does not fit model '" << m.decl->name << "': parameter '"
           << formal.name << "' is " << formal.type.name << "[";
      for (size_t i = 0; i < formal.type.dims.size(); ++i)
        diag << (i ? ", " : "") << printExpr(*formal.type.dims[i]);
      diag << "] but " << what << " is " << dtype << shapeStr(dims);
      diag.attachNote(mloc(formal.loc)) << "parameter '" << formal.name << "' is declared here";
      return false;
    };
    return unify(l.formals[0], fwd.result.name, out, "the model's output") &&
           unify(l.formals[1], "i32", {info.batch, info.seqLen}, "the targets") &&
           (tensorFormals.size() < 3 ||
            unify(l.formals[2], "f32", {info.batch, info.seqLen}, "the loss mask"));
  }

  /// Checks that a pipeline names stages, each once, and that every stage comes after the
  /// stages it depends on (`from:`, `policy:`, `reference:`, `reward:`).
  void checkPipeline(const PipelineDecl &p) {
    std::map<std::string, Loc> seen;
    for (const auto &[name, loc] : p.stages) {
      const Decl *d = prog.lookup(name);
      if (!d) {
        unknown(loc, "stage", name, globalsOfKind(Decl::Kind::Stage));
        return;
      }
      if (d->kind != Decl::Kind::Stage) {
        auto diag = error(loc);
        diag << "'" << name << "' is " << describeDecl(*d) << ", expected a stage";
        diag.attachNote(mloc(d->nameLoc)) << "'" << name << "' is declared here";
        return;
      }
      if (seen.count(name)) {
        auto diag = error(loc);
        diag << "stage '" << name << "' appears twice in pipeline '" << p.name << "'";
        diag.attachNote(mloc(seen[name])) << "first appearance is here";
        return;
      }
      seen[name] = loc;
      auto it = prog.stageInfo.find(name);
      if (it == prog.stageInfo.end())
        continue; // reported with the stage
      const StageInfo &info = it->second;
      std::vector<std::pair<const StageInfo *, const char *>> deps = {
          {info.parent, info.kind == "ppo" || info.kind == "grpo" ? "policy" : "from"},
          {info.reference, "reference"},
          {info.rewardModel, "reward"}};
      for (auto &[dep, field] : deps) {
        if (!dep || seen.count(dep->decl->name))
          continue;
        bool later = llvm::any_of(p.stages, [&](auto &x) { return x.first == dep->decl->name; });
        auto diag = error(loc);
        diag << "stage '" << name << "' needs stage '" << dep->decl->name << "', which "
             << (later ? "comes after it" : "is not") << " in pipeline '" << p.name << "'";
        const Field *f = info.decl->field(field);
        diag.attachNote(mloc(f ? f->value->loc : info.decl->nameLoc))
            << "'" << dep->decl->name << "' is named here";
        return;
      }
    }
  }

  Program &prog;
  mlir::MLIRContext &ctx;
  FamilyDecl *curFamily = nullptr;
  std::set<std::string> reportedUndeclared;
  bool failed = false;
  unsigned numErrors = 0;
  /// For each imported file, the `import` that first brought it in.
  std::map<std::string, Loc> importedAt;
  /// Families with errors of their own; their instances are not checked again.
  std::set<const Decl *> badFamilies;
  /// `attention` calls with `kv_heads`, per family (checked with numbers per instance).
  struct GroupedQuery {
    const Expr *call, *heads, *kvHeads;
  };
  std::map<const FamilyDecl *, std::vector<GroupedQuery>> gqaCalls;
};

} // namespace

mlir::LogicalResult checkProgram(Program &program, mlir::MLIRContext &ctx) {
  return Sema(program, ctx).run();
}

} // namespace llmp::lang
