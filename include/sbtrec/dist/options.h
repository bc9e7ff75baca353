// Options of data-parallel training (`dist:`): the c10d backend, the collective timeout and the
// gradient bucket size. The process layout itself (rank, world size, master address) comes from the
// launcher's environment (process_group.h), never from the config, so one config runs at any scale.
#pragma once
#include "sbtrec/common/config_io.h"

namespace sbtrec::dist {

// auto: NCCL when the LLM runs on CUDA, else Gloo.
enum class Backend { kAuto, kGloo, kNccl };
inline const config::Choices<Backend>& backends() {
  static const config::Choices<Backend> c = {{"auto", Backend::kAuto}, {"gloo", Backend::kGloo}, {"nccl", Backend::kNccl}};
  return c;
}

struct DistOptions {
  Backend backend = Backend::kAuto;
  double timeout_s = 300;  // a collective or rendezvous waiting longer than this fails (a rank died or hangs)
  double bucket_mb = 25;   // gradients are all-reduced in flat buckets of at most this size (PyTorch DDP's default)
};

inline void visit_fields(DistOptions& o, config::Visitor& v) {
  v.field("backend", o.backend, "c10d backend of data-parallel runs: auto (nccl on CUDA, else gloo), gloo, nccl", backends());
  v.field("timeout_s", o.timeout_s,
          "data-parallel runs: seconds a rendezvous or collective may wait for the other ranks before the run fails",
          config::greater_than(0));
  v.field("bucket_mb", o.bucket_mb, "data-parallel runs: size cap of one flat gradient all-reduce bucket (MB)",
          config::greater_than(0));
}

}  // namespace sbtrec::dist
