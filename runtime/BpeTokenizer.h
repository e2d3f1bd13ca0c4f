// SPDX-License-Identifier: Apache-2.0
/// Byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2/3, tiktoken) that reproduce the
/// reference implementations' token ids exactly, loaded from the files people ship:
/// a Hugging Face `tokenizer.json`, GPT-2's `encoder.json` + `vocab.bpe`, GGUF metadata
/// (`tokenizer.ggml.*`) or a tiktoken rank file. Separate from the SentencePiece
/// `Tokenizer` that the trainer uses.
#pragma once

#include "runtime/Gguf.h"
#include "runtime/Pretokenizer.h"
#include "runtime/Status.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lrt {

/// A token matched verbatim in the text before pre-tokenisation (Hugging Face
/// `added_tokens`, GGUF control/user-defined tokens, tiktoken special tokens).
struct BpeAddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false; ///< matched only when encode's `parseSpecial` is true
};

/// A loaded byte-level BPE tokenizer. Immutable after loading; encode/decode are
/// thread-safe.
///
/// Encoding: (1) the text is cut at added tokens (longest match at the leftmost
/// position); (2) each other segment is normalised (NFC, if the file asks for it, through
/// ICU), optionally given a prefix space, and split by the pre-tokenizer regex(es);
/// (3) each piece's bytes are merged by BPE: repeatedly the adjacent pair with the lowest
/// merge rank (leftmost on ties), or, with `ignoreMerges` (Llama-3), a piece that is
/// itself in the vocabulary becomes that one token.
class BpeTokenizer {
public:
  /// A Hugging Face tokenizer.json with model.type "BPE" (byte-level). Supported:
  /// normalizer null/NFC, pre_tokenizer ByteLevel/Split(Isolated)/Sequence of them,
  /// ignore_merges, merges as "a b" strings or [a, b] pairs, added_tokens.
  /// Errors: NotFound/IoError, InvalidArgument naming the unsupported feature.
  static Expected<BpeTokenizer> fromHuggingFaceJson(const std::string &path);
  /// GPT-2's encoder.json (token -> id) and vocab.bpe (merges, first line a version
  /// comment), with the GPT-2 regex; `<|endoftext|>` is a special token if in the vocab.
  static Expected<BpeTokenizer> fromGpt2Files(const std::string &encoderJson,
                                              const std::string &vocabBpe);
  /// GGUF metadata: tokenizer.ggml.model must be "gpt2"; tokens, merges, token_type
  /// (control = special added token, user-defined = added token) and pre ("gpt2"/"default",
  /// "llama-bpe"/"llama3", "qwen2", "smollm": single digits, then GPT-2's) choosing the
  /// regex (llama3 also sets ignoreMerges).
  static Expected<BpeTokenizer> fromGguf(const GgufFile &gguf);
  static Expected<BpeTokenizer> fromGgufFile(const std::string &path);
  /// A tiktoken rank file ("<base64 token> <rank>" per line) for `encoding` ("r50k_base",
  /// "p50k_base", "cl100k_base"), which fixes the regex and the special tokens.
  static Expected<BpeTokenizer> fromTiktoken(const std::string &path,
                                             const std::string &encoding);

  /// Token ids of `text` (any bytes; invalid UTF-8 is byte-encoded, never NFC-changed).
  /// With `parseSpecial` false only non-special added tokens are matched.
  /// Errors: Internal if the regex engine fails (JIT stack) or a byte has no token.
  Expected<std::vector<int32_t>> encode(std::string_view text, bool parseSpecial = true) const;
  /// The bytes of `ids` concatenated (added tokens give their content). Out-of-range ids
  /// decode to nothing.
  std::string decode(const std::vector<int32_t> &ids) const;
  /// The bytes of one token (empty if out of range).
  const std::string &tokenBytes(int32_t id) const;
  /// The id of a token given by its bytes (or an added token's content), or -1.
  int32_t tokenId(std::string_view bytes) const;
  /// One more than the largest id.
  int64_t vocabSize() const { return static_cast<int64_t>(idToBytes_.size()); }
  const std::vector<BpeAddedToken> &addedTokens() const { return added_; }
  bool ignoreMerges() const { return ignoreMerges_; }
  const std::vector<Pretokenizer> &pretokenizers() const { return pretok_; }

private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  Status setToken(int32_t id, std::string bytes);
  Status addMerge(int32_t a, int32_t b, int32_t rank);
  void finishAdded();
  Status encodeSegment(std::string_view seg, std::vector<int32_t> &out) const;
  void bpe(std::string_view piece, std::vector<int32_t> &out) const;

  std::vector<std::string> idToBytes_;
  std::unordered_map<std::string, int32_t> bytesToId_;
  std::array<int32_t, 256> byteId_{};
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<Pretokenizer> pretok_;
  std::vector<BpeAddedToken> added_;
  std::array<std::vector<int32_t>, 256> addedByFirst_; ///< indices into added_, longest first
  bool ignoreMerges_ = false;
  bool addPrefixSpace_ = false;
  bool nfc_ = false;
};

/// Incremental decoding for generation: feed ids one at a time; returns only complete
/// UTF-8 characters and holds back the bytes of a character that is not finished yet.
/// Bytes that cannot start or continue a valid character are passed through as they are,
/// so the concatenation of all outputs plus flush() equals decode(all ids) byte for byte.
class BpeStreamDecoder {
public:
  explicit BpeStreamDecoder(const BpeTokenizer &tok) : tok_(&tok) {}
  /// The text that `id` completes (possibly empty).
  std::string push(int32_t id);
  /// Whatever is held back (an incomplete character at the end of the stream).
  std::string flush();
  /// Bytes currently held back.
  size_t pending() const { return buf_.size(); }

private:
  const BpeTokenizer *tok_;
  std::string buf_;
};

/// Length of the longest suffix of `s` that is an unfinished but so far valid UTF-8
/// character (0 to 3 bytes).
size_t incompleteUtf8Suffix(std::string_view s);

} // namespace lrt
