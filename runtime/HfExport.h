// SPDX-License-Identifier: Apache-2.0
/// Hugging Face interop for the stdlib `llama` family: export a trained run as a folder that
/// `transformers` loads as `LlamaForCausalLM` (config.json, model.safetensors with HF tensor
/// names, tokenizer.json + tokenizer_config.json + tokenizer.model), and import such a
/// folder back to an llmp checkpoint. llmp stores a linear layer as W[in, out] for `x @ W`,
/// Hugging Face's nn.Linear as W[out, in], so projection matrices are transposed both ways;
/// embeddings and norm weights are copied. A round trip is bitwise. See docs/runtime.md
/// ("Export to Hugging Face").
#pragma once

#include "runtime/Safetensors.h"
#include "runtime/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lrt {

class Tokenizer;

/// The hyper-parameters of a stdlib `llama` model, which are those of HF's LlamaConfig
/// (no biases, tied output embedding, SiLU, default RoPE). `kvHeads` < `heads` is
/// grouped-query attention (HF `num_key_value_heads`); 0 means `heads`.
struct LlamaConfig {
  int64_t vocab = 0, dim = 0, layers = 0, heads = 0, hidden = 0, context = 0, kvHeads = 0;
  double eps = 1e-5, theta = 10000.0;
};

/// Where one llmp parameter goes in a Hugging Face checkpoint.
struct HfName {
  std::string name;        ///< the other side's tensor name
  bool transposed = false; ///< a linear weight: [in, out] <-> [out, in]
};

/// The HF name of an llmp llama parameter: `embed` -> `model.embed_tokens.weight`,
/// `layers.N.wq` -> `model.layers.N.self_attn.q_proj.weight` (transposed), ... ,
/// `final_norm` -> `model.norm.weight`. Errors: InvalidArgument naming the parameter when
/// it is not one of the llama family's.
Expected<HfName> hfNameOf(const std::string &llmpName);

/// The inverse of hfNameOf. Errors: InvalidArgument for other names (e.g. an untied
/// `lm_head.weight` or attention biases, which the llama family does not have).
Expected<HfName> llmpNameOf(const std::string &hfName);

/// The llmp parameter names of a llama model with `layers` blocks, in the order of the
/// family's flat parameter buffer.
std::vector<std::string> llamaParamNames(int64_t layers);

/// A row-major 2-D tensor transposed ([r, c] -> [c, r], any dtype, same name).
/// Errors: InvalidArgument unless the tensor has rank 2 and matching byte size.
Expected<Tensor> transposed(const Tensor &t);

/// Renames (and transposes) llmp checkpoint tensors to HF tensors, after checking that
/// every llama parameter of `config` is present with its shape and nothing else is.
/// Errors: InvalidArgument naming the missing, unexpected or misshapen tensor.
Expected<std::vector<Tensor>> toHfTensors(const std::vector<Tensor> &llmp, const LlamaConfig &config);

/// The inverse: HF tensors to llmp tensors in llamaParamNames order (same checks).
Expected<std::vector<Tensor>> fromHfTensors(const std::vector<Tensor> &hf, const LlamaConfig &config);

/// config.json of a `LlamaForCausalLM` with `config` (float32, tied embeddings, no BOS/EOS).
std::string hfConfigJson(const LlamaConfig &config);

/// Reads a config.json written by hfConfigJson or by transformers. Errors: InvalidArgument
/// when it is not a llama model llmp can represent (model_type, untied embeddings, a non-SiLU activation, biases, RoPE scaling, a head_dim other than
/// hidden_size / heads), naming the field.
Expected<LlamaConfig> parseHfConfigJson(const std::string &json);

/// The config of a model declared in a .llmp file: `family` must be "llama" and `args`
/// its evaluated arguments (vocab, dim, layers, heads, context, hidden, eps, theta, and
/// kv_heads when the family has it). Errors: InvalidArgument for another family, a
/// missing argument or heads that do not divide dim.
Expected<LlamaConfig> llamaConfigFromArgs(const std::string &family,
                                          const std::map<std::string, double> &args);

/// A tokenizer.json (Hugging Face `tokenizers`) that gives the same ids as `tok`, a
/// SentencePiece BPE model with byte fallback, identity normalisation and no dummy
/// prefix: normalizer " " -> "▁", no pre-tokenizer, a BPE model with byte_fallback whose
/// vocabulary is the SentencePiece pieces and whose merges are every split of a piece into
/// two pieces, ranked by the merged piece's score (SentencePiece merges the adjacent pair
/// whose concatenation scores highest, leftmost first; so does BPE with these ranks).
/// Errors: InvalidArgument if the model is not of that kind.
Expected<std::string> hfTokenizerJson(const Tokenizer &tok);

/// Writes `outDir` (created) for the model `config` trained in the run directory `runDir`:
/// config.json, model.safetensors (from `<runDir>/checkpoint/model.safetensors`),
/// tokenizer.json, tokenizer_config.json and tokenizer.model (from
/// `<runDir>/checkpoint/tokenizer.model`). Errors: NotFound for a missing input file, and
/// the errors above.
Status exportHuggingFace(const LlamaConfig &config, const std::string &runDir,
                         const std::string &outDir);

/// Writes the folder of exportHuggingFace from llmp tensors in memory (`llmpTensors`, every
/// llama parameter of `config`, F32) and the SentencePiece model at `tokenizerPath`;
/// `source` names where the tensors came from in errors. Used by exportHuggingFace and by
/// the merged export of a LoRA stage (runtime/PeftExport.h). Errors: as exportHuggingFace.
Status writeHuggingFaceFolder(const LlamaConfig &config, const std::vector<Tensor> &llmpTensors,
                              const std::string &tokenizerPath, const std::string &outDir,
                              const std::string &source);

/// The tokenizer of a run directory: `<runDir>/checkpoint/tokenizer.model` when it exists,
/// else `<runDir>/tokenizer.model` (existence not checked).
std::string runTokenizerPath(const std::string &runDir);

/// Reads a Hugging Face llama folder (`config.json`, one `model.safetensors` in F32,
/// optionally `tokenizer.model`) and writes `<runDir>/checkpoint/model.safetensors` with
/// llmp names (metadata: source=huggingface and the hyper-parameters) and, when present,
/// the tokenizer as `<runDir>/tokenizer.model` and `<runDir>/checkpoint/tokenizer.model`.
/// Errors: NotFound, InvalidArgument (another architecture, a sharded or non-F32
/// checkpoint, a tokenizer whose size is not the config's vocab_size), IoError.
Status importHuggingFace(const std::string &hfDir, const std::string &runDir);

} // namespace lrt
