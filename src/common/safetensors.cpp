// safetensors reader/writer (see safetensors.h).
#include "sbtrec/common/safetensors.h"

#include <nlohmann/json.hpp>


#include <cstring>
#include <fstream>
#include <limits>

#include "sbtrec/common/dtype.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"

namespace sbtrec::safetensors {
namespace {

// parse_header accepts only the table's codes, so a parsed header's dtype always maps.
torch::ScalarType scalar_type_of(const TensorInfo& info) { return *dtype_from_safetensors(info.dtype); }

}  // namespace

std::map<std::string, torch::Tensor> load(const std::string& path, std::optional<torch::ScalarType> float_dtype,
                                          std::map<std::string, std::string>* metadata) {
  const std::string bytes = read_file(path);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  Header h = parse_header(p, bytes.size(), bytes.size(), path);
  if (metadata) *metadata = h.metadata;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : h.tensors) {
    auto t = torch::empty(info.shape, torch::TensorOptions().dtype(scalar_type_of(info)));
    if (info.end > info.begin) std::memcpy(t.data_ptr(), p + h.data_start + info.begin, info.end - info.begin);
    if (float_dtype && t.is_floating_point()) t = t.to(*float_dtype);
    out.emplace(name, t);
  }
  return out;
}

File::File(const std::string& path)
    : path_(path), map_(path, "safetensors file"), header_(parse_header(map_.data(), map_.size(), map_.size(), path)) {}

std::vector<std::string> File::names() const {
  std::vector<std::string> out;
  for (const auto& kv : header_.tensors) out.push_back(kv.first);
  return out;
}

torch::Tensor File::get(const std::string& name, std::optional<torch::ScalarType> dtype, const torch::Device& device) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) throw CheckpointError("safetensors file '" + path_ + "': no tensor '" + name + "'");
  const auto& info = it->second;
  auto* data = const_cast<uint8_t*>(map_.data()) + header_.data_start + info.begin;
  // A view of the mapped bytes (never written: the mapping is private and read-only).
  auto view = torch::from_blob(data, info.shape, torch::TensorOptions().dtype(scalar_type_of(info)));
  const auto target = (dtype && view.is_floating_point()) ? *dtype : view.scalar_type();
  // .to() copies out of the mapping when dtype or device change; clone when neither does.
  auto out = view.to(device, target);
  return out.data_ptr() == view.data_ptr() ? out.clone() : out;
}

ShardedCheckpoint::ShardedCheckpoint(const std::string& dir) {
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (path_exists(index)) {
    source_ = index;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(index));
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(index + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw CheckpointError(index + ": needs a \"weight_map\" object mapping tensor names to shard files");
    std::map<std::string, size_t> file_index;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw CheckpointError(index + ": weight_map['" + it.key() + "'] must be a file name");
      const std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file == "..")
        throw CheckpointError(index + ": shard name '" + file + "' must be a plain file name in " + dir);
      auto f = file_index.find(file);
      if (f == file_index.end()) {
        files_.push_back(std::make_unique<File>(dir + "/" + file));
        f = file_index.emplace(file, files_.size() - 1).first;
      }
      if (!files_[f->second]->contains(it.key()))
        throw CheckpointError(index + ": says '" + it.key() + "' is in " + file + ", which does not hold it");
      where_[it.key()] = f->second;
    }
  } else if (path_exists(single)) {
    source_ = single;
    files_.push_back(std::make_unique<File>(single));
    for (const auto& name : files_[0]->names()) where_[name] = 0;
  } else if (path_exists(dir + "/pytorch_model.bin") || path_exists(dir + "/pytorch_model.bin.index.json")) {
    throw CheckpointError(dir + ": only pytorch_model.bin weights found; sbtrec reads safetensors. Convert once with "
                          "`python -c \"from transformers import AutoModelForCausalLM as M; "
                          "M.from_pretrained('" + dir + "').save_pretrained('<out>', safe_serialization=True)\"`");
  } else {
    throw CheckpointError(dir + ": no model.safetensors or model.safetensors.index.json");
  }
}

std::vector<std::string> ShardedCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

std::vector<int64_t> ShardedCheckpoint::shape(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw CheckpointError(source_ + ": no tensor '" + name + "'");
  return files_[it->second]->header().tensors.at(name).shape;
}

torch::Tensor ShardedCheckpoint::get(const std::string& name, std::optional<torch::ScalarType> dtype,
                                     const torch::Device& device) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw CheckpointError(source_ + ": no tensor '" + name + "'");
  return files_[it->second]->get(name, dtype, device);
}

void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> ordered;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = (uint64_t)t.numel() * t.element_size();
    header[name] = {{"dtype", safetensors_dtype(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    ordered.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes, as the reference writer does
  atomic_write(path, [&](std::ostream& out) {
    uint64_t n = h.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = (char)((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(h.data(), (std::streamsize)h.size());
    for (const auto& t : ordered) out.write((const char*)t.data_ptr(), (std::streamsize)(t.numel() * t.element_size()));
  });
}

}  // namespace sbtrec::safetensors
