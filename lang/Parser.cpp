// SPDX-License-Identifier: Apache-2.0
/// The .llmp parser. Declarations, statements, `param` lines and stage fields end at a `;`
/// or at the end of a line; line breaks inside `(...)` and `[...]` do not end anything.
#include "lang/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"

namespace llmp::lang {

mlir::Location toMLIR(mlir::MLIRContext &ctx, const Loc &loc) {
  return mlir::FileLineColLoc::get(&ctx, loc.file, loc.line, loc.col);
}

Parser::Parser(llvm::StringRef buffer, llvm::StringRef file, mlir::MLIRContext &ctx)
    : lexer(buffer, file), ctx(ctx) {
  cur = lexer.next();
  ahead = lexer.next();
}

Parser::DepthGuard::DepthGuard(Parser &p) : p(p), ok(true) {
  if (++p.depth > kMaxNestingDepth) {
    ok = false;
    p.error(p.cur.loc, "nesting is too deep; at most " +
                           llvm::Twine(kMaxNestingDepth) + " levels are allowed");
  }
}

bool Parser::OperatorDepth::deeper(const Loc &loc) {
  if (++p.depth <= kMaxNestingDepth)
    return true;
  p.error(loc, "expression is nested too deeply (limit " + llvm::Twine(kMaxNestingDepth) +
                   " levels of operators and brackets)");
  return false;
}

void Parser::consume() {
  cur = std::move(ahead);
  ahead = lexer.next();
}

bool Parser::consumeIf(Tok kind) {
  if (cur.kind != kind)
    return false;
  consume();
  return true;
}

bool Parser::error(const Loc &loc, const llvm::Twine &message) {
  // Only the first error of a file is reported: later ones are usually its echoes.
  if (!failed) {
    auto diag = mlir::emitError(toMLIR(ctx, loc)) << message.str();
    noteImports(diag);
  }
  failed = true;
  return false;
}

void Parser::noteImports(mlir::InFlightDiagnostic &diag) {
  for (const Loc &imp : importedFrom)
    diag.attachNote(toMLIR(ctx, imp)) << "imported from here";
}

bool Parser::errorExpected(llvm::StringRef what, llvm::StringRef context) {
  if (cur.kind == Tok::Error)
    return error(cur.loc, cur.text);
  return error(cur.loc, "expected " + what + " " + context + ", found " + describe(cur));
}

bool Parser::expect(Tok kind, llvm::StringRef what, llvm::StringRef context) {
  if (consumeIf(kind))
    return true;
  return errorExpected(what, context);
}

bool Parser::expectIdent(std::string &out, Loc &loc, llvm::StringRef context) {
  if (cur.kind != Tok::Ident)
    return errorExpected("a name", context);
  out = cur.text;
  loc = cur.loc;
  consume();
  return true;
}

bool Parser::expectEnd(llvm::StringRef context) {
  if (consumeIf(Tok::Semi))
    return true;
  if (cur.kind == Tok::RBrace || cur.kind == Tok::Eof || cur.newlineBefore)
    return true;
  return errorExpected("';' or a new line", context);
}

/// module ::= decl*
std::unique_ptr<Module> Parser::parseModule() {
  auto module = std::make_unique<Module>();
  module->loc = cur.loc;
  while (cur.kind != Tok::Eof) {
    if (consumeIf(Tok::Semi))
      continue;
    DeclPtr decl = parseDecl();
    if (!decl)
      return nullptr;
    module->decls.push_back(std::move(decl));
  }
  if (failed)
    return nullptr;
  return module;
}

/// decl ::= import | tokenizer | dataset | model | family | loss | stage | pipeline
DeclPtr Parser::parseDecl() {
  DeclPtr decl;
  if (isIdent("import"))
    decl = parseImport();
  else if (isIdent("tokenizer"))
    decl = parseBinding(Decl::Kind::Tokenizer);
  else if (isIdent("dataset"))
    decl = parseBinding(Decl::Kind::Dataset);
  else if (isIdent("model"))
    decl = parseModel();
  else if (isIdent("loss") || isIdent("reward"))
    decl = parseLoss();
  else if (isIdent("stage"))
    decl = parseStage();
  else if (isIdent("pipeline"))
    decl = parsePipeline();
  else {
    errorExpected("a declaration ('import', 'tokenizer', 'dataset', 'model', 'loss', "
                  "'reward', 'stage' or 'pipeline')",
                  "at top level");
    return nullptr;
  }
  llvm::StringRef kw = keyword(decl ? decl->kind : Decl::Kind::Import);
  if (decl && decl->kind == Decl::Kind::Loss && static_cast<LossDecl &>(*decl).isReward)
    kw = "reward";
  if (!decl || !expectEnd(("after the " + kw + " declaration").str()))
    return nullptr;
  return decl;
}

/// import ::= 'import' ident ('.' ident)*
DeclPtr Parser::parseImport() {
  auto decl = std::make_unique<ImportDecl>(cur.loc);
  consume();
  do {
    std::string part;
    Loc loc;
    if (!expectIdent(part, loc, "in the import path"))
      return nullptr;
    decl->path.push_back(part);
  } while (consumeIf(Tok::Dot));
  return decl;
}

/// binding ::= ('tokenizer' | 'dataset') ident '=' expr
DeclPtr Parser::parseBinding(Decl::Kind kind) {
  auto decl = std::make_unique<BindingDecl>(kind, cur.loc);
  consume();
  std::string context = ("in the " + keyword(kind) + " declaration").str();
  if (!expectIdent(decl->name, decl->nameLoc, context) ||
      !expect(Tok::Assign, "'='", context))
    return nullptr;
  decl->value = parseExpr();
  if (!decl->value)
    return nullptr;
  return decl;
}

/// model  ::= 'model' ident '=' expr
/// family ::= 'model' ident '(' formals ')' '{' familyItem* '}'
DeclPtr Parser::parseModel() {
  Loc loc = cur.loc;
  consume();
  std::string name;
  Loc nameLoc;
  if (!expectIdent(name, nameLoc, "after 'model'"))
    return nullptr;
  if (consumeIf(Tok::Assign)) {
    auto decl = std::make_unique<BindingDecl>(Decl::Kind::Model, loc);
    decl->name = name;
    decl->nameLoc = nameLoc;
    decl->value = parseExpr();
    if (!decl->value)
      return nullptr;
    return decl;
  }
  if (cur.kind != Tok::LParen) {
    errorExpected("'=' (a model instance) or '(' (a model family)", "after the model name");
    return nullptr;
  }
  auto family = std::make_unique<FamilyDecl>(loc);
  family->name = name;
  family->nameLoc = nameLoc;
  consume();
  if (!parseFormals(family->formals, "in the model family's parameters") ||
      !parseFamilyBody(*family))
    return nullptr;
  return family;
}

/// familyItem ::= paramDecl | repeat | forward
bool Parser::parseFamilyBody(FamilyDecl &family) {
  if (!expect(Tok::LBrace, "'{'", "to open the model family body"))
    return false;
  while (!consumeIf(Tok::RBrace)) {
    if (consumeIf(Tok::Semi))
      continue;
    if (isIdent("param")) {
      if (!parseParamDecl(family, -1))
        return false;
    } else if (isIdent("repeat")) {
      if (!parseRepeat(family))
        return false;
    } else if (isIdent("forward")) {
      if (family.forward)
        return error(cur.loc, "model family '" + family.name +
                                  "' has more than one 'forward'");
      family.forward = parseForward();
      if (!family.forward)
        return false;
    } else {
      return errorExpected("'param', 'repeat', 'forward' or '}'", "in the model family body");
    }
    if (!expectEnd("after the model family item"))
      return false;
  }
  return true;
}

/// paramDecl ::= 'param' ident ':' '[' expr (',' expr)* ']' ('=' expr)?
bool Parser::parseParamDecl(FamilyDecl &family, int repeat) {
  ParamDecl param;
  param.loc = cur.loc;
  param.repeat = repeat;
  consume();
  Loc nameLoc;
  if (!expectIdent(param.name, nameLoc, "after 'param'") ||
      !expect(Tok::Colon, "':'", "after the parameter name") ||
      !expect(Tok::LBracket, "'['", "to open the parameter shape"))
    return false;
  do {
    ExprPtr dim = parseExpr();
    if (!dim)
      return false;
    param.shape.push_back(std::move(dim));
  } while (consumeIf(Tok::Comma));
  if (!expect(Tok::RBracket, "',' or ']'", "in the parameter shape"))
    return false;
  if (consumeIf(Tok::Assign)) {
    param.init = parseExpr();
    if (!param.init)
      return false;
  }
  family.params.push_back(std::move(param));
  return true;
}

/// repeat ::= 'repeat' ident 'as' ident '{' (paramDecl sep)* '}'
bool Parser::parseRepeat(FamilyDecl &family) {
  RepeatBlock block;
  block.loc = cur.loc;
  consume();
  Loc varLoc;
  if (!expectIdent(block.count, block.countLoc, "after 'repeat'"))
    return false;
  if (!isIdent("as"))
    return errorExpected("'as'", "after the repeat count");
  consume();
  if (!expectIdent(block.var, varLoc, "after 'as'") ||
      !expect(Tok::LBrace, "'{'", "to open the repeat block"))
    return false;
  int index = static_cast<int>(family.repeats.size());
  family.repeats.push_back(block);
  while (!consumeIf(Tok::RBrace)) {
    if (consumeIf(Tok::Semi))
      continue;
    if (!isIdent("param"))
      return errorExpected("'param' or '}'", "in the repeat block");
    if (!parseParamDecl(family, index) || !expectEnd("after the parameter"))
      return false;
  }
  return true;
}

/// forward ::= 'forward' '(' formals ')' '->' type block
std::unique_ptr<ForwardDecl> Parser::parseForward() {
  auto fwd = std::make_unique<ForwardDecl>();
  fwd->loc = cur.loc;
  consume();
  if (!expect(Tok::LParen, "'('", "after 'forward'") ||
      !parseFormals(fwd->inputs, "in the forward inputs") ||
      !expect(Tok::Arrow, "'->'", "after the forward inputs") ||
      !parseType(fwd->result, "as the forward result") ||
      !parseBlock(fwd->body, "the forward body"))
    return nullptr;
  return fwd;
}

/// formals ::= (formal (',' formal)*)? ')'
/// formal  ::= ident ':' type ('=' expr)?
bool Parser::parseFormals(std::vector<Formal> &formals, llvm::StringRef context) {
  if (consumeIf(Tok::RParen))
    return true;
  do {
    Formal f;
    if (!expectIdent(f.name, f.loc, context) ||
        !expect(Tok::Colon, "':'", "after the parameter name") ||
        !parseType(f.type, "as the parameter type"))
      return false;
    if (consumeIf(Tok::Assign)) {
      f.defaultValue = parseExpr();
      if (!f.defaultValue)
        return false;
    }
    formals.push_back(std::move(f));
  } while (consumeIf(Tok::Comma));
  return expect(Tok::RParen, "',' or ')'", context);
}

/// type ::= ident ('[' expr (',' expr)* ']')?
bool Parser::parseType(TypeRef &type, llvm::StringRef context) {
  if (!expectIdent(type.name, type.loc, context))
    return false;
  if (!consumeIf(Tok::LBracket))
    return true;
  type.isTensor = true;
  do {
    ExprPtr dim = parseExpr();
    if (!dim)
      return false;
    type.dims.push_back(std::move(dim));
  } while (consumeIf(Tok::Comma));
  return expect(Tok::RBracket, "',' or ']'", "in the tensor shape");
}

/// block ::= '{' (stmt sep)* '}'
bool Parser::parseBlock(std::vector<StmtPtr> &body, llvm::StringRef context) {
  DepthGuard guard(*this);
  if (!guard.ok)
    return false;
  if (!expect(Tok::LBrace, "'{'", ("to open " + context).str()))
    return false;
  while (!consumeIf(Tok::RBrace)) {
    if (consumeIf(Tok::Semi))
      continue;
    if (cur.kind == Tok::Eof)
      return errorExpected("'}'", ("to close " + context).str());
    StmtPtr stmt = parseStmt();
    if (!stmt)
      return false;
    body.push_back(std::move(stmt));
    if (!expectEnd("after the statement"))
      return false;
  }
  return true;
}

/// stmt ::= ident '=' expr | 'for' ident 'in' ident block | 'return' expr
StmtPtr Parser::parseStmt() {
  Loc loc = cur.loc;
  if (isIdent("return")) {
    consume();
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::Return, loc);
    stmt->value = parseExpr();
    return stmt->value ? std::move(stmt) : nullptr;
  }
  if (isIdent("for") && ahead.kind == Tok::Ident) {
    consume();
    auto stmt = std::make_unique<Stmt>(Stmt::Kind::For, loc);
    Loc varLoc;
    if (!expectIdent(stmt->name, varLoc, "after 'for'"))
      return nullptr;
    if (!isIdent("in")) {
      errorExpected("'in'", "after the loop variable");
      return nullptr;
    }
    consume();
    if (!expectIdent(stmt->range, stmt->rangeLoc, "after 'in'") ||
        !parseBlock(stmt->body, "the loop body"))
      return nullptr;
    return stmt;
  }
  auto stmt = std::make_unique<Stmt>(Stmt::Kind::Assign, loc);
  Loc nameLoc;
  if (cur.kind != Tok::Ident) {
    errorExpected("a statement ('name = expr', 'for' or 'return')", "in the forward body");
    return nullptr;
  }
  if (!expectIdent(stmt->name, nameLoc, "") ||
      !expect(Tok::Assign, "'='", "after the name in an assignment"))
    return nullptr;
  stmt->value = parseExpr();
  return stmt->value ? std::move(stmt) : nullptr;
}

