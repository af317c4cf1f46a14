// runtime/comm/planner_store.h — a rendezvous Store kept by the planner daemon (cairn-planner's
// Rendezvous gRPC service), for the workers of a job that agents host on several machines.
//
// Overview
// --------
// A job's workers must meet before they can talk (Gloo addresses, the NCCL unique id). On one
// machine a FileStore directory does it; a torchrun-style launch uses rank 0's TcpStore. Workers
// that cairn-agent starts meet through the planner instead: it is the one address every node
// already reaches (and authenticates), so no port has to be opened on rank 0's node and published,
// and a rank that starts late finds the keys waiting. The daemon keeps one key-value space per job
// (service.proto, "Rendezvous"); this class is a Store (store.h) over it.
//
//   PlannerConnection planner;               // or PlannerConnection::FromEnvironment()
//   planner.address = "planner.example:7070";
//   planner.token_file = "/etc/cairn/agent.token";
//   CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<PlannerStore> store,
//                          PlannerStore::Connect(planner, "job-000042", "attempt-1/"));
//   CAIRN_RETURN_IF_ERROR(store->Set("world/join/3", "1"));
//   CAIRN_ASSIGN_OR_RETURN(auto world, GlooCommunicator::Create(rank, size, std::move(store), opt));
//
// Keys. Every key is sent as `key_prefix + key`. A job that restarts (agent restart policy) uses a
// fresh prefix per attempt ("attempt-2/"), so keys of the failed attempt never satisfy new waits
// (store.h: a store outlives one job only by mistake). The daemon limits keys to 256 bytes and
// values to 64 KiB; longer ones are refused with InvalidArgument before any call.
//
// Waiting. Get and Wait are served by the daemon's Rendezvous.Wait, which holds the call until the
// keys are set (no polling here). A call interrupted because the daemon restarts or is briefly
// unreachable (UNAVAILABLE) is retried with backoff until the caller's timeout runs out; the keys
// are durable on the daemon's side, so nothing is lost.
//
// Environment (how cairn-agent tells a cairn-train worker where to meet; FromEnvironment):
//   CAIRN_RDZV_PLANNER    HOST:PORT of cairn-planner                                   required
//   CAIRN_RDZV_JOB        the job id whose key space to use                              required
//   CAIRN_RDZV_PREFIX     key prefix of this attempt                               default ""
//   CAIRN_RDZV_TOKEN_FILE file whose first line is the bearer token (role agent)   default none
//   CAIRN_RDZV_TLS_CA     PEM CA of the daemon's certificate; set = TLS            default plaintext
//   CAIRN_RDZV_TLS_CERT   PEM client certificate (mutual TLS), with ..._TLS_KEY    default none
//   CAIRN_RDZV_TLS_KEY    PEM key of CAIRN_RDZV_TLS_CERT
//   CAIRN_HOST_ADDRESS    address of this host the other ranks can reach (Gloo listens on it)
//
// Errors (beyond store.h): InvalidArgument for a bad key, value or connection; NotFound when the
// daemon does not know the job; FailedPrecondition when the job already ended; Unauthenticated /
// PermissionDenied for a token the daemon refuses. Thread-safe (gRPC stubs are).
#ifndef CAIRN_RUNTIME_COMM_PLANNER_STORE_H_
#define CAIRN_RUNTIME_COMM_PLANNER_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/cairn/v1/service.grpc.pb.h"
#include "runtime/comm/store.h"

namespace cairn::runtime {

// How to reach cairn-planner: address, credentials. Shared by every client of the daemon that
// lives outside planner/ (workers, agents).
struct PlannerConnection {
  std::string address;         // HOST:PORT
  std::string token_file;      // first line: the bearer token ("ROLE TOKEN" lines accepted); "" none
  std::string tls_ca_file;     // PEM CA of the server certificate; "" = plaintext
  std::string tls_cert_file;   // PEM client certificate for mutual TLS; "" = none
  std::string tls_key_file;    // PEM key of tls_cert_file

  // From CAIRN_RDZV_PLANNER, CAIRN_RDZV_TOKEN_FILE, CAIRN_RDZV_TLS_CA, CAIRN_RDZV_TLS_CERT and
  // CAIRN_RDZV_TLS_KEY. InvalidArgument when CAIRN_RDZV_PLANNER is missing.
  static absl::StatusOr<PlannerConnection> FromEnvironment();
};

// A channel to the daemon with the connection's TLS settings. InvalidArgument for an empty address
// or a certificate without its key; NotFound for a PEM file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenPlannerChannel(const PlannerConnection& c);

// The bearer token in `path`: its first line, or the last word of a "ROLE TOKEN" line. NotFound for
// an unreadable file, InvalidArgument for an empty one.
absl::StatusOr<std::string> ReadBearerToken(const std::string& path);

class PlannerStore final : public Store {
 public:
  // Keys of `job_id` on the daemon at `connection`, each under `key_prefix`. Does not call the
  // daemon (the first Set/Get does). Errors: as OpenPlannerChannel and ReadBearerToken;
  // InvalidArgument for an empty job id.
  static absl::StatusOr<std::unique_ptr<PlannerStore>> Connect(const PlannerConnection& connection,
                                                               const std::string& job_id,
                                                               const std::string& key_prefix);
  // The same over an existing channel (tests; processes with one channel for everything).
  static std::unique_ptr<PlannerStore> FromChannel(std::shared_ptr<grpc::Channel> channel,
                                                   const std::string& token,
                                                   const std::string& job_id,
                                                   const std::string& key_prefix);
  // CAIRN_RDZV_JOB and CAIRN_RDZV_PREFIX over PlannerConnection::FromEnvironment().
  static absl::StatusOr<std::unique_ptr<PlannerStore>> FromEnvironment();

  ~PlannerStore() override;

  absl::Status Set(absl::string_view key, absl::string_view value) override;
  absl::StatusOr<std::string> Get(absl::string_view key, absl::Duration timeout) override;
  absl::Status Wait(const std::vector<std::string>& keys, absl::Duration timeout) override;

  const std::string& job_id() const { return job_id_; }
  const std::string& key_prefix() const { return prefix_; }

  // Longest wait of one Rendezvous.Wait call (the daemon's limit is an hour); longer timeouts are
  // served by several calls.
  static constexpr absl::Duration kMaxWaitPerCall = absl::Minutes(30);
  // Deadline of a Set or a zero-timeout Get.
  static constexpr absl::Duration kCallTimeout = absl::Seconds(30);

 private:
  PlannerStore(std::shared_ptr<grpc::Channel> channel, std::string token, std::string job_id,
               std::string prefix);
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline) const;
  absl::Status CheckKey(absl::string_view key) const;
  // Waits for `keys` (already prefixed) until `deadline`; their values when `values` is non-null.
  absl::Status WaitUntil(const std::vector<std::string>& keys, absl::Time deadline,
                         std::vector<std::string>* values);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cairn::v1::Rendezvous::StubInterface> stub_;
  const std::string token_;
  const std::string job_id_;
  const std::string prefix_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_PLANNER_STORE_H_
