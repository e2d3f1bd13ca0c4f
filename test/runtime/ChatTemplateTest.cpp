// SPDX-License-Identifier: Apache-2.0
// Tests of runtime/ChatTemplate and its Jinja subset (runtime/ChatTemplateJinja). The
// expected outputs of the Jinja cases were rendered by Jinja2 3.1 configured as
// transformers configures it (ImmutableSandboxedEnvironment with trim_blocks=True,
// lstrip_blocks=True, the loopcontrols extension and json.dumps as `tojson`), with
// xs = [1, 2] and x = "v". Comparisons with transformers' apply_chat_template on the real
// templates are in test/e2e/chat_template.py.
#include "runtime/ChatTemplate.h"

#include "runtime/BpeTokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace {

using lrt::ChatMessage;
using lrt::ChatTemplate;

lrt::jinja::Value globals() {
  using lrt::jinja::Value;
  Value g = Value::makeDict();
  g.dict->set("xs", Value::makeList({Value::integer(1), Value::integer(2)}));
  g.dict->set("x", Value::string("v"));
  return g;
}

/// The rendering of `src`, or the error message.
std::string render(const std::string &src) {
  auto t = lrt::jinja::Template::parse(src, "t");
  if (!t)
    return "error: " + t.status().message();
  auto r = t->render(globals());
  if (!r)
    return "error: " + r.status().message();
  return r->text;
}

struct Case {
  const char *src, *want;
};

// Expected values: Jinja2 3.1 as described at the top of the file.
const Case kCases[] = {
    {"{% for x in xs %}\n  {{ x }}\n{% endfor %}",
     "  1\n  2\n"},
    {"a  {%- if true -%}  b  {%- endif %}  c",
     "ab  c"},
    {"{# comment #}\n  {% if 1 %}x{% endif %}\ny\n    {%+ if 1 %}z{% endif +%}\nw",
     "xy\n    z\nw"},
    {"{{ 'a' ~ 1 ~ none ~ true }}",
     "a1NoneTrue"},
    {"{{ [1, 'b', none, 'it\\'s'] }}",
     "[1, 'b', None, \"it's\"]"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 2.5e-5 }}",
     "3 -4 -2 3.5 1.0 0.30000000000000004 1e+20 2.5e-05"},
    {"{% set ns = namespace(n=0) %}{% for i in range(5) %}{% if i is odd %}{% set ns.n = ns.n + i %}{% endif %}{% endfor %}{{ ns.n }}",
     "4"},
    {"{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}",
     "21"},
    {"{% for c in 'héllo' %}{{ loop.index0 }}{{ c }}{% if not loop.last %},{% endif %}{% endfor %}",
     "0h,1é,2l,3l,4o"},
    {"{{ 'héllo'[::-1] }}|{{ [1,2,3,4][1:3] }}|{{ 'abc'[-1] }}|{{ [1,2,3][::-1] }}|{{ 'abcdef'[1:-1:2] }}",
     "olléh|[2, 3]|c|[3, 2, 1]|bd"},
    {"{{ ' a b '.strip() }}|{{ 'x</think>y'.split('</think>')[-1] }}|{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'Hello'.startswith('He') }}|{{ 'abc'.replace('b','XX') }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}",
     "a b|y|['a', 'b', '', 'c']|['a', 'b']|True|aXXc|x\n"},
    {"{{ {'a': [1, 2.5, none, true], 'b': 'q\"\\n é\\t'} | tojson }}",
     "{\"a\": [1, 2.5, null, true], \"b\": \"q\\\"\\n é\\t\"}"},
    {"{{ x is defined }}{{ y is defined }}{{ x is not none }}{{ 3 in [1,3] }}{{ 'b' not in 'abc' }}{{ 'k' in {'k': 1} }}{{ x is string }}{{ false is false }}",
     "TrueFalseTrueTrueFalseTrueTrueTrue"},
    {"{{ 'y' if 0 else 'n' }}[{{ 'z' if 0 }}]",
     "n[]"},
    {"{{ 'abc'|length }}{{ [3,4]|first }}{{ [3,4]|last }}{{ ['a','b']|join('-') }}{{ 'aB'|upper }}{{ x|default('d') }}{{ u|default('d') }}{{ '  t  '|trim }}{{ 5|string ~ 'x' }}",
     "334a-bABvdt5x"},
    {"{% for i in [1,2,3] %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}{% for i in [] %}x{% else %}empty{% endfor %}{% for i in [1,2,3] if i != 2 %}{{ i }}{{ loop.length }}{% endfor %}",
     "1empty1232"},
    {"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
     "a=1;b=2;"},
    {"{{ 1 + 2 * 3 }} {{ 'a' ~ 2 * 3 }} {{ not 1 == 2 }} {{ [1,2]|length - 1 }} {{ 2 - 3 - 4 }} {{ 1 or 0 }} {{ 0 and 1 }} {{ 'a' < 'b' }}",
     "7 a6 True 1 -5 1 0 True"},
    {"{%- if x == 'v' %}\n    yes\n{%- elif x == 'w' %}\n    w\n{%- else %}\n    no\n{%- endif %}\n",
     "    yes"},
};

} // namespace