/// loss   ::= 'loss' ident '(' formals ')' '->' type ('=' expr | block)
/// reward ::= 'reward' ident '(' formals ')' '->' type ('=' expr | block)
DeclPtr Parser::parseLoss() {
  auto decl = std::make_unique<LossDecl>(cur.loc);
  decl->isReward = isIdent("reward");
  std::string kw = decl->isReward ? "reward" : "loss";
  consume();
  if (!expectIdent(decl->name, decl->nameLoc, "after '" + kw + "'") ||
      !expect(Tok::LParen, "'('", "after the " + kw + " name") ||
      !parseFormals(decl->formals, "in the " + kw + " parameters") ||
      !expect(Tok::Arrow, "'->'", "after the " + kw + " parameters") ||
      !parseType(decl->result, "as the " + kw + " result"))
    return nullptr;
  if (cur.kind == Tok::LBrace) {
    if (!parseBlock(decl->stmts, "the " + kw + " body"))
      return nullptr;
    return decl;
  }
  if (!expect(Tok::Assign, "'=' or '{'", "before the " + kw + " body"))
    return nullptr;
  decl->body = parseExpr();
  if (!decl->body)
    return nullptr;
  return decl;
}

/// stage ::= 'stage' ident (':' ident)? '{' (field sep)* '}'
/// field ::= ident ':' fieldValue
DeclPtr Parser::parseStage() {
  auto decl = std::make_unique<StageDecl>(cur.loc);
  consume();
  if (!expectIdent(decl->name, decl->nameLoc, "after 'stage'"))
    return nullptr;
  if (consumeIf(Tok::Colon) &&
      !expectIdent(decl->kindName, decl->kindLoc, "as the stage kind after ':'"))
    return nullptr;
  Loc open = cur.loc;
  if (!expect(Tok::LBrace, "'{'", "to open the stage body"))
    return nullptr;
  while (!consumeIf(Tok::RBrace)) {
    if (consumeIf(Tok::Semi))
      continue;
    // A declaration keyword where a field should be, or the end of the file: the stage's
    // '}' is missing (a field name is always followed by ':').
    static const char *const declKeywords[] = {"import", "tokenizer", "dataset", "model",
                                               "loss",   "reward",    "stage",   "pipeline"};
    if (cur.kind == Tok::Eof ||
        (cur.kind == Tok::Ident && ahead.kind != Tok::Colon &&
         llvm::is_contained(declKeywords, cur.text))) {
      if (!failed) {
        auto diag = mlir::emitError(toMLIR(ctx, cur.loc))
                    << "expected '}' to close stage '" << decl->name << "', found "
                    << describe(cur);
        diag.attachNote(toMLIR(ctx, open)) << "the stage body opens here";
        noteImports(diag);
      }
      failed = true;
      return nullptr;
    }
    if (cur.kind != Tok::Ident) {
      errorExpected("a field name or '}'", "in the stage body");
      return nullptr;
    }
    Field field;
    if (!expectIdent(field.name, field.loc, "") ||
        !expect(Tok::Colon, "':'", "after the field name"))
      return nullptr;
    field.value = parseFieldValue();
    if (!field.value || !expectEnd("after the stage field"))
      return nullptr;
    decl->fields.push_back(std::move(field));
  }
  return decl;
}

