// GGUF header parsing (llama.cpp's checkpoint format, versions 2 and 3), kept free of LibTorch so the
// fuzzer (tests/fuzz) builds it alone. Layout, all little-endian: magic "GGUF", uint32 version,
// uint64 tensor count, uint64 metadata count; metadata as (string key, uint32 type, value); tensor
// infos as (string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml type, uint64 offset); then
// the data section, starting at the next multiple of `general.alignment` (default 32). Strings are
// a uint64 length and bytes. ne[0] is the fastest-varying dimension (the row length).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sbtrec::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
const char* value_type_name(ValueType t);

// One metadata value. Scalars: integers and bools in `integer` (uint64 values above INT64_MAX keep
// their bit pattern), floats in `real`, strings in `text`. Arrays: `array_type` and the elements in
// `integers`, `reals`, `strings` or (arrays of arrays) `items`, whichever the element type uses.
struct Value {
  ValueType type = ValueType::kUint8;
  ValueType array_type = ValueType::kUint8;
  int64_t integer = 0;
  double real = 0;
  std::string text;
  std::vector<int64_t> integers;
  std::vector<double> reals;
  std::vector<std::string> strings;
  std::vector<Value> items;

  bool is_integer() const;  // any integer type (not bool)
  bool is_float() const { return type == ValueType::kFloat32 || type == ValueType::kFloat64; }
  size_t size() const;      // element count of an array, 0 for scalars
  std::string describe() const;  // type and a short rendering, for messages
};

// ggml tensor types GGUF files use that sbtrec knows the block layout of (ids from ggml.h).
enum class TensorType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kBF16 = 30,
};
struct TensorTypeTraits {
  const char* name;
  int64_t block_elements;  // elements per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
  bool dequantizable;      // gguf::dequantize supports it
};
// nullptr when `type` is not one of TensorType's values.
const TensorTypeTraits* tensor_type_traits(uint32_t type);
// The names of the types gguf::dequantize supports, for messages ("F32 F16 BF16 Q8_0 ...").
std::string dequantizable_type_names();

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;     // GGUF order: ne[0] fastest
  std::vector<int64_t> shape;  // PyTorch order: ne reversed ([rows, row length] for a matrix)
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;         // relative to the data section
  uint64_t bytes = 0;
  int64_t numel() const;
};

struct Header {
  std::string source;          // the file, for messages
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_start = 0;     // absolute offset of the data section
  std::map<std::string, Value> metadata;
  std::vector<TensorInfo> tensors;  // file order
  std::map<std::string, size_t> tensor_index;

  const Value* find(const std::string& key) const;
  const TensorInfo* find_tensor(const std::string& name) const;
  // Typed access: a missing key or a value of another type is a CheckpointError naming the file and
  // key. The find_* forms return nullopt for a missing key (a wrong type is still an error).
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // any float or integer type
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  const std::vector<int64_t>& get_ints(const std::string& key) const;
  std::optional<int64_t> find_int(const std::string& key) const;
  std::optional<double> find_float(const std::string& key) const;
  std::optional<bool> find_bool(const std::string& key) const;
  std::optional<std::string> find_string(const std::string& key) const;
};

// Parses and validates the header from the file's first `available` bytes; `file_size` is the whole
// file's size. Throws CheckpointError naming `source` on: bad magic, a version other than 2 or 3, a
// big-endian file, truncation, counts or lengths larger than the file could hold, duplicate keys or
// tensor names, a bad alignment, unknown tensor types, shapes that are empty, negative, overflowing
// or not whole blocks, and tensor data outside the file, misaligned or overlapping.
Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& source);

}  // namespace sbtrec::gguf
