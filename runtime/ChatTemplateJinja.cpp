// SPDX-License-Identifier: Apache-2.0
/// Lexer, parser and evaluator of the Jinja subset that chat templates use. The lexer
/// splits the source into text and tags and applies whitespace control (Jinja2's
/// `lexer.py`: `-`/`+` modifiers, `trim_blocks`, `lstrip_blocks`); the parser builds a
/// statement tree with Jinja2's expression precedence (`parser.py`); the evaluator walks
/// it with Python value semantics. Errors are thrown internally as `JinjaError` with the
/// template position and converted to `lrt::Status` at the API boundary.
#include "runtime/ChatTemplateJinja.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace lrt::jinja {

//===----------------------------------------------------------------------===//
// MarkedString, Dict, Value
//===----------------------------------------------------------------------===//

void MarkedString::append(const MarkedString &o) {
  bool marked = !marks.empty() || !o.marks.empty();
  if (marked) {
    marks.resize(text.size(), 0);
    if (o.marks.empty())
      marks.resize(text.size() + o.text.size(), 0);
    else
      marks.insert(marks.end(), o.marks.begin(), o.marks.end());
  }
  text += o.text;
}

void MarkedString::append(std::string_view plain) {
  text += plain;
  if (!marks.empty())
    marks.resize(text.size(), 0);
}

MarkedString MarkedString::substr(size_t pos, size_t n) const {
  MarkedString r;
  if (pos > text.size())
    pos = text.size();
  r.text = text.substr(pos, n);
  if (!marks.empty())
    r.marks.assign(marks.begin() + pos, marks.begin() + pos + r.text.size());
  return r;
}

const Value *Dict::find(std::string_view key) const {
  for (const auto &e : entries)
    if (e.first == key)
      return &e.second;
  return nullptr;
}

void Dict::set(std::string key, Value v) {
  for (auto &e : entries)
    if (e.first == key) {
      e.second = std::move(v);
      return;
    }
  entries.emplace_back(std::move(key), std::move(v));
}

Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::floating(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x, uint16_t mark) {
  Value v;
  v.kind = Kind::String;
  if (mark)
    v.s.marks.assign(x.size(), mark);
  v.s.text = std::move(x);
  return v;
}
Value Value::string(MarkedString x) {
  Value v;
  v.kind = Kind::String;
  v.s = std::move(x);
  return v;
}
Value Value::makeList(std::vector<Value> items) {
  Value v;
  v.kind = Kind::List;
  v.list = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}
Value Value::makeDict() {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<Dict>();
  return v;
}

namespace {

using Kind = Value::Kind;

struct Pos {
  int line = 1, col = 1;
};

struct JinjaError : std::runtime_error {
  Pos pos;
  JinjaError(Pos p, const std::string &m) : std::runtime_error(m), pos(p) {}
};

[[noreturn]] void fail(Pos p, const std::string &msg) { throw JinjaError(p, msg); }

const char *kindName(const Value &v) {
  switch (v.kind) {
  case Kind::Undefined: return "undefined";
  case Kind::None: return "none";
  case Kind::Bool: return "bool";
  case Kind::Int: return "int";
  case Kind::Float: return "float";
  case Kind::String: return "string";
  case Kind::List: return "list";
  case Kind::Dict: return v.dict->isNamespace ? "namespace" : "dict";
  }
  return "?";
}

/// Python's repr of a float: the shortest decimal that reads back to the same double,
/// with ".0" for integral values and Python's exponent form outside [1e-4, 1e16).
std::string pyFloat(double d) {
  if (std::isnan(d))
    return "nan";
  if (std::isinf(d))
    return d > 0 ? "inf" : "-inf";
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d)
      break;
  }
  std::string s = buf;
  size_t e = s.find('e');
  if (e != std::string::npos) {
    // C prints e+05 / e-05; Python prints e+05 / e-05 too, but only switches to exponent
    // form at 1e16 / below 1e-4, which %g does at other points: redo in fixed form then.
    double a = std::fabs(d);
    if (a >= 1e-4 && a < 1e16) {
      int prec = 0;
      for (; prec <= 20; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*f", prec, d);
        if (std::strtod(buf, nullptr) == d)
          break;
      }
      s = buf;
    } else {
      return s;
    }
  }
  if (s.find_first_of(".en") == std::string::npos)
    s += ".0";
  return s;
}

std::string pyRepr(const Value &v);

/// Python's str() of a value (what `{{ }}`, `~` and `|string` produce), keeping marks.
MarkedString pyStr(const Value &v) {
  MarkedString r;
  switch (v.kind) {
  case Kind::Undefined: break;
  case Kind::String: return v.s;
  default: r.text = pyRepr(v);
  }
  return r;
}

std::string pyQuote(const std::string &s) {
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string r(1, q);
  for (unsigned char c : s) {
    if (c == '\\')
      r += "\\\\";
    else if (c == static_cast<unsigned char>(q))
      r += std::string("\\") + q;
    else if (c == '\n')
      r += "\\n";
    else if (c == '\r')
      r += "\\r";
    else if (c == '\t')
      r += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      r += b;
    } else
      r += static_cast<char>(c);
  }
  return r + q;
}

std::string pyRepr(const Value &v) {
  switch (v.kind) {
  case Kind::Undefined: return "";
  case Kind::None: return "None";
  case Kind::Bool: return v.b ? "True" : "False";
  case Kind::Int: return std::to_string(v.i);
  case Kind::Float: return pyFloat(v.f);
  case Kind::String: return pyQuote(v.s.text);
  case Kind::List: {
    std::string r = "[";
    for (size_t k = 0; k < v.list->size(); ++k)
      r += (k ? ", " : "") + pyRepr((*v.list)[k]);
    return r + "]";
  }
  case Kind::Dict: {
    std::string r = v.dict->isNamespace ? "<Namespace {" : "{";
    bool first = true;
    for (const auto &e : v.dict->entries) {
      r += (first ? "" : ", ") + pyQuote(e.first) + ": " + pyRepr(e.second);
      first = false;
    }
    return r + (v.dict->isNamespace ? "}>" : "}");
  }
  }
  return "";
}

bool truthy(const Value &v) {
  switch (v.kind) {
  case Kind::Undefined:
  case Kind::None: return false;
  case Kind::Bool: return v.b;
  case Kind::Int: return v.i != 0;
  case Kind::Float: return v.f != 0;
  case Kind::String: return !v.s.text.empty();
  case Kind::List: return !v.list->empty();
  case Kind::Dict: return v.dict->isNamespace || !v.dict->entries.empty();
  }
  return false;
}

bool isNumber(const Value &v) { return v.kind == Kind::Int || v.kind == Kind::Float || v.kind == Kind::Bool; }
double asDouble(const Value &v) {
  return v.kind == Kind::Float ? v.f : static_cast<double>(v.kind == Kind::Bool ? v.b : v.i);
}
int64_t asInt(const Value &v) { return v.kind == Kind::Bool ? v.b : v.i; }

bool equal(const Value &a, const Value &b) {
  if (isNumber(a) && isNumber(b)) {
    if (a.kind == Kind::Float || b.kind == Kind::Float)
      return asDouble(a) == asDouble(b);
    return asInt(a) == asInt(b);
  }
  if (a.kind != b.kind)
    return false;
  switch (a.kind) {
  case Kind::Undefined:
  case Kind::None: return true;
  case Kind::String: return a.s.text == b.s.text;
  case Kind::List:
    if (a.list->size() != b.list->size())
      return false;
    for (size_t k = 0; k < a.list->size(); ++k)
      if (!equal((*a.list)[k], (*b.list)[k]))
        return false;
    return true;
  case Kind::Dict:
    if (a.dict == b.dict)
      return true;
    if (a.dict->entries.size() != b.dict->entries.size())
      return false;
    for (const auto &e : a.dict->entries) {
      const Value *o = b.dict->find(e.first);
      if (!o || !equal(e.second, *o))
        return false;
    }
    return true;
  default: return false;
  }
}

/// Byte offsets of the code points of `s`, plus s.size() at the end (Python indexes
/// strings by code point).
std::vector<size_t> codePoints(const std::string &s) {
  std::vector<size_t> cps;
  for (size_t k = 0; k < s.size(); ++k)
    if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80)
      cps.push_back(k);
  cps.push_back(s.size());
  return cps;
}

bool isSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/// Python str.strip/lstrip/rstrip: `chars` empty means whitespace. `chars` is treated as
/// a set of bytes, which equals Python's behaviour for ASCII sets (all real templates).
MarkedString stripString(const MarkedString &s, bool left, bool right, const std::string *chars) {
  auto strip = [&](unsigned char c) {
    return chars ? std::memchr(chars->data(), c, chars->size()) != nullptr : isSpace(c);
  };
  size_t b = 0, e = s.text.size();
  if (left)
    while (b < e && strip(s.text[b]))
      ++b;
  if (right)
    while (e > b && strip(s.text[e - 1]))
      --e;
  return s.substr(b, e - b);
}

