// The CUDA runtime and cuBLASLt host functions the CUDA backend calls, implemented on the CPU for
// the emulation build (emulation/cuda_emulation.h; test-only). One emulated device ("CPU SIMT
// emulator", compute capability 9.0, 4 multiprocessors, 16 GiB): device memory is host memory,
// streams are tokens and every operation completes when called (so Synchronize has nothing to
// wait for). Allocations beyond 16 GiB in total fail with cudaErrorMemoryAllocation.
//
// cuBLASLt is emulated from its documented column-major semantics, independently of the backend's
// row-major mapping (lt_matmul.h): D = alpha op(A) op(B) + beta C (+ bias over D's rows) with
// op(X) = X or X^T per CUBLASLT_MATMUL_DESC_TRANS{A,B}, matrices read through their layouts (rows,
// cols, leading dimension, type). Mismatched dimensions return CUBLAS_STATUS_INVALID_VALUE, so a
// wrong mapping fails loudly instead of computing something else. Products in double, one rounding
// to the output type.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

namespace cairn::runtime::cuda::emulator {
namespace {

constexpr size_t kDeviceBytes = size_t{16} << 30;
constexpr int kDefaultSharedBytes = 48 << 10;
constexpr int kMaxSharedBytes = 227 << 10;

std::mutex mu;
std::map<const void*, size_t> allocations;  // guarded by mu
size_t allocated = 0;                       // guarded by mu
std::map<const void*, int> shared_limits;   // guarded by mu

// A memory pool's accounting: the bytes its live allocations hold and their peak (what
// cudaMemPoolAttrReservedMem{Current,High} report; the emulator reserves exactly what is live).
struct Pool {
  size_t reserved = 0;
  size_t reserved_high = 0;
};
std::map<const void*, Pool*> pool_of;  // allocation -> its pool; guarded by mu
thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;

cudaError_t Fail(cudaError_t error) {
  last_error = error;
  return error;
}

void* AllocateBytes(size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  std::lock_guard<std::mutex> lock(mu);
  if (rounded > kDeviceBytes - allocated) return nullptr;
  void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
  if (p == nullptr) return nullptr;
  allocations[p] = rounded;
  allocated += rounded;
  return p;
}

void FreeBytes(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mu);
  auto it = allocations.find(p);
  if (it == allocations.end()) return;
  allocated -= it->second;
  allocations.erase(it);
  std::free(p);
}

}  // namespace

int AllowedSharedBytes(const void* kernel) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = shared_limits.find(kernel);
  return it == shared_limits.end() ? kDefaultSharedBytes : it->second;
}

void SetLastError(cudaError_t error) { last_error = error; }

}  // namespace cairn::runtime::cuda::emulator

using namespace cairn::runtime::cuda::emulator;  // NOLINT: the C API below is global

extern "C" {

// ---- Devices ------------------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "CPU SIMT emulator (sm_90)", sizeof(prop->name) - 1);
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 4;
  prop->totalGlobalMem = kDeviceBytes;
  prop->sharedMemPerBlockOptin = kMaxSharedBytes;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = kMaxSharedBytes;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 4;
      return cudaSuccess;
    default:
      *value = 0;
      return cudaSuccess;
  }
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaGetLastError(void) {
  const cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    default:
      return "cudaError(emulated)";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  return error == cudaSuccess ? "no error" : "emulated CUDA error";
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > kMaxSharedBytes) return Fail(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(mu);
    shared_limits[func] = value;
  }
  return cudaSuccess;
}

// ---- Streams
// -------------------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  *stream = reinterpret_cast<cudaStream_t>(new char);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// ---- Memory
// --------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = AllocateBytes(bytes);
  return *ptr == nullptr ? Fail(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  FreeBytes(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(mu);
  *free_bytes = kDeviceBytes - allocated;
  *total_bytes = kDeviceBytes;
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
  if (width > dst_pitch || width > src_pitch) return Fail(cudaErrorInvalidValue);
  for (size_t r = 0; r < height; ++r) {
    std::memcpy(static_cast<char*>(dst) + r * dst_pitch,
                static_cast<const char*>(src) + r * src_pitch, width);
  }
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps*) {
  *pool = reinterpret_cast<cudaMemPool_t>(new Pool);
  return cudaSuccess;
}

cudaError_t cudaMemPoolDestroy(cudaMemPool_t pool) {
  delete reinterpret_cast<Pool*>(pool);
  return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  const Pool* p = reinterpret_cast<const Pool*>(pool);
  if (p == nullptr || value == nullptr) return Fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(mu);
  uint64_t result = 0;
  switch (attr) {
    case cudaMemPoolAttrReservedMemCurrent:
    case cudaMemPoolAttrUsedMemCurrent:
      result = p->reserved;
      break;
    case cudaMemPoolAttrReservedMemHigh:
    case cudaMemPoolAttrUsedMemHigh:
      result = p->reserved_high;
      break;
    default:
      return Fail(cudaErrorInvalidValue);
  }
  *static_cast<uint64_t*>(value) = result;
  return cudaSuccess;
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }

cudaError_t cudaMallocFromPoolAsync(void** ptr, size_t bytes, cudaMemPool_t pool, cudaStream_t) {
  *ptr = AllocateBytes(bytes);
  if (*ptr == nullptr) return Fail(cudaErrorMemoryAllocation);
  {
    std::lock_guard<std::mutex> lock(mu);
    Pool* p = reinterpret_cast<Pool*>(pool);
    p->reserved += allocations[*ptr];
    if (p->reserved > p->reserved_high) p->reserved_high = p->reserved;
    pool_of[*ptr] = p;
  }
  // Scratch starts as garbage on a GPU: make that visible (NaN as fp32 and bf16).
  std::memset(*ptr, 0xff, bytes);
  return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) {
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = pool_of.find(ptr);
    if (it != pool_of.end()) {
      it->second->reserved -= allocations[ptr];
      pool_of.erase(it);
    }
  }
  FreeBytes(ptr);
  return cudaSuccess;
}

}  // extern "C"

