// planner/server/event_sink.h — where the logic classes push the events of a server stream.
//
// WatchJob, WatchAssignments and PlanStream are server streams. The logic classes do not know about
// gRPC: they push events into an EventSink, which the service adapter implements with a
// grpc::ServerWriteReactor (service_impl.cc) and the unit tests with a vector
// (testing/collecting_sink.h).
//
//   absl::StatusOr<WatchId> id = jobs.WatchJob(request, &sink);   // sink.Send(...) from now on
//   ...
//   jobs.Unwatch(*id);   // after it returns, the logic never touches `sink` again
//
// Contract for implementations: Send and Close are called with the logic's lock held, from any
// thread; they must not block and must not call back into the logic. Close is called at most once
// and nothing follows it; the logic forgets the sink after Close (Unwatch is then a no-op).
#ifndef CAIRN_PLANNER_SERVER_EVENT_SINK_H_
#define CAIRN_PLANNER_SERVER_EVENT_SINK_H_

#include <cstdint>

#include "absl/status/status.h"

namespace cairn::planner {

template <typename T>
class EventSink {
 public:
  virtual ~EventSink() = default;
  // One event of the stream, in order.
  virtual void Send(const T& event) = 0;
  // The stream is over: OK when it ended normally (e.g. the job finished), UNAVAILABLE when the
  // server is shutting down.
  virtual void Close(const absl::Status& status) = 0;
};

// Names a registered sink for Unwatch. 0 is never a valid id.
using WatchId = uint64_t;

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_EVENT_SINK_H_
