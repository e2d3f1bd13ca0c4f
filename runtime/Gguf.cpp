// SPDX-License-Identifier: Apache-2.0
#include "runtime/Gguf.h"

#include "runtime/FileUtil.h"

#include <cmath>
#include <cstring>
#include <fmt/format.h>

namespace lrt {

const char *ggufTypeName(GgufType t) {
  switch (t) {
  case GgufType::U8: return "u8";
  case GgufType::I8: return "i8";
  case GgufType::U16: return "u16";
  case GgufType::I16: return "i16";
  case GgufType::U32: return "u32";
  case GgufType::I32: return "i32";
  case GgufType::F32: return "f32";
  case GgufType::Bool: return "bool";
  case GgufType::String: return "string";
  case GgufType::Array: return "array";
  case GgufType::U64: return "u64";
  case GgufType::I64: return "i64";
  case GgufType::F64: return "f64";
  }
  return "unknown";
}

bool GgufValue::isInteger() const {
  switch (type) {
  case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
  case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64:
  case GgufType::Bool:
    return true;
  default:
    return false;
  }
}

namespace {

/// A bounds-checked little-endian cursor; the first failure is kept in `err`.
class Reader {
public:
  Reader(std::string_view b, const std::string &name) : b_(b), name_(name) {}
  bool ok() const { return err_.isOk(); }
  Status err() const { return err_; }
  size_t pos() const { return pos_; }

