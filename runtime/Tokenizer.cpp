// SPDX-License-Identifier: Apache-2.0
/// SentencePiece BPE training, loading and encoding behind lrt::Tokenizer.
#include "runtime/Tokenizer.h"

#include "runtime/FileUtil.h"
#include "runtime/Generate.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <unordered_map>

namespace lrt {
namespace {

/// Feeds the non-empty lines of a text to the trainer without copying the whole text.
class LineIterator : public sentencepiece::SentenceIterator {
public:
  explicit LineIterator(std::string_view text) : text_(text) { advance(); }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string &value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

private:
  void advance() {
    while (pos_ < text_.size()) {
      size_t end = text_.find('\n', pos_);
      if (end == std::string_view::npos)
        end = text_.size();
      std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      if (!line.empty()) {
        line_.assign(line);
        return;
      }
    }
    done_ = true;
  }
  std::string_view text_;
  size_t pos_ = 0;
  std::string line_;
  bool done_ = false;
};

} // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Expected<Tokenizer> Tokenizer::train(std::string_view text, const TokenizerTrainOptions &opts) {
  // 256 byte pieces + <unk> + at least a few merges.
  if (opts.vocabSize < 260)
    return Status::invalid(fmt::format(
        "tokenizer vocabulary {} is too small; byte fallback needs at least 260", opts.vocabSize));
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(opts.seed));
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(opts.vocabSize)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"input_sentence_size", std::to_string(opts.inputSentenceSize)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(opts.numThreads)},
      // Lossless: no normalisation, keep every space, no leading "▁" added.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_digits", "true"},
      {"max_sentence_length", "16384"},
      // Only <unk> (required by SentencePiece); the token stream has no BOS/EOS.
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  LineIterator lines(text);
  std::string proto;
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &proto);
  if (!st.ok())
    return Status::invalid(fmt::format("sentencepiece training (vocab {}) failed: {}",
                                       opts.vocabSize, st.ToString()));
  Tokenizer tok;
  tok.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto loaded = tok.sp_->LoadFromSerializedProto(proto);
  if (!loaded.ok())
    return Status::internal(fmt::format("cannot load trained model: {}", loaded.ToString()));
  tok.serialized_ = std::move(proto);
  if (tok.vocabSize() != opts.vocabSize)
    return Status::internal(fmt::format("trained tokenizer has {} pieces, expected {}",
                                        tok.vocabSize(), opts.vocabSize));
  return tok;
}

Expected<Tokenizer> Tokenizer::load(const std::string &path) {
  auto bytes = readFile(path);
  if (!bytes)
    return bytes.status().withContext("tokenizer");
  Tokenizer tok;
  tok.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = tok.sp_->LoadFromSerializedProto(*bytes);
  if (!st.ok())
    return Status::invalid(fmt::format("tokenizer '{}': not a sentencepiece model: {}", path,
                                       st.ToString()));
  tok.serialized_ = bytes.take();
  return tok;
}

Expected<Tokenizer> Tokenizer::loadOrTrain(const std::string &path, std::string_view text,
                                           const TokenizerTrainOptions &opts, bool *trained) {
  if (trained)
    *trained = false;
  if (std::filesystem::exists(path)) {
    auto tok = load(path);
    if (tok && tok->vocabSize() == opts.vocabSize)
      return tok;
  }
  auto tok = train(text, opts);
  if (!tok)
    return tok;
  if (Status st = tok->save(path); !st)
    return st;
  if (trained)
    *trained = true;
  return tok;
}

Status Tokenizer::save(const std::string &path) const {
  return writeFileAtomic(path, serialized_).withContext("tokenizer");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  if (!sp_)
    return {};
  sp_->Encode(text, &ids).IgnoreError();
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t> &ids) const {
  if (!sp_)
    return {};
  std::vector<int> valid;
  valid.reserve(ids.size());
  int64_t n = vocabSize();
  for (int32_t id : ids)
    if (id >= 0 && id < n)
      valid.push_back(id);
  std::string out;
  sp_->Decode(valid, &out).IgnoreError();
  return out;
}

int64_t Tokenizer::vocabSize() const { return sp_ ? sp_->GetPieceSize() : 0; }

std::vector<int16_t> Tokenizer::pieceBytes() const {
  std::vector<int16_t> out(size_t(vocabSize()), kTextPiece);
  for (int id = 0; id < int(out.size()); ++id) {
    if (sp_->IsUnknown(id) || sp_->IsControl(id) || sp_->IsUnused(id)) {
      out[id] = kSpecialPiece;
    } else if (sp_->IsByte(id)) {
      // Byte pieces are spelled "<0xAB>".
      const std::string &piece = sp_->IdToPiece(id);
      out[id] = piece.size() == 6 ? int16_t(std::stoi(piece.substr(3, 2), nullptr, 16))
                                  : kSpecialPiece;
    }
  }
  return out;
}

} // namespace lrt
