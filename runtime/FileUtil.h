// SPDX-License-Identifier: Apache-2.0
/// Small file helpers shared by the runtime: whole-file reads and atomic writes.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace lrt {

/// Reads the whole file. Errors: NotFound if it cannot be opened, IoError on a read error.
Expected<std::string> readFile(const std::string &path);

/// A regular file mapped read-only into memory (mmap), so that a reader touches only the
/// pages it reads (GGUF metadata of a large model file). Move-only; unmaps on destruction.
class MappedFile {
public:
  /// Maps `path`. Errors: NotFound if it cannot be opened, InvalidArgument if it is not a
  /// regular file (a directory, a FIFO, a device), IoError if mmap fails.
  static Expected<MappedFile> open(const std::string &path);
  MappedFile() = default;
  MappedFile(MappedFile &&o) noexcept;
  MappedFile &operator=(MappedFile &&o) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();
  /// The file's bytes (empty for an empty file).
  std::string_view bytes() const { return {data_, size_}; }

private:
  const char *data_ = nullptr;
  size_t size_ = 0;
};

/// Writes `data` to `path + ".tmp"` and renames it over `path`, so readers never see a
/// partial file. Errors: IoError with the path and errno text.
Status writeFileAtomic(const std::string &path, std::string_view data);

/// Creates `dir` and its parents. Errors: IoError (also when `dir` or a parent exists and
/// is not a directory).
Status makeDirs(const std::string &dir);

/// How much memory this process may use: physical memory (sysconf), or the address-space
/// limit (`ulimit -v`, RLIMIT_AS) when lower. `what` (optional) receives "this machine has"
/// or "the address-space limit (ulimit -v) is", for messages. 0 if unknown.
int64_t usableMemoryBytes(const char **what = nullptr);

/// `bytes` as "12.3 GiB" (one decimal), for messages.
std::string formatGiB(double bytes);

} // namespace lrt
