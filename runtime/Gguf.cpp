// SPDX-License-Identifier: Apache-2.0
#include "runtime/Gguf.h"

#include "runtime/FileUtil.h"

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
  Reader(const std::string &b, const std::string &name) : b_(b), name_(name) {}
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
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }

private:
  const std::string &b_;
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

Expected<GgufFile> parseGguf(const std::string &bytes, const std::string &name) {
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
  auto bytes = readFile(path);
  if (!bytes)
    return bytes.status();
  return parseGguf(*bytes, "'" + path + "'");
}

} // namespace lrt
