// SPDX-License-Identifier: Apache-2.0
/// The pretrain loop: data preparation, parameter initialisation, the step loop with
/// progress, metrics.jsonl, evaluation, checkpoint and samples.
#include "runtime/Trainer.h"

#include "runtime/TrainLoop.h"

#include "kernels/cpu/Alloc.h"

#include "runtime/Checkpoint.h"
#include "runtime/Corpus.h"
#include "runtime/Data.h"
#include "runtime/DataParallel.h"
#include "runtime/FileUtil.h"
#include "runtime/Frozen.h"
#include "runtime/Generate.h"
#include "runtime/Memory.h"
#include "runtime/Safetensors.h"
#include "runtime/Schedule.h"
#include "runtime/Tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace lrt {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// "1h02m", "3m05s", "42s".
std::string formatDuration(double s) {
  if (!std::isfinite(s) || s < 0)
    return "?";
  int64_t t = int64_t(s + 0.5);
  if (t >= 3600)
    return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60)
    return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

/// Checks what the loop relies on before touching any buffer.
Status validateLoop(const StagePlan &plan, const StepFunctions &fns, bool needLogits) {
  if (!fns.gradStep || !fns.applyStep || !fns.evalStep)
    return Status::invalid("plan: missing grad_step, apply_step or eval_step function");
  if (plan.accumulate < 1)
    return Status::invalid(fmt::format("plan: accumulate {} must be positive", plan.accumulate));
  if (needLogits && !fns.logitsStep)
    return Status::invalid("plan: samples requested but there is no logits_step function");
  if (plan.batch < 1 || plan.seqLen < 1)
    return Status::invalid(fmt::format("plan: batch {} x {} must be positive", plan.batch, plan.seqLen));
  if (plan.numParams < 1 || plan.params.empty())
    return Status::invalid(fmt::format("plan: model has {} parameters", plan.numParams));
  return Status::ok();
}

/// validateLoop and what pretraining adds: a SentencePiece BPE of the model's vocabulary.
Status validatePlan(const StagePlan &plan, const StepFunctions &fns, bool needLogits) {
  if (Status st = validateLoop(plan, fns, needLogits); !st)
    return st;
  if (plan.vocab != plan.tokenizer.vocabSize)
    return Status::invalid(fmt::format("plan: model vocab {} differs from tokenizer '{}' vocab {}",
                                       plan.vocab, plan.tokenizer.name, plan.tokenizer.vocabSize));
  if (plan.tokenizer.kind != "bpe")
    return Status::invalid(fmt::format("plan: unknown tokenizer kind '{}'; expected 'bpe'",
                                       plan.tokenizer.kind));
  return Status::ok();
}

/// The pretraining data (tokens, splits and batches); the tokenizer goes to `tokenizer`.
/// `ranks` > 1: each validation batch holds every rank's rows (ranks x plan.batch), so
/// the validation set is the one of a single process with the whole batch.
Expected<PreparedData> prepareData(const StagePlan &plan, const TrainOptions &opts,
                                   const std::string &runDir, bool report,
                                   std::optional<Tokenizer> &tokenizer, int64_t ranks = 1) {
  std::FILE *out = opts.out;
  std::string dataPath = opts.dataPath.empty() ? plan.data.path : opts.dataPath;
  std::string format = plan.data.format.empty() ? "text" : plan.data.format;
  auto t0 = Clock::now();
  auto corpus = readCorpus(dataPath, format);
  if (!corpus)
    return corpus.status();
  if (report && out)
    fmt::print(out, "data: {} ({}): {} chars, {} {} ({:.2f}s)\n", dataPath, format,
               corpus->numChars, corpus->numUnits, corpus->unitName, secondsSince(t0));

  PreparedData d;
  d.corpusChars = corpus->numChars;
  TokenizerTrainOptions topts;
  topts.vocabSize = plan.tokenizer.vocabSize;
  topts.seed = plan.seed;
  bool trained = false;
  t0 = Clock::now();
  auto tok = Tokenizer::loadOrTrain(runDir + "/tokenizer.model", corpus->text, topts, &trained);
  if (!tok)
    return tok.status();
  if (tok->vocabSize() != plan.vocab)
    return Status::invalid(fmt::format("tokenizer has {} pieces but the model vocab is {}",
                                       tok->vocabSize(), plan.vocab));
  d.tokenizerSeconds = trained ? secondsSince(t0) : 0;
  if (report && out)
    fmt::print(out, "tokenizer: {} BPE, {} pieces ({})\n", trained ? "trained" : "loaded",
               tok->vocabSize(), trained ? fmt::format("{:.1f}s", d.tokenizerSeconds) : "cached");

  auto key = tokenCacheKey(dataPath, format, *tok);
  if (!key)
    return key.status();
  bool fromCache = false;
  t0 = Clock::now();
  auto ids = tokenizeCached(corpus->text, *tok, runDir + "/tokens.bin", *key, &fromCache);
  if (!ids)
    return ids.status();
  d.corpusTokens = int64_t(ids->size());
  TokenSplit split = splitTokens(*ids, plan.data.split);
  d.trainTokens = int64_t(split.train.size());
  d.valTokens = int64_t(split.val.size());
  if (report && out)
    fmt::print(out, "tokens: {} ({:.2f} chars/token; {}), train {} / val {}\n", d.corpusTokens,
               double(d.corpusChars) / double(std::max<int64_t>(1, d.corpusTokens)),
               fromCache ? "cached" : fmt::format("{:.1f}s", secondsSince(t0)), d.trainTokens,
               d.valTokens);
  auto train = TrainBatches::create(std::move(split.train), plan.batch, plan.seqLen, plan.seed);
  if (!train)
    return train.status();
  auto eval = makeEvalBatches(split.val, plan.batch * ranks, plan.seqLen,
                              std::max<int64_t>(1, plan.evalBatches));
  if (!eval)
    return eval.status();
  tokenizer.emplace(tok.take());
  d.train.emplace(train.take());
  d.eval = eval.take();
  return d;
}

/// Progress output: a redrawn bar on a terminal, plain lines otherwise.
class Progress {
public:
  Progress(std::FILE *out, ProgressStyle style, int64_t steps, int64_t every)
      : out_(out), steps_(steps), every_(every) {
    if (!out_)
      style = ProgressStyle::Quiet;
    if (style == ProgressStyle::Auto)
      style = isatty(fileno(out_)) ? ProgressStyle::Bar : ProgressStyle::Lines;
    style_ = style;
    if (every_ <= 0)
      every_ = std::max<int64_t>(1, steps / 20);
  }

