// SPDX-License-Identifier: Apache-2.0
/// Data of supervised fine-tuning (`sft` stages): conversations read from JSONL chat rows,
/// prompt/completion (or question/answer) rows, a plain-text FAQ, or a JSON document of
/// scored sample conversations; rendered with the
/// model's own chat template (runtime/ChatTemplate.h), tokenised, and labelled so that the
/// loss falls on assistant tokens only; split into training and held-out conversations;
/// and laid out as rows of the stage's sequence length, packed (several conversations per
/// row, with segments) or one per row padded with ignored targets.
#pragma once

#include "runtime/ChatTemplate.h"
#include "runtime/Plan.h"
#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrt {

class BpeTokenizer;

/// One conversation, with where it came from.
struct Conversation {
  std::vector<ChatMessage> messages;
  std::string origin; ///< "file:line" of its JSONL row or FAQ heading, for messages
};

/// Chat rows: each non-empty line of `path` is a JSON object whose `messagesKey` holds a
/// list of {"role": string, "content": string} objects. Errors: NotFound/IoError for the
/// file; InvalidArgument "`path`:LINE: ..." for a line that is not JSON, lacks the key, or
/// holds a message without a string role and content; InvalidArgument if the file holds
/// no conversation.
Expected<std::vector<Conversation>> readChatJsonl(const std::string &path,
                                                  const std::string &messagesKey = "messages");

/// Prompt/completion rows (also question/answer rows): each non-empty line of `path` is a
/// JSON object with the string fields `promptKey` and `completionKey`, which become a user
/// and an assistant message. Errors: as readChatJsonl.
Expected<std::vector<Conversation>> readPromptCompletionJsonl(const std::string &path,
                                                              const std::string &promptKey,
                                                              const std::string &completionKey);

/// Question -> answer conversations of a FAQ in the plain-text layout of Debian's
/// `debian-faq` (debian-faq.en.txt): a question is a heading at the start of a line,
/// "N.M. Question?" (numbers with dots, a space, then text that may
/// wrap over following lines up to a blank line, ending in '?'); its answer is the text
/// after it up to the next numbered heading or "Chapter N." line, with the common
/// indentation removed, lines of a paragraph joined with spaces, paragraphs separated by
/// a blank line and list/code lines (those indented more) kept on their own lines.
/// Headings that do not end in '?' (e.g. "12.2.1. Mailing lists") and their text are
/// skipped, as are questions with an empty answer. No-break spaces (U+00A0), which the
/// text uses for indentation as often as spaces, count as spaces. `name` prefixes origins
/// ("name:LINE").
std::vector<Conversation> parseFaqText(const std::string &text, const std::string &name);

/// parseFaqText of the file `path`, decompressed with zlib when it ends in ".gz".
/// Errors: NotFound/IoError for the file; InvalidArgument for a corrupt gzip stream or
/// when no question is found.
Expected<std::vector<Conversation>> readFaq(const std::string &path);

/// Conversations of one JSON document in the layout of OpenAI simple-evals' sample
/// reports (e.g. llama.cpp's AIME 2025 samples of gpt-oss-120b): an object whose
/// `convosKey` lists conversations, each a list of {"role", "content"} messages; `htmls`
/// one HTML report per conversation, ending "<p>Score: S</p>" (1.0 when the sample's
/// extracted answer equals the correct one, else 0.0); `score` the mean of the S.
/// `correctOnly` keeps the conversations whose S is 1, after checking that the S average
/// to `score` (when the file has it). Origins are "path:convos[i]".
/// Errors: NotFound/IoError for the file; InvalidArgument "`path`: ..." for a document that
/// is not a JSON object, lacks the key, or holds a conversation that is not a non-empty
/// list of messages with string role and content ("`path`: convos[i]: message j: ...");
/// with `correctOnly`, for missing or unreadable reports or scores whose mean differs
/// from `score`; and when no conversation is left.
Expected<std::vector<Conversation>> readConvosJson(const std::string &path,
                                                   const std::string &convosKey = "convos",
                                                   bool correctOnly = false);

