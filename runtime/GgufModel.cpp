// SPDX-License-Identifier: Apache-2.0
#include "runtime/GgufModel.h"

#include "runtime/FileUtil.h"

#include <algorithm>
#include <functional>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace lrt {

namespace {

/// An integer key, or `fallback` when it is absent and `fallback` >= 0.
Status intKey(const GgufFile &f, const std::string &key, int64_t &out, int64_t fallback = -1) {
  if (!f.find(key) && fallback >= 0) {
    out = fallback;
    return Status::ok();
  }
  auto v = f.getInt(key);
  if (!v)
    return v.status();
  if (*v <= 0)
    return Status::invalid(fmt::format("gguf key '{}' is {}, expected a positive size", key, *v));
  out = *v;
  return Status::ok();
}

/// ggml dims (fastest first) that tensor `name` must have for `c`; empty for unknown names.
std::vector<uint64_t> expectedDims(const GgufLlamaConfig &c, const std::string &name) {
  auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  uint64_t kvDim = u(c.dim / c.heads * c.kvHeads);
  std::string tail = name.substr(name.find('.', name.find('.') + 1) + 1);
  if (name == "token_embd.weight" || name == "output.weight")
    return {u(c.dim), u(c.vocab)};
  if (name == "output_norm.weight" || tail == "attn_norm.weight" || tail == "ffn_norm.weight")
    return {u(c.dim)};
  if (tail == "attn_q.weight" || tail == "attn_output.weight")
    return {u(c.dim), u(c.dim)};
  if (tail == "attn_k.weight" || tail == "attn_v.weight")
    return {u(c.dim), kvDim};
  if (tail == "ffn_gate.weight" || tail == "ffn_up.weight")
    return {u(c.dim), u(c.hidden)};
  if (tail == "ffn_down.weight")
    return {u(c.hidden), u(c.dim)};
  return {};
}

std::string dimsText(const std::vector<uint64_t> &d) { return fmt::format("[{}]", fmt::join(d, ", ")); }

} // namespace

Expected<GgufLlamaConfig> ggufLlamaConfig(const GgufFile &f) {
  auto arch = f.getString("general.architecture");
  if (!arch)
    return arch.status();
  if (*arch != "llama")
    return Status::invalid(fmt::format(
        "general.architecture is '{}'; only 'llama' models can be loaded", *arch));
  GgufLlamaConfig c;
  int64_t vocabFallback = -1;
  if (const GgufValue *t = f.find("tokenizer.ggml.tokens"); t && t->type == GgufType::Array)
    vocabFallback = static_cast<int64_t>(t->arr.size());
  if (Status st = intKey(f, "llama.embedding_length", c.dim); !st)
    return st;
  if (Status st = intKey(f, "llama.block_count", c.layers); !st)
    return st;
  if (Status st = intKey(f, "llama.attention.head_count", c.heads); !st)
    return st;
  if (Status st = intKey(f, "llama.attention.head_count_kv", c.kvHeads, c.heads); !st)
    return st;
  if (Status st = intKey(f, "llama.feed_forward_length", c.hidden); !st)
    return st;
  if (Status st = intKey(f, "llama.context_length", c.contextLength); !st)
    return st;
  if (Status st = intKey(f, "llama.vocab_size", c.vocab, vocabFallback); !st)
    return st;
  if (f.find("llama.attention.layer_norm_rms_epsilon")) {
    auto e = f.getFloat("llama.attention.layer_norm_rms_epsilon");
    if (!e)
      return e.status();
    c.eps = *e;
  }
  if (f.find("llama.rope.freq_base")) {
    auto t = f.getFloat("llama.rope.freq_base");
    if (!t)
      return t.status();
    c.theta = *t;
  }
  if (!(c.eps > 0) || !(c.theta > 0))
    return Status::invalid(fmt::format("gguf: rms epsilon {} and rope base {} must be positive",
                                       c.eps, c.theta));
  if (c.dim % c.heads != 0 || c.heads % c.kvHeads != 0 || (c.dim / c.heads) % 2 != 0)
    return Status::invalid(fmt::format(
        "gguf: {} heads and {} key/value heads do not split the dimension {} into even heads",
        c.heads, c.kvHeads, c.dim));
  if (f.find("llama.rope.dimension_count")) {
    auto r = f.getInt("llama.rope.dimension_count");
    if (!r)
      return r.status();
    if (*r != c.dim / c.heads)
      return Status::invalid(fmt::format(
          "gguf: llama.rope.dimension_count {} is not the head dimension {} (partial RoPE is "
          "not supported)",
          *r, c.dim / c.heads));
  }
  c.tiedOutput = f.findTensor("output.weight") == nullptr;
  std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
  if (!c.tiedOutput)
    names.push_back("output.weight");
  for (int64_t l = 0; l < c.layers; ++l)
    for (const char *t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                          "ffn_gate", "ffn_up", "ffn_down"})
      names.push_back(fmt::format("blk.{}.{}.weight", l, t));
  for (const std::string &name : names) {
    const GgufTensorInfo *t = f.findTensor(name);
    if (!t)
      return Status::error(StatusCode::NotFound,
                           fmt::format("gguf tensor '{}' is missing", name));
    std::vector<uint64_t> want = expectedDims(c, name);
    if (t->dims != want)
      return Status::invalid(fmt::format("gguf tensor '{}' has shape {}, expected {}", name,
                                         dimsText(t->dims), dimsText(want)));
    if (auto bytes = ggmlTensorBytes(t->ggmlType, t->numel()); !bytes)
      return bytes.status().withContext(fmt::format("gguf tensor '{}'", name));
  }
  return c;
}

