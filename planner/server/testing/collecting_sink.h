// planner/server/testing/collecting_sink.h — an EventSink that keeps what it receives, for tests of
// the streams (WatchJob, WatchAssignments) without gRPC.
//
//   CollectingSink<cairn::v1::JobEvent> sink;
//   ASSERT_OK_AND_ASSIGN(WatchId id, jobs.WatchJob(request, &sink));
//   EXPECT_EQ(sink.events().size(), 1);
//   EXPECT_FALSE(sink.closed());
//
// Thread-safe.
#ifndef CAIRN_PLANNER_SERVER_TESTING_COLLECTING_SINK_H_
#define CAIRN_PLANNER_SERVER_TESTING_COLLECTING_SINK_H_

#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "planner/server/event_sink.h"

namespace cairn::planner::testing {

template <typename T>
class CollectingSink final : public EventSink<T> {
 public:
  void Send(const T& event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    close_status_ = status;
  }
  std::vector<T> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  bool closed() const {
    absl::MutexLock lock(&mu_);
    return close_status_.has_value();
  }
  absl::Status close_status() const {
    absl::MutexLock lock(&mu_);
    return close_status_.value_or(absl::OkStatus());
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<T> events_;
  std::optional<absl::Status> close_status_;
};

}  // namespace cairn::planner::testing

#endif  // CAIRN_PLANNER_SERVER_TESTING_COLLECTING_SINK_H_