  void step(int64_t step, double loss, double lr, double tokPerSec, double elapsed) {
    if (style_ == ProgressStyle::Lines && (step % every_ == 0 || step == 1 || step == steps_)) {
      fmt::print(out_, "step {}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s\n", step, steps_, loss,
                 lr, tokPerSec);
      std::fflush(out_);
    } else if (style_ == ProgressStyle::Bar) {
      // Redraw at most ~10 times a second: fast steps would otherwise spend their time in
      // terminal output.
      auto now = Clock::now();
      if (step != steps_ && step != 1 && now - lastDraw_ < std::chrono::milliseconds(100))
        return;
      lastDraw_ = now;
      constexpr int kWidth = 24;
      int filled = int(kWidth * step / std::max<int64_t>(1, steps_));
      double eta = elapsed / double(step) * double(steps_ - step);
      fmt::print(out_, "\r\033[K[{}{}] {}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | ETA {}",
                 std::string(filled, '#'), std::string(kWidth - filled, '.'), step, steps_, loss,
                 lr, tokPerSec, formatDuration(eta));
      std::fflush(out_);
      barOpen_ = true;
    }
  }

  /// A line that must stay (eval results, messages).
  void line(const std::string &text) {
    if (style_ == ProgressStyle::Quiet)
      return;
    if (barOpen_)
      fmt::print(out_, "\r\033[K");
    fmt::print(out_, "{}\n", text);
    std::fflush(out_);
    barOpen_ = false;
  }

  void finish() {
    if (barOpen_)
      fmt::print(out_, "\n");
    barOpen_ = false;
  }

private:
  std::FILE *out_;
  ProgressStyle style_;
  int64_t steps_, every_;
  bool barOpen_ = false;
  Clock::time_point lastDraw_;
};

/// metrics.jsonl, with its length and crc32 tracked so a checkpoint can record exactly
/// which rows it covers.
class MetricsFile {
public:
  ~MetricsFile() {
    if (f_)
      std::fclose(f_);
  }
  /// Creates the file, or with `resume` checks its first resume->metricsBytes bytes against
  /// the checkpoint's crc32 and cuts the rest (rows of steps after the checkpoint).
  Status open(const std::string &path, const TrainState *resume) {
    path_ = path;
    if (!resume) {
      f_ = std::fopen(path.c_str(), "wb");
      if (!f_)
        return Status::ioError(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
      return Status::ok();
    }
    auto text = readFile(path);
    if (!text)
      return text.status().withContext("resume");
    if (int64_t(text->size()) < resume->metricsBytes)
      return Status::invalid(fmt::format("resume: '{}' has {} bytes, the checkpoint of step {} "
                                         "covers {}",
                                         path, text->size(), resume->step, resume->metricsBytes));
    bytes_ = resume->metricsBytes;
    crc_ = crc32(text->data(), size_t(bytes_));
    if (crc_ != resume->metricsCrc)
      return Status::invalid(fmt::format("resume: the first {} bytes of '{}' differ from those "
                                         "the checkpoint of step {} recorded (crc32 {:08x}, "
                                         "expected {:08x})",
                                         bytes_, path, resume->step, crc_, resume->metricsCrc));
    if (::truncate(path.c_str(), bytes_) != 0)
      return Status::ioError(fmt::format("cannot truncate '{}': {}", path, std::strerror(errno)));
    f_ = std::fopen(path.c_str(), "ab");
    if (!f_)
      return Status::ioError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
    return Status::ok();
  }
  void write(const nlohmann::ordered_json &row) {
    std::string line = row.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size())
      failed_ = true;
    failed_ = std::fflush(f_) != 0 || failed_;
    bytes_ += int64_t(line.size());
    crc_ = crc32(line.data(), line.size(), crc_);
  }
  /// Makes the rows so far durable (before a checkpoint refers to them).
  Status sync() {
    if (failed_ || std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0)
      return Status::ioError(fmt::format("cannot write '{}'", path_));
    return Status::ok();
  }
  int64_t bytes() const { return bytes_; }
  uint32_t crc() const { return crc_; }

private:
  std::string path_;
  std::FILE *f_ = nullptr;
  int64_t bytes_ = 0;
  uint32_t crc_ = 0;
  bool failed_ = false;
};

/// Mean eval loss over every target token of all validation batches (each batch's mean
/// loss weighted by its target tokens; with the full windows of pretraining, the mean of
/// the batch means). Data parallel: rank r evaluates rows [r B, (r + 1) B) of each batch
/// of world.size() x B rows, and the weighted sums are all-reduced. Errors: the
/// collective's.
Expected<double> evaluate(const StepCalls &calls, std::vector<float> &params,
                          const EvalBatches &eval, Collective &world) {
  const int64_t rows = eval.batch / world.size(), shard = world.rank() * rows * eval.seqLen;
  std::vector<int32_t> tokens(rows * eval.seqLen), targets(tokens.size()), segments(tokens.size());
  std::vector<float> metrics(kNumMetrics, 0.0f);
  double sums[2] = {0, 0}; // sum of n_b * loss_b, sum of n_b
  for (int64_t b = 0; b < eval.numBatches; ++b) {
    std::copy_n(eval.tokensOf(b) + shard, tokens.size(), tokens.begin());
    std::copy_n(eval.targetsOf(b) + shard, targets.size(), targets.begin());
    if (const int32_t *seg = eval.segmentsOf(b))
      std::copy_n(seg + shard, segments.size(), segments.begin());
    else
      std::fill(segments.begin(), segments.end(), 0);
    int64_t n = countTargets(targets.data(), int64_t(targets.size()));
    if (n == 0)
      continue;
    calls.eval(params.data(), tokens.data(), targets.data(), segments.data(), rows,
               metrics.data());
    sums[0] += double(n) * metrics[kMetricLoss];
    sums[1] += double(n);
  }
  if (world.size() > 1)
    if (Status st = world.allreduceSum(sums, 2); !st)
      return st;
  return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

std::vector<TensorRef> paramTensors(const StagePlan &plan, const std::vector<float> &buf,
                                    const std::string &prefix) {
  std::vector<TensorRef> out;
  for (const ParamInfo &p : plan.params)
    if (!p.frozen) // the trainable buffers hold no frozen (LoRA base) params
      out.push_back({prefix + p.name, DType::F32, p.shape, buf.data() + p.offset});
  return out;
}

std::vector<std::string> defaultPrompts() {
  return {"In the beginning", "And it came to pass", "The LORD is", "Blessed are the"};
}

} // namespace

