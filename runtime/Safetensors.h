// SPDX-License-Identifier: Apache-2.0
/// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
/// an 8-byte little-endian u64 header length N, N bytes of JSON header
/// `{"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"key": "value"}}` (padded with spaces to a multiple of 8), then the
/// row-major little-endian tensor bytes; offsets are relative to the end of the header.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace lrt {

/// Element types the runtime reads and writes. Others are rejected on read.
enum class DType { F32, I32, I64, F16, BF16, U8 };

/// "F32", "I32", ... as in the safetensors header.
const char *dtypeName(DType t);
/// Bytes per element.
int64_t dtypeSize(DType t);

/// A tensor to write; `data` points at `numel(shape) * dtypeSize(dtype)` bytes (not owned).
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; ///< [] for a scalar (one element)
  const void *data = nullptr;
};

/// A tensor read from a file (owns its bytes).
struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const;
  /// The elements as `T` (caller checks `dtype`); copies.
  template <typename T> std::vector<T> as() const {
    std::vector<T> out(bytes.size() / sizeof(T));
    if (!out.empty())
      std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    return out;
  }
};

/// A parsed safetensors file: tensors in file-offset order and the string metadata.
struct SafetensorsFile {
  std::vector<Tensor> tensors;
  std::map<std::string, std::string> metadata;
  /// The tensor called `name`, or nullptr.
  const Tensor *find(const std::string &name) const;
  /// The tensor called `name`, which must be F32 of `shape` (a parameter read by name).
  /// Errors: InvalidArgument naming `path` (the file, for the message) and the tensor when
  /// it is missing or has another dtype or shape.
  Expected<const Tensor *> findF32(const std::string &name, const std::vector<int64_t> &shape,
                                   const std::string &path) const;
};

/// Writes `tensors` in the given order with `metadata` as `__metadata__` to `path`
/// (temporary file + rename). Errors: InvalidArgument for duplicate or empty names, a name
/// "__metadata__", negative dims or null data with nonzero size; IoError on write failure.
Status writeSafetensors(const std::string &path, const std::vector<TensorRef> &tensors,
                        const std::map<std::string, std::string> &metadata = {});

/// The serialized bytes writeSafetensors would write (same errors).
Expected<std::string> serializeSafetensors(const std::vector<TensorRef> &tensors,
                                           const std::map<std::string, std::string> &metadata);

/// Parses a safetensors byte buffer. Errors: InvalidArgument when the header length exceeds
/// the buffer, the JSON is malformed, a dtype is unsupported, offsets are out of range,
/// overlapping, leave holes, or disagree with shape x dtype size.
Expected<SafetensorsFile> parseSafetensors(const uint8_t *data, size_t size);

/// Reads and parses `path` (NotFound/IoError, plus parseSafetensors' errors).
Expected<SafetensorsFile> readSafetensors(const std::string &path);

} // namespace lrt
