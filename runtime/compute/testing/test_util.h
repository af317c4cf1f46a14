// runtime/compute/testing/test_util.h — helpers for compute tests: random tensors, relative error,
// central finite differences, and device buffers that work on any ComputeBackend.
//
//   std::vector<float> x = RoundTo(backend.working_dtype(), RandomVector(n, /*seed=*/1));
//   WorkingBuffer dx(backend, x), dy(backend, n);       // (w) tensors: bf16 on a bf16 backend
//   DeviceBuffer<float> rstd(backend, rows);            // (f32) tensors
//   ASSERT_OK(backend.GeluForward(n, dx.get(), dy.get()));
//   EXPECT_LT(RelativeError(dy.ToHost(), expected), 1e-5);
//
// RelativeError is max_i |actual_i - expected_i| / max_i |expected_i|: the error relative to the
// tensor's scale (in the spirit of ggml test-backend-ops' normalised error), so near-zero elements
// do not dominate; NaN and infinity never pass. Test-only (testonly library); not thread-safe.
#ifndef CAIRN_RUNTIME_COMPUTE_TESTING_TEST_UTIL_H_
#define CAIRN_RUNTIME_COMPUTE_TESTING_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "common/logging.h"
#include "runtime/compute/compute_backend.h"
#include "runtime/dtype.h"

namespace cairn::runtime::testing {

// n values drawn from N(mean, stddev^2) with a fixed seed.
inline std::vector<float> RandomVector(int64_t n, uint32_t seed, float stddev = 1.0f,
                                       float mean = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// n integers uniform in [lo, hi).
inline std::vector<int32_t> RandomInts(int64_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = dist(gen);
  return v;
}

template <typename To, typename From>
std::vector<To> Convert(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// The values a tensor of `dtype` holds after an upload of `v`: unchanged for fp32, rounded to
// nearest even for bf16. Tests feed the oracle these values, so that a bf16 backend is compared on
// the inputs it actually sees (only its own arithmetic and output rounding count as error).
inline std::vector<float> RoundTo(DType dtype, std::vector<float> v) {
  if (dtype == DType::kBFloat16) {
    for (float& x : v) x = FromBFloat16(ToBFloat16(x));
  }
  return v;
}

// max |actual - expected| / max |expected| (absolute error when expected is all zero). A NaN or
// infinity anywhere gives infinity: it never passes a bound.
template <typename A, typename E>
double RelativeError(const std::vector<A>& actual, const std::vector<E>& expected) {
  CAIRN_CHECK(actual.size() == expected.size())
      << "sizes differ: " << actual.size() << " vs " << expected.size();
  double max_error = 0.0, max_expected = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double e = static_cast<double>(expected[i]);
    const double a = static_cast<double>(actual[i]);
    if (!std::isfinite(a) || !std::isfinite(e)) return std::numeric_limits<double>::infinity();
    max_error = std::max(max_error, std::fabs(a - e));
    max_expected = std::max(max_expected, std::fabs(e));
  }
  return max_expected > 0.0 ? max_error / max_expected : max_error;
}

// ||actual - expected||_2 / ||expected||_2 (absolute when expected is all zero): METHOD.md's norm
// error, less sensitive than RelativeError to one unlucky element of a long reduction.
template <typename A, typename E>
double RelativeL2Error(const std::vector<A>& actual, const std::vector<E>& expected) {
  CAIRN_CHECK(actual.size() == expected.size())
      << "sizes differ: " << actual.size() << " vs " << expected.size();
  double error = 0.0, norm = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double e = static_cast<double>(expected[i]);
    const double a = static_cast<double>(actual[i]);
    if (!std::isfinite(a) || !std::isfinite(e)) return std::numeric_limits<double>::infinity();
    const double d = a - e;
    error += d * d;
    norm += e * e;
  }
  return norm > 0.0 ? std::sqrt(error / norm) : std::sqrt(error);
}

// Central differences d loss / d x_i = (loss(x + h e_i) - loss(x - h e_i)) / 2h for every i; `loss`
// reads x (which is perturbed in place and restored).
template <typename T>
std::vector<double> NumericalGradient(std::vector<T>& x, const std::function<double()>& loss,
                                      double h) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const T saved = x[i];
    x[i] = static_cast<T>(saved + h);
    const double plus = loss();
    x[i] = static_cast<T>(saved - h);
    const double minus = loss();
    x[i] = saved;
    grad[i] = (plus - minus) / (2.0 * h);
  }
  return grad;
}

