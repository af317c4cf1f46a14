// runtime/comm/store.h — the key-value store ranks use to find each other (rendezvous).
//
// Before ranks can talk directly they must exchange addresses (Gloo) or a unique id (NCCL). A Store
// is the small shared dictionary they do it through: each rank Set()s what it offers and Get()s what
// the others offered, waiting until they have. Implementations:
//   FileStore (file_store.h)  a directory every rank can see: local launch (`--nproc N`), or a shared
//                             file system.
//   TcpStore  (tcp_store.h)   a server on MASTER_ADDR:MASTER_PORT hosted by rank 0: multi-host,
//                             torchrun-style launch.
//
//   std::shared_ptr<Store> store = ...;
//   CAIRN_RETURN_IF_ERROR(store->Set("job/addr/3", my_address));
//   CAIRN_ASSIGN_OR_RETURN(std::string addr0, store->Get("job/addr/0", absl::Seconds(30)));
//
// Keys are opaque byte strings (use '/'-separated prefixes per group); values are byte strings.
// A store outlives one job only by mistake: old keys would satisfy new waits, so every job uses a fresh
// directory or server, or a fresh key prefix.
// Implementations are thread-safe.
#ifndef CAIRN_RUNTIME_COMM_STORE_H_
#define CAIRN_RUNTIME_COMM_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cairn::runtime {

class Store {
 public:
  virtual ~Store() = default;

  // Sets `key` to `value`, replacing any earlier value.
  // Errors: InvalidArgument for an empty key; Unavailable when the store cannot be reached/written.
  virtual absl::Status Set(absl::string_view key, absl::string_view value) = 0;

  // Returns the value of `key`, waiting up to `timeout` for someone to set it (a zero timeout looks
  // once). Errors: DeadlineExceeded (naming the key) when it is not set in time; Unavailable when the
  // store cannot be reached.
  virtual absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) = 0;

  // Waits up to `timeout` until every key in `keys` is set.
  // Errors: DeadlineExceeded listing the keys still missing; Unavailable as for Get.
  virtual absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout) = 0;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_STORE_H_
