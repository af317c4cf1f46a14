// planner/cost/runtime_traits.h — the runtimes a plan can be costed for.
//
// A cost model describes the runtime that will execute the plan: which communication overlaps which
// compute, in what dtype gradients travel, how a layer issues its GEMMs, which plans it can run at
// all. RuntimeTraits (planner/problem/problem.h) holds those facts; this file defines the built-in
// ones, selected by name (`cairn plan --runtime NAME`, SearchRequest.runtime):
//
//   cairn          Cairn's own runtime (runtime/engine), CPU and GPU — read off its code, and
//                  measured by its own tests (tests/runtime_memory_test, docs/cost-model.md).
//   megatron-core  Megatron-LM on Megatron-Core with the distributed optimizer and its overlap
//                  flags, as its documentation describes them (sources in runtime_traits.cc).
//
//   CAIRN_ASSIGN_OR_RETURN(RuntimeTraits t, RuntimeTraitsByName("megatron-core"));
//   problem.runtime = t;
//   RestrictSpaceToRuntime(t, &problem.space);   // plans the runtime cannot run are not searched
//
// Thread-safe (pure functions).
#ifndef CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_
#define CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "planner/problem/problem.h"

namespace cairn::planner {

// Cairn's runtime (the default).
RuntimeTraits CairnRuntimeTraits();
// Megatron-LM / Megatron-Core: --use-distributed-optimizer --overlap-grad-reduce
// --overlap-param-gather, fp32 gradient reduction (bf16 with --grad-reduce-in-bf16).
RuntimeTraits MegatronCoreRuntimeTraits();

// "cairn", "megatron-core".
std::vector<std::string> RuntimeNames();
// NotFound listing the names for an unknown one.
absl::StatusOr<RuntimeTraits> RuntimeTraitsByName(const std::string& name);

// Removes from `space` what `traits`' runtime cannot run (Ulysses, ZeRO-2/3, GPipe, per-layer
// strategies): the search then proposes only plans that runtime executes.
void RestrictSpaceToRuntime(const RuntimeTraits& traits, SearchSpace* space);

// "" when `plan` can run on `traits`' runtime, else why not (one sentence). For the plan
// contract's own rules see common/plan/validate.h; these are the runtime's extra limits.
std::string CheckRuntimeSupports(const RuntimeTraits& traits, const PlanSpec& plan,
                                 int num_layers);

}  // namespace cairn::planner

#endif  // CAIRN_PLANNER_COST_RUNTIME_TRAITS_H_
