// Bad data files: every case is a DataError naming the file (and line) with what was expected.
#include "grouplens_fixture.h"
#include "sbtrec/common/error.h"
#include "sbtrec/data/dataset.h"

using namespace sbtrec;
using namespace sbtrec::data;

namespace {
std::string load_error(const std::string& root, DataFormat format = DataFormat::kGroupLens) {
  DataOptions opt;
  opt.root = root;
  opt.format = format;
  try {
    load_dataset(opt);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST(BadData, MissingFilesSayWhereToGetThem) {
  test::TempDir dir;
  auto e = load_error(dir / "nothing");
  EXPECT_TRUE(has(e, "u.item")) << e;
  EXPECT_TRUE(has(e, "grouplens.org")) << e;
  test::write_text(dir / "ml/u.item", test::tiny_u_item());
  e = load_error(dir / "ml");
  EXPECT_TRUE(has(e, "u.data")) << e;
  e = load_error(dir / "imp", DataFormat::kSbtrec);
  EXPECT_TRUE(has(e, "dataset.json") && has(e, "import_llara_data.py")) << e;
}

TEST(BadData, MalformedLinesGiveFileAndLine) {
  test::TempDir dir;
  test::write_text(dir / "a/u.item", test::tiny_u_item());
  test::write_text(dir / "a/u.data", "1\t2\t4\t100\n1\t3\t4\n");
  auto e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "u.data:2") && has(e, "expected 4 fields")) << e;
  test::write_text(dir / "a/u.data", "1\tx\t4\t100\n");
  e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "u.data:1") && has(e, "item id") && has(e, "'x'")) << e;
  test::write_text(dir / "a/u.data", "1\t2\t4\t100\n1\t99\t4\t101\n");
  e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "u.data:2") && has(e, "99") && has(e, "1..20")) << e;
  test::write_text(dir / "a/u.data", "");
  e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "no ratings")) << e;
  test::write_text(dir / "a/u.item", "1|A (1990)|x|x|x\n3|B (1990)|x|x|x\n");
  e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "u.item:2") && has(e, "expected 2")) << e;
  test::write_text(dir / "a/u.item", "");
  e = load_error(dir / "a");
  EXPECT_TRUE(has(e, "no items")) << e;
}

TEST(BadData, CrlfLineEndingsGiveTheSameDataset) {
  test::TempDir dir;
  test::write_tiny_grouplens(dir / "lf");
  auto crlf = [](std::string s) {
    std::string out;
    for (char c : s) out += c == '\n' ? std::string("\r\n") : std::string(1, c);
    return out;
  };
  test::write_text(dir / "crlf/u.data", crlf(test::tiny_u_data()));
  test::write_text(dir / "crlf/u.item", crlf(test::tiny_u_item()));
  DataOptions a, b;
  a.root = dir / "lf";
  b.root = dir / "crlf";
  Dataset x = load_dataset(a), y = load_dataset(b);
  ASSERT_EQ(x.train.size(), y.train.size());
  EXPECT_EQ(x.test[0].history, y.test[0].history);
  EXPECT_EQ(x.titles, y.titles);
}

TEST(BadData, TooFewUsersForASplitIsAnError) {
  test::TempDir dir;
  test::write_text(dir / "a/u.item", test::tiny_u_item());
  test::write_text(dir / "a/u.data", "1\t1\t4\t1\n1\t2\t4\t2\n1\t3\t4\t3\n1\t4\t4\t4\n");
  EXPECT_TRUE(has(load_error(dir / "a"), "no samples")) << load_error(dir / "a");
}

TEST(BadData, ImportedDirectoryErrors) {
  test::TempDir dir;
  const std::string root = dir / "imp";
  test::write_text(root + "/dataset.json", R"({"format": "other"})");
  EXPECT_TRUE(has(load_error(root, DataFormat::kSbtrec), "not an sbtrec dataset"));
  test::write_text(root + "/dataset.json", R"({"format": "sbtrec-dataset", "version": 1, "num_items": 3})");
  test::write_text(root + "/items.tsv", "0\ta\n2\tc\n");
  auto e = load_error(root, DataFormat::kSbtrec);
  EXPECT_TRUE(has(e, "items.tsv") && has(e, "item id 1 has no title")) << e;
  test::write_text(root + "/items.tsv", "0\ta\n1\tb\n2\tc\n");
  test::write_text(root + "/val.tsv", "0\t0 1 2\t1\n0\t0 1 7\t1\n");
  e = load_error(root, DataFormat::kSbtrec);
  EXPECT_TRUE(has(e, "val.tsv:2") && has(e, "item id 7 out of range")) << e;
  test::write_text(root + "/val.tsv", "0\t0 1 2\t1\n");
  test::write_text(root + "/test.tsv", "0\t0 1 2 1\n");
  e = load_error(root, DataFormat::kSbtrec);
  EXPECT_TRUE(has(e, "test.tsv:1") && has(e, "expected 3 fields")) << e;
  test::write_text(root + "/test.tsv", "5\t2 1 0\t1\r\n");
  DataOptions opt;
  opt.root = root;
  opt.format = DataFormat::kSbtrec;
  Dataset ds = load_dataset(opt);
  EXPECT_EQ(ds.num_items, 3);
  EXPECT_EQ(ds.test[0].user, 5);
  EXPECT_EQ(ds.test[0].history, (std::vector<int32_t>{2, 1, 0}));
  EXPECT_TRUE(ds.train.empty());  // train.tsv is optional (LLaRA's Steam train split is absent)
}
