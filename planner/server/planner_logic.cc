#include "planner/server/planner_logic.h"

#include <openssl/evp.h>

#include <algorithm>
#include <sstream>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "planner/catalog/clusters.h"
#include "planner/catalog/models.h"
#include "planner/cli/export.h"
#include "planner/plan/plan_convert.h"
#include "planner/problem/problem_builder.h"
#include "planner/search/search.h"
#include "planner/server/validation.h"

namespace cairn::planner {
namespace {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), len));
}

// Map fields and unknown fields are written in a fixed order, so equal requests give equal bytes.
std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

struct ProfileRef {
  std::string id;
  int version = 0;  // 0 = latest
};

// "ID" or "ID@N" (validated before).
ProfileRef ParseProfileRef(const std::string& ref) {
  ProfileRef r;
  const size_t at = ref.find('@');
  r.id = ref.substr(0, at);
  if (at != std::string::npos) (void)absl::SimpleAtoi(ref.substr(at + 1), &r.version);
  return r;
}

absl::Status Prefixed(absl::string_view prefix, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// NOT_FOUND from the store for a referenced profile, said in the request's terms.
absl::Status ProfileLookupError(absl::string_view field, const std::string& ref,
                                absl::string_view list_rpc, const absl::Status& s) {
  if (s.code() != absl::StatusCode::kNotFound) return s;
  return absl::NotFoundError(absl::StrCat(field, " '", ref, "': no such profile (",
                                          list_rpc, " lists the stored ones)"));
}

cairn::v1::PlanSummary Summarize(const cairn::v1::SearchResponse& result,
                                 const std::string& model_name) {
  cairn::v1::PlanSummary s;
  s.set_model_name(model_name);
  if (result.plans_size() > 0) {
    const cairn::v1::Plan& p = result.plans(0);
    s.set_num_devices(p.num_nodes() * p.devices_per_node());
    s.set_global_batch_size(p.global_batch_size());
    s.set_seq_len(p.seq_len());
    s.set_step_time_s(p.prediction().step_time_s());
    s.set_tokens_per_s(p.prediction().tokens_per_s());
  }
  return s;
}

// PlanResponse.megatron_flags / megatron_note: what `cairn plan --format megatron` prints for this
// answer (its stdout / its stderr less the "cairn: " prefixes), from the same code, so a client in
// any language prints the flags without re-deriving them. The answer was scored on `problem`'s
// hardware, so plans may be re-split into Megatron's stages.
void AddMegatronFlags(const SearchProblem& problem, cairn::v1::PlanResponse* response) {
  std::ostringstream flags, note;
  const int status = cli::PrintExport(problem, response->result(), "megatron",
                                      /*allow_resplit=*/true, flags, note);
  std::string why = absl::StrReplaceAll(note.str(), {{"cairn: ", ""}});
  response->set_megatron_flags(status == 0 ? std::string(absl::StripAsciiWhitespace(flags.str()))
                                           : "");
  response->set_megatron_note(std::string(absl::StripAsciiWhitespace(why)));
}

}  // namespace

// --- Flight ---------------------------------------------------------------------------------

// One search, queued or running, on behalf of every caller that asked for it (single flight).
class Flight {
 public:
  enum class Stop { kNone = 0, kCancelled, kDeadline, kShutdown };

  Flight(std::string key, absl::Duration limit) : key_(std::move(key)), limit_(limit) {}
  const std::string& key() const { return key_; }
  const std::atomic<bool>* cancelled_flag() const { return &cancelled_; }
  Stop stop_reason() const { return static_cast<Stop>(stop_.load()); }

