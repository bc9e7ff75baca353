// Hybrid prompts: template files (ours and LLaRA's), the rendered text (LLaRA's construction, byte for
// byte), slot positions and items after tokenization, the answer and its labels, padding, the context
// check and the seeded template choice. Tokenization uses SmolLM2's tokenizer (the default model).
#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/llm/tokenizer.h"
#include "sbtrec/prompt/hybrid_prompt.h"

using namespace sbtrec;
using namespace sbtrec::prompt;

namespace {

data::Dataset toy_dataset() {
  data::Dataset ds;
  ds.name = "movielens";
  ds.num_items = 6;
  ds.titles = {"Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)", "Copycat (1995)",
               "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)"};
  return ds;
}

struct Fixture {
  std::unique_ptr<llm::Tokenizer> tok = llm::load_tokenizer("default");
  llm::LlamaForCausalLM model{nullptr};
  SlotTokens slots;
  Fixture() {
    auto c = llm::llama_tiny();
    c.vocab_size = tok->vocab_size();
    c.max_position_embeddings = 2048;
    model = llm::LlamaForCausalLM(c);
    slots = add_slot_tokens(*tok, *model);
  }
  PromptBuilder builder(llm::ChatTemplate chat = {}, bool user = true, int64_t max_length = 2048,
                        const std::string& file = "configs/prompts/movielens.txt") {
    return PromptBuilder(load_templates(test::source(file), TemplateFormat::kSbtrec), *tok, slots, chat, "", user, max_length);
  }
};

}  // namespace

TEST(HybridPrompt, ProjectTemplatesAndLlaraFilesLoad) {
  for (const char* d : {"movielens", "lastfm", "steam"}) {
    auto t = load_templates(test::source(std::string("configs/prompts/") + d + ".txt"), TemplateFormat::kSbtrec);
    EXPECT_EQ(t.lines.size(), 3u) << d;
  }
  SBTREC_REQUIRE_SHARED("data/llara/prompts/movie.txt");
  for (const char* f : {"movie", "game", "artist"}) {
    const std::string path = test::shared(std::string("data/llara/prompts/") + f + ".txt");
    auto t = load_templates(path, TemplateFormat::kLlara);
    ASSERT_EQ(t.lines.size(), 3u) << f;
    for (const auto& l : t.lines) EXPECT_NE(l.back(), ' ') << "LLaRA strips each line";
    // The sbtrec format wants {history}: a LLaRA file read as such is an error naming file:1.
    try {
      load_templates(path, TemplateFormat::kSbtrec);
      ADD_FAILURE() << "expected a ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(path + ":1: the template has no {history}"), std::string::npos) << e.what();
    }
  }
}

