// safetensors header parsing (see safetensors_header.h).
#include "sbtrec/common/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>

#include "sbtrec/common/dtype_table.h"
#include "sbtrec/common/error.h"

namespace sbtrec::safetensors {
namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit
}  // namespace

size_t dtype_size(const std::string& n) {
#define SBTREC_DTYPE_SIZE(st, code, name, others, bytes) \
  if (n == code) return bytes;
  SBTREC_DTYPES(SBTREC_DTYPE_SIZE)
#undef SBTREC_DTYPE_SIZE
  return 0;
}

Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& source) {
  auto fail = [&](const std::string& what) -> void {
    throw CheckpointError("safetensors file '" + source + "': " + what);
  };
  if (available < 8 || file_size < 8) fail("truncated: fewer than 8 bytes, no header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes) fail("header length " + std::to_string(n) + " is absurd (limit 100 MiB): not a safetensors file?");
  if (8 + n > file_size) fail("truncated: header says " + std::to_string(n) + " bytes but the file has " + std::to_string(file_size));
  if (8 + n > available) fail("internal: header not fully read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail("header must be a JSON object");
  Header h;
  h.data_start = 8 + n;
  const uint64_t data_size = file_size - h.data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__['" + m.key() + "'] must be a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(where + "entry needs dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) fail(where + "dtype must be a string");
    TensorInfo info;
    info.dtype = v["dtype"].get<std::string>();
    const size_t elem = dtype_size(info.dtype);
    if (!elem) fail(where + "unknown dtype '" + info.dtype + "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)");
    if (!v["shape"].is_array()) fail(where + "shape must be a list");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(where + "shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t)std::numeric_limits<int64_t>::max() || (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim / 8))
        fail(where + "shape is too large");
      numel *= dim;
      info.shape.push_back((int64_t)dim);
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(where + "data_offsets must be [begin, end] with non-negative integers");
    info.begin = off[0].get<uint64_t>();
    info.end = off[1].get<uint64_t>();
    if (info.begin > info.end) fail(where + "data_offsets begin > end");
    if (info.end > data_size)
      fail(where + "data_offsets end " + std::to_string(info.end) + " is past the data section (" +
           std::to_string(data_size) + " bytes): file truncated?");
    if (info.end - info.begin != numel * elem)
      fail(where + "byte range holds " + std::to_string(info.end - info.begin) + " bytes but shape and dtype need " +
           std::to_string(numel * elem));
    ranges.emplace_back(info.begin, info.end);
    h.tensors.emplace(name, std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) fail("tensor byte ranges overlap");
  return h;
}

}  // namespace sbtrec::safetensors
