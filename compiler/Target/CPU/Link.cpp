// SPDX-License-Identifier: Apache-2.0
/// Replays llmp-aot-trainer's recorded link command with a stage's objects.
#include "compiler/Target/CPU/Link.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <optional>
#include <vector>

using namespace mlir::llmp;

llvm::StringRef mlir::llmp::trainerLinkCommandFile() { return LLMP_AOT_LINK_FILE; }

namespace {

/// `path` made absolute against `base` when it is relative.
std::string absoluteTo(llvm::StringRef base, llvm::StringRef path) {
  if (llvm::sys::path::is_absolute(path))
    return path.str();
  llvm::SmallString<256> out(base);
  llvm::sys::path::append(out, path);
  return std::string(out);
}

} // namespace

llvm::Error mlir::llmp::linkTrainer(llvm::ArrayRef<std::string> objects,
                                    llvm::StringRef output) {
  llvm::StringRef file = trainerLinkCommandFile();
  auto buffer = llvm::MemoryBuffer::getFile(file);
  if (!buffer)
    return llvm::createStringError(buffer.getError(),
                                   "cannot read the trainer's link command '" + file +
                                       "': " + buffer.getError().message() +
                                       " (build the 'llmp-aot-trainer' target)");
  llvm::SmallVector<llvm::StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n', -1, /*KeepEmpty=*/false);
  // Line 1: the directory the command ran in; then the compiler driver and its arguments.
  if (lines.size() < 4)
    return llvm::createStringError("malformed trainer link command '" + file + "'");
  llvm::StringRef cwd = lines[0];
  std::vector<std::string> args;
  args.push_back(lines[1].str());
  llvm::SmallString<256> out(output);
  if (std::error_code ec = llvm::sys::fs::make_absolute(out))
    return llvm::createStringError(ec, "cannot resolve '" + output + "': " + ec.message());
  // The stage's objects first, so that the archives after them resolve their kernel calls.
  for (const std::string &object : objects) {
    llvm::SmallString<256> path(object);
    if (std::error_code ec = llvm::sys::fs::make_absolute(path))
      return llvm::createStringError(ec, "cannot resolve '" + object + "': " + ec.message());
    args.push_back(std::string(path));
  }
  bool sawOutput = false;
  for (size_t i = 2; i < lines.size(); ++i) {
    llvm::StringRef arg = lines[i];
    if (arg == "-o" && i + 1 < lines.size()) {
      args.push_back("-o");
      args.push_back(std::string(out));
      ++i;
      sawOutput = true;
    } else if (!arg.starts_with("-") && llvm::sys::fs::exists(absoluteTo(cwd, arg))) {
      // The main's object and the archives, relative to the build tree.
      args.push_back(absoluteTo(cwd, arg));
    } else {
      args.push_back(arg.str());
    }
  }
  if (!sawOutput)
    return llvm::createStringError("malformed trainer link command '" + file + "': no -o");
  llvm::SmallString<128> log;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("llmpc-link", "log", log))
    return llvm::createStringError(ec, "cannot create a temporary file: " + ec.message());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log),
                                                llvm::StringRef(log)};
  llvm::SmallVector<llvm::StringRef> argRefs(args.begin(), args.end());
  std::string error;
  int rc = llvm::sys::ExecuteAndWait(args[0], argRefs, std::nullopt, redirects, 0, 0, &error);
  std::string messages;
  if (auto text = llvm::MemoryBuffer::getFile(log))
    messages = (*text)->getBuffer().trim().str();
  llvm::sys::fs::remove(log);
  if (rc != 0)
    return llvm::createStringError(
        "linking '" + output + "' failed (" + (error.empty() ? "exit status " + std::to_string(rc) : error) +
        ")" + (messages.empty() ? "" : ":\n" + messages));
  return llvm::Error::success();
}
