#include "agent/probes/time_limit.h"

#include <deque>

#include "common/status_macros.h"

namespace cairn::agent {

TimeShares::TimeShares(absl::Time deadline, std::vector<std::pair<std::string, double>> weights)
    : deadline_(deadline), waiting_(std::move(weights)) {}

absl::Time TimeShares::Start(const std::string& part, absl::Time now) {
  double total = 0, mine = -1;
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    total += it->second;
    if (it->first == part && mine < 0) mine = it->second;
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->first == part) {
      waiting_.erase(it);
      break;
    }
  }
  if (deadline_ == absl::InfiniteFuture()) return deadline_;
  if (now >= deadline_) return deadline_;
  if (mine < 0 || total <= 0) return deadline_;  // not listed (or started twice): all that is left
  return now + (deadline_ - now) * (mine / total);
}

CaseGate::CaseGate(absl::Time deadline, runtime::Communicator* lockstep)
    : deadline_(deadline), lockstep_(lockstep) {}

absl::StatusOr<bool> CaseGate::Next(absl::Time now) {
  if (deadline_ == absl::InfiniteFuture()) return true;
  if (!expired_) {
    int past = now >= deadline_ ? 1 : 0;
    if (lockstep_ != nullptr) {
      CAIRN_RETURN_IF_ERROR(lockstep_->AllReduce(&past, &past, 1, runtime::ReduceOp::kMax));
    }
    expired_ = past != 0;
  }
  if (expired_) ++skipped_;
  return !expired_;
}

void RecordSkipped(ProbeReport* report, const std::string& suite, const std::string& probe,
                   int count) {
  if (count <= 0) return;
  for (SkippedCases& s : *report->mutable_skipped()) {
    if (s.suite() == suite && s.probe() == probe) {
      s.set_count(s.count() + count);
      return;
    }
  }
  SkippedCases* s = report->add_skipped();
  s->set_suite(suite);
  s->set_probe(probe);
  s->set_count(count);
  s->set_reason("time limit");
}

int SkippedIn(const ProbeReport& report, const std::string& suite) {
  int n = 0;
  for (const SkippedCases& s : report.skipped()) {
    if (s.suite() == suite) n += s.count();
  }
  return n;
}

std::vector<int> BisectionOrder(int n) {
  std::vector<int> order;
  if (n <= 0) return order;
  order.push_back(0);
  if (n == 1) return order;
  order.push_back(n - 1);
  std::deque<std::pair<int, int>> open = {{0, n - 1}};  // intervals whose ends are visited
  while (!open.empty()) {
    const auto [lo, hi] = open.front();
    open.pop_front();
    if (hi - lo < 2) continue;
    const int mid = lo + (hi - lo) / 2;
    order.push_back(mid);
    open.emplace_back(lo, mid);
    open.emplace_back(mid, hi);
  }
  return order;
}

}  // namespace cairn::agent
