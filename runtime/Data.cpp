// SPDX-License-Identifier: Apache-2.0
/// Corpus tokenisation with an on-disk cache, the train/validation split and batching.
#include "runtime/Data.h"

#include "runtime/FileUtil.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>

namespace lrt {
namespace {

/// Cache file layout: magic "LLMPTOK1", u64 key length, key bytes, u64 count, i32 ids[count]
/// (host byte order: the cache is local to the machine that wrote it).
constexpr char kMagic[8] = {'L', 'L', 'M', 'P', 'T', 'O', 'K', '1'};

std::optional<std::vector<int32_t>> readCache(const std::string &path, const std::string &key) {
  auto bytes = readFile(path);
  if (!bytes)
    return std::nullopt;
  const std::string &b = *bytes;
  size_t pos = 0;
  auto readU64 = [&](uint64_t &v) {
    if (pos + 8 > b.size())
      return false;
    std::memcpy(&v, b.data() + pos, 8);
    pos += 8;
    return true;
  };
  if (b.size() < 8 || std::memcmp(b.data(), kMagic, 8) != 0)
    return std::nullopt;
  pos = 8;
  uint64_t keyLen = 0, count = 0;
  if (!readU64(keyLen) || pos + keyLen > b.size() || b.compare(pos, keyLen, key) != 0 ||
      keyLen != key.size())
    return std::nullopt;
  pos += keyLen;
  if (!readU64(count) || pos + count * 4 != b.size())
    return std::nullopt;
  std::vector<int32_t> ids(count);
  std::memcpy(ids.data(), b.data() + pos, count * 4);
  return ids;
}

Status writeCache(const std::string &path, const std::string &key,
                  const std::vector<int32_t> &ids) {
  std::string b(kMagic, 8);
  auto appendU64 = [&](uint64_t v) { b.append(reinterpret_cast<const char *>(&v), 8); };
  appendU64(key.size());
  b += key;
  appendU64(ids.size());
  b.append(reinterpret_cast<const char *>(ids.data()), ids.size() * 4);
  return writeFileAtomic(path, b).withContext("token cache");
}

} // namespace

Expected<std::string> tokenCacheKey(const std::string &corpusPath, const std::string &format,
                                    const Tokenizer &tok) {
  std::error_code ec;
  auto size = std::filesystem::file_size(corpusPath, ec);
  if (ec)
    return Status::error(StatusCode::NotFound,
                         fmt::format("corpus '{}': {}", corpusPath, ec.message()));
  auto mtime = std::filesystem::last_write_time(corpusPath, ec);
  if (ec)
    return Status::error(StatusCode::NotFound,
                         fmt::format("corpus '{}': {}", corpusPath, ec.message()));
  auto ticks = mtime.time_since_epoch().count();
  size_t tokHash = std::hash<std::string>()(tok.serialized());
  return fmt::format("size={};mtime={};format={};vocab={};tokenizer={:016x}", size, ticks, format,
                     tok.vocabSize(), tokHash);
}

Expected<std::vector<int32_t>> tokenizeCached(const std::string &text, const Tokenizer &tok,
                                              const std::string &cachePath,
                                              const std::string &key, bool *fromCache) {
  if (fromCache)
    *fromCache = false;
  if (!cachePath.empty()) {
    if (auto ids = readCache(cachePath, key)) {
      if (fromCache)
        *fromCache = true;
      return std::move(*ids);
    }
  }
  // Line by line: no piece contains '\n' (training saw single lines), so this equals
  // encoding the whole text, and keeps each SentencePiece call small.
  std::vector<int32_t> newline = tok.encode("\n");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t lineEnd = end == std::string::npos ? text.size() : end;
    if (lineEnd > pos) {
      std::vector<int32_t> line = tok.encode(std::string_view(text).substr(pos, lineEnd - pos));
      ids.insert(ids.end(), line.begin(), line.end());
    }
    if (end == std::string::npos)
      break;
    ids.insert(ids.end(), newline.begin(), newline.end());
    pos = end + 1;
  }
  if (!cachePath.empty())
    if (Status st = writeCache(cachePath, key, ids); !st)
      return st;
  return ids;
}