// sum_i w_i y_i in double: the scalar whose gradient with respect to y is w (the "dout" of a test).
template <typename W, typename Y>
double WeightedSum(const std::vector<W>& w, const std::vector<Y>& y) {
  CAIRN_CHECK(w.size() == y.size());
  double sum = 0.0;
  for (size_t i = 0; i < w.size(); ++i)
    sum += static_cast<double>(w[i]) * static_cast<double>(y[i]);
  return sum;
}

// A buffer of n elements of T in a backend's memory; freed on destruction. Construction from a host
// vector uploads it; ToHost synchronizes and downloads. Failures abort (tests only).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer(ComputeBackend& backend, int64_t n) : backend_(backend), n_(n) {
    auto ptr = backend_.Allocate(Bytes());
    CAIRN_CHECK(ptr.ok()) << ptr.status();
    ptr_ = static_cast<T*>(*ptr);
    CAIRN_CHECK(backend_.Zero(ptr_, Bytes()).ok());
  }
  DeviceBuffer(ComputeBackend& backend, const std::vector<T>& host)
      : DeviceBuffer(backend, static_cast<int64_t>(host.size())) {
    Upload(host);
  }
  ~DeviceBuffer() { backend_.Free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  int64_t size() const { return n_; }

  void Upload(const std::vector<T>& host) {
    CAIRN_CHECK(static_cast<int64_t>(host.size()) == n_);
    CAIRN_CHECK(backend_.CopyToDevice(ptr_, host.data(), Bytes()).ok());
  }
  std::vector<T> ToHost() const {
    std::vector<T> host(static_cast<size_t>(n_));
    CAIRN_CHECK(backend_.Synchronize().ok());
    CAIRN_CHECK(backend_.CopyToHost(host.data(), ptr_, Bytes()).ok());
    CAIRN_CHECK(backend_.Synchronize().ok());
    return host;
  }

 private:
  int64_t Bytes() const { return n_ * static_cast<int64_t>(sizeof(T)); }

  ComputeBackend& backend_;
  int64_t n_;
  T* ptr_ = nullptr;
};

// n elements of the backend's working dtype (compute_backend.h "(w)" tensors), uploaded from and
// read back as fp32 through ToWorking / FromWorking: the same test works for fp32 and bf16
// backends (bf16 rounds on upload).
class WorkingBuffer {
 public:
  WorkingBuffer(ComputeBackend& backend, int64_t n) : backend_(backend), n_(n) {
    auto ptr = backend_.Allocate(Bytes());
    CAIRN_CHECK(ptr.ok()) << ptr.status();
    ptr_ = *ptr;
    CAIRN_CHECK(backend_.Zero(ptr_, Bytes()).ok());
  }
  WorkingBuffer(ComputeBackend& backend, const std::vector<float>& host)
      : WorkingBuffer(backend, static_cast<int64_t>(host.size())) {
    Upload(host);
  }
  ~WorkingBuffer() { backend_.Free(ptr_); }
  WorkingBuffer(const WorkingBuffer&) = delete;
  WorkingBuffer& operator=(const WorkingBuffer&) = delete;

  void* get() const { return ptr_; }
  int64_t size() const { return n_; }
  // The address of element `i` (fused buffers: q, k and v at element offsets of one tensor).
  void* at(int64_t i) const {
    return static_cast<char*>(ptr_) + i * static_cast<int64_t>(DTypeSize(backend_.working_dtype()));
  }

  void Upload(const std::vector<float>& host) {
    CAIRN_CHECK(static_cast<int64_t>(host.size()) == n_);
    DeviceBuffer<float> f32(backend_, host);
    CAIRN_CHECK(backend_.ToWorking(n_, f32.get(), ptr_).ok());
    CAIRN_CHECK(backend_.Synchronize().ok());
  }
  std::vector<float> ToHost() const {
    DeviceBuffer<float> f32(backend_, n_);
    CAIRN_CHECK(backend_.FromWorking(n_, ptr_, f32.get()).ok());
    return f32.ToHost();
  }

 private:
  int64_t Bytes() const { return n_ * static_cast<int64_t>(DTypeSize(backend_.working_dtype())); }

  ComputeBackend& backend_;
  int64_t n_;
  void* ptr_ = nullptr;
};

// Reads n working-dtype elements at any device pointer as fp32 (e.g. a logits gradient written in
// place over fp32 logits).
inline std::vector<float> ReadWorking(ComputeBackend& backend, const void* ptr, int64_t n) {
  DeviceBuffer<float> f32(backend, n);
  CAIRN_CHECK(backend.FromWorking(n, ptr, f32.get()).ok());
  return f32.ToHost();
}

}  // namespace cairn::runtime::testing

#endif  // CAIRN_RUNTIME_COMPUTE_TESTING_TEST_UTIL_H_
