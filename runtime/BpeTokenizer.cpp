// SPDX-License-Identifier: Apache-2.0
#include "runtime/BpeTokenizer.h"

#include "runtime/FileUtil.h"

#include <algorithm>
#include <functional>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

namespace lrt {

namespace {

uint64_t pairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n < 0 || (n == 1 && c < 0xC2) || i + size_t(n) >= s.size())
      return false;
    uint32_t cp = c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      unsigned char d = s[i + size_t(k)];
      if ((d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += size_t(n) + 1;
  }
  return true;
}

/// NFC of valid UTF-8 `s` through ICU; `s` itself when it is ASCII, already NFC, invalid
/// UTF-8, or ICU fails.
std::string toNfc(std::string_view s) {
  bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return (c & 0x80) == 0; });
  if (ascii || !isValidUtf8(s))
    return std::string(s);
  UErrorCode ec = U_ZERO_ERROR;
  const UNormalizer2 *nfc = unorm2_getNFCInstance(&ec);
  if (U_FAILURE(ec))
    return std::string(s);
  std::u16string u16(s.size() + 1, u'\0');
  int32_t n16 = 0;
  u_strFromUTF8(reinterpret_cast<UChar *>(u16.data()), int32_t(u16.size()), &n16, s.data(),
                int32_t(s.size()), &ec);
  if (U_FAILURE(ec))
    return std::string(s);
  auto *src = reinterpret_cast<const UChar *>(u16.data());
  if (unorm2_isNormalized(nfc, src, n16, &ec) && U_SUCCESS(ec))
    return std::string(s);
  ec = U_ZERO_ERROR;
  std::u16string norm(size_t(n16) * 3 + 16, u'\0');
  int32_t nn = unorm2_normalize(nfc, src, n16, reinterpret_cast<UChar *>(norm.data()),
                                int32_t(norm.size()), &ec);
  if (U_FAILURE(ec))
    return std::string(s);
  std::string out(size_t(nn) * 3 + 4, '\0');
  int32_t n8 = 0;
  ec = U_ZERO_ERROR;
  u_strToUTF8(out.data(), int32_t(out.size()), &n8, reinterpret_cast<const UChar *>(norm.data()),
              nn, &ec);
  if (U_FAILURE(ec))
    return std::string(s);
  out.resize(n8);
  return out;
}

Expected<std::string> base64Decode(std::string_view s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=')
      break;
    int v = val(c);
    if (v < 0)
      return Status::invalid(fmt::format("invalid base64 character '{}'", c));
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  return out;
}

Expected<nlohmann::json> readJson(const std::string &path) {
  auto text = readFile(path);
  if (!text)
    return text.status();
  try {
    return nlohmann::json::parse(*text);
  } catch (const std::exception &e) {
    return Status::invalid(fmt::format("'{}': invalid JSON: {}", path, e.what()));
  }
}

} // namespace

Status BpeTokenizer::setToken(int32_t id, std::string bytes) {
  if (id < 0 || id > (1 << 24))
    return Status::invalid(fmt::format("token id {} out of range", id));
  if (size_t(id) >= idToBytes_.size())
    idToBytes_.resize(size_t(id) + 1);
  if (bytes.size() == 1)
    byteId_[static_cast<unsigned char>(bytes[0])] = id;
  bytesToId_.emplace(bytes, id);
  idToBytes_[size_t(id)] = std::move(bytes);
  return Status::ok();
}

Status BpeTokenizer::addMerge(int32_t a, int32_t b, int32_t rank) {
  std::string merged = idToBytes_[size_t(a)] + idToBytes_[size_t(b)];
  auto it = bytesToId_.find(merged);
  if (it == bytesToId_.end())
    return Status::invalid(fmt::format("merge {} of '{}' + '{}' gives a token not in the vocabulary",
                                       rank, bytesToUnicodeString(idToBytes_[size_t(a)]),
                                       bytesToUnicodeString(idToBytes_[size_t(b)])));
  merges_.emplace(pairKey(a, b), Merge{rank, it->second});
  return Status::ok();
}