TokenSplit splitTokens(const std::vector<int32_t> &ids, double trainFraction) {
  double f = trainFraction < 0 ? 0 : trainFraction > 1 ? 1 : trainFraction;
  size_t n = static_cast<size_t>(f * double(ids.size()));
  TokenSplit s;
  s.train.assign(ids.begin(), ids.begin() + n);
  s.val.assign(ids.begin() + n, ids.end());
  return s;
}

Expected<TrainBatches> TrainBatches::create(std::vector<int32_t> tokens, int64_t batch,
                                            int64_t seqLen, uint64_t seed) {
  if (batch < 1 || seqLen < 1)
    return Status::invalid(fmt::format("batch {} x {} must be positive", batch, seqLen));
  int64_t windows = int64_t(tokens.size()) / (seqLen + 1);
  if (windows < 1)
    return Status::invalid(fmt::format(
        "training split has {} tokens; need at least one window of seqLen + 1 = {}",
        tokens.size(), seqLen + 1));
  TrainBatches b;
  b.tokens_ = std::move(tokens);
  b.batch_ = batch;
  b.seqLen_ = seqLen;
  b.numWindows_ = windows;
  b.rng_.seed(seed);
  b.order_.resize(windows);
  b.reshuffle();
  return b;
}

/// The number of rows of prepared rows (fromRows, makeEvalRows), or InvalidArgument naming
/// `what` when `batch` or `seqLen` < 1, there is no row or the sizes disagree.
static Expected<int64_t> countRows(const std::vector<int32_t> &tokens,
                                   const std::vector<int32_t> &targets,
                                   const std::vector<int32_t> &segments, int64_t batch,
                                   int64_t seqLen, const char *what) {
  if (batch < 1 || seqLen < 1)
    return Status::invalid(fmt::format("{}: batch {} x {} must be positive", what, batch, seqLen));
  const int64_t rows = int64_t(tokens.size()) / seqLen;
  if (rows < 1 || int64_t(tokens.size()) != rows * seqLen || targets.size() != tokens.size() ||
      (!segments.empty() && segments.size() != tokens.size()))
    return Status::invalid(fmt::format(
        "{}: {} tokens, {} targets, {} segments; expected one or more rows of {}", what,
        tokens.size(), targets.size(), segments.size(), seqLen));
  return rows;
}

Expected<TrainBatches> TrainBatches::fromRows(std::vector<int32_t> tokens,
                                              std::vector<int32_t> targets,
                                              std::vector<int32_t> segments, int64_t batch,
                                              int64_t seqLen, uint64_t seed) {
  auto counted = countRows(tokens, targets, segments, batch, seqLen, "training rows");
  if (!counted)
    return counted.status();
  const int64_t rows = *counted;
  TrainBatches b;
  b.tokens_ = std::move(tokens);
  b.rowTargets_ = std::move(targets);
  b.rowSegments_ = std::move(segments);
  b.rows_ = true;
  b.batch_ = batch;
  b.seqLen_ = seqLen;
  b.numWindows_ = rows;
  b.rng_.seed(seed);
  b.order_.resize(rows);
  b.reshuffle();
  return b;
}

void TrainBatches::reshuffle() {
  for (int64_t i = 0; i < numWindows_; ++i)
    order_[i] = i;
  for (int64_t i = numWindows_ - 1; i > 0; --i) {
    int64_t j = int64_t(rng_() % uint64_t(i + 1));
    std::swap(order_[i], order_[j]);
  }
  cursor_ = 0;
  ++epoch_;
}

int64_t TrainBatches::nextWindow() {
  if (cursor_ == numWindows_)
    reshuffle();
  return order_[cursor_++];
}

TrainBatches::State TrainBatches::state() const {
  std::ostringstream os;
  os << rng_;
  return State{os.str(), order_, cursor_, epoch_};
}

