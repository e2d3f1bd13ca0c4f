// SPDX-License-Identifier: Apache-2.0
/// Pre-tokenisation for byte-level BPE: splitting text into pieces with the reference
/// regexes (GPT-2, Llama-3/cl100k, Qwen2) through PCRE2 (UTF + UCP, JIT-compiled), and
/// GPT-2's reversible bytes-to-unicode mapping used in vocabulary files.
#pragma once

#include "runtime/Status.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lrt {

/// The reference pre-tokenizer patterns.
namespace pretok {
/// GPT-2 (openai/gpt-2 encoder.py; Hugging Face ByteLevel with use_regex).
extern const char *const kGpt2;
/// tiktoken's r50k_base/p50k_base pattern (GPT-2's, with possessive quantifiers).
extern const char *const kR50k;
/// tiktoken's cl100k_base pattern.
extern const char *const kCl100k;
/// llama.cpp's LLAMA3 ("llama-bpe") pattern: Llama-3's with case-insensitive contractions
/// spelled out, digits in groups of up to three.
extern const char *const kLlama3;
/// llama.cpp's QWEN2 pattern: as Llama-3's but one digit per piece.
extern const char *const kQwen2;
} // namespace pretok

/// A compiled splitting regex. Matches and the text between them are pieces (Hugging Face
/// `Split` with behaviour `Isolated`). The subject may hold invalid UTF-8: such bytes never
/// match and end up in the between-match pieces. Thread-safe (const use).
class Pretokenizer {
public:
  /// Compiles `pattern` with PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY |
  /// PCRE2_MATCH_INVALID_UTF and JIT-compiles it. Errors: InvalidArgument with PCRE2's
  /// message and the offset in the pattern.
  static Expected<Pretokenizer> compile(const std::string &pattern);

  /// Appends the pieces of `text` (views into it, in order, covering it exactly) to `out`.
  /// Errors: Internal if PCRE2 fails to match (e.g. JIT stack exhausted).
  Status split(std::string_view text, std::vector<std::string_view> &out) const;

  const std::string &pattern() const { return pattern_; }

private:
  struct Code;
  std::shared_ptr<Code> code_;
  std::string pattern_;
};

/// GPT-2's bytes_to_unicode(): the code point each byte is written as in vocabulary files
/// (printable Latin-1 bytes map to themselves, the others to U+0100 upwards).
char32_t byteToUnicode(unsigned char b);
/// `bytes` written with byteToUnicode, as UTF-8.
std::string bytesToUnicodeString(std::string_view bytes);
/// The inverse of bytesToUnicodeString. Errors: InvalidArgument if `s` is not valid UTF-8
/// or has a code point outside the mapping.
Expected<std::string> unicodeStringToBytes(std::string_view s);

} // namespace lrt
