// CudaBackend: device and stream management, memory, and the dispatch of every operation to its
// kernels (kernels.h) or to cuBLASLt (lt_matmul.h). CUDA errors become Status here and in
// lt_matmul.cc only, through cuda_check.h.
#include "runtime/compute/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <cmath>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "runtime/compute/cuda/cuda_check.h"
#include "runtime/compute/cuda/cuda_stream.h"
#include "runtime/compute/cuda/kernels.h"
#include "runtime/compute/cuda/lt_matmul.h"

namespace cairn::runtime {
namespace {

using cuda::bf16;

// Per-block partial sums of the deterministic reductions are capped at this many floats (16 MiB of
// scratch); the kernels use fewer blocks when a row is wide.
constexpr int64_t kMaxPartialFloats = int64_t{4} << 20;

const bf16* B(const void* p) { return static_cast<const bf16*>(p); }
bf16* B(void* p) { return static_cast<bf16*>(p); }

std::string Gib(int64_t bytes) {
  return absl::StrFormat("%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
}

// A stream-ordered allocation from the backend's pool, freed on its stream when destroyed (so
// after every kernel enqueued before on that stream).
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(void* ptr, cudaStream_t stream) : ptr_(ptr), stream_(stream) {}
  ScratchBuffer(ScratchBuffer&& other) noexcept { *this = std::move(other); }
  ScratchBuffer& operator=(ScratchBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(stream_, other.stream_);
    return *this;
  }
  ~ScratchBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

const char* AttentionKernelName(CudaBackendOptions::Attention attention) {
  switch (attention) {
    case CudaBackendOptions::Attention::kAuto:
      return "auto";
    case CudaBackendOptions::Attention::kSimple:
      return "simple";
    case CudaBackendOptions::Attention::kFlash:
      return "flash";
  }
  return "unknown";
}

const char* MatmulKernelName(CudaBackendOptions::Matmul matmul) {
  switch (matmul) {
    case CudaBackendOptions::Matmul::kCublasLt:
      return "cublaslt";
    case CudaBackendOptions::Matmul::kSimple:
      return "simple";
  }
  return "unknown";
}

struct CudaBackend::Impl {
  int device = 0;
  std::string device_name;
  int sm_count = 0;
  CudaBackendOptions options;
  std::unique_ptr<cuda::LtMatmul> lt;
  cudaMemPool_t pool = nullptr;
  std::unique_ptr<Stream> default_stream;

  std::mutex mu;  // guards the two members below
  std::vector<std::unique_ptr<Stream>> extra_streams;
  std::map<cudaStream_t, void*> workspaces;  // cuBLASLt workspace per stream

  ~Impl() {
    // Teardown errors are ignored: nothing can be done about them here.
    cudaSetDevice(device);
    if (default_stream != nullptr) cudaStreamSynchronize(default_stream->handle());
    for (const auto& s : extra_streams) cudaStreamSynchronize(s->handle());
    for (const auto& [stream, workspace] : workspaces) cudaFree(workspace);
    for (const auto& s : extra_streams) cudaStreamDestroy(s->handle());
    if (default_stream != nullptr) cudaStreamDestroy(default_stream->handle());
    if (pool != nullptr) cudaMemPoolDestroy(pool);
  }

  // Makes the backend's device current on the calling thread.
  absl::Status Activate() const {
    int current = -1;
    CAIRN_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
    if (current != device) CAIRN_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
    return absl::OkStatus();
  }

  cudaStream_t StreamOf(Stream* stream) const {
    return stream != nullptr ? stream->handle() : default_stream->handle();
  }

  absl::Status OutOfMemory(const char* what, int64_t bytes) const {
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    return absl::ResourceExhaustedError(
        absl::StrCat("cuda: ", what, " needs ", bytes, " bytes (", Gib(bytes), "), ",
                     Gib(static_cast<int64_t>(free)), " free of ", Gib(static_cast<int64_t>(total)),
                     " on ", device_name, " (device ", device, ")"));
  }

  // The cuBLASLt workspace of `stream`, created on first use.
  absl::StatusOr<void*> Workspace(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = workspaces.find(stream);
    if (it != workspaces.end()) return it->second;
    void* workspace = nullptr;
    if (options.cublas_workspace_bytes > 0) {
      const cudaError_t error =
          cudaMalloc(&workspace, static_cast<size_t>(options.cublas_workspace_bytes));
      if (error == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return OutOfMemory("the cuBLASLt workspace", options.cublas_workspace_bytes);
      }
      CAIRN_RETURN_IF_ERROR(cuda::CudaStatus(error, "cudaMalloc(cuBLASLt workspace)"));
    }
    workspaces.emplace(stream, workspace);
    return workspace;
  }

  // `bytes` of scratch, valid for work enqueued on `stream` until the returned buffer is destroyed.
  absl::StatusOr<ScratchBuffer> Scratch(int64_t bytes, cudaStream_t stream) {
    if (bytes <= 0) return ScratchBuffer();
    void* ptr = nullptr;
    const cudaError_t error =
        cudaMallocFromPoolAsync(&ptr, static_cast<size_t>(bytes), pool, stream);
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return OutOfMemory("scratch memory", bytes);
    }
    CAIRN_RETURN_IF_ERROR(cuda::CudaStatus(error, "cudaMallocFromPoolAsync"));
    return ScratchBuffer(ptr, stream);
  }

  // C = op(A) op(B) (+ bias) on cuBLASLt, or the simple kernel (by option, or where cuBLASLt has no
  // algorithm: first without the bias epilogue plus a bias kernel, then the simple GEMM).
  absl::Status Gemm(const cuda::GemmArgs& g, cudaStream_t stream) {
    if (options.matmul == CudaBackendOptions::Matmul::kCublasLt) {
      CAIRN_ASSIGN_OR_RETURN(void* workspace, Workspace(stream));
      const size_t bytes = static_cast<size_t>(options.cublas_workspace_bytes);
      absl::Status status = lt->Run(g, workspace, bytes, stream);
      if (!absl::IsUnimplemented(status)) return status;
      if (g.bias != nullptr) {
        cuda::GemmArgs plain = g;
        plain.bias = nullptr;
        const absl::Status plain_status = lt->Run(plain, workspace, bytes, stream);
        if (plain_status.ok()) {
          CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAddBias(g.m, g.n, g.bias, g.c, g.c_f32, stream));
          return absl::OkStatus();
        }
        if (!absl::IsUnimplemented(plain_status)) return plain_status;
      }
    }
    CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchSimpleGemm(g, stream));
    return absl::OkStatus();
  }

