// Few-row linear layer over GGUF blocks (see PackedWeight in few_row_linear.h). Each block of 32
// weights is expanded in registers, to two 16-float vectors (AVX-512) or four 8-float vectors (AVX2 +
// FMA + F16C), the best the CPU has chosen at run time (a plain C++ path dequantizes a row at a time
// elsewhere), and multiplied into every row of x while it is there, so a block is read from memory
// once per decoding step. At 8 rows (a batch of 8 sequences) the multiply, not the memory, bounds a
// step: AVX-512 halves its instructions.
// Legend: M rows of x, I in features, O out features, NB = I / 32 blocks per row.
#include <ATen/Parallel.h>

#include <stdexcept>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "dot.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/nn/few_row_linear.h"

namespace sbtrec::nn {
namespace {

constexpr int64_t kBlock = 32;

int64_t block_bytes(gguf::TensorType t) { return gguf::tensor_type_traits((uint32_t)t)->block_bytes; }

// Plain C++: row o dequantized into a buffer by the checkpoint reader's own code, then dotted with
// every row of x. Any CPU; the reference the vector path is tested against.
void portable_rows(const float* x, const uint8_t* w, float* y, gguf::TensorType type, int64_t M, int64_t I,
                   int64_t O, int64_t o_begin, int64_t o_end) {
  const int64_t row_bytes = I / kBlock * block_bytes(type);
  std::vector<float> row(I);  // [I]
  for (int64_t o = o_begin; o < o_end; ++o) {
    gguf::dequantize(type, w + o * row_bytes, I, row.data());
    for (int64_t m = 0; m < M; ++m) y[m * O + o] = dot<32>(row.data(), x + m * I, I);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SBTREC_AVX2 __attribute__((target("avx2,fma,f16c")))

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return yes;
}

SBTREC_AVX2 inline float half_at(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 packed bytes -> their low nibbles (weights 0..15) and high nibbles (16..31) as int32 x 8 each.
SBTREC_AVX2 inline void nibbles(const uint8_t* qs, __m256i q[4]) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i bytes = _mm_loadu_si128((const __m128i*)qs);
  const __m128i lo = _mm_and_si128(bytes, mask), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  q[0] = _mm256_cvtepu8_epi32(lo);
  q[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
  q[2] = _mm256_cvtepu8_epi32(hi);
  q[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

// One block -> its 32 weights as float32 x 8 x 4, in element order (layouts: gguf.cpp).
struct Q8_0 {
  static constexpr int64_t kBytes = 34;  // f16 d; int8 q[32]; w = d q
  SBTREC_AVX2 static void expand(const uint8_t* b, __m256 w[4]) {
    const __m256 d = _mm256_set1_ps(half_at(b));
    for (int c = 0; c < 4; ++c) {
      const __m128i q = _mm_loadl_epi64((const __m128i*)(b + 2 + 8 * c));
      w[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
  }
};
struct Q4_0 {
  static constexpr int64_t kBytes = 18;  // f16 d; u8 qs[16]; w = d (nibble - 8)
  SBTREC_AVX2 static void expand(const uint8_t* b, __m256 w[4]) {
    const __m256 d = _mm256_set1_ps(half_at(b));
    const __m256i eight = _mm256_set1_epi32(8);
    __m256i q[4];
    nibbles(b + 2, q);
    for (int c = 0; c < 4; ++c) w[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[c], eight)), d);
  }
};
struct Q4_1 {
  static constexpr int64_t kBytes = 20;  // f16 d, m; u8 qs[16]; w = d nibble + m
  SBTREC_AVX2 static void expand(const uint8_t* b, __m256 w[4]) {
    const __m256 d = _mm256_set1_ps(half_at(b)), m = _mm256_set1_ps(half_at(b + 2));
    __m256i q[4];
    nibbles(b + 4, q);
    for (int c = 0; c < 4; ++c) w[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[c]), d, m);
  }
};

SBTREC_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[m, o] for o in [o_begin, o_end), all M rows of x. A accumulators per row of x keep enough FMA
// chains in flight when M is small (one row would otherwise wait on each FMA's latency).
template <class F, int M, int A>
SBTREC_AVX2 void avx2_rows(const float* x, const uint8_t* w, float* y, int64_t I, int64_t O, int64_t o_begin,
                           int64_t o_end) {
  const int64_t nb = I / kBlock, row_bytes = nb * F::kBytes;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* r = w + o * row_bytes;
    __m256 acc[M][A];
    for (int m = 0; m < M; ++m)
      for (int a = 0; a < A; ++a) acc[m][a] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m256 wv[4];  // the block's 32 weights
      F::expand(r + b * F::kBytes, wv);
      for (int m = 0; m < M; ++m) {
        const float* xm = x + m * I + b * kBlock;
        for (int c = 0; c < 4; ++c) acc[m][c % A] = _mm256_fmadd_ps(wv[c], _mm256_loadu_ps(xm + 8 * c), acc[m][c % A]);
      }
    }
    for (int m = 0; m < M; ++m) {
      __m256 s = acc[m][0];
      for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[m][a]);
      y[m * O + o] = hsum(s);
    }
  }
}

#define SBTREC_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

bool has_avx512() {
  static const bool yes = has_avx2() && __builtin_cpu_supports("avx512f");
  return yes;
}

// One block -> its 32 weights as float32 x 16 x 2 (weights 0..15, 16..31).
SBTREC_AVX512 inline void nibbles16(const uint8_t* qs, __m512i q[2]) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i bytes = _mm_loadu_si128((const __m128i*)qs);
  q[0] = _mm512_cvtepu8_epi32(_mm_and_si128(bytes, mask));                      // low nibbles: weights 0..15
  q[1] = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask));   // high nibbles: 16..31
}
struct Q8_0x16 {
  static constexpr int64_t kBytes = Q8_0::kBytes;
  SBTREC_AVX512 static void expand(const uint8_t* b, __m512 w[2]) {
    const __m512 d = _mm512_set1_ps(half_at(b));
    for (int c = 0; c < 2; ++c)
      w[c] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b + 2 + 16 * c)))), d);
  }
};
struct Q4_0x16 {
  static constexpr int64_t kBytes = Q4_0::kBytes;
  SBTREC_AVX512 static void expand(const uint8_t* b, __m512 w[2]) {
    const __m512 d = _mm512_set1_ps(half_at(b));
    const __m512i eight = _mm512_set1_epi32(8);
    __m512i q[2];
    nibbles16(b + 2, q);
    for (int c = 0; c < 2; ++c) w[c] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q[c], eight)), d);
  }
};
struct Q4_1x16 {
  static constexpr int64_t kBytes = Q4_1::kBytes;
  SBTREC_AVX512 static void expand(const uint8_t* b, __m512 w[2]) {
    const __m512 d = _mm512_set1_ps(half_at(b)), m = _mm512_set1_ps(half_at(b + 2));
    __m512i q[2];
    nibbles16(b + 4, q);
    for (int c = 0; c < 2; ++c) w[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q[c]), d, m);
  }
};

