// MovieLens title normalisation and Latin-1 decoding.
#include "sbtrec/data/titles.h"

#include "../test_util.h"

#include <regex>
#include <sstream>

using namespace sbtrec::data;

TEST(Titles, DropYearAndMoveArticle) {
  EXPECT_EQ(normalize_movielens_title("Toy Story (1995)"), "Toy Story");
  EXPECT_EQ(normalize_movielens_title("Usual Suspects, The (1995)"), "The Usual Suspects");
  EXPECT_EQ(normalize_movielens_title("American President, An (1995)"), "An American President");
  EXPECT_EQ(normalize_movielens_title("Man Without a Face, A (1993)"), "A Man Without a Face");
  EXPECT_EQ(normalize_movielens_title("Seven (Se7en) (1995)"), "Seven (Se7en)");
  EXPECT_EQ(normalize_movielens_title("City of Lost Children, The (Cité des enfants perdus, La) (1995)"),
            "The City of Lost Children (Cité des enfants perdus, La)");
  EXPECT_EQ(normalize_movielens_title("unknown"), "unknown");
  EXPECT_EQ(normalize_movielens_title("Theater, The Movie"), "Theater, The Movie");  // not trailing
  EXPECT_EQ(normalize_movielens_title("Them! (1954)"), "Them!");
  EXPECT_EQ(normalize_movielens_title("Grease 2 (1982) "), "Grease 2");
}

TEST(Titles, Latin1ToUtf8) {
  EXPECT_EQ(latin1_to_utf8("Cit\xe9"), "Cit\xc3\xa9");
  EXPECT_EQ(latin1_to_utf8("plain"), "plain");
}

TEST(Titles, RealMovieLensTitlesAreNormalised) {
  SBTREC_REQUIRE_SHARED("data/ml-100k/u.item");
  const std::string text = sbtrec::test::read_text(sbtrec::test::shared("data/ml-100k/u.item"));
  std::istringstream in(text);
  const std::regex year(R"(\(\d{4}\)$)"), article(R"(, (The|A|An)$)");
  int n = 0, moved = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const auto first = line.find('|'), second = line.find('|', first + 1);
    const std::string raw = line.substr(first + 1, second - first - 1);
    const auto title = normalize_movielens_title(latin1_to_utf8(raw));
    EXPECT_FALSE(title.empty()) << raw;
    EXPECT_FALSE(std::regex_search(title, year)) << raw << " -> " << title;
    EXPECT_FALSE(std::regex_search(title, article)) << raw << " -> " << title;
    moved += raw.find(", The (") != std::string::npos && title.rfind("The ", 0) == 0;
  }
  EXPECT_EQ(n, 1682);
  EXPECT_GT(moved, 50);  // many "X, The (YYYY)" titles exist in ML-100K
}