/// A JSON string literal as Python's json.dumps(ensure_ascii=False) writes it: `"`, `\\`
/// and control characters escaped, everything else kept (nlohmann-json escapes the same
/// set).
std::string jsonEscape(const std::string &s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void jsonDump(const Value &v, int indent, int level, std::string &out, Pos pos) {
  auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  switch (v.kind) {
  case Kind::Undefined: fail(pos, "tojson of an undefined value");
  case Kind::None: out += "null"; return;
  case Kind::Bool: out += v.b ? "true" : "false"; return;
  case Kind::Int: out += std::to_string(v.i); return;
  case Kind::Float:
    out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : pyFloat(v.f);
    return;
  case Kind::String: out += jsonEscape(v.s.text); return;
  case Kind::List: {
    if (v.list->empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t k = 0; k < v.list->size(); ++k) {
      if (k)
        out += indent >= 0 ? "," : ", ";
      if (indent >= 0)
        newline(level + 1);
      jsonDump((*v.list)[k], indent, level + 1, out, pos);
    }
    if (indent >= 0)
      newline(level);
    out += ']';
    return;
  }
  case Kind::Dict: {
    if (v.dict->entries.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    bool first = true;
    for (const auto &e : v.dict->entries) {
      if (!first)
        out += indent >= 0 ? "," : ", ";
      first = false;
      if (indent >= 0)
        newline(level + 1);
      out += jsonEscape(e.first) + ": ";
      jsonDump(e.second, indent, level + 1, out, pos);
    }
    if (indent >= 0)
      newline(level);
    out += '}';
    return;
  }
  }
}

//===----------------------------------------------------------------------===//
// Lexer
//===----------------------------------------------------------------------===//

enum class TokKind { Name, String, Int, Float, Op, End };

struct Token {
  TokKind kind = TokKind::End;
  std::string text; ///< name, decoded string, number spelling or operator
  Pos pos;
};

/// One piece of the template: literal text, `{{ expr }}` or `{% stmt %}`.
struct Segment {
  enum class Type { Text, Var, Block } type = Type::Text;
  std::string text;          ///< Text
  std::vector<Token> tokens; ///< Var/Block, ending with an End token at the closing tag
  Pos pos;
};

class Lexer {
public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<Segment> run() {
    // Pass 1: segments with their whitespace-control flags.
    struct Item {
      Segment seg;
      bool isComment = false;
      char openMod = 0, closeMod = 0; // '-', '+' or 0
      bool lineStart = false;         // text: starts at a line start in the source
    };
    std::vector<Item> items;
    while (p_ < src_.size()) {
      size_t next = findTagStart(p_);
      if (next > p_) {
        Item it;
        it.seg.type = Segment::Type::Text;
        it.seg.text = std::string(src_.substr(p_, next - p_));
        it.seg.pos = posAt(p_);
        it.lineStart = p_ == 0 || src_[p_ - 1] == '\n';
        items.push_back(std::move(it));
        advanceTo(next);
      }
      if (p_ >= src_.size())
        break;
      Item it;
      char kind = src_[p_ + 1];
      it.seg.pos = posAt(p_);
      advanceTo(p_ + 2);
      if (p_ < src_.size() && (src_[p_] == '-' || src_[p_] == '+')) {
        it.openMod = src_[p_];
        advanceTo(p_ + 1);
      }
      if (kind == '#') {
        it.isComment = true;
        size_t e = src_.find("#}", p_);
        if (e == std::string_view::npos)
          fail(it.seg.pos, "unterminated comment: expected '#}'");
        if (e > p_ && (src_[e - 1] == '-' || src_[e - 1] == '+'))
          it.closeMod = src_[e - 1];
        advanceTo(e + 2);
      } else {
        it.seg.type = kind == '{' ? Segment::Type::Var : Segment::Type::Block;
        it.closeMod = lexTag(kind == '{' ? '}' : '%', it.seg.tokens, it.seg.pos);
      }
      items.push_back(std::move(it));
    }
    // Pass 2: whitespace control on text next to tags (Jinja2 lexer.py), then drop
    // comments.
    for (size_t k = 0; k < items.size(); ++k) {
      Item &it = items[k];
      if (it.seg.type != Segment::Type::Text || it.isComment)
        continue;
      std::string &t = it.seg.text;
      bool lineStart = it.lineStart;
      if (k > 0) {
        const Item &prev = items[k - 1];
        bool blockish = prev.isComment || prev.seg.type == Segment::Type::Block;
        if (prev.closeMod == '-') {
          size_t b = 0;
          while (b < t.size() && isSpace(t[b]))
            ++b;
          lineStart = lineStart || (b > 0 && t[b - 1] == '\n');
          t.erase(0, b);
        } else if (blockish && prev.closeMod != '+') { // trim_blocks
          // Jinja's block end consumes the newline, so the text then starts a line.
          if (t.rfind("\r\n", 0) == 0) {
            t.erase(0, 2);
            lineStart = true;
          } else if (!t.empty() && t[0] == '\n') {
            t.erase(0, 1);
            lineStart = true;
          }
        }
      }
      if (k + 1 < items.size()) {
        const Item &next = items[k + 1];
        bool blockish = next.isComment || next.seg.type == Segment::Type::Block;
        if (next.openMod == '-') {
          size_t e = t.size();
          while (e > 0 && isSpace(t[e - 1]))
            --e;
          t.resize(e);
        } else if (blockish && next.openMod != '+') { // lstrip_blocks
          size_t nl = t.rfind('\n');
          size_t from = nl == std::string::npos ? 0 : nl + 1;
          if (nl != std::string::npos || lineStart) {
            bool allSpace = true;
            for (size_t q = from; q < t.size(); ++q)
              allSpace &= t[q] == ' ' || t[q] == '\t';
            if (allSpace)
              t.resize(from);
          }
        }
      }
    }
    std::vector<Segment> out;
    for (auto &it : items)
      if (!it.isComment && !(it.seg.type == Segment::Type::Text && it.seg.text.empty()))
        out.push_back(std::move(it.seg));
    return out;
  }

private:
  std::string_view src_;
  size_t p_ = 0;
  Pos cur_;
  size_t curAt_ = 0;

  /// The position of byte `at` (at >= the last asked position).
  Pos posAt(size_t at) {
    for (; curAt_ < at; ++curAt_) {
      if (src_[curAt_] == '\n') {
        ++cur_.line;
        cur_.col = 1;
      } else if ((static_cast<unsigned char>(src_[curAt_]) & 0xC0) != 0x80) {
        ++cur_.col;
      }
    }
    return cur_;
  }
  void advanceTo(size_t at) { p_ = at; }

  size_t findTagStart(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#'))
        return k;
    return src_.size();
  }

  /// Tokenizes a tag body up to its closing `}}`/`%}` (close = '}' or '%'); returns the
  /// closing modifier ('-', '+' or 0).
  char lexTag(char close, std::vector<Token> &toks, Pos open) {
    int depth = 0; // brackets, so that `{{ {'a': 1} }}` closes at the right brace
    while (true) {
      while (p_ < src_.size() && isSpace(src_[p_]))
        ++p_;
      if (p_ >= src_.size())
        fail(open, std::string("unterminated tag: expected '") + close + "}'");
      Pos pos = posAt(p_);
      char c = src_[p_];
      auto at = [&](size_t k) { return p_ + k < src_.size() ? src_[p_ + k] : '\0'; };
      if (depth == 0) {
        if (c == close && at(1) == '}') {
          p_ += 2;
          toks.push_back({TokKind::End, "", pos});
          return 0;
        }
        if ((c == '-' || c == '+') && at(1) == close && at(2) == '}') {
          p_ += 3;
          toks.push_back({TokKind::End, "", pos});
          return c;
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t b = p_;
        while (p_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[p_])) || src_[p_] == '_'))
          ++p_;
        toks.push_back({TokKind::Name, std::string(src_.substr(b, p_ - b)), pos});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t b = p_;
        bool isFloat = false;
        while (p_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p_])) || src_[p_] == '_'))
          ++p_;
        if (at(0) == '.' && std::isdigit(static_cast<unsigned char>(at(1)))) {
          isFloat = true;
          ++p_;
          while (p_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p_])))
            ++p_;
        }
        if (at(0) == 'e' || at(0) == 'E') {
          size_t q = 1;
          if (at(q) == '+' || at(q) == '-')
            ++q;
          if (std::isdigit(static_cast<unsigned char>(at(q)))) {
            isFloat = true;
            p_ += q;
            while (p_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p_])))
              ++p_;
          }
        }
        std::string num;
        for (char d : src_.substr(b, p_ - b))
          if (d != '_')
            num += d;
        toks.push_back({isFloat ? TokKind::Float : TokKind::Int, num, pos});
      } else if (c == '\'' || c == '"') {
        toks.push_back({TokKind::String, lexString(c, pos), pos});
      } else {
        static const char *kOps[] = {"==", "!=", "<=", ">=", "//", "**", "(", ")", "[", "]", "{", "}",
                                     ".", ",", ":", "|", "~", "+", "-", "*", "/", "%", "<", ">", "="};
        bool found = false;
        for (const char *op : kOps) {
          size_t n = std::strlen(op);
          if (src_.substr(p_, n) == op) {
            toks.push_back({TokKind::Op, op, pos});
            p_ += n;
            found = true;
            if (n == 1 && (c == '(' || c == '[' || c == '{'))
              ++depth;
            if (n == 1 && (c == ')' || c == ']' || c == '}') && depth > 0)
              --depth;
            break;
          }
        }
        if (!found)
          fail(pos, std::string("unexpected character '") + c + "' in a tag");
      }
    }
  }

  /// A quoted string with Python escapes (\n \t \r \\ \' \" \uXXXX \xXX).
  std::string lexString(char q, Pos pos) {
    ++p_;
    std::string r;
    while (true) {
      if (p_ >= src_.size())
        fail(pos, "unterminated string literal");
      char c = src_[p_++];
      if (c == q)
        return r;
      if (c != '\\') {
        r += c;
        continue;
      }
      if (p_ >= src_.size())
        fail(pos, "unterminated string literal");
      char e = src_[p_++];
      switch (e) {
      case 'n': r += '\n'; break;
      case 't': r += '\t'; break;
      case 'r': r += '\r'; break;
      case '0': r += '\0'; break;
      case '\\': r += '\\'; break;
      case '\'': r += '\''; break;
      case '"': r += '"'; break;
      case '\n': break;
      case 'x':
      case 'u': {
        size_t n = e == 'x' ? 2 : 4;
        if (p_ + n > src_.size())
          fail(pos, "truncated escape in string literal");
        uint32_t cp = 0;
        for (size_t k = 0; k < n; ++k) {
          char h = src_[p_ + k];
          if (!std::isxdigit(static_cast<unsigned char>(h)))
            fail(pos, "bad hexadecimal escape in string literal");
          cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        p_ += n;
        if (cp < 0x80) {
          r += static_cast<char>(cp);
        } else if (cp < 0x800) {
          r += static_cast<char>(0xC0 | (cp >> 6));
          r += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          r += static_cast<char>(0xE0 | (cp >> 12));
          r += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          r += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: // Python keeps unknown escapes as written
        r += '\\';
        r += e;
      }
    }
  }
};

//===----------------------------------------------------------------------===//
// AST
//===----------------------------------------------------------------------===//

struct Expr;
using ExprP = std::shared_ptr<Expr>;

struct Expr {
  enum class Type {
    Literal, Name, Attr, Item, Slice, Call, Filter, Test, Not, Neg, Binary, And, Or, Cond,
    ListLit, DictLit
  } type;
  Pos pos;
  Value lit;                ///< Literal
  std::string name;         ///< Name, Attr (attribute), Filter/Test name, Binary operator
  bool negate = false;      ///< Test: `is not`
  std::vector<ExprP> args;  ///< operands; Call: callee first; Filter/Test: target first;
                            ///< Slice: target, start, stop, step (nullptr when absent)
  std::vector<std::pair<std::string, ExprP>> kwargs;
};

struct Stmt;
using StmtP = std::shared_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Stmt {
  enum class Type { Text, Output, If, For, Set, SetAttr, Break, Continue } type;
  Pos pos;
  std::string text;                              ///< Text
  ExprP expr;                                    ///< Output, Set value, For iterable
  std::vector<std::pair<ExprP, Body>> branches;  ///< If: (condition or null for else)
  std::vector<std::string> targets;              ///< For loop variables; Set name
  std::string attr;                              ///< SetAttr attribute
  ExprP filter;                                  ///< For ... if filter
  Body body, elseBody;                           ///< For
};

//===----------------------------------------------------------------------===//
// Parser
//===----------------------------------------------------------------------===//

/// Grammar (Jinja2 parser.py), lowest precedence first:
///   expr    ::= or ('if' or ('else' expr)?)?
///   or      ::= and ('or' and)*          and ::= not ('and' not)*
///   not     ::= 'not' not | compare
///   compare ::= math1 (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') math1)*
///   math1   ::= concat (('+'|'-') concat)*      concat ::= math2 ('~' math2)*
///   math2   ::= unary (('*'|'/'|'//'|'%') unary)*
///   unary   ::= ('-'|'+') unary | primary postfix* filter*
///   filter  ::= '|' name ('(' args ')')? | 'is' 'not'? name (args)?
class Parser {
public:
  Parser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  Body parseTemplate() {
    std::string end;
    Body b = parseBody({}, end, Pos{}, "");
    return b;
  }

private:
  std::vector<Segment> segs_;
  size_t si_ = 0;             // segment index
  const std::vector<Token> *toks_ = nullptr;
  size_t ti_ = 0;             // token index in the current tag
  int depth_ = 0;

  static constexpr int kMaxDepth = 200;

  struct DepthGuard {
    Parser &p;
    DepthGuard(Parser &p, Pos pos) : p(p) {
      if (++p.depth_ > kMaxDepth)
        fail(pos, "template nests too deeply (more than 200 levels)");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token &peek(size_t k = 0) const {
    size_t i = std::min(ti_ + k, toks_->size() - 1);
    return (*toks_)[i];
  }
  const Token &next() {
    const Token &t = peek();
    if (ti_ < toks_->size() - 1)
      ++ti_;
    return t;
  }
  bool isOp(const char *op, size_t k = 0) const { return peek(k).kind == TokKind::Op && peek(k).text == op; }
  bool isName(const char *n, size_t k = 0) const { return peek(k).kind == TokKind::Name && peek(k).text == n; }
  std::string describe(const Token &t) const {
    switch (t.kind) {
    case TokKind::End: return "end of tag";
    case TokKind::String: return "string " + pyQuote(t.text);
    default: return "'" + t.text + "'";
    }
  }
  void expectOp(const char *op) {
    if (!isOp(op))
      fail(peek().pos, std::string("expected '") + op + "', found " + describe(peek()));
    next();
  }
  std::string expectName(const char *what) {
    if (peek().kind != TokKind::Name)
      fail(peek().pos, std::string("expected ") + what + ", found " + describe(peek()));
    return next().text;
  }
  void expectEnd() {
    if (peek().kind != TokKind::End)
      fail(peek().pos, "expected end of tag, found " + describe(peek()));
  }

  /// body ::= (text | '{{' expr '}}' | '{%' stmt '%}')* up to one of `ends`; `end` gets
  /// the keyword that ended it. `open`/`opener`: the block being parsed, for the error
  /// when the template ends first.
  Body parseBody(const std::vector<std::string> &ends, std::string &end, Pos open, const char *opener) {
    Body body;
    while (si_ < segs_.size()) {
      const Segment &seg = segs_[si_];
      if (seg.type == Segment::Type::Text) {
        auto s = std::make_shared<Stmt>();
        s->type = Stmt::Type::Text;
        s->pos = seg.pos;
        s->text = seg.text;
        body.push_back(s);
        ++si_;
        continue;
      }
      toks_ = &seg.tokens;
      ti_ = 0;
      if (seg.type == Segment::Type::Var) {
        auto s = std::make_shared<Stmt>();
        s->type = Stmt::Type::Output;
        s->pos = seg.pos;
        s->expr = parseExpr();
        expectEnd();
        body.push_back(s);
        ++si_;
        continue;
      }
      const Token &kw = peek();
      if (kw.kind != TokKind::Name)
        fail(kw.pos, "expected a statement keyword, found " + describe(kw));
      if (std::find(ends.begin(), ends.end(), kw.text) != ends.end()) {
        end = kw.text;
        return body; // the caller consumes the end tag
      }
      body.push_back(parseStatement());
    }
    if (!ends.empty()) {
      std::string list;
      for (const auto &e : ends)
        list += (list.empty() ? "'" : " or '") + e + "'";
      fail(open, std::string("'") + opener + "' is not closed: expected " + list + " before the end of the template");
    }
    return body;
  }

  /// Consumes the current block tag (already checked to be `kw`) and expects nothing else.
  void finishTag() {
    next();
    expectEnd();
    ++si_;
  }

  StmtP parseStatement() {
    const Segment &seg = segs_[si_];
    Pos pos = seg.pos;
    DepthGuard g(*this, pos);
    std::string kw = next().text;
    auto s = std::make_shared<Stmt>();
    s->pos = pos;
    if (kw == "if") {
      s->type = Stmt::Type::If;
      ExprP cond = parseExpr();
      expectEnd();
      ++si_;
      while (true) {
        std::string end;
        Body b = parseBody({"elif", "else", "endif"}, end, pos, "if");
        s->branches.emplace_back(cond, std::move(b));
        toks_ = &segs_[si_].tokens;
        ti_ = 0;
        if (end == "elif") {
          next();
          cond = parseExpr();
          expectEnd();
          ++si_;
          continue;
        }
        if (end == "else") {
          finishTag();
          std::string end2;
          Body eb = parseBody({"endif"}, end2, pos, "if");
          s->branches.emplace_back(nullptr, std::move(eb));
          toks_ = &segs_[si_].tokens;
          ti_ = 0;
        }
        finishTag();
        return s;
      }
    }
    if (kw == "for") {
      s->type = Stmt::Type::For;
      s->targets.push_back(expectName("a loop variable"));
      while (isOp(",")) {
        next();
        s->targets.push_back(expectName("a loop variable"));
      }
      if (!isName("in"))
        fail(peek().pos, "expected 'in', found " + describe(peek()));
      next();
      s->expr = parseOr(); // not a conditional expression: `if` here filters
      if (isName("if")) {
        next();
        s->filter = parseExpr();
      }
      if (isName("recursive"))
        fail(peek().pos, "recursive loops are not supported");
      expectEnd();
      ++si_;
      std::string end;
      s->body = parseBody({"else", "endfor"}, end, pos, "for");
      toks_ = &segs_[si_].tokens;
      ti_ = 0;
      if (end == "else") {
        finishTag();
        std::string end2;
        s->elseBody = parseBody({"endfor"}, end2, pos, "for");
        toks_ = &segs_[si_].tokens;
        ti_ = 0;
      }
      finishTag();
      return s;
    }
    if (kw == "set") {
      std::string name = expectName("a variable name");
      if (isOp(".")) {
        next();
        s->type = Stmt::Type::SetAttr;
        s->targets.push_back(name);
        s->attr = expectName("an attribute name");
      } else {
        s->type = Stmt::Type::Set;
        s->targets.push_back(name);
        if (isOp(","))
          fail(peek().pos, "tuple assignment in 'set' is not supported");
      }
      if (!isOp("="))
        fail(peek().pos, isEnd() ? "block assignment ('set' without '=') is not supported"
                                 : "expected '=', found " + describe(peek()));
      next();
      s->expr = parseExpr();
      expectEnd();
      ++si_;
      return s;
    }
    if (kw == "break" || kw == "continue") {
      s->type = kw == "break" ? Stmt::Type::Break : Stmt::Type::Continue;
      expectEnd();
      ++si_;
      return s;
    }
    if (kw == "generation") {
      // transformers' AssistantTracker extension: renders its body unchanged.
      expectEnd();
      ++si_;
      std::string end;
      s->type = Stmt::Type::If;
      auto t = std::make_shared<Expr>();
      t->type = Expr::Type::Literal;
      t->lit = Value::boolean(true);
      s->branches.emplace_back(t, parseBody({"endgeneration"}, end, pos, "generation"));
      toks_ = &segs_[si_].tokens;
      ti_ = 0;
      finishTag();
      return s;
    }
    if (kw == "elif" || kw == "else" || kw.rfind("end", 0) == 0)
      fail(pos, "unexpected '" + kw + "' with no open block");
    fail(pos, "unsupported statement '" + kw + "' (supported: if, for, set, break, continue, generation)");
  }

  bool isEnd() const { return peek().kind == TokKind::End; }

  ExprP make(Expr::Type t, Pos p) {
    auto e = std::make_shared<Expr>();
    e->type = t;
    e->pos = p;
    return e;
  }

  ExprP parseExpr() {
    DepthGuard g(*this, peek().pos);
    ExprP e = parseOr();
    if (isName("if")) {
      Pos p = next().pos;
      ExprP c = make(Expr::Type::Cond, p);
      ExprP cond = parseOr();
      ExprP other;
      if (isName("else")) {
        next();
        other = parseExpr();
      }
      c->args = {cond, e, other};
      return c;
    }
    return e;
  }

  /// or ::= and ('or' and)*; and ::= not ('and' not)*
  ExprP parseLogical(ExprP (Parser::*sub)(), const char *keyword, Expr::Type type) {
    ExprP l = (this->*sub)();
    while (isName(keyword)) {
      ExprP e = make(type, next().pos);
      e->args = {l, (this->*sub)()};
      l = e;
    }
    return l;
  }
  ExprP parseOr() { return parseLogical(&Parser::parseAnd, "or", Expr::Type::Or); }
  ExprP parseAnd() { return parseLogical(&Parser::parseNot, "and", Expr::Type::And); }
  ExprP parseNot() {
    if (isName("not")) {
      DepthGuard g(*this, peek().pos);
      ExprP e = make(Expr::Type::Not, next().pos);
      e->args = {parseNot()};
      return e;
    }
    return parseCompare();
  }
  ExprP parseCompare() {
    ExprP l = parseMath1();
    while (true) {
      std::string op;
      Pos p = peek().pos;
      if (peek().kind == TokKind::Op &&
          (isOp("==") || isOp("!=") || isOp("<") || isOp(">") || isOp("<=") || isOp(">="))) {
        op = next().text;
      } else if (isName("in")) {
        next();
        op = "in";
      } else if (isName("not") && isName("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        return l;
      }
      ExprP e = make(Expr::Type::Binary, p);
      e->name = op;
      e->args = {l, parseMath1()};
      l = e;
    }
  }
  ExprP parseBinaryLevel(ExprP (Parser::*sub)(), std::initializer_list<const char *> ops) {
    ExprP l = (this->*sub)();
    while (true) {
      const char *hit = nullptr;
      for (const char *op : ops)
        if (isOp(op))
          hit = op;
      if (!hit)
        return l;
      ExprP e = make(Expr::Type::Binary, next().pos);
      e->name = hit;
      e->args = {l, (this->*sub)()};
      l = e;
    }
  }
  ExprP parseMath1() { return parseBinaryLevel(&Parser::parseConcat, {"+", "-"}); }
  ExprP parseConcat() { return parseBinaryLevel(&Parser::parseMath2, {"~"}); }
  ExprP parseMath2() { return parseBinaryLevel(&Parser::parseUnaryFiltered, {"*", "/", "//", "%"}); }

  ExprP parseUnaryFiltered() { return parseUnary(true); }

  ExprP parseUnary(bool withFilter) {
    DepthGuard g(*this, peek().pos);
    ExprP e;
    if (isOp("-")) {
      e = make(Expr::Type::Neg, next().pos);
      e->args = {parseUnary(false)};
    } else if (isOp("+")) {
      next();
      e = parseUnary(false);
    } else {
      e = parsePostfix(parsePrimary());
    }
    if (withFilter)
      e = parseFilters(e);
    return e;
  }

  ExprP parsePrimary() {
    const Token &t = peek();
    Pos p = t.pos;
    switch (t.kind) {
    case TokKind::String: {
      ExprP e = make(Expr::Type::Literal, p);
      std::string s = next().text;
      while (peek().kind == TokKind::String) // adjacent literals concatenate
        s += next().text;
      e->lit = Value::string(std::move(s));
      return e;
    }
    case TokKind::Int: {
      ExprP e = make(Expr::Type::Literal, p);
      errno = 0;
      long long v = std::strtoll(next().text.c_str(), nullptr, 10);
      if (errno == ERANGE)
        fail(p, "integer literal out of range");
      e->lit = Value::integer(v);
      return e;
    }
    case TokKind::Float: {
      ExprP e = make(Expr::Type::Literal, p);
      e->lit = Value::floating(std::strtod(next().text.c_str(), nullptr));
      return e;
    }
    case TokKind::Name: {
      std::string n = next().text;
      ExprP e = make(Expr::Type::Literal, p);
      if (n == "true" || n == "True")
        e->lit = Value::boolean(true);
      else if (n == "false" || n == "False")
        e->lit = Value::boolean(false);
      else if (n == "none" || n == "None")
        e->lit = Value::none();
      else {
        e->type = Expr::Type::Name;
        e->name = n;
      }
      return e;
    }
    case TokKind::Op:
      if (t.text == "(") {
        next();
        ExprP e = parseExpr();
        if (isOp(","))
          fail(peek().pos, "tuples are not supported");
        expectOp(")");
        return e;
      }
      if (t.text == "[") {
        next();
        ExprP e = make(Expr::Type::ListLit, p);
        while (!isOp("]")) {
          e->args.push_back(parseExpr());
          if (!isOp(","))
            break;
          next();
        }
        expectOp("]");
        return e;
      }
      if (t.text == "{") {
        next();
        ExprP e = make(Expr::Type::DictLit, p);
        while (!isOp("}")) {
          e->args.push_back(parseExpr());
          expectOp(":");
          e->args.push_back(parseExpr());
          if (!isOp(","))
            break;
          next();
        }
        expectOp("}");
        return e;
      }
      break;
    case TokKind::End: break;
    }
    fail(p, "expected an expression, found " + describe(t));
  }

  void parseArgs(ExprP &call) {
    expectOp("(");
    while (!isOp(")")) {
      if (peek().kind == TokKind::Name && isOp("=", 1)) {
        std::string k = next().text;
        next();
        call->kwargs.emplace_back(k, parseExpr());
      } else {
        if (!call->kwargs.empty())
          fail(peek().pos, "positional argument after a keyword argument");
        call->args.push_back(parseExpr());
      }
      if (!isOp(","))
        break;
      next();
    }
    expectOp(")");
  }

  ExprP parsePostfix(ExprP e) {
    while (true) {
      if (isOp(".")) {
        Pos p = next().pos;
        ExprP a = make(Expr::Type::Attr, p);
        if (peek().kind == TokKind::Int) { // foo.0 is foo[0]
          a->type = Expr::Type::Item;
          ExprP idx = make(Expr::Type::Literal, peek().pos);
          idx->lit = Value::integer(std::strtoll(next().text.c_str(), nullptr, 10));
          a->args = {e, idx};
        } else {
          a->name = expectName("an attribute name");
          a->args = {e};
        }
        e = a;
      } else if (isOp("[")) {
        Pos p = next().pos;
        ExprP parts[3];
        int colons = 0;
        while (true) {
          if (isOp(":")) {
            if (++colons > 2)
              fail(peek().pos, "too many ':' in a slice");
            next();
            continue;
          }
          if (isOp("]"))
            break;
          if (parts[colons])
            fail(peek().pos, "expected ']' or ':', found " + describe(peek()));
          parts[colons] = parseExpr();
        }
        expectOp("]");
        if (colons == 0) {
          if (!parts[0])
            fail(p, "empty subscript");
          ExprP it = make(Expr::Type::Item, p);
          it->args = {e, parts[0]};
          e = it;
        } else {
          ExprP sl = make(Expr::Type::Slice, p);
          sl->args = {e, parts[0], parts[1], parts[2]};
          e = sl;
        }
      } else if (isOp("(")) {
        ExprP c = make(Expr::Type::Call, e->pos);
        c->args.push_back(e);
        parseArgs(c);
        e = c;
      } else {
        return e;
      }
    }
  }

  ExprP parseFilters(ExprP e) {
    while (true) {
      if (isOp("|")) {
        Pos p = next().pos;
        ExprP f = make(Expr::Type::Filter, p);
        f->name = expectName("a filter name");
        f->args.push_back(e);
        if (isOp("("))
          parseArgs(f);
        e = parsePostfix(f);
      } else if (isName("is")) {
        Pos p = next().pos;
        ExprP t = make(Expr::Type::Test, p);
        if (isName("not")) {
          next();
          t->negate = true;
        }
        const Token &nt = peek();
        if (nt.kind != TokKind::Name)
          fail(nt.pos, "expected a test name, found " + describe(nt));
        t->name = next().text;
        t->args.push_back(e);
        if (isOp("(")) {
          parseArgs(t);
        } else if (peek().kind == TokKind::String || peek().kind == TokKind::Int ||
                   peek().kind == TokKind::Float ||
                   (peek().kind == TokKind::Name && !isName("and") && !isName("or") &&
                    !isName("if") && !isName("else") && !isName("in") && !isName("not") &&
                    !isName("is"))) {
          t->args.push_back(parsePrimary()); // `is sameas false`, `is divisibleby 3`
        }
        e = t;
      } else {
        return e;
      }
    }
  }
};

//===----------------------------------------------------------------------===//
// Evaluator
//===----------------------------------------------------------------------===//

enum class Flow { Normal, Break, Continue };

class Evaluator {
public:
  explicit Evaluator(const Value &globals) : globals_(globals) { scopes_.emplace_back(); }

  MarkedString out;

  Flow exec(const Body &body) {
    for (const auto &s : body) {
      Flow f = execStmt(*s);
      if (f != Flow::Normal)
        return f;
    }
    return Flow::Normal;
  }

private:
  const Value &globals_;
  std::vector<std::map<std::string, Value>> scopes_;
  int loopDepth_ = 0;

  static constexpr int64_t kMaxRange = 1 << 24;

  Value lookup(const std::string &n) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end())
        return f->second;
    }
    if (const Value *v = globals_.dict->find(n))
      return *v;
    return Value();
  }

  Flow execStmt(const Stmt &s) {
    switch (s.type) {
    case Stmt::Type::Text: out.append(s.text); return Flow::Normal;
    case Stmt::Type::Output: out.append(pyStr(eval(*s.expr))); return Flow::Normal;
    case Stmt::Type::If:
      for (const auto &br : s.branches)
        if (!br.first || truthy(eval(*br.first)))
          return exec(br.second);
      return Flow::Normal;
    case Stmt::Type::Set: scopes_.back()[s.targets[0]] = eval(*s.expr); return Flow::Normal;
    case Stmt::Type::SetAttr: {
      Value ns = lookup(s.targets[0]);
      if (ns.kind != Kind::Dict || !ns.dict->isNamespace)
        fail(s.pos, "cannot assign attribute '" + s.attr + "' of '" + s.targets[0] + "' (" +
                        kindName(ns) + "); only namespace() objects take attributes");
      ns.dict->set(s.attr, eval(*s.expr));
      return Flow::Normal;
    }
    case Stmt::Type::Break:
    case Stmt::Type::Continue:
      if (loopDepth_ == 0)
        fail(s.pos, std::string("'") + (s.type == Stmt::Type::Break ? "break" : "continue") + "' outside a loop");
      return s.type == Stmt::Type::Break ? Flow::Break : Flow::Continue;
    case Stmt::Type::For: execFor(s); return Flow::Normal;
    }
    return Flow::Normal;
  }

  std::vector<Value> iterate(const Value &v, Pos p) {
    switch (v.kind) {
    case Kind::List: return *v.list;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto &e : v.dict->entries)
        keys.push_back(Value::string(e.first));
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      auto cps = codePoints(v.s.text);
      for (size_t k = 0; k + 1 < cps.size(); ++k)
        chars.push_back(Value::string(v.s.substr(cps[k], cps[k + 1] - cps[k])));
      return chars;
    }
    default: fail(p, std::string("cannot iterate over a value of type ") + kindName(v));
    }
  }

  void bindTargets(const Stmt &s, const Value &item, std::map<std::string, Value> &scope) {
    if (s.targets.size() == 1) {
      scope[s.targets[0]] = item;
      return;
    }
    if (item.kind != Kind::List || item.list->size() != s.targets.size())
      fail(s.pos, "cannot unpack a " + std::string(kindName(item)) + " into " +
                      std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < s.targets.size(); ++k)
      scope[s.targets[k]] = (*item.list)[k];
  }

  void execFor(const Stmt &s) {
    std::vector<Value> items = iterate(eval(*s.expr), s.expr->pos);
    if (s.filter) {
      std::vector<Value> kept;
      for (const auto &it : items) {
        scopes_.emplace_back();
        bindTargets(s, it, scopes_.back());
        bool keep = truthy(eval(*s.filter));
        scopes_.pop_back();
        if (keep)
          kept.push_back(it);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec(s.elseBody);
      return;
    }
    ++loopDepth_;
    int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      scopes_.emplace_back();
      auto &scope = scopes_.back();
      bindTargets(s, items[k], scope);
      Value loop = Value::makeDict();
      loop.dict->set("index0", Value::integer(k));
      loop.dict->set("index", Value::integer(k + 1));
      loop.dict->set("revindex0", Value::integer(n - k - 1));
      loop.dict->set("revindex", Value::integer(n - k));
      loop.dict->set("first", Value::boolean(k == 0));
      loop.dict->set("last", Value::boolean(k == n - 1));
      loop.dict->set("length", Value::integer(n));
      if (k > 0)
        loop.dict->set("previtem", items[k - 1]);
      if (k + 1 < n)
        loop.dict->set("nextitem", items[k + 1]);
      scope["loop"] = loop;
      Flow f = exec(s.body);
      scopes_.pop_back();
      if (f == Flow::Break)
        break;
    }
    --loopDepth_;
  }

  static int64_t pyIndex(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

  Value getItem(const Value &obj, const Value &key, Pos p) {
    switch (obj.kind) {
    case Kind::Dict: {
      if (key.kind != Kind::String)
        return Value();
      const Value *v = obj.dict->find(key.s.text);
      return v ? *v : Value();
    }
    case Kind::List: {
      if (key.kind != Kind::Int)
        fail(p, std::string("list index must be an integer, not ") + kindName(key));
      int64_t n = static_cast<int64_t>(obj.list->size());
      int64_t i = pyIndex(key.i, n);
      return i >= 0 && i < n ? (*obj.list)[i] : Value();
    }
    case Kind::String: {
      if (key.kind != Kind::Int)
        fail(p, std::string("string index must be an integer, not ") + kindName(key));
      auto cps = codePoints(obj.s.text);
      int64_t n = static_cast<int64_t>(cps.size()) - 1;
      int64_t i = pyIndex(key.i, n);
      if (i < 0 || i >= n)
        return Value();
      return Value::string(obj.s.substr(cps[i], cps[i + 1] - cps[i]));
    }
    case Kind::Undefined: fail(p, "cannot subscript an undefined value");
    default: fail(p, std::string("cannot subscript a value of type ") + kindName(obj));
    }
  }

  Value getAttr(const Value &obj, const std::string &name, Pos p) {
    if (obj.kind == Kind::Dict) {
      const Value *v = obj.dict->find(name);
      return v ? *v : Value();
    }
    if (obj.kind == Kind::Undefined)
      fail(p, "cannot read attribute '" + name + "' of an undefined value");
    return Value(); // methods are resolved by calls; other attributes are undefined
  }

  /// Python slice semantics over `n` elements.
  static std::vector<int64_t> sliceIndices(int64_t n, const Value *a, const Value *b, const Value *c, Pos p) {
    int64_t step = c ? c->i : 1;
    if (step == 0)
      fail(p, "slice step cannot be zero");
    auto clamp = [&](const Value *v, int64_t dflt, bool isStart) {
      if (!v)
        return dflt;
      int64_t i = v->i < 0 ? v->i + n : v->i;
      if (step > 0)
        return std::clamp<int64_t>(i, 0, n);
      (void)isStart;
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t start = clamp(a, step > 0 ? 0 : n - 1, true);
    int64_t stop = clamp(b, step > 0 ? n : -1, false);
    std::vector<int64_t> idx;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
      idx.push_back(i);
    return idx;
  }

  Value slice(const Expr &e) {
    Value obj = eval(*e.args[0]);
    Value parts[3];
    const Value *pp[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < 3; ++k)
      if (e.args[k + 1]) {
        parts[k] = eval(*e.args[k + 1]);
        if (parts[k].kind == Kind::None)
          continue;
        if (parts[k].kind != Kind::Int)
          fail(e.pos, std::string("slice indices must be integers, not ") + kindName(parts[k]));
        pp[k] = &parts[k];
      }
    if (obj.kind == Kind::List) {
      std::vector<Value> r;
      for (int64_t i : sliceIndices(static_cast<int64_t>(obj.list->size()), pp[0], pp[1], pp[2], e.pos))
        r.push_back((*obj.list)[i]);
      return Value::makeList(std::move(r));
    }
    if (obj.kind == Kind::String) {
      auto cps = codePoints(obj.s.text);
      MarkedString r;
      for (int64_t i : sliceIndices(static_cast<int64_t>(cps.size()) - 1, pp[0], pp[1], pp[2], e.pos))
        r.append(obj.s.substr(cps[i], cps[i + 1] - cps[i]));
      return Value::string(std::move(r));
    }
    fail(e.pos, std::string("cannot slice a value of type ") + kindName(obj));
  }

  Value binary(const Expr &e) {
    const std::string &op = e.name;
    Value a = eval(*e.args[0]);
    Value b = eval(*e.args[1]);
    if (op == "~") {
      MarkedString r = pyStr(a);
      r.append(pyStr(b));
      return Value::string(std::move(r));
    }
    if (op == "==")
      return Value::boolean(equal(a, b));
    if (op == "!=")
      return Value::boolean(!equal(a, b));
    if (op == "in" || op == "not in") {
      bool r;
      if (b.kind == Kind::String) {
        if (a.kind != Kind::String)
          fail(e.pos, std::string("'in <string>' requires a string on the left, not ") + kindName(a));
        r = b.s.text.find(a.s.text) != std::string::npos;
      } else if (b.kind == Kind::List) {
        r = std::any_of(b.list->begin(), b.list->end(), [&](const Value &x) { return equal(a, x); });
      } else if (b.kind == Kind::Dict) {
        r = a.kind == Kind::String && b.dict->find(a.s.text);
      } else {
        fail(e.pos, std::string("'in' needs a string, list or dict on the right, not ") + kindName(b));
      }
      return Value::boolean(op == "in" ? r : !r);
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (isNumber(a) && isNumber(b)) {
        double x = asDouble(a), y = asDouble(b);
        c = x < y ? -1 : x > y ? 1 : 0;
      } else if (a.kind == Kind::String && b.kind == Kind::String) {
        c = a.s.text.compare(b.s.text);
      } else {
        fail(e.pos, "cannot compare " + std::string(kindName(a)) + " and " + kindName(b) + " with '" + op + "'");
      }
      bool r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
      return Value::boolean(r);
    }
    if (op == "+" && a.kind == Kind::String && b.kind == Kind::String) {
      MarkedString r = a.s;
      r.append(b.s);
      return Value::string(std::move(r));
    }
    if (op == "+" && a.kind == Kind::List && b.kind == Kind::List) {
      std::vector<Value> r = *a.list;
      r.insert(r.end(), b.list->begin(), b.list->end());
      return Value::makeList(std::move(r));
    }
    if (op == "*" && ((a.kind == Kind::String && b.kind == Kind::Int) || (a.kind == Kind::Int && b.kind == Kind::String))) {
      const Value &s = a.kind == Kind::String ? a : b;
      int64_t n = a.kind == Kind::Int ? a.i : b.i;
      if (n > kMaxRange || static_cast<int64_t>(s.s.text.size()) * std::max<int64_t>(n, 0) > kMaxRange)
        fail(e.pos, "string repetition too large");
      MarkedString r;
      for (int64_t k = 0; k < n; ++k)
        r.append(s.s);
      return Value::string(std::move(r));
    }
    if (!isNumber(a) || !isNumber(b))
      fail(e.pos, "unsupported operand types for '" + op + "': " + kindName(a) + " and " + kindName(b));
    bool isFloat = a.kind == Kind::Float || b.kind == Kind::Float;
    if (op == "/") {
      if (asDouble(b) == 0)
        fail(e.pos, "division by zero");
      return Value::floating(asDouble(a) / asDouble(b));
    }
    if (isFloat) {
      double x = asDouble(a), y = asDouble(b);
      if (op == "+") return Value::floating(x + y);
      if (op == "-") return Value::floating(x - y);
      if (op == "*") return Value::floating(x * y);
      if (y == 0)
        fail(e.pos, "division by zero");
      if (op == "//") return Value::floating(std::floor(x / y));
      return Value::floating(x - y * std::floor(x / y));
    }
    int64_t x = asInt(a), y = asInt(b);
    if (op == "+") return Value::integer(x + y);
    if (op == "-") return Value::integer(x - y);
    if (op == "*") return Value::integer(x * y);
    if (y == 0)
      fail(e.pos, "division by zero");
    int64_t q = x / y, r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) { // Python floors
      --q;
      r += y;
    }
    return Value::integer(op == "//" ? q : r);
  }

  Value eval(const Expr &e) {
    switch (e.type) {
    case Expr::Type::Literal: return e.lit;
    case Expr::Type::Name: return lookup(e.name);
    case Expr::Type::Attr: return getAttr(eval(*e.args[0]), e.name, e.pos);
    case Expr::Type::Item: return getItem(eval(*e.args[0]), eval(*e.args[1]), e.pos);
    case Expr::Type::Slice: return slice(e);
    case Expr::Type::Not: return Value::boolean(!truthy(eval(*e.args[0])));
    case Expr::Type::Neg: {
      Value v = eval(*e.args[0]);
      if (v.kind == Kind::Int || v.kind == Kind::Bool)
        return Value::integer(-asInt(v));
      if (v.kind == Kind::Float)
        return Value::floating(-v.f);
      fail(e.pos, std::string("cannot negate a value of type ") + kindName(v));
    }
    case Expr::Type::And: {
      Value a = eval(*e.args[0]);
      return truthy(a) ? eval(*e.args[1]) : a;
    }
    case Expr::Type::Or: {
      Value a = eval(*e.args[0]);
      return truthy(a) ? a : eval(*e.args[1]);
    }
    case Expr::Type::Cond:
      if (truthy(eval(*e.args[0])))
        return eval(*e.args[1]);
      return e.args[2] ? eval(*e.args[2]) : Value();
    case Expr::Type::Binary: return binary(e);
    case Expr::Type::ListLit: {
      std::vector<Value> items;
      for (const auto &a : e.args)
        items.push_back(eval(*a));
      return Value::makeList(std::move(items));
    }
    case Expr::Type::DictLit: {
      Value d = Value::makeDict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = eval(*e.args[k]);
        if (key.kind != Kind::String)
          fail(e.args[k]->pos, std::string("dict keys must be strings, not ") + kindName(key));
        d.dict->set(key.s.text, eval(*e.args[k + 1]));
      }
      return d;
    }
    case Expr::Type::Filter: return filter(e);
    case Expr::Type::Test: {
      bool r = test(e);
      return Value::boolean(e.negate ? !r : r);
    }
    case Expr::Type::Call: return call(e);
    }
    fail(e.pos, "unknown expression");
  }

  std::vector<Value> evalArgs(const Expr &e, size_t from) {
    std::vector<Value> r;
    for (size_t k = from; k < e.args.size(); ++k)
      r.push_back(eval(*e.args[k]));
    return r;
  }

  void arity(const Expr &e, const std::string &what, size_t got, size_t lo, size_t hi) {
    if (got < lo || got > hi)
      fail(e.pos, what + " takes " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                      " arguments, got " + std::to_string(got));
  }

  const std::string &needString(const Value &v, const Expr &e, const std::string &what) {
    if (v.kind != Kind::String)
      fail(e.pos, what + " needs a string, got " + kindName(v));
    return v.s.text;
  }

  Value kwarg(const Expr &e, const char *name) {
    for (const auto &kw : e.kwargs)
      if (kw.first == name)
        return eval(*kw.second);
    return Value();
  }

  void noKwargs(const Expr &e, const std::string &what, std::initializer_list<const char *> allowed = {}) {
    for (const auto &kw : e.kwargs)
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char *a) { return kw.first == a; }))
        fail(kw.second->pos, what + " got an unexpected keyword argument '" + kw.first + "'");
  }

  Value filter(const Expr &e) {
    const std::string &f = e.name;
    Value v = eval(*e.args[0]);
    std::vector<Value> a = evalArgs(e, 1);
    std::string what = "filter '" + f + "'";
    if (f == "tojson") {
      noKwargs(e, what, {"indent"});
      Value ind = kwarg(e, "indent");
      if (ind.kind == Kind::Undefined && !a.empty())
        ind = a[0];
      int indent = ind.kind == Kind::Int ? static_cast<int>(ind.i) : -1;
      std::string out;
      jsonDump(v, indent, 0, out, e.pos);
      return Value::string(out);
    }
    noKwargs(e, what);
    if (f == "default" || f == "d") {
      arity(e, what, a.size(), 0, 2);
      bool boolean = a.size() > 1 && truthy(a[1]);
      bool useDefault = v.kind == Kind::Undefined || (boolean && !truthy(v));
      return useDefault ? (a.empty() ? Value::string("") : a[0]) : v;
    }
    if (v.kind == Kind::Undefined)
      fail(e.pos, what + " applied to an undefined value");
    if (f == "trim") {
      arity(e, what, a.size(), 0, 1);
      const std::string *chars = a.empty() || a[0].kind == Kind::None ? nullptr : &needString(a[0], e, what);
      return Value::string(stripString(MarkedString{needString(v, e, what), v.s.marks}, true, true, chars));
    }
    arity(e, what, a.size(), 0, f == "join" || f == "replace" || f == "int" || f == "float" ? 2 : 0);
    if (f == "length" || f == "count") {
      switch (v.kind) {
      case Kind::String: return Value::integer(static_cast<int64_t>(codePoints(v.s.text).size()) - 1);
      case Kind::List: return Value::integer(static_cast<int64_t>(v.list->size()));
      case Kind::Dict: return Value::integer(static_cast<int64_t>(v.dict->entries.size()));
      default: fail(e.pos, what + " needs a string, list or dict, got " + kindName(v));
      }
    }
    if (f == "string")
      return Value::string(pyStr(v));
    if (f == "upper" || f == "lower") {
      std::string s = needString(v, e, what);
      for (char &c : s)
        c = static_cast<char>(f == "upper" ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
      return Value::string(MarkedString{s, v.s.marks});
    }
    if (f == "capitalize" || f == "title") {
      std::string s = needString(v, e, what);
      bool start = true;
      for (char &c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (f == "capitalize") {
          c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
          start = false;
        } else {
          c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
          start = !std::isalpha(u);
        }
      }
      return Value::string(MarkedString{s, v.s.marks});
    }
    if (f == "first" || f == "last") {
      std::vector<Value> items = iterate(v, e.pos);
      if (items.empty())
        return Value();
      return f == "first" ? items.front() : items.back();
    }
    if (f == "list")
      return Value::makeList(iterate(v, e.pos));
    if (f == "reverse") {
      if (v.kind == Kind::String) {
        auto cps = codePoints(v.s.text);
        MarkedString r;
        for (size_t k = cps.size() - 1; k > 0; --k)
          r.append(v.s.substr(cps[k - 1], cps[k] - cps[k - 1]));
        return Value::string(std::move(r));
      }
      std::vector<Value> items = iterate(v, e.pos);
      std::reverse(items.begin(), items.end());
      return Value::makeList(std::move(items));
    }
    if (f == "items") {
      if (v.kind != Kind::Dict)
        fail(e.pos, what + " needs a dict, got " + kindName(v));
      return dictItems(v);
    }
    if (f == "join") {
      if (a.size() > 1)
        fail(e.pos, what + " with an attribute is not supported");
      MarkedString sep;
      if (!a.empty())
        sep = MarkedString{needString(a[0], e, what), a[0].s.marks};
      MarkedString r;
      bool first = true;
      for (const auto &x : iterate(v, e.pos)) {
        if (!first)
          r.append(sep);
        first = false;
        r.append(pyStr(x));
      }
      return Value::string(std::move(r));
    }
    if (f == "replace") {
      arity(e, what, a.size(), 2, 2);
      return replaceAll(v, a[0], a[1], e, what);
    }
    if (f == "int") {
      if (isNumber(v))
        return Value::integer(v.kind == Kind::Float ? static_cast<int64_t>(v.f) : asInt(v));
      if (v.kind == Kind::String) {
        char *end = nullptr;
        long long r = std::strtoll(v.s.text.c_str(), &end, 10);
        if (end && *end == '\0' && !v.s.text.empty())
          return Value::integer(r);
      }
      return a.empty() ? Value::integer(0) : a[0];
    }
    if (f == "float") {
      if (isNumber(v))
        return Value::floating(asDouble(v));
      return a.empty() ? Value::floating(0) : a[0];
    }
    if (f == "abs") {
      if (v.kind == Kind::Float)
        return Value::floating(std::fabs(v.f));
      if (isNumber(v))
        return Value::integer(std::llabs(asInt(v)));
      fail(e.pos, what + " needs a number, got " + kindName(v));
    }
    if (f == "safe" || f == "e" || f == "escape")
      fail(e.pos, "unsupported filter '" + f + "'");
    fail(e.pos, "unsupported filter '" + f + "' (supported: trim, length, count, tojson, string, upper, lower, "
                "capitalize, title, first, last, list, reverse, items, join, replace, default, int, float, abs)");
  }

  Value dictItems(const Value &v) {
    std::vector<Value> items;
    for (const auto &en : v.dict->entries)
      items.push_back(Value::makeList({Value::string(en.first), en.second}));
    return Value::makeList(std::move(items));
  }

  Value replaceAll(const Value &v, const Value &from, const Value &to, const Expr &e, const std::string &what) {
    const std::string &s = needString(v, e, what);
    const std::string &x = needString(from, e, what);
    MarkedString y{needString(to, e, what), to.s.marks};
    MarkedString r;
    size_t pos = 0;
    if (x.empty())
      fail(e.pos, what + " with an empty pattern is not supported");
    while (true) {
      size_t f = s.find(x, pos);
      if (f == std::string::npos)
        break;
      r.append(v.s.substr(pos, f - pos));
      r.append(y);
      pos = f + x.size();
    }
    r.append(v.s.substr(pos));
    return Value::string(std::move(r));
  }

  bool test(const Expr &e) {
    const std::string &t = e.name;
    Value v = eval(*e.args[0]);
    std::vector<Value> a = evalArgs(e, 1);
    std::string what = "test '" + t + "'";
    size_t want = (t == "sameas" || t == "eq" || t == "equalto" || t == "divisibleby" || t == "in") ? 1 : 0;
    arity(e, what, a.size(), want, want);
    if (t == "defined") return v.kind != Kind::Undefined;
    if (t == "undefined") return v.kind == Kind::Undefined;
    if (t == "none") return v.kind == Kind::None;
    if (t == "string") return v.kind == Kind::String;
    if (t == "number") return v.kind == Kind::Int || v.kind == Kind::Float;
    if (t == "integer") return v.kind == Kind::Int;
    if (t == "float") return v.kind == Kind::Float;
    if (t == "boolean") return v.kind == Kind::Bool;
    if (t == "true") return v.kind == Kind::Bool && v.b;
    if (t == "false") return v.kind == Kind::Bool && !v.b;
    if (t == "mapping") return v.kind == Kind::Dict;
    if (t == "sequence") return v.kind == Kind::List || v.kind == Kind::String || v.kind == Kind::Dict;
    if (t == "iterable") return v.kind == Kind::List || v.kind == Kind::String || v.kind == Kind::Dict;
    if (t == "sameas") {
      if (v.kind != a[0].kind)
        return false;
      if (v.kind == Kind::List) return v.list == a[0].list;
      if (v.kind == Kind::Dict) return v.dict == a[0].dict;
      return equal(v, a[0]);
    }
    if (t == "eq" || t == "equalto") return equal(v, a[0]);
    if (t == "odd" || t == "even" || t == "divisibleby") {
      if (v.kind != Kind::Int)
        fail(e.pos, what + " needs an integer, got " + kindName(v));
      if (t == "divisibleby") {
        if (a[0].kind != Kind::Int || a[0].i == 0)
          fail(e.pos, what + " needs a non-zero integer argument");
        return v.i % a[0].i == 0;
      }
      return (v.i % 2 != 0) == (t == "odd");
    }
    fail(e.pos, "unsupported test '" + t + "'");
  }

  Value call(const Expr &e) {
    const Expr &callee = *e.args[0];
    if (callee.type == Expr::Type::Attr)
      return method(e, eval(*callee.args[0]), callee.name);
    if (callee.type != Expr::Type::Name)
      fail(e.pos, "only functions and methods can be called");
    const std::string &fn = callee.name;
    std::vector<Value> a = evalArgs(e, 1);
    if (fn == "namespace") {
      Value ns = Value::makeDict();
      ns.dict->isNamespace = true;
      for (const auto &x : a) {
        if (x.kind != Kind::Dict)
          fail(e.pos, "namespace() takes keyword arguments or dicts");
        for (const auto &en : x.dict->entries)
          ns.dict->set(en.first, en.second);
      }
      for (const auto &kw : e.kwargs)
        ns.dict->set(kw.first, eval(*kw.second));
      return ns;
    }
    if (fn == "dict") {
      Value d = Value::makeDict();
      for (const auto &kw : e.kwargs)
        d.dict->set(kw.first, eval(*kw.second));
      return d;
    }
    noKwargs(e, fn + "()");
    if (fn == "raise_exception") {
      arity(e, "raise_exception()", a.size(), 1, 1);
      fail(e.pos, "template raised: " + pyStr(a[0]).text);
    }
    if (fn == "range") {
      arity(e, "range()", a.size(), 1, 3);
      for (const auto &x : a)
        if (x.kind != Kind::Int)
          fail(e.pos, std::string("range() needs integers, got ") + kindName(x));
      int64_t start = a.size() > 1 ? a[0].i : 0, stop = a.size() > 1 ? a[1].i : a[0].i;
      int64_t step = a.size() > 2 ? a[2].i : 1;
      if (step == 0)
        fail(e.pos, "range() step must not be zero");
      std::vector<Value> r;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (static_cast<int64_t>(r.size()) >= kMaxRange)
          fail(e.pos, "range() longer than 16777216 elements");
        r.push_back(Value::integer(i));
      }
      return Value::makeList(std::move(r));
    }
    Value v = lookup(fn);
    if (v.kind == Kind::Undefined)
      fail(e.pos, "unknown function '" + fn + "' (supported: namespace, dict, range, raise_exception)");
    fail(e.pos, "'" + fn + "' (" + kindName(v) + ") is not callable");
  }

  Value method(const Expr &e, const Value &obj, const std::string &m) {
    std::vector<Value> a = evalArgs(e, 1);
    std::string what = "method '" + m + "'";
    if (obj.kind == Kind::Dict && !obj.dict->isNamespace) {
      noKwargs(e, what);
      if (m == "items") {
        arity(e, what, a.size(), 0, 0);
        return dictItems(obj);
      }
      if (m == "keys" || m == "values") {
        arity(e, what, a.size(), 0, 0);
        std::vector<Value> r;
        for (const auto &en : obj.dict->entries)
          r.push_back(m == "keys" ? Value::string(en.first) : en.second);
        return Value::makeList(std::move(r));
      }
      if (m == "get") {
        arity(e, what, a.size(), 1, 2);
        const Value *v = a[0].kind == Kind::String ? obj.dict->find(a[0].s.text) : nullptr;
        return v ? *v : (a.size() > 1 ? a[1] : Value::none());
      }
      fail(e.pos, "unsupported dict " + what + " (supported: items, keys, values, get)");
    }
    if (obj.kind != Kind::String) {
      if (obj.kind == Kind::Undefined)
        fail(e.pos, "cannot call " + what + " of an undefined value");
      fail(e.pos, "unsupported " + what + " on a value of type " + kindName(obj));
    }
    if (m == "split" || m == "rsplit") {
      noKwargs(e, what, {"sep", "maxsplit"});
      arity(e, what, a.size(), 0, 2);
      Value sep = a.size() > 0 ? a[0] : kwarg(e, "sep");
      Value mx = a.size() > 1 ? a[1] : kwarg(e, "maxsplit");
      int64_t maxsplit = mx.kind == Kind::Int ? mx.i : -1;
      return split(obj.s, sep, maxsplit, m == "rsplit", e);
    }
    noKwargs(e, what);
    if (m == "strip" || m == "lstrip" || m == "rstrip") {
      arity(e, what, a.size(), 0, 1);
      const std::string *chars = a.empty() || a[0].kind == Kind::None ? nullptr : &needString(a[0], e, what);
      return Value::string(stripString(obj.s, m != "rstrip", m != "lstrip", chars));
    }
    if (m == "startswith" || m == "endswith") {
      arity(e, what, a.size(), 1, 1);
      std::vector<Value> pats = a[0].kind == Kind::List ? *a[0].list : std::vector<Value>{a[0]};
      const std::string &s = obj.s.text;
      for (const auto &p : pats) {
        const std::string &x = needString(p, e, what);
        bool hit = m == "startswith" ? s.compare(0, x.size(), x) == 0
                                     : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
        if (hit)
          return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (m == "upper" || m == "lower" || m == "title" || m == "capitalize") {
      arity(e, what, a.size(), 0, 0);
      Expr f = e;
      f.type = Expr::Type::Filter;
      f.name = m;
      auto lit = std::make_shared<Expr>();
      lit->type = Expr::Type::Literal;
      lit->lit = obj;
      f.args = {lit};
      return filter(f);
    }
    if (m == "replace") {
      arity(e, what, a.size(), 2, 2);
      return replaceAll(obj, a[0], a[1], e, what);
    }
    fail(e.pos, "unsupported string " + what +
                    " (supported: split, rsplit, strip, lstrip, rstrip, startswith, endswith, upper, "
                    "lower, title, capitalize, replace)");
  }

  Value split(const MarkedString &s, const Value &sepV, int64_t maxsplit, bool fromRight, const Expr &e) {
    std::vector<MarkedString> parts;
    const std::string &t = s.text;
    if (sepV.kind == Kind::Undefined || sepV.kind == Kind::None) {
      // Python whitespace split: runs of whitespace separate, no empty strings.
      std::vector<std::pair<size_t, size_t>> words;
      size_t k = 0;
      while (k < t.size()) {
        while (k < t.size() && isSpace(t[k]))
          ++k;
        size_t b = k;
        while (k < t.size() && !isSpace(t[k]))
          ++k;
        if (k > b)
          words.emplace_back(b, k);
      }
      if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
        // Keep the first (or last) maxsplit words; the rest stays one piece, stripped of
        // the whitespace at the split side only.
        std::vector<std::pair<size_t, size_t>> cut;
        if (!fromRight) {
          cut.assign(words.begin(), words.begin() + maxsplit);
          cut.emplace_back(words[maxsplit].first, words.back().second);
        } else {
          size_t first = words.size() - maxsplit;
          cut.emplace_back(words.front().first, words[first - 1].second);
          cut.insert(cut.end(), words.begin() + first, words.end());
        }
        words = cut;
      }
      for (auto [b, en] : words)
        parts.push_back(s.substr(b, en - b));
    } else {
      const std::string &sep = needString(sepV, e, "method 'split'");
      if (sep.empty())
        fail(e.pos, "split() separator must not be empty");
      std::vector<size_t> hits;
      for (size_t p = t.find(sep); p != std::string::npos; p = t.find(sep, p + sep.size()))
        hits.push_back(p);
      if (maxsplit >= 0 && static_cast<int64_t>(hits.size()) > maxsplit) {
        if (fromRight)
          hits.erase(hits.begin(), hits.end() - maxsplit);
        else
          hits.resize(maxsplit);
      }
      size_t b = 0;
      for (size_t h : hits) {
        parts.push_back(s.substr(b, h - b));
        b = h + sep.size();
      }
      parts.push_back(s.substr(b));
    }
    std::vector<Value> r;
    for (auto &p : parts)
      r.push_back(Value::string(std::move(p)));
    return Value::makeList(std::move(r));
  }
};

} // namespace

