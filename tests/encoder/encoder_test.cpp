// Encoders: shapes, checkpoint round trip, shape errors naming the key, padding invariance, learning.
#include "sbtrec/encoder/encoder.h"

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/encoder/sasrec.h"
#include "sbtrec/train/encoder_trainer.h"

using namespace sbtrec;
using namespace sbtrec::encoder;

namespace {
EncoderOptions opts(const std::string& type) {
  EncoderOptions o;
  for (const auto& [name, t] : encoder_types())
    if (type == name) o.type = t;
  o.hidden_size = 16;
  o.max_len = 6;
  o.caser.num_filters = 4;
  return o;
}
// Right-padded batch: lengths 6, 3, 1.
std::pair<torch::Tensor, torch::Tensor> batch(int64_t n) {
  const std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5, 6, 7, 8, n, n, n, 9, n, n, n, n, n};
  auto seq = torch::tensor(ids, torch::kInt64).view({3, 6});
  return {seq, torch::tensor({6, 3, 1}, torch::kInt64)};
}
const char* kTypes[] = {"sasrec", "gru4rec", "caser"};
}  // namespace

TEST(Encoder, ShapesAndNames) {
  for (const char* type : kTypes) {
    torch::manual_seed(0);
    auto enc = make_encoder(opts(type), 30);
    enc->eval();
    auto [seq, len] = batch(30);
    auto z = enc->sequence_representation(seq, len);
    EXPECT_EQ(z.size(0), 3) << type;
    EXPECT_EQ(enc->forward(seq, len).sizes(), (std::vector<int64_t>{3, 30})) << type;
    EXPECT_EQ(enc->item_embedding_table().sizes(), (std::vector<int64_t>{31, 16})) << type;
    auto items = torch::tensor({1, 2, 3, 4, 5, 6}, torch::kInt64).view({3, 2});
    EXPECT_TRUE(torch::allclose(enc->item_logits(z, items), enc->all_logits(z).gather(1, items), 1e-5, 1e-5)) << type;
    auto params = enc->named_parameters();
    EXPECT_TRUE(params.contains("item_embeddings.weight")) << type;
    EXPECT_TRUE(params.contains("s_fc.weight")) << type;
  }
  auto names = make_encoder(opts("sasrec"), 30)->named_parameters();
  for (const char* key : {"positional_embeddings.weight", "blocks.0.ln_1.weight", "blocks.0.mh_attn.linear_q.weight",
                          "blocks.0.feed_forward.w_1.weight", "blocks.0.feed_forward.layer_norm.bias", "ln_3.weight"})
    EXPECT_TRUE(names.contains(key)) << key;
}

TEST(Encoder, RepresentationIgnoresWhatFollowsTheLastRealItem) {
  // Causal attention / recurrence with right padding: the state at length-1 must not depend on the
  // padding positions, nor on the history being cut to its length.
  for (const char* type : {"sasrec", "gru4rec"}) {
    torch::manual_seed(1);
    auto enc = make_encoder(opts(type), 30);
    enc->eval();
    auto [seq, len] = batch(30);
    auto z = enc->sequence_representation(seq, len);
    auto short_seq = seq.slice(1, 0, 3);  // drop three padding columns
    auto z2 = enc->sequence_representation(short_seq, len.clamp_max(3));
    EXPECT_TRUE(torch::allclose(z.slice(0, 1, 3), z2.slice(0, 1, 3), 1e-5, 1e-6)) << type;
  }
}

TEST(Encoder, CheckpointRoundTripAndShapeErrors) {
  test::TempDir dir;
  for (const char* type : kTypes) {
    torch::manual_seed(2);
    auto enc = make_encoder(opts(type), 30);
    enc->eval();
    Config cfg;
    cfg.encoder = opts(type);
    save_encoder(dir / type, *enc, config_to_yaml(cfg));
    EncoderOptions loaded_opts;
    auto loaded = load_encoder(dir / type, 30, &loaded_opts);
    loaded->eval();
    EXPECT_STREQ(encoder_name(loaded_opts.type), type);
    std::map<std::string, std::string> meta;
    safetensors::load(dir / (std::string(type) + "/model.safetensors"), std::nullopt, &meta);
    EXPECT_EQ(meta["format"], "sbtrec-encoder");
    EXPECT_STREQ(encoder_name(parse_encoder_section(meta["config"], "metadata").type), type);  // resolved config inside
    auto [seq, len] = batch(30);
    EXPECT_TRUE(torch::equal(enc->forward(seq, len), loaded->forward(seq, len))) << type;
    try {
      load_encoder(dir / type, 31);
      FAIL() << type;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("item_embeddings.weight"), std::string::npos) << e.what();
    }
  }
  try {
    load_encoder(dir / "missing", 30);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("config.yaml"), std::string::npos);
  }
}

TEST(Encoder, TrainStepLearnsADeterministicSuccessor) {
  // next item = last item + 1: every encoder must fit this quickly with either loss.
  for (EncoderLoss loss : {EncoderLoss::kBCE, EncoderLoss::kCE}) {
    for (const char* type : kTypes) {
      torch::manual_seed(3);
      const int64_t n = 20;
      auto enc = make_encoder(opts(type), n);
      torch::optim::Adam opt(enc->parameters(), torch::optim::AdamOptions(1e-2));
      auto start = torch::randint(0, n, {256}, torch::kInt64);
      auto seq = torch::stack({start % n, (start + 1) % n, (start + 2) % n, (start + 3) % n, (start + 4) % n,
                               (start + 5) % n}, 1);
      auto len = torch::full({256}, 6, torch::kInt64);
      auto target = (start + 6) % n;
      double first = 0, last = 0;
      for (int i = 0; i < 150; ++i) {
        enc->train();
        last = train::encoder_train_step(*enc, opt, loss, seq, len, target);
        if (i == 0) first = last;
      }
      enc->eval();
      torch::NoGradGuard ng;
      const double acc = enc->forward(seq, len).argmax(1).eq(target).to(torch::kFloat).mean().item<double>();
      EXPECT_LT(last, first * 0.5) << type << " " << config::choice_name(encoder_losses(), loss);
      EXPECT_GT(acc, 0.9) << type << " " << config::choice_name(encoder_losses(), loss);
    }
  }
}

TEST(Encoder, SASRecLastPositionPathEqualsAllPositions) {
  // sequence_representation computes the last block at one position only; it must equal the
  // all-positions hidden states read at length-1, for one and several blocks and heads.
  for (int blocks : {1, 3}) {
    EncoderOptions o = opts("sasrec");
    o.sasrec.num_blocks = blocks;
    o.sasrec.num_heads = 2;
    torch::manual_seed(4);
    SASRec model(o, 30);
    model->eval();
    auto [seq, len] = batch(30);
    auto all = model->hidden_states(seq);                                                   // [B, T, D]
    auto read = all.gather(1, (len - 1).view({-1, 1, 1}).expand({3, 1, 16})).squeeze(1);  // [B, D]
    EXPECT_TRUE(torch::allclose(model->sequence_representation(seq, len), read, 1e-5, 1e-6)) << blocks;
  }
}
