// SPDX-License-Identifier: Apache-2.0
/// Token data for training: the corpus tokenised once (cached in the run directory), a
/// split by position into train and validation, shuffled training batches and a fixed set
/// of validation batches.
#pragma once

#include "runtime/Status.h"
#include "runtime/StepABI.h"
#include "runtime/Tokenizer.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lrt {

/// Cache key of the tokenised corpus: corpus file size and mtime, format, vocabulary size
/// and a hash of the tokenizer model. Errors: NotFound if `corpusPath` cannot be stat'ed.
Expected<std::string> tokenCacheKey(const std::string &corpusPath, const std::string &format,
                                    const Tokenizer &tok);

/// Token ids (i32, each in [0, vocab)) of `text`, encoded line by line with the '\n' kept.
/// If `cachePath` holds ids stored under the same `key` they are returned without encoding
/// (`fromCache` set to true); otherwise the ids are computed and written there (atomically).
/// An empty `cachePath` disables caching. Errors: IoError when the cache cannot be written.
Expected<std::vector<int32_t>> tokenizeCached(const std::string &text, const Tokenizer &tok,
                                              const std::string &cachePath,
                                              const std::string &key, bool *fromCache = nullptr);

/// The first `floor(trainFraction * n)` ids go to `train`, the rest to `val`.
struct TokenSplit {
  std::vector<int32_t> train, val;
};
TokenSplit splitTokens(const std::vector<int32_t> &ids, double trainFraction);

/// Training batches from non-overlapping windows of `seqLen + 1` tokens: window `w` is
/// `tokens[w*(T+1) .. (w+1)*(T+1))`; a batch row has tokens = window[:T] and
/// targets = window[1:]. Window order is a Fisher-Yates shuffle per epoch drawn from one
/// std::mt19937_64 seeded with `seed` (j = rng() % (i + 1), so the order is the same with
/// any standard library). Batches run across epoch boundaries.
class TrainBatches {
public:
  /// Errors: InvalidArgument if `batch` or `seqLen` < 1 or `tokens` holds no full window.
  static Expected<TrainBatches> create(std::vector<int32_t> tokens, int64_t batch,
                                       int64_t seqLen, uint64_t seed);

  /// Batches of prepared rows instead of token windows (supervised fine-tuning): row `w`
  /// is `tokens[w*T .. (w+1)*T)` with its own `targets` (and `segments`, i32 like tokens, or
  /// empty when the rows are not packed); the shuffle, epochs and state are those of
  /// windows. Errors: InvalidArgument if `batch` or `seqLen` < 1, there is no row, or the
  /// sizes are not rows x seqLen.
  static Expected<TrainBatches> fromRows(std::vector<int32_t> tokens, std::vector<int32_t> targets,
                                         std::vector<int32_t> segments, int64_t batch,
                                         int64_t seqLen, uint64_t seed);

  /// Fills the next batch. `tokens`, `targets`: i32[batch, seqLen], row-major. `segments`
  /// (i32[batch, seqLen] or null) gets the rows' document indices: those of fromRows'
  /// packed rows, else 0 everywhere (one document per row).
  void next(int32_t *tokens, int32_t *targets, int32_t *segments = nullptr);
  /// Index of the next window in the shuffled order (advances by one; used by next()).
  int64_t nextWindow();
  int64_t numWindows() const { return numWindows_; }
  /// 0-based epoch of the next window.
  int64_t epoch() const { return epoch_; }

  /// Everything that decides the batches still to come, for checkpoints: the shuffle RNG
  /// (its standard text form, `os << rng`), the current epoch's window order, the cursor
  /// into it (windows of this epoch already used) and the epoch.
  struct State {
    std::string rng;
    std::vector<int64_t> order;
    int64_t cursor = 0, epoch = 0;
  };
  State state() const;
  /// Continues from `s`, so next() then returns what it would have after state() was taken.
  /// Errors: InvalidArgument if `s.order` is not a permutation of [0, numWindows()), the
  /// cursor is outside [0, numWindows()] or the RNG text does not parse.
  Status restore(const State &s);
  int64_t batch() const { return batch_; }
  int64_t seqLen() const { return seqLen_; }

private:
  TrainBatches() = default;
  void reshuffle();
  std::vector<int32_t> tokens_;
  std::vector<int32_t> rowTargets_, rowSegments_; ///< fromRows only
  bool rows_ = false;
  int64_t batch_ = 0, seqLen_ = 0, numWindows_ = 0;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0, epoch_ = -1;
};

/// A fixed set of validation batches: windows 0, 1, 2, ... of `val` in order (same window
/// layout as TrainBatches), `numBatches` batches of `batch` rows, fewer if `val` is short.
struct EvalBatches {
  int64_t numBatches = 0, batch = 0, seqLen = 0;
  std::vector<int32_t> tokens, targets; ///< i32[numBatches, batch, seqLen]
  /// i32[numBatches, batch, seqLen] document indices of packed rows; empty: one document
  /// per row (segments 0).
  std::vector<int32_t> segments;
  const int32_t *tokensOf(int64_t b) const { return tokens.data() + b * batch * seqLen; }
  const int32_t *targetsOf(int64_t b) const { return targets.data() + b * batch * seqLen; }
  const int32_t *segmentsOf(int64_t b) const {
    return segments.empty() ? nullptr : segments.data() + b * batch * seqLen;
  }
};