void BpeTokenizer::finishAdded() {
  for (auto &v : addedByFirst_)
    v.clear();
  for (size_t k = 0; k < added_.size(); ++k) {
    const BpeAddedToken &t = added_[k];
    if (t.content.empty())
      continue;
    if (size_t(t.id) >= idToBytes_.size())
      idToBytes_.resize(size_t(t.id) + 1);
    if (idToBytes_[size_t(t.id)].empty())
      idToBytes_[size_t(t.id)] = t.content;
    bytesToId_.emplace(t.content, t.id);
    addedByFirst_[static_cast<unsigned char>(t.content[0])].push_back(int32_t(k));
  }
  for (auto &v : addedByFirst_)
    std::sort(v.begin(), v.end(), [&](int32_t x, int32_t y) {
      size_t lx = added_[size_t(x)].content.size(), ly = added_[size_t(y)].content.size();
      return lx != ly ? lx > ly : x < y;
    });
}

const std::string &BpeTokenizer::tokenBytes(int32_t id) const {
  static const std::string empty;
  return id >= 0 && size_t(id) < idToBytes_.size() ? idToBytes_[size_t(id)] : empty;
}

int32_t BpeTokenizer::tokenId(std::string_view bytes) const {
  auto it = bytesToId_.find(std::string(bytes));
  return it == bytesToId_.end() ? -1 : it->second;
}

std::string BpeTokenizer::decode(const std::vector<int32_t> &ids) const {
  std::string out;
  for (int32_t id : ids)
    out += tokenBytes(id);
  return out;
}

void BpeTokenizer::bpe(std::string_view piece, std::vector<int32_t> &out) const {
  if (ignoreMerges_ || piece.size() == 1) {
    auto it = bytesToId_.find(std::string(piece));
    if (it != bytesToId_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Small pieces stay on the stack-like buffer; merges are O(n^2) in the piece length,
  // which is short for every pre-tokenizer here.
  thread_local std::vector<int32_t> syms;
  syms.clear();
  for (unsigned char b : piece)
    syms.push_back(byteId_[b]);
  while (syms.size() > 1) {
    int32_t bestRank = INT32_MAX, bestId = -1;
    size_t bestPos = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = merges_.find(pairKey(syms[i], syms[i + 1]));
      if (it != merges_.end() && it->second.rank < bestRank) {
        bestRank = it->second.rank;
        bestId = it->second.id;
        bestPos = i;
      }
    }
    if (bestId < 0)
      break;
    syms[bestPos] = bestId;
    syms.erase(syms.begin() + long(bestPos) + 1);
  }
  out.insert(out.end(), syms.begin(), syms.end());
}

Status BpeTokenizer::encodeSegment(std::string_view seg, std::vector<int32_t> &out) const {
  if (seg.empty())
    return Status::ok();
  std::string owned;
  if (nfc_) {
    owned = toNfc(seg);
    seg = owned;
  }
  if (addPrefixSpace_ && seg[0] != ' ') {
    owned = " " + std::string(seg);
    seg = owned;
  }
  thread_local std::vector<std::string_view> pieces, next;
  pieces.clear();
  pieces.push_back(seg);
  for (const Pretokenizer &p : pretok_) {
    next.clear();
    for (std::string_view s : pieces)
      if (Status st = p.split(s, next); !st)
        return st;
    pieces.swap(next);
  }
  for (std::string_view s : pieces) {
    for (unsigned char b : s)
      if (byteId_[b] < 0)
        return Status::internal(fmt::format("byte 0x{:02x} has no token", unsigned(b)));
    bpe(s, out);
  }
  return Status::ok();
}

Expected<std::vector<int32_t>> BpeTokenizer::encode(std::string_view text,
                                                    bool parseSpecial) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  size_t start = 0;
  if (!added_.empty()) {
    for (size_t i = 0; i < text.size(); ++i) {
      const auto &cands = addedByFirst_[static_cast<unsigned char>(text[i])];
      for (int32_t k : cands) {
        const BpeAddedToken &t = added_[size_t(k)];
        if ((!t.special || parseSpecial) && text.compare(i, t.content.size(), t.content) == 0) {
          if (Status st = encodeSegment(text.substr(start, i - start), out); !st)
            return st;
          out.push_back(t.id);
          i += t.content.size() - 1;
          start = i + 1;
          break;
        }
      }
    }
  }
  if (Status st = encodeSegment(text.substr(start), out); !st)
    return st;
  return out;
}

