// Loader for sbtrec dataset directories (see imported.h).
#include "sbtrec/data/imported.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/text_file.h"

namespace sbtrec::data {
namespace {

const char* kImportHint =
    "Create the directory with scripts/import_llara_data.py --src <LLaRA data dir> --out <dir> "
    "(see README.md, 'Datasets')";

// `sequence_length` keeps, per user, the interactions the files show: rows of one user are the
// prefixes of one sequence (one row per target position, LLaRA's processed files cap histories at
// 10), so a user has max(rows, longest history + 1) of them, counted before the window and filter.
// `rows` counts each user's rows.
std::vector<Sample> read_samples(const std::string& path, const Dataset& ds, const DataOptions& opt, bool required,
                                 std::map<int64_t, int64_t>& sequence_length, std::map<int64_t, int64_t>& rows) {
  std::vector<Sample> out;
  if (!required && !path_exists(path)) return out;
  TextFile f(path, kImportHint);
  std::string_view line;
  auto check_item = [&](int64_t id) {
    if (id < 0 || id >= ds.num_items)
      f.fail("item id " + std::to_string(id) + " out of range [0, " + std::to_string(ds.num_items) + ")");
    return (int32_t)id;
  };
  while (f.next(line)) {
    if (line.empty()) continue;
    auto fs = f.fields(line, '\t', 3, false, "user_id<TAB>h1 h2 ... hk<TAB>target");
    Sample s;
    s.user = f.to_int(fs[0], "user id");
    std::string_view h = fs[1];
    size_t start = 0;
    while (start < h.size()) {
      size_t sp = h.find(' ', start);
      if (sp == std::string_view::npos) sp = h.size();
      if (sp > start) s.history.push_back(check_item(f.to_int(h.substr(start, sp - start), "history item id")));
      start = sp + 1;
    }
    s.target = check_item(f.to_int(fs[2], "target item id"));
    int64_t& len = sequence_length[s.user];
    len = std::max({len, (int64_t)s.history.size() + 1, ++rows[s.user]});
    if ((int)s.history.size() > opt.max_history)
      s.history.erase(s.history.begin(), s.history.end() - opt.max_history);
    if ((int)s.history.size() >= opt.min_history) out.push_back(std::move(s));
  }
  return out;
}

// Optional genres.tsv: "id<TAB>genre|genre|..." (scripts/import_llara_data.py --tags writes LastFM's
// artists' tags); genre names in order of first appearance; an item without a line has none.
void read_genres(const std::string& root, Dataset& ds) {
  if (!path_exists(root + "/genres.tsv")) return;
  TextFile f(root + "/genres.tsv", kImportHint);
  std::map<std::string, int> index;
  ds.item_genres.assign((size_t)ds.num_items, {});
  std::string_view line;
  while (f.next(line)) {
    if (line.empty()) continue;
    auto fs = f.fields(line, '\t', 2, false, "id<TAB>genre|genre|...");
    const int64_t id = f.to_int(fs[0], "item id");
    if (id < 0 || id >= ds.num_items)
      f.fail("item id " + std::to_string(id) + " out of range [0, " + std::to_string(ds.num_items) + ")");
    std::string_view rest = fs[1];
    while (!rest.empty()) {
      const auto bar = rest.find('|');
      const std::string name(rest.substr(0, bar));
      rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
      if (name.empty()) continue;
      auto [it, added] = index.emplace(name, (int)ds.genre_names.size());
      if (added) ds.genre_names.push_back(name);
      ds.item_genres[(size_t)id].push_back(it->second);
    }
  }
  if (ds.genre_names.empty()) ds.item_genres.clear();
}

}  // namespace

Dataset load_imported(const DataOptions& opt) {
  Dataset ds;
  ds.root = opt.root;
  const std::string meta_path = opt.root + "/dataset.json";
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_file(meta_path, kImportHint));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(meta_path + ": invalid JSON (" + e.what() + "). " + kImportHint);
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
  if (!meta.is_object() || meta.value("format", "") != "sbtrec-dataset")
    throw DataError(meta_path + ": not an sbtrec dataset (\"format\" must be \"sbtrec-dataset\"). " + kImportHint);
  if (meta.value("version", 0) != 1)
    throw DataError(meta_path + ": unsupported version " + meta.value("version", nlohmann::json(0)).dump() +
                    " (this build reads version 1)");
  if (!meta.contains("num_items") || !meta["num_items"].is_number_integer() || meta["num_items"].get<int64_t>() <= 0)
    throw DataError(meta_path + ": \"num_items\" must be a positive integer");
  ds.num_items = meta["num_items"].get<int64_t>();
  ds.name = meta.value("name", std::string("imported"));

  TextFile items(opt.root + "/items.tsv", kImportHint);
  std::string_view line;
  ds.titles.assign(ds.num_items, "");
  std::vector<bool> seen(ds.num_items, false);
  while (items.next(line)) {
    if (line.empty()) continue;
    auto fs = items.fields(line, '\t', 2, false, "id<TAB>title");
    const int64_t id = items.to_int(fs[0], "item id");
    if (id < 0 || id >= ds.num_items)
      items.fail("item id " + std::to_string(id) + " out of range [0, " + std::to_string(ds.num_items) + ")");
    if (seen[id]) items.fail("item id " + std::to_string(id) + " listed twice");
    seen[id] = true;
    ds.titles[id] = std::string(fs[1]);
  }
  for (int64_t i = 0; i < ds.num_items; ++i)
    if (!seen[i]) throw DataError(items.path() + ": item id " + std::to_string(i) + " has no title line");
  ds.raw_item_ids.resize(ds.num_items);
  for (int64_t i = 0; i < ds.num_items; ++i) ds.raw_item_ids[i] = i;
  read_genres(opt.root, ds);

  std::map<int64_t, int64_t> sequence_length, rows;  // user -> interactions, user -> rows
  ds.train = read_samples(opt.root + "/train.tsv", ds, opt, false, sequence_length, rows);
  ds.val = read_samples(opt.root + "/val.tsv", ds, opt, true, sequence_length, rows);
  ds.test = read_samples(opt.root + "/test.tsv", ds, opt, true, sequence_length, rows);
  ds.num_users = (int64_t)sequence_length.size();
  for (const auto& [user, n] : sequence_length) ds.num_interactions += n;
  if (ds.val.empty() || ds.test.empty())
    throw DataError(opt.root + ": validation or test split is empty after the min_history filter (data.min_history=" +
                    std::to_string(opt.min_history) + ")");
  return ds;
}

}  // namespace sbtrec::data
