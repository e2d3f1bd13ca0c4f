// SPDX-License-Identifier: Apache-2.0
/// A reader for GGUF files (llama.cpp's model format, versions 1-3): the header, every
/// metadata key/value pair (all scalar types, strings and nested arrays) and the tensor
/// infos (name, shape, ggml type, offset). Tensor data is not read; `dataOffset` says
/// where it starts, so a model importer can map or read it later.
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lrt {

/// GGUF metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

/// Name of a value type ("u32", "string", ...), for messages.
const char *ggufTypeName(GgufType t);

/// One metadata value. Integers of every width are held in `i` (unsigned ones that do not
/// fit an int64 keep their bits), floats in `f`, bools in `i` (0/1), strings in `s`;
/// arrays hold their element type and elements.
struct GgufValue {
  GgufType type = GgufType::U8;
  int64_t i = 0;
  double f = 0;
  std::string s;
  GgufType elemType = GgufType::U8; ///< for arrays
  std::vector<GgufValue> arr;       ///< for arrays

  bool isInteger() const;
};

/// One tensor's description.
struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims; ///< ggml order (fastest-varying first)
  uint32_t ggmlType = 0;      ///< ggml_type number (0 = F32, 1 = F16, 2 = Q4_0, ...)
  uint64_t offset = 0;        ///< relative to GgufFile::dataOffset
};

/// The parsed metadata of a GGUF file.
struct GgufFile {
  uint32_t version = 0;
  std::map<std::string, GgufValue> kv;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment = 32;  ///< general.alignment, default 32
  uint64_t dataOffset = 0;  ///< absolute file offset of the tensor data (aligned)

  /// The value of `key`, or nullptr.
  const GgufValue *find(const std::string &key) const;
  /// A string value. Errors: NotFound if absent, InvalidArgument if not a string.
  Expected<std::string> getString(const std::string &key) const;
  /// An integer (or bool) value. Errors: NotFound, InvalidArgument.
  Expected<int64_t> getInt(const std::string &key) const;
  /// An array of strings. Errors: NotFound, InvalidArgument.
  Expected<std::vector<std::string>> getStringArray(const std::string &key) const;
  /// An array of integers. Errors: NotFound, InvalidArgument.
  Expected<std::vector<int64_t>> getIntArray(const std::string &key) const;
};

/// Parses GGUF metadata from the bytes of a file (at least the header, KV pairs and tensor
/// infos). `name` is used in messages. Errors: InvalidArgument naming the offset and what
/// was expected (bad magic, unsupported version, truncated data, unknown type, absurd
/// counts or lengths).
Expected<GgufFile> parseGguf(const std::string &bytes, const std::string &name = "gguf");

/// Reads and parses `path`. Errors: NotFound/IoError, or parseGguf's with the path.
Expected<GgufFile> readGguf(const std::string &path);

} // namespace lrt
