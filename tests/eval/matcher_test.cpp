// The generated-text matcher: LLaRA's naming rules, and lower-casing / stripping equal to Python's
// str.lower() / str.strip() on every title of the shared datasets, on hand cases and on broken UTF-8.
#include "sbtrec/eval/matcher.h"

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/dataset.h"

using namespace sbtrec;
using eval::match_generation;

namespace {

const std::vector<std::string> kMovies = {"Toy Story", "Heat", "Casino", "Toy Story 2"};

// Titles of LLaRA's id2name.txt (`id::name` lines), read as scripts/import_llara_data.py reads them.
std::vector<std::string> llara_titles(const std::string& path) {
  std::vector<std::string> titles;
  std::istringstream in(test::read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto sep = line.find("::");
    if (sep != std::string::npos) titles.push_back(line.substr(sep + 2));
  }
  return titles;
}

// Hand cases beside the dataset titles: final sigma, dotted capital I, sharp s, titlecase digraphs,
// accented MovieLens titles, the Greek and Cyrillic of LastFM, Python-only whitespace.
const std::vector<std::string> kHandCases = {
    "ΟΔΟΣ ΣΑ", "Σ", "ΑΣ.", "ΑΣ'Α", "İstanbul", "Straße", "STRASSE ẞ", "Ǆ ǅ ǆ", "Misérables, Les", "Á köldum klaka",
    "Άννα Βισση", "ГРАЖДАНСКАЯ ОБОРОНА", "ＡＢＣ", "\u00a0Heat\u3000", "\x1c\x1fx\u0085", "Ⅻ ⓐⒶ", "𐐀𐐨", ""};

}  // namespace

TEST(Matcher, ExactlyOneNamedCandidateIsValid) {
  auto r = match_generation("Heat", kMovies, 1);
  EXPECT_EQ(r.named, 1);
  EXPECT_TRUE(r.valid);
  EXPECT_TRUE(r.hit);
  EXPECT_EQ(r.named_index, 1);
  r = match_generation("Casino", kMovies, 1);  // valid, wrong
  EXPECT_TRUE(r.valid);
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.named_index, 2);
}

TEST(Matcher, NoneOrSeveralNamedIsInvalid) {
  auto r = match_generation("I would suggest a documentary.", kMovies, 0);
  EXPECT_EQ(r.named, 0);
  EXPECT_FALSE(r.valid);
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.named_index, -1);
  r = match_generation("Heat, or maybe Casino", kMovies, 1);
  EXPECT_EQ(r.named, 2);
  EXPECT_FALSE(r.valid);
  EXPECT_FALSE(r.hit);
  EXPECT_EQ(r.named_index, -1);
}

TEST(Matcher, ATitleInsideAnotherNamesBoth) {
  // "Toy Story 2" contains "Toy Story": LLaRA's substring rule names both, so the case is invalid
  // even when the model answered the target exactly. "Toy Story" alone names only the first.
  auto r = match_generation("Toy Story 2", kMovies, 3);
  EXPECT_EQ(r.named, 2);
  EXPECT_FALSE(r.valid);
  r = match_generation("Toy Story", kMovies, 0);
  EXPECT_EQ(r.named, 1);
  EXPECT_TRUE(r.hit);
  // Identical titles of two different items: always both named.
  EXPECT_FALSE(match_generation("Heat", {"Heat", "heat "}, 0).valid);
}

TEST(Matcher, CaseAndWhitespaceAreIgnored) {
  EXPECT_TRUE(match_generation("  TOY story\t\n", {" Toy Story ", "Heat"}, 0).hit);
  EXPECT_TRUE(match_generation("\u00a0HEAT\u3000", {"heat\u2003", "Casino"}, 0).hit);  // Unicode spaces
  EXPECT_TRUE(match_generation("LES MISÉRABLES", {"Les Misérables", "Heat"}, 0).hit);  // non-ASCII case
  // Whitespace inside a title must match as it is.
  EXPECT_FALSE(match_generation("ToyStory", {"Toy Story", "Heat"}, 0).valid);
}

TEST(Matcher, OnlyTheFirstLineCounts) {
  auto r = match_generation("Heat\nCasino\nToy Story", kMovies, 1);
  EXPECT_EQ(r.named, 1);
  EXPECT_TRUE(r.hit);
  // LLaRA strips before cutting: leading blank lines do not make the answer empty.
  EXPECT_TRUE(match_generation("\n \nHeat\nCasino", kMovies, 1).hit);
  EXPECT_EQ(eval::normalize_generation("  Heat Wave \r\nCasino"), "heat wave");
  EXPECT_FALSE(match_generation("The answer is\nHeat", kMovies, 1).valid);
}

TEST(Matcher, EmptyTitleIsAlwaysNamedAndBadTargetIsAnError) {
  EXPECT_EQ(match_generation("Heat", {"Heat", "  "}, 0).named, 2);
  try {
    match_generation("Heat", kMovies, 4);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("target index 4 is outside the 4 candidates"), std::string::npos) << e.what();
  }
}

TEST(Matcher, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(eval::unicode_lower("A\xff" "B"), "a\ufffdb");
  EXPECT_EQ(eval::unicode_lower("Caf\xc3"), "caf\ufffd");  // cut inside "é"
  auto r = match_generation("Caf\xc3", {"Café", "Caf"}, 0);
  EXPECT_EQ(r.named, 1);
  EXPECT_EQ(r.named_index, 1);
  EXPECT_EQ(eval::unicode_lower(std::string("a\0B", 3)), std::string("a\0b", 3));
}