  cuda::AttentionArgs Args(const AttentionShape& s) const {
    cuda::AttentionArgs a;
    a.batch = s.batch;
    a.seq = s.seq;
    a.head_dim = s.head_dim;
    a.local_heads = s.local_heads();
    a.local_kv_heads = s.local_kv_heads();
    a.head_begin = s.head_begin;
    a.head_end = s.head_end;
    a.group_size = s.group_size();
    a.kv_begin = s.kv_begin();
    a.q_stride = s.q_token_stride();
    a.kv_stride = s.kv_token_stride();
    a.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    return a;
  }

  // Which attention kernels run: true = flash. `pointers` lists every tensor of the call.
  // Unimplemented when kFlash is forced where the flash kernels do not apply, or when neither
  // applies.
  absl::StatusOr<bool> UseFlash(const cuda::AttentionArgs& a,
                                std::initializer_list<const void*> pointers) const {
    const bool flash =
        cuda::FlashAttentionSupported(a, pointers.begin(), static_cast<int>(pointers.size()));
    switch (options.attention) {
      case CudaBackendOptions::Attention::kFlash:
        if (!flash) {
          return absl::UnimplementedError(absl::StrCat(
              "cuda: the flash attention kernels take head dims 64 and 128 with 16-byte aligned "
              "q/k/v and token strides that are multiples of 8; got head_dim ",
              a.head_dim, ", strides ", a.q_stride, "/", a.kv_stride));
        }
        return true;
      case CudaBackendOptions::Attention::kSimple:
        break;
      case CudaBackendOptions::Attention::kAuto:
        if (flash) return true;
        break;
    }
    if (a.head_dim > cuda::kMaxSimpleHeadDim) {
      return absl::UnimplementedError(absl::StrCat("cuda: attention head_dim ", a.head_dim,
                                                   " exceeds ", cuda::kMaxSimpleHeadDim));
    }
    return false;
  }
};

