// GGUF tensors dequantized to PyTorch (see gguf.h). Block layouts (ggml-common.h), per block of 32
// elements unless said: Q8_0 {f16 d; int8 q[32]} x = d*q; Q4_0 {f16 d; u8 qs[16]} x = d*(nibble-8),
// low nibbles first; Q4_1 {f16 d, m; u8 qs[16]} x = d*nibble + m; Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}
// 5-bit values with the fifth bits in qh, x = d*(q-16); Q5_1 as Q5_0 with m and no offset.
// K-quants work on super-blocks of 256: Q4_K/Q5_K carry 8 sub-blocks of 32 with 6-bit scales and mins
// packed into 12 bytes; Q6_K carries 16 sub-blocks of 16 with int8 scales.
#include "sbtrec/common/gguf.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>
#include <fstream>

#include "sbtrec/common/error.h"

namespace sbtrec::gguf {
namespace {

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

void q8_0(const uint8_t* b, float* y) {
  const float d = f16(b);
  const int8_t* q = (const int8_t*)(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = d * (float)q[j];
}

void q4_0(const uint8_t* b, float* y) {
  const float d = f16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)((qs[j] & 0x0F) - 8);
    y[j + 16] = d * (float)((qs[j] >> 4) - 8);
  }
}

void q4_1(const uint8_t* b, float* y) {
  const float d = f16(b), m = f16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)(qs[j] & 0x0F) + m;
    y[j + 16] = d * (float)(qs[j] >> 4) + m;
  }
}

// Q5_0 / Q5_1: element j takes its fifth bit from bit j of qh, element j+16 from bit j+16.
template <bool kWithMin>
void q5(const uint8_t* b, float* y) {
  const float d = f16(b), m = kWithMin ? f16(b + 2) : 0.f;
  const uint8_t* p = b + (kWithMin ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const uint8_t* qs = p + 4;
  for (int j = 0; j < 16; ++j) {
    const int hi0 = ((qh >> j) << 4) & 0x10, hi1 = (qh >> (j + 12)) & 0x10;
    const int v0 = (qs[j] & 0x0F) | hi0, v1 = (qs[j] >> 4) | hi1;
    if (kWithMin) {
      y[j] = d * (float)v0 + m;
      y[j + 16] = d * (float)v1 + m;
    } else {
      y[j] = d * (float)(v0 - 16);
      y[j + 16] = d * (float)(v1 - 16);
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K.
inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& mn) {
  if (j < 4) {
    sc = q[j] & 63;
    mn = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K: {f16 d, dmin; u8 scales[12]; u8 qs[128]}; Q5_K adds u8 qh[32] before qs.
template <bool kFiveBit>
void qk(const uint8_t* b, float* y) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + (kFiveBit ? 48 : 16);
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2) {
    int sc, mn;
    scale_min_k4(is, scales, sc, mn);
    const float d1 = d * (float)sc, m1 = dmin * (float)mn;
    scale_min_k4(is + 1, scales, sc, mn);
    const float d2 = d * (float)sc, m2 = dmin * (float)mn;
    for (int l = 0; l < 32; ++l) {
      const int hi = kFiveBit && (qh[l] & u1) ? 16 : 0;
      *y++ = d1 * (float)((ql[l] & 0x0F) + hi) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int hi = kFiveBit && (qh[l] & u2) ? 16 : 0;
      *y++ = d2 * (float)((ql[l] >> 4) + hi) - m2;
    }
    ql += 32;
    u1 <<= 2;
    u2 <<= 2;
  }
}

// Q6_K: {u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d}, two halves of 128 elements.
void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = (const int8_t*)(b + 192);
  const float d = f16(b + 208);
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = (int)((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = (int)((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * (float)sc[is] * (float)q1;
      y[l + 32] = d * (float)sc[is + 2] * (float)q2;
      y[l + 64] = d * (float)sc[is + 4] * (float)q3;
      y[l + 96] = d * (float)sc[is + 6] * (float)q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_fn(TensorType t) {
  switch (t) {
    case TensorType::kQ8_0: return q8_0;
    case TensorType::kQ4_0: return q4_0;
    case TensorType::kQ4_1: return q4_1;
    case TensorType::kQ5_0: return q5<false>;
    case TensorType::kQ5_1: return q5<true>;
    case TensorType::kQ4_K: return qk<false>;
    case TensorType::kQ5_K: return qk<true>;
    case TensorType::kQ6_K: return q6_k;
    default: return nullptr;
  }
}

}  // namespace

void dequantize(TensorType type, const uint8_t* src, int64_t n, float* dst) {
  const TensorTypeTraits* tt = tensor_type_traits((uint32_t)type);
  if (!tt || !tt->dequantizable)
    throw CheckpointError(std::string("GGUF tensor type ") + (tt ? tt->name : std::to_string((uint32_t)type)) +
                          " cannot be dequantized by sbtrec (supported: " + dequantizable_type_names() + ")");
  if (n % tt->block_elements != 0) throw CheckpointError("dequantize: element count is not a whole number of blocks");
  switch (type) {
    case TensorType::kF32: std::memcpy(dst, src, (size_t)n * 4); return;
    case TensorType::kF16:
      at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) dst[i] = f16(src + 2 * i);
      });
      return;
    case TensorType::kBF16:
      at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          uint16_t v;
          std::memcpy(&v, src + 2 * i, 2);
          dst[i] = c10::detail::f32_from_bits(v);
        }
      });
      return;
    default: break;
  }
  const BlockFn fn = block_fn(type);
  const int64_t blocks = n / tt->block_elements;
  at::parallel_for(0, blocks, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(src + i * tt->block_bytes, dst + i * tt->block_elements);
  });
}

File::File(const std::string& path) : path_(path), map_(path, "GGUF file"), header_(parse_header(map_.data(), map_.size(), map_.size(), path)) {}

torch::Tensor File::get(const std::string& name, torch::ScalarType dtype, const torch::Device& device) const {
  const TensorInfo* info = header_.find_tensor(name);
  if (!info) throw CheckpointError("GGUF file '" + path_ + "': no tensor '" + name + "'");
  const TensorTypeTraits* tt = tensor_type_traits((uint32_t)info->type);
  if (!tt->dequantizable)
    throw CheckpointError("GGUF file '" + path_ + "': tensor '" + name + "' is of type " + tt->name +
                          ", which sbtrec cannot dequantize (supported: " + dequantizable_type_names() + ")");
  const uint8_t* src = data(*info);
  if (info->type == TensorType::kF32 || info->type == TensorType::kF16 || info->type == TensorType::kBF16) {
    // A view of the mapped bytes (never written); .to() copies out of the mapping, clone when it would not.
    const auto st = info->type == TensorType::kF32 ? torch::kFloat32 : info->type == TensorType::kF16 ? torch::kFloat16 : torch::kBFloat16;
    auto view = torch::from_blob(const_cast<uint8_t*>(src), info->shape, torch::TensorOptions().dtype(st));
    auto out = view.to(device, dtype);
    return out.data_ptr() == view.data_ptr() ? out.clone() : out;
  }
  auto out = torch::empty(info->shape, torch::kFloat32);  // [shape] dequantized once, then converted
  dequantize(info->type, src, info->numel(), out.data_ptr<float>());
  return out.to(device, dtype);
}

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace sbtrec::gguf