TEST(HybridPrompt, BadTemplateFilesNameTheLine) {
  test::TempDir dir;
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    const std::string path = (dir.path / "t.txt").string();
    test::write_text(path, text);
    try {
      load_templates(path, TemplateFormat::kSbtrec);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("{history} and {candidates}\n\nonly {history}\n", "t.txt:3: the template has no {candidates}");
  expect_error("{history} {candidates} {num_cands}\n", "t.txt:1: unknown placeholder {num_cands}");
  expect_error("\n  \n", "no templates");
  EXPECT_THROW(load_templates((dir.path / "absent.txt").string(), TemplateFormat::kSbtrec), Error);
}

TEST(HybridPrompt, RenderIsLlarasConstructionByteForByte) {
  SBTREC_REQUIRE_SHARED("data/llara/prompts/movie.txt");
  SBTREC_REQUIRE_MODEL();
  Fixture f;
  const std::string path = test::shared("data/llara/prompts/movie.txt");
  PromptBuilder b(load_templates(path, TemplateFormat::kLlara), *f.tok, f.slots, {}, "", false, 2048);
  const std::vector<std::string> h = {"Toy Story (1995)", "GoldenEye (1995)"}, c = {"Copycat (1995)", "Four Rooms (1995)"};
  // LLaRA: template.replace('[HistoryHere]', ", ".join(t + ' [HistoryEmb]' ...)), then [CansHere]; text-only: plain titles
  const std::string first = test::read_text(path).substr(0, test::read_text(path).find('\n'));
  std::string want = first.substr(0, first.find_last_not_of(' ') + 1);
  auto sub = [](std::string s, const std::string& from, const std::string& to) { return s.replace(s.find(from), from.size(), to); };
  want = sub(sub(want, "[HistoryHere]", "Toy Story (1995) [HistoryEmb], GoldenEye (1995) [HistoryEmb]"), "[CansHere]",
             "Copycat (1995) [CansEmb], Four Rooms (1995) [CansEmb]");
  EXPECT_EQ(b.render(0, h, c, true), want);
  EXPECT_EQ(b.render(0, h, c, false).find("[HistoryEmb]"), std::string::npos);
  EXPECT_NE(b.render(0, h, c, false).find("Toy Story (1995), GoldenEye (1995) in the previous"), std::string::npos);
}

TEST(HybridPrompt, SlotsPointAtTheirTokensAndItems) {
  SBTREC_REQUIRE_MODEL();
  Fixture f;
  auto ds = toy_dataset();
  data::Sample s;
  s.history = {0, 5, 2};
  s.target = 3;
  const std::vector<int32_t> cands = {4, 3, 1};
  auto b = f.builder();
  const std::string text = b.render(1, {ds.titles[0], ds.titles[5], ds.titles[2]}, {ds.titles[4], ds.titles[3], ds.titles[1]}, true);
  EXPECT_NE(text.find("Toy Story (1995) [HistoryEmb], Shanghai Triad (Yao a yao yao dao waipo qiao) (1995) [HistoryEmb], "
                      "Four Rooms (1995) [HistoryEmb] [UserEmb]"),
            std::string::npos) << text;
  EXPECT_NE(text.find("Candidate movies (3): Copycat (1995) [CansEmb], Get Shorty (1995) [CansEmb], GoldenEye (1995) [CansEmb]"),
            std::string::npos) << text;

  auto p = b.encode(1, ds, s, cands, true, s.target, "train sample 0");
  ASSERT_EQ(p.slots.size(), 3u + 1u + 3u);
  std::vector<int32_t> hist, cand;
  int users = 0;
  for (const auto& slot : p.slots) {
    ASSERT_LT(slot.position, p.prompt_length);
    const int64_t id = p.ids[slot.position];
    if (slot.kind == SlotKind::kHistory) {
      EXPECT_EQ(id, f.slots.history);
      hist.push_back(slot.item);
    } else if (slot.kind == SlotKind::kCandidate) {
      EXPECT_EQ(id, f.slots.candidate);
      cand.push_back(slot.item);
    } else {
      EXPECT_EQ(id, f.slots.user);
      ++users;
    }
  }
  EXPECT_EQ(hist, s.history);
  EXPECT_EQ(cand, cands);
  EXPECT_EQ(users, 1);
  // Raw format: the prompt as encode(text) gives it; the answer "Get Shorty (1995)\n" tokenized on its own.
  const std::vector<int64_t> prompt_ids(p.ids.begin(), p.ids.begin() + p.prompt_length);
  EXPECT_EQ(prompt_ids, f.tok->encode(text, true));
  const std::vector<int64_t> answer(p.ids.begin() + p.prompt_length, p.ids.end());
  EXPECT_EQ(answer, f.tok->encode("Get Shorty (1995)\n", false));
  EXPECT_EQ(f.tok->decode(answer), "Get Shorty (1995)\n");

  // Text-only: no slots, same titles; without an answer, prompt only.
  auto t = b.encode(1, ds, s, cands, false, std::nullopt, "test sample 0");
  EXPECT_TRUE(t.slots.empty());
  EXPECT_EQ(t.prompt_length, (int64_t)t.ids.size());
  // Without a user token, no [UserEmb].
  auto nu = f.builder({}, false).encode(1, ds, s, cands, true, std::nullopt, "x");
  EXPECT_EQ(nu.slots.size(), 6u);
}

TEST(HybridPrompt, SlotsBeforeTitlesAndTheUserTokenBeforeTheAnswer) {
  SBTREC_REQUIRE_MODEL();
  Fixture f;
  auto ds = toy_dataset();
  data::Sample s;
  s.history = {0, 5};
  s.target = 3;
  const std::vector<int32_t> cands = {4, 3};
  PromptOptions layout;
  layout.slot_position = SlotPosition::kBeforeTitle;
  layout.user_token_position = UserTokenPosition::kAnswer;
  const auto chat = llm::resolve_chat_format(llm::ChatFormat::kAuto, "default");
  PromptBuilder b(load_templates(test::source("configs/prompts/movielens.txt"), TemplateFormat::kSbtrec), *f.tok, f.slots,
                  chat, "", true, 2048, layout);
  const std::string text = b.render(1, {ds.titles[0], ds.titles[5]}, {ds.titles[4], ds.titles[3]}, true);
  EXPECT_NE(text.find("Watching history: [HistoryEmb]Toy Story (1995), [HistoryEmb]Shanghai Triad"), std::string::npos) << text;
  EXPECT_NE(text.find("Candidate movies (2): [CansEmb]Copycat (1995), [CansEmb]Get Shorty (1995)."), std::string::npos)
      << text;
  EXPECT_EQ(text.find("[UserEmb]"), std::string::npos) << "the user token is not in the user's message: " << text;
  auto p = b.encode(1, ds, s, cands, true, s.target, "train sample 0");
  // The prompt ends with the assistant header and then the user token; the answer follows it.
  ASSERT_GE(p.prompt_length, 1);
  EXPECT_EQ(p.ids[(size_t)p.prompt_length - 1], f.slots.user);
  EXPECT_EQ(p.slots.back().kind, SlotKind::kUser);
  EXPECT_EQ(p.slots.back().position, p.prompt_length - 1);
  const std::vector<int64_t> head(p.ids.begin(), p.ids.begin() + p.prompt_length - 1);
  EXPECT_EQ(head, llm::encode_prompt(*f.tok, chat, text, std::nullopt));
  const std::vector<int64_t> answer(p.ids.begin() + p.prompt_length, p.ids.end());
  EXPECT_EQ(answer, b.encode_answer(ds.titles[3]));
  // Each candidate slot is followed by its title's tokens, the first as an answer begins (no space).
  std::vector<int32_t> cand;
  for (const auto& slot : p.slots)
    if (slot.kind == SlotKind::kCandidate) {
      cand.push_back(slot.item);
      const std::string next = f.tok->decode({p.ids.begin() + slot.position + 1, p.ids.begin() + slot.position + 4});
      EXPECT_EQ(next.rfind(ds.titles[(size_t)slot.item].substr(0, 3), 0), 0u) << next;
    }
  EXPECT_EQ(cand, cands);
  // Text-only prompts carry no user token at the answer either.
  auto t = b.encode(1, ds, s, cands, false, std::nullopt, "x");
  EXPECT_TRUE(t.slots.empty());
  EXPECT_NE(t.ids.back(), f.slots.user);
}

TEST(HybridPrompt, ChatFormatWrapsThePromptAndEndsTheAnswerWithEndOfTurn) {
  SBTREC_REQUIRE_MODEL();
  Fixture f;
  auto ds = toy_dataset();
  data::Sample s;
  s.history = {0, 1};
  s.target = 2;
  const auto chat = llm::resolve_chat_format(llm::ChatFormat::kAuto, "default");
  ASSERT_EQ(chat.format, llm::ChatFormat::kChatML);
  auto b = f.builder(chat);
  auto p = b.encode(0, ds, s, {2, 3}, true, s.target, "train sample 0");
  const std::string text = f.tok->decode(p.ids, false);
  EXPECT_EQ(text.rfind("<|im_start|>system\n", 0), 0u) << text;
  EXPECT_NE(text.find("<|im_start|>assistant\nFour Rooms (1995)<|im_end|>"), std::string::npos) << text;
  const std::vector<int64_t> answer(p.ids.begin() + p.prompt_length, p.ids.end());
  EXPECT_EQ(answer.back(), *f.tok->token_to_id("<|im_end|>"));
  for (const auto& slot : p.slots) EXPECT_LT(slot.position, p.prompt_length);
}

TEST(HybridPrompt, ContextOverflowAndSlotTokensInTitlesAreErrorsNamingTheSample) {
  SBTREC_REQUIRE_MODEL();
  Fixture f;
  auto ds = toy_dataset();
  data::Sample s;
  s.history = {0, 1, 2, 3};
  s.target = 5;
  try {
    f.builder({}, true, 40).encode(0, ds, s, {5, 4}, true, s.target, "train sample 17");
    ADD_FAILURE() << "no error for a prompt over the context";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("train sample 17: the prompt and answer are"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("context of 40"), std::string::npos) << e.what();
  }
  ds.titles[4] = "Copycat [CansEmb] (1995)";
  EXPECT_THROW(f.builder().encode(0, ds, s, {5, 4}, true, s.target, "val sample 3"), DataError);
}

TEST(HybridPrompt, CollatePadsLabelsTheAnswerAndShiftsSlots) {
  EncodedPrompt a, b;
  a.ids = {1, 10, 11, 12, 13, 14};
  a.prompt_length = 4;
  a.slots = {{1, SlotKind::kHistory, 7}, {3, SlotKind::kUser, -1}};
  b.ids = {1, 20, 21};
  b.prompt_length = 2;
  b.slots = {{1, SlotKind::kCandidate, 9}};
  for (bool left : {false, true}) {
    auto batch = collate({a, b}, 0, left);
    ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 6}));
    const int64_t off = left ? 3 : 0;
    EXPECT_EQ(batch.input_ids[1][off + 2].item<int64_t>(), 21);
    EXPECT_EQ(batch.attention_mask.sum().item<int64_t>(), 9);
    EXPECT_EQ(batch.attention_mask[1][left ? 0 : 5].item<int64_t>(), 0);
    // labels: a's ids 13, 14 and b's 21 only
    EXPECT_EQ((batch.labels != -100).sum().item<int64_t>(), 3);
    EXPECT_EQ(batch.labels[0][4].item<int64_t>(), 13);
    EXPECT_EQ(batch.labels[1][off + 2].item<int64_t>(), 21);
    EXPECT_EQ(batch.slot_position[2].item<int64_t>(), off + 1);
    EXPECT_EQ(batch.slot_batch[2].item<int64_t>(), 1);
    EXPECT_EQ(batch.slot_item[1].item<int64_t>(), -1);
    EXPECT_EQ(batch.slot_kind[2].item<int64_t>(), (int64_t)SlotKind::kCandidate);
    EXPECT_EQ(batch.input_ids[1][left ? 0 : 5].item<int64_t>(), 0);
  }
}

TEST(HybridPrompt, TemplateChoiceIsSeededAndCoversEveryTemplate) {
  std::vector<int> seen(3, 0);
  for (int64_t batch = 0; batch < 300; ++batch) {
    const size_t t = training_template(42, 0, batch, 3);
    ASSERT_LT(t, 3u);
    ++seen[t];
    EXPECT_EQ(t, training_template(42, 0, batch, 3));
  }
  for (int n : seen) EXPECT_GT(n, 60);
  int differ = 0;
  for (int64_t i = 0; i < 100; ++i) {
    differ += training_template(42, 1, i, 3) != training_template(42, 0, i, 3);
    EXPECT_EQ(evaluation_template(7, data::Split::kTest, i, 3), evaluation_template(7, data::Split::kTest, i, 3));
  }
  EXPECT_GT(differ, 30);  // another epoch, other templates
}
