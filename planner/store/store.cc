#include "planner/store/store.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/hash.h"

namespace cairn::planner {
namespace {

// The canonical form hashed into a profile id. Protobuf's own serialization is not promised to be
// stable across library versions (field order of unknown fields, map order), and ids are persisted,
// so the bytes are built by hand: a domain tag naming the kind and the format version, then each
// fingerprint field as `<decimal byte length>:<bytes>;` in a fixed order. Lengths make the encoding
// injective (no two field tuples give the same bytes). Changing this function changes every stored
// id: add a new tag ("...v2") and a schema migration instead.
class CanonicalWriter {
 public:
  explicit CanonicalWriter(absl::string_view tag) { Add(tag); }
  void Add(absl::string_view field) { absl::StrAppend(&bytes_, field.size(), ":", field, ";"); }
  void Add(int64_t field) { Add(absl::StrCat(field)); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};


}  // namespace

std::string ProfileFingerprintKey(const cairn::v1::HardwareProfile& profile) {
  const cairn::v1::Fingerprint& f = profile.fingerprint();
  CanonicalWriter w("cairn.hardware_profile.v1");
  w.Add(f.device_model());
  w.Add(f.device_memory_bytes());
  w.Add(f.driver_version());
  w.Add(f.cuda_version());
  w.Add(f.nccl_version());
  w.Add(f.topology());
  return w.bytes();
}

std::string ProfileFingerprintKey(const cairn::v1::ModelProfile& profile) {
  CanonicalWriter w("cairn.model_profile.v1");
  w.Add(profile.model_name());
  w.Add(profile.device_model());
  w.Add(profile.activation_dtype_bytes());
  return w.bytes();
}

std::string StableProfileId(const cairn::v1::HardwareProfile& profile) {
  return absl::StrFormat("%016x", Fnv1a64(ProfileFingerprintKey(profile)));
}

std::string StableProfileId(const cairn::v1::ModelProfile& profile) {
  return absl::StrFormat("%016x", Fnv1a64(ProfileFingerprintKey(profile)));
}

}  // namespace cairn::planner
