// SPDX-License-Identifier: Apache-2.0
/// Hugging Face llama folders: tensor names and transposes, config.json, a tokenizer.json
/// equivalent to the run's SentencePiece model, and export/import of whole folders.
#include "runtime/HfExport.h"

#include "runtime/Checkpoint.h"
#include "runtime/FileUtil.h"
#include "runtime/Tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

namespace lrt {
namespace {

using json = nlohmann::ordered_json;

/// One per-layer parameter of the llama family: llmp suffix, HF suffix, linear or not.
struct LayerParam {
  const char *llmp, *hf;
  bool linear;
};
constexpr LayerParam kLayerParams[] = {
    {"attn_norm", "input_layernorm.weight", false},
    {"wq", "self_attn.q_proj.weight", true},
    {"wk", "self_attn.k_proj.weight", true},
    {"wv", "self_attn.v_proj.weight", true},
    {"wo", "self_attn.o_proj.weight", true},
    {"mlp_norm", "post_attention_layernorm.weight", false},
    {"w_gate", "mlp.gate_proj.weight", true},
    {"w_up", "mlp.up_proj.weight", true},
    {"w_down", "mlp.down_proj.weight", true},
};

/// Splits "<prefix><N>.<rest>" into N and rest; false if `name` has another form.
bool splitLayer(const std::string &name, const std::string &prefix, std::string &index,
                std::string &rest) {
  if (name.compare(0, prefix.size(), prefix) != 0)
    return false;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size())
    return false;
  index = name.substr(prefix.size(), dot - prefix.size());
  if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  rest = name.substr(dot + 1);
  return true;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t kvHeadsOf(const LlamaConfig &c) { return c.kvHeads > 0 ? c.kvHeads : c.heads; }

/// The llmp shape of each parameter of `config` (llmp names).
std::map<std::string, std::vector<int64_t>> llamaShapes(const LlamaConfig &c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["embed"] = {c.vocab, c.dim};
  shapes["final_norm"] = {c.dim};
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = fmt::format("layers.{}.", i);
    shapes[p + "attn_norm"] = shapes[p + "mlp_norm"] = {c.dim};
    shapes[p + "wq"] = shapes[p + "wo"] = {c.dim, c.dim};
    shapes[p + "wk"] = shapes[p + "wv"] = {c.dim, c.dim / c.heads * kvHeadsOf(c)};
    shapes[p + "w_gate"] = shapes[p + "w_up"] = {c.dim, c.hidden};
    shapes[p + "w_down"] = {c.hidden, c.dim};
  }
  return shapes;
}

/// Maps `in` with `rename` (toward HF when `toHf`), checking names and shapes against
/// `config`; the result is in llamaParamNames order (on either side).
Expected<std::vector<Tensor>> convertTensors(const std::vector<Tensor> &in,
                                             const LlamaConfig &config, bool toHf) {
  if (config.heads <= 0 || config.dim % config.heads != 0 || config.heads % kvHeadsOf(config) != 0)
    return Status::invalid(fmt::format("heads {} and kv_heads {} do not fit dim {}", config.heads,
                                       kvHeadsOf(config), config.dim));
  auto shapes = llamaShapes(config);
  std::map<std::string, Tensor> byLlmpName;
  for (const Tensor &t : in) {
    auto mapped = toHf ? hfNameOf(t.name) : llmpNameOf(t.name);
    if (!mapped)
      return mapped.status();
    std::string llmpName = toHf ? t.name : mapped->name;
    auto shape = shapes.find(llmpName);
    if (shape == shapes.end())
      return Status::invalid(fmt::format("tensor '{}' is not a parameter of a llama model "
                                         "with {} layers", t.name, config.layers));
    if (byLlmpName.count(llmpName))
      return Status::invalid(fmt::format("tensor '{}' appears twice", t.name));
    if (t.dtype != DType::F32)
      return Status::invalid(fmt::format("tensor '{}' is {}; only F32 is supported", t.name,
                                         dtypeName(t.dtype)));
    Tensor out = t;
    if (mapped->transposed) {
      auto tt = transposed(t);
      if (!tt)
        return tt.status();
      out = tt.take();
    }
    if ((toHf ? t.shape : out.shape) != shape->second)
      return Status::invalid(fmt::format("tensor '{}' has shape {}, expected {}", t.name,
                                         shapeString(t.shape),
                                         shapeString(!toHf && mapped->transposed
                                                         ? std::vector<int64_t>(
                                                               shape->second.rbegin(),
                                                               shape->second.rend())
                                                         : shape->second)));
    out.name = toHf ? mapped->name : llmpName;
    byLlmpName.emplace(llmpName, std::move(out));
  }
  std::vector<Tensor> result;
  for (const std::string &name : llamaParamNames(config.layers)) {
    auto it = byLlmpName.find(name);
    if (it == byLlmpName.end())
      return Status::invalid(fmt::format(
          "tensor '{}' is missing", toHf ? name : hfNameOf(name)->name));
    result.push_back(std::move(it->second));
  }
  return result;
}

std::vector<TensorRef> refsOf(const std::vector<Tensor> &tensors) {
  std::vector<TensorRef> refs;
  for (const Tensor &t : tensors)
    refs.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  return refs;
}

/// Reads and parses JSON from `path`; InvalidArgument names the file on a parse error.
Expected<json> readJson(const std::string &path) {
  auto text = readFile(path);
  if (!text)
    return text.status();
  try {
    return json::parse(*text);
  } catch (const std::exception &e) {
    return Status::invalid(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  }
}

bool exists(const std::string &path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

} // namespace

Expected<HfName> hfNameOf(const std::string &name) {
  if (name == "embed")
    return HfName{"model.embed_tokens.weight", false};
  if (name == "final_norm")
    return HfName{"model.norm.weight", false};
  std::string index, rest;
  if (splitLayer(name, "layers.", index, rest))
    for (const LayerParam &p : kLayerParams)
      if (rest == p.llmp)
        return HfName{fmt::format("model.layers.{}.{}", index, p.hf), p.linear};
  return Status::invalid(
      fmt::format("parameter '{}' is not one of the llama family's; the Hugging Face "
                  "mapping knows embed, final_norm and layers.N.{{attn_norm, wq, wk, wv, wo, "
                  "mlp_norm, w_gate, w_up, w_down}}",
                  name));
}

Expected<HfName> llmpNameOf(const std::string &name) {
  if (name == "model.embed_tokens.weight")
    return HfName{"embed", false};
  if (name == "model.norm.weight")
    return HfName{"final_norm", false};
  std::string index, rest;
  if (splitLayer(name, "model.layers.", index, rest))
    for (const LayerParam &p : kLayerParams)
      if (rest == p.hf)
        return HfName{fmt::format("layers.{}.{}", index, p.llmp), p.linear};
  if (name == "lm_head.weight")
    return Status::invalid("tensor 'lm_head.weight' is an untied output projection; the llama "
                           "family ties it to the embedding");
  return Status::invalid(fmt::format("tensor '{}' has no counterpart in the llama family", name));
}

std::vector<std::string> llamaParamNames(int64_t layers) {
  std::vector<std::string> names{"embed"};
  for (int64_t i = 0; i < layers; ++i)
    for (const LayerParam &p : kLayerParams)
      names.push_back(fmt::format("layers.{}.{}", i, p.llmp));
  names.push_back("final_norm");
  return names;
}

Expected<Tensor> transposed(const Tensor &t) {
  if (t.shape.size() != 2)
    return Status::invalid(fmt::format("cannot transpose '{}' of shape {}: not 2-D", t.name,
                                       shapeString(t.shape)));
  const int64_t rows = t.shape[0], cols = t.shape[1], esize = dtypeSize(t.dtype);
  if (rows < 0 || cols < 0 || int64_t(t.bytes.size()) != rows * cols * esize)
    return Status::invalid(fmt::format("tensor '{}' of shape {} holds {} bytes", t.name,
                                       shapeString(t.shape), t.bytes.size()));
  Tensor out;
  out.name = t.name;
  out.dtype = t.dtype;
  out.shape = {cols, rows};
  out.bytes.resize(t.bytes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&out.bytes[(c * rows + r) * esize], &t.bytes[(r * cols + c) * esize], esize);
  return out;
}

Expected<std::vector<Tensor>> toHfTensors(const std::vector<Tensor> &llmp, const LlamaConfig &c) {
  return convertTensors(llmp, c, /*toHf=*/true);
}

Expected<std::vector<Tensor>> fromHfTensors(const std::vector<Tensor> &hf, const LlamaConfig &c) {
  return convertTensors(hf, c, /*toHf=*/false);
}

std::string hfConfigJson(const LlamaConfig &c) {
  json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["vocab_size"] = c.vocab;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden;
  j["num_hidden_layers"] = c.layers;
  j["num_attention_heads"] = c.heads;
  j["num_key_value_heads"] = kvHeadsOf(c);
  j["head_dim"] = c.heads > 0 ? c.dim / c.heads : 0;
  j["max_position_embeddings"] = c.context;
  j["rms_norm_eps"] = c.eps;
  // transformers >= 5 reads `rope_parameters`; 4.x reads `rope_theta` (and keeps the other).
  j["rope_theta"] = c.theta;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.theta}};
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["mlp_bias"] = false;
  j["pretraining_tp"] = 1;
  j["tie_word_embeddings"] = true;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  // The tokenizer has no BOS/EOS pieces: the token stream is plain text.
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["pad_token_id"] = nullptr;
  j["torch_dtype"] = "float32";
  j["dtype"] = "float32";
  return j.dump(2) + "\n";
}