Status initParams(const StagePlan &plan, uint64_t seed, std::vector<float> &params,
                  std::vector<uint8_t> *frozen) {
  params.assign(size_t(std::max<int64_t>(0, plan.numParams)), 0.0f);
  if (frozen)
    frozen->assign(size_t(std::max<int64_t>(0, plan.frozenBytes)), 0);
  std::mt19937_64 rng(seed);
  std::vector<float> scratch;
  for (const ParamInfo &p : plan.params) {
    int64_t numel = 1;
    for (int64_t d : p.shape)
      numel *= d;
    if (p.frozen) {
      // storeFrozenParam checks the byte range (and quantizes NF4 params) below.
      if (numel != p.numel)
        return Status::invalid(fmt::format(
            "plan: frozen param '{}' (numel {}, shape numel {}) does not match its shape", p.name,
            p.numel, numel));
    } else if (numel != p.numel || p.offset < 0 || p.offset + p.numel > plan.numParams) {
      return Status::invalid(fmt::format(
          "plan: param '{}' (offset {}, numel {}, shape numel {}) does not fit numParams {}",
          p.name, p.offset, p.numel, numel, plan.numParams));
    }
    if (p.frozen)
      scratch.assign(size_t(p.numel), 0.0f);
    float *dst = p.frozen ? scratch.data() : params.data() + p.offset;
    switch (p.init) {
    case InitKind::Zeros:
      std::fill_n(dst, p.numel, 0.0f);
      break;
    case InitKind::Ones:
      std::fill_n(dst, p.numel, 1.0f);
      break;
    case InitKind::Normal:
      // Box-Muller on our own uniforms: std::normal_distribution differs between stdlibs.
      for (int64_t i = 0; i < p.numel; i += 2) {
        double u1 = 1.0 - uniform01(rng), u2 = uniform01(rng);
        double r = std::sqrt(-2.0 * std::log(u1));
        dst[i] = float(p.mean + p.std * r * std::cos(2 * M_PI * u2));
        if (i + 1 < p.numel)
          dst[i + 1] = float(p.mean + p.std * r * std::sin(2 * M_PI * u2));
      }
      break;
    case InitKind::KaimingUniform: {
      // PEFT's nn.init.kaiming_uniform_(A, a=sqrt(5)) on A [rank, in]: bound
      // sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in), fan_in = shape[1].
      double bound = 1.0 / std::sqrt(double(p.shape.size() == 2 ? p.shape[1] : p.numel));
      for (int64_t i = 0; i < p.numel; ++i)
        dst[i] = float(bound * (2.0 * uniform01(rng) - 1.0));
      break;
    }
    }
    if (p.frozen && frozen)
      if (Status s = storeFrozenParam(p, plan.nf4, scratch.data(), frozen->data(), plan.frozenBytes); !s)
        return s;
  }
  return Status::ok();
}

StagePlan frozenAsF32(const StagePlan &plan) {
  StagePlan base = plan;
  base.params.clear();
  for (const ParamInfo &p : plan.params)
    if (p.frozen && p.storage == Storage::F32) {
      ParamInfo q = p;
      q.frozen = false;
      q.offset = p.byteOffset / 4;
      base.params.push_back(std::move(q));
    }
  base.numParams = plan.frozenBytes / 4;
  base.frozenBytes = 0;
  return base;
}

namespace {

/// OutOfMemory unless the parameters, their gradients and the two AdamW moments (4 fp32
/// buffers of numParams) fit in the memory this process may use.
Status checkStateFits(const StagePlan &plan) {
  const double bytes = 16.0 * double(plan.numParams);
  const char *what = nullptr;
  int64_t usable = usableMemoryBytes(&what);
  if (usable > 0 && bytes > double(usable))
    return Status::outOfMemory(fmt::format(
        "model '{}' ({} parameters) needs {} for parameters, gradients and AdamW state "
        "(4 x 4 bytes per parameter); {} {}",
        plan.model, plan.numParams, formatGiB(bytes), what, formatGiB(double(usable))));
  return Status::ok();
}

/// The four fp32[numParams] buffers of training, zeroed; OutOfMemory naming them if the
/// allocation fails.
Status allocateState(const StagePlan &plan, std::vector<float> &grads, std::vector<float> &m,
                     std::vector<float> &v) {
  try {
    grads.assign(size_t(plan.numParams), 0.0f);
    m.assign(size_t(plan.numParams), 0.0f);
    v.assign(size_t(plan.numParams), 0.0f);
    return Status::ok();
  } catch (const std::bad_alloc &) {
    grads = {}, m = {}, v = {};
    return Status::outOfMemory(fmt::format(
        "cannot allocate {} for parameters, gradients and AdamW state ({} parameters)",
        formatGiB(16.0 * double(plan.numParams)), plan.numParams));
  }
}

/// Prints the memory line of a run and writes `<run>/memory.json`: the plan's bytes (fp32
/// weights, gradients and AdamW m, v of the trainable parameters, 16 bytes each; the frozen
/// base; the step heap's peak as the compiler computed it, opts.stepHeapPeakBytes) next to
/// the measured resident set (runtime/Memory.h). The process baseline (code, libraries, the
/// JIT's code, the tokenised data) is measured: the resident set after setup less the
/// buffers the plan counts.
Status reportMemory(const StagePlan &plan, const TrainOptions &opts, const std::string &runDir,
                    MemoryReading &memory, Progress &progress) {
  memory.stepHeapCachedBytes = int64_t(lrt_alloc_stats().cachedBytes);
  // The whole process's: loading and compiling, earlier stages, the samples (the VmHWM
  // resets lower ru_maxrss; processResidentPeak keeps what they ended).
  memory.processPeakBytes = processResidentPeak();
  const int64_t state = 16 * plan.numParams + plan.frozenBytes;
  const int64_t baseline = std::max<int64_t>(0, memory.afterSetupBytes - state);
  const int64_t planTotal = state + opts.stepHeapPeakBytes + baseline;
  auto mib = [](int64_t b) { return double(b) / 1048576.0; };
  progress.line(fmt::format(
      "memory: training peak RSS {:.0f} MiB vs plan {:.0f} MiB ({:+.1f}%): weights, grads, "
      "AdamW {:.0f} + frozen {:.0f} + step heap {:.0f} (computed; measured {:.0f}) + baseline "
      "{:.0f} (measured after setup); peak RSS of the process {:.0f} MiB",
      mib(memory.trainingPeakBytes), mib(planTotal),
      planTotal > 0 ? 100.0 * double(memory.trainingPeakBytes - planTotal) / double(planTotal)
                    : 0.0,
      mib(16 * plan.numParams), mib(plan.frozenBytes), mib(opts.stepHeapPeakBytes),
      mib(memory.stepHeapPeakBytes), mib(baseline), mib(memory.processPeakBytes)));
  std::string planText = fmt::format(
      "{{\"weights\": {}, \"gradients\": {}, \"optimizer\": {}, \"frozen\": {}, "
      "\"step_heap\": {}, \"baseline\": {}, \"total\": {}}}",
      4 * plan.numParams, 4 * plan.numParams, 8 * plan.numParams, plan.frozenBytes,
      opts.stepHeapPeakBytes, baseline, planTotal);
  return writeFileAtomic(runDir + "/memory.json", memoryJson(planText, memory));
}

} // namespace

