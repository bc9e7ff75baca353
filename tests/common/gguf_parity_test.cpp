// GGUF dequantization against the `gguf` Python package (llama.cpp's reader): random blocks of every
// type sbtrec reads (scripts/make_gguf_fixtures.py), dequantized by both; the values must be equal.
#include "../test_util.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/common/safetensors.h"

using namespace sbtrec;

TEST(GgufParity, DequantizationEqualsTheGgufPackage) {
  std::string error;
  const std::string script = test::source("scripts/make_gguf_fixtures.py");
  const std::string dir = test::cached_fixture("gguf-blocks", test::read_text(script),
                                               std::string(SBTREC_PYTHON) + " " + script + " --blocks 64", &error);
  ASSERT_FALSE(dir.empty()) << error;
  const auto t = safetensors::load(dir + "/blocks.safetensors");
  int checked = 0;
  for (const char* name : {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}) {
    SCOPED_TRACE(name);
    const auto& bytes = t.at(std::string(name) + ".bytes");
    const auto& want = t.at(std::string(name) + ".values");
    uint32_t id = 0;
    while (!(gguf::tensor_type_traits(id) && std::string(gguf::tensor_type_traits(id)->name) == name)) ++id;
    auto got = torch::empty_like(want);
    gguf::dequantize((gguf::TensorType)id, bytes.data_ptr<uint8_t>(), want.numel(), got.data_ptr<float>());
    // The package computes in float32 as ggml does; allow only rounding of the last bit.
    const auto diff = (got - want).abs().max().item<float>();
    EXPECT_LE(diff, 1e-6f * std::max(1.f, want.abs().max().item<float>())) << "max abs diff " << diff;
    EXPECT_GT(want.abs().max().item<float>(), 0.f);
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}