  void fail(const std::string &what) {
    if (err_.isOk())
      err_ = Status::invalid(fmt::format("{}: {} at offset {}", name_, what, pos_));
  }
  bool need(uint64_t n, const char *what) {
    if (!ok())
      return false;
    if (n > b_.size() - pos_) {
      fail(fmt::format("truncated: {} needs {} bytes, {} left", what, n, b_.size() - pos_));
      return false;
    }
    return true;
  }
  template <typename T> T get(const char *what) {
    T v{};
    if (!need(sizeof(T), what))
      return v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(bool v1, const char *what) {
    uint64_t n = v1 ? get<uint32_t>(what) : get<uint64_t>(what);
    if (!need(n, what))
      return {};
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }

private:
  std::string_view b_;
  const std::string &name_;
  size_t pos_ = 0;
  Status err_;
};

bool validType(uint32_t t) { return t <= 12; }

void readValue(Reader &r, GgufType t, bool v1, int depth, GgufValue &out) {
  out.type = t;
  switch (t) {
  case GgufType::U8: out.i = r.get<uint8_t>("u8"); break;
  case GgufType::I8: out.i = r.get<int8_t>("i8"); break;
  case GgufType::U16: out.i = r.get<uint16_t>("u16"); break;
  case GgufType::I16: out.i = r.get<int16_t>("i16"); break;
  case GgufType::U32: out.i = r.get<uint32_t>("u32"); break;
  case GgufType::I32: out.i = r.get<int32_t>("i32"); break;
  case GgufType::U64: out.i = static_cast<int64_t>(r.get<uint64_t>("u64")); break;
  case GgufType::I64: out.i = r.get<int64_t>("i64"); break;
  case GgufType::F32: out.f = r.get<float>("f32"); break;
  case GgufType::F64: out.f = r.get<double>("f64"); break;
  case GgufType::Bool: {
    uint8_t b = r.get<uint8_t>("bool");
    if (r.ok() && b > 1)
      r.fail(fmt::format("bool value {} is not 0 or 1", b));
    out.i = b;
    break;
  }
  case GgufType::String: out.s = r.str(v1, "string"); break;
  case GgufType::Array: {
    if (depth > 8) {
      r.fail("arrays nested more than 8 deep");
      return;
    }
    uint32_t et = r.get<uint32_t>("array element type");
    if (!r.ok())
      return;
    if (!validType(et)) {
      r.fail(fmt::format("unknown array element type {}", et));
      return;
    }
    uint64_t n = v1 ? r.get<uint32_t>("array length") : r.get<uint64_t>("array length");
    if (!r.ok())
      return;
    out.elemType = static_cast<GgufType>(et);
    // Every element takes at least one byte: reject lengths the file cannot hold before
    // reserving memory for them.
    if (!r.need(n, "array elements"))
      return;
    out.arr.resize(n);
    for (uint64_t k = 0; k < n && r.ok(); ++k)
      readValue(r, out.elemType, v1, depth + 1, out.arr[k]);
    break;
  }
  }
}

} // namespace

const GgufValue *GgufFile::find(const std::string &key) const {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

Expected<std::string> GgufFile::getString(const std::string &key) const {
  const GgufValue *v = find(key);
  if (!v)
    return Status::error(StatusCode::NotFound, fmt::format("gguf key '{}' is missing", key));
  if (v->type != GgufType::String)
    return Status::invalid(
        fmt::format("gguf key '{}' is {}, expected string", key, ggufTypeName(v->type)));
  return v->s;
}

Expected<int64_t> GgufFile::getInt(const std::string &key) const {
  const GgufValue *v = find(key);
  if (!v)
    return Status::error(StatusCode::NotFound, fmt::format("gguf key '{}' is missing", key));
  if (!v->isInteger())
    return Status::invalid(
        fmt::format("gguf key '{}' is {}, expected an integer", key, ggufTypeName(v->type)));
  return v->i;
}

Expected<std::vector<std::string>> GgufFile::getStringArray(const std::string &key) const {
  const GgufValue *v = find(key);
  if (!v)
    return Status::error(StatusCode::NotFound, fmt::format("gguf key '{}' is missing", key));
  if (v->type != GgufType::Array || v->elemType != GgufType::String)
    return Status::invalid(fmt::format("gguf key '{}' is {}, expected an array of strings", key,
                                       ggufTypeName(v->type)));
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const GgufValue &e : v->arr)
    out.push_back(e.s);
  return out;
}

Expected<std::vector<int64_t>> GgufFile::getIntArray(const std::string &key) const {
  const GgufValue *v = find(key);
  if (!v)
    return Status::error(StatusCode::NotFound, fmt::format("gguf key '{}' is missing", key));
  if (v->type != GgufType::Array)
    return Status::invalid(fmt::format("gguf key '{}' is {}, expected an array of integers",
                                       key, ggufTypeName(v->type)));
  for (const GgufValue &e : v->arr)
    if (!e.isInteger())
      return Status::invalid(fmt::format("gguf key '{}' is an array of {}, expected integers",
                                         key, ggufTypeName(e.type)));
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const GgufValue &e : v->arr)
    out.push_back(e.i);
  return out;
}

Expected<double> GgufFile::getFloat(const std::string &key) const {
  const GgufValue *v = find(key);
  if (!v)
    return Status::error(StatusCode::NotFound, fmt::format("gguf key '{}' is missing", key));
  if (v->type == GgufType::F32 || v->type == GgufType::F64)
    return v->f;
  if (v->isInteger() && v->type != GgufType::Bool)
    return static_cast<double>(v->i);
  return Status::invalid(
      fmt::format("gguf key '{}' is {}, expected a number", key, ggufTypeName(v->type)));
}

const GgufTensorInfo *GgufFile::findTensor(const std::string &name) const {
  for (const GgufTensorInfo &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// Tensor data
//===----------------------------------------------------------------------===//

std::string ggmlTypeName(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
  case GgmlType::F32: return "f32";
  case GgmlType::F16: return "f16";
  case GgmlType::Q4_0: return "q4_0";
  case GgmlType::Q4_1: return "q4_1";
  case GgmlType::Q8_0: return "q8_0";
  }
  // Types this reader cannot dequantize, named for messages (ggml.h `ggml_type`).
  static const std::pair<uint32_t, const char *> others[] = {
      {6, "q5_0"},  {7, "q5_1"},  {9, "q8_1"},  {10, "q2_k"},  {11, "q3_k"},  {12, "q4_k"},
      {13, "q5_k"}, {14, "q6_k"}, {15, "q8_k"}, {24, "i8"},    {25, "i16"},   {26, "i32"},
      {27, "i64"},  {28, "f64"},  {30, "bf16"}};
  for (const auto &[number, name] : others)
    if (number == type)
      return name;
  return fmt::format("type {}", type);
}

namespace {

/// IEEE binary16 to binary32, exactly (subnormals, infinities and NaNs included).
float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { // subnormal: mant * 2^-24, exact in fp32
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t loadU16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

/// Block size (elements) and bytes per block of a supported type; {0, 0} otherwise.
std::pair<uint64_t, uint64_t> blockOf(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
  case GgmlType::F32: return {1, 4};
  case GgmlType::F16: return {1, 2};
  case GgmlType::Q4_0: return {32, 18};
  case GgmlType::Q4_1: return {32, 20};
  case GgmlType::Q8_0: return {32, 34};
  }
  return {0, 0};
}

} // namespace

Expected<uint64_t> ggmlTensorBytes(uint32_t type, uint64_t numel) {
  auto [block, bytes] = blockOf(type);
  if (block == 0)
    return Status::invalid(fmt::format("ggml type {} is not supported (f32, f16, q4_0, q4_1, "
                                       "q8_0)",
                                       ggmlTypeName(type)));
  if (numel % block != 0)
    return Status::invalid(fmt::format("{} elements of type {} are not whole blocks of {}", numel,
                                       ggmlTypeName(type), block));
  if (numel / block > UINT64_MAX / bytes)
    return Status::invalid(fmt::format("{} elements of type {} overflow a 64-bit size", numel,
                                       ggmlTypeName(type)));
  return numel / block * bytes;
}

Status dequantizeGgml(uint32_t type, const uint8_t *data, uint64_t numel, float *out) {
  // gguf-py rounds d * q and + m to fp32 separately; a fused multiply-add would differ in
  // the last bit.
#pragma clang fp contract(off)
  auto size = ggmlTensorBytes(type, numel);
  if (!size)
    return size.status();
  switch (static_cast<GgmlType>(type)) {
  case GgmlType::F32:
    std::memcpy(out, data, numel * 4);
    break;
  case GgmlType::F16:
    for (uint64_t i = 0; i < numel; ++i)
      out[i] = halfToFloat(loadU16(data + 2 * i));
    break;
  case GgmlType::Q4_0:
    for (uint64_t b = 0; b < numel / 32; ++b, data += 18, out += 32) {
      float d = halfToFloat(loadU16(data));
      const uint8_t *qs = data + 2;
      for (int j = 0; j < 16; ++j) {
        out[j] = d * static_cast<float>((qs[j] & 15) - 8);
        out[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
      }
    }
    break;
  case GgmlType::Q4_1:
    for (uint64_t b = 0; b < numel / 32; ++b, data += 20, out += 32) {
      float d = halfToFloat(loadU16(data)), m = halfToFloat(loadU16(data + 2));
      const uint8_t *qs = data + 4;
      for (int j = 0; j < 16; ++j) {
        float lo = d * static_cast<float>(qs[j] & 15), hi = d * static_cast<float>(qs[j] >> 4);
        out[j] = lo + m;
        out[j + 16] = hi + m;
      }
    }
    break;
  case GgmlType::Q8_0:
    for (uint64_t b = 0; b < numel / 32; ++b, data += 34, out += 32) {
      float d = halfToFloat(loadU16(data));
      for (int j = 0; j < 32; ++j)
        out[j] = d * static_cast<float>(static_cast<int8_t>(data[2 + j]));
    }
    break;
  }
  return Status::ok();
}

Expected<std::vector<float>> readGgufTensor(const GgufFile &f, std::string_view fileBytes,
                                            const GgufTensorInfo &t) {
  uint64_t numel = 1;
  for (uint64_t d : t.dims) {
    if (d != 0 && numel > UINT64_MAX / d)
      return Status::invalid(fmt::format("gguf tensor '{}': element count overflows", t.name));
    numel *= d;
  }
  auto bytes = ggmlTensorBytes(t.ggmlType, numel);
  if (!bytes)
    return bytes.status().withContext(fmt::format("gguf tensor '{}'", t.name));
  uint64_t start = f.dataOffset + t.offset;
  if (start < f.dataOffset || start > fileBytes.size() || *bytes > fileBytes.size() - start)
    return Status::invalid(fmt::format(
        "gguf tensor '{}': data [{}, {} + {}) is past the end of the file ({} bytes)", t.name,
        start, start, *bytes, fileBytes.size()));
  if (numel > fileBytes.size() * 2 + 64) // at most 4 bits per element
    return Status::invalid(fmt::format("gguf tensor '{}': {} elements", t.name, numel));
  std::vector<float> out(numel);
  if (Status st = dequantizeGgml(t.ggmlType,
                                 reinterpret_cast<const uint8_t *>(fileBytes.data()) + start,
                                 numel, out.data());
      !st)
    return st.withContext(fmt::format("gguf tensor '{}'", t.name));
  return out;
}

Expected<GgufFile> parseGguf(std::string_view bytes, const std::string &name) {
  Reader r(bytes, name);
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
    return Status::invalid(fmt::format("{}: not a GGUF file (magic is not 'GGUF')", name));
  r.get<uint32_t>("magic");
  GgufFile f;
  f.version = r.get<uint32_t>("version");
  if (!r.ok())
    return r.err();
  if (f.version < 1 || f.version > 3)
    return Status::invalid(
        fmt::format("{}: unsupported GGUF version {} (expected 1, 2 or 3)", name, f.version));
  bool v1 = f.version == 1;
  uint64_t nTensors = v1 ? r.get<uint32_t>("tensor count") : r.get<uint64_t>("tensor count");
  uint64_t nKv = v1 ? r.get<uint32_t>("kv count") : r.get<uint64_t>("kv count");
  if (!r.ok())
    return r.err();
  // Each KV pair and each tensor info takes more than 8 bytes.
  if (nKv > bytes.size() / 8 || nTensors > bytes.size() / 8)
    return Status::invalid(fmt::format("{}: {} KV pairs and {} tensors cannot fit in {} bytes",
                                       name, nKv, nTensors, bytes.size()));
  for (uint64_t k = 0; k < nKv && r.ok(); ++k) {
    std::string key = r.str(v1, "key");
    uint32_t t = r.get<uint32_t>("value type");
    if (!r.ok())
      break;
    if (!validType(t)) {
      r.fail(fmt::format("key '{}' has unknown value type {}", key, t));
      break;
    }
    GgufValue v;
    readValue(r, static_cast<GgufType>(t), v1, 0, v);
    if (!r.ok())
      return r.err().withContext(fmt::format("key '{}'", key));
    if (f.kv.count(key))
      return Status::invalid(fmt::format("{}: duplicate key '{}'", name, key));
    f.kv.emplace(std::move(key), std::move(v));
  }
  if (!r.ok())
    return r.err();
  if (const GgufValue *a = f.find("general.alignment")) {
    if (!a->isInteger() || a->i <= 0 || (a->i & (a->i - 1)) != 0)
      return Status::invalid(fmt::format("{}: general.alignment must be a power of two", name));
    f.alignment = static_cast<uint64_t>(a->i);
  }
  f.tensors.resize(nTensors);
  for (uint64_t k = 0; k < nTensors && r.ok(); ++k) {
    GgufTensorInfo &t = f.tensors[k];
    t.name = r.str(v1, "tensor name");
    uint32_t nd = r.get<uint32_t>("tensor n_dims");
    if (r.ok() && nd > 8) {
      r.fail(fmt::format("tensor '{}' has {} dimensions (at most 8)", t.name, nd));
      break;
    }
    for (uint32_t d = 0; d < nd && r.ok(); ++d)
      t.dims.push_back(v1 ? r.get<uint32_t>("tensor dim") : r.get<uint64_t>("tensor dim"));
    t.ggmlType = r.get<uint32_t>("tensor type");
    t.offset = r.get<uint64_t>("tensor offset");
    if (r.ok() && t.offset % f.alignment != 0)
      r.fail(fmt::format("tensor '{}' offset {} is not a multiple of the alignment {}", t.name,
                         t.offset, f.alignment));
  }
  if (!r.ok())
    return r.err();
  f.dataOffset = (r.pos() + f.alignment - 1) / f.alignment * f.alignment;
  return f;
}

Expected<GgufFile> readGguf(const std::string &path) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.status();
  return parseGguf(file->bytes(), "'" + path + "'");
}

} // namespace lrt