std::string ggufTensorName(const std::string &param) {
  if (param == "embed")
    return "token_embd.weight";
  if (param == "final_norm")
    return "output_norm.weight";
  if (param == "output")
    return "output.weight";
  // layers.N.NAME
  size_t a = param.find('.'), b = a == std::string::npos ? a : param.find('.', a + 1);
  if (b == std::string::npos || param.compare(0, a, "layers") != 0)
    return "";
  std::string layer = param.substr(a + 1, b - a - 1), name = param.substr(b + 1);
  static const std::pair<const char *, const char *> map[] = {
      {"attn_norm", "attn_norm"}, {"wq", "attn_q"},        {"wk", "attn_k"},
      {"wv", "attn_v"},           {"wo", "attn_output"},   {"mlp_norm", "ffn_norm"},
      {"w_gate", "ffn_gate"},     {"w_up", "ffn_up"},      {"w_down", "ffn_down"}};
  for (const auto &[ours, theirs] : map)
    if (name == ours)
      return "blk." + layer + "." + theirs + ".weight";
  return "";
}

std::vector<float> unpermuteRope(const std::vector<float> &w, int64_t rows, int64_t in,
                                 int64_t heads) {
  std::vector<float> out(w.size());
  int64_t hd = rows / heads, half = hd / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t t = 0; t < 2; ++t) {
        const float *src = &w[(h * hd + 2 * i + t) * in];
        std::copy(src, src + in, &out[(h * hd + t * half + i) * in]);
      }
  return out;
}

Status forEachGgufParam(const std::vector<ParamInfo> &params, const std::string &path,
                        const std::function<Status(const ParamInfo &, const float *)> &fn) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.status();
  std::string_view bytes = file->bytes();
  auto f = parseGguf(bytes, "'" + path + "'");
  if (!f)
    return f.status();
  auto config = ggufLlamaConfig(*f);
  if (!config)
    return config.status().withContext("'" + path + "'");
  std::vector<float> transposed; // reused: the largest projection matrix
  for (const ParamInfo &p : params) {
    std::string name = ggufTensorName(p.name);
    const GgufTensorInfo *t = name.empty() ? nullptr : f->findTensor(name);
    if (!t)
      return Status::invalid(fmt::format("'{}': parameter '{}' has no GGUF tensor{}", path,
                                         p.name, name.empty() ? "" : " ('" + name + "')"));
    // A matrix [in, out] of the stdlib is the GGUF tensor with dims {in, out} transposed;
    // the embedding [vocab, dim] is dims {dim, vocab} as stored; vectors are as stored.
    bool isEmbed = p.name == "embed" || p.name == "output";
    std::vector<uint64_t> want(p.shape.begin(), p.shape.end());
    if (isEmbed)
      std::reverse(want.begin(), want.end());
    if (t->dims != want)
      return Status::invalid(fmt::format("'{}': parameter '{}' of shape {} does not fit GGUF "
                                         "tensor '{}' of shape {}",
                                         path, p.name, dimsText(want), name, dimsText(t->dims)));
    auto data = readGgufTensor(*f, bytes, *t);
    if (!data)
      return data.status().withContext("'" + path + "'");
    if (p.shape.size() != 2 || isEmbed) {
      if (Status st = fn(p, data->data()); !st)
        return st;
      continue;
    }
    int64_t in = p.shape[0], out = p.shape[1];
    std::vector<float> rows = data.take(); // row-major [out, in]
    std::string tail = name.substr(name.rfind('.', name.size() - 8) + 1);
    if (tail == "attn_q.weight")
      rows = unpermuteRope(rows, out, in, config->heads);
    else if (tail == "attn_k.weight")
      rows = unpermuteRope(rows, out, in, config->kvHeads);
    transposed.resize(size_t(in * out));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i)
        transposed[i * out + o] = rows[o * in + i];
    if (Status st = fn(p, transposed.data()); !st)
      return st;
  }
  return Status::ok();
}

Expected<std::vector<float>> readGgufParams(const std::vector<ParamInfo> &params,
                                            int64_t numParams, const std::string &path) {
  for (const ParamInfo &p : params)
    if (p.offset < 0 || p.offset + p.numel > numParams)
      return Status::invalid(fmt::format("'{}': parameter '{}' ({} values at {}) lies outside "
                                         "the buffer of {}",
                                         path, p.name, p.numel, p.offset, numParams));
  std::vector<float> flat(static_cast<size_t>(numParams));
  Status st = forEachGgufParam(params, path, [&](const ParamInfo &p, const float *values) {
    std::copy(values, values + p.numel, flat.data() + p.offset);
    return Status::ok();
  });
  if (!st)
    return st;
  return flat;
}

} // namespace lrt