  // Adds a caller; false when the flight ended or is stopping (start a new one then).
  bool Join(const std::shared_ptr<SearchTicket>& ticket) {
    absl::MutexLock lock(&mu_);
    if (finished_ || stop_reason() != Stop::kNone) return false;
    members_.push_back(ticket);
    return true;
  }
  // `ticket` leaves. Another caller remains: it is removed and answered CANCELLED now. It was the
  // last: it stays, and the stopped search answers it once the worker is free.
  void Leave(SearchTicket* ticket) {
    std::shared_ptr<SearchTicket> gone;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      auto it = std::find_if(members_.begin(), members_.end(),
                             [ticket](const auto& m) { return m.get() == ticket; });
      if (it == members_.end()) return;
      if (members_.size() > 1) {
        gone = *it;
        members_.erase(it);
      }
    }
    if (gone) {
      gone->Finish(absl::CancelledError("the search was cancelled by the client"));
    } else {
      StopWith(Stop::kCancelled);
    }
  }
  void StopWith(Stop reason) {
    int none = static_cast<int>(Stop::kNone);
    stop_.compare_exchange_strong(none, static_cast<int>(reason));
    cancelled_.store(true);
    SearchPool* pool = nullptr;
    TaskId task = 0;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      pool = pool_;
      task = task_;
    }
    // Still queued: take it out now so it stops holding a queue slot (its drop finishes it).
    if (pool != nullptr) pool->Remove(task);
  }
  void set_task(SearchPool* pool, TaskId id) {
    absl::MutexLock lock(&mu_);
    pool_ = pool;
    task_ = id;
  }
  void Progress(int64_t done, int64_t total) {
    std::vector<std::shared_ptr<SearchTicket>> members;
    {
      absl::MutexLock lock(&mu_);
      members = members_;
    }
    for (const auto& m : members) {
      if (m->progress()) m->progress()(done, total);
    }
  }
  // Answers every caller. Once.
  void FinishAll(const absl::StatusOr<cairn::v1::PlanResponse>& result) {
    std::vector<std::shared_ptr<SearchTicket>> members;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      members.swap(members_);
    }
    for (const auto& m : members) m->Finish(result);
  }
  // The status for a search stopped by stop_reason().
  absl::Status StoppedStatus() const {
    switch (stop_reason()) {
      case Stop::kDeadline:
        return absl::DeadlineExceededError(absl::StrCat(
            "the search did not finish within the planner's limit of ",
            absl::FormatDuration(limit_),
            " (--max-search-seconds); narrow the search: fewer global batch sizes (batch_range), "
            "space.pipeline_degrees or space.micro_batch_counts, or a lower space.max_tp_degree"));
      case Stop::kShutdown:
        return absl::UnavailableError("the planner is shutting down; retry when it is back");
      case Stop::kCancelled:
      case Stop::kNone:
        break;
    }
    return absl::CancelledError("the search was cancelled by the client");
  }

 private:
  const std::string key_;
  const absl::Duration limit_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int> stop_{0};
  absl::Mutex mu_;
  std::vector<std::shared_ptr<SearchTicket>> members_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  SearchPool* pool_ ABSL_GUARDED_BY(mu_) = nullptr;
  TaskId task_ ABSL_GUARDED_BY(mu_) = 0;
};

// --- SearchTicket ---------------------------------------------------------------------------

SearchTicket::SearchTicket(ProgressFn progress, DoneFn done)
    : progress_(std::move(progress)), done_(std::move(done)) {}

void SearchTicket::set_flight(const std::shared_ptr<Flight>& flight) {
  absl::MutexLock lock(&mu_);
  flight_ = flight;
}

void SearchTicket::Cancel() {
  std::shared_ptr<Flight> flight;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    flight = flight_.lock();
  }
  if (flight) {
    flight->Leave(this);
  } else {
    Finish(absl::CancelledError("the search was cancelled by the client"));
  }
}

bool SearchTicket::Finish(absl::StatusOr<cairn::v1::PlanResponse> result) {
  DoneFn done;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    finished_ = true;
    done = std::move(done_);
  }
  done(std::move(result));
  return true;
}

// --- PlannerLogic ---------------------------------------------------------------------------

