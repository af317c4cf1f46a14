// runtime/compute/null/null_backend.h — a ComputeBackend that validates every call and computes
// nothing: the engine's memory-planning dry run (runtime/compute/arena.h) drives its whole step
// through it, so the allocation sequence is recorded without touching memory.
//
//   NullBackend null(real_backend.working_dtype());
//   // ... an Engine built on `null` and a planning DeviceArena runs one step ...
//
// Arguments are validated exactly as on a real backend (the checks live in ComputeBackend), so a
// shape error shows up in the dry run, before any device memory is taken. Reads to the host see
// zeros. Allocate fails: memory comes from the arena, never from this backend. Thread-safe.
#ifndef CAIRN_RUNTIME_COMPUTE_NULL_NULL_BACKEND_H_
#define CAIRN_RUNTIME_COMPUTE_NULL_NULL_BACKEND_H_

#include <cstring>
#include <string>

#include "runtime/compute/compute_backend.h"

namespace cairn::runtime {

class NullBackend final : public ComputeBackend {
 public:
  explicit NullBackend(DType working_dtype) : dtype_(working_dtype) {}
  std::string name() const override { return "null"; }
  DType working_dtype() const override { return dtype_; }

 private:
  absl::StatusOr<void*> DoAllocate(int64_t) override {
    return absl::FailedPreconditionError("the null backend has no memory");
  }
  void DoFree(void*) override {}
  absl::Status DoCopyToDevice(void*, const void*, int64_t, Stream*) override {
    return absl::OkStatus();
  }
  // Dry runs read zeros (a loss of 0, a gradient norm of 0).
  absl::Status DoCopyToHost(void* host_dst, const void*, int64_t bytes, Stream*) override {
    std::memset(host_dst, 0, static_cast<size_t>(bytes));
    return absl::OkStatus();
  }
  absl::Status DoCopyOnDevice(void*, const void*, int64_t, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoZero(void*, int64_t, Stream*) override { return absl::OkStatus(); }
  absl::Status DoSynchronize(Stream*) override { return absl::OkStatus(); }
  absl::Status DoMatmulForward(const MatmulShape&, const void*, const void*, const void*, void*,
                               bool, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoMatmulBackward(const MatmulShape&, const void*, const void*, const void*, void*,
                                float*, float*, bool, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoLayerNormForward(const NormShape&, const void*, const void*, const void*, void*,
                                  float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoLayerNormBackward(const NormShape&, const void*, const void*, const float*,
                                   const void*, void*, float*, float*, bool, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoRmsNormForward(const NormShape&, const void*, const void*, void*, float*,
                                Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoRmsNormBackward(const NormShape&, const void*, const void*, const float*,
                                 const void*, void*, float*, bool, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoGeluForward(int64_t, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoGeluBackward(int64_t, const void*, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoSwiGluForward(int64_t, const void*, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoSwiGluBackward(int64_t, const void*, const void*, const void*, void*, void*,
                                Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoRopeForward(const RopeShape&, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoRopeBackward(const RopeShape&, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoAttentionForward(const AttentionShape&, const void*, const void*, const void*,
                                  void*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoAttentionBackward(const AttentionShape&, const void*, const void*, const void*,
                                   const void*, const float*, const void*, void*, void*, void*,
                                   Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoEmbeddingForward(const EmbeddingShape&, const int32_t*, const void*, const void*,
                                  void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoEmbeddingBackward(const EmbeddingShape&, const int32_t*, const void*, float*,
                                   float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoCrossEntropyMax(const CrossEntropyShape&, const float*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoCrossEntropySums(const CrossEntropyShape&, const float*, const int32_t*,
                                  const float*, float*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoCrossEntropyLossAndGrad(const CrossEntropyShape&, const float*, const int32_t*,
                                         const float*, const float*, const float*, float, float*,
                                         void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoResidualForward(int64_t, const void*, const void*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoResidualBackward(int64_t, const void*, void*, void*, bool, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoAdamWUpdate(int64_t, const AdamWConfig&, int64_t, bool, float, float*,
                             const float*, float*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoScale(int64_t, float, float*, Stream*) override { return absl::OkStatus(); }
  absl::Status DoNormSquared(int64_t, const float*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoSum(int64_t, const float*, float*, Stream*) override { return absl::OkStatus(); }
  absl::Status DoAxpy(int64_t, float, const float*, float*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoCopy2D(int64_t, int64_t, const void*, int64_t, void*, int64_t, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoAdd2D(int64_t, int64_t, const void*, int64_t, void*, int64_t, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoToWorking(int64_t, const float*, void*, Stream*) override {
    return absl::OkStatus();
  }
  absl::Status DoFromWorking(int64_t, const void*, float*, Stream*) override {
    return absl::OkStatus();
  }

  DType dtype_;
};

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_COMPUTE_NULL_NULL_BACKEND_H_