/// pipeline ::= 'pipeline' ident '=' ident ('->' ident)*
DeclPtr Parser::parsePipeline() {
  auto decl = std::make_unique<PipelineDecl>(cur.loc);
  consume();
  if (!expectIdent(decl->name, decl->nameLoc, "after 'pipeline'") ||
      !expect(Tok::Assign, "'='", "after the pipeline name"))
    return nullptr;
  do {
    std::string stage;
    Loc loc;
    if (!expectIdent(stage, loc, "as a pipeline stage"))
      return nullptr;
    decl->stages.emplace_back(stage, loc);
  } while (consumeIf(Tok::Arrow));
  return decl;
}

/// fieldValue ::= 'every' expr | expr ('x' expr)?
ExprPtr Parser::parseFieldValue() {
  if (isIdent("every") && ahead.kind != Tok::LParen && !ahead.newlineBefore) {
    auto e = std::make_unique<Expr>(Expr::Kind::Every, cur.loc);
    consume();
    ExprPtr n = parseExpr();
    if (!n)
      return nullptr;
    e->operands.push_back(std::move(n));
    return e;
  }
  ExprPtr value = parseExpr();
  if (!value || !isIdent("x") || cur.newlineBefore)
    return value;
  auto e = std::make_unique<Expr>(Expr::Kind::Batch, value->loc);
  consume();
  ExprPtr rhs = parseExpr();
  if (!rhs)
    return nullptr;
  e->operands.push_back(std::move(value));
  e->operands.push_back(std::move(rhs));
  return e;
}

