// SPDX-License-Identifier: Apache-2.0
/// Supervised fine-tuning data: readers (JSONL chat, prompt/completion, FAQ text),
/// rendering + labelling, the held-out split and the row layout.
#include "runtime/SftData.h"

#include "runtime/BpeTokenizer.h"
#include "runtime/Data.h"
#include "runtime/FileUtil.h"
#include "runtime/StepABI.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <random>

namespace lrt {
namespace {

/// The conversations of the JSONL file `path`: `row(json, "path:LINE")` makes one of each
/// non-empty line. Errors: the file's, a line that is not a JSON object, row's, no line.
Expected<std::vector<Conversation>>
readJsonlConversations(const std::string &path,
                       const std::function<Expected<Conversation>(const nlohmann::json &,
                                                                  const std::string &)> &row) {
  auto text = readFile(path);
  if (!text)
    return text.status();
  std::vector<Conversation> out;
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos)
      end = text->size();
    std::string_view l(text->data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos)
      continue;
    const std::string where = fmt::format("{}:{}", path, line);
    nlohmann::json j = nlohmann::json::parse(l, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return Status::invalid(fmt::format("{}: not a JSON value", where));
    if (!j.is_object())
      return Status::invalid(fmt::format("{}: expected a JSON object per line", where));
    auto c = row(j, where);
    if (!c)
      return c.status();
    c->origin = where;
    out.push_back(c.take());
  }
  if (out.empty())
    return Status::invalid(fmt::format("'{}' holds no conversation", path));
  return out;
}

/// The string field `key` of `j`, or an error naming the row.
Expected<std::string> stringField(const nlohmann::json &j, const std::string &key,
                                  const std::string &where) {
  auto it = j.find(key);
  if (it == j.end())
    return Status::invalid(fmt::format("{}: missing the key \"{}\"", where, key));
  if (!it->is_string())
    return Status::invalid(
        fmt::format("{}: \"{}\" is {}, expected a string", where, key, it->type_name()));
  return it->get<std::string>();
}

/// The messages of `list`, a JSON list of {"role": string, "content": string} objects
/// (`what` names the list in errors, `where` the row or element).
Expected<Conversation> conversationOf(const nlohmann::json &list, const std::string &what,
                                      const std::string &where) {
  if (!list.is_array() || list.empty())
    return Status::invalid(fmt::format("{}: {} must be a non-empty list of messages", where,
                                       what));
  Conversation c;
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json &m = list[i];
    std::string at = fmt::format("{}: message {}", where, i);
    if (!m.is_object())
      return Status::invalid(
          fmt::format("{}: expected an object with \"role\" and \"content\"", at));
    auto role = stringField(m, "role", at);
    if (!role)
      return role.status();
    auto content = stringField(m, "content", at);
    if (!content)
      return content.status();
    c.messages.push_back({role.take(), content.take()});
  }
  return c;
}

/// The score of one sample report of OpenAI simple-evals (the HTML its `htmls` list holds,
/// ending "<p>Correct Answer: ..</p> <p>Extracted Answer: ..</p> <p>Score: 1.0</p>"), or
/// nullopt when the report has no such line.
std::optional<double> reportScore(const std::string &html) {
  static const std::string kTag = "<p>Score: ";
  size_t at = html.rfind(kTag);
  if (at == std::string::npos)
    return std::nullopt;
  const char *begin = html.c_str() + at + kTag.size();
  char *end = nullptr;
  double v = std::strtod(begin, &end);
  if (end == begin || std::string_view(end).substr(0, 4) != "</p>")
    return std::nullopt;
  return v;
}

/// Leading spaces of `line`.
size_t indentOf(std::string_view line) {
  size_t i = line.find_first_not_of(' ');
  return i == std::string_view::npos ? line.size() : i;
}

bool isBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

/// Length of a "N.M. " heading number at the start of `line`
/// (digits and dots ending in a dot, then the space), or 0.
size_t headingNumber(std::string_view line) {
  size_t i = 0;
  bool digits = false, dotted = false;
  while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == '.')) {
    digits |= line[i] != '.';
    dotted = line[i] == '.';
    ++i;
  }
  if (!digits || !dotted)
    return 0;
  return i < line.size() && line[i] == ' ' ? i + 1 : 0;
}

