// SPDX-License-Identifier: Apache-2.0
/// AST -> llmp dialect. The forward body is interpreted over values: tensors become SSA
/// values, numbers (model arguments, literals) stay compile-time constants that end up as
/// op attributes, and `for b in layers` runs once per layer with `b` bound to the layer
/// index, so the emitted function is straight-line code over static shapes.
#include "compiler/Frontend/LLMPGen.h"

#include "compiler/Dialect/LLMP/IR/LLMPOps.h"
#include "compiler/Dialect/LLMP/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace llmp {

using namespace lang;

void registerFrontendDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::func::FuncDialect, mlir::llmp::LLMPDialect>();
}

static const PipelineDecl *pipelineOf(const Program &program, llvm::StringRef stage) {
  for (const DeclPtr &d : program.main().decls)
    if (d->kind == Decl::Kind::Pipeline)
      for (const auto &[name, loc] : static_cast<const PipelineDecl &>(*d).stages)
        if (name == stage)
          return static_cast<const PipelineDecl *>(d.get());
  return nullptr;
}

/// Appends the parameters of `m` to `plan.params`, in flat-buffer order, with their
/// initialisers.
static void fillParams(const ModelSpec &m, lrt::StagePlan &plan) {
  for (const ConcreteParam &cp : m.params) {
    lrt::ParamInfo p;
    p.name = cp.path;
    p.shape = cp.shape;
    p.offset = cp.offset;
    p.numel = cp.numel;
    p.decay = cp.decay;
    const Expr *init = cp.decl->init.get();
    if (init && init->kind == Expr::Kind::Name) {
      p.init = init->text == "ones" ? lrt::InitKind::Ones : lrt::InitKind::Zeros;
    } else {
      p.init = lrt::InitKind::Normal;
      if (init && init->operands.size() == 2) {
        const Expr *mean = init->arg("mean") ? init->arg("mean") : init->operands[0].get();
        const Expr *sd = init->arg("std") ? init->arg("std") : init->operands[1].get();
        p.mean = static_cast<float>(mean->floatValue);
        p.std = static_cast<float>(sd->floatValue);
      }
    }
    plan.params.push_back(std::move(p));
  }
}

/// Resets `plan` and fills what every compiled stage shares: names, the parameter layout
/// and the model's dimensions (context defaults to the stage's sequence length).
static void fillModelPlan(const Program &program, llvm::StringRef stageName,
                          const StageInfo &info, lrt::StagePlan &plan) {
  const ModelSpec &m = *info.model;
  plan = lrt::StagePlan();
  if (const PipelineDecl *p = pipelineOf(program, stageName))
    plan.pipeline = p->name;
  plan.stage = stageName.str();
  plan.model = m.decl->name;
  fillParams(m, plan);
  plan.numParams = m.numParams;
  plan.vocab = m.get("vocab");
  plan.context = m.get("context", info.seqLen);
  plan.dim = m.get("dim");
  plan.layers = m.get("layers");
}

mlir::LogicalResult fillStagePlan(const Program &program, llvm::StringRef stageName,
                                  lrt::StagePlan &plan) {
  auto it = program.stageInfo.find(stageName.str());
  if (it == program.stageInfo.end())
    return mlir::failure();
  const StageInfo &info = it->second;
  fillModelPlan(program, stageName, info, plan);
  // `batch: G x T` with `ranks: R`: each rank's steps take G / R rows (Sema checks that R
  // divides G).
  plan.ranks = std::max<int64_t>(1, info.ranks);
  plan.batch = info.batch / plan.ranks;
  plan.seqLen = info.seqLen;
  plan.accumulate = info.accumulate;
  plan.steps = info.steps;
  plan.evalEvery = info.evalEvery;
  plan.evalBatches = info.evalBatches;
  plan.warmup = info.warmup;
  plan.lr = info.lr;
  plan.minLr = info.minLr;
  plan.beta1 = info.beta1;
  plan.beta2 = info.beta2;
  plan.eps = info.eps;
  plan.weightDecay = info.weightDecay;
  plan.gradClip = info.gradClip;
  plan.seed = info.seed;
  plan.data.name = info.dataset->name;
  plan.data.path = info.dataPath;
  plan.data.format = info.dataFormat;
  plan.data.split = info.split;
  if (info.data) {
    plan.data.keys = info.data->keys;
    plan.data.trainOnAll = info.data->trainOn == "all";
    plan.data.correctOnly = info.data->keep == "correct";
  }
  plan.kind = info.kind;
  plan.tokenizer.name = info.tokenizer->name;
  plan.tokenizer.kind = info.tokenizer->value->text;
  plan.tokenizer.vocabSize = info.vocab;
  if (auto tok = program.tokenizers.find(info.tokenizer->name); tok != program.tokenizers.end())
    plan.tokenizer.path = tok->second.path;
  plan.packing = info.packing;
  plan.precision = info.precision;
  return mlir::success();
}

namespace {

/// A value of the forward interpreter.
struct Val {
  mlir::Value tensor; ///< set for tensors
  double number = 0;  ///< for numbers and booleans
  int layer = -1;     ///< for loop variables
  bool isTensor() const { return static_cast<bool>(tensor); }
};

/// The functions the frontend emits from a model's forward.
enum class Fn {
  Loss,    ///< @loss(params, tokens, targets[, segments]) -> f32
  Logits,  ///< @logits(params, tokens[, segments]) -> logits (B, T, V)
  Prefill, ///< @prefill(params, tokens (B, P), lengths (B), k_cache, v_cache)
           ///<   -> (logits of each row's last token (B, V), k_cache, v_cache)
  Decode,  ///< @decode(params, tokens (B), positions (B), k_cache, v_cache)
           ///<   -> (logits (B, V), k_cache, v_cache)
};

class Gen {
public:
  Gen(mlir::MLIRContext &ctx, const StageInfo &info)
      : ctx(ctx), b(&ctx), info(info), m(*info.model), f(*m.family) {}