/// expr ::= additive
ExprPtr Parser::parseExpr() {
  DepthGuard guard(*this);
  if (!guard.ok)
    return nullptr;
  return parseAdditive();
}

static ExprPtr makeBinary(std::string op, Loc loc, ExprPtr lhs, ExprPtr rhs) {
  auto e = std::make_unique<Expr>(Expr::Kind::Binary, loc);
  e->text = std::move(op);
  e->operands.push_back(std::move(lhs));
  e->operands.push_back(std::move(rhs));
  return e;
}

/// additive ::= multiplicative (('+' | '-') multiplicative)*
ExprPtr Parser::parseAdditive() {
  OperatorDepth nesting(*this);
  ExprPtr lhs = parseMultiplicative();
  while (lhs && (cur.kind == Tok::Plus || cur.kind == Tok::Minus)) {
    Token op = cur;
    if (!nesting.deeper(op.loc))
      return nullptr;
    consume();
    ExprPtr rhs = parseMultiplicative();
    if (!rhs)
      return nullptr;
    lhs = makeBinary(op.text, op.loc, std::move(lhs), std::move(rhs));
  }
  return lhs;
}

/// multiplicative ::= unary (('*' | '/' | '@') unary)*
ExprPtr Parser::parseMultiplicative() {
  OperatorDepth nesting(*this);
  ExprPtr lhs = parseUnary();
  while (lhs && (cur.kind == Tok::Star || cur.kind == Tok::Slash || cur.kind == Tok::At)) {
    Token op = cur;
    if (!nesting.deeper(op.loc))
      return nullptr;
    consume();
    ExprPtr rhs = parseUnary();
    if (!rhs)
      return nullptr;
    lhs = makeBinary(op.text, op.loc, std::move(lhs), std::move(rhs));
  }
  return lhs;
}

