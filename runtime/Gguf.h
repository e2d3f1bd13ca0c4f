// SPDX-License-Identifier: Apache-2.0
/// A reader for GGUF files (llama.cpp's model format, versions 1-3): the header, every
/// metadata key/value pair (all scalar types, strings and nested arrays), the tensor infos
/// (name, shape, ggml type, offset), and tensor data dequantized to fp32 from the ggml
/// block layouts F32, F16, Q4_0, Q4_1 and Q8_0 (ggml-quants.c; gguf-py `gguf.quants`).
#pragma once

#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
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

/// ggml tensor types that dequantizeGgml reads, numbered as ggml's `ggml_type`.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 };

/// Name of a ggml type number ("f32", "q4_1", ...; "type N" for one this reader does not
/// know), for messages.
std::string ggmlTypeName(uint32_t type);

/// Bytes that `numel` elements of ggml type `type` take: 4 (F32) or 2 (F16) per element;
/// blocks of 32 elements of 18 (Q4_0), 20 (Q4_1) or 34 (Q8_0) bytes. Errors:
/// InvalidArgument for a type other than these five, or `numel` not a multiple of the
/// block size.
Expected<uint64_t> ggmlTensorBytes(uint32_t type, uint64_t numel);

/// Converts `numel` elements of ggml type `type` at `data` (ggmlTensorBytes(type, numel)
/// bytes, any alignment) to fp32 `out[numel]`. Block layouts (ggml-common.h), with d and m
/// IEEE half floats and y[j] the j-th of the block's 32 outputs:
///   Q4_0 {d; u8 qs[16]}: y[j] = d * ((qs[j] & 15) - 8), y[j+16] = d * ((qs[j] >> 4) - 8)
///   Q4_1 {d; m; u8 qs[16]}: y[j] = d * (qs[j] & 15) + m, y[j+16] = d * (qs[j] >> 4) + m
///   Q8_0 {d; i8 qs[32]}: y[j] = d * qs[j]
/// each product and sum rounded to fp32 separately, so the values equal gguf-py's
/// `gguf.quants.dequantize` bit for bit. Errors: as ggmlTensorBytes.
Status dequantizeGgml(uint32_t type, const uint8_t *data, uint64_t numel, float *out);

/// One tensor's description.
struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims; ///< ggml order (fastest-varying first)
  uint32_t ggmlType = 0;      ///< ggml_type number (0 = F32, 1 = F16, 2 = Q4_0, ...)
  uint64_t offset = 0;        ///< relative to GgufFile::dataOffset

  /// Product of `dims` (1 for a scalar).
  uint64_t numel() const;
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
  /// A float value (f32 or f64; integers are converted). Errors: NotFound, InvalidArgument.
  Expected<double> getFloat(const std::string &key) const;
  /// The tensor info named `name`, or nullptr.
  const GgufTensorInfo *findTensor(const std::string &name) const;
};

/// The tensor `t` of `f` as fp32, in ggml order (dims[0] fastest; a 2-D tensor with dims
/// {in, out} is row-major [out, in], as PyTorch's `weight`), read from `fileBytes`, the
/// bytes of the whole file `f` was parsed from. Errors: InvalidArgument naming the tensor
/// for an unsupported type, a size that overflows, or data past the end of the file.
Expected<std::vector<float>> readGgufTensor(const GgufFile &f, std::string_view fileBytes,
                                            const GgufTensorInfo &t);

/// Parses GGUF metadata from the bytes of a file (at least the header, KV pairs and tensor
/// infos). `name` is used in messages. Errors: InvalidArgument naming the offset and what
/// was expected (bad magic, unsupported version, truncated data, unknown type, absurd
/// counts or lengths).
Expected<GgufFile> parseGguf(std::string_view bytes, const std::string &name = "gguf");

/// Maps and parses `path` (only the pages of the metadata are read). Errors: NotFound,
/// IoError, InvalidArgument for a file that is not a regular file, or parseGguf's with the
/// path.
Expected<GgufFile> readGguf(const std::string &path);

} // namespace lrt