  /// Emits `@loss` (with `targets`) or `@logits` for tokens of shape [batch, seq].
  mlir::LogicalResult emitFunc(mlir::ModuleOp module, bool isLoss, int64_t batch, int64_t seq) {
    return emitFunc(module, isLoss ? Fn::Loss : Fn::Logits, batch, seq);
  }

  /// Emits `kind` (see Fn) for tokens of shape [batch, seq] (seq: the prompt length P of
  /// @prefill; 1 for @decode).
  mlir::LogicalResult emitFunc(mlir::ModuleOp module, Fn kind, int64_t batch, int64_t seq) {
    const bool isLoss = kind == Fn::Loss;
    const bool cached = kind == Fn::Prefill || kind == Fn::Decode;
    const ForwardDecl &fwd = *f.forward;
    llvm::SmallVector<mlir::Type> argTypes;
    for (const ConcreteParam &p : m.params)
      argTypes.push_back(f32(p.shape));
    auto ids = mlir::RankedTensorType::get({batch, seq}, b.getI32Type());
    auto rowIds = mlir::RankedTensorType::get({batch}, b.getI32Type());
    argTypes.push_back(kind == Fn::Decode ? rowIds : ids);
    if (isLoss)
      argTypes.push_back(ids);
    // A packing stage's rows hold several documents: `segments` (B, T) gives each token's
    // document index, which masks attention across documents and restarts positions.
    if (info.packing && !cached)
      argTypes.push_back(ids);
    // The KV cache: (layers, B, kv_heads, context, head size) for keys and for values.
    mlir::RankedTensorType cacheType;
    if (cached) {
      int64_t heads = m.get("heads"), layers = m.get("layers"), context = m.get("context");
      int64_t kv = m.get("kv_heads", heads), dim = m.get("dim");
      if (heads <= 0 || layers <= 0 || context <= 0 || dim % heads != 0) {
        mlir::emitError(toMLIR(ctx, fwd.loc))
            << "a KV cache needs the model arguments 'layers', 'heads', 'dim' and 'context' "
               "(model '"
            << m.decl->name << "')";
        return mlir::failure();
      }
      cacheType = f32({layers, batch, kv, context, dim / heads});
      argTypes.push_back(rowIds); // lengths (prefill) or positions (decode)
      argTypes.append({cacheType, cacheType});
    }
    llvm::SmallVector<mlir::Type> resultTypes;
    if (isLoss)
      resultTypes.push_back(f32({}));
    else if (cached)
      resultTypes.append({f32({batch, m.get("vocab")}), cacheType, cacheType});
    else
      resultTypes.push_back(f32({batch, seq, m.get("vocab")}));
    b.setInsertionPointToEnd(module.getBody());
    mlir::Location fnLoc = toMLIR(ctx, isLoss ? info.loss->loc : fwd.loc);
    static const char *names[] = {"loss", "logits", "prefill", "decode"};
    auto fn = mlir::func::FuncOp::create(b, fnLoc, names[static_cast<int>(kind)],
                                         b.getFunctionType(argTypes, resultTypes));
    for (size_t i = 0; i < m.params.size(); ++i) {
      const ConcreteParam &p = m.params[i];
      fn.setArgAttr(i, "llmp.param", b.getStringAttr(p.path));
      fn.setArgAttr(i, "llmp.offset", b.getI64IntegerAttr(p.offset));
      if (p.decay)
        fn.setArgAttr(i, "llmp.decay", b.getUnitAttr());
    }
    if (isLoss)
      fn->setAttr("llmp.differentiate", b.getUnitAttr());
    tagLayers = isLoss && info.recompute != "none";
    mlir::Block *entry = fn.addEntryBlock();
    // Arguments point at their declarations: `param` lines, the forward's token input and
    // the loss's targets.
    for (size_t i = 0; i < m.params.size(); ++i)
      entry->getArgument(i).setLoc(toMLIR(ctx, m.params[i].decl->loc));
    entry->getArgument(m.params.size()).setLoc(toMLIR(ctx, fwd.inputs[0].loc));
    if (isLoss)
      entry->getArgument(m.params.size() + 1).setLoc(toMLIR(ctx, info.loss->formals[1].loc));
    segments = nullptr;
    positions = nullptr;
    kCache = vCache = cacheStart = nullptr;
    cacheLayer = 0;
    const unsigned dataArg = m.params.size();
    if (cached) {
      // Arguments after the tokens: lengths / positions, k_cache, v_cache.
      fn.setArgAttr(dataArg + 2, "llmp.kv_cache", b.getStringAttr("k"));
      fn.setArgAttr(dataArg + 3, "llmp.kv_cache", b.getStringAttr("v"));
      for (unsigned i = 1; i < 4; ++i)
        entry->getArgument(dataArg + i).setLoc(toMLIR(ctx, fwd.loc));
      kCache = entry->getArgument(dataArg + 2);
      vCache = entry->getArgument(dataArg + 3);
    }
    if (info.packing && !cached) {
      segments = entry->getArguments().back();
      segments.setLoc(toMLIR(ctx, info.decl->loc));
    }
    b.setInsertionPointToStart(entry);
    params.clear();
    for (size_t i = 0; i < m.params.size(); ++i)
      params[{m.params[i].layer, m.params[i].decl->name}] = entry->getArgument(i);
    env.clear();
    for (auto &[name, v] : m.args)
      env[name] = Val{nullptr, v};
    mlir::Value tokens = entry->getArgument(dataArg);
    if (kind == Fn::Decode) {
      // One new token per row at positions[b]: tokens and positions become (B, 1), and
      // rope rotates each row by its own position.
      auto col = mlir::RankedTensorType::get({batch, 1}, b.getI32Type());
      mlir::Location l = toMLIR(ctx, fwd.loc);
      cacheStart = entry->getArgument(dataArg + 1);
      tokens = mlir::llmp::ReshapeOp::create(b, l, col, tokens);
      positions = mlir::llmp::ReshapeOp::create(b, l, col, cacheStart);
    }
    env[fwd.inputs[0].name] = Val{tokens};
    std::optional<Val> result;
    for (const StmtPtr &s : fwd.body)
      if (mlir::failed(stmt(*s, result)))
        return mlir::failure();
    if (!result || !result->isTensor())
      return mlir::failure();
    mlir::Value out = result->tensor;
    mlir::Location retLoc = *returnLoc;
    if (isLoss) {
      const LossDecl &l = *info.loss;
      env.clear();
      env[l.formals[0].name] = Val{out};
      env[l.formals[1].name] = Val{entry->getArgument(m.params.size() + 1)};
      // Number parameters take their defaults (Sema requires literal defaults).
      for (size_t i = 2; i < l.formals.size(); ++i) {
        const Formal &formal = l.formals[i];
        if (formal.type.isTensor) {
          mlir::emitError(toMLIR(ctx, formal.loc))
              << "loss '" << l.name << "' takes a mask ('" << formal.name
              << "'), which is not yet supported by the compiler";
          return mlir::failure();
        }
        const Expr &d = *formal.defaultValue;
        double v = d.kind == Expr::Kind::Neg ? -d.operands[0]->floatValue : d.floatValue;
        env[formal.name] = Val{nullptr, v};
      }
      const Expr *body = l.body.get();
      for (const StmtPtr &st : l.stmts) {
        if (st->kind == Stmt::Kind::Return) {
          body = st->value.get();
          break;
        }
        auto v = expr(*st->value);
        if (mlir::failed(v))
          return mlir::failure();
        env[st->name] = *v;
      }
      auto lossVal = expr(*body);
      if (mlir::failed(lossVal))
        return mlir::failure();
      out = lossVal->tensor;
      retLoc = toMLIR(ctx, body->loc);
    }
    if (cached) {
      if (cacheLayer != mlir::cast<mlir::RankedTensorType>(kCache.getType()).getDimSize(0)) {
        mlir::emitError(toMLIR(ctx, fwd.loc))
            << "a KV cache needs one causal attention per layer, found " << cacheLayer
            << " for " << m.get("layers") << " layers";
        return mlir::failure();
      }
      // Logits of the token whose successor comes next: each row's last prompt token
      // (prefill), the one new token (decode).
      mlir::Value rowLengths = kind == Fn::Prefill ? entry->getArgument(dataArg + 1) : nullptr;
      auto rowLogits = f32({batch, m.get("vocab")});
      if (rowLengths)
        out = mlir::llmp::LastTokenOp::create(b, retLoc, rowLogits, out, rowLengths);
      else
        out = mlir::llmp::ReshapeOp::create(b, retLoc, rowLogits, out);
      mlir::func::ReturnOp::create(b, retLoc, mlir::ValueRange{out, kCache, vCache});
      return mlir::success();
    }
    mlir::func::ReturnOp::create(b, retLoc, out);
    return mlir::success();
  }

private:
  mlir::RankedTensorType f32(llvm::ArrayRef<int64_t> shape) {
    return mlir::RankedTensorType::get(shape, b.getF32Type());
  }
  static llvm::ArrayRef<int64_t> shapeOf(mlir::Value v) {
    return mlir::cast<mlir::RankedTensorType>(v.getType()).getShape();
  }
  mlir::Location loc(const Expr &e) { return toMLIR(ctx, e.loc); }

