// runtime/comm/launch_env.h — where this worker sits in the job, read from the launcher's environment.
//
// Launchers (torchrun, Slurm scripts, Kubernetes manifests, `cairn-train --nproc`) tell each worker
// its place through environment variables; this is the one place that reads and checks them:
//
//   RANK              this worker's rank in [0, WORLD_SIZE)                          required
//   WORLD_SIZE        number of workers                                             required
//   LOCAL_RANK        rank among the workers of this host (picks the GPU)           default 0
//   LOCAL_WORLD_SIZE  workers on this host                                          default 1
//   MASTER_ADDR       host of rank 0, which serves the rendezvous store (TcpStore)  default 127.0.0.1
//   MASTER_PORT       port of that store                                            required if WORLD_SIZE > 1
//   CAIRN_MASTER_PORT_FILE  with MASTER_PORT=0 on rank 0: the store takes a free port and rank 0
//                     writes it to this file (atomically), for a launcher that starts the other
//                     ranks once it knows the port (tests; scripts that cannot pick a port)
//
//   CAIRN_ASSIGN_OR_RETURN(LaunchEnv env, LaunchEnv::FromEnvironment());
//   // env.rank, env.world_size, env.master_addr, env.master_port ...
#ifndef CAIRN_RUNTIME_COMM_LAUNCH_ENV_H_
#define CAIRN_RUNTIME_COMM_LAUNCH_ENV_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cairn::runtime {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0 only when world_size == 1, or on rank 0 with master_port_file
  std::string master_port_file;

  // Reads the variables above from the process environment.
  // Errors: InvalidArgument naming the variable that is missing, not an integer or out of range.
  static absl::StatusOr<LaunchEnv> FromEnvironment();

  // Same, reading through `lookup` (nullopt = unset); for tests and for launchers that build an
  // environment for a child.
  static absl::StatusOr<LaunchEnv> FromLookup(
      const std::function<std::optional<std::string>(absl::string_view)>& lookup);
};

class TcpStore;

// The rendezvous store of a launched job: rank 0 hosts the TcpStore server at MASTER_PORT (a free
// port when it is 0, written to master_port_file when set) and every rank connects to it.
absl::StatusOr<std::unique_ptr<TcpStore>> OpenLaunchStore(const LaunchEnv& env,
                                                          absl::Duration timeout);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_LAUNCH_ENV_H_
