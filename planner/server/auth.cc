#include "planner/server/auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/logging.h"

namespace cairn::planner {
namespace {

// Equal-length comparison whose time does not depend on the position of the first difference.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<Role> ParseRole(absl::string_view s) {
  if (s == "admin") return Role::kAdmin;
  if (s == "client") return Role::kClient;
  if (s == "agent") return Role::kAgent;
  return std::nullopt;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kClient: return "client";
    case Role::kAgent: return "agent";
  }
  return "?";
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text, absl::string_view source) {
  TokenTable table;
  std::map<std::string, int> first_line;  // token -> line, to report repeats by line number
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, " line ", line_no, ": expected 'ROLE TOKEN' (two fields), found ",
          fields.size(), " fields"));
    }
    std::optional<Role> role = ParseRole(fields[0]);
    if (!role) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " line ", line_no, ": unknown role '", fields[0],
                       "' (admin, client or agent)"));
    }
    if (static_cast<int>(fields[1].size()) < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, " line ", line_no, ": token shorter than ", kMinTokenLength,
          " characters; generate one with `openssl rand -hex 32`"));
    }
    auto [it, inserted] = first_line.emplace(std::string(fields[1]), line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_no,
                                                     ": same token as line ", it->second,
                                                     "; give every role its own token"));
    }
    table.entries_.emplace_back(std::string(fields[1]), *role);
  }
  if (table.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " has no tokens (lines 'ROLE TOKEN'); every call would be refused"));
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::LoadFile(const std::string& path) {
  // Like ssh with private keys: secrets every user of the machine can read are refused.
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    const unsigned mode = st.st_mode & 07777;
    if ((mode & 0007) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "token file %s is accessible by every user of this machine (mode %04o): the tokens are "
          "secrets; run chmod 600 %s (Kubernetes: defaultMode: 0400 on the Secret volume)",
          path, mode, path));
    }
    if ((mode & 0070) != 0) {
      CAIRN_LOG(WARNING) << "token file " << path << " is accessible by its group (mode "
                         << absl::StrFormat("%04o", mode)
                         << "): every member of that group can read the planner's tokens; "
                            "chmod 600 it unless that is intended";
    }
  }
  std::ifstream in(path);
  if (!in) {
    if (access(path.c_str(), F_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("token file ", path, " does not exist"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("token file ", path, " is not readable by this user"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat("reading ", path, " failed"));
  return Parse(text.str(), path);
}

std::optional<Role> TokenTable::Lookup(absl::string_view token) const {
  std::optional<Role> found;
  // Visit every entry so the time does not reveal which one matched.
  for (const auto& [t, role] : entries_) {
    if (ConstantTimeEquals(t, token)) found = role;
  }
  return found;
}

const std::vector<MethodRoles>& MethodRoleTable() {
  using R = Role;
  static const auto* table = new std::vector<MethodRoles>{
      {"cairn.v1.Planner/Plan", {R::kClient}},
      {"cairn.v1.Planner/PlanStream", {R::kClient}},
      {"cairn.v1.Planner/GetPlan", {R::kClient, R::kAgent}},
      {"cairn.v1.Planner/ListPlans", {R::kClient}},
      {"cairn.v1.Profiles/PutHardwareProfile", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/GetHardwareProfile", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/ListHardwareProfiles", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/DeleteHardwareProfile", {R::kClient}},
      {"cairn.v1.Profiles/PutModelProfile", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/GetModelProfile", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/ListModelProfiles", {R::kClient, R::kAgent}},
      {"cairn.v1.Profiles/DeleteModelProfile", {R::kClient}},
      {"cairn.v1.Agents/RegisterAgent", {R::kAgent}},
      {"cairn.v1.Agents/Heartbeat", {R::kAgent}},
      {"cairn.v1.Agents/ListAgents", {R::kClient, R::kAgent}},
      {"cairn.v1.Agents/WatchAssignments", {R::kAgent}},
      {"cairn.v1.Jobs/SubmitJob", {R::kClient}},
      {"cairn.v1.Jobs/GetJob", {R::kClient, R::kAgent}},
      {"cairn.v1.Jobs/ListJobs", {R::kClient}},
      {"cairn.v1.Jobs/CancelJob", {R::kClient}},
      {"cairn.v1.Jobs/WatchJob", {R::kClient}},
      {"cairn.v1.Jobs/ReportJobStatus", {R::kAgent}},
      {"cairn.v1.Jobs/AppendJobLogs", {R::kAgent}},
      {"cairn.v1.Jobs/GetJobLogs", {R::kClient}},
      {"cairn.v1.Agents/ProbeAgents", {R::kClient}},
      {"cairn.v1.Rendezvous/Set", {R::kAgent}},
      {"cairn.v1.Rendezvous/Get", {R::kAgent}},
      {"cairn.v1.Rendezvous/Wait", {R::kAgent}},
  };
  return *table;
}

absl::Status Authorizer::Check(absl::string_view method,
                               std::optional<absl::string_view> authorization) const {
  if (!tokens_) return absl::OkStatus();
  if (!authorization || authorization->empty()) {
    return absl::UnauthenticatedError(
        "missing credentials: send the metadata 'authorization: Bearer <token>' with a token from "
        "the planner's --token-file");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      absl::AsciiStrToLower(value.substr(0, kScheme.size())) != kScheme) {
    return absl::UnauthenticatedError(
        "malformed credentials: the 'authorization' metadata must be 'Bearer <token>'");
  }
  const absl::string_view token = absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  const std::optional<Role> role = tokens_->Lookup(token);
  if (!role) {
    return absl::UnauthenticatedError(
        "invalid token: it is not in the planner's --token-file (check the token you were given)");
  }
  if (*role == Role::kAdmin) return absl::OkStatus();
  std::vector<std::string> allowed = {"admin"};
  for (const MethodRoles& m : MethodRoleTable()) {
    if (m.method != method) continue;
    for (Role r : m.roles) {
      if (r == *role) return absl::OkStatus();
      allowed.push_back(RoleName(r));
    }
    break;
  }
  const char* article = *role == Role::kClient ? "a " : "an ";
  return absl::PermissionDeniedError(absl::StrCat(article, RoleName(*role), " token may not call ",
                                                  method, "; this needs a token with role ",
                                                  absl::StrJoin(allowed, " or ")));
}

}  // namespace cairn::planner
