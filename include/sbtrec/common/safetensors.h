// safetensors reader and writer (format: 8-byte little-endian header length, JSON header mapping
// tensor names to {dtype, shape, data_offsets} plus optional "__metadata__", then the raw bytes).
// The header is validated before any tensor is touched, so a corrupt file is an error, never a crash.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sbtrec::safetensors {

struct TensorInfo {
  std::string dtype;            // "F32", "F16", "BF16", "I64", "I32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
};

struct Header {
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;      // absolute offset of the data section in the file
};

// Parses and validates the header from the file's first bytes. `file_size` is the whole file's size.
// Throws CheckpointError naming `source` on: truncated input, absurd header length, invalid JSON,
// unknown dtype, negative/overflowing shapes, offsets that do not match the shape, fall outside the
// file or overlap.
Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& source);

// Loads every tensor of a file (CPU, converted to `dtype` if given for floating tensors).
std::map<std::string, torch::Tensor> load(const std::string& path,
                                          std::optional<torch::ScalarType> float_dtype = std::nullopt,
                                          std::map<std::string, std::string>* metadata = nullptr);

// Writes tensors (made contiguous, CPU) atomically, in sorted name order.
void save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

}  // namespace sbtrec::safetensors