struct Template::Impl {
  std::string name;
  Body body;
};

Expected<Template> Template::parse(std::string_view source, std::string name) {
  try {
    Lexer lx(source);
    Parser ps(lx.run());
    auto impl = std::make_shared<Impl>();
    impl->name = name;
    impl->body = ps.parseTemplate();
    Template t;
    t.impl_ = std::move(impl);
    return t;
  } catch (const JinjaError &err) {
    return Status::invalid(name + ":" + std::to_string(err.pos.line) + ":" + std::to_string(err.pos.col) + ": " +
                           err.what());
  }
}

Expected<MarkedString> Template::render(const Value &globals) const {
  if (!impl_)
    return Status::invalid("rendering an empty template");
  if (globals.kind != Kind::Dict)
    return Status::invalid(impl_->name + ": template globals must be a dict");
  try {
    Evaluator ev(globals);
    ev.exec(impl_->body);
    return std::move(ev.out);
  } catch (const JinjaError &err) {
    return Status::invalid(impl_->name + ":" + std::to_string(err.pos.line) + ":" + std::to_string(err.pos.col) +
                           ": " + err.what());
  }
}

Expected<std::string> toJson(const Value &v, int indent) {
  try {
    std::string out;
    jsonDump(v, indent, 0, out, Pos{});
    return out;
  } catch (const JinjaError &err) {
    return Status::invalid(err.what());
  }
}

} // namespace lrt::jinja
