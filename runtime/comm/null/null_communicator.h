// runtime/comm/null/null_communicator.h — a Communicator whose operations complete at once without
// moving data: the engine's memory-planning dry run (runtime/compute/arena.h) uses it with the
// NullBackend to replay a rank's step without its peers.
//
//   NullCommunicator world(/*rank=*/3, /*size=*/8);
//   auto tp = world.Split({2, 3}, "tp");   // a NullCommunicator of size 2, rank 1
//
// Arguments are validated as on every communicator (the checks live in Communicator). Outputs are
// left as they are. Split never communicates. Thread-safe.
#ifndef CAIRN_RUNTIME_COMM_NULL_NULL_COMMUNICATOR_H_
#define CAIRN_RUNTIME_COMM_NULL_NULL_COMMUNICATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace cairn::runtime {

class NullCommunicator final : public Communicator {
 public:
  NullCommunicator(int rank, int size);
  absl::string_view backend() const override { return "null"; }
  void Abort(absl::string_view) override {}

 private:
  NullCommunicator(int rank, std::vector<int> world_ranks, std::string name);
  using Handle = absl::StatusOr<std::unique_ptr<CommHandle>>;
  static Handle Done() { return MakeCompletedHandle(absl::OkStatus()); }

  bool SupportsDType(DType) const override { return true; }
  Handle AllReduceImpl(const void*, void*, size_t, DType, ReduceOp, Stream*) override {
    return Done();
  }
  Handle AllGatherImpl(const void*, void*, size_t, DType, Stream*) override { return Done(); }
  Handle ReduceScatterImpl(const void*, void*, size_t, DType, ReduceOp, Stream*) override {
    return Done();
  }
  Handle AllToAllImpl(const void*, void*, size_t, DType, Stream*) override { return Done(); }
  Handle BroadcastImpl(void*, size_t, DType, int, Stream*) override { return Done(); }
  Handle BarrierImpl() override { return Done(); }
  Handle SendImpl(const void*, size_t, DType, int, int, Stream*) override { return Done(); }
  Handle RecvImpl(void*, size_t, DType, int, int, Stream*) override { return Done(); }
  absl::StatusOr<std::unique_ptr<Communicator>> SplitImpl(const std::vector<int>& ranks,
                                                          std::string name) override;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMM_NULL_NULL_COMMUNICATOR_H_
