// SPDX-License-Identifier: Apache-2.0
/// Full fine-tuning of an `sft` stage: data, starting weights and samples around the
/// shared training loop.
#include "runtime/SftTrainer.h"

#include "runtime/BpeTokenizer.h"
#include "runtime/Chat.h"
#include "runtime/ChatTemplate.h"
#include "runtime/FileUtil.h"
#include "runtime/Frozen.h"
#include "runtime/Gguf.h"
#include "runtime/GgufModel.h"
#include "runtime/Logits.h"
#include "runtime/Lora.h"
#include "runtime/SftData.h"
#include "runtime/TrainLoop.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

namespace lrt {
namespace {

/// The tokenizer side of a GGUF file.
struct GgufChat {
  std::optional<BpeTokenizer> tokenizer;
  std::optional<ChatTemplate> chatTemplate;
  SftEncodeOptions encode;
  int32_t eos = -1, pad = 0;
};

/// An integer or boolean GGUF key, or `fallback` when absent or of another type.
int64_t ggufIntOr(const GgufFile &f, const std::string &key, int64_t fallback) {
  auto v = f.getInt(key);
  return v ? *v : fallback;
}

Expected<GgufChat> loadGgufChat(const std::string &path, int64_t vocab) {
  auto gguf = readGguf(path);
  if (!gguf)
    return gguf.status();
  GgufChat c;
  auto tok = BpeTokenizer::fromGguf(*gguf);
  if (!tok)
    return tok.status().withContext(path);
  if (tok->vocabSize() > vocab)
    return Status::invalid(fmt::format("tokenizer '{}' has {} tokens but the model only {}", path,
                                       tok->vocabSize(), vocab));
  auto tmpl = ChatTemplate::fromGguf(*gguf, path);
  if (!tmpl)
    return tmpl.status();
  auto eos = gguf->getInt("tokenizer.ggml.eos_token_id");
  if (!eos)
    return eos.status().withContext(fmt::format("'{}' (the token that ends an answer)", path));
  c.eos = int32_t(*eos);
  c.pad = int32_t(ggufIntOr(*gguf, "tokenizer.ggml.padding_token_id", c.eos));
  if (ggufIntOr(*gguf, "tokenizer.ggml.add_bos_token", 0) != 0)
    c.encode.bos = int32_t(ggufIntOr(*gguf, "tokenizer.ggml.bos_token_id", -1));
  if (ggufIntOr(*gguf, "tokenizer.ggml.add_eos_token", 0) != 0)
    c.encode.eos = c.eos;
  c.tokenizer.emplace(tok.take());
  c.chatTemplate.emplace(tmpl.take());
  return c;
}

/// The prompt of a held-out conversation: its messages before its last assistant turn
/// (all but the last user turn go into the session), and the reference answer.
struct Question {
  std::vector<ChatMessage> before;
  std::string question, answer;
};

std::optional<Question> questionOf(const Conversation &c) {
  for (size_t i = c.messages.size(); i-- > 1;)
    if (c.messages[i].role == "assistant" && c.messages[i - 1].role == "user") {
      Question q;
      q.before.assign(c.messages.begin(), c.messages.begin() + int64_t(i) - 1);
      q.question = c.messages[i - 1].content;
      q.answer = c.messages[i].content;
      return q;
    }
  return std::nullopt;
}

} // namespace

Status runSft(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
              const SftSource &source) {
  const std::string runDir = runDirOf(plan, opts);
  // The answers run through the KV cache (a LoRA stage's on its merged weights) when the
  // source has a sampler, else through the stage's own full-window logits_step.
  const bool lora = plan.frozenBytes > 0;
  const bool kvCache = source.prefillStep && source.decodeStep &&
                       (!lora || source.mergedNumParams > 0);
  if (opts.numSamples > 0 && !kvCache && !fns.logitsStep)
    return Status::invalid("plan: samples requested but there is neither a logits_step nor a "
                           "prefill_step / decode_step with a KV cache");
  std::optional<GgufChat> chat;
  std::vector<Question> questions;
  StageHooks hooks;
  hooks.prepare = [&](bool report, int64_t ranks) -> Expected<PreparedData> {
    auto t0 = std::chrono::steady_clock::now();
    DatasetSpec spec = plan.data;
    if (!opts.dataPath.empty())
      spec.path = opts.dataPath;
    auto convs = readConversations(spec);
    if (!convs)
      return convs.status();
    auto loaded = loadGgufChat(source.tokenizerPath, plan.vocab);
    if (!loaded)
      return loaded.status();
    chat.emplace(loaded.take());
    chat->encode.trainOnAll = spec.trainOnAll;
    ConversationSplit split = splitConversations(convs->size(), spec.split, plan.seed);
    if (split.train.empty() || split.heldOut.empty())
      return Status::invalid(fmt::format(
          "dataset '{}': {} conversation(s) split {} / {} (split: {}); need at least one for "
          "training and one held out",
          spec.name, convs->size(), split.train.size(), split.heldOut.size(), spec.split));
    auto encodeAll = [&](const std::vector<size_t> &which) -> Expected<SftRows> {
      std::vector<SftExample> examples;
      for (size_t i : which) {
        auto ex = encodeConversation(*chat->chatTemplate, *chat->tokenizer, (*convs)[i],
                                     chat->encode);
        if (!ex)
          return ex.status();
        examples.push_back(ex.take());
      }
      return makeSftRows(examples, plan.seqLen, plan.packing, chat->pad);
    };
    auto train = encodeAll(split.train);
    if (!train)
      return train.status();
    auto held = encodeAll(split.heldOut);
    if (!held)
      return held.status();
    if (train->rows == 0 || held->rows == 0)
      return Status::invalid(fmt::format(
          "dataset '{}': no target tokens left in the {} set (sequence length {})", spec.name,
          train->rows == 0 ? "training" : "held-out", plan.seqLen));
    questions.clear();
    for (size_t i : split.heldOut)
      if (auto q = questionOf((*convs)[i]))
        questions.push_back(std::move(*q));
    if (report && opts.out) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fmt::print(opts.out,
                 "data: {} ({}): {} conversations, train {} / held out {} (seed {}); chat "
                 "template and tokenizer of {} ({:.2f}s)\n",
                 spec.path, spec.format, convs->size(), split.train.size(), split.heldOut.size(),
                 plan.seed, source.tokenizerPath, s);
      for (const auto &[name, rows] : {std::pair<const char *, const SftRows *>{"train", &*train},
                                       {"held out", &*held}})
        fmt::print(opts.out,
                   "rows ({}): {} of {} tokens{}, {} target tokens; {} truncated to {} tokens, "
                   "{} without targets dropped\n",
                   name, rows->rows, plan.seqLen, plan.packing ? " (packed)" : "",
                   rows->targetTokens, rows->truncated, plan.seqLen, rows->dropped);
    }
    PreparedData d;
    d.trainTokens = train->targetTokens;
    d.valTokens = held->targetTokens;
    d.corpusTokens = int64_t(train->tokens.size() + held->tokens.size());
    auto eval = makeEvalRows(held->tokens, held->targets, held->segments, plan.batch * ranks,
                             plan.seqLen, chat->pad);
    if (!eval)
      return eval.status();
    auto batches = TrainBatches::fromRows(std::move(train->tokens), std::move(train->targets),
                                          std::move(train->segments), plan.batch, plan.seqLen,
                                          plan.seed);
    if (!batches)
      return batches.status();
    d.train.emplace(batches.take());
    d.eval = eval.take();
    return d;
  };
  const std::string &weightsPath = source.weightsPath;
  const bool gguf = weightsPath.size() > 5 &&
                    weightsPath.compare(weightsPath.size() - 5, 5, ".gguf") == 0;
  hooks.initialParams = [&](std::vector<float> &params) -> Status {
    // A LoRA stage trains only the adapters (lora_A uniform, lora_B zeros); its base comes
    // from the weights into the frozen buffer (initialFrozen).
    if (plan.frozenBytes > 0)
      return initParams(plan, plan.seed, params);
    auto loaded = gguf ? readGgufParams(plan.params, plan.numParams, weightsPath)
                       : readParams(plan, weightsPath);
    if (!loaded)
      return loaded.status();
    params = loaded.take();
    return Status::ok();
  };
  // The frozen base, kept for the samples' logits_step (the loop owns the buffer).
  uint8_t *frozenBase = nullptr;
  hooks.initialFrozen = [&](std::vector<uint8_t> &frozen) -> Status {
    // fp32 copies, or NF4 blobs for a `base: nf4(...)` stage, one parameter at a time.
    if (Status st = readFrozenBase(plan, weightsPath, frozen); !st)
      return st;
    frozenBase = frozen.data();
    return Status::ok();
  };
  // Greedy answers to the first held-out questions; `label` says when.
  std::string samples;
  auto answer = [&](std::vector<float> &params, const std::string &label,
                    TrainResult *result) -> Expected<std::string> {
    if (opts.numSamples <= 0)
      return std::string();
    StepCalls calls(plan, fns);
    calls.setFrozen(frozenBase);
    LogitsModel model{fns.logitsStep ? calls.logitsStep() : nullptr, params.data(),
                      plan.numParams, plan.context > 0 ? plan.context : plan.seqLen, plan.vocab};
    // A LoRA stage samples through the model without adapter on its merged weights, built
    // here and freed when the samples are done.
    std::vector<float> merged;
    if (kvCache) {
      if (lora) {
        auto m = mergedStageParams(plan, params.data(), frozenBase, source.mergedParams,
                                   source.mergedNumParams);
        if (!m)
          return m.status().withContext("merging the LoRA adapters for the samples");
        merged = m.take();
        model.logitsStep = nullptr; // it takes the adapter layout, not the merged one
        model.params = merged.data();
        model.numParams = source.mergedNumParams;
      }
      model.prefillStep = source.prefillStep;
      model.decodeStep = source.decodeStep;
      model.cache = source.cache;
    }
    ChatOptions options;
    options.maxNew = std::max<int64_t>(1, opts.sampleTokens);
    std::string text;
    for (size_t i = 0; i < questions.size() && int64_t(i) < opts.numSamples; ++i) {
      const Question &q = questions[i];
      ChatSession session(model, *chat->tokenizer, *chat->chatTemplate, {chat->eos}, options);
      for (const ChatMessage &m : q.before)
        session.add(m.role, m.content);
      auto reply = session.reply(q.question);
      if (!reply)
        return reply.status();
      if (result)
        result->samples.push_back(*reply);
      text += fmt::format("--- {}: held-out question {} ---\nQ: {}\nA: {}\n", label, i + 1,
                          q.question, *reply);
      if (label == "after training")
        text += fmt::format("reference: {}\n", q.answer);
    }
    samples += text;
    return text;
  };
  hooks.beforeTraining = [&](std::vector<float> &params) {
    return answer(params, "before training", nullptr);
  };
  hooks.outputs = {"samples.txt"};
  hooks.afterTraining = [&](std::vector<float> &params,
                            TrainResult &result) -> Expected<std::string> {
    // A resumed run skipped the answers before training (the loop starts from a
    // checkpoint): give them now from the starting weights, which initialParams rebuilds
    // exactly (the GGUF or `from:` checkpoint; a LoRA stage's seeded adapters), so that
    // samples.txt is the one of an uninterrupted run.
    std::string before;
    if (opts.resume && samples.empty() && opts.numSamples > 0) {
      std::vector<float> initial;
      if (Status st = hooks.initialParams(initial); !st)
        return st.withContext("the starting weights for the samples before training");
      auto text = answer(initial, "before training", nullptr);
      if (!text)
        return text.status();
      before = *text;
    }
    auto text = answer(params, "after training", &result);
    if (!text)
      return text.status();
    if (samples.empty())
      return std::string();
    if (Status st = writeFileAtomic(runDir + "/samples.txt", samples); !st)
      return st;
    return before + *text + fmt::format("samples: {}/samples.txt", runDir);
  };
  Status st = runTrainingLoop(plan, fns, opts, hooks);
  if (opts.out)
    std::fflush(opts.out);
  return st;
}

} // namespace lrt
