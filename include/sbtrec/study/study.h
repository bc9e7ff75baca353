// A study (issue 23): variants x seeds of ordinary runs, each evaluated by named passes, then reported
// with statistics (`sbtrec-study run STUDY.yaml --out DIR`, `sbtrec-study report DIR`).
//
// The study file (YAML; relative paths resolve against it):
//   name: rq2_ablations          # optional: the file's stem
//   base: ../../configs/movielens/sbtrec_smollm.yaml   # the config every variant starts from
//   set: {train.max_steps: 120}  # optional: keys set for every variant whose recipe reads them (as --set;
//                                # an encoder baseline skips the LLM's keys), refused if none reads one
//   seeds: [1, 2, 3]
//   reference: sbtrec            # the variant the others are tested against
//   variants:
//     - name: sbtrec
//     - {name: text_only, base: ../../configs/movielens/ablations/sbtrec_smollm_text_only.yaml}
//     - {name: single_level, set: {quantizer.levels: 1}}
//   passes:                      # evaluations of every trained run
//     - {split: test, evaluator: likelihood}
//     - {split: test, evaluator: generation}
//     - {split: test, evaluator: generation, noise: {kind: off_genre, count: 1, position: end}}
//                                # eval.noise (data/noise.h): the same cases with noisy histories
//   prepare:                     # optional: done once per study, in DIR/prepared/, and given to every run
//     data: {root: ../../../shared/data/ml-100k}   # or {synth: {titles: random}} (sbtrec-data synth), or
//                                # {llara: DIR, tags: HETREC_DIR} (scripts/import_llara_data.py, tags as
//                                # genres): data.root of every run
//     encoder: {import: ../../../shared/models/llara-rec-models/movielens.pt}   # LLaRA's SASRec
//                                # (scripts/import_llara_checkpoint.py), or {train: CONFIG, set: {...}}
//                                # (sbtrec-train), or {checkpoint: DIR}: encoder.checkpoint of every run
// HDSD is prepared without being asked: an SBT-Rec run whose config fits codebooks itself (quantizer
// enabled, quantizer.codebooks empty) gets them from DIR/prepared/hdsd-<key>, fitted once by
// sbtrec-quantize for every run with the same quantizer settings, data, encoder and k-means seed (the
// fit the run would have made: the same function on the same inputs).
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
  size_t study_sets = 0;          // the first this many of `sets` are the study's
};

struct Pass {
  std::string split;      // val | test
  std::string evaluator;  // a registered evaluator (eval/registry.h)
  // eval.noise of this pass (data/noise.h): "kind=...", "count=...", "position=...", "seed=..." as
  // given; empty = clean histories.
  std::vector<std::string> noise;
  // split_evaluator, then _noise_<kind>_<count>_<position>[_seed<k>] for a noisy pass.
  std::string name() const;
  std::string predictions() const { return "predictions_" + name() + ".jsonl"; }
};

// What `prepare:` asks for; kinds are empty when not asked.
struct Prepare {
  std::string data_kind;                  // root | synth | llara
  std::string data_path;                  // root, llara: the source directory (absolute)
  std::string data_tags;                  // llara: HetRec 2011's LastFM directory (genres.tsv from its tags)
  std::vector<std::string> synth_args;    // synth: sbtrec-data synth's options, e.g. --titles random
  std::string encoder_kind;               // checkpoint | import | train
  std::string encoder_path;               // the directory, the LLaRA .pt file or the encoder config (absolute)
  std::vector<std::string> encoder_sets;  // train: "key=value"
};

struct Study {
  std::string file, name, reference;
  Prepare prepare;
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
  // Runs this one starts from (a variant's key set to "@<earlier variant>": that variant's run of the
  // same seed, e.g. train.init_from for S-DPO after SFT): they must be finished before it starts.
  std::vector<std::string> after;
};

// DIR/prepared/ and what lies in it: the data (synth, llara), the encoder (import, train), HDSD fits.
std::string prepared_dir(const std::string& out);
// data.root / encoder.checkpoint every run gets from `prepare:` ("" when it does not say).
std::string prepared_data_root(const Study& study, const std::string& out);
std::string prepared_encoder(const Study& study, const std::string& out);

// The runs of `out`, variant by variant, seed by seed (their sets start with the prepared data.root and
// encoder.checkpoint, then the study's keys the variant's recipe reads, then its own); `only` (when not
// empty) keeps one variant and must name one. A study key that no variant's recipe reads is refused.
std::vector<PlannedRun> plan_runs(const Study& study, const std::string& out, const std::string& only = "");

// kDone: trained (results.json) and every pass's predictions written; kTrained: trained, passes
// missing; kInterrupted: state/ saved but not finished (continues with --resume); kNew: anything else.
RunStatus run_status(const PlannedRun& run, const Study& study);

// Where the HDSD fit a run would make itself is prepared once: DIR/prepared/hdsd-<key>, the key a digest
// of the resolved quantizer section (without codebooks), data.root, encoder.checkpoint, the k-means seed
// and the batch size of the user vectors; "" when the run fits nothing (an encoder run, quantizer
// disabled, codebooks given).
std::string hdsd_prep_dir(const PlannedRun& run, const std::string& out);

// What DIR/study.json holds: name, reference, variants, seeds, passes (name, split, evaluator,
// predictions), and the study file.
nlohmann::json study_json(const Study& study);

// Runs job(i, slot) for i = 0..count-1 in order, at most `parallel` at once; `slot` (0..parallel-1)
// is the lane the job runs in, never shared by two running jobs (a GPU, a share of the cores). A job
// fails by returning non-zero or throwing; after a failure no new job starts, the running ones
// finish. Returns the indices of the failed jobs, in order.
std::vector<size_t> run_jobs(size_t count, int parallel, const std::function<int(size_t index, int slot)>& job);

}  // namespace sbtrec::study
