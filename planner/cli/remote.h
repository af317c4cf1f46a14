// planner/cli/remote.h — the `cairn` commands that talk to a cairn-planner daemon over gRPC.
//
//   cairn --planner HOST:PORT [--token-file F] [--tls-ca CA.pem] [--timeout S] COMMAND ...
//   (or CAIRN_PLANNER=HOST:PORT in the environment)
//
// Commands: plan (the flags of local `cairn plan`, plus --profile ID to use a stored hardware
// profile), profiles list|show|import|export|delete, plans list|show, agents list,
// jobs list|show|watch|cancel. Server errors are printed as the user's problem and what to do, not
// as raw gRPC codes (FromGrpc).
#ifndef CAIRN_PLANNER_CLI_REMOTE_H_
#define CAIRN_PLANNER_CLI_REMOTE_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/cli_app.h"
#include "grpcpp/grpcpp.h"

namespace cairn::cli {

struct Connection {
  std::string address;      // host:port
  std::string token_file;   // first line: the bearer token ("" = none)
  std::string tls_ca;       // PEM file of the CA that signed the server (empty = plaintext)
  double timeout_s = 300;   // per call (searches included)
};

// A gRPC status from `address` turned into a message a user can act on.
absl::Status FromGrpc(const grpc::Status& status, const std::string& address);

// Runs `command` (plan, profiles, plans, agents, jobs) and its `verb` ("" for plan; list, show,
// ...) against the daemon, with the flags the command line gave them. Exit codes as for local
// commands.
int RunRemoteCommand(const Connection& connection, const std::string& command,
                     const std::string& verb, const Flags& flags, std::ostream& out,
                     std::ostream& err);

}  // namespace cairn::cli

#endif  // CAIRN_PLANNER_CLI_REMOTE_H_
