// SPDX-License-Identifier: Apache-2.0
#include "runtime/Pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <fmt/format.h>

namespace lrt {

namespace pretok {
const char *const kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char *const kR50k =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)";
const char *const kCl100k =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";
const char *const kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char *const kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
} // namespace pretok

struct Pretokenizer::Code {
  pcre2_code *re = nullptr;
  bool jit = false;
  ~Code() {
    if (re)
      pcre2_code_free(re);
  }
};

namespace {
/// Per-thread match data and JIT stack, shared by all patterns (one ovector pair suffices).
struct MatchScratch {
  pcre2_match_data *md = nullptr;
  pcre2_jit_stack *stack = nullptr;
  pcre2_match_context *ctx = nullptr;
  MatchScratch() {
    md = pcre2_match_data_create(1, nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    if (ctx && stack)
      pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchScratch() {
    if (md) pcre2_match_data_free(md);
    if (ctx) pcre2_match_context_free(ctx);
    if (stack) pcre2_jit_stack_free(stack);
  }
};
MatchScratch &scratch() {
  thread_local MatchScratch s;
  return s;
}
std::string pcreMessage(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<char *>(buf);
}
} // namespace

Expected<Pretokenizer> Pretokenizer::compile(const std::string &pattern) {
  int err = 0;
  PCRE2_SIZE errOff = 0;
  pcre2_code *re = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF, &err, &errOff,
      nullptr);
  if (!re)
    return Status::invalid(fmt::format("pre-tokenizer regex '{}': {} at offset {}", pattern,
                                       pcreMessage(err), errOff));
  Pretokenizer p;
  p.code_ = std::make_shared<Code>();
  p.code_->re = re;
  p.code_->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  p.pattern_ = pattern;
  return p;
}

Status Pretokenizer::split(std::string_view text, std::vector<std::string_view> &out) const {
  MatchScratch &s = scratch();
  if (!s.md || !code_)
    return Status::internal("pre-tokenizer: out of memory for PCRE2 match data");
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, last = 0;
  while (pos <= text.size()) {
    int rc = code_->jit ? pcre2_jit_match(code_->re, subject, text.size(), pos, 0, s.md, s.ctx)
                        : pcre2_match(code_->re, subject, text.size(), pos, 0, s.md, s.ctx);
    if (rc == PCRE2_ERROR_NOMATCH)
      break;
    if (rc < 0)
      return Status::internal(fmt::format("pre-tokenizer regex '{}': match failed at byte {}: {}",
                                          pattern_, pos, pcreMessage(rc)));
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s.md);
    size_t b = ov[0], e = ov[1];
    if (e == b) { // empty match: step over one character (or invalid byte)
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80)
        ++pos;
      continue;
    }
    if (b > last)
      out.push_back(text.substr(last, b - last));
    out.push_back(text.substr(b, e - b));
    last = pos = e;
  }
  if (last < text.size())
    out.push_back(text.substr(last));
  return Status::ok();
}

namespace {
struct ByteMap {
  std::array<char32_t, 256> fwd{};
  std::array<int, 0x200> inv{};
  ByteMap() {
    inv.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      fwd[b] = keep ? char32_t(b) : char32_t(256 + n++);
      inv[fwd[b]] = b;
    }
  }
};
const ByteMap &byteMap() {
  static const ByteMap m;
  return m;
}
} // namespace

char32_t byteToUnicode(unsigned char b) { return byteMap().fwd[b]; }

std::string bytesToUnicodeString(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    char32_t c = byteMap().fwd[b];
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

Expected<std::string> unicodeStringToBytes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const ByteMap &m = byteMap();
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    char32_t cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size() &&
               (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) {
      cp = (char32_t(c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
      i += 2;
    } else {
      return Status::invalid(fmt::format("byte-level token '{}': byte {} is not a mapped "
                                         "character",
                                         std::string(s), i));
    }
    if (cp >= m.inv.size() || m.inv[cp] < 0)
      return Status::invalid(
          fmt::format("byte-level token '{}': U+{:04X} is not a mapped byte", std::string(s),
                      uint32_t(cp)));
    out += char(m.inv[cp]);
  }
  return out;
}

} // namespace lrt