/// unary ::= '-' unary | postfix
ExprPtr Parser::parseUnary() {
  if (cur.kind != Tok::Minus)
    return parsePostfix();
  DepthGuard guard(*this);
  if (!guard.ok)
    return nullptr;
  auto e = std::make_unique<Expr>(Expr::Kind::Neg, cur.loc);
  consume();
  ExprPtr operand = parseUnary();
  if (!operand)
    return nullptr;
  // Fold negative literals so that `-1e-3` is one number.
  if (operand->kind == Expr::Kind::Int || operand->kind == Expr::Kind::Float) {
    operand->intValue = -operand->intValue;
    operand->floatValue = -operand->floatValue;
    operand->text = "-" + operand->text;
    operand->loc = e->loc;
    return operand;
  }
  e->operands.push_back(std::move(operand));
  return e;
}

/// postfix ::= primary ('.' ident)*
///           | ident '(' args ')'
ExprPtr Parser::parsePostfix() {
  ExprPtr e = parsePrimary();
  while (e && cur.kind == Tok::Dot) {
    consume();
    auto member = std::make_unique<Expr>(Expr::Kind::Member, cur.loc);
    Loc loc;
    if (!expectIdent(member->text, loc, "after '.'"))
      return nullptr;
    member->loc = e->loc;
    member->operands.push_back(std::move(e));
    e = std::move(member);
  }
  return e;
}