Expected<LlamaConfig> parseHfConfigJson(const std::string &text) {
  try {
    json j = json::parse(text);
    auto field = [&](const char *name) -> const json & {
      if (!j.contains(name) || j[name].is_null())
        throw std::runtime_error(fmt::format("config.json has no '{}'", name));
      return j[name];
    };
    auto is = [&](const char *name, const json &want) {
      return !j.contains(name) || j[name].is_null() || j[name] == want;
    };
    if (j.value("model_type", std::string()) != "llama")
      return Status::invalid(fmt::format("config.json: model_type is '{}', expected 'llama'",
                                         j.value("model_type", std::string())));
    LlamaConfig c;
    c.vocab = field("vocab_size").get<int64_t>();
    c.dim = field("hidden_size").get<int64_t>();
    c.hidden = field("intermediate_size").get<int64_t>();
    c.layers = field("num_hidden_layers").get<int64_t>();
    c.heads = field("num_attention_heads").get<int64_t>();
    c.context = field("max_position_embeddings").get<int64_t>();
    c.eps = j.contains("rms_norm_eps") ? j["rms_norm_eps"].get<double>() : 1e-6;
    c.theta = 10000.0;
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const json &r = j["rope_parameters"];
      if (r.value("rope_type", std::string("default")) != "default")
        return Status::invalid("config.json: rope_parameters.rope_type is not 'default'; "
                               "the llama family has plain RoPE");
      c.theta = r.value("rope_theta", c.theta);
    } else if (j.contains("rope_theta")) {
      c.theta = j["rope_theta"].get<double>();
    }
    c.kvHeads = c.heads;
    if (j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null())
      c.kvHeads = j["num_key_value_heads"].get<int64_t>();
    if (c.kvHeads <= 0 || c.heads % c.kvHeads != 0)
      return Status::invalid(fmt::format("config.json: num_key_value_heads {} does not divide "
                                         "num_attention_heads {}", c.kvHeads, c.heads));
    // LlamaConfig's default is false (untied).
    if (!j.contains("tie_word_embeddings") || j["tie_word_embeddings"] != true)
      return Status::invalid("config.json: tie_word_embeddings is not true; the llama family "
                             "ties the output projection to the embedding");
    if (!is("hidden_act", "silu"))
      return Status::invalid(fmt::format("config.json: hidden_act is {}, expected \"silu\"",
                                         j["hidden_act"].dump()));
    if (!is("attention_bias", false) || !is("mlp_bias", false))
      return Status::invalid("config.json: attention_bias or mlp_bias is set; the llama family "
                             "has no biases");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      return Status::invalid("config.json: rope_scaling is set; the llama family has plain RoPE");
    if (c.heads <= 0 || c.dim % c.heads != 0 || !is("head_dim", c.dim / c.heads))
      return Status::invalid(fmt::format("config.json: head_dim must be hidden_size / "
                                         "num_attention_heads ({} / {})", c.dim, c.heads));
    return c;
  } catch (const std::exception &e) {
    return Status::invalid(fmt::format("config.json: {}", e.what()));
  }
}

