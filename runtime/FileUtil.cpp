// SPDX-License-Identifier: Apache-2.0
/// File helpers (std::filesystem + stdio).
#include "runtime/FileUtil.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lrt {

Expected<MappedFile> MappedFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return Status::error(StatusCode::NotFound,
                         fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  struct stat st = {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::invalid(fmt::format("'{}' is not a regular file", path));
  }
  MappedFile m;
  m.size_ = static_cast<size_t>(st.st_size);
  if (m.size_ > 0) {
    void *p = mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Status::error(StatusCode::IoError,
                           fmt::format("cannot map '{}': {}", path, std::strerror(err)));
    }
    m.data_ = static_cast<const char *>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::MappedFile(MappedFile &&o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile &MappedFile::operator=(MappedFile &&o) noexcept {
  if (this != &o) {
    this->~MappedFile();
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_)
    munmap(const_cast<char *>(data_), size_);
}

Expected<std::string> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error(StatusCode::NotFound,
                         fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad())
    return Status::ioError(fmt::format("cannot read '{}'", path));
  return std::move(buf).str();
}

Status writeFileAtomic(const std::string &path, std::string_view data) {
  std::string tmp = path + ".tmp";
  std::FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    return Status::ioError(fmt::format("cannot create '{}': {}", tmp, std::strerror(errno)));
  size_t written = data.empty() ? 0 : std::fwrite(data.data(), 1, data.size(), f);
  bool ok = written == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return Status::ioError(fmt::format("cannot write '{}' ({} bytes)", tmp, data.size()));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return Status::ioError(fmt::format("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err)));
  }
  return Status::ok();
}

Status makeDirs(const std::string &dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::ioError(fmt::format("cannot create directory '{}': {}", dir, ec.message()));
  // create_directories succeeds when `dir` already exists as a file on some stdlibs.
  if (!std::filesystem::is_directory(dir, ec))
    return Status::ioError(
        fmt::format("cannot create directory '{}': it exists and is not a directory", dir));
  return Status::ok();
}

int64_t usableMemoryBytes(const char **what) {
  long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGE_SIZE);
  int64_t bytes = pages > 0 && pageSize > 0 ? int64_t(pages) * int64_t(pageSize) : 0;
  if (what)
    *what = "this machine has";
  struct rlimit lim;
  if (::getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
      (bytes == 0 || int64_t(lim.rlim_cur) < bytes)) {
    bytes = int64_t(lim.rlim_cur);
    if (what)
      *what = "the address-space limit (ulimit -v) is";
  }
  return bytes;
}

std::string formatGiB(double bytes) { return fmt::format("{:.1f} GiB", bytes / 1073741824.0); }

} // namespace lrt
