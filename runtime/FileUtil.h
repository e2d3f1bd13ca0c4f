// SPDX-License-Identifier: Apache-2.0
/// Small file helpers shared by the runtime: whole-file reads and atomic writes.
#pragma once

#include "runtime/Status.h"

#include <string>
#include <string_view>

namespace lrt {

/// Reads the whole file. Errors: NotFound if it cannot be opened, IoError on a read error.
Expected<std::string> readFile(const std::string &path);

/// Writes `data` to `path + ".tmp"` and renames it over `path`, so readers never see a
/// partial file. Errors: IoError with the path and errno text.
Status writeFileAtomic(const std::string &path, std::string_view data);

/// Creates `dir` and its parents. Errors: IoError.
Status makeDirs(const std::string &dir);

} // namespace lrt