//===----------------------------------------------------------------------===//
// Loaders
//===----------------------------------------------------------------------===//

Expected<BpeTokenizer> BpeTokenizer::fromHuggingFaceJson(const std::string &path) {
  auto j = readJson(path);
  if (!j)
    return j.status();
  auto bad = [&](const std::string &m) { return Status::invalid(fmt::format("'{}': {}", path, m)); };
  try {
    const nlohmann::json &root = *j;
    const nlohmann::json &model = root.at("model");
    if (model.value("type", std::string("BPE")) != "BPE")
      return bad(fmt::format("model.type '{}' is not supported (only BPE)",
                             model.value("type", std::string())));
    for (const char *k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(k) && model[k].is_string() && !model[k].get<std::string>().empty())
        return bad(fmt::format("model.{} is not supported", k));
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() &&
        model["byte_fallback"].get<bool>())
      return bad("model.byte_fallback (SentencePiece-style BPE) is not supported");
    BpeTokenizer t;
    t.byteId_.fill(-1);
    t.ignoreMerges_ = model.contains("ignore_merges") && model["ignore_merges"].is_boolean() &&
                      model["ignore_merges"].get<bool>();
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
      auto bytes = unicodeStringToBytes(it.key());
      if (Status st = t.setToken(it.value().get<int32_t>(), bytes ? *bytes : it.key()); !st)
        return st.withContext(path);
    }
    int32_t rank = 0;
    for (const auto &m : model.at("merges")) {
      std::string a, b;
      if (m.is_string()) {
        std::string s = m.get<std::string>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos)
          return bad(fmt::format("merge {} '{}' has no space", rank, s));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        a = m.at(0).get<std::string>();
        b = m.at(1).get<std::string>();
      }
      auto ia = model["vocab"].find(a), ib = model["vocab"].find(b);
      if (ia == model["vocab"].end() || ib == model["vocab"].end())
        return bad(fmt::format("merge {} '{} {}' uses a token not in the vocabulary", rank, a, b));
      if (Status st = t.addMerge(ia->get<int32_t>(), ib->get<int32_t>(), rank); !st)
        return st.withContext(path);
      ++rank;
    }
    // Normalizer.
    std::function<Status(const nlohmann::json &)> norm = [&](const nlohmann::json &n) {
      if (n.is_null())
        return Status::ok();
      std::string type = n.at("type").get<std::string>();
      if (type == "NFC") {
        t.nfc_ = true;
        return Status::ok();
      }
      if (type == "Sequence") {
        for (const auto &s : n.at("normalizers"))
          if (Status st = norm(s); !st)
            return st;
        return Status::ok();
      }
      return bad(fmt::format("normalizer '{}' is not supported (only NFC)", type));
    };
    if (Status st = norm(root.value("normalizer", nlohmann::json())); !st)
      return st;
    // Pre-tokenizer.
    std::function<Status(const nlohmann::json &)> pre = [&](const nlohmann::json &p) {
      if (p.is_null())
        return Status::ok();
      std::string type = p.at("type").get<std::string>();
      if (type == "Sequence") {
        for (const auto &s : p.at("pretokenizers"))
          if (Status st = pre(s); !st)
            return st;
        return Status::ok();
      }
      std::string pattern;
      if (type == "ByteLevel") {
        if (p.value("add_prefix_space", false))
          t.addPrefixSpace_ = true;
        if (!p.value("use_regex", true))
          return Status::ok();
        pattern = pretok::kGpt2;
      } else if (type == "Split") {
        if (p.value("behavior", std::string("Isolated")) != "Isolated" || p.value("invert", false))
          return bad("Split pre-tokenizer: only behavior Isolated without invert is supported");
        const auto &pat = p.at("pattern");
        if (pat.contains("Regex")) {
          pattern = pat["Regex"].get<std::string>();
        } else {
          pattern = "\\Q" + pat.at("String").get<std::string>() + "\\E";
        }
      } else {
        return bad(fmt::format("pre_tokenizer '{}' is not supported", type));
      }
      auto c = Pretokenizer::compile(pattern);
      if (!c)
        return c.status().withContext(path);
      t.pretok_.push_back(c.take());
      return Status::ok();
    };
    if (Status st = pre(root.value("pre_tokenizer", nlohmann::json())); !st)
      return st;
    if (root.contains("added_tokens"))
      for (const auto &a : root["added_tokens"])
        t.added_.push_back({a.at("content").get<std::string>(), a.at("id").get<int32_t>(),
                            a.value("special", false)});
    t.finishAdded();
    return t;
  } catch (const std::exception &e) {
    return bad(fmt::format("unexpected tokenizer.json structure: {}", e.what()));
  }
}