TEST(ChatTemplateTest, JinjaSubsetMatchesJinja2) {
  for (const Case &c : kCases)
    EXPECT_EQ(render(c.src), c.want) << "template: " << c.src;
}

// Errors name the template position (line:col, 1-based) and say what was expected.
TEST(ChatTemplateTest, ClearErrorsWithPositions) {
  EXPECT_EQ(render("ab\n{% if x %}abc"),
            "error: t:2:1: 'if' is not closed: expected 'elif' or 'else' or 'endif' before the end of "
            "the template");
  EXPECT_EQ(render("{{ x | nosuch }}").rfind("error: t:1:6: unsupported filter 'nosuch'", 0), 0u);
  EXPECT_EQ(render("{% macro m() %}{% endmacro %}").rfind("error: t:1:1: unsupported statement 'macro'", 0), 0u);
  EXPECT_EQ(render("line1\n  {{ raise_exception('bad role') }}"), "error: t:2:6: template raised: bad role");
  EXPECT_EQ(render("{{ 'a' + 1 }}"), "error: t:1:8: unsupported operand types for '+': string and int");
  EXPECT_EQ(render("{{ x "), "error: t:1:1: unterminated tag: expected '}}'");
  EXPECT_EQ(render("{{ 'abc }}"), "error: t:1:4: unterminated string literal");
  EXPECT_EQ(render("{% endfor %}"), "error: t:1:1: unexpected 'endfor' with no open block");
  EXPECT_EQ(render("{{ u.role }}"), "error: t:1:5: cannot read attribute 'role' of an undefined value");
  EXPECT_EQ(render("{% set y = 1 %}{% set y.a = 2 %}"),
            "error: t:1:16: cannot assign attribute 'a' of 'y' (int); only namespace() objects take attributes");
  // Deep nesting is an error, not a stack overflow.
  EXPECT_EQ(render("{{" + std::string(5000, '(') + "1" + std::string(5000, ')') + "}}"),
            "error: t:1:103: template nests too deeply (more than 200 levels)");
  std::string deep;
  for (int i = 0; i < 1000; ++i)
    deep += "{% if 1 %}";
  EXPECT_NE(render(deep).find("nests too deeply"), std::string::npos);
}

// Marks follow the bytes of a string through concatenation, trim, split and slicing.
TEST(ChatTemplateTest, MarksFollowContentBytes) {
  using lrt::jinja::Value;
  auto t = lrt::jinja::Template::parse("[{{ ('<' + m|trim + '>').split('>')[0][1:] }}]", "t");
  ASSERT_TRUE(t.isOk()) << t.status().message();
  Value g = Value::makeDict();
  g.dict->set("m", Value::string("  ab  ", 7));
  auto r = t->render(g);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->text, "[ab]");
  ASSERT_EQ(r->marks.size(), 4u);
  EXPECT_EQ(r->marks, (std::vector<uint16_t>{0, 7, 7, 0}));
}

TEST(ChatTemplateTest, AssistantSpansAndEndOfTurn) {
  // A ChatML template written here; the rendering follows from it by hand.
  auto t = ChatTemplate::parse("{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + "
                               "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
                               "{{ '<|im_start|>assistant\\n' }}{% endif %}",
                               "chatml", {{"eos_token", "<|im_end|>"}});
  ASSERT_TRUE(t.isOk()) << t.status().message();
  std::vector<ChatMessage> conv = {{"user", "hi"}, {"assistant", "hi"}, {"user", "hi"}, {"assistant", "ok"}};
  lrt::ChatRenderOptions opts;
  opts.addGenerationPrompt = true;
  auto r = t->render(conv, opts);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  const std::string want = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhi<|im_end|>\n"
                           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"
                           "<|im_start|>assistant\n";
  EXPECT_EQ(r->text, want);
  // "<|im_start|>user\nhi<|im_end|>\n" is 30 bytes, "<|im_start|>assistant\n" 22, so the
  // first answer starts at 52 and runs over "hi<|im_end|>" (12 bytes); the second turn pair
  // is 30 + 22 bytes further on.
  using Span = std::pair<size_t, size_t>;
  EXPECT_EQ(r->assistantSpans, (std::vector<Span>{{52, 64}, {52 + 13 + 52, 52 + 13 + 52 + 12}}));
  // Without an end-of-turn string the spans are the content only.
  opts.endOfTurn = {"<|not-there|>"};
  auto bare = t->render(conv, opts);
  ASSERT_TRUE(bare.isOk());
  EXPECT_EQ(bare->assistantSpans, (std::vector<Span>{{52, 54}, {117, 119}}));
}