// ---- Creation, streams
// ----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    int device_index, const CudaBackendOptions& options) {
  if (options.cublas_workspace_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda: cublas_workspace_bytes must be >= 0, got ", options.cublas_workspace_bytes));
  }
  int count = 0;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
  if (device_index < 0 || device_index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("cuda: no CUDA device ", device_index, " (", count, " device(s) present)"));
  }
  cudaDeviceProp prop;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_index));
  if (prop.major < 8) {
    return absl::FailedPreconditionError(
        absl::StrCat("cuda: device ", device_index, " (", prop.name, ") has compute capability ",
                     prop.major, ".", prop.minor, "; the bf16 backend needs 8.0 or newer"));
  }
  auto impl = std::make_unique<Impl>();
  impl->device = device_index;
  impl->device_name = prop.name;
  impl->sm_count = prop.multiProcessorCount;
  impl->options = options;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_index));
  cudaStream_t stream = nullptr;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  impl->default_stream = std::make_unique<Stream>(stream);
  CAIRN_ASSIGN_OR_RETURN(impl->lt, cuda::LtMatmul::Create());
  // A private pool, so its release threshold (keep everything: scratch is reused call after
  // call) does not change the device's default pool that other libraries may use.
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device_index;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaMemPoolCreate(&impl->pool, &props));
  uint64_t threshold = UINT64_MAX;
  CAIRN_CUDA_RETURN_IF_ERROR(
      cudaMemPoolSetAttribute(impl->pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CudaBackend::~CudaBackend() = default;

Stream* CudaBackend::default_stream() { return impl_->default_stream.get(); }

int64_t CudaBackend::ScratchHighWaterBytes() const {
  int64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    bytes += static_cast<int64_t>(impl_->workspaces.size()) * impl_->options.cublas_workspace_bytes;
  }
  uint64_t pool_high = 0;
  if (cudaMemPoolGetAttribute(impl_->pool, cudaMemPoolAttrReservedMemHigh, &pool_high) ==
      cudaSuccess) {
    bytes += static_cast<int64_t>(pool_high);
  }
  return bytes;
}

absl::StatusOr<Stream*> CudaBackend::CreateStream() {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  cudaStream_t stream = nullptr;
  CAIRN_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->extra_streams.push_back(std::make_unique<Stream>(stream));
  return impl_->extra_streams.back().get();
}

int CudaBackend::device_index() const { return impl_->device; }
const std::string& CudaBackend::device_name() const { return impl_->device_name; }
const CudaBackendOptions& CudaBackend::options() const { return impl_->options; }

bool CudaBackend::FlashAttentionApplies(const AttentionShape& shape, const void* q, const void* k,
                                        const void* v) const {
  const void* pointers[3] = {q, k, v};
  return CheckAttentionShape(shape).ok() &&
         cuda::FlashAttentionSupported(impl_->Args(shape), pointers, 3);
}

// ---- Memory -----------------------------------------------------------------------------------

absl::StatusOr<void*> CudaBackend::DoAllocate(int64_t bytes) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  // A zero-byte request still gets a distinct pointer (as on the CPU backend).
  const size_t size = static_cast<size_t>(bytes > 0 ? bytes : 256);
  void* ptr = nullptr;
  cudaError_t error = cudaMalloc(&ptr, size);
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    // The scratch pool may hold freed blocks: give them back and try once more.
    cudaDeviceSynchronize();
    cudaMemPoolTrimTo(impl_->pool, 0);
    error = cudaMalloc(&ptr, size);
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return impl_->OutOfMemory("Allocate", bytes);
    }
  }
  CAIRN_RETURN_IF_ERROR(cuda::CudaStatus(error, "cudaMalloc"));
  return ptr;
}

void CudaBackend::DoFree(void* ptr) {
  const absl::Status active = impl_->Activate();
  const cudaError_t error = cudaFree(ptr);
  if (!active.ok() || error != cudaSuccess) {
    CAIRN_LOG(ERROR) << "cuda: Free failed: "
                     << (active.ok() ? cudaGetErrorString(error) : active.ToString());
  }
}

