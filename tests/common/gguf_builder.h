// Builds GGUF files byte by byte for the tests: valid files of any metadata and tensors, and the
// corrupt variants the reader must reject (the builder writes whatever it is told, consistent or not).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sbtrec/common/gguf_header.h"

namespace sbtrec::test {

class GgufBuilder {
 public:
  uint32_t magic = 0x46554747, version = 3;
  uint64_t alignment = 32;

  template <class T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void put_string(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
  }

  // Metadata entries, already encoded (type + value).
  void kv_raw(const std::string& key, uint32_t type, const std::string& value_bytes) {
    kvs_.push_back({key, type, value_bytes});
  }
  void kv_u32(const std::string& key, uint32_t v) { kv_num(key, gguf::ValueType::kUint32, v); }
  void kv_i32(const std::string& key, int32_t v) { kv_num(key, gguf::ValueType::kInt32, v); }
  void kv_u64(const std::string& key, uint64_t v) { kv_num(key, gguf::ValueType::kUint64, v); }
  void kv_f32(const std::string& key, float v) { kv_num(key, gguf::ValueType::kFloat32, v); }
  void kv_bool(const std::string& key, bool v) { kv_num(key, gguf::ValueType::kBool, (uint8_t)v); }
  void kv_str(const std::string& key, const std::string& v) {
    std::string b;
    put_string(b, v);
    kv_raw(key, (uint32_t)gguf::ValueType::kString, b);
  }
  void kv_strs(const std::string& key, const std::vector<std::string>& v) {
    std::string b;
    put<uint32_t>(b, (uint32_t)gguf::ValueType::kString);
    put<uint64_t>(b, v.size());
    for (const auto& s : v) put_string(b, s);
    kv_raw(key, (uint32_t)gguf::ValueType::kArray, b);
  }
  void kv_i32s(const std::string& key, const std::vector<int32_t>& v) {
    std::string b;
    put<uint32_t>(b, (uint32_t)gguf::ValueType::kInt32);
    put<uint64_t>(b, v.size());
    for (auto x : v) put<int32_t>(b, x);
    kv_raw(key, (uint32_t)gguf::ValueType::kArray, b);
  }

  // A tensor: GGUF dims (ne[0] fastest), type, raw data bytes; the offset is assigned at build time
  // unless `offset` is given (to build overlaps and out-of-range offsets).
  void tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, const std::string& data,
              int64_t offset = -1) {
    tensors_.push_back({name, ne, type, data, offset});
  }

  std::string build() const {
    std::string out;
    put<uint32_t>(out, magic);
    put<uint32_t>(out, version);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, kvs_.size());
    for (const auto& kv : kvs_) {
      put_string(out, kv.key);
      put<uint32_t>(out, kv.type);
      out += kv.bytes;
    }
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors_) {
      const uint64_t off = t.offset >= 0 ? (uint64_t)t.offset : next;
      offsets.push_back(off);
      if (t.offset < 0) next = (off + t.data.size() + alignment - 1) / alignment * alignment;
      put_string(out, t.name);
      put<uint32_t>(out, (uint32_t)t.ne.size());
      for (auto d : t.ne) put<uint64_t>(out, d);
      put<uint32_t>(out, t.type);
      put<uint64_t>(out, off);
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].offset >= 0) continue;  // hand-placed tensors carry no data of their own
      if (out.size() < data_start + offsets[i]) out.resize(data_start + offsets[i], '\0');
      out += tensors_[i].data;
    }
    return out;
  }

  template <class T>
  static std::string bytes_of(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }

 private:
  template <class T>
  void kv_num(const std::string& key, gguf::ValueType t, T v) {
    std::string b;
    put<T>(b, v);
    kv_raw(key, (uint32_t)t, b);
  }
  struct Kv {
    std::string key;
    uint32_t type;
    std::string bytes;
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    int64_t offset;
  };
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace sbtrec::test
