#include "runtime/comm/testing/backends.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/staged/staged_communicator.h"

// Two builds of this file: the CPU backends (:test_backends), or NCCL only (:test_backends_nccl).
#ifdef CAIRN_COMM_TEST_NCCL
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/comm/nccl/testing/cuda_staging_memory.h"
#else
#include "runtime/comm/gloo/gloo_communicator.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/comm/tcp_store.h"
#include "runtime/compute/cpu/cpu_backend.h"
#endif

namespace cairn::runtime::testing {
namespace {

// A fresh directory name under TEST_TMPDIR for each group.
std::string FreshDirectory() {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/comm-", getpid(), "-", counter++);
}

#ifndef CAIRN_COMM_TEST_NCCL

// A TcpStore client that also keeps the (shared) server alive.
class ServerOwningStore final : public Store {
 public:
  ServerOwningStore(std::shared_ptr<TcpStoreServer> server, std::unique_ptr<TcpStore> client)
      : server_(std::move(server)), client_(std::move(client)) {}
  absl::Status Set(absl::string_view key, absl::string_view value) override {
    return client_->Set(key, value);
  }
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override {
    return client_->Get(key, timeout);
  }
  absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout) override {
    return client_->Wait(keys, timeout);
  }

 private:
  std::shared_ptr<TcpStoreServer> server_;
  std::unique_ptr<TcpStore> client_;
};

// Creates the Gloo ranks concurrently (each blocks in the rendezvous), one store each.
absl::StatusOr<CommGroup> MakeGlooGroup(
    int size, absl::Duration timeout,
    const std::function<absl::StatusOr<std::shared_ptr<Store>>()>& make_store) {
  std::vector<absl::StatusOr<std::unique_ptr<GlooCommunicator>>> made(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      absl::StatusOr<std::shared_ptr<Store>> store = make_store();
      if (!store.ok()) {
        made[r] = store.status();
        return;
      }
      GlooOptions options;
      options.timeout = timeout;
      // Short operation timeouts must not make a slow start (a loaded test machine) fail the group.
      options.rendezvous_timeout = std::max(timeout, absl::Seconds(60));
      made[r] = GlooCommunicator::Create(r, size, *store, options);
    });
  }
  for (std::thread& t : threads) t.join();
  CommGroup group;
  for (int r = 0; r < size; ++r) {
    if (!made[r].ok()) return made[r].status();
    group.push_back(*std::move(made[r]));
  }
  return group;
}

// Wraps every communicator of `group` in a StagedCommunicator over the CPU backend's memory.
absl::StatusOr<CommGroup> Staged(absl::StatusOr<CommGroup> group) {
  static CpuBackend* const cpu = new CpuBackend();  // outlives every group
  if (!group.ok()) return group.status();
  CommGroup staged;
  for (std::unique_ptr<Communicator>& comm : *group) {
    staged.push_back(StagedCommunicator::Create(std::move(comm), cpu));
  }
  return staged;
}

absl::StatusOr<CommGroup> MakeLocalGroup(int size, absl::Duration timeout) {
  LocalOptions options;
  options.timeout = timeout;
  return LocalCommunicator::CreateGroup(size, options);
}

absl::StatusOr<CommGroup> MakeGlooFileGroup(int size, absl::Duration timeout) {
  const std::string dir = FreshDirectory();
  return MakeGlooGroup(size, timeout, [&]() -> absl::StatusOr<std::shared_ptr<Store>> {
    absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir);
    if (!store.ok()) return store.status();
    return std::shared_ptr<Store>(*std::move(store));
  });
}

#else  // CAIRN_COMM_TEST_NCCL

// One NcclCommunicator per rank on GPU r (ranks as threads), each wrapped so that it takes host
// buffers (CudaStagingMemory).
absl::StatusOr<CommGroup> MakeNcclGroup(int size, absl::Duration timeout) {
  const int gpus = VisibleGpuCount();
  if (gpus < size) {
    return absl::FailedPreconditionError(
        absl::StrCat("nccl: ", size, " ranks need ", size, " GPUs; ", gpus, " visible"));
  }
  const std::string dir = FreshDirectory();
  std::vector<absl::StatusOr<std::unique_ptr<NcclCommunicator>>> made(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir);
      if (!store.ok()) {
        made[r] = store.status();
        return;
      }
      NcclOptions options;
      options.device = r;
      options.timeout = timeout;
      options.rendezvous_timeout = std::max(timeout, absl::Seconds(60));
      made[r] = NcclCommunicator::Create(r, size, std::shared_ptr<Store>(*std::move(store)),
                                         options);
    });
  }
  for (std::thread& t : threads) t.join();
  CommGroup group;
  for (int r = 0; r < size; ++r) {
    if (!made[r].ok()) return made[r].status();
    group.push_back(StagedCommunicator::Create(*std::move(made[r]),
                                               std::make_shared<CudaStagingMemory>(r)));
  }
  return group;
}
#endif  // CAIRN_COMM_TEST_NCCL

}  // namespace

std::vector<CommBackend> AllCommBackends() {
  std::vector<CommBackend> backends;
#ifdef CAIRN_COMM_TEST_NCCL
  // The GPU build of the suites: NCCL only (the CPU backends run in the ordinary build).
  CommBackend nccl{"nccl", MakeNcclGroup};
  nccl.exact_float_avg = false;
  backends.push_back(nccl);
#else
  backends.push_back({"local", MakeLocalGroup});
  backends.push_back({"gloo_file", MakeGlooFileGroup});
  backends.push_back(
      {"gloo_tcp", [](int size, absl::Duration timeout) -> absl::StatusOr<CommGroup> {
         absl::StatusOr<std::unique_ptr<TcpStoreServer>> server =
             TcpStoreServer::Start("127.0.0.1", 0);
         if (!server.ok()) return server.status();
         std::shared_ptr<TcpStoreServer> shared(*std::move(server));
         return MakeGlooGroup(size, timeout, [&]() -> absl::StatusOr<std::shared_ptr<Store>> {
           absl::StatusOr<std::unique_ptr<TcpStore>> client =
               TcpStore::Connect("127.0.0.1", shared->port(), timeout);
           if (!client.ok()) return client.status();
           return std::shared_ptr<Store>(new ServerOwningStore(shared, *std::move(client)));
         });
       }});
  backends.push_back({"staged_local", [](int size, absl::Duration timeout) {
                        return Staged(MakeLocalGroup(size, timeout));
                      }});
  backends.push_back({"staged_gloo", [](int size, absl::Duration timeout) {
                        return Staged(MakeGlooFileGroup(size, timeout));
                      }});
#endif
  return backends;
}

const CommBackend& FindCommBackend(const std::string& name) {
  static const std::vector<CommBackend>* backends = new std::vector<CommBackend>(AllCommBackends());
  for (const CommBackend& backend : *backends) {
    if (backend.name == name) return backend;
  }
  CAIRN_CHECK(false) << "no communicator backend named " << name;
  return backends->front();
}

void RunOnRanks(const CommGroup& comms,
                const std::function<void(int rank, Communicator& comm)>& fn) {
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r) {
    threads.emplace_back([&, r] { fn(static_cast<int>(r), *comms[r]); });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace cairn::runtime::testing
