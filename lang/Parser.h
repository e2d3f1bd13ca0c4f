// SPDX-License-Identifier: Apache-2.0
/// The recursive-descent parser of .llmp files. Each `parse*` function has its grammar rule
/// above it in Parser.cpp. The parser stops at the first syntax error, after reporting it
/// through the MLIR diagnostic engine, so one mistake gives one error.
#pragma once

#include "lang/AST.h"
#include "lang/Lexer.h"

#include "llvm/ADT/Twine.h"

#include <memory>
#include <vector>

namespace mlir {
class InFlightDiagnostic;
} // namespace mlir

namespace llmp::lang {

/// The deepest nesting of expressions and blocks the parser accepts; deeper input gets a
/// diagnostic instead of exhausting the stack.
constexpr unsigned kMaxNestingDepth = 200;

/// Parses one buffer into a Module.
class Parser {
public:
  Parser(llvm::StringRef buffer, llvm::StringRef file, mlir::MLIRContext &ctx);

  /// Returns the module, or null after reporting a syntax error.
  std::unique_ptr<Module> parseModule();

  /// The `import`s that led to this file, innermost first; errors get a note at each.
  std::vector<Loc> importedFrom;

private:
  // Token stream.
  void consume();
  bool isIdent(llvm::StringRef text) const {
    return cur.kind == Tok::Ident && cur.text == text;
  }
  bool consumeIf(Tok kind);
  bool expect(Tok kind, llvm::StringRef what, llvm::StringRef context);
  bool expectIdent(std::string &out, Loc &loc, llvm::StringRef context);
  bool expectEnd(llvm::StringRef context);
  bool error(const Loc &loc, const llvm::Twine &message);
  void noteImports(mlir::InFlightDiagnostic &diag);
  bool errorExpected(llvm::StringRef what, llvm::StringRef context);

  // Declarations.
  DeclPtr parseDecl();
  DeclPtr parseImport();
  DeclPtr parseBinding(Decl::Kind kind);
  DeclPtr parseModel();
  bool parseFamilyBody(FamilyDecl &family);
  bool parseParamDecl(FamilyDecl &family, int repeat);
  bool parseRepeat(FamilyDecl &family);
  std::unique_ptr<ForwardDecl> parseForward();
  DeclPtr parseLoss();
  DeclPtr parseStage();
  DeclPtr parsePipeline();
  bool parseFormals(std::vector<Formal> &formals, llvm::StringRef context);
  bool parseType(TypeRef &type, llvm::StringRef context);
  bool parseBlock(std::vector<StmtPtr> &body, llvm::StringRef context);
  StmtPtr parseStmt();

  // Expressions.
  ExprPtr parseExpr();
  ExprPtr parseFieldValue();
  ExprPtr parseAdditive();
  ExprPtr parseMultiplicative();
  ExprPtr parseUnary();
  ExprPtr parsePostfix();
  ExprPtr parsePrimary();
  bool parseCallArgs(Expr &call);

  /// Counts nesting; reports once when the bound is exceeded.
  struct DepthGuard {
    Parser &p;
    bool ok;
    DepthGuard(Parser &p);
    ~DepthGuard() { --p.depth; }
  };

  /// Counts the binary operators of a left-deep chain (`1+1+...`) as nesting levels, as the
  /// tree they build is as deep as the chain is long; restores the depth on exit.
  struct OperatorDepth {
    Parser &p;
    unsigned saved;
    OperatorDepth(Parser &p) : p(p), saved(p.depth) {}
    ~OperatorDepth() { p.depth = saved; }
    /// Adds one level for the next operator; reports and returns false past the bound.
    bool deeper(const Loc &loc);
  };

  Lexer lexer;
  mlir::MLIRContext &ctx;
  Token cur, ahead;
  unsigned depth = 0;
  bool failed = false;
};

} // namespace llmp::lang
