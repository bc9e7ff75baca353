// safetensors reader and writer (format: 8-byte little-endian header length, JSON header mapping
// tensor names to {dtype, shape, data_offsets} plus optional "__metadata__", then the raw bytes).
// The header is validated before any tensor is touched, so a corrupt file is an error, never a crash.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sbtrec/common/fs.h"
#include "sbtrec/common/safetensors_header.h"

namespace sbtrec::safetensors {

// A memory-mapped safetensors file: the header is validated on open, tensors are materialised one
// at a time, converted to the requested dtype/device straight from the mapping (no second host copy
// of the file is ever made). The mapping lives as long as the File.
class File {
 public:
  explicit File(const std::string& path);
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const Header& header() const { return header_; }
  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return header_.tensors.count(name) > 0; }
  std::vector<std::string> names() const;
  // A new tensor holding `name` converted to `dtype` (floating tensors only; others keep theirs) on
  // `device`. Throws CheckpointError naming the file and key when absent.
  torch::Tensor get(const std::string& name, std::optional<torch::ScalarType> dtype = std::nullopt,
                    const torch::Device& device = torch::kCPU) const;

 private:
  std::string path_;
  MappedFile map_;
  Header header_;
};

// A checkpoint made of one file or of shards listed by <dir>/model.safetensors.index.json
// ({"weight_map": {tensor: file}}); tensors are read from whichever shard holds them.
class ShardedCheckpoint {
 public:
  // `dir` holding model.safetensors or model.safetensors.index.json (+ shards).
  explicit ShardedCheckpoint(const std::string& dir);
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) const;
  torch::Tensor get(const std::string& name, std::optional<torch::ScalarType> dtype = std::nullopt,
                    const torch::Device& device = torch::kCPU) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, size_t> where_;
};

// Loads every tensor of a file (CPU, converted to `dtype` if given for floating tensors).
std::map<std::string, torch::Tensor> load(const std::string& path,
                                          std::optional<torch::ScalarType> float_dtype = std::nullopt,
                                          std::map<std::string, std::string>* metadata = nullptr);

// Writes tensors (made contiguous, CPU) atomically, in sorted name order.
void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

}  // namespace sbtrec::safetensors