/// Errors: InvalidArgument if `val` has fewer than `batch` windows of `seqLen + 1` tokens
/// (the message gives both sizes) or `numBatches` < 1.
Expected<EvalBatches> makeEvalBatches(const std::vector<int32_t> &val, int64_t batch,
                                      int64_t seqLen, int64_t numBatches);

/// Evaluation batches of prepared rows (as TrainBatches::fromRows, `segments` empty when
/// not packed): every row once, in order, in batches of `batch` rows; the last batch is
/// completed with rows of padding (`padId`, targets kIgnoreIndex), which add nothing to a
/// token-weighted loss. Errors: InvalidArgument if `batch` or `seqLen` < 1, there is no
/// row, or the sizes are not rows x seqLen.
Expected<EvalBatches> makeEvalRows(const std::vector<int32_t> &tokens,
                                   const std::vector<int32_t> &targets,
                                   const std::vector<int32_t> &segments, int64_t batch,
                                   int64_t seqLen, int32_t padId);

/// Labels of a padded sequence for causal language modelling (Hugging Face's `labels`,
/// before the shift): labels[t] = ids[t] where attention[t] is 1 and kIgnoreIndex where it is
/// 0. Padding is recognised by the attention mask, never by the pad id: with pad == EOS
/// the real EOS stays a label (ids [5, 9, 2, 2, 2], attention [1, 1, 1, 0, 0], pad = eos = 2
/// give [5, 9, 2, -100, -100]). Errors: InvalidArgument if the sizes differ or an attention
/// value is not 0 or 1.
Expected<std::vector<int32_t>> labelsFromAttention(const std::vector<int32_t> &ids,
                                                   const std::vector<int32_t> &attention);

/// The step ABI's targets of a labelled sequence: position t predicts the label of t + 1,
/// so targets[t] = labels[t + 1] and the last position gets kIgnoreIndex (the shift that
/// transformers' causal LM loss applies internally).
std::vector<int32_t> shiftLabels(const std::vector<int32_t> &labels);

/// Rows of documents packed together (sequence packing), each i32[rows, seqLen] row-major.
struct PackedRows {
  int64_t rows = 0, seqLen = 0;
  std::vector<int32_t> tokens;
  /// Next-token targets inside each document; kIgnoreIndex on the last token of a document
  /// (its successor belongs to another document) and on padding.
  std::vector<int32_t> targets;
  /// Document index of each token within its row (0, 1, ...; padding gets one more index),
  /// the `segments` step input of packed stages (block-diagonal causal attention).
  std::vector<int32_t> segments;
  /// Position of each token inside its own document (0 at each document start), for RoPE.
  std::vector<int32_t> positions;
};

/// Packs `docs` in order into rows of `seqLen` tokens: a document goes into the current
/// row when it fits in what is left, else it starts a new row; the rest of a row is
/// `padId` with target kIgnoreIndex. Documents of lengths 3 and 2 in one row of 5 get
/// segments [0, 0, 0, 1, 1], positions [0, 1, 2, 0, 1] and targets [a1, a2, -100, b1, -100].
/// With `docTargets` (one i32 vector per document, of its length), each document's
/// targets are those instead (supervised fine-tuning: kIgnoreIndex on prompt tokens).
/// Errors: InvalidArgument if seqLen < 1, a document is empty or longer than seqLen, or a
/// document's targets differ in length from it.
Expected<PackedRows> packDocuments(const std::vector<std::vector<int32_t>> &docs,
                                   int64_t seqLen, int32_t padId,
                                   const std::vector<std::vector<int32_t>> *docTargets = nullptr);

/// Number of entries of `targets` (i32[n]) that are not kIgnoreIndex (StepABI.h): the
/// target tokens a loss averages over.
int64_t countTargets(const int32_t *targets, int64_t n);

/// The gradient scale of a micro-batch with `tokens` target tokens in a step of `total`
/// target tokens (over all micro-batches and ranks): tokens / total, and 0 when total is 0
/// (a step without targets changes no gradient). See the step protocol in StepABI.h.
double gradScale(int64_t tokens, int64_t total);

/// The loss of a step made of micro-batches with mean losses `losses[i]` over `tokens[i]`
/// target tokens each: sum_i tokens[i] * losses[i] / sum_i tokens[i], i.e. the mean over
/// every target token of the step (not the mean of the micro-batch means); 0 when there
/// are no target tokens. Micro-batches with per-token losses [4] and [1, 1, 1] give 1.75.
double weightedMeanLoss(const std::vector<double> &losses, const std::vector<int64_t> &tokens);

} // namespace lrt
