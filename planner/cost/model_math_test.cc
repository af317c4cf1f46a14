#include "planner/cost/model_math.h"

#include "gtest/gtest.h"
#include "planner/cost/test_problems.h"

namespace cairn::planner {
namespace {

TEST(ModelMathTest, Gpt2SmallHasItsPublishedParameterCount) {
  ModelDims m;
  m.num_layers = 12;
  m.hidden = 768;
  m.ffn_hidden = 3072;
  m.num_heads = 12;
  m.num_kv_heads = 12;
  m.vocab = 50257;
  m.max_seq_len = 1024;
  m.bias = true;
  m.tied_embeddings = true;
  // Hugging Face's gpt2: 124,439,808 parameters.
  EXPECT_EQ(TotalParams(m), 124439808);
}

TEST(ModelMathTest, Llama2_7bHasItsPublishedParameterCount) {
  ModelDims m;
  m.num_layers = 32;
  m.hidden = 4096;
  m.ffn_hidden = 11008;
  m.num_heads = 32;
  m.num_kv_heads = 32;
  m.vocab = 32000;
  m.max_seq_len = 4096;
  m.rms_norm = m.swiglu = m.rope = true;
  // Meta's Llama-2-7B: 6,738,415,616 parameters.
  EXPECT_EQ(TotalParams(m), 6738415616);
}

TEST(ModelMathTest, BlockSplitsUnderTensorParallelism) {
  const ModelDims m = testing::SmallLlama(2);
  // kv width = 8 heads * 64 = 512. Q, O: 1024^2 each; K, V: 1024*512 each; MLP 3*1024*2816.
  const LayerParams p = BlockParams(m);
  EXPECT_EQ(p.sharded, 1048576 + 1048576 + 1048576 + 8650752);
  EXPECT_EQ(p.replicated, 2 * 1024);
  EXPECT_EQ(p.PerDevice(2), 11796480 / 2 + 2048);
  // Causal attention adds 2 * seq * hidden FLOPs per token to 2 x matmul params.
  EXPECT_DOUBLE_EQ(BlockForwardFlopsPerToken(m, 1024), 2.0 * 11796480 + 2.0 * 1024 * 1024);
}

}  // namespace
}  // namespace cairn::planner
