// SPDX-License-Identifier: Apache-2.0
/// Checkpoint folders: durable writes, the checksummed manifest, verification on read,
/// newest-valid selection and pruning.
#include "runtime/Checkpoint.h"

#include "runtime/FileUtil.h"
#include "runtime/Safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;

namespace lrt {
namespace {

constexpr const char *kFormat = "llmp-checkpoint/1";
constexpr const char *kManifest = "manifest.json";

std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

/// Writes `data` to `path` (created or truncated) and fsyncs it.
Status writeSynced(const std::string &path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::ioError(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return Status::ioError(fmt::format("cannot write '{}' ({} of {} bytes): {}", path, done,
                                         data.size(), std::strerror(err)));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return Status::ioError(fmt::format("cannot fsync '{}': {}", path, std::strerror(err)));
  }
  if (::close(fd) != 0)
    return Status::ioError(fmt::format("cannot close '{}': {}", path, std::strerror(errno)));
  return Status::ok();
}

/// fsync of a directory, so a rename inside it survives a power loss.
Status syncDir(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Status::ioError(fmt::format("cannot open directory '{}': {}", dir, std::strerror(errno)));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return Status::ioError(fmt::format("cannot fsync directory '{}': {}", dir, std::strerror(err)));
  return Status::ok();
}

std::string parentDir(const std::string &path) {
  std::string p = fs::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

/// The step of a `step-<digits>` name, or -1.
int64_t stepOfName(const std::string &name) {
  if (name.size() < 6 || name.compare(0, 5, "step-") != 0)
    return -1;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

Status removeAll(const std::string &path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec)
    return Status::ioError(fmt::format("cannot remove '{}': {}", path, ec.message()));
  return Status::ok();
}

/// The manifest's bytes: `body` with "manifest_crc32" (of body.dump() without it) last.
std::string sealManifest(nlohmann::ordered_json body) {
  std::string text = body.dump();
  body["manifest_crc32"] = crc32(text.data(), text.size());
  return body.dump(2) + "\n";
}

Status checkBuffer(const StagePlan &plan, const std::vector<float> &buf, const char *what) {
  if (int64_t(buf.size()) != plan.numParams)
    return Status::invalid(fmt::format("checkpoint: {} has {} values, expected numParams {}", what,
                                       buf.size(), plan.numParams));
  for (const ParamInfo &p : plan.params)
    if (!p.frozen && (p.offset < 0 || p.numel < 0 || p.offset + p.numel > plan.numParams))
      return Status::invalid(fmt::format("checkpoint: param '{}' (offset {}, numel {}) lies "
                                         "outside numParams {}",
                                         p.name, p.offset, p.numel, plan.numParams));
  return Status::ok();
}

std::vector<TensorRef> tensorsOf(const StagePlan &plan, const std::vector<float> &buf,
                                 const std::string &prefix) {
  std::vector<TensorRef> out;
  for (const ParamInfo &p : plan.params)
    if (!p.frozen) // the trainable buffers hold no frozen (LoRA base) params
      out.push_back({prefix + p.name, DType::F32, p.shape, buf.data() + p.offset});
  return out;
}

/// Copies the tensors `<prefix><name>` of `f` into `buf` at each trainable param's offset.
Status unpackParams(const StagePlan &plan, const SafetensorsFile &f, const std::string &prefix,
                    const std::string &file, std::vector<float> &buf) {
  buf.assign(size_t(plan.numParams), 0.0f);
  for (const ParamInfo &p : plan.params) {
    if (p.frozen)
      continue;
    const Tensor *t = f.find(prefix + p.name);
    if (!t)
      return Status::invalid(fmt::format("'{}': no tensor '{}'", file, prefix + p.name));
    if (t->dtype != DType::F32 || t->shape != p.shape || t->numel() != p.numel ||
        p.offset + p.numel > plan.numParams)
      return Status::invalid(fmt::format("'{}': tensor '{}' is {} [{}], the plan has F32 [{}]",
                                         file, prefix + p.name, dtypeName(t->dtype),
                                         fmt::join(t->shape, ", "), fmt::join(p.shape, ", ")));
    std::memcpy(buf.data() + p.offset, t->bytes.data(), size_t(p.numel) * sizeof(float));
  }
  return Status::ok();
}

/// Reads `dir/name`, checking its size and crc32 against the manifest entry.
Expected<SafetensorsFile> readVerified(const std::string &dir, const std::string &name,
                                       const nlohmann::json &files) {
  std::string path = dir + "/" + name;
  if (!files.contains(name))
    return Status::invalid(fmt::format("'{}/{}': not listed in the manifest", dir, kManifest));
  auto bytes = readFile(path);
  if (!bytes)
    return bytes.status();
  int64_t want = files[name].at("bytes").get<int64_t>();
  if (int64_t(bytes->size()) != want)
    return Status::invalid(fmt::format("'{}' is truncated or resized: {} bytes, the manifest says {}",
                                       path, bytes->size(), want));
  uint32_t crc = crc32(bytes->data(), bytes->size());
  uint32_t wantCrc = files[name].at("crc32").get<uint32_t>();
  if (crc != wantCrc)
    return Status::invalid(fmt::format("'{}' is corrupt: crc32 {:08x}, the manifest says {:08x}",
                                       path, crc, wantCrc));
  auto f = parseSafetensors(reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size());
  if (!f)
    return f.status().withContext(fmt::format("'{}'", path));
  return f;
}

} // namespace

uint32_t crc32(const void *data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = makeCrcTable();
  const auto *p = static_cast<const uint8_t *>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

Status writeFileDurable(const std::string &path, std::string_view data) {
  std::string tmp = path + ".tmp";
  if (Status st = writeSynced(tmp, data); !st) {
    std::remove(tmp.c_str());
    return st;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return Status::ioError(
        fmt::format("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err)));
  }
  return syncDir(parentDir(path));
}

std::string checkpointPath(const std::string &dir, int64_t step) {
  return fmt::format("{}/step-{:08d}", dir, step);
}

std::vector<int64_t> listCheckpoints(const std::string &dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    int64_t s = stepOfName(it->path().filename().string());
    if (s >= 0 && it->is_directory(ec))
      steps.push_back(s);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

Status writeCheckpoint(const std::string &dir, const StagePlan &plan, const TrainState &state,
                       int64_t keep, const std::map<std::string, std::string> &metadata) {
  try {
    if (Status st = makeDirs(dir); !st)
      return st;
    const std::string final = checkpointPath(dir, state.step);
    const std::string tmp = fmt::format("{}/.step-{:08d}.tmp", dir, state.step);
    if (Status st = removeAll(tmp); !st)
      return st;
    if (Status st = makeDirs(tmp); !st)
      return st;
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    // Each file is checked and serialised just before it is written, so a failure can come
    // after earlier files exist: the cleanup below is what keeps the write all-or-nothing.
    auto writeOne = [&](const std::string &name, const std::vector<TensorRef> &tensors,
                        const std::map<std::string, std::string> &meta) -> Status {
      auto bytes = serializeSafetensors(tensors, meta);
      if (!bytes)
        return bytes.status().withContext(name);
      if (Status st = writeSynced(tmp + "/" + name, *bytes); !st)
        return st;
      files[name] = {{"bytes", bytes->size()}, {"crc32", crc32(bytes->data(), bytes->size())}};
      return Status::ok();
    };
    auto body = [&]() -> Status {
      if (Status st = checkBuffer(plan, state.params, "params"); !st)
        return st;
      if (Status st = writeOne("model.safetensors", tensorsOf(plan, state.params, ""), metadata); !st)
        return st;
      if (Status st = checkBuffer(plan, state.m, "AdamW m"); !st)
        return st;
      if (Status st = checkBuffer(plan, state.v, "AdamW v"); !st)
        return st;
      std::vector<TensorRef> opt = tensorsOf(plan, state.m, "m.");
      std::vector<TensorRef> vs = tensorsOf(plan, state.v, "v.");
      opt.insert(opt.end(), vs.begin(), vs.end());
      if (Status st = writeOne("optimizer.safetensors", opt, {{"optimizer", "adamw"}}); !st)
        return st;
      if (Status st = writeOne("data.safetensors",
                               {{"order", DType::I64, {int64_t(state.data.order.size())},
                                 state.data.order.data()}},
                               {{"rng", state.data.rng},
                                {"cursor", std::to_string(state.data.cursor)},
                                {"epoch", std::to_string(state.data.epoch)}});
          !st)
        return st;
      nlohmann::ordered_json m = {
          {"format", kFormat},
          {"step", state.step},
          {"steps", state.steps},
          {"plan",
           {{"pipeline", plan.pipeline.empty() ? nlohmann::ordered_json(nullptr)
                                               : nlohmann::ordered_json(plan.pipeline)},
            {"stage", plan.stage},
            {"model", plan.model},
            {"seed", plan.seed},
            {"num_params", plan.numParams},
            {"batch", plan.batch},
            {"seq_len", plan.seqLen}}},
          {"data", {{"epoch", state.data.epoch}, {"cursor", state.data.cursor},
                    {"windows", state.data.order.size()}}},
          {"metrics", {{"bytes", state.metricsBytes}, {"crc32", state.metricsCrc}}},
          {"elapsed_s", state.elapsedSeconds},
          {"train_s", state.trainSeconds},
          {"first_loss", state.firstLoss},
          {"last_loss", state.lastLoss},
          {"first_val_loss", state.firstValLoss},
          {"last_val_loss", state.lastValLoss},
          {"files", files}};
      if (Status st = writeSynced(tmp + "/" + kManifest, sealManifest(m)); !st)
        return st;
      if (Status st = syncDir(tmp); !st)
        return st;
      // rename() cannot replace a non-empty folder; one of this step is stale (a resume
      // from an older checkpoint removes newer ones first, so this is rare).
      if (Status st = removeAll(final); !st)
        return st;
      if (std::rename(tmp.c_str(), final.c_str()) != 0)
        return Status::ioError(fmt::format("cannot rename '{}' to '{}': {}", tmp, final,
                                           std::strerror(errno)));
      return syncDir(dir);
    };
    if (Status st = body(); !st) {
      (void)removeAll(tmp);
      return st.withContext(fmt::format("checkpoint step {}", state.step));
    }
    return pruneCheckpoints(dir, keep);
  } catch (const std::exception &e) {
    return Status::internal(fmt::format("writeCheckpoint: {}", e.what()));
  }
}

Expected<TrainState> readCheckpoint(const std::string &path, const StagePlan &plan) {
  try {
    const std::string manifestPath = path + "/" + kManifest;
    auto text = readFile(manifestPath);
    if (!text)
      return text.status();
    nlohmann::ordered_json m = nlohmann::ordered_json::parse(*text, nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("manifest_crc32"))
      return Status::invalid(
          fmt::format("'{}' is not a complete manifest (truncated or corrupt JSON)", manifestPath));
    uint32_t want = m["manifest_crc32"].get<uint32_t>();
    m.erase("manifest_crc32");
    std::string body = m.dump();
    if (crc32(body.data(), body.size()) != want)
      return Status::invalid(fmt::format("'{}' is corrupt: its crc32 does not match", manifestPath));
    if (m.value("format", "") != kFormat)
      return Status::invalid(fmt::format("'{}': format '{}', expected '{}'", manifestPath,
                                         m.value("format", ""), kFormat));
    const auto &p = m.at("plan");
    auto mismatch = [&](const char *what, const std::string &ckpt, const std::string &now) {
      return Status::invalid(fmt::format("'{}' belongs to another plan: {} {} in the checkpoint, "
                                         "{} now",
                                         manifestPath, what, ckpt, now));
    };
    // A stage in no pipeline: null (older checkpoints: "").
    const std::string pipeline =
        p.at("pipeline").is_null() ? std::string() : p.at("pipeline").get<std::string>();
    if (pipeline != plan.pipeline || p.at("stage").get<std::string>() != plan.stage)
      return mismatch("stage", stageLabel(pipeline, p.at("stage").get<std::string>()),
                      stageLabel(plan.pipeline, plan.stage));
    if (p.at("seed").get<uint64_t>() != plan.seed)
      return mismatch("seed", p.at("seed").dump(), std::to_string(plan.seed));
    if (p.at("num_params").get<int64_t>() != plan.numParams)
      return mismatch("numParams", p.at("num_params").dump(), std::to_string(plan.numParams));
    if (p.at("batch").get<int64_t>() != plan.batch || p.at("seq_len").get<int64_t>() != plan.seqLen)
      return mismatch("batch", p.at("batch").dump() + " x " + p.at("seq_len").dump(),
                      fmt::format("{} x {}", plan.batch, plan.seqLen));

    TrainState s;
    s.step = m.at("step").get<int64_t>();
    s.steps = m.at("steps").get<int64_t>();
    s.metricsBytes = m.at("metrics").at("bytes").get<int64_t>();
    s.metricsCrc = m.at("metrics").at("crc32").get<uint32_t>();
    s.elapsedSeconds = m.at("elapsed_s").get<double>();
    s.trainSeconds = m.at("train_s").get<double>();
    s.firstLoss = m.at("first_loss").get<double>();
    s.lastLoss = m.at("last_loss").get<double>();
    s.firstValLoss = m.at("first_val_loss").get<double>();
    s.lastValLoss = m.at("last_val_loss").get<double>();
    nlohmann::json files = nlohmann::json::parse(m.at("files").dump());

    auto model = readVerified(path, "model.safetensors", files);
    if (!model)
      return model.status();
    if (Status st = unpackParams(plan, *model, "", path + "/model.safetensors", s.params); !st)
      return st;
    auto opt = readVerified(path, "optimizer.safetensors", files);
    if (!opt)
      return opt.status();
    if (Status st = unpackParams(plan, *opt, "m.", path + "/optimizer.safetensors", s.m); !st)
      return st;
    if (Status st = unpackParams(plan, *opt, "v.", path + "/optimizer.safetensors", s.v); !st)
      return st;
    auto data = readVerified(path, "data.safetensors", files);
    if (!data)
      return data.status();
    const Tensor *order = data->find("order");
    if (!order || order->dtype != DType::I64 || !data->metadata.count("rng") ||
        !data->metadata.count("cursor") || !data->metadata.count("epoch"))
      return Status::invalid(fmt::format("'{}/data.safetensors': expected I64 'order' and "
                                         "metadata rng, cursor, epoch",
                                         path));
    s.data.order = order->as<int64_t>();
    s.data.rng = data->metadata.at("rng");
    s.data.cursor = std::stoll(data->metadata.at("cursor"));
    s.data.epoch = std::stoll(data->metadata.at("epoch"));
    return s;
  } catch (const std::exception &e) {
    return Status::invalid(fmt::format("'{}/{}': malformed manifest: {}", path, kManifest, e.what()));
  }
}

Expected<LoadedCheckpoint> loadLatestCheckpoint(const std::string &dir, const StagePlan &plan) {
  std::vector<int64_t> steps = listCheckpoints(dir);
  if (steps.empty())
    return Status::error(StatusCode::NotFound, fmt::format("no checkpoint in '{}'", dir));
  LoadedCheckpoint out;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    std::string path = checkpointPath(dir, *it);
    auto s = readCheckpoint(path, plan);
    if (s) {
      out.state = s.take();
      out.path = path;
      return out;
    }
    out.rejected.push_back(s.status().message());
  }
  return Status::invalid(fmt::format("no valid checkpoint in '{}': {}", dir,
                                     fmt::join(out.rejected, "; ")));
}

Status pruneCheckpoints(const std::string &dir, int64_t keep) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.size() > 5 && name[0] == '.' && name.compare(0, 6, ".step-") == 0 &&
        name.compare(name.size() - 4, 4, ".tmp") == 0)
      if (Status st = removeAll(it->path().string()); !st)
        return st;
  }
  if (keep < 1)
    return Status::ok();
  std::vector<int64_t> steps = listCheckpoints(dir);
  for (size_t i = 0; i + size_t(keep) < steps.size(); ++i)
    if (Status st = removeAll(checkpointPath(dir, steps[i])); !st)
      return st;
  return Status::ok();
}

Status removeCheckpointsAfter(const std::string &dir, int64_t step) {
  for (int64_t s : listCheckpoints(dir))
    if (s > step)
      if (Status st = removeAll(checkpointPath(dir, s)); !st)
        return st;
  return Status::ok();
}

} // namespace lrt
