// planner/server/auth.h — bearer tokens with roles, and which role may call which method.
//
// The token file (--token-file) has one `ROLE TOKEN` pair per line; blank lines and lines starting
// with '#' are ignored:
//
//   # role   token (at least 16 characters; e.g. `openssl rand -hex 32`)
//   admin    3f1c...e9
//   client   77ab...01
//   agent    c0de...42
//
// Roles: admin may call everything; client plans, manages profiles and jobs; agent registers,
// heartbeats, receives assignments, uploads profiles, reports job status and uses the rendezvous.
// MethodRoles() is the whole table. Every RPC calls Authorizer::Check once, first
// (service_impl.cc):
//
//   CAIRN_ASSIGN_OR_RETURN(TokenTable tokens, TokenTable::LoadFile("/etc/cairn/tokens"));
//   Authorizer auth(std::move(tokens));
//   absl::Status s = auth.Check("cairn.v1.Profiles/DeleteHardwareProfile", "Bearer 77ab...01");
//   // PERMISSION_DENIED for a client token? No: clients may delete; agents may not.
//
// Tokens are secrets: no message, log line or error here ever contains one (errors about the file
// name the line number). Thread-safe (immutable after construction).
#ifndef CAIRN_PLANNER_SERVER_AUTH_H_
#define CAIRN_PLANNER_SERVER_AUTH_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cairn::planner {

enum class Role { kAdmin, kClient, kAgent };

const char* RoleName(Role role);

// Shortest token the file may hold.
inline constexpr int kMinTokenLength = 16;

class TokenTable {
 public:
  // Parses the file format above. InvalidArgument naming `source` and the line for an unknown role,
  // a line without exactly two fields, a short token, a repeated token, or a file without tokens.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text, absl::string_view source);
  // NotFound / FailedPrecondition (unreadable; or readable or writable by every user of the
  // machine, mode & 0007, refused as ssh refuses such keys) for the file, then Parse's errors.
  // A file its group may read is accepted with a warning in the log.
  static absl::StatusOr<TokenTable> LoadFile(const std::string& path);

  // The role of `token`; nullopt when unknown. Compares in time independent of where the tokens
  // differ.
  std::optional<Role> Lookup(absl::string_view token) const;
  int size() const { return static_cast<int>(entries_.size()); }

 private:
  std::vector<std::pair<std::string, Role>> entries_;
};

// A method ("cairn.v1.<Service>/<Method>") and the roles besides admin that may call it.
struct MethodRoles {
  const char* method;
  std::vector<Role> roles;
};

// Every cairn.v1 RPC. A method missing from the table is refused to everyone but admin.
const std::vector<MethodRoles>& MethodRoleTable();

class Authorizer {
 public:
  // Without a table, authentication is off: every call is allowed.
  Authorizer() = default;
  explicit Authorizer(TokenTable tokens) : tokens_(std::move(tokens)) {}

  bool enabled() const { return tokens_.has_value(); }

  // `authorization` is the value of the call's "authorization" metadata, nullopt when absent.
  // UNAUTHENTICATED for a missing, malformed or unknown token; PERMISSION_DENIED when the token's
  // role may not call `method`. The messages say what to do and never contain the token.
  absl::Status Check(absl::string_view method,
                     std::optional<absl::string_view> authorization) const;

 private:
  std::optional<TokenTable> tokens_;
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_AUTH_H_