/// args ::= (arg (',' arg)*)? ')'
/// arg  ::= (ident ':')? expr
bool Parser::parseCallArgs(Expr &call) {
  if (consumeIf(Tok::RParen))
    return true;
  do {
    std::string name;
    Loc nameLoc = cur.loc;
    if (cur.kind == Tok::Ident && ahead.kind == Tok::Colon) {
      name = cur.text;
      consume();
      consume();
    }
    ExprPtr arg = parseExpr();
    if (!arg)
      return false;
    call.argNames.push_back(name);
    call.argNameLocs.push_back(nameLoc);
    call.operands.push_back(std::move(arg));
  } while (consumeIf(Tok::Comma));
  return expect(Tok::RParen, "',' or ')'", "in the arguments of '" + call.text + "'");
}

/// primary ::= int | float | string | ident | ident '(' args | '(' expr (',' expr)* ')'
///           | '[' (expr (',' expr)*)? ']'
ExprPtr Parser::parsePrimary() {
  Loc loc = cur.loc;
  switch (cur.kind) {
  case Tok::Int: {
    auto e = std::make_unique<Expr>(Expr::Kind::Int, loc);
    e->intValue = cur.intValue;
    e->floatValue = cur.floatValue;
    e->text = cur.text;
    consume();
    return e;
  }
  case Tok::Float: {
    auto e = std::make_unique<Expr>(Expr::Kind::Float, loc);
    e->floatValue = cur.floatValue;
    e->text = cur.text;
    consume();
    return e;
  }
  case Tok::String: {
    auto e = std::make_unique<Expr>(Expr::Kind::String, loc);
    e->text = cur.text;
    consume();
    return e;
  }
  case Tok::Ident: {
    std::string name = cur.text;
    consume();
    if (cur.kind != Tok::LParen) {
      auto e = std::make_unique<Expr>(Expr::Kind::Name, loc);
      e->text = name;
      return e;
    }
    DepthGuard guard(*this);
    if (!guard.ok)
      return nullptr;
    consume();
    auto call = std::make_unique<Expr>(Expr::Kind::Call, loc);
    call->text = name;
    if (!parseCallArgs(*call))
      return nullptr;
    return call;
  }
  case Tok::LParen: {
    DepthGuard guard(*this);
    if (!guard.ok)
      return nullptr;
    consume();
    ExprPtr first = parseExpr();
    if (!first)
      return nullptr;
    if (consumeIf(Tok::RParen))
      return first;
    auto tuple = std::make_unique<Expr>(Expr::Kind::Tuple, loc);
    tuple->operands.push_back(std::move(first));
    while (consumeIf(Tok::Comma)) {
      ExprPtr next = parseExpr();
      if (!next)
        return nullptr;
      tuple->operands.push_back(std::move(next));
    }
    if (!expect(Tok::RParen, "',' or ')'", "in the parenthesised expression"))
      return nullptr;
    return tuple;
  }
  case Tok::LBracket: {
    DepthGuard guard(*this);
    if (!guard.ok)
      return nullptr;
    consume();
    auto list = std::make_unique<Expr>(Expr::Kind::List, loc);
    if (consumeIf(Tok::RBracket))
      return list;
    do {
      ExprPtr next = parseExpr();
      if (!next)
        return nullptr;
      list->operands.push_back(std::move(next));
    } while (consumeIf(Tok::Comma));
    if (!expect(Tok::RBracket, "',' or ']'", "in the list"))
      return nullptr;
    return list;
  }
  default:
    errorExpected("an expression", "here");
    return nullptr;
  }
}

} // namespace llmp::lang
