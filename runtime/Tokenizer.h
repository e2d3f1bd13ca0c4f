// SPDX-License-Identifier: Apache-2.0
/// The stage's tokenizer: a SentencePiece BPE model with byte fallback, trained on the
/// training text (so any UTF-8 string encodes, and decode(encode(s)) == s exactly), saved as
/// `<run>/tokenizer.model` and reused when a model of the same vocabulary size is there.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lrt {

/// How to train a tokenizer.
struct TokenizerTrainOptions {
  int64_t vocabSize = 0;              ///< exact number of pieces, incl. 256 byte pieces and <unk>
  int64_t inputSentenceSize = 200000; ///< lines sampled from the text for training
  int numThreads = 2;
  uint64_t seed = 0;                  ///< SentencePiece's sampling is seeded from this
};

/// A loaded SentencePiece model. Ids are in [0, vocabSize()). Id 0 is <unk> (never produced
/// with byte fallback); there are no BOS/EOS pieces. Normalisation is the identity and no
/// dummy prefix is added, so encoding is lossless; '\n' is a byte piece.
class Tokenizer {
public:
  Tokenizer();
  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  ~Tokenizer();

  /// Trains a BPE model on `text` (split into lines; empty lines skipped) and returns it
  /// loaded. Takes seconds for a few MB of text and vocabularies of a few thousand.
  /// Errors: InvalidArgument if `vocabSize` < 260 or too large for the text (SentencePiece's
  /// message is included), Internal if the trained model has a different size.
  static Expected<Tokenizer> train(std::string_view text, const TokenizerTrainOptions &opts);

  /// Loads a serialized model file. Errors: NotFound/IoError/InvalidArgument.
  static Expected<Tokenizer> load(const std::string &path);

  /// Loads `path` if it exists and has `opts.vocabSize` pieces; otherwise trains on `text`
  /// and saves to `path` (temporary file + rename). `trained` (optional) is set to whether
  /// training happened.
  static Expected<Tokenizer> loadOrTrain(const std::string &path, std::string_view text,
                                         const TokenizerTrainOptions &opts,
                                         bool *trained = nullptr);

  /// Writes the serialized model to `path` (temporary file + rename). Errors: IoError.
  Status save(const std::string &path) const;

  /// Token ids of `text` (any UTF-8; invalid bytes are encoded as byte pieces).
  std::vector<int32_t> encode(std::string_view text) const;
  /// The text of `ids`. Out-of-range ids decode to nothing.
  std::string decode(const std::vector<int32_t> &ids) const;
  /// Number of pieces.
  int64_t vocabSize() const;
  /// For each id, what sampling must know of its piece (for generate()): the byte
  /// 0..255 of a byte-fallback piece `<0xAB>`, kTextPiece (-1) for a piece of whole
  /// characters, kSpecialPiece (-2) for <unk>, control and unused pieces.
  std::vector<int16_t> pieceBytes() const;
  /// The serialized model proto (the bytes of tokenizer.model).
  const std::string &serialized() const { return serialized_; }

private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string serialized_;
};

} // namespace lrt
