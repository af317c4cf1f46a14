// cuBLASLt calls of LtMatmul (see lt_matmul.h for the row-major to column-major mapping).
#include "runtime/compute/cuda/lt_matmul.h"

#include <utility>

#include "common/logging.h"
#include "runtime/compute/cuda/cuda_check.h"

namespace cairn::runtime::cuda {
namespace {

// The largest power of two (capped at 256) that divides the address: what cuBLASLt's
// MIN_ALIGNMENT preferences mean.
int Alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  if (v == 0) return 256;
  const uintptr_t lowest = v & (~v + 1);
  return lowest >= 256 ? 256 : static_cast<int>(lowest);
}

// Owns the descriptors of one call; destroys them on every return path.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Descriptors() {
    if (preference != nullptr) cublasLtMatmulPreferenceDestroy(preference);
    if (c != nullptr) cublasLtMatrixLayoutDestroy(c);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

// The column-major layout of a row-major [rows, cols] matrix.
absl::Status RowMajorLayout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows,
                            int64_t cols) {
  CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(cols),
                                                          static_cast<uint64_t>(rows), cols));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LtMatmul>> LtMatmul::Create() {
  cublasLtHandle_t handle = nullptr;
  CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&handle));
  return std::unique_ptr<LtMatmul>(new LtMatmul(handle));
}

LtMatmul::~LtMatmul() { cublasLtDestroy(handle_); }

size_t LtMatmul::cached_algorithms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

absl::Status LtMatmul::Run(const GemmArgs& g, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  const cudaDataType_t c_type = g.c_f32 ? CUDA_R_32F : CUDA_R_16BF;
  Descriptors d;
  CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // cuBLASLt's A is our B, its B our A (lt_matmul.h).
  const cublasOperation_t trans_a = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  CAIRN_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  CAIRN_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  if (g.bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const int32_t bias_type = c_type;
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                                &epilogue, sizeof(epilogue)));
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  // Stored row-major shapes: our B is [n, k] (tb) or [k, n]; our A is [k, m] (ta) or [m, k].
  CAIRN_RETURN_IF_ERROR(RowMajorLayout(&d.a, CUDA_R_16BF, g.tb ? g.n : g.k, g.tb ? g.k : g.n));
  CAIRN_RETURN_IF_ERROR(RowMajorLayout(&d.b, CUDA_R_16BF, g.ta ? g.k : g.m, g.ta ? g.m : g.k));
  CAIRN_RETURN_IF_ERROR(RowMajorLayout(&d.c, c_type, g.m, g.n));

  const Key key{g.m,
                g.n,
                g.k,
                g.ta,
                g.tb,
                g.c_f32,
                g.bias != nullptr,
                g.beta == 0.0f,
                Alignment(g.a),
                Alignment(g.b),
                Alignment(g.c),
                Alignment(g.bias)};
  Entry entry;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      entry = it->second;
      cached = true;
    }
  }
  if (!cached) {
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&d.preference));
    const uint64_t bytes = workspace_bytes;
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof(bytes)));
    const uint32_t align_a = Alignment(g.b), align_b = Alignment(g.a), align_c = Alignment(g.c);
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
    CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        handle_, d.op, d.a, d.b, d.c, d.c, d.preference, 1, &result, &returned);
    if (status == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
      entry.found = true;
      entry.algo = result.algo;
    } else if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED) {
      CAIRN_RETURN_IF_ERROR(CublasStatus(status, "cublasLtMatmulAlgoGetHeuristic"));
    } else {
      CAIRN_LOG(WARNING) << "cuBLASLt has no algorithm for m=" << g.m << " n=" << g.n
                         << " k=" << g.k << " ta=" << g.ta << " tb=" << g.tb << " c_f32=" << g.c_f32
                         << " bias=" << (g.bias != nullptr) << ": using the simple kernel";
    }
    std::lock_guard<std::mutex> lock(mu_);
    cache_.emplace(key, entry);
  }
  if (!entry.found) {
    return absl::UnimplementedError("cuBLASLt has no algorithm for this matmul configuration");
  }
  const float alpha = 1.0f, beta = g.beta;
  CAIRN_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(handle_, d.op, &alpha, g.b, d.a, g.a, d.b, &beta, g.c,
                                              d.c, g.c, d.c, &entry.algo, workspace,
                                              workspace_bytes, stream));
  return absl::OkStatus();
}

}  // namespace cairn::runtime::cuda
