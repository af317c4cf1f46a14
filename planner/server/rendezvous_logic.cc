#include "planner/server/rendezvous_logic.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "planner/server/validation.h"

namespace cairn::planner {

RendezvousLogic::~RendezvousLogic() { Shutdown(); }

namespace {

bool Ended(cairn::v1::JobState s) {
  return s == cairn::v1::JOB_STATE_SUCCEEDED || s == cairn::v1::JOB_STATE_FAILED ||
         s == cairn::v1::JOB_STATE_CANCELLED;
}

// "a, b, c and 1021 more".
std::string NameSome(const std::set<std::string>& keys) {
  std::string out;
  int named = 0;
  for (const std::string& k : keys) {
    if (named == kMaxKeysNamedInMessages) break;
    absl::StrAppend(&out, named == 0 ? "" : ", ", k);
    ++named;
  }
  if (static_cast<int>(keys.size()) > named) {
    absl::StrAppend(&out, " and ", keys.size() - named, " more");
  }
  return out;
}

}  // namespace

absl::Status RendezvousLogic::CheckJob(const std::string& job_id, bool running) {
  absl::StatusOr<cairn::v1::Job> job = store_->GetJob(job_id);
  if (job.ok()) {
    if (running && Ended(job->state())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job '", job_id, "' already ended (", cairn::v1::JobState_Name(job->state()),
          "); its rendezvous is closed: stop the workers"));
    }
    return absl::OkStatus();
  }
  if (job.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("job '", job_id,
                                            "' not found: rendezvous keys belong to a submitted "
                                            "job (use the job_id of your Assignment)"));
  }
  return job.status();
}

absl::StatusOr<cairn::v1::RendezvousSetResponse> RendezvousLogic::Set(
    const cairn::v1::RendezvousSetRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateRendezvousSetRequest(request));
  CAIRN_RETURN_IF_ERROR(CheckJob(request.job_id(), /*running=*/true));
  std::vector<std::pair<WaitDone, cairn::v1::RendezvousWaitResponse>> completed;
  {
    // Held across the check and the write: a Wait cannot read the store between the write and the
    // wake-up, and two Sets cannot both pass the job's limits.
    absl::MutexLock lock(&mu_);
    CAIRN_ASSIGN_OR_RETURN(Store::RendezvousUsage usage,
                           store_->GetRendezvousUsage(request.job_id(), request.key()));
    const bool is_new = usage.key_bytes < 0;
    if (is_new && usage.keys >= kMaxRendezvousKeysPerJob) {
      return absl::ResourceExhaustedError(
          absl::StrCat("job '", request.job_id(), "' already has ", usage.keys,
                       " rendezvous keys, the most a job may hold (", kMaxRendezvousKeysPerJob,
                       ")"));
    }
    const int64_t bytes = usage.bytes - (is_new ? 0 : usage.key_bytes) +
                          static_cast<int64_t>(request.value().size());
    if (bytes > kMaxRendezvousBytesPerJob) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "job '", request.job_id(), "' would hold ", bytes,
          " bytes of rendezvous values, more than the ", kMaxRendezvousBytesPerJob,
          " a job may hold; store paths or addresses, not data"));
    }
    CAIRN_RETURN_IF_ERROR(store_->RendezvousSet(request.job_id(), request.key(), request.value()));
    std::vector<WaitId> ready;
    for (auto& [id, w] : waiters_) {
      if (w.job_id != request.job_id() || w.missing.erase(request.key()) == 0) continue;
      (*w.values.mutable_values())[request.key()] = request.value();
      if (w.missing.empty()) ready.push_back(id);
    }
    for (WaitId id : ready) {
      Waiter w;
      WaitDone done = TakeLocked(id, &w);
      completed.emplace_back(std::move(done), std::move(w.values));
    }
  }
  for (auto& [done, values] : completed) done(std::move(values));
  return cairn::v1::RendezvousSetResponse();
}

absl::StatusOr<cairn::v1::RendezvousGetResponse> RendezvousLogic::Get(
    const cairn::v1::RendezvousGetRequest& request) {
  CAIRN_RETURN_IF_ERROR(ValidateRendezvousGetRequest(request));
  absl::StatusOr<std::string> value = store_->RendezvousGet(request.job_id(), request.key());
  if (!value.ok()) {
    if (value.status().code() != absl::StatusCode::kNotFound) return value.status();
    CAIRN_RETURN_IF_ERROR(CheckJob(request.job_id(), /*running=*/false));
    return absl::NotFoundError(absl::StrCat("key '", request.key(), "' of job '", request.job_id(),
                                            "' is not set yet (Wait blocks until it is)"));
  }
  cairn::v1::RendezvousGetResponse out;
  out.set_value(*std::move(value));
  return out;
}

