// Example experiment built against an installed sbtrec: loads a dataset under the LLaRA protocol,
// trains SASRec for a few epochs with the library's trainer, and prints the sequence representation
// of the first test users (the vectors SBT-Rec quantizes).
// Usage: custom_experiment DATA_ROOT OUTPUT_DIR [EPOCHS]
#include <sbtrec/data/batch.h>
#include <sbtrec/data/dataset.h>
#include <sbtrec/encoder/encoder.h>
#include <sbtrec/config/config.h>
#include <sbtrec/train/encoder_trainer.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: custom_experiment DATA_ROOT OUTPUT_DIR [EPOCHS]\n";
    return 2;
  }
  try {
    sbtrec::Config cfg = sbtrec::load_config("", {"data.root=" + std::string(argv[1]), "output_dir=" + std::string(argv[2]),
                                                  "train.epochs=" + std::string(argc > 3 ? argv[3] : "2")});
    const auto ds = sbtrec::data::load_dataset(cfg.data);
    sbtrec::train::Run run(cfg, /*overwrite=*/true);
    const auto result = sbtrec::train::train_encoder(cfg, ds, run);
    auto model = sbtrec::encoder::load_encoder(result.checkpoint_dir, ds.num_items);
    model->eval();
    torch::NoGradGuard no_grad;
    auto t = sbtrec::data::to_tensors(ds.test, ds.num_items, cfg.encoder.max_len);
    auto z = model->sequence_representation(t.seq.slice(0, 0, 3), t.lengths.slice(0, 0, 3));  // [3, D]
    std::cout << "test HR@1 " << result.test.hr1.value_or(-1) << "\nrepresentation shape " << z.sizes() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