// ---- cuBLASLt
// ------------------------------------------------------------------------------------

namespace {

struct MatmulDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;
};

struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};

double Read(const void* base, cudaDataType_t type, uint64_t index) {
  if (type == CUDA_R_32F) return static_cast<const float*>(base)[index];
  return static_cast<double>(__bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]));
}

void Write(void* base, cudaDataType_t type, uint64_t index, double value) {
  if (type == CUDA_R_32F) {
    static_cast<float*>(base)[index] = static_cast<float>(value);
  } else {
    static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(static_cast<float>(value));
  }
}

template <typename T>
cublasStatus_t SetFrom(T* field, const void* buf, size_t size) {
  if (size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, size);
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

const char* cublasLtGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_(emulated)";
}
const char* cublasLtGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success" : "emulated cuBLASLt error";
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = reinterpret_cast<cublasLtHandle_t>(new char);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete reinterpret_cast<char*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  auto* d = new MatmulDesc;
  d->compute = compute;
  d->scale = scale;
  *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete reinterpret_cast<MatmulDesc*>(desc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t size) {
  auto* d = reinterpret_cast<MatmulDesc*>(desc);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      return SetFrom(&d->trans_a, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB:
      return SetFrom(&d->trans_b, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      return SetFrom(&d->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return SetFrom(&d->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return SetFrom(&d->bias_type, buf, size);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = reinterpret_cast<cublasLtMatrixLayout_t>(new Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete reinterpret_cast<Layout*>(layout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new char);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete reinterpret_cast<char*>(pref);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t,
                                                    cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t* results,
                                              int* returned) {
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  std::memset(&results[0], 0, sizeof(results[0]));
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t a_layout, const void* B,
                              cublasLtMatrixLayout_t b_layout, const void* beta, const void* C,
                              cublasLtMatrixLayout_t c_layout, void* D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t*, void*,
                              size_t, cudaStream_t) {
  const auto& d = *reinterpret_cast<const MatmulDesc*>(desc);
  const Layout& a = *reinterpret_cast<const Layout*>(a_layout);
  const Layout& b = *reinterpret_cast<const Layout*>(b_layout);
  const Layout& c = *reinterpret_cast<const Layout*>(c_layout);
  const Layout& dl = *reinterpret_cast<const Layout*>(d_layout);
  if (d.compute != CUBLAS_COMPUTE_32F || d.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (a.type != CUDA_R_16BF || b.type != CUDA_R_16BF || c.type != dl.type) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const bool ta = d.trans_a == CUBLAS_OP_T, tb = d.trans_b == CUBLAS_OP_T;
  const uint64_t m = dl.rows, n = dl.cols;
  const uint64_t a_rows = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols;       // op(A): m x k
  const uint64_t b_rows = tb ? b.cols : b.rows, b_cols = tb ? b.rows : b.cols;  // op(B): k x n
  if (a_rows != m || b_rows != k || b_cols != n || c.rows != m || c.cols != n || c.ld != dl.ld) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const bool bias = d.epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (!bias && d.epilogue != CUBLASLT_EPILOGUE_DEFAULT) return CUBLAS_STATUS_NOT_SUPPORTED;
  const cudaDataType_t bias_type =
      d.bias_type < 0 ? dl.type : static_cast<cudaDataType_t>(d.bias_type);
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  for (uint64_t j = 0; j < n; ++j) {
    for (uint64_t i = 0; i < m; ++i) {
      double sum = 0.0;
      for (uint64_t p = 0; p < k; ++p) {
        const uint64_t ai = ta ? p + i * a.ld : i + p * a.ld;  // op(A)[i][p]
        const uint64_t bi = tb ? j + p * b.ld : p + j * b.ld;  // op(B)[p][j]
        sum += Read(A, a.type, ai) * Read(B, b.type, bi);
      }
      double value = al * sum;
      if (be != 0.0f) value += be * Read(C, c.type, i + j * c.ld);
      if (bias) value += Read(d.bias, bias_type, i);
      Write(D, dl.type, i + j * dl.ld, value);
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