  /// Points an error inside a model family at the user's arguments that caused it, e.g.
  /// `heads: 3` in `model m = llama(...)`.
  void noteModelArgs(mlir::InFlightDiagnostic &diag, llvm::ArrayRef<const char *> names) {
    if (!m.decl || !m.decl->value)
      return;
    for (const char *name : names)
      if (const Expr *a = m.decl->value->arg(name))
        diag.attachNote(loc(*a)) << "'" << name << "' is set to " << printExpr(*a)
                                 << " in model '" << m.decl->name << "'";
  }

  mlir::LogicalResult stmt(const Stmt &s, std::optional<Val> &result) {
    switch (s.kind) {
    case Stmt::Kind::Assign: {
      auto v = expr(*s.value);
      if (mlir::failed(v))
        return mlir::failure();
      env[s.name] = *v;
      return mlir::success();
    }
    case Stmt::Kind::Return: {
      auto v = expr(*s.value);
      if (mlir::failed(v))
        return mlir::failure();
      result = *v;
      returnLoc = toMLIR(ctx, s.loc);
      return mlir::success();
    }
    case Stmt::Kind::For: {
      int64_t count = m.get(s.range);
      mlir::Block *block = b.getInsertionBlock();
      for (int64_t layer = 0; layer < count; ++layer) {
        env[s.name] = Val{nullptr, 0, static_cast<int>(layer)};
        mlir::Operation *before = block->empty() ? nullptr : &block->back();
        for (const StmtPtr &inner : s.body)
          if (mlir::failed(stmt(*inner, result)))
            return mlir::failure();
        // With `recompute:`, @loss's ops of each iteration carry `llmp.layer = i`: the
        // layer llmp-recompute recomputes them with (compiler.md).
        if (tagLayers)
          for (auto it = before ? std::next(before->getIterator()) : block->begin();
               it != block->end(); ++it)
            it->setAttr("llmp.layer", b.getI64IntegerAttr(layer));
      }
      env.erase(s.name);
      return mlir::success();
    }
    }
    return mlir::failure();
  }

