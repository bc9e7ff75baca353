// GGUF header parsing (see gguf_header.h). Every read is bounds-checked against the bytes given and
// every count against what the remaining bytes could hold, so no input allocates absurdly or reads
// out of range.
#include "sbtrec/common/gguf_header.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "sbtrec/common/error.h"

namespace sbtrec::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr uint64_t kMaxNameBytes = 1024; // ggml allows 64; be generous, but not unbounded

const TensorTypeTraits kTypes[] = {
    // name, block elements, block bytes, dequantizable; indexed by searching `ids` below
    {"F32", 1, 4, true},      {"F16", 1, 2, true},        {"Q4_0", 32, 18, true},   {"Q4_1", 32, 20, true},
    {"Q5_0", 32, 22, true},   {"Q5_1", 32, 24, true},     {"Q8_0", 32, 34, true},   {"Q8_1", 32, 36, false},
    {"Q2_K", 256, 84, false}, {"Q3_K", 256, 110, false},  {"Q4_K", 256, 144, true}, {"Q5_K", 256, 176, true},
    {"Q6_K", 256, 210, true}, {"Q8_K", 256, 292, false},  {"I8", 1, 1, false},      {"I16", 1, 2, false},
    {"I32", 1, 4, false},     {"I64", 1, 8, false},       {"F64", 1, 8, false},     {"BF16", 1, 2, true},
};
const uint32_t kTypeIds[] = {0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 30};

// Sequential little-endian reader over [p, end) that throws instead of reading past the end.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& source) : begin_(p), p_(p), end_(p + n), source_(source) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointError("GGUF file '" + source_ + "': " + what + " (at byte " + std::to_string(pos()) + ")");
  }
  size_t pos() const { return (size_t)(p_ - begin_); }
  size_t left() const { return (size_t)(end_ - p_); }
  template <class T>
  T read(const char* what) {
    if (left() < sizeof(T)) fail(std::string("truncated while reading ") + what);
    T v;
    std::memcpy(&v, p_, sizeof(T));  // x86 and ARM hosts are little-endian, as the format
    p_ += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > left()) fail(std::string(what) + " claims " + std::to_string(n) + " bytes but only " + std::to_string(left()) + " remain (truncated or corrupt file)");
    std::string s((const char*)p_, (size_t)n);
    p_ += n;
    return s;
  }
  // A count of items that each take at least `min_bytes`: larger than the rest of the file could hold
  // means a corrupt file, caught before anything is allocated.
  uint64_t count(const char* what, uint64_t min_bytes) {
    const uint64_t n = read<uint64_t>(what);
    if (min_bytes > 0 && n > left() / min_bytes)
      fail(std::string(what) + " " + std::to_string(n) + " is absurd: the rest of the file holds at most " +
           std::to_string(left() / min_bytes) + " (truncated or corrupt file)");
    return n;
  }

 private:
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& source_;
};

uint64_t scalar_bytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: return 8;  // at least the length
    case ValueType::kArray: return 12;  // at least element type + count
  }
  return 0;
}

bool known(uint32_t t) { return t <= (uint32_t)ValueType::kFloat64; }

// Reads one scalar of type t into v (integers, floats, bools, strings).
void read_scalar(Reader& r, ValueType t, Value& v, const std::string& key) {
  switch (t) {
    case ValueType::kUint8: v.integer = r.read<uint8_t>("a uint8"); break;
    case ValueType::kInt8: v.integer = r.read<int8_t>("an int8"); break;
    case ValueType::kUint16: v.integer = r.read<uint16_t>("a uint16"); break;
    case ValueType::kInt16: v.integer = r.read<int16_t>("an int16"); break;
    case ValueType::kUint32: v.integer = r.read<uint32_t>("a uint32"); break;
    case ValueType::kInt32: v.integer = r.read<int32_t>("an int32"); break;
    case ValueType::kUint64: v.integer = (int64_t)r.read<uint64_t>("a uint64"); break;
    case ValueType::kInt64: v.integer = r.read<int64_t>("an int64"); break;
    case ValueType::kFloat32: v.real = r.read<float>("a float32"); break;
    case ValueType::kFloat64: v.real = r.read<double>("a float64"); break;
    case ValueType::kBool: {
      const uint8_t b = r.read<uint8_t>("a bool");
      if (b > 1) r.fail("metadata '" + key + "': bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.integer = b;
      break;
    }
    case ValueType::kString: v.text = r.string("a string length"); break;
    case ValueType::kArray: break;  // handled by read_value
  }
}

void read_value(Reader& r, ValueType t, Value& v, const std::string& key, int depth) {
  v.type = t;
  if (t != ValueType::kArray) return read_scalar(r, t, v, key);
  if (depth >= kMaxArrayDepth) r.fail("metadata '" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  const uint32_t et = r.read<uint32_t>("an array element type");
  if (!known(et)) r.fail("metadata '" + key + "': unknown array element type " + std::to_string(et));
  v.array_type = (ValueType)et;
  const uint64_t n = r.count("array length", scalar_bytes(v.array_type));
  Value item;
  for (uint64_t i = 0; i < n; ++i) {
    if (v.array_type == ValueType::kArray) {
      v.items.emplace_back();
      read_value(r, v.array_type, v.items.back(), key, depth + 1);
      continue;
    }
    read_scalar(r, v.array_type, item, key);
    if (v.array_type == ValueType::kString) v.strings.push_back(std::move(item.text));
    else if (v.array_type == ValueType::kFloat32 || v.array_type == ValueType::kFloat64) v.reals.push_back(item.real);
    else v.integers.push_back(item.integer);
  }
}

[[noreturn]] void key_error(const Header& h, const std::string& key, const std::string& what) {
  throw CheckpointError("GGUF file '" + h.source + "': metadata '" + key + "' " + what);
}

const Value& require(const Header& h, const std::string& key) {
  const Value* v = h.find(key);
  if (!v) key_error(h, key, "is missing (a GGUF file of this architecture has it; was it converted by llama.cpp?)");
  return *v;
}

}  // namespace

const char* value_type_name(ValueType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool", "string", "array", "uint64", "int64", "float64"};
  return known((uint32_t)t) ? names[(uint32_t)t] : "unknown";
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kUint16: case ValueType::kInt16:
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kUint64: case ValueType::kInt64: return true;
    default: return false;
  }
}

