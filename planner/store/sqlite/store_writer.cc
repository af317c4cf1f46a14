// store_writer: a write load for the crash test (tests/store_durability_test.cc).
//
//   store_writer --db=/tmp/planner.db [--first=0] [--count=0]
//
// Opens the SQLite store with its production defaults (WAL, synchronous=FULL) and writes in a loop,
// sequence number i = first, first+1, ... (forever when --count=0), cycling through four writes
// and printing one line after each:
//   i % 4 == 0: PutHardwareProfile (one of 5 fingerprints, notes "seq <i>")
//               -> "ack profile <id> <version> <i>"
//   i % 4 == 1: PutPlan (cache key "writer-<i>")       -> "ack plan <plan id> <i>"
//   i % 4 == 2: CreateJob (name "job-<i>")             -> "ack job <job id> <i>"
//   i % 4 == 3: UpdateJob of that job (last_step.step = i, state RUNNING)
//               -> "ack jobupdate <job id> <i>"
// Each line is written to stdout with one write(2) call (shorter than PIPE_BUF, so atomic) only
// after the Store method returned OK: every line printed is a write the store acknowledged. On an
// error it prints the status to stderr and exits 1.
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli_app.h"
#include "common/status_macros.h"
#include "planner/store/sqlite/sqlite_store.h"
#include "planner/store/store.h"

namespace {
// The command line (--help lists every flag with its default).
struct CommandLineFlags {
  std::string db = "";
  int64_t first = 0;
  int64_t count = 0;
};
CommandLineFlags g_flags;

void AddFlags(CLI::App& app) {
  app.add_option("--db", g_flags.db, "SQLite database file (created if missing)");
  app.add_option("--first", g_flags.first, "first sequence number");
  app.add_option("--count", g_flags.count, "number of writes; 0 = until killed");
}
}  // namespace

namespace cairn::planner {
namespace {

absl::Status WriteLine(const std::string& line) {
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("writing to stdout: errno ", errno));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::string At(int64_t seq) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%SZ", absl::FromUnixSeconds(1795852800 + seq),
                          absl::UTCTimeZone());
}

absl::Status Run(const std::string& db, int64_t first, int64_t count) {
  CAIRN_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenSqliteStore(db));
  std::string job_id;
  for (int64_t i = first; count == 0 || i < first + count; ++i) {
    const std::string now = At(i);
    switch (i % 4) {
      case 0: {
        cairn::v1::HardwareProfile p;
        p.set_name("writer");
        p.mutable_fingerprint()->set_device_model(absl::StrCat("writer-gpu-", (i / 4) % 5));
        p.set_notes(absl::StrCat("seq ", i));
        p.set_devices_per_node(8);
        CAIRN_ASSIGN_OR_RETURN(auto stored, store->PutHardwareProfile(p, now));
        CAIRN_RETURN_IF_ERROR(
            WriteLine(absl::StrCat("ack profile ", stored.id(), " ", stored.version(), " ", i)));
        break;
      }
      case 1: {
        PlanRecord record;
        record.cache_key = absl::StrCat("writer-", i);
        record.summary.set_model_name("writer-model");
        record.summary.set_step_time_s(static_cast<double>(i));
        cairn::v1::Plan* plan = record.result.add_plans();
        plan->set_format_version(1);
        plan->set_model_name("writer-model");
        plan->set_global_batch_size(static_cast<int>(i % 1000) + 1);
        CAIRN_ASSIGN_OR_RETURN(std::string plan_id, store->PutPlan(record, now));
        CAIRN_RETURN_IF_ERROR(WriteLine(absl::StrCat("ack plan ", plan_id, " ", i)));
        break;
      }
      case 2: {
        cairn::v1::Job job;
        job.set_name(absl::StrCat("job-", i));
        job.set_state(cairn::v1::JOB_STATE_PENDING);
        job.set_steps(100);
        CAIRN_ASSIGN_OR_RETURN(cairn::v1::Job stored, store->CreateJob(job, now));
        job_id = stored.job_id();
        CAIRN_RETURN_IF_ERROR(WriteLine(absl::StrCat("ack job ", job_id, " ", i)));
        break;
      }
      case 3: {
        if (job_id.empty()) break;  // --first not at a multiple of 4
        CAIRN_ASSIGN_OR_RETURN(cairn::v1::Job job, store->GetJob(job_id));
        job.set_state(cairn::v1::JOB_STATE_RUNNING);
        job.mutable_last_step()->set_step(static_cast<int32_t>(i));
        CAIRN_RETURN_IF_ERROR(store->UpdateJob(job, now).status());
        CAIRN_RETURN_IF_ERROR(WriteLine(absl::StrCat("ack jobupdate ", job_id, " ", i)));
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace cairn::planner

int main(int argc, char** argv) {
  std::unique_ptr<CLI::App> app = cairn::MakeApp(
      "store_writer", "a write load for the crash test (tests/store_durability_test.cc)");
  AddFlags(*app);
  if (std::optional<int> exit = cairn::ParseCommandLine(*app, argc, argv)) return *exit;
  const std::string db = g_flags.db;
  if (db.empty()) {
    std::fprintf(stderr, "store_writer: --db is required\n");
    return 2;
  }
  const absl::Status status = cairn::planner::Run(db, g_flags.first, g_flags.count);
  if (!status.ok()) {
    std::fprintf(stderr, "store_writer: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
