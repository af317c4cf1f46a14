#include "runtime/engine/params.h"

#include <vector>

#include "gtest/gtest.h"
#include "runtime/compute/rng.h"
#include "runtime/engine/testing/engine_test_util.h"
#include "runtime/engine/topology.h"

namespace cairn::runtime {
namespace {

// MicroLlama widened so one block holds millions of elements.
plan::ModelDims Wide() {
  plan::ModelDims m = testing::MicroLlama();
  m.hidden = 512;
  m.ffn_hidden = 2048;
  m.num_heads = m.num_kv_heads = 8;
  return m;
}

// Initialize splits large layers over threads; every element must still be the pure function of
// (seed, tensor, global index) that one thread computes, for whole and for sharded tensors.
TEST(LayerParamsTest, ParallelInitialisationEqualsTheElementwiseDefinition) {
  for (int tp : {1, 2}) {
    LayerPlace place;
    place.index = 1;
    place.kind = plan::LayerKind::kBlock;
    place.tp = tp;
    place.tp_rank = tp - 1;
    const LayerParams p = LayerParams::Build(Wide(), place, /*owns_lm_head=*/false);
    ASSERT_GT(p.size(), int64_t{2} << 20) << "large enough to be split over threads";
    std::vector<float> flat(p.size(), -1.0f);
    p.Initialize(/*seed=*/77, flat.data());
    int64_t checked = 0;
    for (const ParamTensor& t : p.tensors()) {
      for (int64_t i = 0; i < t.count(); i += 97) {
        const float want = t.init_std > 0
                               ? InitValue(77, t.tensor_id, t.GlobalIndex(i), t.init_std)
                               : t.init_value;
        ASSERT_EQ(flat[t.offset + i], want) << t.name << "[" << i << "] tp=" << tp;
        ++checked;
      }
      // The last element of each tensor (chunk boundaries fall anywhere).
      const int64_t last = t.count() - 1;
      const float want = t.init_std > 0
                             ? InitValue(77, t.tensor_id, t.GlobalIndex(last), t.init_std)
                             : t.init_value;
      ASSERT_EQ(flat[t.offset + last], want) << t.name << " last, tp=" << tp;
    }
    EXPECT_GT(checked, 10000);
  }
}

}  // namespace
}  // namespace cairn::runtime