Status runTrainingLoop(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts,
                       const StageHooks &hooks) {
  try {
    // The stage's own entry point checks what its samples run on (validatePlan, runSft).
    if (Status st = validateLoop(plan, fns, /*needLogits=*/false); !st)
      return st;
    StepCalls calls(plan, fns);
    if (Status st = checkStateFits(plan); !st)
      return st;
    const std::string runDir = runDirOf(plan, opts);
    // Data parallel: every rank trains; rank 0 alone writes files and prints.
    std::unique_ptr<Collective> single;
    Collective *world = opts.world;
    if (!world)
      world = (single = makeSingleProcessCollective()).get();
    const int64_t R = world->size();
    const bool writer = world->rank() == 0;
    if (plan.ranks != R)
      return Status::invalid(fmt::format("stage '{}' has ranks: {} but {} process(es) run it",
                                         plan.stage, plan.ranks, R));
    if (Status st = agreeOnStatus(*world, writer ? makeDirs(runDir + "/checkpoint") : Status());
        !st)
      return st;
    std::FILE *out = writer ? opts.out : nullptr;
    const bool quiet = opts.progress == ProgressStyle::Quiet || !out;
    const int64_t steps = opts.steps > 0 ? opts.steps : plan.steps;
    if (steps < 1)
      return Status::invalid(fmt::format("plan: steps {} must be positive", steps));

    if (!quiet)
      fmt::print(out, "stage {}: model '{}', {} params, batch {} x {}{}{}, {} steps -> {}\n",
                 stageLabel(plan.pipeline, plan.stage), plan.model, plan.numParams, plan.batch, plan.seqLen,
                 plan.packing ? " packed" : "",
                 R > 1 ? fmt::format(" on each of {} ranks", R) : "", steps, runDir);
    // Rank 0 prepares the data first (pretraining: it trains the tokenizer and writes the
    // token cache); the others then read both from the run directory.
    std::optional<Expected<PreparedData>> prepared;
    if (writer)
      prepared.emplace(hooks.prepare(!quiet, R));
    if (Status st = agreeOnStatus(*world, writer ? prepared->status() : Status()); !st)
      return st;
    if (!writer)
      prepared.emplace(hooks.prepare(false, R));
    if (Status st = agreeOnStatus(*world, prepared->status()); !st)
      return st;
    Expected<PreparedData> &data = *prepared;
    TrainBatches &train = *data->train;
    // A signal may reach the ranks at different steps: they stop at the first step after
    // which any rank has seen it.
    auto stopRequested = [&]() -> Expected<bool> {
      return anyRank(*world, opts.stop && opts.stop->load());
    };
    auto stopFirst = stopRequested();
    if (!stopFirst)
      return stopFirst.status();
    if (*stopFirst)
      return Status::cancelled("interrupted before the first step (nothing was written)");

    std::vector<float> params, grads, m, v;
    std::vector<uint8_t> frozen; // the frozen base (LoRA), read only by the steps
    if (Status st = allocateState(plan, grads, m, v); !st)
      return st;
    try {
      if (Status st = hooks.initialParams(params); !st)
        return st;
      if (plan.frozenBytes > 0) {
        if (!hooks.initialFrozen)
          return Status::invalid(fmt::format("stage '{}' has a frozen base ({} bytes) but no "
                                             "source for it",
                                             plan.stage, plan.frozenBytes));
        if (Status st = hooks.initialFrozen(frozen); !st)
          return st;
        if (int64_t(frozen.size()) != plan.frozenBytes)
          return Status::invalid(fmt::format("frozen base: {} bytes, the plan has {}",
                                             frozen.size(), plan.frozenBytes));
        calls.setFrozen(frozen.data());
      }
      if (int64_t(params.size()) != plan.numParams)
        return Status::invalid(fmt::format("initial parameters: {} values, the plan has {}",
                                           params.size(), plan.numParams));
    } catch (const std::bad_alloc &) {
      return Status::outOfMemory(fmt::format("cannot allocate {} for the parameters",
                                             formatGiB(4.0 * double(plan.numParams))));
    }

    // Checkpoint metadata of model.safetensors (the same in step-<N>/ and the final file).
    // A stage in no pipeline has no "pipeline" key.
    auto modelMeta = [&](int64_t step) {
      std::map<std::string, std::string> meta{
          {"format", "pt"},
          {"stage", plan.stage},      {"model", plan.model},
          {"step", std::to_string(step)}, {"vocab", std::to_string(plan.vocab)},
          {"context", std::to_string(plan.context)}, {"dim", std::to_string(plan.dim)},
          {"layers", std::to_string(plan.layers)},   {"seed", std::to_string(plan.seed)}};
      if (!plan.pipeline.empty())
        meta["pipeline"] = plan.pipeline;
      return meta;
    };
    const std::string ckptDir = runDir + "/checkpoint";
    std::optional<TrainState> resumed;
    if (opts.resume) {
      // Every rank loads the newest valid checkpoint; rank 0 removes newer ones only after.
      auto loaded = loadLatestCheckpoint(ckptDir, plan);
      if (Status st = agreeOnStatus(*world, loaded.status()); !st)
        return st.withContext("resume");
      for (const std::string &why : loaded->rejected)
        if (!quiet)
          fmt::print(out, "checkpoint: skipping a newer checkpoint: {}\n", why);
      TrainState &s = loaded->state;
      if (s.steps != steps)
        return Status::invalid(fmt::format(
            "resume: '{}' is from a run of {} steps, this run has {} (the schedule depends on it)",
            loaded->path, s.steps, steps));
      if (Status st = train.restore(s.data); !st)
        return st.withContext(fmt::format("resume: '{}'", loaded->path));
      params = std::move(s.params);
      m = std::move(s.m);
      v = std::move(s.v);
      if (!quiet)
        fmt::print(out, "resume: from {} (step {}/{}, epoch {})\n", loaded->path, s.step, steps,
                   s.data.epoch);
      resumed = std::move(s);
    }
    // Data parallel: the ranks start from rank 0's parameters and AdamW state (the same
    // seed and checkpoint give the same values; this makes it so by construction).
    if (R > 1)
      for (std::vector<float> *buf : {&params, &m, &v})
        if (Status st = world->broadcast(buf->data(), int64_t(buf->size() * sizeof(float)), 0);
            !st)
          return st;
    MetricsFile metricsFile;
    // Rank 0 alone changes the run directory.
    auto prepareRunDir = [&]() -> Status {
      if (resumed) {
        if (Status st = removeCheckpointsAfter(ckptDir, resumed->step); !st)
          return st;
      } else if (std::vector<int64_t> old = listCheckpoints(ckptDir); !old.empty()) {
        if (!quiet)
          fmt::print(out, "checkpoint: removing {} checkpoint(s) of an earlier run in {} "
                          "(--resume continues one)\n",
                     old.size(), ckptDir);
        if (Status st = removeCheckpointsAfter(ckptDir, -1); !st)
          return st;
      }
      // The final outputs are written after the last step: until then, none of an earlier
      // run's may stay next to this run's metrics and checkpoints.
      std::vector<std::string> outputs = hooks.outputs;
      outputs.push_back("checkpoint/model.safetensors");
      for (const std::string &old : outputs) {
        std::error_code ec;
        std::filesystem::remove(runDir + "/" + old, ec);
        if (ec)
          return Status::ioError(fmt::format("cannot remove '{}/{}' of an earlier run: {}",
                                             runDir, old, ec.message()));
      }
      if (!opts.planJson.empty())
        if (Status st = writeFileAtomic(runDir + "/plan.json", opts.planJson); !st)
          return st;
      return metricsFile.open(runDir + "/metrics.jsonl", resumed ? &*resumed : nullptr);
    };
    if (Status st = agreeOnStatus(*world, writer ? prepareRunDir() : Status()); !st)
      return st;

    const int64_t B = plan.batch, T = plan.seqLen, K = plan.accumulate;
    // The K micro-batches of one step, drawn before the first grad_step: each one's
    // gradient scale needs the step's total number of target tokens.
    std::vector<int32_t> tokens(K * B * T), targets(K * B * T), segments(K * B * T);
    std::vector<float> hyper(kNumHyper, 0.0f), metrics(kNumMetrics, 0.0f);
    std::vector<double> microLoss(K);
    std::vector<int64_t> microTokens(K);

    auto writeRow = [&](const nlohmann::ordered_json &row) {
      if (writer)
        metricsFile.write(row);
    };

    Progress progress(out, opts.progress, steps, opts.logEvery);
    TrainResult result;
    const int64_t firstStep = resumed ? resumed->step + 1 : 1;
    const double elapsedBefore = resumed ? resumed->elapsedSeconds : 0;
    auto loopStart = Clock::now();
    auto elapsed = [&] { return elapsedBefore + secondsSince(loopStart); };
    double trainSeconds = resumed ? resumed->trainSeconds : 0;
    if (resumed) {
      result.firstLoss = resumed->firstLoss;
      result.lastLoss = resumed->lastLoss;
      result.firstValLoss = resumed->firstValLoss;
      result.lastValLoss = resumed->lastValLoss;
    }
    auto runEval = [&](int64_t step) -> Status {
      // Each step function's temporaries are one arena of its own size (llmp-static-arena,
      // docs/compiler.md), so eval_step cannot take grad_step's cached arena: the cached
      // blocks go back before the evaluation and its own after it, so that the two are
      // never held at once (examples/pretrain.llmp, 25 steps with an evaluation every 10:
      // training peak 345 MiB with both held, 335 with this, 331 before the arena).
      releaseFreeMemory();
      auto evalLoss = evaluate(calls, params, data->eval, *world);
      releaseFreeMemory();
      if (!evalLoss)
        return evalLoss.status();
      double valLoss = *evalLoss;
      writeRow({{"step", step}, {"val_loss", valLoss}, {"elapsed_s", elapsed()}});
      progress.line(fmt::format("eval step {}/{} | val_loss {:.4f} ({} batches)", step, steps,
                                valLoss, data->eval.numBatches));
      if (step == 0)
        result.firstValLoss = valLoss;
      result.lastValLoss = valLoss;
      return Status::ok();
    };
    auto saveCheckpoint = [&](int64_t step) -> Status {
      if (!writer)
        return Status::ok();
      if (Status st = metricsFile.sync(); !st)
        return st;
      // The step heap's cached blocks (a step's temporaries) go back first, so that the
      // serialised checkpoint files do not sit on top of them; the next step takes them anew.
      releaseFreeMemory();
      TrainState s;
      s.step = step;
      s.steps = steps;
      // Moved in and back out: copies would hold 12 bytes per parameter more while writing.
      s.params = std::move(params);
      s.m = std::move(m);
      s.v = std::move(v);
      s.data = train.state();
      s.metricsBytes = metricsFile.bytes();
      s.metricsCrc = metricsFile.crc();
      s.elapsedSeconds = elapsed();
      s.trainSeconds = trainSeconds;
      s.firstLoss = result.firstLoss;
      s.lastLoss = result.lastLoss;
      s.firstValLoss = result.firstValLoss;
      s.lastValLoss = result.lastValLoss;
      Status written = writeCheckpoint(ckptDir, plan, s, opts.keepCheckpoints, modelMeta(step));
      params = std::move(s.params);
      m = std::move(s.m);
      v = std::move(s.v);
      return written;
    };
    const int64_t ckptEvery = opts.checkpointEvery > 0 ? opts.checkpointEvery : plan.evalEvery;
    // Memory: what loading and compiling freed goes back to the system, then VmHWM and
    // the step heap's peak restart, so the training peaks are the steps' own and this
    // stage's, not those of a stage that ran before it in this process (runtime/Memory.h).
    MemoryReading memory;
    int64_t evalPeakBytes = 0; // VmHWM of the evaluation before step 1, before the samples
    int64_t evalHeapPeakBytes = 0; // the step heap's peak in that evaluation
    releaseFreeMemory();
    lrt_alloc_reset_peak();
    if (auto rss = readResidentMemory(); rss && resetResidentPeak())
      memory.afterSetupBytes = rss->rssBytes;
    if (!resumed) {
      if (Status st = runEval(0); !st)
        return st;
      if (writer && hooks.beforeTraining) {
        // The samples are not training (a LoRA stage's merged weights live only while
        // they run): the peak so far (evaluation) is kept, VmHWM restarts for the samples
        // and again after them (the process peak keeps every reset's, runtime/Memory.h).
        if (auto rss = readResidentMemory(); rss && resetResidentPeak())
          evalPeakBytes = rss->hwmBytes;
        evalHeapPeakBytes = int64_t(lrt_alloc_stats().peakBytes);
        releaseFreeMemory(); // the evaluation's cached step heap
        resetResidentPeak();
        auto t0 = Clock::now();
        auto text = hooks.beforeTraining(params);
        if (!text)
          return text.status();
        auto rss = readResidentMemory();
        const int64_t samplesPeak = rss ? rss->hwmBytes : 0;
        if (!text->empty()) {
          progress.line(*text);
          progress.line(fmt::format("sampling: {:.1f}s, peak RSS {:.0f} MiB (not counted in "
                                    "the training peak)",
                                    secondsSince(t0), double(samplesPeak) / 1048576.0));
        }
        releaseFreeMemory();
        resetResidentPeak();
        lrt_alloc_reset_peak(); // the samples' step heap (prefill, decode) is not training's
      }
    }

    for (int64_t step = firstStep; step <= steps; ++step) {
      double lr = learningRate(step - 1, plan.lr, plan.minLr, plan.warmup, steps);
      hyper[kHyperLr] = float(lr);
      hyper[kHyperBeta1] = float(plan.beta1);
      hyper[kHyperBeta2] = float(plan.beta2);
      hyper[kHyperEps] = float(plan.eps);
      hyper[kHyperWeightDecay] = float(plan.weightDecay);
      hyper[kHyperGradClip] = float(plan.gradClip);
      hyper[kHyperStep] = float(step);
      // This rank's K micro-batches of the step (all of them on one process).
      nextShard(train, world->rank(), int(R), K, tokens.data(), targets.data(), segments.data());
      int64_t rankTargets = 0;
      for (int64_t i = 0; i < K; ++i) {
        microTokens[i] = countTargets(targets.data() + i * B * T, B * T);
        rankTargets += microTokens[i];
      }
      int64_t stepTargets = rankTargets;
      if (R > 1)
        if (Status st = world->allreduceSum(&stepTargets, 1); !st)
          return st;
      auto t0 = Clock::now();
      std::fill(grads.begin(), grads.end(), 0.0f);
      for (int64_t i = 0; i < K; ++i) {
        hyper[kHyperGradScale] = float(gradScale(microTokens[i], stepTargets));
        hyper[kHyperMicroBatch] = float(world->rank() * K + i); // keys the dropout masks
        calls.grad(params.data(), grads.data(), tokens.data() + i * B * T,
                   targets.data() + i * B * T, segments.data() + i * B * T, B, hyper.data(),
                   metrics.data());
        microLoss[i] = metrics[kMetricLoss];
      }
      double loss = weightedMeanLoss(microLoss, microTokens);
      if (R > 1) {
        // The gradient of the step's mean loss over every rank's target tokens; the loss
        // the same way (sum over ranks of n_r * loss_r, over N).
        if (Status st = world->allreduceSum(grads.data(), plan.numParams); !st)
          return st;
        double weighted = loss * double(rankTargets);
        if (Status st = world->allreduceSum(&weighted, 1); !st)
          return st;
        loss = stepTargets > 0 ? weighted / double(stepTargets) : 0.0;
      }
      calls.apply(params.data(), grads.data(), m.data(), v.data(), hyper.data(), metrics.data());
      double dt = secondsSince(t0);
      trainSeconds += dt;
      if (step == steps) { // before the last evaluation and checkpoint
        if (auto rss = readResidentMemory())
          memory.trainingPeakBytes = std::max(rss->hwmBytes, evalPeakBytes);
        memory.stepHeapPeakBytes =
            std::max(int64_t(lrt_alloc_stats().peakBytes), evalHeapPeakBytes);
      }
      double gradNorm = metrics[kMetricGradNorm];
      double tokPerSec = double(R * K * B * T) / std::max(dt, 1e-9);
      writeRow({{"step", step},
                {"loss", loss},
                {"lr", lr},
                {"grad_norm", gradNorm},
                {"tokens_per_s", tokPerSec},
                {"elapsed_s", elapsed()}});
      if (!std::isfinite(loss)) {
        progress.finish();
        return Status::internal(fmt::format("loss is not finite at step {} (lr {:.3e}, grad_norm {})",
                                            step, lr, gradNorm));
      }
      if (step == 1)
        result.firstLoss = loss;
      result.lastLoss = loss;
      double meanTokPerSec = double(step * R * K * B * T) / std::max(trainSeconds, 1e-9);
      progress.step(step, loss, lr, meanTokPerSec, elapsed());
      if ((plan.evalEvery > 0 && step % plan.evalEvery == 0) || step == steps)
        if (Status st = runEval(step); !st)
          return st;
      const bool checkpointNow = (ckptEvery > 0 && step % ckptEvery == 0) || step == steps;
      auto stopSeen = stopRequested();
      if (!stopSeen)
        return stopSeen.status();
      const bool stopNow = step < steps && *stopSeen;
      if (checkpointNow || stopNow)
        if (Status st = agreeOnStatus(*world, saveCheckpoint(step)); !st) {
          progress.finish();
          return stopNow ? st.withContext(fmt::format("interrupted at step {}", step)) : st;
        }
      if (stopNow) {
        progress.finish();
        return Status::cancelled(fmt::format("interrupted at step {} of {}; checkpoint {}", step,
                                             steps, checkpointPath(ckptDir, step)));
      }
    }
    progress.finish();
    // Data parallel: every rank must end with the same parameters; rank 0 alone writes
    // the final model and samples.
    if (Status st = checkIdentical(*world, params.data(), plan.numParams, "parameters"); !st)
      return st;
    if (R > 1)
      progress.line(fmt::format("data parallel: {} ranks x {} rows; parameters identical on "
                                "every rank",
                                R, K * B));
    if (!writer)
      return Status::ok();
    result.steps = steps;
    result.elapsedSeconds = elapsed();
    result.tokensPerSecond = double(steps * R * K * B * T) / std::max(trainSeconds, 1e-9);
    result.corpusChars = data->corpusChars;
    result.corpusTokens = data->corpusTokens;
    result.trainTokens = data->trainTokens;
    result.valTokens = data->valTokens;
    result.tokenizerSeconds = data->tokenizerSeconds;

    // The final model: parameters by name + the tokenizer next to them.
    std::string ckpt = runDir + "/checkpoint/model.safetensors";
    auto modelBytes = serializeSafetensors(paramTensors(plan, params, ""), modelMeta(steps));
    if (!modelBytes)
      return modelBytes.status();
    if (Status st = writeFileDurable(ckpt, *modelBytes); !st)
      return st;
    progress.line(fmt::format("checkpoint: {}", ckpt));
    if (hooks.afterTraining) {
      auto t0 = Clock::now();
      auto text = hooks.afterTraining(params, result);
      if (!text)
        return text.status();
      if (!text->empty()) {
        progress.line(*text);
        if (opts.numSamples > 0) // after the training peak was read
          progress.line(fmt::format("sampling: {:.1f}s", secondsSince(t0)));
      }
    }

    double ratio = result.lastValLoss / result.firstValLoss;
    progress.line(fmt::format("val_loss: first {:.4f} -> last {:.4f} (ratio {:.3f})",
                              result.firstValLoss, result.lastValLoss, ratio));
    progress.line(fmt::format("done: {} params, {} steps, {} tokens in {}, {:.0f} tok/s, "
                              "train loss {:.4f} -> {:.4f}",
                              plan.numParams, steps, steps * R * K * B * T,
                              formatDuration(result.elapsedSeconds), result.tokensPerSecond,
                              result.firstLoss, result.lastLoss));
    // Resumed at the last step, no step ran: nothing was measured, and the memory.json of
    // the run that trained is kept.
    if (memory.trainingPeakBytes == 0)
      progress.line("memory: no training step ran (resumed at the last step); memory.json kept");
    else if (Status st = reportMemory(plan, opts, runDir, memory, progress); !st)
      return st;
    if (opts.result)
      *opts.result = std::move(result);
    return Status::ok();
  } catch (const std::bad_alloc &) {
    return Status::outOfMemory("training: out of memory");
  } catch (const std::exception &e) {
    return Status::internal(fmt::format("training: {}", e.what()));
  }
}

