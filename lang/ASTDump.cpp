// SPDX-License-Identifier: Apache-2.0
/// The AST dumper.
#include "lang/ASTDump.h"

#include "llvm/Support/raw_ostream.h"

namespace llmp::lang {
namespace {

class Dumper {
public:
  explicit Dumper(llvm::raw_ostream &os) : os(os) {}

  void module(const Module &m) {
    line("Module '" + m.file + "'", m.loc);
    Indent in(*this);
    for (const DeclPtr &d : m.decls)
      decl(*d);
  }

private:
  struct Indent {
    Dumper &d;
    explicit Indent(Dumper &d) : d(d) { d.depth += 2; }
    ~Indent() { d.depth -= 2; }
  };

  void line(const std::string &text, const Loc &loc) {
    os.indent(depth) << text << " @" << loc.file << ":" << loc.line << ":" << loc.col << "\n";
  }

  void expr(const Expr &e, const std::string &label = "") {
    std::string prefix = label.empty() ? "" : label + ": ";
    switch (e.kind) {
    case Expr::Kind::Int:
      line(prefix + "Int " + e.text, e.loc);
      return;
    case Expr::Kind::Float:
      line(prefix + "Float " + e.text, e.loc);
      return;
    case Expr::Kind::String:
      line(prefix + "String \"" + e.text + "\"", e.loc);
      return;
    case Expr::Kind::Name:
      line(prefix + "Name " + e.text, e.loc);
      return;
    case Expr::Kind::Member:
      line(prefix + "Member ." + e.text, e.loc);
      break;
    case Expr::Kind::Call:
      line(prefix + "Call " + e.text, e.loc);
      break;
    case Expr::Kind::Binary:
      line(prefix + "Binary '" + e.text + "'", e.loc);
      break;
    case Expr::Kind::Neg:
      line(prefix + "Neg", e.loc);
      break;
    case Expr::Kind::Tuple:
      line(prefix + "Tuple", e.loc);
      break;
    case Expr::Kind::List:
      line(prefix + "List", e.loc);
      break;
    case Expr::Kind::Batch:
      line(prefix + "Batch", e.loc);
      break;
    case Expr::Kind::Every:
      line(prefix + "Every", e.loc);
      break;
    }
    Indent in(*this);
    for (size_t i = 0; i < e.operands.size(); ++i)
      expr(*e.operands[i], e.kind == Expr::Kind::Call ? e.argNames[i] : "");
  }

  void type(const TypeRef &t, const std::string &label) {
    std::string s = label + ": " + t.name;
    if (t.isTensor) {
      s += "[";
      for (size_t i = 0; i < t.dims.size(); ++i)
        s += (i ? ", " : "") + printExpr(*t.dims[i]);
      s += "]";
    }
    line(s, t.loc);
  }

  void formals(const std::vector<Formal> &fs) {
    for (const Formal &f : fs) {
      line("Formal " + f.name, f.loc);
      Indent in(*this);
      type(f.type, "type");
      if (f.defaultValue)
        expr(*f.defaultValue, "default");
    }
  }

  void stmt(const Stmt &s) {
    switch (s.kind) {
    case Stmt::Kind::Assign:
      line("Assign " + s.name, s.loc);
      break;
    case Stmt::Kind::Return:
      line("Return", s.loc);
      break;
    case Stmt::Kind::For:
      line("For " + s.name + " in " + s.range, s.loc);
      break;
    }
    Indent in(*this);
    if (s.value)
      expr(*s.value);
    for (const StmtPtr &b : s.body)
      stmt(*b);
  }

  void decl(const Decl &d) {
    switch (d.kind) {
    case Decl::Kind::Import: {
      const auto &imp = static_cast<const ImportDecl &>(d);
      std::string path;
      for (size_t i = 0; i < imp.path.size(); ++i)
        path += (i ? "." : "") + imp.path[i];
      line("Import " + path, d.loc);
      return;
    }
    case Decl::Kind::Tokenizer:
    case Decl::Kind::Dataset:
    case Decl::Kind::Model: {
      std::string kind = d.kind == Decl::Kind::Tokenizer ? "Tokenizer"
                         : d.kind == Decl::Kind::Dataset ? "Dataset"
                                                         : "Model";
      line(kind + " " + d.name, d.loc);
      Indent in(*this);
      expr(*static_cast<const BindingDecl &>(d).value);
      return;
    }
    case Decl::Kind::Family: {
      const auto &f = static_cast<const FamilyDecl &>(d);
      line("ModelFamily " + f.name, d.loc);
      Indent in(*this);
      formals(f.formals);
      for (const ParamDecl &p : f.params) {
        std::string s = "Param " + p.name + " [";
        for (size_t i = 0; i < p.shape.size(); ++i)
          s += (i ? ", " : "") + printExpr(*p.shape[i]);
        s += "]";
        if (p.repeat >= 0)
          s += " repeat " + f.repeats[p.repeat].count + " as " + f.repeats[p.repeat].var;
        line(s, p.loc);
        if (p.init) {
          Indent in2(*this);
          expr(*p.init, "init");
        }
      }
      if (f.forward) {
        line("Forward", f.forward->loc);
        Indent in2(*this);
        formals(f.forward->inputs);
        type(f.forward->result, "result");
        for (const StmtPtr &s : f.forward->body)
          stmt(*s);
      }
      return;
    }
    case Decl::Kind::Loss: {
      const auto &l = static_cast<const LossDecl &>(d);
      line((l.isReward ? "Reward " : "Loss ") + l.name, d.loc);
      Indent in(*this);
      formals(l.formals);
      type(l.result, "result");
      if (l.body)
        expr(*l.body, "body");
      for (const StmtPtr &st : l.stmts)
        stmt(*st);
      return;
    }
    case Decl::Kind::Stage: {
      const auto &s = static_cast<const StageDecl &>(d);
      line("Stage " + s.name + (s.kindName.empty() ? "" : " : " + s.kindName), d.loc);
      Indent in(*this);
      for (const Field &f : s.fields) {
        line("Field " + f.name, f.loc);
        Indent in2(*this);
        expr(*f.value);
      }
      return;
    }
    case Decl::Kind::Pipeline: {
      const auto &p = static_cast<const PipelineDecl &>(d);
      line("Pipeline " + p.name, d.loc);
      Indent in(*this);
      for (const auto &[name, loc] : p.stages)
        line("StageRef " + name, loc);
      return;
    }
    }
  }

  llvm::raw_ostream &os;
  unsigned depth = 0;
};

} // namespace

void dumpAST(const Program &program, llvm::raw_ostream &os, bool mainOnly) {
  Dumper dumper(os);
  for (const auto &m : program.modules)
    if (!mainOnly || m.get() == program.modules.back().get())
      dumper.module(*m);
}

} // namespace llmp::lang