  mlir::FailureOr<Val> expr(const Expr &e) {
    switch (e.kind) {
    case Expr::Kind::Int:
    case Expr::Kind::Float:
      return Val{nullptr, e.floatValue};
    case Expr::Kind::Name: {
      if (e.text == "true" || e.text == "false")
        return Val{nullptr, e.text == "true" ? 1.0 : 0.0};
      auto it = env.find(e.text);
      if (it != env.end())
        return it->second;
      auto pit = params.find({-1, e.text});
      if (pit != params.end())
        return Val{pit->second};
      break;
    }
    case Expr::Kind::Member: {
      auto base = expr(*e.operands[0]);
      if (mlir::failed(base))
        return mlir::failure();
      auto pit = params.find({base->layer, e.text});
      if (pit != params.end())
        return Val{pit->second};
      break;
    }
    case Expr::Kind::Neg: {
      auto v = expr(*e.operands[0]);
      if (mlir::failed(v))
        return mlir::failure();
      if (v->isTensor())
        return unsupported(e, "unary '-' on tensors");
      return Val{nullptr, -v->number};
    }
    case Expr::Kind::Binary:
      return binary(e);
    case Expr::Kind::Call:
      return call(e);
    default:
      break;
    }
    // Sema accepted the program, so this is a frontend bug, not a user error.
    mlir::emitError(loc(e)) << "internal error: cannot lower '" << printExpr(e) << "'";
    return mlir::failure();
  }

  /// Reports a construct Sema accepts but the llmp dialect cannot express yet.
  mlir::FailureOr<Val> unsupported(const Expr &e, const std::string &what) {
    mlir::emitError(loc(e)) << what << " is not yet supported by the compiler";
    return mlir::failure();
  }

  mlir::FailureOr<Val> binary(const Expr &e) {
    auto lhs = expr(*e.operands[0]);
    if (mlir::failed(lhs))
      return mlir::failure();
    auto rhs = expr(*e.operands[1]);
    if (mlir::failed(rhs))
      return mlir::failure();
    const std::string &op = e.text;
    if (lhs->isTensor() != rhs->isTensor())
      return unsupported(e, "operator '" + op + "' between a tensor and a number");
    if (lhs->isTensor() && (op == "-" || op == "/"))
      return unsupported(e, "operator '" + op + "' on tensors");
    if (lhs->isTensor() && op != "@" && shapeOf(lhs->tensor) != shapeOf(rhs->tensor))
      return unsupported(e, "broadcasting in '" + op + "'");
    if (!lhs->isTensor()) {
      double a = lhs->number, c = rhs->number;
      return Val{nullptr, op == "+"   ? a + c
                          : op == "-" ? a - c
                          : op == "*" ? a * c
                                      : a / c};
    }
    mlir::Location l = loc(e);
    mlir::Value a = lhs->tensor, c = rhs->tensor;
    if (op == "+")
      return Val{mlir::llmp::AddOp::create(b, l, a.getType(), a, c).getResult()};
    if (op == "*")
      return Val{mlir::llmp::MulOp::create(b, l, a.getType(), a, c).getResult()};
    // `x @ W`: matmul is 2-D, so a rank-3 `x` is flattened to rows and restored.
    llvm::SmallVector<int64_t> shape(shapeOf(a));
    int64_t n = shapeOf(c)[1];
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i)
      rows *= shape[i];
    mlir::Value x = a;
    if (shape.size() != 2)
      x = mlir::llmp::ReshapeOp::create(b, l, f32({rows, shape.back()}), a).getResult();
    mlir::Value y = mlir::llmp::MatmulOp::create(b, l, f32({rows, n}), x, c, mlir::UnitAttr(),
                                                 mlir::UnitAttr())
                        .getResult();
    shape.back() = n;
    if (shape.size() != 2)
      y = mlir::llmp::ReshapeOp::create(b, l, f32(shape), y).getResult();
    return Val{y};
  }

  /// Binds call arguments to `names` by position, then by name.
  static std::vector<const Expr *> bind(const Expr &call, llvm::ArrayRef<const char *> names) {
    std::vector<const Expr *> out(names.size(), nullptr);
    size_t next = 0;
    for (size_t i = 0; i < call.operands.size(); ++i) {
      size_t slot = next;
      if (call.argNames[i].empty())
        ++next;
      else
        for (size_t j = 0; j < names.size(); ++j)
          if (call.argNames[i] == names[j])
            slot = j;
      if (slot < out.size())
        out[slot] = call.operands[i].get();
    }
    return out;
  }