bool isChapter(std::string_view line) {
  return line.substr(0, 8) == "Chapter " && line.size() > 8 &&
         std::isdigit(static_cast<unsigned char>(line[8]));
}

std::string trimRight(std::string_view s) {
  size_t end = s.find_last_not_of(" \t\r");
  return end == std::string_view::npos ? std::string() : std::string(s.substr(0, end + 1));
}

/// The answer text of FAQ body lines (see parseFaqText).
std::string faqAnswer(const std::vector<std::string_view> &lines) {
  size_t base = std::string::npos;
  for (std::string_view l : lines)
    if (!isBlank(l))
      base = std::min(base, indentOf(l));
  std::string out;
  bool pendingBreak = false, lastFlow = false;
  for (std::string_view l : lines) {
    if (isBlank(l)) {
      pendingBreak = !out.empty();
      lastFlow = false;
      continue;
    }
    std::string text = trimRight(l.substr(base));
    const bool flow = indentOf(text) == 0;
    if (pendingBreak)
      out += "\n\n";
    else if (!out.empty())
      out += flow && lastFlow ? " " : "\n";
    out += text;
    pendingBreak = false;
    lastFlow = flow;
  }
  return out;
}

} // namespace

Expected<std::vector<Conversation>> readChatJsonl(const std::string &path,
                                                  const std::string &messagesKey) {
  return readJsonlConversations(
      path, [&](const nlohmann::json &j, const std::string &where) -> Expected<Conversation> {
        auto it = j.find(messagesKey);
        if (it == j.end())
          return Status::invalid(fmt::format("{}: missing the key \"{}\"", where, messagesKey));
        return conversationOf(*it, fmt::format("\"{}\"", messagesKey), where);
      });
}

Expected<std::vector<Conversation>> readConvosJson(const std::string &path,
                                                   const std::string &convosKey,
                                                   bool correctOnly) {
  auto text = readFile(path);
  if (!text)
    return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    return Status::invalid(fmt::format("{}: not a JSON document", path));
  if (!doc.is_object())
    return Status::invalid(fmt::format("{}: expected a JSON object, found {}", path,
                                       doc.type_name()));
  auto it = doc.find(convosKey);
  if (it == doc.end())
    return Status::invalid(fmt::format("{}: missing the key \"{}\"", path, convosKey));
  if (!it->is_array() || it->empty())
    return Status::invalid(
        fmt::format("{}: \"{}\" must be a non-empty list of conversations", path, convosKey));
  const nlohmann::json &list = *it;
  std::vector<double> scores;
  if (correctOnly) {
    auto htmls = doc.find("htmls");
    if (htmls == doc.end() || !htmls->is_array() || htmls->size() != list.size())
      return Status::invalid(fmt::format(
          "{}: 'keep: correct' needs \"htmls\", one report per conversation ({}), to read "
          "each sample's score from",
          path, list.size()));
    double sum = 0;
    for (size_t i = 0; i < htmls->size(); ++i) {
      const nlohmann::json &h = (*htmls)[i];
      auto score = h.is_string() ? reportScore(h.get_ref<const std::string &>()) : std::nullopt;
      if (!score)
        return Status::invalid(fmt::format(
            "{}: htmls[{}]: no \"<p>Score: X</p>\" line (the score of sample {})", path, i, i));
      scores.push_back(*score);
      sum += *score;
    }
    // The file's overall "score" is the mean of the samples' scores: a check that the
    // reports were read as the file means them.
    auto overall = doc.find("score");
    if (overall != doc.end() && overall->is_number() &&
        std::abs(overall->get<double>() - sum / double(scores.size())) > 1e-9)
      return Status::invalid(fmt::format(
          "{}: the samples' scores average {} but the file's \"score\" is {}", path,
          sum / double(scores.size()), overall->get<double>()));
  }
  std::vector<Conversation> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = fmt::format("{}: {}[{}]", path, convosKey, i);
    auto c = conversationOf(list[i], "the conversation", where);
    if (!c)
      return c.status();
    if (correctOnly && scores[i] != 1.0)
      continue;
    c->origin = fmt::format("{}:{}[{}]", path, convosKey, i);
    out.push_back(c.take());
  }
  if (out.empty())
    return Status::invalid(fmt::format("'{}' holds no {}conversation", path,
                                       correctOnly ? "correct " : ""));
  return out;
}

