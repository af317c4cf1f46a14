// common/args.h — a small command-line parser for `cairn <command> --flag value ...`.
//
// Flags are `--name value` or `--name=value`; boolean flags are `--name` alone. Every flag a command
// accepts is declared up front so a typo is an error that names the valid flags.
//
//   Args args;
//   absl::Status s = args.Parse(argv_after_command, {"model", "nodes"}, {"json"});
//   std::string model = args.Get("model", "llama2-7b");
//   absl::StatusOr<int> nodes = args.GetInt("nodes", 1);
#ifndef CAIRN_COMMON_ARGS_H_
#define CAIRN_COMMON_ARGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn {

class Args {
 public:
  absl::Status Parse(const std::vector<std::string>& argv, const std::set<std::string>& valued,
                     const std::set<std::string>& booleans);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // Sets a flag as if it had been given (e.g. a value taken from a plan file).
  void Set(const std::string& name, const std::string& value) { values_[name] = value; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  absl::StatusOr<int> GetInt(const std::string& name, int fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  // Comma-separated integers, e.g. "1,2,4".
  absl::StatusOr<std::vector<int>> GetIntList(const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace cairn

#endif  // CAIRN_COMMON_ARGS_H_
