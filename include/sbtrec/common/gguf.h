// GGUF checkpoints (llama.cpp's format): a memory-mapped file whose header is validated on open
// (gguf_header.h) and whose tensors are dequantized one at a time to the requested dtype and device.
// Block layouts of the quantized types follow ggml (ggml-common.h); each is tested against the
// `gguf` Python package's dequantization.
#pragma once
#include <torch/torch.h>

#include <string>

#include "sbtrec/common/fs.h"
#include "sbtrec/common/gguf_header.h"

namespace sbtrec::gguf {

// Dequantizes `n` elements (whole blocks) of `type` from `src` into `dst` as float32. Throws
// CheckpointError for a type that is not dequantizable (see dequantizable_type_names()).
void dequantize(TensorType type, const uint8_t* src, int64_t n, float* dst);

class File {
 public:
  explicit File(const std::string& path);  // throws CheckpointError naming the file
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const Header& header() const { return header_; }
  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return header_.find_tensor(name) != nullptr; }
  // A new tensor of PyTorch shape (GGUF ne reversed) holding `name` dequantized to `dtype` (default
  // float32) on `device`. Throws CheckpointError naming the file and tensor when it is absent or of a
  // type sbtrec cannot dequantize.
  torch::Tensor get(const std::string& name, torch::ScalarType dtype = torch::kFloat32,
                    const torch::Device& device = torch::kCPU) const;
  // The raw bytes of a tensor (for tests and tools).
  const uint8_t* data(const TensorInfo& info) const { return map_.data() + header_.data_start + info.offset; }

 private:
  std::string path_;
  MappedFile map_;
  Header header_;
};

// True when `path` is a regular file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace sbtrec::gguf