Expected<std::vector<Conversation>> readPromptCompletionJsonl(const std::string &path,
                                                              const std::string &promptKey,
                                                              const std::string &completionKey) {
  return readJsonlConversations(
      path, [&](const nlohmann::json &j, const std::string &where) -> Expected<Conversation> {
        auto prompt = stringField(j, promptKey, where);
        if (!prompt)
          return prompt.status();
        auto completion = stringField(j, completionKey, where);
        if (!completion)
          return completion.status();
        return Conversation{{{"user", prompt.take()}, {"assistant", completion.take()}}, where};
      });
}

std::vector<Conversation> parseFaqText(const std::string &source, const std::string &name) {
  // The text rendering of the FAQ indents and separates with no-break spaces (U+00A0) as
  // often as with spaces: read them as spaces.
  std::string text;
  text.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source.compare(i, 2, "\xc2\xa0") == 0) {
      text += ' ';
      ++i;
    } else {
      text += source[i];
    }
  }
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    lines.push_back(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
  }
  std::vector<Conversation> out;
  size_t i = 0;
  while (i < lines.size()) {
    size_t num = headingNumber(lines[i]);
    if (num == 0) {
      ++i;
      continue;
    }
    const size_t headingLine = i;
    std::string question = trimRight(lines[i].substr(num));
    for (++i; i < lines.size() && !isBlank(lines[i]) && !headingNumber(lines[i]); ++i)
      question += " " + trimRight(lines[i].substr(indentOf(lines[i])));
    std::vector<std::string_view> body;
    for (; i < lines.size() && !headingNumber(lines[i]) && !isChapter(lines[i]); ++i)
      body.push_back(lines[i]);
    if (question.empty() || question.back() != '?')
      continue;
    std::string answer = faqAnswer(body);
    if (answer.empty())
      continue;
    out.push_back({{{"user", question}, {"assistant", answer}},
                   fmt::format("{}:{}", name, headingLine + 1)});
  }
  return out;
}

Expected<std::vector<Conversation>> readFaq(const std::string &path) {
  std::string text;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f)
      return Status::error(StatusCode::NotFound, fmt::format("cannot open '{}'", path));
    char buf[1 << 16];
    int n = 0;
    while ((n = gzread(f, buf, sizeof(buf))) > 0)
      text.append(buf, size_t(n));
    int err = 0;
    std::string why = n < 0 ? gzerror(f, &err) : "";
    gzclose(f);
    if (n < 0)
      return Status::invalid(fmt::format("'{}': corrupt gzip data: {}", path, why));
  } else {
    auto read = readFile(path);
    if (!read)
      return read.status();
    text = read.take();
  }
  std::vector<Conversation> out = parseFaqText(text, path);
  if (out.empty())
    return Status::invalid(fmt::format("'{}' holds no FAQ question (expected headings such as "
                                       "\"1.2. What is Debian?\")",
                                       path));
  return out;
}

Expected<std::vector<Conversation>> readConversations(const DatasetSpec &spec) {
  auto key = [&](const std::string &arg) {
    auto it = spec.keys.find(arg);
    return it == spec.keys.end() ? arg : it->second;
  };
  if (spec.format == "chat")
    return readChatJsonl(spec.path, key("messages"));
  if (spec.format == "prompt_completion")
    return readPromptCompletionJsonl(spec.path, key("prompt"), key("completion"));
  if (spec.format == "qa")
    return readPromptCompletionJsonl(spec.path, key("question"), key("answer"));
  if (spec.format == "faq")
    return readFaq(spec.path);
  if (spec.format == "convos")
    return readConvosJson(spec.path, spec.keys.count("messages") ? key("messages") : "convos",
                          spec.correctOnly);
  return Status::invalid(fmt::format("dataset '{}': format '{}' holds no conversations; expected "
                                     "'chat', 'prompt_completion', 'qa', 'faq' or 'convos'",
                                     spec.name, spec.format));
}