  mlir::FailureOr<Val> call(const Expr &e) {
    // The builtins the llmp dialect has ops for. Sema accepts more (lang/Sema.cpp's table);
    // those are reported at the call until the dialect grows the ops.
    static const std::map<std::string, std::vector<const char *>> signatures = {
        {"embedding", {"table", "ids"}},
        {"rmsnorm", {"x", "weight", "eps"}},
        {"rope", {"x", "heads", "theta"}},
        {"attention", {"q", "k", "v", "heads", "kv_heads", "causal"}},
        {"silu", {"x"}},
        {"transpose", {"x"}},
        {"cross_entropy", {"logits", "targets"}},
        {"target_mean", {"x", "targets"}},
        {"mean", {"x", "axis", "keepdims"}},
    };
    auto sig = signatures.find(e.text);
    if (sig == signatures.end() || (e.text == "mean" && e.operands.size() > 1))
      return unsupported(e, "'" + e.text + "'" + (e.text == "mean" ? " with an 'axis'" : ""));
    std::vector<const Expr *> argExprs = bind(e, sig->second);
    std::vector<Val> args(argExprs.size());
    std::vector<bool> given(argExprs.size(), false);
    for (size_t i = 0; i < argExprs.size(); ++i) {
      if (!argExprs[i])
        continue;
      auto v = expr(*argExprs[i]);
      if (mlir::failed(v))
        return mlir::failure();
      args[i] = *v;
      given[i] = true;
    }
    mlir::Location l = loc(e);
    const std::string &name = e.text;
    mlir::Value x = args[0].tensor;
    if (name == "embedding") {
      llvm::SmallVector<int64_t> shape(shapeOf(args[1].tensor));
      shape.push_back(shapeOf(x)[1]);
      return Val{mlir::llmp::EmbeddingOp::create(b, l, f32(shape), x, args[1].tensor).getResult()};
    }
    if (name == "rmsnorm") {
      double eps = given[2] ? args[2].number : 1e-5;
      return Val{mlir::llmp::RMSNormOp::create(b, l, x.getType(), x, args[1].tensor,
                                               b.getF32FloatAttr(eps))
                     .getResult()};
    }
    if (name == "rope" || name == "attention") {
      int64_t heads = static_cast<int64_t>(args[name == "rope" ? 1 : 3].number);
      int64_t d = shapeOf(x).back();
      if (heads <= 0 || d % heads != 0) {
        auto diag = mlir::emitError(l) << "'heads' (" << heads
                                       << ") must divide the model dimension " << d << " in '"
                                       << name << "'";
        noteModelArgs(diag, {"heads", "dim"});
        return mlir::failure();
      }
      if (name == "rope") {
        if ((d / heads) % 2 != 0) {
          mlir::emitError(l) << "'rope' needs an even head dimension, found " << d / heads
                             << " (dimension " << d << " / " << heads << " heads)";
          return mlir::failure();
        }
        double theta = given[2] ? args[2].number : 10000.0;
        return Val{mlir::llmp::RopeOp::create(b, l, x.getType(), x, positionsAt(l),
                                              b.getI64IntegerAttr(heads),
                                              b.getF32FloatAttr(theta), mlir::UnitAttr())
                       .getResult()};
      }
      int64_t kvHeads = given[4] ? static_cast<int64_t>(args[4].number) : heads;
      int64_t kvWidth = shapeOf(args[1].tensor).back();
      if (kvHeads <= 0 || heads % kvHeads != 0 || kvWidth != d / heads * kvHeads) {
        auto diag = mlir::emitError(l)
                    << "'kv_heads' (" << kvHeads << ") must divide 'heads' (" << heads
                    << ") and the keys must be " << d / heads << " x kv_heads wide, found "
                    << kvWidth << " in 'attention'";
        noteModelArgs(diag, {"heads", "kv_heads", "dim"});
        return mlir::failure();
      }
      bool causal = given[5] ? args[5].number != 0 : true;
      if (kCache)
        return cachedAttention(l, x, args[1].tensor, args[2].tensor, heads, kvHeads, causal);
      // Packed rows: causal attention stays inside each document (block-diagonal mask).
      mlir::Value seg = causal ? segments : mlir::Value();
      return Val{mlir::llmp::AttentionOp::create(
                     b, l, x.getType(), x, args[1].tensor, args[2].tensor, seg,
                     b.getI64IntegerAttr(heads),
                     kvHeads != heads ? b.getI64IntegerAttr(kvHeads) : mlir::IntegerAttr(),
                     causal ? b.getUnitAttr() : mlir::UnitAttr())
                     .getResult()};
    }
    if (name == "silu")
      return Val{mlir::llmp::SiluOp::create(b, l, x.getType(), x).getResult()};
    if (name == "transpose") {
      auto s = shapeOf(x);
      return Val{mlir::llmp::TransposeOp::create(b, l, f32({s[1], s[0]}), x).getResult()};
    }
    if (name == "cross_entropy") {
      auto s = shapeOf(x);
      return Val{mlir::llmp::CrossEntropyOp::create(b, l, f32(s.drop_back()), x,
                                                    args[1].tensor)
                     .getResult()};
    }
    if (name == "target_mean")
      return Val{mlir::llmp::TargetMeanOp::create(b, l, f32({}), x, args[1].tensor).getResult()};
    return Val{mlir::llmp::MeanOp::create(b, l, f32({}), x).getResult()};
  }

  /// Attention in @prefill / @decode: the keys and values (k, v: (B, T, KV*d)) are written
  /// into the caches at layer `cacheLayer` (at positions 0.. in prefill, at each row's
  /// position in decode); prefill attends over its own tokens (causal, as in training),
  /// decode over the cache (llmp.cache_attention: each row up to its own position).
  mlir::FailureOr<Val> cachedAttention(mlir::Location l, mlir::Value q, mlir::Value k,
                                       mlir::Value v, int64_t heads, int64_t kvHeads,
                                       bool causal) {
    auto cache = mlir::cast<mlir::RankedTensorType>(kCache.getType());
    llvm::ArrayRef<int64_t> cs = cache.getShape();
    if (!causal || cacheLayer >= cs[0] || kvHeads != cs[2] || shapeOf(k).back() != cs[2] * cs[4]) {
      mlir::emitError(l) << "a KV cache of " << cs[0] << " layers x " << cs[2] << " heads x "
                         << cs[4] << " needs one causal attention per layer with as many "
                         << "key/value heads; found attention " << cacheLayer << " with "
                         << kvHeads << " key/value heads" << (causal ? "" : ", not causal");
      return mlir::failure();
    }
    auto layer = b.getI64IntegerAttr(cacheLayer++);
    kCache = mlir::llmp::KVCacheWriteOp::create(b, l, cache, kCache, k, cacheStart, layer);
    vCache = mlir::llmp::KVCacheWriteOp::create(b, l, cache, vCache, v, cacheStart, layer);
    auto kvAttr = kvHeads != heads ? b.getI64IntegerAttr(kvHeads) : mlir::IntegerAttr();
    if (!cacheStart)
      return Val{mlir::llmp::AttentionOp::create(b, l, q.getType(), q, k, v, mlir::Value(),
                                                 b.getI64IntegerAttr(heads), kvAttr,
                                                 b.getUnitAttr())
                     .getResult()};
    return Val{mlir::llmp::CacheAttentionOp::create(b, l, q.getType(), q, kCache, vCache,
                                                    cacheStart, layer,
                                                    b.getI64IntegerAttr(heads), kvAttr)
                   .getResult()};
  }

