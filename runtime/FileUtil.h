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