absl::Status CudaBackend::DoCopyToDevice(void* device_dst, const void* host_src, int64_t bytes,
                                         Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_dst, host_src, static_cast<size_t>(bytes),
                                             cudaMemcpyHostToDevice, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoCopyToHost(void* host_dst, const void* device_src, int64_t bytes,
                                       Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_dst, device_src, static_cast<size_t>(bytes),
                                             cudaMemcpyDeviceToHost, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoCopyOnDevice(void* device_dst, const void* device_src, int64_t bytes,
                                         Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_dst, device_src, static_cast<size_t>(bytes),
                                             cudaMemcpyDeviceToDevice, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoZero(void* device_dst, int64_t bytes, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(device_dst, 0, static_cast<size_t>(bytes), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoSynchronize(Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoCopy2D(int64_t rows, int64_t row_bytes, const void* src,
                                   int64_t src_pitch, void* dst, int64_t dst_pitch,
                                   Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_pitch), src, static_cast<size_t>(src_pitch),
                        static_cast<size_t>(row_bytes), static_cast<size_t>(rows),
                        cudaMemcpyDeviceToDevice, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoAdd2D(int64_t rows, int64_t row_elements, const void* src,
                                  int64_t src_pitch, void* dst, int64_t dst_pitch, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAdd2D(rows, row_elements, B(src), src_pitch, B(dst),
                                               dst_pitch, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoToWorking(int64_t n, const float* src, void* dst, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchFloatToBf16(n, src, B(dst), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoFromWorking(int64_t n, const void* src, float* dst, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchBf16ToFloat(n, B(src), dst, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

// ---- Matmul -----------------------------------------------------------------------------------

absl::Status CudaBackend::DoMatmulForward(const MatmulShape& s, const void* a, const void* b,
                                          const void* bias, void* c, bool accumulate,
                                          Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  cuda::GemmArgs g;
  g.m = s.m;
  g.n = s.n;
  g.k = s.k;
  g.ta = s.transpose_a;
  g.tb = s.transpose_b;
  g.a = B(a);
  g.b = B(b);
  g.c = c;
  g.c_f32 = s.output_f32;
  g.beta = accumulate ? 1.0f : 0.0f;
  g.bias = bias;
  return impl_->Gemm(g, impl_->StreamOf(stream));
}

absl::Status CudaBackend::DoMatmulBackward(const MatmulShape& s, const void* a, const void* b,
                                           const void* dc, void* da, float* db, float* dbias,
                                           bool accumulate_da, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cudaStream_t cs = impl_->StreamOf(stream);
  // C = op(A) op(B): d op(A) = dC op(B)^T and d op(B) = op(A)^T dC, each written in its tensor's
  // stored layout, which only changes the GEMM's transpose flags (cpu_backend.cc derives them):
  //   A stored [m, k]: dA[m, k] = dC[m, n] . op(B)^T      A stored [k, m]: dA[k, m] = op(B) . dC^T
  //   B stored [n, k]: dB[n, k] = dC^T . op(A)            B stored [k, n]: dB[k, n] = op(A)^T . dC
  const bool ta = s.transpose_a, tb = s.transpose_b;
  if (da != nullptr) {
    cuda::GemmArgs g;
    if (!ta) {  // [m, k] = dC [m, n] x (B stored [n, k] as is | B stored [k, n] transposed)
      g.m = s.m, g.n = s.k, g.k = s.n, g.ta = false, g.tb = !tb, g.a = B(dc), g.b = B(b);
    } else {  // [k, m] = op(B) [k, n] x dC^T
      g.m = s.k, g.n = s.m, g.k = s.n, g.ta = tb, g.tb = true, g.a = B(b), g.b = B(dc);
    }
    g.c = da;
    g.beta = accumulate_da ? 1.0f : 0.0f;
    CAIRN_RETURN_IF_ERROR(impl_->Gemm(g, cs));
  }
  if (db != nullptr) {
    cuda::GemmArgs g;
    if (tb) {  // [n, k] = dC^T [n, m] x op(A) [m, k]
      g.m = s.n, g.n = s.k, g.k = s.m, g.ta = true, g.tb = ta, g.a = B(dc), g.b = B(a);
    } else {  // [k, n] = op(A)^T [k, m] x dC [m, n]
      g.m = s.k, g.n = s.n, g.k = s.m, g.ta = !ta, g.tb = false, g.a = B(a), g.b = B(dc);
    }
    g.c = db;
    g.c_f32 = true;
    g.beta = 1.0f;  // parameter gradients accumulate
    CAIRN_RETURN_IF_ERROR(impl_->Gemm(g, cs));
  }
  if (dbias != nullptr) {
    const int64_t chunks = cuda::ColumnSumChunks(s.m, s.n, kMaxPartialFloats);
    CAIRN_ASSIGN_OR_RETURN(ScratchBuffer partials, impl_->Scratch(chunks * s.n * 4, cs));
    CAIRN_CUDA_RETURN_IF_ERROR(
        cuda::LaunchColumnSums(s.m, s.n, B(dc), chunks, partials.as<float>(), dbias, cs));
  }
  return absl::OkStatus();
}

// ---- Normalisation ----------------------------------------------------------------------------

namespace {
absl::Status CheckNormWidth(const NormShape& s) {
  if (s.cols <= cuda::kMaxNormCols) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      "cuda: norm rows of ", s.cols, " columns exceed the kernels' ", cuda::kMaxNormCols));
}
}  // namespace

absl::Status CudaBackend::DoLayerNormForward(const NormShape& s, const void* inp,
                                             const void* weight, const void* bias, void* out,
                                             float* rstd, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_RETURN_IF_ERROR(CheckNormWidth(s));
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchLayerNormForward(
      s.rows, s.cols, s.eps, B(inp), B(weight), B(bias), B(out), rstd, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoLayerNormBackward(const NormShape& s, const void* inp,
                                              const void* weight, const float* rstd,
                                              const void* dout, void* dinp, float* dweight,
                                              float* dbias, bool accumulate_dinp, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_RETURN_IF_ERROR(CheckNormWidth(s));
  const cudaStream_t cs = impl_->StreamOf(stream);
  const int64_t blocks =
      cuda::NormBackwardBlocks(s.rows, s.cols, impl_->sm_count, kMaxPartialFloats);
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer partials, impl_->Scratch(blocks * 2 * s.cols * 4, cs));
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchLayerNormBackward(
      s.rows, s.cols, B(inp), B(weight), rstd, B(dout), B(dinp), accumulate_dinp, blocks,
      partials.as<float>(), dweight, dbias, cs));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoRmsNormForward(const NormShape& s, const void* inp, const void* weight,
                                           void* out, float* rstd, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_RETURN_IF_ERROR(CheckNormWidth(s));
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNormForward(s.rows, s.cols, s.eps, B(inp), B(weight),
                                                        B(out), rstd, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoRmsNormBackward(const NormShape& s, const void* inp, const void* weight,
                                            const float* rstd, const void* dout, void* dinp,
                                            float* dweight, bool accumulate_dinp, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_RETURN_IF_ERROR(CheckNormWidth(s));
  const cudaStream_t cs = impl_->StreamOf(stream);
  const int64_t blocks =
      cuda::NormBackwardBlocks(s.rows, s.cols, impl_->sm_count, kMaxPartialFloats);
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer partials, impl_->Scratch(blocks * 2 * s.cols * 4, cs));
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNormBackward(s.rows, s.cols, B(inp), B(weight), rstd,
                                                         B(dout), B(dinp), accumulate_dinp, blocks,
                                                         partials.as<float>(), dweight, cs));
  return absl::OkStatus();
}

// ---- Activations ------------------------------------------------------------------------------

absl::Status CudaBackend::DoGeluForward(int64_t n, const void* inp, void* out, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchGeluForward(n, B(inp), B(out), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoGeluBackward(int64_t n, const void* inp, const void* dout, void* dinp,
                                         Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchGeluBackward(n, B(inp), B(dout), B(dinp), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoSwiGluForward(int64_t n, const void* gate, const void* up, void* out,
                                          Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchSwiGluForward(n, B(gate), B(up), B(out), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoSwiGluBackward(int64_t n, const void* gate, const void* up,
                                           const void* dout, void* dgate, void* dup,
                                           Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchSwiGluBackward(n, B(gate), B(up), B(dout), B(dgate),
                                                        B(dup), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

// ---- RoPE -------------------------------------------------------------------------------------

namespace {
cuda::RopeArgs RopeArgsOf(const RopeShape& s) {
  return cuda::RopeArgs{s.batch,
                        s.seq,
                        s.num_heads,
                        s.head_dim,
                        s.token_stride != 0 ? s.token_stride : s.num_heads * s.head_dim,
                        s.position_offset,
                        s.theta};
}
}  // namespace

absl::Status CudaBackend::DoRopeForward(const RopeShape& s, const void* inp, void* out,
                                        Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchRope(RopeArgsOf(s), 1.0f, B(inp), B(out), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoRopeBackward(const RopeShape& s, const void* dout, void* dinp,
                                         Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  // A rotation is orthogonal: its Jacobian transposed is the rotation by the opposite angle.
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchRope(RopeArgsOf(s), -1.0f, B(dout), B(dinp), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

// ---- Attention --------------------------------------------------------------------------------

absl::Status CudaBackend::DoAttentionForward(const AttentionShape& s, const void* q, const void* k,
                                             const void* v, void* out, float* lse, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cuda::AttentionArgs a = impl_->Args(s);
  CAIRN_ASSIGN_OR_RETURN(const bool flash, impl_->UseFlash(a, {q, k, v, out}));
  const cudaStream_t cs = impl_->StreamOf(stream);
  if (flash) {
    CAIRN_CUDA_RETURN_IF_ERROR(
        cuda::LaunchAttentionForwardFlash(a, B(q), B(k), B(v), B(out), lse, cs));
  } else {
    CAIRN_CUDA_RETURN_IF_ERROR(
        cuda::LaunchAttentionForwardSimple(a, B(q), B(k), B(v), B(out), lse, cs));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::DoAttentionBackward(const AttentionShape& s, const void* q, const void* k,
                                              const void* v, const void* out, const float* lse,
                                              const void* dout, void* dq, void* dk, void* dv,
                                              Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cuda::AttentionArgs a = impl_->Args(s);
  CAIRN_ASSIGN_OR_RETURN(const bool flash, impl_->UseFlash(a, {q, k, v, out, dout, dq, dk, dv}));
  const cudaStream_t cs = impl_->StreamOf(stream);
  const int64_t rows = a.batch * a.local_heads * a.seq;
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer delta, impl_->Scratch(rows * 4, cs));
  if (flash) {
    CAIRN_ASSIGN_OR_RETURN(ScratchBuffer dq_accum, impl_->Scratch(rows * a.head_dim * 4, cs));
    CAIRN_CUDA_RETURN_IF_ERROR(
        cuda::LaunchAttentionBackwardFlash(a, B(q), B(k), B(v), B(out), lse, B(dout), B(dq), B(dk),
                                           B(dv), delta.as<float>(), dq_accum.as<float>(), cs));
  } else {
    CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAttentionBackwardSimple(
        a, B(q), B(k), B(v), B(out), lse, B(dout), B(dq), B(dk), B(dv), delta.as<float>(), cs));
  }
  return absl::OkStatus();
}

// ---- Embedding --------------------------------------------------------------------------------

namespace {
cuda::EmbeddingArgs EmbeddingArgsOf(const EmbeddingShape& s) {
  return cuda::EmbeddingArgs{s.batch * s.seq, s.seq,       s.channels,
                             s.vocab_begin,   s.vocab_end, s.position_offset};
}
}  // namespace

absl::Status CudaBackend::DoEmbeddingForward(const EmbeddingShape& s, const int32_t* tokens,
                                             const void* wte, const void* wpe, void* out,
                                             Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchEmbeddingForward(EmbeddingArgsOf(s), tokens, B(wte),
                                                          B(wpe), B(out), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoEmbeddingBackward(const EmbeddingShape& s, const int32_t* tokens,
                                              const void* dout, float* dwte, float* dwpe,
                                              Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cuda::EmbeddingArgs args = EmbeddingArgsOf(s);
  if (args.tokens > 0x7fffffff) {
    return absl::UnimplementedError(
        absl::StrCat("cuda: embedding backward over ", args.tokens, " tokens (at most 2^31 - 1)"));
  }
  const cudaStream_t cs = impl_->StreamOf(stream);
  size_t bytes = 0;
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::EmbeddingBackwardScratchBytes(args, &bytes));
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer scratch, impl_->Scratch(static_cast<int64_t>(bytes), cs));
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchEmbeddingBackward(args, tokens, B(dout), dwte, dwpe,
                                                           scratch.as<void>(), bytes, cs));
  return absl::OkStatus();
}

// ---- Cross-entropy ----------------------------------------------------------------------------

namespace {
cuda::CrossEntropyArgs CrossEntropyArgsOf(const CrossEntropyShape& s) {
  return cuda::CrossEntropyArgs{s.tokens, s.vocab_begin, s.local_vocab()};
}
}  // namespace

absl::Status CudaBackend::DoCrossEntropyMax(const CrossEntropyShape& s, const float* logits,
                                            float* max, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchCrossEntropyMax(CrossEntropyArgsOf(s), logits, max, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoCrossEntropySums(const CrossEntropyShape& s, const float* logits,
                                             const int32_t* targets, const float* max,
                                             float* sum_exp, float* target_logit, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchCrossEntropySums(
      CrossEntropyArgsOf(s), logits, targets, max, sum_exp, target_logit, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoCrossEntropyLossAndGrad(const CrossEntropyShape& s, const float* logits,
                                                    const int32_t* targets, const float* max,
                                                    const float* sum_exp, const float* target_logit,
                                                    float loss_scale, float* losses, void* dlogits,
                                                    Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchCrossEntropyLossAndGrad(
      CrossEntropyArgsOf(s), logits, targets, max, sum_exp, target_logit, loss_scale, losses,
      B(dlogits), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

// ---- Residual, optimizer, utilities -------------------------------------------------------------

absl::Status CudaBackend::DoResidualForward(int64_t n, const void* a, const void* b, void* out,
                                            Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAdd(n, B(a), B(b), B(out), impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoResidualBackward(int64_t n, const void* dout, void* da, void* db,
                                             bool accumulate, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cudaStream_t cs = impl_->StreamOf(stream);
  for (void* grad : {da, db}) {
    if (grad == nullptr) continue;
    if (accumulate) {
      CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAdd(n, B(grad), B(dout), B(grad), cs));
    } else if (grad != dout) {
      CAIRN_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(grad, dout, static_cast<size_t>(n) * 2, cudaMemcpyDeviceToDevice, cs));
    }
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::DoAdamWUpdate(int64_t n, const AdamWConfig& c, int64_t step,
                                        bool apply_weight_decay, float grad_scale, float* params,
                                        const float* grads, float* m, float* v, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  cuda::AdamWArgs args;
  args.learning_rate = c.learning_rate;
  args.beta1 = c.beta1;
  args.beta2 = c.beta2;
  args.eps = c.eps;
  args.weight_decay = apply_weight_decay ? c.weight_decay : 0.0f;
  // As the CPU backend: the corrections in double, rounded once.
  args.bias_correction1 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(c.beta1), static_cast<double>(step)));
  args.bias_correction2 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(c.beta2), static_cast<double>(step)));
  args.grad_scale = grad_scale;
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchAdamW(n, args, params, grads, m, v, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoAxpy(int64_t n, float alpha, const float* x, float* y,
                                 Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchAxpy(n, alpha, x, y, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoScale(int64_t n, float alpha, float* x, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  CAIRN_CUDA_RETURN_IF_ERROR(cuda::LaunchScale(n, alpha, x, impl_->StreamOf(stream)));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoNormSquared(int64_t n, const float* x, float* sum, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cudaStream_t cs = impl_->StreamOf(stream);
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer partials, impl_->Scratch(cuda::SumPartials(n) * 4, cs));
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchSum(n, x, /*squared=*/true, partials.as<float>(), sum, cs));
  return absl::OkStatus();
}

absl::Status CudaBackend::DoSum(int64_t n, const float* x, float* sum, Stream* stream) {
  CAIRN_RETURN_IF_ERROR(impl_->Activate());
  const cudaStream_t cs = impl_->StreamOf(stream);
  CAIRN_ASSIGN_OR_RETURN(ScratchBuffer partials, impl_->Scratch(cuda::SumPartials(n) * 4, cs));
  CAIRN_CUDA_RETURN_IF_ERROR(
      cuda::LaunchSum(n, x, /*squared=*/false, partials.as<float>(), sum, cs));
  return absl::OkStatus();
}

}  // namespace cairn::runtime