namespace {

/// ../shared/data (LLMP_SHARED_DATA overrides); empty when absent.
std::string sharedData() {
  const char *e = std::getenv("LLMP_SHARED_DATA");
  const char *src = std::getenv("LLMP_SOURCE_DIR");
  std::string d = e ? e : std::string(src ? src : ".") + "/../shared/data";
  return std::filesystem::is_directory(d + "/tokenizers") ? d : std::string();
}

} // namespace

// Issue #6: two assistant turns and a user turn whose text equals an assistant turn. The
// mask trains both assistant spans (content + <|eot_id|>) and masks the user's copy.
TEST(ChatTemplateTest, SftMaskTrainsEveryAssistantTurnOnly) {
  std::string data = sharedData();
  if (data.empty())
    GTEST_SKIP() << "shared data not found (set LLMP_SHARED_DATA or put it at <source>/../shared/data); skipping";
  auto t = ChatTemplate::fromTokenizerConfig(data + "/tokenizers/llama3/tokenizer_config.json");
  ASSERT_TRUE(t.isOk()) << t.status().message();
  auto tok = lrt::BpeTokenizer::fromHuggingFaceJson(data + "/tokenizers/llama3/tokenizer.json");
  ASSERT_TRUE(tok.isOk()) << tok.status().message();
  std::vector<ChatMessage> conv = {
      {"user", "What is 2+2?"}, {"assistant", "4"}, {"user", "4"}, {"assistant", "Yes, 4."}};
  lrt::ChatRenderOptions opts;
  opts.endOfTurn = {"<|eot_id|>"};
  auto r = t->render(conv, opts);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  // By hand from the Llama 3 template: BOS once, a header per message, content | trim,
  // <|eot_id|>, and an assistant header at the end (this template always adds it).
  const std::string H = "<|start_header_id|>", E = "<|end_header_id|>\n\n", eot = "<|eot_id|>";
  EXPECT_EQ(r->text, "<|begin_of_text|>" + H + "user" + E + "What is 2+2?" + eot + H + "assistant" + E + "4" + eot +
                         H + "user" + E + "4" + eot + H + "assistant" + E + "Yes, 4." + eot + H + "assistant" + E);
  auto ids = tok->encode(r->text);
  ASSERT_TRUE(ids.isOk());
  auto mask = lrt::assistantTokenMask(*r, *ids, *tok);
  ASSERT_TRUE(mask.isOk()) << mask.status().message();
  std::vector<std::string> runs;
  bool in = false;
  for (size_t i = 0; i < ids->size(); ++i) {
    if ((*mask)[i] && !in)
      runs.emplace_back();
    if ((*mask)[i])
      runs.back() += tok->tokenBytes((*ids)[i]);
    in = (*mask)[i];
  }
  EXPECT_EQ(runs, (std::vector<std::string>{"4" + eot, "Yes, 4." + eot}));
  // Tokens that are not the rendered text are refused.
  std::vector<int32_t> wrong = *ids;
  wrong[1] = (*ids)[2];
  EXPECT_FALSE(lrt::assistantTokenMask(*r, wrong, *tok).isOk());
}

TEST(ChatTemplateTest, ConfigWithoutTemplateIsAnError) {
  std::string data = sharedData();
  if (data.empty())
    GTEST_SKIP() << "shared data not found (set LLMP_SHARED_DATA or put it at <source>/../shared/data); skipping";
  auto t = ChatTemplate::fromTokenizerConfig(data + "/tokenizers/gpt2/tokenizer_config.json");
  ASSERT_FALSE(t.isOk());
  EXPECT_EQ(t.status().code(), lrt::StatusCode::NotFound);
  EXPECT_NE(t.status().message().find("has no chat template"), std::string::npos);
  auto missing = ChatTemplate::fromTokenizerConfig("/nonexistent/tokenizer_config.json");
  EXPECT_EQ(missing.status().code(), lrt::StatusCode::NotFound);
}