/// The conversations of a dataset spec: format "chat" (keys["messages"]),
/// "prompt_completion" (keys["prompt"], keys["completion"]), "qa" (keys["question"],
/// keys["answer"]) for JSONL files, "faq" for readFaq, "convos" for readConvosJson
/// (keys["messages"], default "convos"; spec.correctOnly); other missing keys take their
/// argument's name. Errors: those of the readers; InvalidArgument for another format.
Expected<std::vector<Conversation>> readConversations(const DatasetSpec &spec);

/// How a conversation becomes a training sequence.
struct SftEncodeOptions {
  /// false (`train_on: assistant`): targets only where the next token is an assistant token
  /// (assistantTokenMask: the assistant content and its end-of-turn token); true
  /// (`train_on: all`): every next token.
  bool trainOnAll = false;
  /// Added in front when >= 0 and the rendered text does not already start with it (the
  /// tokenizer's add-BOS setting, e.g. GGUF tokenizer.ggml.add_bos_token), so BOS occurs once.
  int32_t bos = -1;
  /// Appended when >= 0 and the rendered text does not already end with it.
  int32_t eos = -1;
  /// Strings that end an assistant turn (ChatRenderOptions::endOfTurn); empty: eos_token.
  std::vector<std::string> endOfTurn;
};

/// One labelled conversation. tokens and targets are i32[n]: targets[t] = tokens[t + 1]
/// where that token is trained on, else kIgnoreIndex (always on the last token).
struct SftExample {
  std::vector<int32_t> tokens, targets;
};

/// Renders `c` with `chatTemplate` (no generation prompt), tokenises the text with special
/// tokens parsed, and labels it (SftEncodeOptions). The tokens equal transformers'
/// `apply_chat_template(messages, tokenize=True)` on the same template. Errors: those of
/// rendering, encoding and assistantTokenMask, prefixed with `c.origin`.
Expected<SftExample> encodeConversation(const ChatTemplate &chatTemplate,
                                        const BpeTokenizer &tokenizer, const Conversation &c,
                                        const SftEncodeOptions &opts);

/// A deterministic split of `n` conversations: a Fisher-Yates shuffle of [0, n) drawn from
/// std::mt19937_64(seed) (j = rng() % (i + 1)); the first round(trainFraction * n) indices
/// (at least 1 and at most n - 1 when n >= 2) are the training set, the rest held out.
/// Each list is sorted ascending, so the files' order is kept.
struct ConversationSplit {
  std::vector<size_t> train, heldOut;
};
ConversationSplit splitConversations(size_t n, double trainFraction, uint64_t seed);

/// Rows of the stage's sequence length T made from labelled conversations.
struct SftRows {
  int64_t rows = 0, seqLen = 0;
  std::vector<int32_t> tokens, targets; ///< i32[rows, seqLen]
  std::vector<int32_t> segments;        ///< i32[rows, seqLen] when packed, else empty
  int64_t truncated = 0; ///< conversations longer than T, cut to their first T tokens
  int64_t dropped = 0;   ///< conversations with no target token left (after truncation)
  int64_t targetTokens = 0; ///< targets != kIgnoreIndex over all rows
};

/// Lays out `examples` in order: each is first cut to T tokens when longer (counted in
/// `truncated`; the target of its new last token becomes kIgnoreIndex, as truncating the
/// text before labelling would), and dropped when it has no target left. `packing`: the
/// conversations fill rows greedily as packDocuments (Data.h) places documents, with their
/// own targets and segments; else one conversation per row. The rest of a row is `padId`
/// with target kIgnoreIndex (its own segment when packed). Errors: InvalidArgument if
/// seqLen < 1.
Expected<SftRows> makeSftRows(const std::vector<SftExample> &examples, int64_t seqLen,
                              bool packing, int32_t padId);

} // namespace lrt