Expected<LlamaConfig> llamaConfigFromArgs(const std::string &family,
                                          const std::map<std::string, double> &args) {
  if (family != "llama")
    return Status::invalid(fmt::format("model family '{}' has no Hugging Face mapping; only "
                                       "'llama' (std.models.llama) does", family));
  auto get = [&](const char *name, double &out) {
    auto it = args.find(name);
    if (it == args.end())
      return false;
    out = it->second;
    return true;
  };
  double vocab, dim, layers, heads, context, hidden, eps, theta, kv = 0;
  if (!get("vocab", vocab) || !get("dim", dim) || !get("layers", layers) ||
      !get("heads", heads) || !get("context", context) || !get("hidden", hidden) ||
      !get("eps", eps) || !get("theta", theta))
    return Status::invalid("llama model arguments lack one of vocab, dim, layers, heads, "
                           "context, hidden, eps, theta");
  LlamaConfig c;
  c.vocab = int64_t(vocab), c.dim = int64_t(dim), c.layers = int64_t(layers);
  c.heads = int64_t(heads), c.context = int64_t(context), c.hidden = int64_t(hidden);
  c.eps = eps, c.theta = theta;
  c.kvHeads = get("kv_heads", kv) ? int64_t(kv) : c.heads;
  if (c.heads <= 0 || c.dim % c.heads != 0 || c.kvHeads <= 0 || c.heads % c.kvHeads != 0)
    return Status::invalid(fmt::format("heads {} and kv_heads {} do not fit dim {}", c.heads,
                                       c.kvHeads, c.dim));
  return c;
}