WaitId RendezvousLogic::Wait(const cairn::v1::RendezvousWaitRequest& request, WaitDone done) {
  if (absl::Status s = ValidateRendezvousWaitRequest(request); !s.ok()) {
    done(s);
    return 0;
  }
  if (absl::Status s = CheckJob(request.job_id(), /*running=*/true); !s.ok()) {
    done(s);
    return 0;
  }
  absl::StatusOr<cairn::v1::RendezvousWaitResponse> immediate;  // when done runs now
  {
    absl::MutexLock lock(&mu_);
    int of_job = 0;
    for (const auto& [id, w] : waiters_) of_job += w.job_id == request.job_id() ? 1 : 0;
    if (shutting_down_) {
      immediate = absl::UnavailableError("the planner is shutting down; retry when it is back");
    } else if (static_cast<int>(waiters_.size()) >= kMaxRendezvousWaiters) {
      immediate = absl::ResourceExhaustedError(
          absl::StrCat(waiters_.size(), " rendezvous waits are pending, the most the planner "
                       "keeps (", kMaxRendezvousWaiters, "); retry later"));
    } else if (of_job >= kMaxRendezvousWaitersPerJob) {
      immediate = absl::ResourceExhaustedError(absl::StrCat(
          "job '", request.job_id(), "' has ", of_job, " rendezvous waits pending, the most a job "
          "may have (", kMaxRendezvousWaitersPerJob, "); wait for fewer keys from one worker"));
    } else {
      Waiter w;
      w.job_id = request.job_id();
      w.timeout_s = request.timeout_s();
      absl::Status error;
      for (const std::string& key : request.keys()) {
        absl::StatusOr<std::string> v = store_->RendezvousGet(request.job_id(), key);
        if (v.ok()) {
          (*w.values.mutable_values())[key] = *std::move(v);
        } else if (v.status().code() == absl::StatusCode::kNotFound) {
          w.missing.insert(key);
        } else {
          error = v.status();
          break;
        }
      }
      if (!error.ok()) {
        immediate = error;
      } else if (w.missing.empty()) {
        immediate = std::move(w.values);
      } else {
        const WaitId id = next_id_++;
        w.done = std::move(done);
        w.timer = timers_->Schedule(absl::Seconds(request.timeout_s()), [this, id] {
          Waiter gone;
          WaitDone cb;
          {
            absl::MutexLock lock(&mu_);
            cb = TakeLocked(id, &gone);
          }
          if (!cb) return;
          cb(absl::DeadlineExceededError(absl::StrCat(
              "rendezvous of job '", gone.job_id, "' timed out after ", gone.timeout_s,
              " s; still missing: ", NameSome(gone.missing),
              " (the workers that set them have not started or failed; check their logs)")));
        });
        waiters_.emplace(id, std::move(w));
        return id;
      }
    }
  }
  done(std::move(immediate));
  return 0;
}

RendezvousLogic::WaitDone RendezvousLogic::TakeLocked(WaitId id, Waiter* out) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return nullptr;
  *out = std::move(it->second);
  waiters_.erase(it);
  // From the timer thread itself this is a no-op (the timer already left the queue).
  timers_->Cancel(out->timer);
  return std::move(out->done);
}

void RendezvousLogic::CancelWait(WaitId id) {
  Waiter w;
  WaitDone done;
  {
    absl::MutexLock lock(&mu_);
    done = TakeLocked(id, &w);
  }
  if (done) done(absl::CancelledError("the wait was cancelled by the client"));
}

void RendezvousLogic::Shutdown() {
  std::vector<WaitDone> all;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    std::vector<WaitId> ids;
    for (const auto& [id, w] : waiters_) ids.push_back(id);
    for (WaitId id : ids) {
      Waiter w;
      all.push_back(TakeLocked(id, &w));
    }
  }
  for (WaitDone& done : all) {
    done(absl::UnavailableError("the planner is shutting down; wait again when it is back"));
  }
}

int RendezvousLogic::waiting() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiters_.size());
}

}  // namespace cairn::planner