PlannerLogic::PlannerLogic(Store* store, TimerThread* timers, Metrics* metrics, const Clock* clock,
                           PlannerOptions options)
    : store_(store),
      timers_(timers),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      pool_(options.search_workers, options.search_queue) {}

PlannerLogic::~PlannerLogic() { Shutdown(); }

absl::StatusOr<ResolvedPlanRequest> PlannerLogic::Resolve(const cairn::v1::PlanRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidatePlanRequest(request));
  ResolvedPlanRequest out;
  out.search = request.search();
  if (!request.model_name().empty()) {
    absl::StatusOr<cairn::v1::ModelSpec> model = LookupModel(request.model_name());
    if (!model.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("model_name: ", model.status().message()));
    }
    *out.search.mutable_model() = *std::move(model);
  }
  const int num_nodes = request.num_nodes() == 0 ? 1 : request.num_nodes();
  std::string hw_key = "-";
  if (!request.hardware_profile_id().empty()) {
    const ProfileRef ref = ParseProfileRef(request.hardware_profile_id());
    absl::StatusOr<cairn::v1::StoredHardwareProfile> stored =
        store_->GetHardwareProfile(ref.id, ref.version);
    if (!stored.ok()) {
      return ProfileLookupError("hardware_profile_id", request.hardware_profile_id(),
                                "Profiles.ListHardwareProfiles", stored.status());
    }
    absl::StatusOr<cairn::v1::Cluster> cluster =
        MakeCluster(stored->profile(), num_nodes, request.devices_per_node());
    if (!cluster.ok()) return Prefixed("hardware_profile_id: ", cluster.status());
    *out.search.mutable_cluster() = *std::move(cluster);
    hw_key = absl::StrCat(stored->id(), "@", stored->version());
    out.hardware_label = absl::StrCat(stored->profile().name(), " (profile ", hw_key, ")");
  } else if (!request.cluster_name().empty()) {
    absl::StatusOr<cairn::v1::Cluster> cluster =
        MakeCluster(request.cluster_name(), num_nodes, request.devices_per_node());
    if (!cluster.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(cluster.status().code() == absl::StatusCode::kNotFound ? "cluster_name: "
                                                                               : "",
                       cluster.status().message()));
    }
    *out.search.mutable_cluster() = *std::move(cluster);
    out.hardware_label = absl::StrCat(request.cluster_name(), " (built-in default)");
  } else {
    out.hardware_label = absl::StrCat(out.search.cluster().hardware().name(), " (in the request)");
  }
  std::string mp_key = "-";
  if (!request.model_profile_id().empty()) {
    const ProfileRef ref = ParseProfileRef(request.model_profile_id());
    absl::StatusOr<cairn::v1::StoredModelProfile> stored =
        store_->GetModelProfile(ref.id, ref.version);
    if (!stored.ok()) {
      return ProfileLookupError("model_profile_id", request.model_profile_id(),
                                "Profiles.ListModelProfiles", stored.status());
    }
    *out.search.mutable_model_profile() = stored->profile();
    mp_key = absl::StrCat(stored->id(), "@", stored->version());
    out.model_label = absl::StrCat("profile ", mp_key);
  }
  // Threads change how fast the answer comes, not the answer: keep them out of the key.
  cairn::v1::SearchRequest keyed = out.search;
  keyed.clear_threads();
  out.cache_key = absl::StrCat("sha256:", Sha256Hex(DeterministicBytes(keyed)), ";hw=", hw_key,
                               ";mp=", mp_key, ";cairn=", kCairnVersion);
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int max_threads = options_.max_search_threads > 0 ? options_.max_search_threads : cores;
  const int asked = out.search.threads();
  out.search.set_threads(asked > 0 ? std::min(asked, max_threads) : max_threads);
  return out;
}