// As avx2_rows with 16-float vectors: two FMAs per block and row of x; A = 2 accumulators per row
// keep the chains independent (32 vector registers hold 8 rows x 2 of them).
template <class F, int M>
SBTREC_AVX512 void avx512_rows(const float* x, const uint8_t* w, float* y, int64_t I, int64_t O, int64_t o_begin,
                               int64_t o_end) {
  const int64_t nb = I / kBlock, row_bytes = nb * F::kBytes;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* r = w + o * row_bytes;
    __m512 acc[M][2];
    for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m512 wv[2];  // the block's 32 weights
      F::expand(r + b * F::kBytes, wv);
      for (int m = 0; m < M; ++m) {
        const float* xm = x + m * I + b * kBlock;
        acc[m][0] = _mm512_fmadd_ps(wv[0], _mm512_loadu_ps(xm), acc[m][0]);
        acc[m][1] = _mm512_fmadd_ps(wv[1], _mm512_loadu_ps(xm + 16), acc[m][1]);
      }
    }
    for (int m = 0; m < M; ++m) y[m * O + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]));
  }
}

using RowsFn = void (*)(const float*, const uint8_t*, float*, int64_t, int64_t, int64_t, int64_t);

template <class F>
RowsFn avx512_for_rows(int64_t M) {
  switch (M) {
    case 1: return avx512_rows<F, 1>;
    case 2: return avx512_rows<F, 2>;
    case 3: return avx512_rows<F, 3>;
    case 4: return avx512_rows<F, 4>;
    case 5: return avx512_rows<F, 5>;
    case 6: return avx512_rows<F, 6>;
    case 7: return avx512_rows<F, 7>;
    case 8: return avx512_rows<F, 8>;
    default: return nullptr;  // more rows: the caller splits x
  }
}

template <class F>
RowsFn avx2_for_rows(int64_t M) {
  switch (M) {
    case 1: return avx2_rows<F, 1, 4>;
    case 2: return avx2_rows<F, 2, 2>;
    case 3: return avx2_rows<F, 3, 2>;
    case 4: return avx2_rows<F, 4, 1>;
    case 5: return avx2_rows<F, 5, 1>;
    case 6: return avx2_rows<F, 6, 1>;
    case 7: return avx2_rows<F, 7, 1>;
    case 8: return avx2_rows<F, 8, 1>;
    default: return nullptr;  // more rows: the caller splits x
  }
}

bool supported_here(PackedKernel k) {
  switch (k) {
    case PackedKernel::kBest:
    case PackedKernel::kPortable: return true;
    case PackedKernel::kAvx2: return has_avx2();
    case PackedKernel::kAvx512: return has_avx512();
  }
  return false;
}

