// Data parallelism on torch.distributed's C++ engine (c10d): the process layout a launcher gives
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: torchrun, scripts/srun_sbtrec.sh,
// `sbtrec-train --nproc N`), a c10d TCPStore rendezvous served by rank 0, and one backend (Gloo on
// CPU, NCCL on CUDA) for the collectives the trainers need. A world of one process makes every
// collective a no-op, so the trainers call the same code at every scale.
// Every failure of a collective (a peer died, the timeout passed) becomes an sbtrec::Error naming this
// rank, the collective and what to check, instead of a hang.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "sbtrec/dist/options.h"

namespace sbtrec::dist {

// The process layout of a run.
struct World {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world_size > 1; }
};
// The layout from the environment: WORLD_SIZE unset (or 1) is a single process; otherwise RANK,
// MASTER_ADDR and MASTER_PORT must be set (LOCAL_RANK defaults to RANK, LOCAL_WORLD_SIZE to
// WORLD_SIZE). A missing or malformed variable is a ConfigError naming it.
World world_from_env();

// The device a rank runs on: `configured` (llm.device) with CUDA's index replaced by local_rank when
// the world is distributed and the config names no index.
torch::Device rank_device(const std::string& configured, const World& w);

// Where a backend's collective tensors live: NCCL on this rank's CUDA device (cuda:LOCAL_RANK, never
// the bare "cuda" that means cuda:0 on every rank), Gloo on the CPU. A CUDA device without an index
// under NCCL is a ConfigError (rank_device gives every rank its index).
torch::Device collective_device(const std::string& backend, torch::Device device);

class ProcessGroup {
 public:
  // A single process: no store, no backend; every collective returns at once.
  ProcessGroup();
  // Joins the group of `w` over a TCPStore at master_addr:master_port (rank 0 serves it) with
  // `o.backend` for tensors on `device`. Returns once every rank has joined (or throws after o.timeout_s).
  ProcessGroup(const World& w, const DistOptions& o, torch::Device device);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return world_.rank; }
  int size() const { return world_.world_size; }
  bool main() const { return world_.rank == 0; }  // the rank that writes the run directory
  const World& world() const { return world_; }
  const std::string& backend_name() const { return backend_name_; }

  // Element-wise sum over the ranks, in place; `what` names the collective in errors.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what);
  double all_reduce_sum(double x, const std::string& what);
  // Every rank's tensors become root's, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int root, const std::string& what);
  void barrier(const std::string& what);
  // Every rank's `mine`, in rank order, on every rank (through the store: small payloads such as
  // per-case evaluation results).
  std::vector<std::string> all_gather_bytes(const std::string& mine, const std::string& what);
  // Where this group's collective tensors live (collective_device; the CPU for a single process).
  torch::Device device() const { return device_; }
  // Keys in the rendezvous store (0 for a single process): gathers leave none behind.
  int64_t store_keys() const;

 private:
  struct Impl;
  World world_;
  torch::Device device_{torch::kCPU};
  std::string backend_name_ = "none";
  std::unique_ptr<Impl> impl_;
  int64_t gathers_ = 0;
};

// Sums the gradients of `params` over the ranks in flat buckets of at most `bucket_bytes` (one per
// dtype and device run), every bucket's all-reduce launched before the first is waited for. A
// parameter without a gradient on some rank (it took no part in that rank's loss) counts as zeros
// there and gets a zero gradient. Call after the last backward of an optimizer step.
void all_reduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes);

// Whether every rank holds bit-identical `tensors` (rank 0's are broadcast and compared); on a
// mismatch throws an Error naming the first differing tensor by `names`.
void check_identical(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, const std::vector<std::string>& names,
                     const std::string& what);

}  // namespace sbtrec::dist