Status TrainBatches::restore(const State &s) {
  if (int64_t(s.order.size()) != numWindows_)
    return Status::invalid(fmt::format("data state: window order has {} entries, expected {}",
                                       s.order.size(), numWindows_));
  std::vector<char> seen(size_t(numWindows_), 0);
  for (int64_t w : s.order) {
    if (w < 0 || w >= numWindows_ || seen[size_t(w)])
      return Status::invalid(fmt::format(
          "data state: window order is not a permutation of [0, {}) (entry {})", numWindows_, w));
    seen[size_t(w)] = 1;
  }
  if (s.cursor < 0 || s.cursor > numWindows_ || s.epoch < 0)
    return Status::invalid(fmt::format("data state: cursor {} of {} windows, epoch {}", s.cursor,
                                       numWindows_, s.epoch));
  std::istringstream is(s.rng);
  std::mt19937_64 rng;
  is >> rng;
  if (is.fail())
    return Status::invalid("data state: shuffle RNG state does not parse");
  rng_ = rng;
  order_ = s.order;
  cursor_ = s.cursor;
  epoch_ = s.epoch;
  return Status::ok();
}

void TrainBatches::next(int32_t *tokens, int32_t *targets, int32_t *segments) {
  const size_t rowBytes = size_t(seqLen_) * sizeof(int32_t);
  for (int64_t r = 0; r < batch_; ++r) {
    const int64_t w = nextWindow();
    int32_t *seg = segments ? segments + r * seqLen_ : nullptr;
    if (rows_) {
      std::memcpy(tokens + r * seqLen_, tokens_.data() + w * seqLen_, rowBytes);
      std::memcpy(targets + r * seqLen_, rowTargets_.data() + w * seqLen_, rowBytes);
      if (seg && !rowSegments_.empty())
        std::memcpy(seg, rowSegments_.data() + w * seqLen_, rowBytes);
      else if (seg)
        std::fill_n(seg, seqLen_, 0);
      continue;
    }
    const int32_t *src = tokens_.data() + w * (seqLen_ + 1);
    std::memcpy(tokens + r * seqLen_, src, rowBytes);
    std::memcpy(targets + r * seqLen_, src + 1, rowBytes);
    if (seg)
      std::fill_n(seg, seqLen_, 0);
  }
}

Expected<EvalBatches> makeEvalBatches(const std::vector<int32_t> &val, int64_t batch,
                                      int64_t seqLen, int64_t numBatches) {
  if (batch < 1 || seqLen < 1 || numBatches < 1)
    return Status::invalid(fmt::format("eval batches {} of {} x {} must be positive", numBatches,
                                       batch, seqLen));
  int64_t windows = int64_t(val.size()) / (seqLen + 1);
  if (windows < batch)
    return Status::invalid(fmt::format(
        "validation split has {} tokens ({} windows of {}); need at least batch = {} windows",
        val.size(), windows, seqLen + 1, batch));
  EvalBatches e;
  e.batch = batch;
  e.seqLen = seqLen;
  e.numBatches = std::min(numBatches, windows / batch);
  e.tokens.resize(e.numBatches * batch * seqLen);
  e.targets.resize(e.tokens.size());
  for (int64_t w = 0; w < e.numBatches * batch; ++w) {
    const int32_t *src = val.data() + w * (seqLen + 1);
    std::memcpy(e.tokens.data() + w * seqLen, src, seqLen * sizeof(int32_t));
    std::memcpy(e.targets.data() + w * seqLen, src + 1, seqLen * sizeof(int32_t));
  }
  return e;
}

Expected<EvalBatches> makeEvalRows(const std::vector<int32_t> &tokens,
                                   const std::vector<int32_t> &targets,
                                   const std::vector<int32_t> &segments, int64_t batch,
                                   int64_t seqLen, int32_t padId) {
  auto counted = countRows(tokens, targets, segments, batch, seqLen, "held-out rows");
  if (!counted)
    return counted.status();
  const int64_t rows = *counted;
  EvalBatches e;
  e.batch = batch;
  e.seqLen = seqLen;
  e.numBatches = (rows + batch - 1) / batch;
  const size_t n = size_t(e.numBatches * batch * seqLen);
  e.tokens = tokens;
  e.tokens.resize(n, padId);
  e.targets = targets;
  e.targets.resize(n, kIgnoreIndex);
  if (!segments.empty()) {
    e.segments = segments;
    e.segments.resize(n, 0);
  }
  return e;
}