std::string runDirOf(const StagePlan &plan, const TrainOptions &opts) {
  if (!opts.runDir.empty())
    return opts.runDir;
  return fmt::format("runs/{}/{}", plan.pipeline.empty() ? "main" : plan.pipeline,
                     plan.stage.empty() ? "pretrain" : plan.stage);
}

void StepCalls::grad(float *params, float *grads, int32_t *tokens, int32_t *targets,
                     int32_t *segments, int64_t rows, float *hyper, float *metrics) const {
  const int64_t T = plan_.seqLen;
  auto pP = viewOf(params, {plan_.numParams});
  auto pG = viewOf(grads, {plan_.numParams});
  auto pTok = viewOf(tokens, {rows, T});
  auto pTgt = viewOf(targets, {rows, T});
  auto pHyper = viewOf(hyper, {int64_t(kNumHyper)});
  auto pMetrics = viewOf(metrics, {int64_t(kNumMetrics)});
  auto pSeg = viewOf(segments, {rows, T});
  if (plan_.frozenBytes > 0) {
    auto pF = viewOf(frozen_, {plan_.frozenBytes});
    if (plan_.packing)
      reinterpret_cast<FrozenPackedGradStepFn>(fns_.gradStep)(&pP, &pG, &pF, &pTok, &pTgt, &pSeg,
                                                              &pHyper, &pMetrics);
    else
      reinterpret_cast<FrozenGradStepFn>(fns_.gradStep)(&pP, &pG, &pF, &pTok, &pTgt, &pHyper,
                                                        &pMetrics);
    return;
  }
  if (plan_.packing) {
    reinterpret_cast<PackedGradStepFn>(fns_.gradStep)(&pP, &pG, &pTok, &pTgt, &pSeg, &pHyper,
                                                      &pMetrics);
    return;
  }
  fns_.gradStep(&pP, &pG, &pTok, &pTgt, &pHyper, &pMetrics);
}