  /// Per-token positions for rope: null without packing, else the positions inside each
  /// document, derived once per function from `segments` (first use at `l`).
  mlir::Value positionsAt(mlir::Location l) {
    if (segments && !positions) {
      mlir::OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(segments);
      positions = mlir::llmp::PositionsOp::create(b, l, segments.getType(), segments);
    }
    return positions;
  }

  mlir::MLIRContext &ctx;
  mlir::OpBuilder b;
  mlir::Value segments;  ///< (B, T) document index per token in packing stages, else null
  mlir::Value positions; ///< llmp.positions of `segments`, created on first use; in
                         ///< @decode each row's position (B, 1)
  mlir::Value kCache, vCache; ///< @prefill / @decode: the caches as written so far
  mlir::Value cacheStart;     ///< @decode: each row's position (B); null in @prefill
  int64_t cacheLayer = 0;     ///< attentions emitted so far (= the next cache layer)
  bool tagLayers = false;     ///< put `llmp.layer` on each `for` iteration's ops
  const StageInfo &info;
  const ModelSpec &m;
  const FamilyDecl &f;
  std::map<std::string, Val> env;
  std::optional<mlir::Location> returnLoc;
  std::map<std::pair<int, std::string>, mlir::Value> params; ///< (layer or -1, name)
};

} // namespace

/// A stage with `adapter: lora(...)`: fills plan.lora from Sema's StageInfo, rewrites
/// `module` with llmp-apply-lora on the targets Sema resolved (every base parameter frozen,
/// the adapters trainable; compiler/Dialect/LLMP/Transforms/ApplyLora.cpp), and reads the
/// new layout back into plan.params / numParams / frozenBytes from the rewritten arguments,
/// so that the plan and the module cannot disagree. The base keeps its initialisers; the
/// adapters follow it: lora_A KaimingUniform, lora_B Zeros.
static mlir::LogicalResult applyAdapter(mlir::ModuleOp module, const StageInfo &info,
                                        lrt::StagePlan &plan) {
  lrt::LoraSpec &spec = plan.lora;
  spec.enabled = true;
  spec.rank = info.loraRank;
  spec.alpha = info.loraAlpha > 0 ? info.loraAlpha : double(info.loraRank);
  spec.rslora = info.rslora;
  spec.scale = spec.rslora ? spec.alpha / std::sqrt(double(spec.rank)) : spec.alpha / double(spec.rank);
  spec.dropout = info.loraDropout;
  spec.targets.clear();
  for (const ConcreteParam *p : info.loraTargets)
    spec.targets.push_back(p->path);
  mlir::llmp::LLMPApplyLoraOptions o;
  o.rank = spec.rank;
  o.alpha = spec.alpha;
  o.rslora = spec.rslora;
  o.dropout = spec.dropout;
  o.targets.assign(spec.targets.begin(), spec.targets.end());
  o.seed = plan.seed;
  if (mlir::failed(mlir::llmp::applyLora(module, o)))
    return mlir::failure();
  mlir::func::FuncOp f = module.lookupSymbol<mlir::func::FuncOp>("loss");
  if (!f)
    f = module.lookupSymbol<mlir::func::FuncOp>("logits");
  std::map<std::string, lrt::ParamInfo> base;
  for (lrt::ParamInfo &p : plan.params)
    base[p.name] = std::move(p);
  plan.params.clear();
  for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
    auto name = f.getArgAttrOfType<mlir::StringAttr>(i, "llmp.param");
    if (!name)
      continue;
    auto ty = mlir::cast<mlir::RankedTensorType>(f.getArgument(i).getType());
    lrt::ParamInfo p;
    if (auto it = base.find(name.str()); it != base.end())
      p = it->second;
    p.name = name.str();
    p.shape.assign(ty.getShape().begin(), ty.getShape().end());
    p.numel = ty.getNumElements();
    if (auto off = f.getArgAttrOfType<mlir::IntegerAttr>(i, "llmp.byte_offset")) {
      p.frozen = true;
      p.byteOffset = off.getInt();
      p.byteSize = 4 * p.numel;
      p.storage = lrt::Storage::F32;
      p.offset = 0;
      p.decay = false;
    } else {
      p.offset = f.getArgAttrOfType<mlir::IntegerAttr>(i, "llmp.offset").getInt();
      p.decay = static_cast<bool>(f.getArgAttr(i, "llmp.decay"));
      p.init = llvm::StringRef(p.name).ends_with(".lora_A") ? lrt::InitKind::KaimingUniform
                                                            : lrt::InitKind::Zeros;
    }
    plan.params.push_back(std::move(p));
  }
  plan.numParams = module->getAttrOfType<mlir::IntegerAttr>("llmp.num_params").getInt();
  plan.frozenBytes = module->getAttrOfType<mlir::IntegerAttr>("llmp.frozen_bytes").getInt();
  return mlir::success();
}