// The vector kernel for `k` (kBest: AVX-512, else AVX2), or nullptr for the portable path.
RowsFn vector_kernel(PackedKernel k, gguf::TensorType type, int64_t M) {
  if (k == PackedKernel::kBest) k = has_avx512() ? PackedKernel::kAvx512 : has_avx2() ? PackedKernel::kAvx2 : PackedKernel::kPortable;
  if (k == PackedKernel::kAvx512) {
    switch (type) {
      case gguf::TensorType::kQ8_0: return avx512_for_rows<Q8_0x16>(M);
      case gguf::TensorType::kQ4_0: return avx512_for_rows<Q4_0x16>(M);
      case gguf::TensorType::kQ4_1: return avx512_for_rows<Q4_1x16>(M);
      default: return nullptr;
    }
  }
  if (k == PackedKernel::kAvx2) {
    switch (type) {
      case gguf::TensorType::kQ8_0: return avx2_for_rows<Q8_0>(M);
      case gguf::TensorType::kQ4_0: return avx2_for_rows<Q4_0>(M);
      case gguf::TensorType::kQ4_1: return avx2_for_rows<Q4_1>(M);
      default: return nullptr;
    }
  }
  return nullptr;
}
#else
using RowsFn = void (*)(const float*, const uint8_t*, float*, int64_t, int64_t, int64_t, int64_t);
bool supported_here(PackedKernel k) { return k == PackedKernel::kBest || k == PackedKernel::kPortable; }
RowsFn vector_kernel(PackedKernel, gguf::TensorType, int64_t) { return nullptr; }
#endif

// y [M, O] = x [M, I] W^T for one slab of at most kFewRows rows.
void slab(const float* x, const PackedWeight& w, float* y, int64_t M, PackedKernel kernel) {
  const int64_t I = w.in_features, O = w.out_features;
  const uint8_t* pw = w.blocks.data_ptr<uint8_t>();
  const RowsFn vec = vector_kernel(kernel, w.type, M);
  const int64_t grain = std::max<int64_t>(1, 16384 / I);  // as the float32 kernel: ~16K weights a task
  at::parallel_for(0, O, grain, [&](int64_t begin, int64_t end) {
    if (vec)
      vec(x, pw, y, I, O, begin, end);
    else
      portable_rows(x, pw, y, w.type, M, I, O, begin, end);
  });
}

}  // namespace

bool PackedWeight::mirrors(const torch::Tensor& weight) const {
  return blocks.defined() && weight.defined() && weight.data_ptr() == mirror_data && weight._version() == mirror_version &&
         weight.dim() == 2 && weight.size(0) >= out_features && weight.size(1) == in_features;
}

PackedWeight PackedWeight::grown_into(const torch::Tensor& weight) const {
  if (weight.dim() != 2 || weight.size(0) < out_features || weight.size(1) != in_features)
    throw std::invalid_argument("PackedWeight::grown_into: the weight must be [O' >= O, I]");
  PackedWeight p = *this;
  p.mirror_data = weight.data_ptr();
  p.mirror_version = weight._version();
  return p;
}

bool packable(gguf::TensorType type) {
  return type == gguf::TensorType::kQ8_0 || type == gguf::TensorType::kQ4_0 || type == gguf::TensorType::kQ4_1;
}

PackedWeight pack_weight(gguf::TensorType type, torch::Tensor blocks, const torch::Tensor& weight) {
  if (!packable(type)) throw std::invalid_argument("pack_weight: tensor type is not one of Q8_0, Q4_0, Q4_1");
  if (weight.dim() != 2 || weight.scalar_type() != torch::kFloat32 || !weight.device().is_cpu() || weight.size(1) % kBlock)
    throw std::invalid_argument("pack_weight: the weight must be CPU float32 [O, I] with I a multiple of 32");
  const int64_t O = weight.size(0), I = weight.size(1);
  if (blocks.scalar_type() != torch::kUInt8 || blocks.dim() != 2 || blocks.size(0) != O ||
      blocks.size(1) != I / kBlock * block_bytes(type))
    throw std::invalid_argument("pack_weight: blocks must be uint8 [O, I / 32 * block bytes]");
  PackedWeight p;
  p.type = type;
  p.blocks = blocks.contiguous();
  p.out_features = O;
  p.in_features = I;
  p.mirror_data = weight.data_ptr();
  p.mirror_version = weight._version();
  return p;
}

bool packed_kernel_available(PackedKernel kernel) { return supported_here(kernel); }

torch::Tensor few_row_linear(const torch::Tensor& x, const PackedWeight& w, PackedKernel kernel) {
  TORCH_CHECK(packed_kernel_available(kernel), "few_row_linear: this CPU lacks the requested packed kernel");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() >= 1 && x.size(-1) == w.in_features &&
                  w.blocks.defined() && !(torch::GradMode::is_enabled() && x.requires_grad()),
              "few_row_linear: needs CPU float32 x [..., ", w.in_features, "] without gradients; got ", x.sizes());
  const int64_t I = w.in_features, O = w.out_features, M = x.numel() / I;
  auto xc = x.reshape({M, I}).contiguous();    // [M, I]
  auto y = torch::empty({M, O}, x.options());  // [M, O]
  for (int64_t m0 = 0; m0 < M; m0 += kFewRows) {
    const int64_t rows = std::min(kFewRows, M - m0);
    slab(xc.data_ptr<float>() + m0 * I, w, y.data_ptr<float>() + m0 * O, rows, kernel);
  }
  auto sizes = x.sizes().vec();
  sizes.back() = O;
  return y.view(sizes);  // [..., O]
}

}  // namespace sbtrec::nn
