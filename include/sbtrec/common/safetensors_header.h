// safetensors header parsing, kept free of LibTorch so the fuzzer (tests/fuzz) builds it alone.
// Format: 8-byte little-endian header length N, then N bytes of JSON mapping tensor names to
// {dtype, shape, data_offsets} plus an optional "__metadata__" object of strings, then the data.
#pragma once
#include <cstddef>
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

// Bytes per element of a safetensors dtype name; 0 when unknown.
size_t dtype_size(const std::string& name);

// Parses and validates the header from the file's first bytes. `file_size` is the whole file's size.
// Throws CheckpointError naming `source` on: truncated input, absurd header length, invalid JSON,
// unknown dtype, negative/overflowing shapes, offsets that do not match the shape, fall outside the
// file or overlap.
Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& source);

}  // namespace sbtrec::safetensors