Expected<std::string> hfTokenizerJson(const Tokenizer &tok) {
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(tok.serialized()).ok())
    return Status::invalid("tokenizer: not a SentencePiece model");
  // The export is exact only for the settings the runtime trains with (Tokenizer.cpp);
  // check them by behaviour, since the model proto's header is not installed.
  // NFKC would turn U+FB01 into "fi", remove_extra_whitespaces would drop spaces, and a
  // dummy prefix shows as a leading "▁" piece.
  const std::string probe = "  a\tb \xEF\xAC\x81  ";
  std::vector<int> probeIds;
  sp.Encode(probe, &probeIds).IgnoreError();
  std::string back, pieces;
  sp.Decode(probeIds, &back).IgnoreError();
  std::vector<std::string> abPieces;
  sp.Encode("ab", &abPieces).IgnoreError();
  for (const std::string &p : abPieces)
    pieces += p;
  if (back != probe || pieces.rfind("\xE2\x96\x81", 0) == 0 || sp.unk_id() != 0 || sp.bos_id() >= 0 || sp.eos_id() >= 0)
    return Status::invalid("tokenizer: only SentencePiece models with identity normalisation, "
                           "no dummy prefix, no BOS/EOS and <unk> = 0 can be exported");
  const int n = sp.GetPieceSize();
  json vocab = json::object();
  std::map<std::string, int> normal; // normal pieces: the only ones BPE merges produce or use
  for (int id = 0; id < n; ++id) {
    std::string piece = sp.IdToPiece(id);
    vocab[piece] = id;
    if (!sp.IsUnknown(id) && !sp.IsControl(id) && !sp.IsByte(id) && !sp.IsUnused(id))
      normal.emplace(piece, id);
    else if (!sp.IsUnknown(id) && !sp.IsByte(id))
      return Status::invalid(fmt::format("tokenizer: piece {} '{}' is a control or unused "
                                         "piece, which the export does not handle", id, piece));
  }
  // Every split of a normal piece into two normal pieces, best score first (ties: lower id,
  // then left piece id). The ranks of one piece's splits are adjacent, and a piece always
  // scores below its parts, so the lowest-rank-first merge order equals SentencePiece's.
  struct Merge {
    float score;
    int id, left;
    std::string a, b;
  };
  std::vector<Merge> merges;
  for (const auto &[piece, id] : normal) {
    // Split at UTF-8 character boundaries only.
    for (size_t cut = 1; cut < piece.size(); ++cut) {
      if ((static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80)
        continue;
      auto l = normal.find(piece.substr(0, cut)), r = normal.find(piece.substr(cut));
      if (l != normal.end() && r != normal.end())
        merges.push_back({sp.GetScore(id), id, l->second, l->first, r->first});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge &x, const Merge &y) {
    if (x.score != y.score)
      return x.score > y.score;
    if (x.id != y.id)
      return x.id < y.id;
    return x.left < y.left;
  });
  json mergeList = json::array();
  for (const Merge &m : merges)
    mergeList.push_back({m.a, m.b});

  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  // <unk> is not listed as an added token: SentencePiece encodes the text "<unk>" as
  // ordinary characters, and an added token would be cut out of the input first.
  j["added_tokens"] = json::array();
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}}}}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", sp.IdToPiece(sp.unk_id())},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", true},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", mergeList}};
  return j.dump(1) + "\n";
}