void StepCalls::eval(float *params, int32_t *tokens, int32_t *targets, int32_t *segments,
                     int64_t rows, float *metrics) const {
  const int64_t T = plan_.seqLen;
  auto pP = viewOf(params, {plan_.numParams});
  auto pTok = viewOf(tokens, {rows, T});
  auto pTgt = viewOf(targets, {rows, T});
  auto pMetrics = viewOf(metrics, {int64_t(kNumMetrics)});
  if (plan_.frozenBytes > 0) {
    auto pF = viewOf(frozen_, {plan_.frozenBytes});
    auto pSeg = viewOf(segments, {rows, T});
    if (plan_.packing)
      reinterpret_cast<FrozenPackedEvalStepFn>(fns_.evalStep)(&pP, &pF, &pTok, &pTgt, &pSeg,
                                                              &pMetrics);
    else
      reinterpret_cast<FrozenEvalStepFn>(fns_.evalStep)(&pP, &pF, &pTok, &pTgt, &pMetrics);
    return;
  }
  if (plan_.packing) {
    auto pSeg = viewOf(segments, {rows, T});
    reinterpret_cast<PackedEvalStepFn>(fns_.evalStep)(&pP, &pTok, &pTgt, &pSeg, &pMetrics);
    return;
  }
  fns_.evalStep(&pP, &pTok, &pTgt, &pMetrics);
}