Expected<SftExample> encodeConversation(const ChatTemplate &chatTemplate,
                                        const BpeTokenizer &tokenizer, const Conversation &c,
                                        const SftEncodeOptions &opts) {
  ChatRenderOptions render;
  render.endOfTurn = opts.endOfTurn;
  auto chat = chatTemplate.render(c.messages, render);
  if (!chat)
    return chat.status().withContext(c.origin);
  auto ids = tokenizer.encode(chat->text, /*parseSpecial=*/true);
  if (!ids)
    return ids.status().withContext(c.origin);
  auto mask = assistantTokenMask(*chat, *ids, tokenizer);
  if (!mask)
    return mask.status().withContext(c.origin);
  std::vector<int32_t> tokens = ids.take();
  std::vector<uint8_t> assistant = mask.take();
  if (opts.bos >= 0 && (tokens.empty() || tokens.front() != opts.bos)) {
    tokens.insert(tokens.begin(), opts.bos);
    assistant.insert(assistant.begin(), 0);
  }
  if (opts.eos >= 0 && (tokens.empty() || tokens.back() != opts.eos)) {
    // An EOS closing an assistant answer is part of it (it teaches the model to stop).
    uint8_t last = assistant.empty() ? 0 : assistant.back();
    tokens.push_back(opts.eos);
    assistant.push_back(last);
  }
  SftExample ex;
  ex.targets.assign(tokens.size(), kIgnoreIndex);
  for (size_t t = 0; t + 1 < tokens.size(); ++t)
    if (opts.trainOnAll || assistant[t + 1])
      ex.targets[t] = tokens[t + 1];
  ex.tokens = std::move(tokens);
  return ex;
}

ConversationSplit splitConversations(size_t n, double trainFraction, uint64_t seed) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i)
    order[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = n; i-- > 1;) {
    size_t j = size_t(rng() % uint64_t(i + 1));
    std::swap(order[i], order[j]);
  }
  double f = std::clamp(trainFraction, 0.0, 1.0);
  size_t nTrain = size_t(std::llround(f * double(n)));
  if (n >= 2)
    nTrain = std::clamp<size_t>(nTrain, 1, n - 1);
  ConversationSplit s;
  s.train.assign(order.begin(), order.begin() + std::min(nTrain, n));
  s.heldOut.assign(order.begin() + std::min(nTrain, n), order.end());
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.heldOut.begin(), s.heldOut.end());
  return s;
}

Expected<SftRows> makeSftRows(const std::vector<SftExample> &examples, int64_t seqLen,
                              bool packing, int32_t padId) {
  if (seqLen < 1)
    return Status::invalid(fmt::format("sft rows: sequence length {} must be positive", seqLen));
  SftRows r;
  r.seqLen = seqLen;
  std::vector<std::vector<int32_t>> docs, docTargets;
  for (const SftExample &ex : examples) {
    std::vector<int32_t> tokens = ex.tokens, targets = ex.targets;
    if (int64_t(tokens.size()) > seqLen) {
      ++r.truncated;
      tokens.resize(size_t(seqLen));
      targets.resize(size_t(seqLen));
      targets.back() = kIgnoreIndex;
    }
    int64_t n = countTargets(targets.data(), int64_t(targets.size()));
    if (n == 0) {
      ++r.dropped;
      continue;
    }
    r.targetTokens += n;
    docs.push_back(std::move(tokens));
    docTargets.push_back(std::move(targets));
  }
  if (packing) {
    auto packed = packDocuments(docs, seqLen, padId, &docTargets);
    if (!packed)
      return packed.status();
    r.rows = int64_t(packed->tokens.size()) / seqLen;
    r.tokens = std::move(packed->tokens);
    r.targets = std::move(packed->targets);
    r.segments = std::move(packed->segments);
    return r;
  }
  r.rows = int64_t(docs.size());
  r.tokens.assign(size_t(r.rows * seqLen), padId);
  r.targets.assign(r.tokens.size(), kIgnoreIndex);
  for (size_t d = 0; d < docs.size(); ++d) {
    std::copy(docs[d].begin(), docs[d].end(), r.tokens.begin() + int64_t(d) * seqLen);
    std::copy(docTargets[d].begin(), docTargets[d].end(), r.targets.begin() + int64_t(d) * seqLen);
  }
  return r;
}

} // namespace lrt