Status writeHuggingFaceFolder(const LlamaConfig &config, const std::vector<Tensor> &llmpTensors,
                              const std::string &tokPath, const std::string &outDir,
                              const std::string &source) {
  auto hf = toHfTensors(llmpTensors, config);
  if (!hf)
    return hf.status().withContext(source);
  auto tok = Tokenizer::load(tokPath);
  if (!tok)
    return tok.status();
  if (tok->vocabSize() != config.vocab)
    return Status::invalid(fmt::format("'{}' has {} pieces but the model's vocabulary is {}",
                                       tokPath, tok->vocabSize(), config.vocab));
  auto tokJson = hfTokenizerJson(*tok);
  if (!tokJson)
    return tokJson.status().withContext(tokPath);
  json tokConfig = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                    {"model_max_length", config.context},
                    {"clean_up_tokenization_spaces", false},
                    {"add_bos_token", false},
                    {"add_eos_token", false},
                    {"added_tokens_decoder", json::object()}};
  if (Status st = makeDirs(outDir); !st)
    return st;
  if (Status st = writeFileAtomic(outDir + "/config.json", hfConfigJson(config)); !st)
    return st;
  if (Status st = writeSafetensors(outDir + "/model.safetensors", refsOf(*hf), {{"format", "pt"}});
      !st)
    return st;
  if (Status st = writeFileAtomic(outDir + "/tokenizer.json", *tokJson); !st)
    return st;
  if (Status st = writeFileAtomic(outDir + "/tokenizer_config.json", tokConfig.dump(2) + "\n"); !st)
    return st;
  return tok->save(outDir + "/tokenizer.model");
}

std::string runTokenizerPath(const std::string &runDir) {
  std::string tokPath = runDir + "/checkpoint/tokenizer.model";
  return exists(tokPath) ? tokPath : runDir + "/tokenizer.model";
}

Status exportHuggingFace(const LlamaConfig &config, const std::string &runDir,
                         const std::string &outDir) {
  std::string modelPath = runDir + "/checkpoint/model.safetensors";
  auto model = readSafetensors(modelPath);
  if (!model)
    return model.status();
  return writeHuggingFaceFolder(config, model->tensors, runTokenizerPath(runDir), outDir,
                                modelPath);
}

Status importHuggingFace(const std::string &hfDir, const std::string &runDir) {
  auto configJson = readJson(hfDir + "/config.json");
  if (!configJson)
    return configJson.status();
  auto config = parseHfConfigJson(configJson->dump());
  if (!config)
    return config.status().withContext(hfDir);
  std::string modelPath = hfDir + "/model.safetensors";
  if (!exists(modelPath) && exists(hfDir + "/model.safetensors.index.json"))
    return Status::invalid(fmt::format("'{}' holds a sharded checkpoint "
                                       "(model.safetensors.index.json); only a single "
                                       "model.safetensors is supported", hfDir));
  auto model = readSafetensors(modelPath);
  if (!model)
    return model.status();
  // A tied lm_head saved anyway (some exporters do) must equal the embedding; drop it.
  std::vector<Tensor> tensors;
  const Tensor *embed = model->find("model.embed_tokens.weight");
  for (const Tensor &t : model->tensors) {
    if (t.name == "lm_head.weight" && embed && t.shape == embed->shape && t.bytes == embed->bytes)
      continue;
    tensors.push_back(t);
  }
  auto llmp = fromHfTensors(tensors, *config);
  if (!llmp)
    return llmp.status().withContext(modelPath);
  std::optional<Tokenizer> tok;
  if (exists(hfDir + "/tokenizer.model")) {
    auto loaded = Tokenizer::load(hfDir + "/tokenizer.model");
    if (!loaded)
      return loaded.status();
    if (loaded->vocabSize() != config->vocab)
      return Status::invalid(fmt::format("'{}/tokenizer.model' has {} pieces but vocab_size is {}",
                                         hfDir, loaded->vocabSize(), config->vocab));
    tok = loaded.take();
  }
  std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {"source", "huggingface"},
      {"family", "llama"},
      {"vocab", std::to_string(config->vocab)},
      {"context", std::to_string(config->context)},
      {"dim", std::to_string(config->dim)},
      {"layers", std::to_string(config->layers)},
      {"heads", std::to_string(config->heads)},
      {"kv_heads", std::to_string(kvHeadsOf(*config))},
      {"hidden", std::to_string(config->hidden)},
      {"eps", fmt::format("{}", config->eps)},
      {"theta", fmt::format("{}", config->theta)}};
  if (Status st = makeDirs(runDir + "/checkpoint"); !st)
    return st;
  auto bytes = serializeSafetensors(refsOf(*llmp), meta);
  if (!bytes)
    return bytes.status();
  if (Status st = writeFileDurable(runDir + "/checkpoint/model.safetensors", *bytes); !st)
    return st;
  if (tok) {
    if (Status st = tok->save(runDir + "/checkpoint/tokenizer.model"); !st)
      return st;
    if (Status st = tok->save(runDir + "/tokenizer.model"); !st)
      return st;
  }
  return Status::ok();
}

} // namespace lrt
