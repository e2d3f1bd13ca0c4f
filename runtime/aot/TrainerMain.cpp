// SPDX-License-Identifier: Apache-2.0
/// The main of a standalone trainer binary that `llmpc build` links: the stage's step
/// functions (object files llmpc wrote, Object.h) and its manifest (Manifest.h) with the
/// static runtime. It runs the stage with the runtime functions `llmpc run` calls
/// (lrt::trainStage and lrt::writeStageAdapter, runtime/StageRun.h, with the same
/// TrainOptions and StageExtras), so both paths train alike; a `pretrain` or an `sft`
/// stage (full fine-tuning, LoRA, QLoRA: the starting weights and GGUF tokenizer are read
/// at run time from the absolute paths in the manifest):
///
///   TRAINER [--run-dir DIR] [--samples N] [--resume] [--checkpoint-every N]
///           [--progress auto|bar|lines|quiet]     (also --name=value)
///   mpirun -np R TRAINER ...        a stage with `ranks: R`
///
/// The step functions and the manifest are weak references: CMake links this file alone
/// as `llmp-aot-trainer` to record the link line llmpc uses (cmake/record-link.sh), and
/// that binary says that no stage is linked. Exit status: 0 done, 1 error, 130 stopped by
/// SIGINT/SIGTERM after a checkpoint, 2 bad arguments.
#include "kernels/cpu/FloatEnv.h"
#include "runtime/PlanJson.h"
#include "runtime/StageRun.h"
#include "runtime/aot/Manifest.h"
#include "runtime/collective/Collective.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

// Weak: null until llmpc links a stage's objects (StepABI.h has their signatures).
extern "C" {
__attribute__((weak)) extern const char llmp_aot_manifest[];
__attribute__((weak)) void _mlir_ciface_grad_step();
__attribute__((weak)) void _mlir_ciface_apply_step();
__attribute__((weak)) void _mlir_ciface_eval_step();
__attribute__((weak)) void _mlir_ciface_logits_step();
__attribute__((weak)) void _mlir_ciface_prefill_step();
__attribute__((weak)) void _mlir_ciface_decode_step();
}

namespace {

const char *program = "trainer";

int fail(const std::string &message, int status = 1) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: error: %s\n", program, message.c_str());
  return status;
}

std::atomic<bool> stopRequested{false};
extern "C" void onStopSignal(int) { stopRequested.store(true); }

/// Parses a non-negative integer option value; false if `text` is not one.
bool parseCount(const char *text, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (!*text || *end || v < 0)
    return false;
  out = v;
  return true;
}

void usage(const lrt::AotManifest &m) {
  std::printf("usage: %s [--run-dir DIR] [--samples N] [--resume] [--checkpoint-every N]\n"
              "       [--progress auto|bar|lines|quiet]\n"
              "trains stage '%s' of %s (llmpc build); default run directory %s\n",
              program, m.plan.stage.c_str(), m.source.c_str(), m.runDir.c_str());
}

} // namespace