std::shared_ptr<SearchTicket> PlannerLogic::Plan(const cairn::v1::PlanRequest& request,
                                                 SearchTicket::ProgressFn progress,
                                                 SearchTicket::DoneFn done) {
  auto ticket = std::make_shared<SearchTicket>(std::move(progress), std::move(done));
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      ticket->Finish(absl::UnavailableError("the planner is shutting down; retry when it is back"));
      return ticket;
    }
  }
  absl::StatusOr<ResolvedPlanRequest> resolved = Resolve(request);
  if (!resolved.ok()) {
    ticket->Finish(resolved.status());
    return ticket;
  }
  // Validate the search now, so a bad request fails at once instead of taking a queue slot.
  absl::StatusOr<SearchProblem> problem = BuildSearchProblem(resolved->search);
  if (!problem.ok()) {
    ticket->Finish(Prefixed("search.", problem.status()));
    return ticket;
  }
  if (!request.no_cache()) {
    absl::StatusOr<std::optional<PlanRecord>> hit = store_->FindPlanByCacheKey(resolved->cache_key);
    if (!hit.ok()) {
      ticket->Finish(hit.status());
      return ticket;
    }
    if (hit->has_value()) {
      metrics_->RecordCacheHit();
      cairn::v1::PlanResponse response;
      response.set_plan_id((*hit)->plan_id);
      *response.mutable_result() = std::move((*hit)->result);
      response.set_cached(true);
      AddMegatronFlags(*problem, &response);
      ticket->Finish(std::move(response));
      return ticket;
    }
  }
  std::shared_ptr<Flight> flight;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      ticket->Finish(absl::UnavailableError("the planner is shutting down; retry when it is back"));
      return ticket;
    }
    if (!request.no_cache()) {
      auto it = flights_.find(resolved->cache_key);
      if (it != flights_.end() && it->second->Join(ticket)) {
        ticket->set_flight(it->second);
        metrics_->RecordSearchJoined();
        return ticket;
      }
    }
    flight = std::make_shared<Flight>(request.no_cache() ? "" : resolved->cache_key,
                                      options_.max_search_time);
    flight->Join(ticket);
    ticket->set_flight(flight);
    live_.insert(flight);
    if (!flight->key().empty()) flights_[flight->key()] = flight;
  }
  PoolTask task;
  task.run = [this, flight, r = *std::move(resolved), p = *std::move(problem)] {
    return RunSearch(flight, r, p);
  };
  task.drop = [this, flight] {
    Forget(flight);
    flight->FinishAll(flight->stop_reason() == Flight::Stop::kNone
                          ? absl::UnavailableError("the planner is shutting down; retry later")
                          : flight->StoppedStatus());
  };
  absl::StatusOr<TaskId> id = pool_.Submit(std::move(task));
  if (!id.ok()) {
    Forget(flight);
    flight->FinishAll(id.status());
    return ticket;
  }
  if (!request.no_cache()) metrics_->RecordCacheMiss();  // a search will run for it
  flight->set_task(&pool_, *id);
  // Cancelled between Submit and set_task: StopWith could not remove the task yet.
  if (flight->cancelled_flag()->load()) pool_.Remove(*id);
  return ticket;
}

