// planner/cost/test_problems.h — small hand-built problems for the cost-model and search tests.
//
// The hardware has round numbers so expected costs can be derived by hand in the tests' comments:
// every GEMM runs at 100 TFLOP/s, memory streams at 1 TB/s, every intra-node collective has
// latency 10 us and bus bandwidth 100 GB/s, inter-node 20 us and 10 GB/s, gamma = 1.1.
#ifndef CAIRN_PLANNER_COST_TEST_PROBLEMS_H_
#define CAIRN_PLANNER_COST_TEST_PROBLEMS_H_

#include <cstdint>

#include "planner/problem/problem.h"

namespace cairn::planner::testing {

Hardware RoundHardware(int devices_per_node, int num_nodes);

// A Llama-style model: hidden 1024, ffn 2816, 16 heads (8 kv), vocab 32000, seq up to 2048.
ModelDims SmallLlama(int num_layers);

SearchProblem SmallProblem(int num_layers, int devices_per_node, int num_nodes, int global_batch,
                           int seq_len, int64_t budget_bytes);

// A random small problem for brute-force comparisons (seeded, deterministic): 2-3 blocks, 2 or 4
// devices, small batch, a restricted strategy space so brute force stays cheap.
SearchProblem RandomTinyProblem(uint32_t seed);

}  // namespace cairn::planner::testing

#endif  // CAIRN_PLANNER_COST_TEST_PROBLEMS_H_