Expected<BpeTokenizer> BpeTokenizer::fromGpt2Files(const std::string &encoderJson,
                                                   const std::string &vocabBpe) {
  auto j = readJson(encoderJson);
  if (!j)
    return j.status();
  auto merges = readFile(vocabBpe);
  if (!merges)
    return merges.status();
  BpeTokenizer t;
  t.byteId_.fill(-1);
  try {
    for (auto it = j->begin(); it != j->end(); ++it) {
      auto bytes = unicodeStringToBytes(it.key());
      if (Status st = t.setToken(it.value().get<int32_t>(), bytes ? *bytes : it.key()); !st)
        return st.withContext(encoderJson);
    }
  } catch (const std::exception &e) {
    return Status::invalid(fmt::format("'{}': expected an object of token -> id: {}",
                                       encoderJson, e.what()));
  }
  int32_t rank = 0;
  size_t pos = 0, lineNo = 0;
  std::string_view all = *merges;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    std::string_view line = all.substr(pos, nl == std::string_view::npos ? all.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? all.size() : nl + 1;
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.empty() || (lineNo == 1 && line.rfind("#version", 0) == 0))
      continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos)
      return Status::invalid(fmt::format("'{}' line {}: expected 'a b'", vocabBpe, lineNo));
    auto a = unicodeStringToBytes(line.substr(0, sp));
    auto b = unicodeStringToBytes(line.substr(sp + 1));
    if (!a || !b)
      return (a ? b.status() : a.status()).withContext(fmt::format("'{}' line {}", vocabBpe, lineNo));
    int32_t ia = t.tokenId(*a), ib = t.tokenId(*b);
    if (ia < 0 || ib < 0)
      return Status::invalid(fmt::format("'{}' line {}: token not in '{}'", vocabBpe, lineNo,
                                         encoderJson));
    if (Status st = t.addMerge(ia, ib, rank++); !st)
      return st.withContext(fmt::format("'{}' line {}", vocabBpe, lineNo));
  }
  auto c = Pretokenizer::compile(pretok::kGpt2);
  if (!c)
    return c.status();
  t.pretok_.push_back(c.take());
  if (int32_t eot = t.tokenId("<|endoftext|>"); eot >= 0)
    t.added_.push_back({"<|endoftext|>", eot, true});
  t.finishAdded();
  return t;
}

