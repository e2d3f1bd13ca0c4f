// SPDX-License-Identifier: Apache-2.0
/// Semantic analysis. Model families and losses are checked once, symbolically: a
/// dimension is the source text of its expression (`dim`, `B`, `4 * dim`), and two
/// dimensions agree when their texts do. Model instances and stages are then checked with
/// numbers. An expression that already failed has type `Error`, which every later check
/// accepts silently, so one mistake gives one diagnostic.
#include "lang/Sema.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <cstdio>
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
      "model", "data",     "tokenizer", "loss", "optimizer",    "schedule",
      "batch", "steps",    "grad_clip", "eval", "eval_batches", "seed"};
  return names;
}

namespace {

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

/// A number computed at compile time.
struct Num {
  double value = 0;
  bool isInt = false;
};

/// One argument of a builtin.
struct ArgSpec {
  const char *name;
  Ty::K kind; ///< Tensor, Int, Float or Bool (Int is accepted where Float is)
  bool optional = false;
};

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
        if (d->kind == Decl::Kind::Family)
          checkFamily(static_cast<FamilyDecl &>(*d));
        else if (d->kind == Decl::Kind::Loss)
          checkLoss(static_cast<const LossDecl &>(*d));
      }
    for (const DeclPtr &d : prog.main().decls) {
      switch (d->kind) {
      case Decl::Kind::Tokenizer:
        checkTokenizer(static_cast<const BindingDecl &>(*d));
        break;
      case Decl::Kind::Dataset:
        checkDataset(static_cast<const BindingDecl &>(*d));
        break;
      case Decl::Kind::Model:
        checkModel(static_cast<const BindingDecl &>(*d));
        break;
      case Decl::Kind::Stage:
        checkStage(static_cast<const StageDecl &>(*d));
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
    return mlir::emitError(toMLIR(ctx, loc));
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
      return "a loss";
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

  /// Evaluates a compile-time number. `env` holds visible numeric names. Reports and
  /// returns nullopt when `e` is not a number.
  std::optional<Num> evalNum(const Expr &e, const std::map<std::string, Num> &env,
                             llvm::StringRef what) {
    switch (e.kind) {
    case Expr::Kind::Int:
      return Num{static_cast<double>(e.intValue), true};
    case Expr::Kind::Float:
      return Num{e.floatValue, false};
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
          const Expr *v = tok->value->arg("vocab");
          if (!v || v->kind != Expr::Kind::Int) {
            error(e.loc) << "tokenizer '" << base.text << "' has no constant 'vocab'";
            return std::nullopt;
          }
          return Num{static_cast<double>(v->intValue), true};
        }
      }
      error(e.loc) << "expected a number for " << what << ", found '" << printExpr(e) << "'";
      return std::nullopt;
    }
    case Expr::Kind::Neg: {
      auto v = evalNum(*e.operands[0], env, what);
      if (v)
        v->value = -v->value;
      return v;
    }
    case Expr::Kind::Binary: {
      auto a = evalNum(*e.operands[0], env, what);
      if (!a)
        return std::nullopt;
      auto b = evalNum(*e.operands[1], env, what);
      if (!b)
        return std::nullopt;
      bool isInt = a->isInt && b->isInt;
      if (e.text == "+")
        return Num{a->value + b->value, isInt};
      if (e.text == "-")
        return Num{a->value - b->value, isInt};
      if (e.text == "*")
        return Num{a->value * b->value, isInt};
      if (e.text == "/") {
        if (b->value == 0) {
          error(e.loc) << "division by zero in " << what;
          return std::nullopt;
        }
        return Num{isInt ? std::floor(a->value / b->value) : a->value / b->value, isInt};
      }
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
      return checkDim(*d.operands[0], known, false) && checkDim(*d.operands[1], known, false);
    default:
      error(d.loc) << "expected a dimension (a number, a name or arithmetic on them), found '"
                   << printExpr(d) << "'";
      return false;
    }
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
      if (!t.isError() && !t.isNumber()) {
        error(e.loc) << "unary '-' is defined on numbers, found " << str(t);
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
    if (!a.isTensor() || !b.isTensor()) {
      error(e.loc) << "operator '" << op << "' needs two tensors or two numbers, found "
                   << str(a) << " and " << str(b);
      return Ty::error();
    }
    if (a.dtype != "f32" || b.dtype != "f32") {
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
    if (op == "+" || op == "*") {
      if (!a.sameShape(b)) {
        error(e.loc) << "shape mismatch in '" << op << "': " << str(a) << " " << op << " "
                     << str(b) << "; expected equal shapes";
        return Ty::error();
      }
      return a;
    }
    error(e.loc) << "operator '" << op
                 << "' is not defined on tensors; expected '+', '*' or '@'";
    return Ty::error();
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

  Ty callType(const Expr &call, const Scope &scope) {
    using K = Ty::K;
    struct Builtin {
      const char *name;
      std::vector<ArgSpec> args;
    };
    static const std::vector<Builtin> builtins = {
        {"embedding", {{"table", K::Tensor}, {"ids", K::Tensor}}},
        {"rmsnorm", {{"x", K::Tensor}, {"weight", K::Tensor}, {"eps", K::Float, true}}},
        {"rope", {{"x", K::Tensor}, {"heads", K::Int}, {"theta", K::Float, true}}},
        {"attention",
         {{"q", K::Tensor}, {"k", K::Tensor}, {"v", K::Tensor}, {"heads", K::Int},
          {"causal", K::Bool, true}}},
        {"silu", {{"x", K::Tensor}}},
        {"transpose", {{"x", K::Tensor}}},
        {"cross_entropy", {{"logits", K::Tensor}, {"targets", K::Tensor}}},
        {"mean", {{"x", K::Tensor}}},
    };
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
      bool ok = want == K::Tensor ? tys[i].isTensor() : fits(tys[i].k, want);
      if (!ok) {
        error(args[i]->loc) << "argument '" << it->args[i].name << "' of '" << call.text
                            << "' must be " << (want == K::Tensor ? "a tensor" : str(Ty::scalar(want)))
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
    if (name == "embedding") {
      if (x.dtype != "f32" || x.rank() != 2)
        return bad(0, "an f32 matrix [vocab, dim]");
      if (tys[1].dtype != "i32")
        return bad(1, "a tensor of i32 token ids");
      if (curFamily && args[0]->kind == Expr::Kind::Name)
        for (const ParamDecl &p : curFamily->params)
          if (p.repeat < 0 && p.name == args[0]->text)
            curFamily->embeddingTables.push_back(&p);
      std::vector<std::string> dims = tys[1].dims;
      dims.push_back(x.dims[1]);
      return Ty::tensor("f32", dims);
    }
    if (x.dtype != "f32" && name != "cross_entropy")
      return bad(0, "an f32 tensor");
    if (name == "rmsnorm") {
      if (x.rank() < 1)
        return bad(0, "a tensor of rank 1 or more");
      if (tys[1].rank() != 1 || tys[1].dims[0] != x.dims.back())
        return bad(1, "f32[" + x.dims.back() + "] to match the last dimension of 'x'");
      return x;
    }
    if (name == "rope") {
      if (x.rank() != 3)
        return bad(0, "f32[B, T, D]");
      return x;
    }
    if (name == "attention") {
      if (x.rank() != 3)
        return bad(0, "f32[B, T, D]");
      for (size_t i = 1; i < 3; ++i)
        if (!tys[i].sameShape(x))
          return bad(i, str(x) + " like 'q'");
      return x;
    }
    if (name == "silu")
      return x;
    if (name == "transpose") {
      if (x.rank() != 2)
        return bad(0, "a matrix");
      return Ty::tensor("f32", {x.dims[1], x.dims[0]});
    }
    if (name == "cross_entropy") {
      if (x.dtype != "f32" || x.rank() < 2)
        return bad(0, "f32 logits of rank 2 or more");
      std::vector<std::string> prefix(x.dims.begin(), x.dims.end() - 1);
      if (tys[1].dtype != "i32" || tys[1].dims != prefix)
        return bad(1, "i32[" + llvm::join(prefix, ", ") + "] to match the logits");
      return Ty::tensor("f32", prefix);
    }
    if (name == "mean")
      return Ty::tensor("f32", {});
    return Ty::error();
  }

  //===--------------------------------------------------------------------===//
  // Losses
  //===--------------------------------------------------------------------===//

  void checkLoss(const LossDecl &l) {
    reportedUndeclared.clear();
    Scope scope;
    std::map<std::string, Ty> none;
    for (const Formal &f : l.formals) {
      Ty t = typeOf(f.type, none, /*allowFresh=*/true);
      if (!t.isError() && !t.isTensor()) {
        error(f.type.loc) << "loss parameter '" << f.name << "' must be a tensor, found "
                          << str(t);
        t = Ty::error();
      }
      scope.vars[f.name] = t;
    }
    if (l.formals.size() != 2)
      error(l.nameLoc) << "loss '" << l.name
                       << "' must take two parameters (the logits and the targets), found "
                       << l.formals.size();
    Ty result = typeOf(l.result, none, false);
    Ty body = exprType(*l.body, scope);
    if (!result.isError() && !(result.isTensor() && result.dtype == "f32" && result.rank() == 0))
      error(l.result.loc) << "loss '" << l.name << "' must return f32, found " << str(result);
    else if (!body.isError() && !result.isError() && !body.sameShape(result))
      error(l.body->loc) << "loss body has type " << str(body) << " but the declared result is "
                         << str(result);
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

  void checkTokenizer(const BindingDecl &b) {
    const Expr *call = expectCall(b, {"bpe"}, "tokenizer kind");
    if (!call)
      return;
    static const ArgSpec spec[] = {{"train_on", Ty::K::Error}, {"vocab", Ty::K::Int}};
    std::vector<const Expr *> args;
    if (!bindArgs(*call, spec, args))
      return;
    resolveRef(*args[0], Decl::Kind::Dataset, "dataset");
    if (args[1]->kind != Expr::Kind::Int) {
      error(args[1]->loc) << "'vocab' must be an integer literal, found '"
                          << printExpr(*args[1]) << "'";
      return;
    }
    checkRange(args[1], static_cast<double>(args[1]->intValue), "'vocab'", 256, false);
  }

  void checkDataset(const BindingDecl &b) {
    const Expr *call = expectCall(b, {"text"}, "dataset kind");
    if (!call)
      return;
    static const ArgSpec spec[] = {
        {"path", Ty::K::Error}, {"format", Ty::K::Error, true}, {"split", Ty::K::Float, true}};
    std::vector<const Expr *> args;
    if (!bindArgs(*call, spec, args))
      return;
    if (args[0]->kind != Expr::Kind::String)
      error(args[0]->loc) << "expected a file path string, found '" << printExpr(*args[0])
                          << "'";
    if (args[1] && (args[1]->kind != Expr::Kind::Name ||
                    (args[1]->text != "text" && args[1]->text != "osis")))
      unknown(args[1]->loc, "dataset format", printExpr(*args[1]), {"text", "osis"},
              "'text' or 'osis'");
    if (args[2])
      if (auto n = numArg(args[2], "'split'", false))
        checkRange(args[2], n->value, "'split'", 0, true, 1, false);
  }

  void checkModel(const BindingDecl &b) {
    const Expr &v = *b.value;
    if (v.kind != Expr::Kind::Call) {
      error(v.loc) << "expected a model family call such as 'llama(dim: 128, ...)', found '"
                   << printExpr(v) << "'";
      return;
    }
    const Decl *d = prog.lookup(v.text);
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
        env[p.name] = Num{val ? 1.0 : 0.0, true};
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
      if (n->value <= 0 && k == Ty::K::Int) {
        error(e->loc) << "argument '" << p.name << "' must be positive, found "
                      << fmtNum(n->value);
        return;
      }
      env[p.name] = *n;
    }
    for (auto &[name, n] : env) {
      spec.args[name] = n.value;
      spec.isInt[name] = n.isInt;
    }
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
        if (n->value <= 0) {
          error(d->loc) << "dimension '" << printExpr(*d) << "' of parameter '" << p.name
                        << "' must be positive, found " << n->value;
          return false;
        }
        cp.shape.push_back(static_cast<int64_t>(n->value));
        cp.numel *= cp.shape.back();
      }
      cp.offset = spec.numParams;
      cp.decay = cp.shape.size() == 2 && !llvm::is_contained(f.embeddingTables, &p);
      spec.numParams += cp.numel;
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
    prog.models[b.name] = std::move(spec);
  }

  //===--------------------------------------------------------------------===//
  // Stages and pipelines
  //===--------------------------------------------------------------------===//

  void checkStage(const StageDecl &s) {
    StageInfo info;
    info.decl = &s;
    std::map<std::string, const Field *> fields;
    bool ok = true;
    for (const Field &f : s.fields) {
      if (!llvm::is_contained(stageFieldNames(), f.name)) {
        unknown(f.loc, "stage field", f.name, stageFieldNames(), quoteList(stageFieldNames()));
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
    for (const char *required : {"model", "data", "loss", "optimizer", "batch", "steps"})
      if (!fields.count(required)) {
        // A misspelled field was already reported; don't report it again as missing.
        if (!ok)
          continue;
        error(s.nameLoc) << "stage '" << s.name << "' is missing the field '" << required << "'";
        ok = false;
      }
    auto get = [&](const char *name) -> const Expr * {
      auto it = fields.find(name);
      return it == fields.end() ? nullptr : it->second->value.get();
    };
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
          ok = false; // its declaration was reported
        else
          info.model = &it->second;
      } else {
        ok = false;
      }
    }
    // data
    if (const Expr *e = get("data")) {
      info.dataset =
          static_cast<const BindingDecl *>(resolveRef(*e, Decl::Kind::Dataset, "dataset"));
      if (!info.dataset)
        ok = false;
      else if (info.dataset->value->kind == Expr::Kind::Call) {
        const Expr &call = *info.dataset->value;
        if (!call.operands.empty() && call.operands[0]->kind == Expr::Kind::String)
          info.dataPath = call.operands[0]->text;
        if (const Expr *fmt = call.arg("format"))
          info.dataFormat = fmt->text;
        if (const Expr *split = call.arg("split"))
          info.split = split->floatValue;
      }
    }
    // loss
    if (const Expr *e = get("loss")) {
      info.loss = static_cast<const LossDecl *>(resolveRef(*e, Decl::Kind::Loss, "loss"));
      if (!info.loss)
        ok = false;
    }
    ok &= checkOptimizer(get("optimizer"), info);
    ok &= checkSchedule(get("schedule"), info);
    if (const Expr *e = get("grad_clip")) {
      auto n = numArg(e, "'grad_clip'", false);
      ok &= n && checkRange(e, n->value, "'grad_clip'", 0, true);
      if (n)
        info.gradClip = n->value;
    }
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
          info.batch = static_cast<int64_t>(b->value);
          info.seqLen = static_cast<int64_t>(t->value);
        }
      }
    }
    auto intField = [&](const char *name, int64_t &out, double lo, bool open) {
      if (const Expr *e = get(name)) {
        auto n = numArg(e, ("'" + std::string(name) + "'"), true);
        ok &= n && checkRange(e, n->value, ("'" + std::string(name) + "'"), lo, open);
        if (n)
          out = static_cast<int64_t>(n->value);
      }
    };
    intField("steps", info.steps, 0, true);
    intField("eval_batches", info.evalBatches, 0, true);
    int64_t seed = 0;
    intField("seed", seed, 0, false);
    info.seed = static_cast<uint64_t>(seed);
    if (const Expr *e = get("eval")) {
      if (e->kind != Expr::Kind::Every) {
        error(e->loc) << "expected 'eval: every N', found '" << printExpr(*e) << "'";
        ok = false;
      } else {
        auto n = numArg(e->operands[0].get(), "the evaluation interval", true);
        ok &= n && checkRange(e->operands[0].get(), n->value, "the evaluation interval", 0, true);
        if (n)
          info.evalEvery = static_cast<int64_t>(n->value);
      }
    }
    if (const Expr *e = get("tokenizer"))
      info.tokenizer =
          static_cast<const BindingDecl *>(resolveRef(*e, Decl::Kind::Tokenizer, "tokenizer"));
    if (!ok)
      return;
    ok = checkFit(s, info);
    if (ok)
      prog.stageInfo[s.name] = info;
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
    if (!bindArgs(*e, spec, args))
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
    if (!bindArgs(*e, spec, args))
      return false;
    info.minLr = 0.0;
    if (const Expr *w = args[0]) {
      auto n = numArg(w, "'warmup'", true);
      if (!n || !checkRange(w, n->value, "'warmup'", 0, false))
        return false;
      info.warmup = static_cast<int64_t>(n->value);
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
        if (!info.tokenizer && on && on->kind == Expr::Kind::Name &&
            on->text == info.dataset->name)
          info.tokenizer = t;
      }
      if (!info.tokenizer && toks.size() == 1)
        info.tokenizer = toks.front();
      if (!info.tokenizer) {
        error(s.nameLoc) << "stage '" << s.name
                         << "' needs a tokenizer; declare one with 'tokenizer tok = bpe(train_on: "
                         << info.dataset->name << ", vocab: ...)' or add a 'tokenizer' field";
        return false;
      }
    }
    if (const Expr *v = info.tokenizer->value->arg("vocab"))
      info.vocab = v->intValue;
    if (m.args.count("vocab") && info.vocab != m.get("vocab")) {
      auto diag = error(modelArg(m, "vocab")->loc);
      diag << "model '" << m.decl->name << "' has vocab " << m.get("vocab") << " but tokenizer '"
           << info.tokenizer->name << "' has vocab " << info.vocab
           << "; expected them to be equal (use 'vocab: " << info.tokenizer->name << ".vocab')";
      diag.attachNote(mloc(info.tokenizer->value->arg("vocab")->loc))
          << "tokenizer vocabulary is set here";
      return false;
    }
    if (m.args.count("context") && info.seqLen > m.get("context")) {
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
      env[name] = Num{v, m.isInt.at(name)};
    const TypeRef &tokens = fwd.inputs[0].type;
    env[printExpr(*tokens.dims[0])] = Num{static_cast<double>(info.batch), true};
    env[printExpr(*tokens.dims[1])] = Num{static_cast<double>(info.seqLen), true};
    std::vector<int64_t> out;
    for (const ExprPtr &d : fwd.result.dims) {
      auto n = evalNum(*d, env, "a forward result dimension");
      if (!n)
        return false;
      out.push_back(static_cast<int64_t>(n->value));
    }
    const LossDecl &l = *info.loss;
    if (l.formals.size() != 2)
      return false; // reported with the loss
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
      auto diag = error(s.field("loss")->value->loc);
      diag << "loss '" << l.name << "' does not fit model '" << m.decl->name << "': parameter '"
           << formal.name << "' is " << formal.type.name << "[";
      for (size_t i = 0; i < formal.type.dims.size(); ++i)
        diag << (i ? ", " : "") << printExpr(*formal.type.dims[i]);
      diag << "] but " << what << " is " << dtype << shapeStr(dims);
      diag.attachNote(mloc(formal.loc)) << "parameter '" << formal.name << "' is declared here";
      return false;
    };
    return unify(l.formals[0], fwd.result.name, out, "the model's output") &&
           unify(l.formals[1], "i32", {info.batch, info.seqLen}, "the targets");
  }

  void checkPipeline(const PipelineDecl &p) {
    for (const auto &[name, loc] : p.stages) {
      const Decl *d = prog.lookup(name);
      if (!d) {
        unknown(loc, "stage", name, globalsOfKind(Decl::Kind::Stage));
      } else if (d->kind != Decl::Kind::Stage) {
        auto diag = error(loc);
        diag << "'" << name << "' is " << describeDecl(*d) << ", expected a stage";
        diag.attachNote(mloc(d->nameLoc)) << "'" << name << "' is declared here";
      }
    }
  }

  Program &prog;
  mlir::MLIRContext &ctx;
  FamilyDecl *curFamily = nullptr;
  std::set<std::string> reportedUndeclared;
  bool failed = false;
};

} // namespace

mlir::LogicalResult checkProgram(Program &program, mlir::MLIRContext &ctx) {
  return Sema(program, ctx).run();
}

} // namespace llmp::lang