namespace {
/// logits_step of a packing stage: tokens, then segments i32[1, context].
using PackedLogitsStepFn = void (*)(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                                    MemRef<int32_t, 2> *segments, MemRef<float, 3> *logits);
/// The packed logits_step that logitsOneDocument calls (StepCalls::logitsStep).
thread_local LogitsStepFn packedLogits = nullptr;

void logitsOneDocument(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                       MemRef<float, 3> *logits) {
  std::vector<int32_t> segments(size_t(tokens->sizes[0] * tokens->sizes[1]), 0);
  auto pSeg = viewOf(segments.data(), {tokens->sizes[0], tokens->sizes[1]});
  reinterpret_cast<PackedLogitsStepFn>(packedLogits)(params, tokens, &pSeg, logits);
}
/// The frozen buffer and plan of logitsWithFrozen (StepCalls::logitsStep).
thread_local uint8_t *logitsFrozen = nullptr;
thread_local int64_t logitsFrozenBytes = 0;
thread_local bool logitsPacked = false;

void logitsWithFrozen(MemRef<float, 1> *params, MemRef<int32_t, 2> *tokens,
                      MemRef<float, 3> *logits) {
  auto pF = viewOf(logitsFrozen, {logitsFrozenBytes});
  if (!logitsPacked) {
    reinterpret_cast<FrozenLogitsStepFn>(packedLogits)(params, &pF, tokens, logits);
    return;
  }
  std::vector<int32_t> segments(size_t(tokens->sizes[0] * tokens->sizes[1]), 0);
  auto pSeg = viewOf(segments.data(), {tokens->sizes[0], tokens->sizes[1]});
  reinterpret_cast<FrozenPackedLogitsStepFn>(packedLogits)(params, &pF, tokens, &pSeg, logits);
}
} // namespace

LogitsStepFn StepCalls::logitsStep() const {
  if (!fns_.logitsStep || (!plan_.packing && plan_.frozenBytes == 0))
    return fns_.logitsStep;
  packedLogits = fns_.logitsStep;
  if (plan_.frozenBytes > 0) {
    logitsFrozen = frozen_;
    logitsFrozenBytes = plan_.frozenBytes;
    logitsPacked = plan_.packing;
    return &logitsWithFrozen;
  }
  return &logitsOneDocument;
}

