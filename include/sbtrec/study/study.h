// A study (issue 23): variants x seeds of ordinary runs, each evaluated by named passes, then reported
// with statistics (`sbtrec-study run STUDY.yaml --out DIR`, `sbtrec-study report DIR`).
//
// The study file (YAML; relative paths resolve against it):
//   name: rq2_ablations          # optional: the file's stem
//   base: ../../configs/movielens/sbtrec_smollm.yaml   # the config every variant starts from
//   set: {train.max_steps: 120}  # optional: keys set for every variant (as --set)
//   seeds: [1, 2, 3]
//   reference: sbtrec            # the variant the others are tested against
//   variants:
//     - name: sbtrec
//     - {name: text_only, base: ../../configs/movielens/ablations/sbtrec_smollm_text_only.yaml}
//     - {name: single_level, set: {quantizer.levels: 1}}
//   passes:                      # evaluations of every trained run
//     - {split: test, evaluator: likelihood}
//     - {split: test, evaluator: generation}
// Each variant x seed is an ordinary run directory, DIR/<variant>/seed<k>/; each pass writes
// sbtrec-eval's predictions_<split>_<evaluator>.jsonl there. DIR/study.json records the study for the
// report (scripts/study_report.py reads it).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sbtrec::study {

struct Variant {
  std::string name;
  std::string base;               // absolute path of its base config
  std::vector<std::string> sets;  // "key=value", the study's then the variant's
};

struct Pass {
  std::string split;      // val | test
  std::string evaluator;  // a registered evaluator (eval/registry.h)
  std::string name() const { return split + "_" + evaluator; }
  std::string predictions() const { return "predictions_" + split + "_" + evaluator + ".jsonl"; }
};

struct Study {
  std::string file, name, reference;
  std::vector<Variant> variants;
  std::vector<std::uint64_t> seeds;
  std::vector<Pass> passes;
};

// Reads and checks a study file; a bad one throws ConfigError naming the file and the key.
Study load_study(const std::string& path);

enum class RunStatus { kNew, kInterrupted, kTrained, kDone };
const char* to_string(RunStatus s);

struct PlannedRun {
  std::string variant;
  std::uint64_t seed = 0;
  std::string dir;                // <out>/<variant>/seed<k>
  std::string base;               // the variant's base config
  std::vector<std::string> sets;  // the variant's keys, then seed and output_dir
};

// The runs of `out`, variant by variant, seed by seed; `only` (when not empty) keeps one variant and
// must name one.
std::vector<PlannedRun> plan_runs(const Study& study, const std::string& out, const std::string& only = "");

// kDone: trained (results.json) and every pass's predictions written; kTrained: trained, passes
// missing; kInterrupted: state/ saved but not finished (continues with --resume); kNew: anything else.
RunStatus run_status(const PlannedRun& run, const Study& study);

// What DIR/study.json holds: name, reference, variants, seeds, passes (name, split, evaluator,
// predictions), and the study file.
nlohmann::json study_json(const Study& study);

// Runs job(i, slot) for i = 0..count-1 in order, at most `parallel` at once; `slot` (0..parallel-1)
// is the lane the job runs in, never shared by two running jobs (a GPU, a share of the cores). A job
// fails by returning non-zero or throwing; after a failure no new job starts, the running ones
// finish. Returns the indices of the failed jobs, in order.
std::vector<size_t> run_jobs(size_t count, int parallel, const std::function<int(size_t index, int slot)>& job);

}  // namespace sbtrec::study
