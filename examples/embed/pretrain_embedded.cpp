// SPDX-License-Identifier: Apache-2.0
/// examples/pretrain.llmp written in C++ with the embedding API (llmp/llmp.h): the same
/// tokenizer, dataset, model, stage and pipeline, checked by the same Sema and compiled by
/// the same frontend, so `--emit` prints the module `llmpc emit examples/pretrain.llmp`
/// prints (test/lang/embed checks that they are identical).
///
///   build/bin/pretrain_embedded              check and train (as `llmpc run`)
///   build/bin/pretrain_embedded --emit       print the llmp module
///   build/bin/pretrain_embedded --source     print the .llmp text the program stands for
///   build/bin/pretrain_embedded --steps N    train N steps
#include "examples/embed/pretrain_embedded.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

int main(int argc, char **argv) {
  bool emit = false, source = false;
  int64_t steps = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--emit"))
      emit = true;
    else if (!std::strcmp(argv[i], "--source"))
      source = true;
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--emit | --source | --steps N]\n", argv[0]);
      return 2;
    }
  }
  llmp::Program program("pretrain_embedded");
  declarePretrain(program);
  if (source) {
    std::cout << program.source();
    return 0;
  }
  // Diagnostics point at the C++ lines above (the default handler prints them).
  std::unique_ptr<llmp::Checked> checked = program.check();
  if (!checked)
    return 1;
  if (emit) {
    std::string ir = checked->emit("pretrain");
    std::cout << ir;
    return ir.empty() ? 1 : 0;
  }
  llmp::RunOptions options;
  options.steps = steps;
  std::string error = checked->run("pretrain", options);
  if (!error.empty()) {
    std::fprintf(stderr, "pretrain_embedded: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