/// A `precision: bf16` stage's modules carry `llmp.precision = "bf16"`: llmp-linalg-to-lrt
/// then calls the bf16 GEMM (kernels/cpu/MatmulBf16.h) for their matrix products.
static void setPrecision(mlir::ModuleOp module, const StageInfo &info) {
  if (info.precision != "fp32")
    module->setAttr("llmp.precision", mlir::StringAttr::get(module.getContext(), info.precision));
}

/// A stage with `recompute: attention | layers` emits its modules with `llmp.recompute`,
/// which schedules llmp-recompute on `@loss_grad` (its `for` iterations' ops carry
/// `llmp.layer`).
static void setRecompute(mlir::ModuleOp module, const StageInfo &info) {
  if (info.recompute != "none")
    module->setAttr("llmp.recompute", mlir::StringAttr::get(module.getContext(), info.recompute));
}

/// Reads the frozen layout of `module` (after llmp-quantize-base or llmp-bf16-base) back
/// into plan.params (byteOffset; Storage::NF4 and the blob's byteSize, or Storage::BF16 and
/// 2 bytes per element; the shape stays the weight's) and plan.frozenBytes.
static void readFrozenLayout(mlir::ModuleOp module, lrt::StagePlan &plan) {
  mlir::func::FuncOp f = module.lookupSymbol<mlir::func::FuncOp>("loss");
  if (!f)
    f = module.lookupSymbol<mlir::func::FuncOp>("logits");
  std::map<std::string, lrt::ParamInfo *> byName;
  for (lrt::ParamInfo &p : plan.params)
    byName[p.name] = &p;
  for (unsigned i = 0, e = f.getNumArguments(); i < e; ++i) {
    auto name = f.getArgAttrOfType<mlir::StringAttr>(i, "llmp.param");
    auto off = f.getArgAttrOfType<mlir::IntegerAttr>(i, "llmp.byte_offset");
    auto it = name ? byName.find(name.str()) : byName.end();
    if (!off || it == byName.end())
      continue;
    lrt::ParamInfo &p = *it->second;
    p.byteOffset = off.getInt();
    auto ty = mlir::cast<mlir::RankedTensorType>(f.getArgument(i).getType());
    if (f.getArgAttr(i, "llmp.nf4")) {
      p.storage = lrt::Storage::NF4;
      p.byteSize = ty.getNumElements();
    } else if (ty.getElementType().isBF16()) {
      p.storage = lrt::Storage::BF16;
      p.byteSize = 2 * ty.getNumElements();
    }
  }
  plan.frozenBytes = module->getAttrOfType<mlir::IntegerAttr>("llmp.frozen_bytes").getInt();
}

/// A stage with `base: nf4(block, double_quant)` (QLoRA), after applyAdapter: rewrites
/// `module` with llmp-quantize-base (the frozen linear weights become NF4 blobs read by
/// llmp.matmul_nf4; compiler/Dialect/LLMP/Transforms/QuantizeBase.cpp) and reads the new
/// frozen layout back into plan.params (byteOffset, Storage::NF4 and the blob's byteSize;
/// the shape stays the weight's) and plan.frozenBytes; fills plan.nf4.
static mlir::LogicalResult applyNf4Base(mlir::ModuleOp module, const StageInfo &info,
                                        lrt::StagePlan &plan) {
  plan.nf4 = lrt::Nf4Spec{true, info.nf4Block, info.doubleQuant};
  mlir::llmp::LLMPQuantizeBaseOptions o;
  o.block = info.nf4Block;
  o.doubleQuant = info.doubleQuant;
  if (mlir::failed(mlir::llmp::quantizeBase(module, o)))
    return mlir::failure();
  readFrozenLayout(module, plan);
  return mlir::success();
}

/// A LoRA stage with `precision: bf16` and an fp32 base, after applyAdapter: rewrites
/// `module` with llmp-bf16-base (the frozen linear weights become bf16 arguments, read by
/// llmp.matmul as its rhs; compiler/Dialect/LLMP/Transforms/Bf16Base.cpp) and reads the new
/// frozen layout back into plan.params (Storage::BF16, 2 bytes per element) and
/// plan.frozenBytes.
static mlir::LogicalResult applyBf16Base(mlir::ModuleOp module, lrt::StagePlan &plan) {
  if (mlir::failed(mlir::llmp::bf16Base(module)))
    return mlir::failure();
  readFrozenLayout(module, plan);
  return mlir::success();
}

/// Whether a LoRA stage stores its frozen linear weights in bf16 (applyBf16Base).
static bool bf16BaseStage(const StageInfo &info) {
  return info.lora && !info.nf4 && info.precision == "bf16";
}

mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitStage(mlir::MLIRContext &ctx, const Program &program, llvm::StringRef stageName,
          lrt::StagePlan &plan) {
  ctx.loadDialect<mlir::func::FuncDialect, mlir::llmp::LLMPDialect>();
  auto it = program.stageInfo.find(stageName.str());
  if (it == program.stageInfo.end()) {
    std::vector<std::string> names;
    for (const StageDecl *s : program.stages())
      names.push_back(s->name);
    auto diag = mlir::emitError(toMLIR(ctx, program.main().loc));
    diag << "no checked stage '" << stageName << "'";
    if (!names.empty())
      diag << "; the file declares " << llvm::join(names, ", ");
    return mlir::failure();
  }
  const StageInfo &info = it->second;
  // An `sft` stage without an adapter trains every parameter with the same `next_token`
  // loss as pretraining, on rows whose prompt targets are ignored: the same module.
  // With `adapter: lora(...)` the module is rewritten by llmp-apply-lora (applyAdapter),
  // and with `base: nf4(...)` then by llmp-quantize-base (applyNf4Base).
  if (info.kind != "pretrain" && info.kind != "sft") {
    mlir::emitError(toMLIR(ctx, info.decl->nameLoc))
        << "stage '" << stageName << "' (kind " << info.kind
        << ") is not yet supported by the compiler: 'pretrain' stages and 'sft' stages with "
           "full fine-tuning, a LoRA adapter or QLoRA are emitted today";
    return mlir::failure();
  }
  if (mlir::failed(fillStagePlan(program, stageName, plan)))
    return mlir::failure();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(toMLIR(ctx, info.decl->loc));
  mlir::OpBuilder b(&ctx);
  (*module)->setAttr("llmp.num_params", b.getI64IntegerAttr(info.model->numParams));
  setPrecision(*module, info);
  setRecompute(*module, info);
  Gen gen(ctx, info);
  if (mlir::failed(gen.emitFunc(*module, /*isLoss=*/true, plan.batch, info.seqLen)) ||
      mlir::failed(gen.emitFunc(*module, /*isLoss=*/false, 1, plan.context)))
    return mlir::failure();
  if (info.lora && mlir::failed(applyAdapter(*module, info, plan)))
    return mlir::failure();
  if (info.lora && info.nf4 && mlir::failed(applyNf4Base(*module, info, plan)))
    return mlir::failure();
  if (bf16BaseStage(info) && mlir::failed(applyBf16Base(*module, plan)))
    return mlir::failure();
  if (mlir::failed(mlir::verify(*module)))
    return mlir::failure();
  return module;
}

/// emitLogits, and with `cache` also @prefill and @decode (emitInference); `adapter`
/// false leaves a LoRA stage's adapter out (emitBaseInference).
static mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitModelFuncs(mlir::MLIRContext &ctx, const Program &program, llvm::StringRef stageName,
               lrt::StagePlan &plan, int64_t batch, int64_t prefillLen,
               lrt::KVCacheShape *cache, bool adapter = true) {
  ctx.loadDialect<mlir::func::FuncDialect, mlir::llmp::LLMPDialect>();
  auto it = program.stageInfo.find(stageName.str());
  if (it == program.stageInfo.end() || !it->second.model) {
    mlir::emitError(toMLIR(ctx, program.main().loc))
        << "no checked stage '" << stageName << "' with a model";
    return mlir::failure();
  }
  const StageInfo &info = it->second;
  fillModelPlan(program, stageName, info, plan);
  if (plan.context <= 0) {
    mlir::emitError(toMLIR(ctx, info.decl->nameLoc))
        << "model '" << plan.model << "' of stage '" << stageName << "' has no context length";
    return mlir::failure();
  }
  if (cache && (batch < 1 || prefillLen < 1 || prefillLen > plan.context)) {
    mlir::emitError(toMLIR(ctx, info.decl->nameLoc))
        << "generation with a KV cache needs a batch of at least 1 and a prompt length in [1, "
        << plan.context << "], found batch " << batch << " and prompt length " << prefillLen;
    return mlir::failure();
  }
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(toMLIR(ctx, info.decl->loc));
  mlir::OpBuilder b(&ctx);
  (*module)->setAttr("llmp.num_params", b.getI64IntegerAttr(info.model->numParams));
  setPrecision(*module, info);
  Gen gen(ctx, info);
  if (mlir::failed(gen.emitFunc(*module, /*isLoss=*/false, 1, plan.context)))
    return mlir::failure();
  if (cache) {
    if (mlir::failed(gen.emitFunc(*module, Fn::Prefill, batch, prefillLen)) ||
        mlir::failed(gen.emitFunc(*module, Fn::Decode, batch, 1)))
      return mlir::failure();
    auto prefill = module->lookupSymbol<mlir::func::FuncOp>("prefill");
    auto shape = mlir::cast<mlir::RankedTensorType>(
                     prefill.getArgument(prefill.getNumArguments() - 1).getType())
                     .getShape();
    *cache = lrt::KVCacheShape{shape[0], shape[1], shape[2], shape[3], shape[4], prefillLen};
  }
  if (adapter && info.lora && mlir::failed(applyAdapter(*module, info, plan)))
    return mlir::failure();
  if (adapter && info.lora && info.nf4 && mlir::failed(applyNf4Base(*module, info, plan)))
    return mlir::failure();
  if (adapter && bf16BaseStage(info) && mlir::failed(applyBf16Base(*module, plan)))
    return mlir::failure();
  if (mlir::failed(mlir::verify(*module)))
    return mlir::failure();
  return module;
}

mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitLogits(mlir::MLIRContext &ctx, const Program &program, llvm::StringRef stageName,
           lrt::StagePlan &plan) {
  return emitModelFuncs(ctx, program, stageName, plan, 0, 0, nullptr);
}

mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitInference(mlir::MLIRContext &ctx, const Program &program, llvm::StringRef stageName,
              int64_t batch, int64_t prefillLen, lrt::StagePlan &plan,
              lrt::KVCacheShape &cache) {
  return emitModelFuncs(ctx, program, stageName, plan, batch, prefillLen, &cache);
}

mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
emitBaseInference(mlir::MLIRContext &ctx, const Program &program, llvm::StringRef stageName,
                  int64_t batch, int64_t prefillLen, lrt::StagePlan &plan,
                  lrt::KVCacheShape &cache) {
  return emitModelFuncs(ctx, program, stageName, plan, batch, prefillLen, &cache,
                        /*adapter=*/false);
}

} // namespace llmp