Expected<std::vector<int32_t>> labelsFromAttention(const std::vector<int32_t> &ids,
                                                   const std::vector<int32_t> &attention) {
  if (ids.size() != attention.size())
    return Status::invalid(fmt::format("labels: {} ids but {} attention mask values", ids.size(),
                                       attention.size()));
  std::vector<int32_t> labels(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    if (attention[t] != 0 && attention[t] != 1)
      return Status::invalid(fmt::format(
          "labels: attention mask value {} at position {}; expected 0 or 1", attention[t], t));
    labels[t] = attention[t] ? ids[t] : kIgnoreIndex;
  }
  return labels;
}

std::vector<int32_t> shiftLabels(const std::vector<int32_t> &labels) {
  std::vector<int32_t> targets(labels.size(), kIgnoreIndex);
  for (size_t t = 0; t + 1 < labels.size(); ++t)
    targets[t] = labels[t + 1];
  return targets;
}

Expected<PackedRows> packDocuments(const std::vector<std::vector<int32_t>> &docs,
                                   int64_t seqLen, int32_t padId,
                                   const std::vector<std::vector<int32_t>> *docTargets) {
  if (docTargets && docTargets->size() != docs.size())
    return Status::invalid(fmt::format("packing: {} documents but {} target lists", docs.size(),
                                       docTargets->size()));
  if (seqLen < 1)
    return Status::invalid(fmt::format("packing: sequence length {} must be positive", seqLen));
  PackedRows p;
  p.seqLen = seqLen;
  int64_t used = seqLen; // of the current row; seqLen forces a new row for the first document
  int32_t segment = 0;
  // The rest of the current row: padding, as one more document of its own.
  auto padRow = [&] {
    for (int64_t start = used; used < seqLen; ++used) {
      p.tokens.push_back(padId);
      p.targets.push_back(kIgnoreIndex);
      p.segments.push_back(segment);
      p.positions.push_back(int32_t(used - start));
    }
  };
  for (size_t d = 0; d < docs.size(); ++d) {
    const std::vector<int32_t> &doc = docs[d];
    int64_t n = int64_t(doc.size());
    if (n < 1 || n > seqLen)
      return Status::invalid(fmt::format(
          "packing: document {} has {} tokens; expected 1 to the sequence length {}", d, n,
          seqLen));
    if (docTargets && (*docTargets)[d].size() != doc.size())
      return Status::invalid(fmt::format("packing: document {} has {} tokens but {} targets", d,
                                         n, (*docTargets)[d].size()));
    if (used + n > seqLen) {
      padRow();
      ++p.rows;
      used = 0;
      segment = 0;
    }
    for (int64_t t = 0; t < n; ++t) {
      p.tokens.push_back(doc[t]);
      p.targets.push_back(docTargets ? (*docTargets)[d][t] : t + 1 < n ? doc[t + 1] : kIgnoreIndex);
      p.segments.push_back(segment);
      p.positions.push_back(int32_t(t));
    }
    used += n;
    ++segment;
  }
  padRow();
  return p;
}

int64_t countTargets(const int32_t *targets, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    count += targets[i] != kIgnoreIndex;
  return count;
}

double gradScale(int64_t tokens, int64_t total) {
  return total > 0 ? double(tokens) / double(total) : 0.0;
}

double weightedMeanLoss(const std::vector<double> &losses, const std::vector<int64_t> &tokens) {
  double sum = 0;
  int64_t total = 0;
  for (size_t i = 0; i < losses.size() && i < tokens.size(); ++i) {
    sum += double(tokens[i]) * losses[i];
    total += tokens[i];
  }
  return total > 0 ? sum / double(total) : 0.0;
}

} // namespace lrt
