// sbtrec-lm: the Llama stack from the command line, on a Hugging Face model directory, a GGUF file or
// the built-in default model (SmolLM2-135M-Instruct): next-token logits for given ids, text
// generation (greedy or beam search, optionally as a chat turn, optionally with a PEFT LoRA adapter),
// tokenizing and decoding, and converting a GGUF file into a Hugging Face directory.
#include "cli_common.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/common/gguf.h"
#include "sbtrec/common/safetensors.h"
#include "sbtrec/llm/bpe_tokenizer.h"
#include "sbtrec/llm/chat_format.h"
#include "sbtrec/llm/checkpoint.h"
#include "sbtrec/llm/generation.h"
#include "sbtrec/llm/options.h"
#include "sbtrec/llm/tokenizer.h"

using namespace sbtrec;

namespace {

std::vector<int64_t> parse_ids(const std::string& text, const std::string& option) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::exception&) {
      throw ConfigError(option + ": '" + tok + "' is not an integer token id");
    }
  }
  if (ids.empty()) throw ConfigError(option + ": give at least one token id, e.g. " + option + " \"1 450 4996\"");
  return ids;
}

void check_ids(const std::vector<int64_t>& ids, int64_t vocab, const std::string& option) {
  for (auto id : ids)
    if (id < 0 || id >= vocab)
      throw ConfigError(option + ": id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
}

std::string join_ids(const std::vector<int64_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cli::setup_process();
  CLI::App app{"sbtrec-lm: Llama logits, generation, tokenization and GGUF conversion.\n"
               "--model takes a Hugging Face directory, a .gguf file, or `default` (SmolLM2-135M-Instruct)"};
  app.require_subcommand(1);
  std::string model = "default", adapter, dtype = "auto", ids_text, out, prompt, text, decode_ids, system;
  int64_t max_new_tokens = 64, num_beams = 1;
  bool stop_at_newline = false, chat = false, overwrite = false, no_special = false, no_packed = false;
  double length_penalty = 1.0;
  const auto dtypes = CLI::IsMember({"auto", "fp32", "bf16", "fp16"});
  const char* dtype_help = "auto | fp32 | bf16 | fp16 (auto: the CPU default, see llm.dtype)";
  auto add_model = [&](CLI::App* s) {
    s->add_option("--model", model, "Hugging Face model directory, .gguf file or `default`")->capture_default_str();
  };
  auto* logits = app.add_subcommand("logits", "Write float32 logits [T, V] (key `logits`) for the given ids");
  add_model(logits);
  logits->add_option("--ids", ids_text, "Token ids, space separated")->required();
  logits->add_option("--out", out, "Output .safetensors file")->required();
  logits->add_option("--adapter", adapter, "PEFT LoRA adapter directory");
  logits->add_option("--dtype", dtype, dtype_help)->check(dtypes);
  auto* gen = app.add_subcommand("generate", "Generate text from a prompt");
  add_model(gen);
  gen->add_option("--prompt", prompt, "Prompt text")->required();
  gen->add_flag("--chat", chat, "Wrap the prompt as one user message in the model's chat format (ChatML for SmolLM2)");
  gen->add_option("--system", system, "System message for --chat (default: the chat template's own)");
  gen->add_option("--max-new-tokens", max_new_tokens, "Tokens to generate at most")->check(CLI::PositiveNumber);
  gen->add_option("--num-beams", num_beams, "1 = greedy")->check(CLI::PositiveNumber);
  gen->add_option("--length-penalty", length_penalty, "Beam search length penalty");
  gen->add_option("--adapter", adapter, "PEFT LoRA adapter directory");
  gen->add_option("--dtype", dtype, dtype_help)->check(dtypes);
  gen->add_flag("--stop-at-newline", stop_at_newline, "Stop a sequence at the end of its first line");
  gen->add_flag("--no-packed", no_packed, "Decode a GGUF model from its float32 weights, not its quantized blocks");
  auto* tokenize = app.add_subcommand("tokenize", "Print the ids of --text (space separated), or the text of --decode ids");
  add_model(tokenize);
  auto* text_opt = tokenize->add_option("--text", text, "Text to encode");
  auto* decode_opt = tokenize->add_option("--decode", decode_ids, "Space-separated ids to decode");
  text_opt->excludes(decode_opt);
  tokenize->add_flag("--chat", chat, "Encode --text as one user message in the model's chat format");
  tokenize->add_option("--system", system, "System message for --chat");
  tokenize->add_flag("--no-special", no_special, "--text: add no BOS; --decode: keep special tokens in the text");
  auto* convert = app.add_subcommand("convert", "Write a GGUF model as a Hugging Face directory "
                                                "(config.json, model.safetensors, tokenizer.json) that transformers loads");
  add_model(convert);
  convert->add_option("--out", out, "Output directory")->required();
  convert->add_option("--dtype", dtype, "fp32 | bf16 | fp16 (default fp32: the dequantized values exactly)")->check(dtypes);
  convert->add_flag("--overwrite", overwrite, "Replace an existing non-empty output directory");
  SBTREC_PARSE(app, argc, argv);
  return cli::guarded_main([&]() {
    const std::string path = llm::resolve_model(model);
    const auto st = llm::scalar_type(config::parse_choice(llm::llm_dtypes(), dtype, "--dtype"));
    if (*tokenize) {
      if (text_opt->count() == 0 && decode_opt->count() == 0) throw ConfigError("tokenize: give --text T or --decode \"IDS\"");
      auto tok = llm::load_tokenizer(path);
      if (decode_opt->count()) {
        const auto ids = parse_ids(decode_ids, "--decode");
        check_ids(ids, tok->vocab_size(), "--decode");
        std::cout << tok->decode(ids, !no_special) << std::endl;
        return 0;
      }
      std::vector<int64_t> ids;
      if (chat) {
        const auto t = llm::resolve_chat_format(llm::ChatFormat::kAuto, path);
        ids = llm::encode_prompt(*tok, t, text, system.empty() ? std::nullopt : std::optional<std::string>(system));
      } else {
        ids = tok->encode(text, !no_special);
      }
      std::cout << join_ids(ids) << std::endl;
      return 0;
    }
    if (*convert) {
      if (!gguf::is_gguf_file(path)) throw ConfigError("convert: --model '" + path + "' is not a GGUF file");
      if (nonempty_dir(out) && !overwrite)
        throw ConfigError("convert: --out '" + out + "' exists and is not empty; pass --overwrite to replace it");
      auto m = llm::load_llama(path, st.value_or(torch::kFloat32));
      auto tok = llm::load_tokenizer(path);
      const auto* bpe = dynamic_cast<const llm::ByteLevelBpeTokenizer*>(tok.get());
      if (!bpe) throw ConfigError("convert: '" + path + "' has no byte-level BPE vocabulary to write as tokenizer.json");
      atomic_write_dir(out, [&](const std::string& tmp) {
        llm::save_llama(tmp, *m);
        llm::write_tokenizer_json(bpe->vocabulary(), tmp);  // tokenizer.json + tokenizer_config.json (chat template)
      });
      spdlog::info("wrote {} ({} layers, vocab {}, {}) to {}", path, m->config.num_hidden_layers, m->config.vocab_size,
                   m->config.torch_dtype, out);
      return 0;
    }
    auto m = llm::load_llama(path, st);
    if (no_packed) llm::drop_packed_weights(*m);
    if (!adapter.empty()) llm::load_adapter(adapter, *m);
    m->eval();
    torch::NoGradGuard no_grad;
    if (*logits) {
      const auto ids = parse_ids(ids_text, "--ids");
      check_ids(ids, m->config.vocab_size, "--ids");
      llm::ForwardInputs in;
      in.input_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      auto l = m->forward(in).squeeze(0).to(torch::kFloat32).contiguous();  // [T, V]
      safetensors::save(out, {{"logits", l}}, {{"format", "pt"}});
      spdlog::info("wrote logits {} to {}", c10::str(l.sizes()), out);
      return 0;
    }
    auto tok = llm::load_tokenizer(path);
    llm::ChatTemplate t;  // none: the raw prompt with BOS
    if (chat) {
      t = llm::resolve_chat_format(llm::ChatFormat::kAuto, path);
      if (t.format == llm::ChatFormat::kNone)
        throw ConfigError("--chat: the model '" + path + "' has no chat template (a base model): drop --chat");
    }
    std::vector<int64_t> ids =
        llm::encode_prompt(*tok, t, prompt, system.empty() ? std::nullopt : std::optional<std::string>(system));
    if (ids.empty()) ids.push_back(tok->bos_id() >= 0 ? tok->bos_id() : 0);  // an empty prompt starts from BOS
    llm::GenerationOptions o;
    o.max_new_tokens = max_new_tokens;
    o.num_beams = num_beams;
    o.length_penalty = length_penalty;
    o.eos_token_ids = m->config.eos_token_ids;
    if (stop_at_newline) o.stop_token_ids = tok->newline_ids();
    auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    auto seq = llm::generate(*m, input, {}, o);  // [1, P + N]
    auto gen_ids = seq.narrow(1, input.size(1), seq.size(1) - input.size(1)).squeeze(0).contiguous();
    std::vector<int64_t> new_ids(gen_ids.data_ptr<int64_t>(), gen_ids.data_ptr<int64_t>() + gen_ids.numel());
    std::cout << tok->decode(new_ids) << std::endl;
    return 0;
  });
}