std::function<void()> PlannerLogic::RunSearch(const std::shared_ptr<Flight>& flight,
                                              const ResolvedPlanRequest& resolved,
                                              const SearchProblem& problem) {
  auto finish = [this, flight](absl::StatusOr<cairn::v1::PlanResponse> response) {
    return [this, flight, response = std::move(response)]() mutable {
      Forget(flight);
      flight->FinishAll(response);
    };
  };
  if (flight->cancelled_flag()->load()) return finish(flight->StoppedStatus());
  std::weak_ptr<Flight> weak = flight;
  const TimerId deadline = timers_->Schedule(options_.max_search_time, [weak] {
    if (auto f = weak.lock()) f->StopWith(Flight::Stop::kDeadline);
  });
  const auto start = std::chrono::steady_clock::now();
  SearchOptions opts;
  opts.cancelled = flight->cancelled_flag();
  Flight* f = flight.get();
  opts.progress = [f](int64_t done, int64_t total) {
    if (!f->cancelled_flag()->load()) f->Progress(done, total);
  };
  absl::StatusOr<SearchResult> result =
      options_.search ? options_.search(problem, opts) : Search(problem, opts);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  timers_->Cancel(deadline);
  absl::StatusOr<cairn::v1::PlanResponse> response;
  if (flight->cancelled_flag()->load()) {
    response = flight->StoppedStatus();
    CAIRN_LOG(INFO) << "search stopped after " << seconds << " s: " << response.status();
  } else if (!result.ok()) {
    response = Prefixed("search.", result.status());
  } else {
    metrics_->RecordSearch(seconds);
    ProvenanceInfo prov;
    prov.hardware_profile = resolved.hardware_label;
    prov.model_profile = resolved.model_label.empty()
                             ? problem.model_profile_name
                             : absl::StrCat(problem.model_profile_name, " (", resolved.model_label, ")");
    prov.search_time_s = result->search_time_s;
    prov.candidates_evaluated = result->stats.plans_evaluated;
    PlanRecord record;
    record.cache_key = resolved.cache_key;
    record.result = ToSearchResponse(problem, *result, prov);
    record.summary = Summarize(record.result, resolved.search.model().name());
    absl::StatusOr<std::string> id = store_->PutPlan(record, Rfc3339(clock_->Now()));
    if (!id.ok()) {
      response = id.status();
    } else {
      cairn::v1::PlanResponse r;
      r.set_plan_id(*id);
      *r.mutable_result() = std::move(record.result);
      AddMegatronFlags(problem, &r);
      response = std::move(r);
    }
  }
  return finish(std::move(response));
}

void PlannerLogic::Forget(const std::shared_ptr<Flight>& flight) {
  absl::MutexLock lock(&mu_);
  live_.erase(flight);
  auto it = flights_.find(flight->key());
  if (it != flights_.end() && it->second == flight) flights_.erase(it);
}

absl::StatusOr<cairn::v1::PlanResponse> PlannerLogic::PlanAndWait(
    const cairn::v1::PlanRequest& request) {
  absl::Notification finished;
  absl::StatusOr<cairn::v1::PlanResponse> out;
  Plan(request, nullptr, [&](absl::StatusOr<cairn::v1::PlanResponse> r) {
    out = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return out;
}

absl::StatusOr<cairn::v1::PlanResponse> PlannerLogic::GetPlan(
    const cairn::v1::GetPlanRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateGetPlanRequest(request));
  absl::StatusOr<PlanRecord> record = store_->GetPlan(request.plan_id());
  if (!record.ok()) {
    if (record.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("plan '", request.plan_id(),
                                              "' not found (ListPlans shows the stored plans)"));
    }
    return record.status();
  }
  cairn::v1::PlanResponse out;
  out.set_plan_id(record->plan_id);
  *out.mutable_result() = std::move(record->result);
  return out;
}

absl::StatusOr<cairn::v1::ListPlansResponse> PlannerLogic::ListPlans(
    const cairn::v1::ListPlansRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateListPlansRequest(request));
  const int limit = EffectivePageSize(request.page_size());
  CAIRN_ASSIGN_OR_RETURN(std::vector<PlanRecord> records,
                         store_->ListPlans(limit + 1, request.page_token(), request.model_name()));
  cairn::v1::ListPlansResponse out;
  out.set_next_page_token(
      TrimToPage(&records, limit, [](const PlanRecord& r) { return r.plan_id; }));
  for (PlanRecord& r : records) {
    cairn::v1::PlanSummary* s = out.add_plans();
    *s = std::move(r.summary);
    s->set_plan_id(r.plan_id);
    if (s->created_at().empty()) s->set_created_at(r.created_at);
  }
  return out;
}

void PlannerLogic::Shutdown() {
  std::set<std::shared_ptr<Flight>> live;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    live = live_;
  }
  for (const auto& f : live) f->StopWith(Flight::Stop::kShutdown);
  pool_.Shutdown();
}

}  // namespace cairn::planner
