// c10d process groups for data-parallel training (see process_group.h). Gloo is compiled in whenever
// LibTorch has it (the wheel does; Debian's libgloo-dev provides the headers its ProcessGroupGloo.hpp
// includes), NCCL when the build found LibTorch's CUDA part (SBTREC_WITH_NCCL, see CMakeLists.txt).
#include "sbtrec/dist/process_group.h"

#include <spdlog/spdlog.h>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SBTREC_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <map>

#include "sbtrec/common/error.h"

namespace sbtrec::dist {

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, std::optional<int> fallback, int lo, int hi) {
  const auto v = env(name);
  if (!v) {
    if (fallback) return *fallback;
    throw ConfigError(std::string("environment variable ") + name +
                      " is not set, but WORLD_SIZE is: a data-parallel launch sets RANK, WORLD_SIZE, MASTER_ADDR and "
                      "MASTER_PORT (torchrun, scripts/srun_sbtrec.sh or sbtrec-train --nproc N do)");
  }
  char* end = nullptr;
  const long x = std::strtol(v->c_str(), &end, 10);
  if (end == v->c_str() || *end != '\0' || x < lo || x > hi)
    throw ConfigError(fmt::format("environment variable {}='{}' is not an integer in [{}, {}]", name, *v, lo, hi));
  return (int)x;
}

bool loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

std::chrono::milliseconds millis(double seconds) { return std::chrono::milliseconds((int64_t)(seconds * 1000.0)); }

}  // namespace

World world_from_env() {
  World w;
  w.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (w.world_size == 1) return w;
  w.rank = env_int("RANK", std::nullopt, 0, w.world_size - 1);
  w.local_rank = env_int("LOCAL_RANK", w.rank, 0, w.world_size - 1);
  w.local_world_size = env_int("LOCAL_WORLD_SIZE", w.world_size, 1, w.world_size);
  const auto addr = env("MASTER_ADDR");
  if (!addr)
    throw ConfigError("environment variable MASTER_ADDR is not set, but WORLD_SIZE is " + std::to_string(w.world_size) +
                      ": set it to the host of rank 0");
  w.master_addr = *addr;
  w.master_port = env_int("MASTER_PORT", std::nullopt, 1, 65535);
  return w;
}

torch::Device rank_device(const std::string& configured, const World& w) {
  torch::Device d(configured);
  if (d.is_cuda() && !d.has_index() && w.distributed()) return torch::Device(torch::kCUDA, (c10::DeviceIndex)w.local_rank);
  return d;
}

torch::Device collective_device(const std::string& backend, torch::Device device) {
  if (backend != "nccl") return torch::kCPU;
  if (!device.is_cuda() || !device.has_index())
    throw ConfigError("dist.backend nccl: collectives need this rank's CUDA device with its index (cuda:LOCAL_RANK), got '" +
                      device.str() + "'");
  return device;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout{0};
};

ProcessGroup::ProcessGroup(const World& w, const DistOptions& o, torch::Device device) : world_(w) {
  if (!w.distributed()) return;
  impl_ = std::make_unique<Impl>();
  impl_->timeout = millis(o.timeout_s);
  const bool nccl = o.backend == Backend::kNccl || (o.backend == Backend::kAuto && device.is_cuda());
  spdlog::info("rank {}/{}: joining {}:{} ({}, timeout {:g} s)", w.rank, w.world_size, w.master_addr, w.master_port,
               nccl ? "nccl" : "gloo", o.timeout_s);
  try {
    c10d::TCPStoreOptions so;
    so.port = (std::uint16_t)w.master_port;
    so.isServer = w.rank == 0;
    so.numWorkers = (size_t)w.world_size;
    so.waitWorkers = true;
    so.timeout = impl_->timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(w.master_addr, so);
    if (nccl) {
#ifdef SBTREC_WITH_NCCL
      // This rank's GPU is current before NCCL creates its communicator (else every rank's would be
      // cuda:0), and every collective tensor lives on it.
      device_ = collective_device("nccl", device);
      c10::cuda::set_device(device_.index());
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = impl_->timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, w.rank, w.world_size, opts);
      backend_name_ = "nccl";
#else
      throw ConfigError("dist.backend: NCCL was asked for, but this build of sbtrec has no NCCL (LibTorch without CUDA); "
                        "use dist.backend=gloo");
#endif
    } else {
      if (device.is_cuda())
        throw ConfigError("dist.backend gloo with llm.device " + device.str() +
                          ": this build all-reduces Gloo on CPU tensors only; use dist.backend=nccl (or auto) on CUDA");
      auto opts = c10d::ProcessGroupGloo::Options::create(impl_->timeout);
      if (const auto ifname = env("GLOO_SOCKET_IFNAME"))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
      else if (loopback(w.master_addr))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, w.rank, w.world_size, opts);
      backend_name_ = "gloo";
    }
  } catch (const sbtrec::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("rank {}/{}: could not join the process group at {}:{} within dist.timeout_s={:g}: {}. Check that "
                            "every rank was started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE and that the port "
                            "is free and reachable",
                            w.rank, w.world_size, w.master_addr, w.master_port, o.timeout_s,
                            c10::GetExceptionString(e)));
  }
  barrier("joining");
  spdlog::info("rank {}/{}: process group ready ({})", w.rank, w.world_size, backend_name_);
}

ProcessGroup::ProcessGroup() = default;
ProcessGroup::~ProcessGroup() = default;