Expected<BpeTokenizer> BpeTokenizer::fromGguf(const GgufFile &g) {
  auto model = g.getString("tokenizer.ggml.model");
  if (!model)
    return model.status();
  if (*model != "gpt2")
    return Status::invalid(fmt::format(
        "gguf tokenizer.ggml.model '{}' is not a byte-level BPE ('gpt2')", *model));
  auto tokens = g.getStringArray("tokenizer.ggml.tokens");
  if (!tokens)
    return tokens.status();
  auto merges = g.getStringArray("tokenizer.ggml.merges");
  if (!merges)
    return merges.status();
  std::vector<int64_t> types;
  if (g.find("tokenizer.ggml.token_type")) {
    auto tt = g.getIntArray("tokenizer.ggml.token_type");
    if (!tt)
      return tt.status();
    types = tt.take();
    if (types.size() != tokens->size())
      return Status::invalid(fmt::format("gguf: {} token types for {} tokens", types.size(),
                                         tokens->size()));
  }
  std::string pre = "default";
  if (g.find("tokenizer.ggml.pre")) {
    auto p = g.getString("tokenizer.ggml.pre");
    if (!p)
      return p.status();
    pre = *p;
  }
  BpeTokenizer t;
  t.byteId_.fill(-1);
  const char *pattern = nullptr;
  if (pre == "default" || pre == "gpt2" || pre == "gpt-2") {
    pattern = pretok::kGpt2;
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    pattern = pretok::kLlama3;
    t.ignoreMerges_ = true;
  } else if (pre == "qwen2") {
    pattern = pretok::kQwen2;
  } else if (pre == "smollm") {
    // llama.cpp's SMOLLM: every digit a piece of its own (SmolLM2's tokenizer.json:
    // Digits(individual_digits) before ByteLevel), then the GPT-2 regex.
    auto digits = Pretokenizer::compile("\\p{N}");
    if (!digits)
      return digits.status();
    t.pretok_.push_back(digits.take());
    pattern = pretok::kGpt2;
  } else {
    return Status::invalid(fmt::format("gguf tokenizer.ggml.pre '{}' is not supported (gpt2, "
                                       "llama-bpe/llama3, qwen2, smollm)",
                                       pre));
  }
  auto c = Pretokenizer::compile(pattern);
  if (!c)
    return c.status();
  t.pretok_.push_back(c.take());
  for (size_t i = 0; i < tokens->size(); ++i) {
    int64_t type = types.empty() ? 1 : types[i];
    const std::string &s = (*tokens)[i];
    if (type == 3 || type == 4) { // control, user-defined: matched verbatim
      t.added_.push_back({s, int32_t(i), type == 3});
      continue;
    }
    auto bytes = unicodeStringToBytes(s);
    if (Status st = t.setToken(int32_t(i), bytes ? *bytes : s); !st)
      return st.withContext("gguf tokenizer.ggml.tokens");
  }
  int32_t rank = 0;
  for (const std::string &m : *merges) {
    size_t sp = m.find(' ');
    if (sp == std::string::npos)
      return Status::invalid(fmt::format("gguf merge {} '{}' has no space", rank, m));
    auto a = unicodeStringToBytes(m.substr(0, sp));
    auto b = unicodeStringToBytes(m.substr(sp + 1));
    int32_t ia = a ? t.tokenId(*a) : -1, ib = b ? t.tokenId(*b) : -1;
    if (ia < 0 || ib < 0)
      return Status::invalid(fmt::format("gguf merge {} '{}' uses an unknown token", rank, m));
    if (Status st = t.addMerge(ia, ib, rank); !st)
      return st.withContext("gguf");
    ++rank;
  }
  t.finishAdded();
  return t;
}

Expected<BpeTokenizer> BpeTokenizer::fromGgufFile(const std::string &path) {
  auto g = readGguf(path);
  if (!g)
    return g.status();
  auto t = fromGguf(*g);
  if (!t)
    return t.status().withContext("'" + path + "'");
  return t;
}

