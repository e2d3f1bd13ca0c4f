// SPDX-License-Identifier: Apache-2.0
/// safetensors serialisation with nlohmann-json for the header.
#include "runtime/Safetensors.h"

#include "runtime/FileUtil.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

namespace lrt {
namespace {

/// Header lengths above this are rejected (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;

std::optional<DType> parseDtype(const std::string &s) {
  static const std::pair<const char *, DType> kNames[] = {
      {"F32", DType::F32}, {"I32", DType::I32}, {"I64", DType::I64},
      {"F16", DType::F16}, {"BF16", DType::BF16}, {"U8", DType::U8}};
  for (auto &[name, t] : kNames)
    if (s == name)
      return t;
  return std::nullopt;
}

int64_t product(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

} // namespace

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "F32";
  case DType::I32: return "I32";
  case DType::I64: return "I64";
  case DType::F16: return "F16";
  case DType::BF16: return "BF16";
  case DType::U8: return "U8";
  }
  return "?";
}

int64_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32: case DType::I32: return 4;
  case DType::I64: return 8;
  case DType::F16: case DType::BF16: return 2;
  case DType::U8: return 1;
  }
  return 0;
}

int64_t Tensor::numel() const { return product(shape); }

const Tensor *SafetensorsFile::find(const std::string &name) const {
  for (const Tensor &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

Expected<const Tensor *> SafetensorsFile::findF32(const std::string &name,
                                                 const std::vector<int64_t> &shape,
                                                 const std::string &path) const {
  const Tensor *t = find(name);
  if (!t)
    return Status::invalid(fmt::format("'{}' has no tensor '{}'", path, name));
  if (t->dtype != DType::F32 || t->shape != shape)
    return Status::invalid(fmt::format("'{}': tensor '{}' is {} [{}], expected F32 [{}]", path,
                                       name, dtypeName(t->dtype), fmt::join(t->shape, ", "),
                                       fmt::join(shape, ", ")));
  return t;
}

Expected<std::string> serializeSafetensors(const std::vector<TensorRef> &tensors,
                                           const std::map<std::string, std::string> &metadata) {
  // nlohmann::ordered_json keeps the tensors in the caller's order, which is also the
  // order of their bytes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (auto &[k, v] : metadata)
      meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorRef &t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      return Status::invalid(fmt::format("safetensors: invalid or duplicate tensor name '{}'", t.name));
    for (int64_t d : t.shape)
      if (d < 0)
        return Status::invalid(fmt::format("safetensors: tensor '{}' has a negative dim", t.name));
    uint64_t nbytes = uint64_t(product(t.shape) * dtypeSize(t.dtype));
    if (nbytes > 0 && !t.data)
      return Status::invalid(fmt::format("safetensors: tensor '{}' has no data", t.name));
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json = header.dump();
  // Pad with spaces so the data starts 8-byte aligned (as the reference writer does).
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int k = 0; k < 8; ++k)
    out += char((n >> (8 * k)) & 0xFF);
  out += json;
  for (const TensorRef &t : tensors) {
    size_t nbytes = size_t(product(t.shape) * dtypeSize(t.dtype));
    // The runtime targets little-endian hosts (x86-64, AArch64), so bytes are copied as is.
    out.append(static_cast<const char *>(t.data), nbytes);
  }
  return out;
}

Status writeSafetensors(const std::string &path, const std::vector<TensorRef> &tensors,
                        const std::map<std::string, std::string> &metadata) {
  auto bytes = serializeSafetensors(tensors, metadata);
  if (!bytes)
    return bytes.status().withContext(fmt::format("'{}'", path));
  return writeFileAtomic(path, *bytes);
}

Expected<SafetensorsFile> parseSafetensors(const uint8_t *data, size_t size) {
  auto bad = [](std::string m) { return Status::invalid("safetensors: " + m); };
  if (size < 8)
    return bad(fmt::format("file of {} bytes has no header length", size));
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k)
    n = (n << 8) | data[k];
  if (n > kMaxHeader || n > size - 8)
    return bad(fmt::format("header length {} exceeds the file ({} bytes)", n, size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const std::exception &e) {
    return bad(fmt::format("malformed header JSON: {}", e.what()));
  }
  if (!header.is_object())
    return bad("header is not a JSON object");
  const uint64_t dataSize = size - 8 - n;
  const uint8_t *base = data + 8 + n;
  SafetensorsFile file;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        for (auto m = it->begin(); m != it->end(); ++m)
          file.metadata[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
        continue;
      }
      const nlohmann::json &info = *it;
      auto dtype = parseDtype(info.at("dtype").get<std::string>());
      if (!dtype)
        return bad(fmt::format("tensor '{}': unsupported dtype '{}'", it.key(),
                               info.at("dtype").get<std::string>()));
      Tensor t;
      t.name = it.key();
      t.dtype = *dtype;
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > dataSize)
        return bad(fmt::format("tensor '{}': data_offsets out of range (data is {} bytes)",
                               t.name, dataSize));
      for (int64_t d : t.shape)
        if (d < 0)
          return bad(fmt::format("tensor '{}': negative dim", t.name));
      uint64_t expect = uint64_t(t.numel() * dtypeSize(t.dtype));
      if (offsets[1] - offsets[0] != expect)
        return bad(fmt::format("tensor '{}': {} bytes but shape x dtype needs {}", t.name,
                               offsets[1] - offsets[0], expect));
      t.bytes.assign(base + offsets[0], base + offsets[1]);
      ranges.push_back({offsets[0], offsets[1]});
      file.tensors.push_back(std::move(t));
    }
  } catch (const std::exception &e) {
    return bad(fmt::format("malformed tensor entry: {}", e.what()));
  }
  // The spec forbids holes and overlaps: sorted ranges must tile [0, dataSize).
  std::vector<size_t> order(ranges.size());
  for (size_t k = 0; k < order.size(); ++k)
    order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  uint64_t end = 0;
  for (size_t k : order) {
    if (ranges[k].first != end)
      return bad(fmt::format("tensor '{}': data starts at {}, expected {} (hole or overlap)",
                             file.tensors[k].name, ranges[k].first, end));
    end = ranges[k].second;
  }
  if (end != dataSize)
    return bad(fmt::format("tensor data ends at {} but the file has {} data bytes", end, dataSize));
  std::vector<Tensor> sorted;
  sorted.reserve(order.size());
  for (size_t k : order)
    sorted.push_back(std::move(file.tensors[k]));
  file.tensors = std::move(sorted);
  return file;
}

Expected<SafetensorsFile> readSafetensors(const std::string &path) {
  auto bytes = readFile(path);
  if (!bytes)
    return bytes.status();
  auto file = parseSafetensors(reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size());
  if (!file)
    return file.status().withContext(fmt::format("'{}'", path));
  return file;
}

} // namespace lrt
