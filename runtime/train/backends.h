// runtime/train/backends.h — the runtime's compute backends, communicators and rendezvous stores,
// made the way a host process makes them: the agent's probes (agent/probes) and tools that are not
// part of runtime/ (whose implementation libraries are private to it). Pick by kind; the
// implementations stay behind their interfaces (compute_backend.h, communicator.h, store.h).
//
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<ComputeBackend> backend,
//                          MakeComputeBackend(DeviceKind::kCpu, /*device=*/0));
//   CAIRN_ASSIGN_OR_RETURN(std::shared_ptr<Store> store, OpenDirectoryStore("/tmp/probe-1"));
//   WorldOptions world;
//   world.hostname = "10.0.0.2";                 // Gloo listens here (CPU); ignored by NCCL
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
//                          MakeWorldCommunicator(DeviceKind::kCpu, rank, size, store,
//                                                backend.get(), world));
//
// Kinds: kCpu — CpuBackend (fp32) and a GlooCommunicator on host memory; kCuda — the CUDA bf16
// backend on GPU `device` and an NcclCommunicator (one GPU per rank). The kCuda kind exists only in
// builds of the `backends_cuda` target (tag "cuda"); the plain `backends` target answers it with
// Unimplemented, so CPU-only binaries link no CUDA. Errors: as the implementations' factories.
#ifndef CAIRN_RUNTIME_TRAIN_BACKENDS_H_
#define CAIRN_RUNTIME_TRAIN_BACKENDS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/store.h"
#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {

enum class DeviceKind { kCpu, kCuda };

// "cpu", "cuda".
const char* ToString(DeviceKind kind);
// The inverse; InvalidArgument for other names.
absl::StatusOr<DeviceKind> DeviceKindFromName(absl::string_view name);

// True when this build can make `kind` (kCuda: built with backends_cuda).
bool Supports(DeviceKind kind);

absl::StatusOr<std::unique_ptr<ComputeBackend>> MakeComputeBackend(DeviceKind kind, int device);

struct WorldOptions {
  std::string hostname;    // Gloo: this host's address the peers reach ("" = 127.0.0.1)
  int device = 0;          // NCCL: this rank's GPU
  std::string name = "world";
  absl::Duration timeout = absl::Minutes(5);             // every operation
  absl::Duration rendezvous_timeout = absl::Minutes(5);  // meeting the other ranks
};

// Rank `rank` of `size` meeting through `store`, for buffers of `backend` (host memory for kCpu).
absl::StatusOr<std::unique_ptr<Communicator>> MakeWorldCommunicator(
    DeviceKind kind, int rank, int size, std::shared_ptr<Store> store, ComputeBackend* backend,
    const WorldOptions& options);

// A FileStore on `dir` (created if missing): local rendezvous of processes on one host.
absl::StatusOr<std::shared_ptr<Store>> OpenDirectoryStore(const std::string& dir);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_TRAIN_BACKENDS_H_
