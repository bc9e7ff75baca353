// safetensors: round trip and every class of corrupt header gives a CheckpointError, never a crash.
#include "sbtrec/common/safetensors.h"

#include "../test_util.h"
#include "sbtrec/common/error.h"

using namespace sbtrec;

namespace {
std::string with_header(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = (char)((n >> (8 * i)) & 0xff);
  return out + json + data;
}
std::string parse_error(const std::string& bytes) {
  try {
    safetensors::parse_header((const uint8_t*)bytes.data(), bytes.size(), bytes.size(), "f.safetensors");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Safetensors, RoundTripKeepsValuesDtypesAndMetadata) {
  test::TempDir dir;
  std::map<std::string, torch::Tensor> in = {{"a", torch::randn({3, 4})},
                                             {"b", torch::arange(5, torch::kInt64)},
                                             {"c", torch::randn({2}).to(torch::kBFloat16)}};
  safetensors::save(dir / "x.safetensors", in, {{"format", "test"}});
  std::map<std::string, std::string> meta;
  auto out = safetensors::load(dir / "x.safetensors", std::nullopt, &meta);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(torch::equal(out["a"], in["a"]));
  EXPECT_TRUE(torch::equal(out["b"], in["b"]));
  EXPECT_EQ(out["c"].scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(out["c"], in["c"]));
  EXPECT_EQ(meta["format"], "test");
  auto f32 = safetensors::load(dir / "x.safetensors", torch::kFloat32);
  EXPECT_EQ(f32["c"].scalar_type(), torch::kFloat32);
  EXPECT_EQ(f32["b"].scalar_type(), torch::kInt64);  // integers are not converted
}

TEST(Safetensors, CorruptHeadersAreErrors) {
  EXPECT_NE(parse_error("abc").find("truncated"), std::string::npos);
  std::string absurd(8, '\xff');
  EXPECT_NE(parse_error(absurd).find("absurd"), std::string::npos);
  EXPECT_NE(parse_error(with_header("{not json", "")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(with_header("[1]", "")).find("JSON object"), std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"t":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "1234")).find("unknown dtype"),
            std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234")).find("past the data"),
            std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "1234")).find("need"),
            std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                                    "12345678"))
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234")).find("non-negative"),
            std::string::npos);
  EXPECT_NE(parse_error(with_header(R"({"t":{"dtype":"F32"}})", "")).find("needs dtype"), std::string::npos);
  std::string big = with_header("{}", "");
  big[0] = 100;  // header length 100 but the file is shorter
  EXPECT_NE(parse_error(big).find("truncated"), std::string::npos);
}

TEST(Safetensors, MissingFileNamesThePath) {
  try {
    safetensors::load("/nonexistent/w.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.safetensors"), std::string::npos);
  }
}