void StepCalls::apply(float *params, float *grads, float *m, float *v, float *hyper,
                      float *metrics) const {
  auto pP = viewOf(params, {plan_.numParams});
  auto pG = viewOf(grads, {plan_.numParams});
  auto pM = viewOf(m, {plan_.numParams});
  auto pV = viewOf(v, {plan_.numParams});
  auto pHyper = viewOf(hyper, {int64_t(kNumHyper)});
  auto pMetrics = viewOf(metrics, {int64_t(kNumMetrics)});
  fns_.applyStep(&pP, &pG, &pM, &pV, &pHyper, &pMetrics);
}

Status runPretrain(const StagePlan &plan, const StepFunctions &fns, const TrainOptions &opts) {
  Status st = validatePlan(plan, fns, opts.numSamples > 0);
  // The tokenizer, trained or loaded by prepare(), for the files and samples at the end.
  std::optional<Tokenizer> tokenizer;
  const std::string runDir = runDirOf(plan, opts);
  StageHooks hooks;
  hooks.prepare = [&](bool report, int64_t ranks) {
    return prepareData(plan, opts, runDir, report, tokenizer, ranks);
  };
  hooks.initialParams = [&](std::vector<float> &params) {
    return initParams(plan, plan.seed, params);
  };
  hooks.outputs = {"samples.txt", "checkpoint/tokenizer.model"};
  hooks.afterTraining = [&](std::vector<float> &params,
                            TrainResult &result) -> Expected<std::string> {
    if (Status st = tokenizer->save(runDir + "/checkpoint/tokenizer.model"); !st)
      return st;
    if (opts.numSamples <= 0)
      return std::string();
    std::vector<std::string> prompts = opts.prompts.empty() ? defaultPrompts() : opts.prompts;
    std::mt19937_64 rng(plan.seed ^ 0x5eed5a3b1e5ull);
    const StepCalls calls(plan, fns);
    LogitsModel model{calls.logitsStep(), params.data(), plan.numParams,
                      plan.context > 0 ? plan.context : plan.seqLen, plan.vocab};
    const std::vector<int16_t> pieceBytes = tokenizer->pieceBytes();
    std::string all;
    for (int64_t i = 0; i < opts.numSamples; ++i) {
      const std::string &prompt = prompts[i % prompts.size()];
      auto ids = generate(model, tokenizer->encode(prompt), opts.sampleTokens, opts.temperature,
                          opts.topK, rng, &pieceBytes);
      if (!ids)
        return ids.status();
      std::string text = tokenizer->decode(*ids);
      result.samples.push_back(text);
      all += fmt::format("--- sample {} (prompt \"{}\") ---\n{}\n", i + 1, prompt, text);
    }
    if (Status st = writeFileAtomic(runDir + "/samples.txt", all); !st)
      return st;
    return all + fmt::format("samples: {}/samples.txt", runDir);
  };
  if (st)
    st = runTrainingLoop(plan, fns, opts, hooks);
  // The caller prints errors on stderr: what went to `out` must come first.
  if (opts.out)
    std::fflush(opts.out);
  return st;
}

Status dumpGradients(const StagePlan &plan, const StepFunctions &fns, const std::string &outPath,
                     const TrainOptions &opts) {
  try {
    if (Status st = validatePlan(plan, fns, false); !st)
      return st;
    if (Status st = checkStateFits(plan); !st)
      return st;
    const std::string runDir = runDirOf(plan, opts);
    if (Status st = makeDirs(runDir); !st)
      return st;
    bool report = opts.out && opts.progress != ProgressStyle::Quiet;
    std::optional<Tokenizer> tokenizer;
    auto data = prepareData(plan, opts, runDir, report, tokenizer);
    if (!data)
      return data.status();
    std::vector<float> init;
    std::vector<uint8_t> frozen;
    if (Status st = initParams(plan, plan.seed, init, &frozen); !st)
      return st;
    std::vector<float> params = init, grads(plan.numParams, 0.0f), m(plan.numParams, 0.0f),
                       v(plan.numParams, 0.0f);
    const int64_t B = plan.batch, T = plan.seqLen;
    std::vector<int32_t> tokens(B * T), targets(B * T), segments(B * T);
    data->train->next(tokens.data(), targets.data(), segments.data());
    std::vector<float> hyper(kNumHyper, 0.0f), metrics(kNumMetrics, 0.0f);
    hyper[kHyperLr] = 0.0f;
    hyper[kHyperBeta1] = float(plan.beta1);
    hyper[kHyperBeta2] = float(plan.beta2);
    hyper[kHyperEps] = float(plan.eps);
    hyper[kHyperWeightDecay] = 0.0f;
    hyper[kHyperGradClip] = float(plan.gradClip);
    hyper[kHyperStep] = 1.0f;
    hyper[kHyperGradScale] = 1.0f;
    StepCalls calls(plan, fns);
    calls.setFrozen(frozen.data());
    calls.grad(params.data(), grads.data(), tokens.data(), targets.data(), segments.data(), B,
               hyper.data(), metrics.data());
    float loss = metrics[kMetricLoss];
    // lr = 0: the update leaves the parameters as they are; it reports the gradient norm.
    calls.apply(params.data(), grads.data(), m.data(), v.data(), hyper.data(), metrics.data());

    std::vector<TensorRef> tensors = paramTensors(plan, init, "");
    for (const ParamInfo &p : plan.params) // the frozen base (fp32), without gradients
      if (p.frozen && p.storage == Storage::F32)
        tensors.push_back({p.name, DType::F32, p.shape,
                           reinterpret_cast<const float *>(frozen.data() + p.byteOffset)});
    std::vector<TensorRef> gradTensors = paramTensors(plan, grads, "grad.");
    tensors.insert(tensors.end(), gradTensors.begin(), gradTensors.end());
    tensors.push_back({"tokens", DType::I32, {B, T}, tokens.data()});
    tensors.push_back({"targets", DType::I32, {B, T}, targets.data()});
    tensors.push_back({"loss", DType::F32, {1}, &loss});
    std::map<std::string, std::string> meta = {{"stage", plan.stage},
                                               {"seed", std::to_string(plan.seed)},
                                               {"grad_norm", fmt::format("{}", metrics[kMetricGradNorm])}};
    if (!plan.pipeline.empty())
      meta["pipeline"] = plan.pipeline;
    if (Status st = writeSafetensors(outPath, tensors, meta); !st)
      return st;
    if (report)
      fmt::print(opts.out, "gradients: {} (loss {:.6f}, grad_norm {:.6f})\n", outPath, loss,
                 metrics[kMetricGradNorm]);
    return Status::ok();
  } catch (const std::bad_alloc &) {
    return Status::outOfMemory("dumpGradients: out of memory");
  } catch (const std::exception &e) {
    return Status::internal(fmt::format("dumpGradients: {}", e.what()));
  }
}

} // namespace lrt
