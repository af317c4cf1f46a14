#include "planner/cost/test_problems.h"

#include <random>

namespace cairn::planner::testing {

Hardware RoundHardware(int devices_per_node, int num_nodes) {
  Hardware hw;
  hw.name = "round";
  hw.device_model = "round-gpu";
  hw.device_memory_bytes = int64_t{80} << 30;
  hw.reserved_bytes = int64_t{1} << 30;
  hw.peak_flops_per_s = 200e12;
  hw.gemm = {{1e6, 100e12}, {1e15, 100e12}};
  hw.attention_efficiency = 1.0;
  hw.memory_bandwidth_bytes_per_s = 1e12;
  hw.devices_per_node = devices_per_node;
  hw.num_nodes = num_nodes;
  for (CollectiveOp op : {CollectiveOp::kAllReduce, CollectiveOp::kAllGather,
                          CollectiveOp::kReduceScatter, CollectiveOp::kAllToAll}) {
    for (int g = 2; g <= 64; g *= 2) {
      hw.collectives.push_back({op, g, false, 10e-6, 100e9, {}});
      hw.collectives.push_back({op, g, true, 20e-6, 10e9, {}});
    }
  }
  hw.collectives.push_back({CollectiveOp::kSendRecv, 2, false, 10e-6, 100e9, {}});
  hw.collectives.push_back({CollectiveOp::kSendRecv, 2, true, 20e-6, 10e9, {}});
  hw.overlap_slowdown = 1.1;
  return hw;
}

ModelDims SmallLlama(int num_layers) {
  ModelDims m;
  m.name = "small-llama";
  m.num_layers = num_layers;
  m.hidden = 1024;
  m.ffn_hidden = 2816;
  m.num_heads = 16;
  m.num_kv_heads = 8;
  m.vocab = 32000;
  m.max_seq_len = 2048;
  m.rms_norm = true;
  m.swiglu = true;
  m.rope = true;
  return m;
}

SearchProblem SmallProblem(int num_layers, int devices_per_node, int num_nodes, int global_batch,
                           int seq_len, int64_t budget_bytes) {
  SearchProblem p;
  p.model = SmallLlama(num_layers);
  p.hardware = RoundHardware(devices_per_node, num_nodes);
  p.global_batch_sizes = {global_batch};
  p.seq_len = seq_len;
  p.memory_budget_bytes = budget_bytes;
  p.model_profile_name = "analytic";
  p.threads = 1;
  return p;
}

SearchProblem RandomTinyProblem(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](std::initializer_list<int> v) {
    return *(v.begin() + std::uniform_int_distribution<int>(0, v.size() - 1)(rng));
  };
  const int layers = pick({2, 3});
  const int devices = pick({2, 4});
  const int nodes = pick({1, 1, 2});
  SearchProblem p = SmallProblem(layers, devices / nodes, nodes, pick({4, 8}), pick({512, 1024}),
                                 0);
  p.model.hidden = pick({512, 1024, 2048});
  p.model.ffn_hidden = p.model.hidden * pick({2, 3, 4});
  p.model.num_heads = pick({8, 16});
  p.model.num_kv_heads = pick({4, 8});
  p.model.vocab = pick({8000, 32000, 50000});
  p.model.swiglu = pick({0, 1});
  p.model.tied_embeddings = pick({0, 1});
  // Vary the machine so different strategies win.
  const double speed = pick({20, 100, 400}) * 1e12;
  p.hardware.gemm = {{1e6, speed * 0.2}, {1e12, speed}};
  const double bw = pick({10, 50, 200}) * 1e9;
  for (CommTable& t : p.hardware.collectives) {
    if (!t.spans_nodes) t.busbw_bytes_per_s = bw;
  }
  p.hardware.reserved_bytes = 0;
  p.space.modes = {ParallelMode::kTensor, ParallelMode::kUlysses};
  p.space.dp_modes = {DpMode::kDdp, DpMode::kZero3};
  p.space.schedules = {pick({0, 1}) ? Schedule::k1F1B : Schedule::kGPipe};
  // Budget between "only lean plans fit" and "everything fits", decided by the caller's scale.
  p.memory_budget_bytes = int64_t{pick({1, 2, 4, 8})} << 28;
  p.memory_quantum_bytes = p.memory_budget_bytes >> 16;
  p.max_transient_caps = 1000;
  p.threads = 1;
  return p;
}

}  // namespace cairn::planner::testing
