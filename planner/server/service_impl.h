// planner/server/service_impl.h — the five cairn.v1 gRPC services as thin callback adapters.
//
// Each method does only this: parse and check the request bytes, authorize (RpcCall), call the
// logic class on the executor, put the result into the response (rpc_call.h has the mechanics).
// No decisions are made here; they are in *_logic.h, tested without sockets. Plan, SubmitJob and
// Rendezvous.Wait finish later (the client's cancellation wired to the search or the wait); the
// streams use EventStreamReactor / the PlanStream reactor.
//
//   ServiceEnv env{&auth, &metrics, &planner, &profiles, &agents, &jobs, &rendezvous, &executor};
//   PlannerService planner_service(env);
//   builder.RegisterService(&planner_service);
//
// The services derive from the generated cairn::v1::<Service>::Service and register raw-bytes
// callback handlers for every method (so a malformed request gets INVALID_ARGUMENT with a
// message, not gRPC's UNIMPLEMENTED); a test checks that every method of service.proto is served.
#ifndef CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_
#define CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_

#include "planner/server/rpc_call.h"
#include "proto/cairn/v1/service.grpc.pb.h"

namespace cairn::planner {

class PlannerService final : public RawCallbackService<cairn::v1::Planner::Service> {
 public:
  explicit PlannerService(const ServiceEnv& env);
};

class ProfilesService final : public RawCallbackService<cairn::v1::Profiles::Service> {
 public:
  explicit ProfilesService(const ServiceEnv& env);
};

class AgentsService final : public RawCallbackService<cairn::v1::Agents::Service> {
 public:
  explicit AgentsService(const ServiceEnv& env);
};

class JobsService final : public RawCallbackService<cairn::v1::Jobs::Service> {
 public:
  explicit JobsService(const ServiceEnv& env);
};

class RendezvousService final : public RawCallbackService<cairn::v1::Rendezvous::Service> {
 public:
  explicit RendezvousService(const ServiceEnv& env);
};

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_SERVER_SERVICE_IMPL_H_