int main(int argc, char **argv) {
  if (argc > 0) {
    program = std::strrchr(argv[0], '/') ? std::strrchr(argv[0], '/') + 1 : argv[0];
  }
  if (!llmp_aot_manifest)
    return fail("no stage is linked into this binary; 'llmpc build FILE -o BINARY' links one");
  auto manifest = lrt::readAotManifest(llmp_aot_manifest);
  if (!manifest)
    return fail(manifest.status().message());
  const lrt::AotManifest &m = *manifest;

  // The options of `llmpc run` that do not change what was compiled.
  lrt::TrainOptions opts;
  opts.runDir = m.runDir;
  opts.dataPath = m.plan.data.path;
  opts.steps = m.steps;
  for (int i = 1; i < argc; ++i) {
    // `--name value` or `--name=value`, as `llmpc run` takes them.
    std::string arg = argv[i];
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg.resize(eq);
    }
    auto value = [&](const char *name) -> const char * {
      if (inlineValue)
        return inlineValue->c_str();
      if (i + 1 >= argc) {
        fail(std::string(name) + " needs a value", 2);
        return nullptr;
      }
      return argv[++i];
    };
    if ((arg == "--help" || arg == "--resume") && inlineValue)
      return fail(arg + " takes no value, got '" + arg + "=" + *inlineValue + "'", 2);
    if (arg == "--help" || arg == "-h") {
      usage(m);
      return 0;
    } else if (arg == "--resume") {
      opts.resume = true;
    } else if (arg == "--run-dir") {
      const char *v = value("--run-dir");
      if (!v)
        return 2;
      opts.runDir = v;
    } else if (arg == "--samples" || arg == "--checkpoint-every") {
      const char *v = value(arg.c_str());
      int64_t n = 0;
      if (!v)
        return 2;
      if (!parseCount(v, n))
        return fail(arg + " must be 0 or more, got '" + v + "'", 2);
      // As `llmpc run`: 0 steps between checkpoints means nothing; leaving the option out
      // checkpoints at each evaluation.
      if (arg == "--checkpoint-every" && n == 0)
        return fail("--checkpoint-every must be at least 1, got 0 (leave it out to "
                    "checkpoint at each evaluation and the last step)", 2);
      (arg == "--samples" ? opts.numSamples : opts.checkpointEvery) = n;
    } else if (arg == "--progress") {
      const char *v = value("--progress");
      if (!v)
        return 2;
      std::string p = v;
      if (p == "auto")
        opts.progress = lrt::ProgressStyle::Auto;
      else if (p == "bar")
        opts.progress = lrt::ProgressStyle::Bar;
      else if (p == "lines")
        opts.progress = lrt::ProgressStyle::Lines;
      else if (p == "quiet")
        opts.progress = lrt::ProgressStyle::Quiet;
      else
        return fail("unknown --progress '" + p + "'; expected auto, bar, lines or quiet", 2);
    } else {
      return fail("unknown argument '" + arg + "' (--help lists the options)", 2);
    }
  }
  if (m.plan.kind != "pretrain" && m.plan.kind != "sft")
    return fail("stage '" + m.plan.stage + "' is a '" + m.plan.kind +
                "' stage; this trainer runs 'pretrain' and 'sft' stages");
  lrt::StageExtras extras = m.extras;
  if (m.sampler) {
    // The sft samples' prefill_step / decode_step, linked beside the step functions.
    extras.sft.prefillStep = reinterpret_cast<lrt::PrefillStepFn>(&_mlir_ciface_prefill_step);
    extras.sft.decodeStep = reinterpret_cast<lrt::DecodeStepFn>(&_mlir_ciface_decode_step);
    if (!extras.sft.prefillStep || !extras.sft.decodeStep)
      return fail("the manifest names a sampler but prefill_step or decode_step is not linked");
  }

  lrt::StepFunctions fns;
  fns.gradStep = reinterpret_cast<lrt::GradStepFn>(&_mlir_ciface_grad_step);
  fns.applyStep = reinterpret_cast<lrt::ApplyStepFn>(&_mlir_ciface_apply_step);
  fns.evalStep = reinterpret_cast<lrt::EvalStepFn>(&_mlir_ciface_eval_step);
  fns.logitsStep = reinterpret_cast<lrt::LogitsStepFn>(&_mlir_ciface_logits_step);

  auto created = lrt::createCollective();
  if (!created)
    return fail(created.status().message());
  std::unique_ptr<lrt::Collective> world = std::move(*created);
  if (std::max<int64_t>(1, m.plan.ranks) != world->size())
    return fail("stage '" + m.plan.stage + "' has ranks: " + std::to_string(m.plan.ranks) +
                " but " + std::to_string(world->size()) + " process(es) run it; launch it as " +
                "mpirun -np " + std::to_string(m.plan.ranks) + " " + program);
  opts.world = world.get();
  // `<run>/plan.json` as `llmpc run` writes it: the plan with the steps this run takes.
  lrt::StagePlan written = m.plan;
  if (m.steps > 0)
    written.steps = m.steps;
  opts.planJson = lrt::writeStagePlanJson(written);
  opts.stepHeapPeakBytes = m.stepHeapPeakBytes;
  opts.stop = &stopRequested;
  // As the JIT does before the first call (JitModule::create): denormals flushed on this
  // thread and the OpenMP pool.
  lrt_flush_denormals_to_zero();
  struct sigaction sa = {};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  lrt::Status result = lrt::trainStage(m.plan, fns, opts, extras);
  // As llmpc run: failures every rank agreed on and stops finalize first; a rank that
  // failed alone exits without, so that the launcher ends the job.
  if (result.isOk() || result.code() == lrt::StatusCode::Cancelled)
    if (lrt::Status st = world->finalize(); !st)
      return fail(st.message());
  if (world->rank() > 0) {
    if (!result.isOk() && result.code() != lrt::StatusCode::Cancelled &&
        result.message().rfind("stopped: ", 0) != 0)
      return fail("rank " + std::to_string(world->rank()) + ": " + result.message());
    return result.isOk() ? 0 : result.code() == lrt::StatusCode::Cancelled ? 130 : 1;
  }
  if (result.code() == lrt::StatusCode::Cancelled) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", program, result.message().c_str());
    if (result.message().rfind("interrupted at step", 0) == 0)
      std::fprintf(stderr, "%s: continue with: %s --run-dir %s --resume\n", program, program,
                   opts.runDir.c_str());
    return 130;
  }
  if (!result.isOk())
    return fail(result.message());
  if (lrt::Status st = lrt::writeStageAdapter(extras, opts.runDir); !st)
    return fail(st.message());
  return 0;
}