TEST(Matcher, LowerCasingHandCases) {
  EXPECT_EQ(eval::unicode_lower("ΟΔΟΣ ΣΑ"), "οδος σα");  // final sigma only at a word's end
  EXPECT_EQ(eval::unicode_lower("Σ"), "σ");
  EXPECT_EQ(eval::unicode_lower("İstanbul"), "i\u0307stanbul");
  EXPECT_EQ(eval::unicode_lower("Straße"), "straße");
  EXPECT_EQ(eval::unicode_lower("Ǆ ǅ ǆ"), "ǆ ǆ ǆ");
  EXPECT_EQ(eval::unicode_lower("Á köldum klaka, Misérables"), "á köldum klaka, misérables");
  EXPECT_EQ(eval::unicode_strip("\x1c\u00a0 x \u3000\u0085"), "x");
}

// Python is the reference: str.lower(), str.strip(), the normalised title, and the set of code
// points str.isspace() accepts, on every title of MovieLens-100K (latin-1 u.item, as the project
// loads and normalises it), LLaRA's LastFM and Steam, and the hand cases above.
TEST(Matcher, EqualsPythonOnAllSharedTitles) {
  SBTREC_REQUIRE_PYTHON();
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.item");
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.data");
  SBTREC_REQUIRE_SHARED("data/llara/lastfm/id2name.txt");
  SBTREC_REQUIRE_SHARED("data/llara/steam/id2name.txt");
  DataOptions opt;
  opt.root = test::shared("data/ml-100k");
  std::vector<std::string> titles = data::load_dataset(opt).titles;
  const size_t movielens = titles.size();
  for (const char* name : {"lastfm", "steam"}) {
    auto more = llara_titles(test::shared(std::string("data/llara/") + name + "/id2name.txt"));
    titles.insert(titles.end(), more.begin(), more.end());
  }
  ASSERT_EQ(titles.size(), movielens + 4606 + 3581);
  titles.insert(titles.end(), kHandCases.begin(), kHandCases.end());

  test::TempDir dir;
  test::write_text(dir / "titles.json", nlohmann::json(titles).dump());
  auto r = test::run_python(dir, R"(
import json
titles = json.load(open(sys.argv[1], encoding="utf-8"))
json.dump({"lower": [t.lower() for t in titles], "strip": [t.strip() for t in titles],
           "title": [t.strip().lower().strip() for t in titles],
           "space": [c for c in range(0x110000) if chr(c).isspace()]}, open(sys.argv[2], "w"))
)", dir / "titles.json" + " " + dir / "python.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto py = nlohmann::json::parse(test::read_text(dir / "python.json"));
  int lower_differs = 0, strip_differs = 0, title_differs = 0, changed = 0;
  for (size_t k = 0; k < titles.size(); ++k) {
    const std::string lower = eval::unicode_lower(titles[k]);
    changed += lower != titles[k];
    if (lower != py["lower"][k].get<std::string>() && lower_differs++ < 5)
      ADD_FAILURE() << "lower(" << titles[k] << "): " << lower << " vs Python " << py["lower"][k];
    if (eval::unicode_strip(titles[k]) != py["strip"][k].get<std::string>() && strip_differs++ < 5)
      ADD_FAILURE() << "strip(" << titles[k] << ")";
    if (eval::normalize_title(titles[k]) != py["title"][k].get<std::string>() && title_differs++ < 5)
      ADD_FAILURE() << "normalize_title(" << titles[k] << ")";
  }
  EXPECT_EQ(lower_differs + strip_differs + title_differs, 0);
  EXPECT_GT(changed, (int)titles.size() / 2);  // the comparison exercised real case mapping

  std::vector<int> space;
  for (char32_t c = 0; c < 0x110000; ++c)
    if (eval::is_python_space(c)) space.push_back((int)c);
  EXPECT_EQ(space, py["space"].get<std::vector<int>>());
}

// Broken bytes are replaced as Python's bytes.decode("utf-8", "replace") replaces them.
TEST(Matcher, InvalidUtf8EqualsPythonReplace) {
  SBTREC_REQUIRE_PYTHON();
  const std::vector<std::string> cases = {"\xff", "abc\xe2\x82", "\xed\xa0\x80x", "\xc0\xaf", "\xf4\x90\x80\x80",
                                          "\xe2\x28\xa1", "\xf0\x9f\x98", "A\x80\x80Z", "\xc3\xa9\xc3"};
  nlohmann::json hex = nlohmann::json::array();
  for (const auto& c : cases) {
    std::string h;
    for (unsigned char b : c) {
      char byte[3];
      std::snprintf(byte, sizeof byte, "%02x", b);
      h += byte;
    }
    hex.push_back(h);
  }
  test::TempDir dir;
  test::write_text(dir / "in.json", hex.dump());
  auto r = test::run_python(dir, R"(
import json
out = [bytes.fromhex(h).decode("utf-8", "replace").lower() for h in json.load(open(sys.argv[1]))]
json.dump(out, open(sys.argv[2], "w"))
)", dir / "in.json" + " " + dir / "out.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto py = nlohmann::json::parse(test::read_text(dir / "out.json"));
  for (size_t k = 0; k < cases.size(); ++k) EXPECT_EQ(eval::unicode_lower(cases[k]), py[k].get<std::string>()) << "case " << k;
}
