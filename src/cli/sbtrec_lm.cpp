// sbtrec-lm: the Llama stack from the command line: next-token logits for given ids, and text
// generation (greedy or beam search) from a Hugging Face model directory, optionally with a PEFT
// LoRA adapter.
#include "cli_common.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/tokenizer.h"

using namespace sbtrec;

namespace {

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::exception&) {
      throw ConfigError("--ids: '" + tok + "' is not an integer token id");
    }
  }
  if (ids.empty()) throw ConfigError("--ids: give at least one token id, e.g. --ids \"1 450 4996\"");
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-lm: Llama logits and generation from a Hugging Face model directory"};
  app.require_subcommand(1);
  std::string model_dir, adapter, dtype = "fp32", ids_text, out, prompt;
  int64_t max_new_tokens = 64, num_beams = 1;
  bool stop_at_newline = false;
  double length_penalty = 1.0;
  auto* logits = app.add_subcommand("logits", "Write float32 logits [T, V] (key `logits`) for the given ids");
  logits->add_option("--model", model_dir, "Hugging Face model directory")->required();
  logits->add_option("--ids", ids_text, "Token ids, space separated")->required();
  logits->add_option("--out", out, "Output .safetensors file")->required();
  logits->add_option("--adapter", adapter, "PEFT LoRA adapter directory");
  logits->add_option("--dtype", dtype, "fp32 | bf16 | fp16")->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  auto* gen = app.add_subcommand("generate", "Generate text from a prompt (empty prompt: start from BOS)");
  gen->add_option("--model", model_dir, "Hugging Face model directory (with tokenizer.model)")->required();
  gen->add_option("--prompt", prompt, "Prompt text")->required();
  gen->add_option("--max-new-tokens", max_new_tokens, "Tokens to generate at most")->check(CLI::PositiveNumber);
  gen->add_option("--num-beams", num_beams, "1 = greedy")->check(CLI::PositiveNumber);
  gen->add_option("--length-penalty", length_penalty, "Beam search length penalty");
  gen->add_option("--adapter", adapter, "PEFT LoRA adapter directory");
  gen->add_option("--dtype", dtype, "fp32 | bf16 | fp16")->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  gen->add_flag("--stop-at-newline", stop_at_newline, "Stop a sequence at the end of its first line");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    auto model = llm::load_llama(model_dir, llm::parse_dtype(dtype));
    if (!adapter.empty()) llm::load_adapter(adapter, *model);
    model->eval();
    torch::NoGradGuard no_grad;
    if (*logits) {
      const auto ids = parse_ids(ids_text);
      for (auto id : ids)
        if (id < 0 || id >= model->config.vocab_size)
          throw ConfigError("--ids: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(model->config.vocab_size) + ")");
      llm::ForwardInputs in;
      in.input_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      auto l = model->forward(in).squeeze(0).contiguous();  // [T, V]
      safetensors::save(out, {{"logits", l}}, {{"format", "pt"}});
      spdlog::info("wrote logits {} to {}", c10::str(l.sizes()), out);
      return 0;
    }
    auto tokenizer = llm::load_tokenizer(model_dir);
    const llm::Tokenizer& tok = *tokenizer;
    auto ids = tok.encode(prompt, true);
    llm::GenerationOptions o;
    o.max_new_tokens = max_new_tokens;
    o.num_beams = num_beams;
    o.length_penalty = length_penalty;
    o.eos_token_ids = model->config.eos_token_ids;
    if (stop_at_newline) o.stop_token_ids = tok.newline_ids();
    auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    auto seq = llm::generate(*model, input, {}, o);  // [1, P + N]
    auto gen_ids = seq.narrow(1, input.size(1), seq.size(1) - input.size(1)).squeeze(0);
    std::vector<int64_t> new_ids(gen_ids.data_ptr<int64_t>(), gen_ids.data_ptr<int64_t>() + gen_ids.numel());
    std::cout << tok.decode(new_ids) << std::endl;
    return 0;
  });
}