size_t Value::size() const {
  if (type != ValueType::kArray) return 0;
  return integers.size() + reals.size() + strings.size() + items.size();
}

std::string Value::describe() const {
  if (type == ValueType::kArray) return std::string("array of ") + std::to_string(size()) + " " + value_type_name(array_type);
  if (type == ValueType::kString) return "string \"" + text.substr(0, 40) + (text.size() > 40 ? "...\"" : "\"");
  if (is_float()) return std::string(value_type_name(type)) + " " + std::to_string(real);
  return std::string(value_type_name(type)) + " " + std::to_string(integer);
}

const TensorTypeTraits* tensor_type_traits(uint32_t type) {
  for (size_t i = 0; i < sizeof(kTypeIds) / sizeof(kTypeIds[0]); ++i)
    if (kTypeIds[i] == type) return &kTypes[i];
  return nullptr;
}

std::string dequantizable_type_names() {
  std::string out;
  for (const auto& t : kTypes)
    if (t.dequantizable) out += (out.empty() ? "" : " ") + std::string(t.name);
  return out;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

const Value* Header::find(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

const TensorInfo* Header::find_tensor(const std::string& name) const {
  auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

int64_t Header::get_int(const std::string& key) const {
  const Value& v = require(*this, key);
  if (!v.is_integer()) key_error(*this, key, "must be an integer, found " + v.describe());
  return v.integer;
}
double Header::get_float(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.is_float()) return v.real;
  if (v.is_integer()) return (double)v.integer;
  key_error(*this, key, "must be a number, found " + v.describe());
}
bool Header::get_bool(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::kBool) key_error(*this, key, "must be a bool, found " + v.describe());
  return v.integer != 0;
}
const std::string& Header::get_string(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::kString) key_error(*this, key, "must be a string, found " + v.describe());
  return v.text;
}
const std::vector<std::string>& Header::get_strings(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::kArray || v.array_type != ValueType::kString)
    key_error(*this, key, "must be an array of strings, found " + v.describe());
  return v.strings;
}
const std::vector<int64_t>& Header::get_ints(const std::string& key) const {
  const Value& v = require(*this, key);
  const bool ok = v.type == ValueType::kArray && v.array_type != ValueType::kArray && v.array_type != ValueType::kString &&
                  v.array_type != ValueType::kFloat32 && v.array_type != ValueType::kFloat64;
  if (!ok) key_error(*this, key, "must be an array of integers, found " + v.describe());
  return v.integers;
}
std::optional<int64_t> Header::find_int(const std::string& key) const {
  return find(key) ? std::optional<int64_t>(get_int(key)) : std::nullopt;
}
std::optional<double> Header::find_float(const std::string& key) const {
  return find(key) ? std::optional<double>(get_float(key)) : std::nullopt;
}
std::optional<bool> Header::find_bool(const std::string& key) const {
  return find(key) ? std::optional<bool>(get_bool(key)) : std::nullopt;
}
std::optional<std::string> Header::find_string(const std::string& key) const {
  return find(key) ? std::optional<std::string>(get_string(key)) : std::nullopt;
}