namespace {

[[noreturn]] void collective_failed(const World& w, const std::string& what, const std::string& why) {
  throw Error(fmt::format("rank {}/{}: the collective '{}' failed: {}. Another rank probably died or stalls (see its log; "
                          "a stalled rank fails after dist.timeout_s)",
                          w.rank, w.world_size, what, why));
}

void wait(const World& w, const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    collective_failed(w, what, c10::GetExceptionString(e));
  }
}

}  // namespace

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) {
  if (!impl_ || tensors.empty()) return;
  // One all-reduce per tensor (c10d reads several tensors of one call as one rank's multi-device
  // inputs), every one in flight before the first is awaited.
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    for (auto& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      works.push_back(impl_->backend->allreduce(one));
    }
  } catch (const c10::Error& e) {
    collective_failed(world_, what, e.what_without_backtrace());
  }
  for (auto& w : works) wait(world_, w, what);
}

double ProcessGroup::all_reduce_sum(double x, const std::string& what) {
  if (!impl_) return x;
  std::vector<torch::Tensor> t = {torch::tensor({x}, torch::kFloat64)};
  t[0] = t[0].to(device_);
  all_reduce_sum(t, what);
  return t[0].cpu().item<double>();
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root, const std::string& what) {
  if (!impl_ || tensors.empty()) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    for (auto& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      works.push_back(impl_->backend->broadcast(one, o));
    }
  } catch (const c10::Error& e) {
    collective_failed(world_, what, e.what_without_backtrace());
  }
  for (auto& w : works) wait(world_, w, what);
}

void ProcessGroup::barrier(const std::string& what) {
  if (!impl_) return;
  try {
    wait(world_, impl_->backend->barrier(), what);
  } catch (const c10::Error& e) {
    collective_failed(world_, what, e.what_without_backtrace());
  }
}

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& mine, const std::string& what) {
  if (!impl_) return {mine};
  const std::string prefix = "sbtrec/gather/" + std::to_string(gathers_++) + "/";
  std::vector<std::string> out((size_t)world_.world_size);
  try {
    impl_->store->set(prefix + std::to_string(world_.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
    for (int r = 0; r < world_.world_size; ++r) {
      const auto v = impl_->store->get(prefix + std::to_string(r));
      out[(size_t)r].assign(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    collective_failed(world_, what, c10::GetExceptionString(e));
  }
  // Everyone has read every key before any rank may leave; then each rank deletes its own, so a long
  // run's gathers (one per state save) do not pile up in the store.
  barrier(what);
  try {
    impl_->store->deleteKey(prefix + std::to_string(world_.rank));
  } catch (const std::exception& e) {
    collective_failed(world_, what, c10::GetExceptionString(e));
  }
  return out;
}

int64_t ProcessGroup::store_keys() const {
  return impl_ ? impl_->store->getNumKeys() : 0;
}

void all_reduce_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  if (group.size() == 1) return;
  // Which parameters have a gradient on some rank: the others stay without one everywhere, as in one
  // process (the optimizer skips them; a zero gradient would still move Adam's moments).
  std::vector<torch::Tensor> has = {torch::empty({(int64_t)params.size()}, torch::kFloat32)};
  for (size_t i = 0; i < params.size(); ++i) has[0][(int64_t)i] = params[i].grad().defined() ? 1.0f : 0.0f;
  has[0] = has[0].to(group.device());
  group.all_reduce_sum(has, "gradient presence");
  const auto present = has[0].cpu();
  // Buckets: runs of parameters with one dtype and device, at most bucket_bytes each (one oversized
  // parameter is a bucket of its own).
  std::vector<std::vector<size_t>> buckets;
  int64_t bytes = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (present[(int64_t)i].item<float>() == 0.0f) continue;
    const auto& p = params[i];
    const int64_t b = p.numel() * (int64_t)p.element_size();
    const bool fits = !buckets.empty() && bytes + b <= bucket_bytes &&
                      params[buckets.back().front()].scalar_type() == p.scalar_type() &&
                      params[buckets.back().front()].device() == p.device();
    if (!fits) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += b;
  }
  std::vector<torch::Tensor> flats;
  flats.reserve(buckets.size());
  for (const auto& bucket : buckets) {
    std::vector<torch::Tensor> grads;
    for (size_t i : bucket) {
      const auto& p = params[i];
      grads.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    }
    flats.push_back(torch::cat(grads));  // [sum of numel]
  }
  // One all-reduce per bucket, all in flight before the first is awaited (Gloo runs them on its
  // worker threads; NCCL on its stream).
  group.all_reduce_sum(flats, "gradient all-reduce");
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t at = 0;
    for (size_t i : buckets[k]) {
      auto p = params[i];
      auto g = flats[k].narrow(0, at, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(g);
      else
        p.mutable_grad() = g.clone();
      at += p.numel();
    }
  }
}

void check_identical(ProcessGroup& group, const std::vector<torch::Tensor>& tensors, const std::vector<std::string>& names,
                     const std::string& what) {
  if (group.size() == 1) return;
  std::vector<torch::Tensor> copies;
  for (const auto& t : tensors) copies.push_back(t.detach().clone());
  group.broadcast(copies, 0, what);
  int64_t bad = -1;
  for (size_t i = 0; i < tensors.size() && bad < 0; ++i)
    if (!torch::equal(copies[i], tensors[i].detach())) bad = (int64_t)i;
  // Every rank learns whether any rank differs, so all fail together.
  const double mismatches = group.all_reduce_sum(bad >= 0 ? 1.0 : 0.0, what);
  if (bad >= 0)
    throw Error(fmt::format("rank {}: {}: '{}' differs from rank 0's copy; the ranks no longer train one model (a "
                            "non-deterministic kernel, or a rank that skipped a step)",
                            group.rank(), what, names.at((size_t)bad)));
  if (mismatches > 0)
    throw Error(fmt::format("rank {}: {}: {} rank(s) hold trainables that differ from rank 0's", group.rank(), what,
                            mismatches));
}

}  // namespace sbtrec::dist
