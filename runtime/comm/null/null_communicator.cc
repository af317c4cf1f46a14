#include "runtime/comm/null/null_communicator.h"

#include <algorithm>
#include <numeric>

namespace cairn::runtime {
namespace {

std::vector<int> Iota(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

NullCommunicator::NullCommunicator(int rank, int size)
    : Communicator(rank, Iota(size), "world") {}

NullCommunicator::NullCommunicator(int rank, std::vector<int> world_ranks, std::string name)
    : Communicator(rank, std::move(world_ranks), std::move(name)) {}

absl::StatusOr<std::unique_ptr<Communicator>> NullCommunicator::SplitImpl(
    const std::vector<int>& ranks, std::string name) {
  std::vector<int> world;
  for (int r : ranks) world.push_back(world_ranks()[r]);
  const int me = static_cast<int>(std::find(ranks.begin(), ranks.end(), rank()) - ranks.begin());
  return std::unique_ptr<Communicator>(new NullCommunicator(me, std::move(world), std::move(name)));
}

}  // namespace cairn::runtime
