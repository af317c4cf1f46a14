#include "runtime/comm/launch_env.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/comm/tcp_store.h"

namespace cairn::runtime {
namespace {

// The integer in variable `name`, or `fallback` when unset (nullopt fallback = required).
absl::StatusOr<int> ReadInt(
    const std::function<std::optional<std::string>(absl::string_view)>& lookup,
    absl::string_view name, std::optional<int> fallback) {
  const std::optional<std::string> text = lookup(name);
  if (!text.has_value() || text->empty()) {
    if (fallback.has_value()) return *fallback;
    return absl::InvalidArgumentError(absl::StrCat("launch environment: ", name, " is not set"));
  }
  int value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch environment: ", name, "='", *text, "' is not an integer"));
  }
  return value;
}

}  // namespace

absl::StatusOr<LaunchEnv> LaunchEnv::FromLookup(
    const std::function<std::optional<std::string>(absl::string_view)>& lookup) {
  LaunchEnv env;
  CAIRN_ASSIGN_OR_RETURN(env.world_size, ReadInt(lookup, "WORLD_SIZE", std::nullopt));
  CAIRN_ASSIGN_OR_RETURN(env.rank, ReadInt(lookup, "RANK", std::nullopt));
  CAIRN_ASSIGN_OR_RETURN(env.local_rank, ReadInt(lookup, "LOCAL_RANK", 0));
  CAIRN_ASSIGN_OR_RETURN(env.local_world_size, ReadInt(lookup, "LOCAL_WORLD_SIZE", 1));
  if (env.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("launch environment: WORLD_SIZE=", env.world_size, " must be at least 1"));
  }
  if (env.rank < 0 || env.rank >= env.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("launch environment: RANK=", env.rank,
                                                   " is outside [0, WORLD_SIZE=", env.world_size,
                                                   ")"));
  }
  if (env.local_world_size < 1 || env.local_rank < 0 || env.local_rank >= env.local_world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "launch environment: LOCAL_RANK=", env.local_rank, " is outside [0, LOCAL_WORLD_SIZE=",
        env.local_world_size, ")"));
  }
  if (std::optional<std::string> addr = lookup("MASTER_ADDR"); addr.has_value() && !addr->empty()) {
    env.master_addr = *addr;
  }
  CAIRN_ASSIGN_OR_RETURN(env.master_port,
                         ReadInt(lookup, "MASTER_PORT",
                                 env.world_size == 1 ? std::optional<int>(0) : std::nullopt));
  if (std::optional<std::string> file = lookup("CAIRN_MASTER_PORT_FILE"); file.has_value()) {
    env.master_port_file = *file;
  }
  const bool port_file = env.rank == 0 && !env.master_port_file.empty();
  if (env.master_port < 0 || env.master_port > 65535 ||
      (env.world_size > 1 && env.master_port == 0 && !port_file)) {
    return absl::InvalidArgumentError(absl::StrCat("launch environment: MASTER_PORT=",
                                                   env.master_port, " is not a usable port"));
  }
  return env;
}

absl::StatusOr<LaunchEnv> LaunchEnv::FromEnvironment() {
  return FromLookup([](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

absl::StatusOr<std::unique_ptr<TcpStore>> OpenLaunchStore(const LaunchEnv& env,
                                                          absl::Duration timeout) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<TcpStore> store,
                         TcpStore::Create(env.master_addr, env.master_port,
                                          /*host_server=*/env.rank == 0, timeout));
  if (env.rank == 0 && !env.master_port_file.empty()) {
    const std::string tmp = env.master_port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << store->hosted_port() << "\n";
      if (!out) {
        return absl::InternalError(absl::StrCat("cannot write the store's port to ", tmp));
      }
    }
    if (std::rename(tmp.c_str(), env.master_port_file.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ",
                                              env.master_port_file));
    }
  }
  return store;
}

}  // namespace cairn::runtime
