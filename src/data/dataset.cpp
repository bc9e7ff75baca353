// Dataset dispatch, windowing, statistics, duplicate titles and export (see dataset.h).
#include "sbtrec/data/dataset.h"

#include <map>
#include <sstream>

#include "sbtrec/common/digest.h"
#include "sbtrec/common/error.h"
#include "sbtrec/common/fs.h"
#include "sbtrec/data/candidates.h"
#include "sbtrec/data/imported.h"
#include "sbtrec/data/movielens.h"
#include "sbtrec/data/titles.h"

namespace sbtrec::data {

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "val") return Split::kVal;
  if (name == "test") return Split::kTest;
  throw DataError("unknown split '" + name + "': use train, val or test");
}

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kVal: return "val";
    default: return "test";
  }
}

std::string signature(const Dataset& ds) {
  if (!ds.clean_signature.empty()) return ds.clean_signature;
  std::string b;
  auto put = [&](int64_t v) { b.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(ds.num_items);
  for (const auto& t : ds.titles) {
    put((int64_t)t.size());
    b += t;
  }
  for (const auto* split : {&ds.train, &ds.val, &ds.test}) {
    put((int64_t)split->size());
    for (const auto& s : *split) {
      put(s.user);
      put(s.target);
      put((int64_t)s.history.size());
      for (int32_t i : s.history) put(i);
    }
  }
  return sha256_hex(b);
}

uint64_t split_code(Split s) {
  switch (s) {
    case Split::kTrain: return 0;
    case Split::kVal: return 1;
    case Split::kTest: return 2;
  }
  return 0;
}

const std::vector<Sample>& Dataset::split(Split s) const {
  return s == Split::kTrain ? train : s == Split::kVal ? val : test;
}

void append_window_samples(int64_t user, const std::vector<int32_t>& items, bool every_position,
                           const DataOptions& opt, std::vector<Sample>& out) {
  auto emit = [&](size_t t) {
    const size_t begin = t > (size_t)opt.max_history ? t - opt.max_history : 0;
    if ((int)(t - begin) < opt.min_history) return;
    out.push_back({user, std::vector<int32_t>(items.begin() + begin, items.begin() + t), items[t]});
  };
  if (items.empty()) return;
  if (every_position) {
    for (size_t t = 0; t < items.size(); ++t) emit(t);
  } else {
    emit(items.size() - 1);
  }
}

Dataset load_dataset(const DataOptions& opt) {
  Dataset ds = opt.format == DataFormat::kSbtrec ? load_imported(opt) : load_movielens(opt);
  if (ds.val.empty() || ds.test.empty())
    throw DataError(opt.root + ": the validation or test split has no samples (too few users, or data.min_history too high)");
  return ds;
}

std::vector<std::vector<int32_t>> duplicate_titles(const Dataset& ds) {
  std::map<std::string, std::vector<int32_t>> by_title;
  for (int32_t i = 0; i < (int32_t)ds.titles.size(); ++i) by_title[to_lower_ascii(ds.titles[i])].push_back(i);
  std::vector<std::vector<int32_t>> out;
  for (auto& [t, ids] : by_title)
    if (ids.size() > 1) out.push_back(ids);
  return out;
}

std::string describe(const Dataset& ds) {
  std::ostringstream o;
  o << "dataset      " << ds.name << " (" << ds.root << ")\n"
    << "users        " << ds.num_users << "\n"
    << "items        " << ds.num_items << "\n"
    << "interactions " << ds.num_interactions << "\n"
    << "samples      train " << ds.train.size() << ", val " << ds.val.size() << ", test " << ds.test.size() << "\n";
  const auto dups = duplicate_titles(ds);
  o << "duplicate titles " << dups.size() << (dups.empty() ? "" : " (a generated title naming them is ambiguous)") << "\n";
  for (const auto& group : dups) {
    o << "  \"" << ds.titles[group[0]] << "\": items";
    for (auto id : group) o << " " << ds.raw_item_ids[id];
    o << "\n";
  }
  return o.str();
}

void export_samples(const Dataset& ds, Split split, const std::string& path,
                    const std::vector<CandidateSet>* candidates) {
  const auto& samples = ds.split(split);
  if (candidates && candidates->size() != samples.size())
    throw DataError("export of " + path + ": " + std::to_string(candidates->size()) + " candidate sets for " +
                    std::to_string(samples.size()) + " " + split_name(split) +
                    " samples; draw them with make_candidates for the same split");
  auto write_ids = [&](std::ostream& out, const std::vector<int32_t>& ids) {
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ds.raw_item_ids[ids[i]];
  };
  atomic_write(path, [&](std::ostream& out) {
    for (size_t n = 0; n < samples.size(); ++n) {
      const auto& s = samples[n];
      out << s.user << '\t';
      write_ids(out, s.history);
      out << '\t' << ds.raw_item_ids[s.target];
      if (candidates) {
        out << '\t';
        write_ids(out, (*candidates)[n].items);
      }
      out << '\n';
    }
  });
}

}  // namespace sbtrec::data
