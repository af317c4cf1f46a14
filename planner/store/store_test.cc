// Tests of StableProfileId: its exact values are persisted (they are the profile ids in every
// database), so they are pinned here against digests computed independently (Python, below).
#include "planner/store/store.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace cairn::planner {
namespace {

cairn::v1::HardwareProfile H100() {
  cairn::v1::HardwareProfile p;
  p.set_name("h100-sxm");
  cairn::v1::Fingerprint* f = p.mutable_fingerprint();
  f->set_device_model("NVIDIA H100 80GB HBM3");
  f->set_device_memory_bytes(85899345920);
  f->set_driver_version("550.54.15");
  f->set_cuda_version("12.4");
  f->set_nccl_version("2.21.5");
  f->set_topology("8x NVLink4 NVSwitch, 8x400G IB");
  return p;
}

// The expected digests come from this independent implementation:
//   def fnv(b):
//     h = 0xcbf29ce484222325
//     for c in b: h ^= c; h = (h * 0x100000001b3) % 2**64
//     return '%016x' % h
//   def key(tag, fields): return ''.join('%d:%s;' % (len(str(x)), x) for x in [tag] + fields)
//   fnv(key('cairn.hardware_profile.v1', ['NVIDIA H100 80GB HBM3', 85899345920, '550.54.15',
//           '12.4', '2.21.5', '8x NVLink4 NVSwitch, 8x400G IB']).encode())  -> fc58853bf606667f
//   fnv(key('cairn.model_profile.v1', ['llama2-7b', 'NVIDIA H100 80GB HBM3', 2]).encode())
//                                                                         -> a793e6acd4ca8b45
//   fnv(key('cairn.hardware_profile.v1', ['cpu', 0, '', '', '', '']).encode()) -> 1e511f599190c10b
TEST(StableProfileIdTest, PinnedValues) {
  EXPECT_EQ(ProfileFingerprintKey(H100()),
            "25:cairn.hardware_profile.v1;21:NVIDIA H100 80GB HBM3;11:85899345920;9:550.54.15;"
            "4:12.4;6:2.21.5;30:8x NVLink4 NVSwitch, 8x400G IB;");
  EXPECT_EQ(StableProfileId(H100()), "fc58853bf606667f");

  cairn::v1::HardwareProfile cpu;
  cpu.mutable_fingerprint()->set_device_model("cpu");
  EXPECT_EQ(ProfileFingerprintKey(cpu), "25:cairn.hardware_profile.v1;3:cpu;1:0;0:;0:;0:;0:;");
  EXPECT_EQ(StableProfileId(cpu), "1e511f599190c10b");

  cairn::v1::ModelProfile model;
  model.set_model_name("llama2-7b");
  model.set_device_model("NVIDIA H100 80GB HBM3");
  model.set_activation_dtype_bytes(2);
  EXPECT_EQ(StableProfileId(model), "a793e6acd4ca8b45");
}

TEST(StableProfileIdTest, OnlyFingerprintFieldsCount) {
  cairn::v1::HardwareProfile a = H100();
  cairn::v1::HardwareProfile b = H100();
  b.set_name("renamed");
  b.set_notes("remeasured");
  b.set_devices_per_node(4);
  b.mutable_device()->set_peak_flops_per_s(1e15);
  EXPECT_EQ(StableProfileId(a), StableProfileId(b));

  cairn::v1::ModelProfile m;
  m.set_model_name("gpt2");
  cairn::v1::ModelProfile n = m;
  n.add_timings()->set_forward_s(0.1);
  n.set_source("measured");
  EXPECT_EQ(StableProfileId(m), StableProfileId(n));
}

TEST(StableProfileIdTest, EveryFingerprintFieldChangesTheId) {
  std::set<std::string> ids;
  ids.insert(StableProfileId(H100()));
  for (int field = 0; field < 6; ++field) {
    cairn::v1::HardwareProfile p = H100();
    cairn::v1::Fingerprint* f = p.mutable_fingerprint();
    switch (field) {
      case 0: f->set_device_model("NVIDIA H100 80GB HBM3 "); break;
      case 1: f->set_device_memory_bytes(f->device_memory_bytes() + 1); break;
      case 2: f->set_driver_version("550.54.14"); break;
      case 3: f->set_cuda_version("12.5"); break;
      case 4: f->set_nccl_version("2.21.6"); break;
      case 5: f->set_topology(""); break;
    }
    const std::string id = StableProfileId(p);
    EXPECT_EQ(id.size(), 16u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_TRUE(ids.insert(id).second) << "field " << field << " did not change the id";
  }
}

TEST(StableProfileIdTest, EncodingIsInjective) {
  // Without length prefixes, ("ab", "c") and ("a", "bc") would serialise alike.
  cairn::v1::HardwareProfile a;
  a.mutable_fingerprint()->set_device_model("ab");
  a.mutable_fingerprint()->set_driver_version("c");
  cairn::v1::HardwareProfile b;
  b.mutable_fingerprint()->set_device_model("a");
  b.mutable_fingerprint()->set_driver_version("bc");
  EXPECT_NE(ProfileFingerprintKey(a), ProfileFingerprintKey(b));
  EXPECT_NE(StableProfileId(a), StableProfileId(b));

  // The kind is part of the hash: a model profile never shares an id with a hardware profile of
  // similar text.
  cairn::v1::ModelProfile m;
  m.set_model_name("ab");
  EXPECT_NE(ProfileFingerprintKey(m), ProfileFingerprintKey(a));
}

}  // namespace
}  // namespace cairn::planner
