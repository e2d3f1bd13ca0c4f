// SPDX-License-Identifier: Apache-2.0
/// Small helpers on AST nodes.
#include "lang/AST.h"

namespace llmp::lang {

const Expr *Expr::arg(llvm::StringRef name) const {
  if (kind != Kind::Call)
    return nullptr;
  for (size_t i = 0; i < operands.size(); ++i)
    if (argNames[i] == name)
      return operands[i].get();
  return nullptr;
}

std::string printExpr(const Expr &e) {
  switch (e.kind) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Name:
    return e.text;
  case Expr::Kind::String:
    return "\"" + e.text + "\"";
  case Expr::Kind::Member:
    return printExpr(*e.operands[0]) + "." + e.text;
  case Expr::Kind::Neg:
    return "-" + printExpr(*e.operands[0]);
  case Expr::Kind::Binary: {
    auto side = [](const Expr &x) {
      std::string s = printExpr(x);
      return x.kind == Expr::Kind::Binary ? "(" + s + ")" : s;
    };
    return side(*e.operands[0]) + " " + e.text + " " + side(*e.operands[1]);
  }
  case Expr::Kind::Call:
  case Expr::Kind::Tuple: {
    std::string s = e.kind == Expr::Kind::Call ? e.text + "(" : "(";
    for (size_t i = 0; i < e.operands.size(); ++i) {
      if (i)
        s += ", ";
      if (e.kind == Expr::Kind::Call && !e.argNames[i].empty())
        s += e.argNames[i] + ": ";
      s += printExpr(*e.operands[i]);
    }
    return s + ")";
  }
  case Expr::Kind::List: {
    std::string s = "[";
    for (size_t i = 0; i < e.operands.size(); ++i)
      s += (i ? ", " : "") + printExpr(*e.operands[i]);
    return s + "]";
  }
  case Expr::Kind::Batch:
    return printExpr(*e.operands[0]) + " x " + printExpr(*e.operands[1]);
  case Expr::Kind::Every:
    return "every " + printExpr(*e.operands[0]);
  }
  return "";
}

llvm::StringRef keyword(Decl::Kind kind) {
  switch (kind) {
  case Decl::Kind::Import:
    return "import";
  case Decl::Kind::Tokenizer:
    return "tokenizer";
  case Decl::Kind::Dataset:
    return "dataset";
  case Decl::Kind::Model:
  case Decl::Kind::Family:
    return "model";
  case Decl::Kind::Loss:
    return "loss";
  case Decl::Kind::Stage:
    return "stage";
  case Decl::Kind::Pipeline:
    return "pipeline";
  }
  return "";
}

const Field *StageDecl::field(llvm::StringRef fieldName) const {
  for (const Field &f : fields)
    if (f.name == fieldName)
      return &f;
  return nullptr;
}

int64_t ModelSpec::get(llvm::StringRef name, int64_t fallback) const {
  auto it = args.find(name.str());
  return it == args.end() ? fallback : static_cast<int64_t>(it->second);
}

const Decl *Program::lookup(llvm::StringRef name) const {
  auto it = globals.find(name.str());
  return it == globals.end() ? nullptr : it->second;
}

std::vector<const StageDecl *> Program::stages() const {
  std::vector<const StageDecl *> out;
  for (const DeclPtr &d : main().decls)
    if (d->kind == Decl::Kind::Stage)
      out.push_back(static_cast<const StageDecl *>(d.get()));
  return out;
}

} // namespace llmp::lang