Header parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& source) {
  Reader r(bytes, (size_t)std::min<uint64_t>(available, file_size), source);
  Header h;
  h.source = source;
  if (r.left() < 4) r.fail("truncated: fewer than 4 bytes, not a GGUF file");
  const uint32_t magic = r.read<uint32_t>("the magic");
  if (magic != kMagic) r.fail("bad magic (the file does not start with \"GGUF\"): not a GGUF file");
  h.version = r.read<uint32_t>("the version");
  if (h.version == 0x02000000u || h.version == 0x03000000u)
    r.fail("big-endian GGUF files are not supported: convert the model on a little-endian machine");
  if (h.version == 1) r.fail("GGUF version 1 is not supported (it predates 64-bit counts): re-convert with a current llama.cpp");
  if (h.version != 2 && h.version != 3)
    r.fail("unknown GGUF version " + std::to_string(h.version) + " (supported: 2 and 3)");
  // Minimum sizes: a tensor info is a name length, n_dims, type and offset; a metadata entry is a
  // key length, a type and a one-byte value.
  const uint64_t n_tensors = r.count("tensor count", 8 + 4 + 4 + 8);
  const uint64_t n_kv = r.count("metadata count", 8 + 4 + 1);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string("a metadata key length");
    if (key.empty()) r.fail("metadata entry " + std::to_string(i) + " has an empty key");
    if (h.metadata.count(key)) r.fail("metadata key '" + key + "' appears twice");
    const uint32_t t = r.read<uint32_t>("a metadata value type");
    if (!known(t)) r.fail("metadata '" + key + "': unknown value type " + std::to_string(t));
    Value v;
    read_value(r, (ValueType)t, v, key, 0);
    h.metadata.emplace(std::move(key), std::move(v));
  }
  if (const Value* a = h.find("general.alignment")) {
    if (a->type != ValueType::kUint32) r.fail("metadata 'general.alignment' must be a uint32, found " + a->describe());
    const uint64_t al = (uint64_t)a->integer;
    if (al == 0 || (al & (al - 1)) != 0) r.fail("general.alignment " + std::to_string(al) + " is not a power of two");
    h.alignment = al;
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo info;
    info.name = r.string("a tensor name length");
    const std::string where = "tensor '" + info.name.substr(0, 80) + "': ";
    if (info.name.empty()) r.fail("tensor " + std::to_string(i) + " has an empty name");
    if (info.name.size() > kMaxNameBytes) r.fail("tensor " + std::to_string(i) + " has a " + std::to_string(info.name.size()) + "-byte name");
    if (h.tensor_index.count(info.name)) r.fail(where + "appears twice");
    const uint32_t n_dims = r.read<uint32_t>("a tensor's dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) r.fail(where + std::to_string(n_dims) + " dimensions (supported: 1 to 4)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = r.read<uint64_t>("a tensor dimension");
      if (n == 0 || n > (1ull << 40) || numel > (1ull << 50) / n) r.fail(where + "dimension " + std::to_string(n) + " is empty or too large");
      numel *= n;
      info.ne.push_back((int64_t)n);
    }
    info.shape.assign(info.ne.rbegin(), info.ne.rend());
    const uint32_t type = r.read<uint32_t>("a tensor type");
    const TensorTypeTraits* tt = tensor_type_traits(type);
    if (!tt) r.fail(where + "unknown tensor type " + std::to_string(type) + " (sbtrec reads " + dequantizable_type_names() + ")");
    info.type = (TensorType)type;
    if (info.ne[0] % tt->block_elements != 0)
      r.fail(where + "row length " + std::to_string(info.ne[0]) + " is not a whole number of " + tt->name + " blocks (" +
             std::to_string(tt->block_elements) + ")");
    info.bytes = numel / (uint64_t)tt->block_elements * (uint64_t)tt->block_bytes;
    info.offset = r.read<uint64_t>("a tensor offset");
    if (info.offset % h.alignment != 0)
      r.fail(where + "offset " + std::to_string(info.offset) + " is not a multiple of the alignment " + std::to_string(h.alignment));
    h.tensor_index.emplace(info.name, h.tensors.size());
    h.tensors.push_back(std::move(info));
  }

  const uint64_t end_of_infos = r.pos();
  h.data_start = (end_of_infos + h.alignment - 1) / h.alignment * h.alignment;
  if (!h.tensors.empty() && h.data_start > file_size)
    r.fail("truncated: the data section would start at byte " + std::to_string(h.data_start) + " but the file has " +
           std::to_string(file_size));
  const uint64_t data_size = file_size > h.data_start ? file_size - h.data_start : 0;
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : h.tensors) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      throw CheckpointError("GGUF file '" + source + "': tensor '" + t.name + "' needs bytes [" + std::to_string(t.offset) + ", " +
                            std::to_string(t.offset + t.bytes) + ") of the data section but it has " + std::to_string(data_size) +
                            " bytes: the file is truncated or corrupt");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
      throw CheckpointError("GGUF file '" + source + "': tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                            "' overlap in the data section: the file is corrupt");
  return h;
}

}  // namespace sbtrec::gguf