Expected<BpeTokenizer> BpeTokenizer::fromTiktoken(const std::string &path,
                                                  const std::string &encoding) {
  const char *pattern = nullptr;
  std::vector<std::pair<std::string, int32_t>> specials;
  if (encoding == "r50k_base" || encoding == "gpt2") {
    pattern = pretok::kR50k;
    specials = {{"<|endoftext|>", 50256}};
  } else if (encoding == "p50k_base") {
    pattern = pretok::kR50k;
    specials = {{"<|endoftext|>", 50256}};
  } else if (encoding == "cl100k_base") {
    pattern = pretok::kCl100k;
    specials = {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258},
                {"<|fim_middle|>", 100259}, {"<|fim_suffix|>", 100260},
                {"<|endofprompt|>", 100276}};
  } else {
    return Status::invalid(fmt::format(
        "tiktoken encoding '{}' is not supported (r50k_base, p50k_base, cl100k_base)", encoding));
  }
  auto text = readFile(path);
  if (!text)
    return text.status();
  BpeTokenizer t;
  t.byteId_.fill(-1);
  std::string_view all = *text;
  size_t pos = 0, lineNo = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    std::string_view line = all.substr(pos, nl == std::string_view::npos ? all.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? all.size() : nl + 1;
    ++lineNo;
    if (line.empty())
      continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos)
      return Status::invalid(fmt::format("'{}' line {}: expected '<base64> <rank>'", path, lineNo));
    auto bytes = base64Decode(line.substr(0, sp));
    if (!bytes)
      return bytes.status().withContext(fmt::format("'{}' line {}", path, lineNo));
    int32_t rank = 0;
    try {
      rank = std::stoi(std::string(line.substr(sp + 1)));
    } catch (const std::exception &) {
      return Status::invalid(fmt::format("'{}' line {}: bad rank", path, lineNo));
    }
    if (Status st = t.setToken(rank, *bytes); !st)
      return st.withContext(fmt::format("'{}' line {}", path, lineNo));
  }
  // tiktoken merges the adjacent pair whose concatenation has the lowest rank; as merge
  // rules that is, for every token, every split into two tokens, at the token's rank.
  for (size_t id = 0; id < t.idToBytes_.size(); ++id) {
    const std::string &s = t.idToBytes_[id];
    for (size_t k = 1; k < s.size(); ++k) {
      int32_t a = t.tokenId(std::string_view(s).substr(0, k));
      int32_t b = t.tokenId(std::string_view(s).substr(k));
      if (a >= 0 && b >= 0)
        t.merges_.emplace(pairKey(a, b), Merge{int32_t(id), int32_t(id)});
    }
  }
  auto c = Pretokenizer::compile(pattern);
  if (!c)
    return c.status();
  t.pretok_.push_back(c.take());
  for (auto &[s, id] : specials)
    t.added_.push_back({s, id, true});
  t.finishAdded();
  return t;
}

//===----------------------------------------------------------------------===//
// Streaming decode
//===----------------------------------------------------------------------===//

size_t incompleteUtf8Suffix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is not complete.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = s[n - back];
    if ((c & 0xC0) == 0x80)
      continue; // continuation byte: keep looking for the lead
    int need = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (need == 1 || (need == 2 && c < 0xC2) || (need == 4 && c > 0xF4))
      return 0;
    if (size_t(need) > back) {
      // Check the second byte's range for E0/ED/F0/F4 leads.
      if (back >= 2) {
        unsigned char d = s[n - back + 1];
        if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) ||
            (c == 0xF4 && d > 0x8F))
          return 0;
      }
      return back;
    }
    return 0;
  }
  return 0;
}

std::string BpeStreamDecoder::push(int32_t id) {
  buf_ += tok_->tokenBytes(id);
  size_t hold = incompleteUtf8Suffix(buf_);
  std::string out = buf_.substr(0, buf_.size() - hold);
  buf_.erase(0, buf_.size() - hold);
  return out;
}

std::string BpeStreamDecoder::flush() {
  std::string out;
  out.swap(buf_);
  return out;
}

} // namespace lrt
