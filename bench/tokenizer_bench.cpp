// SPDX-License-Identifier: Apache-2.0
// Encode throughput of lrt::BpeTokenizer: tokenizer_bench TOKENIZER_JSON THREADS FILE...
// Each file is one document; documents are shared out over THREADS threads. Prints
// "llmp MB/s <rate> ids <count>" (best of 3 runs). Used by bench/tokenizer_vs_hf.py.
#include "runtime/BpeTokenizer.h"
#include "runtime/FileUtil.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: tokenizer_bench TOKENIZER_JSON THREADS FILE...\n");
    return 2;
  }
  auto tok = lrt::BpeTokenizer::fromHuggingFaceJson(argv[1]);
  if (!tok) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  int threads = std::atoi(argv[2]);
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (int i = 3; i < argc; ++i) {
    auto t = lrt::readFile(argv[i]);
    if (!t) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      return 1;
    }
    bytes += t->size();
    docs.push_back(t.take());
  }
  double best = 0;
  std::atomic<long long> ids{0};
  for (int rep = 0; rep < 3; ++rep) {
    ids = 0;
    std::atomic<size_t> next{0};
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
      pool.emplace_back([&] {
        for (size_t i; (i = next++) < docs.size();)
          if (auto r = tok->encode(docs[i]))
            ids += static_cast<long long>(r->size());
      });
    for (auto &t : pool)
      t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, bytes / s / 1e6);
  }
  std::printf("llmp MB/s %.2f ids %lld\n", best, ids.load());
  return 0;
}
