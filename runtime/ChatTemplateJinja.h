// SPDX-License-Identifier: Apache-2.0
/// The Jinja subset that real chat templates use (Hugging Face `tokenizer_config.json`
/// `chat_template` and GGUF `tokenizer.chat_template`), rendered as `transformers`'
/// `apply_chat_template` renders them: Jinja2 with `trim_blocks=True`,
/// `lstrip_blocks=True`, the `loopcontrols` extension, Hugging Face's `tojson` (Python
/// `json.dumps` with `ensure_ascii=False`) and `raise_exception`.
///
/// Supported: text, `{{ }}`, `{% %}`, `{# #}` with `-`/`+` whitespace control; statements
/// `if`/`elif`/`else`, `for x in ...` (tuple targets, `if` filter, `else`), `set x = ...`,
/// `set ns.attr = ...`, `break`, `continue`, `generation`/`endgeneration` (transparent);
/// expressions with Jinja's precedence (`if`-`else`, `or`, `and`, `not`, comparisons, `in`,
/// `not in`, `+ -`, `~`, `* / // %`, unary `-`, filters, `is [not]` tests, attributes,
/// subscripts, slices, calls), literals (strings, numbers, booleans, `none`, lists,
/// dicts), `loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem`,
/// `namespace(...)`, `range(...)`, `raise_exception(msg)`, Python string methods
/// (`startswith`, `endswith`, `split`, `rsplit`, `strip`, `lstrip`, `rstrip`, `upper`,
/// `lower`, `replace`, `title`, `capitalize`), dict methods (`items`, `keys`, `values`,
/// `get`) and the filters listed in docs/runtime.md. Anything else is a clear error with
/// the template's line and column, never undefined behaviour.
///
/// Strings carry a per-byte source mark so that a caller can find where the bytes of a
/// given input string (an assistant message's content) ended up in the output, through
/// concatenation, slicing, `trim` and `split`.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lrt::jinja {

/// UTF-8 bytes with an optional source mark per byte (`marks` is empty, meaning all 0, or
/// has one entry per byte of `text`).
struct MarkedString {
  std::string text;
  std::vector<uint16_t> marks;

  /// Appends `o`, keeping both strings' marks.
  void append(const MarkedString &o);
  void append(std::string_view plain);
  /// Bytes [pos, pos + n) with their marks.
  MarkedString substr(size_t pos, size_t n = std::string::npos) const;
  /// The mark of byte `i` (0 when unmarked).
  uint16_t markAt(size_t i) const { return marks.empty() ? 0 : marks[i]; }
};

struct Value;
/// Insertion-ordered string-keyed map (Python dicts keep insertion order, and `tojson`
/// and `items()` follow it).
struct Dict {
  std::vector<std::pair<std::string, Value>> entries;
  bool isNamespace = false; ///< made by namespace(): attributes may be assigned

  /// The value of `key`, or nullptr.
  const Value *find(std::string_view key) const;
  /// Sets (or adds, at the end) `key`.
  void set(std::string key, Value v);
};

/// A template value: Jinja's Undefined, Python's None/bool/int/float/str/list/dict.
/// Lists and dicts are shared by reference, as in Python (namespace attributes assigned
/// inside a loop are seen after it).
struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  MarkedString s;
  std::shared_ptr<std::vector<Value>> list;
  std::shared_ptr<struct Dict> dict;

  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value floating(double v);
  static Value string(std::string v, uint16_t mark = 0);
  static Value string(MarkedString v);
  static Value makeList(std::vector<Value> items = {});
  static Value makeDict();
};

/// A parsed template. Parsing checks the whole syntax; rendering evaluates it against
/// global variables.
class Template {
public:
  /// Parses `source`; `name` prefixes messages. Errors: InvalidArgument
  /// "`name`:LINE:COL: <what was expected and found>" for a syntax error or a construct
  /// outside the supported subset (macros, call blocks, unknown statements).
  static Expected<Template> parse(std::string_view source, std::string name);

  /// Renders with `globals` (a Dict value: `messages`, `add_generation_prompt`,
  /// `bos_token`, ...). Errors: InvalidArgument "`name`:LINE:COL: ..." for a type error,
  /// an unknown filter/test/method, or an undefined value used in an operation;
  /// `raise_exception(msg)` gives InvalidArgument "`name`:LINE:COL: template raised: msg".
  Expected<MarkedString> render(const Value &globals) const;

  struct Impl;

private:
  std::shared_ptr<const Impl> impl_;
};

/// Python `json.dumps(v, ensure_ascii=False)` (separators ", " and ": "; `indent` >= 0
/// puts each item on its own line indented by that many spaces per level, as Python does).
/// Errors: InvalidArgument for Undefined.
Expected<std::string> toJson(const Value &v, int indent = -1);

} // namespace lrt::jinja
