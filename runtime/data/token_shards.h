// runtime/data/token_shards.h — token data on disk, and the batches the trainer reads from it.
//
// A shard file is a 32-byte header followed by little-endian tokens:
//   magic "CAIRNTOK" (8 bytes) | uint32 version (1) | uint32 bytes per token (2 or 4)
//   | uint64 token count | uint64 reserved (0)
// A dataset is a directory of shards named <split>_NNNNN.bin (split "train" or "val"), as written
// by `cairn-data` (runtime/data/cairn_data_main.cc) or any tool that follows this layout (2-byte
// tokens for vocabularies up to 65,536, 4-byte above).
//
// Batches are independent of the parallel plan: sample s of step k is the window of seq_len + 1
// tokens starting at a position drawn from a counter-based hash of (seed, k, s), so every rank of
// every plan agrees on the global batch and takes its own slice (data-parallel rank d of D holds
// samples [d B/D, (d+1) B/D) of each micro-batch).
//
//   CAIRN_ASSIGN_OR_RETURN(TokenDataset data, TokenDataset::Open(dir, "train"));
//   std::vector<int32_t> inputs, targets;
//   CAIRN_RETURN_IF_ERROR(data.Sample(seed, step, sample_index, seq_len, &inputs, &targets));
#ifndef CAIRN_RUNTIME_DATA_TOKEN_SHARDS_H_
#define CAIRN_RUNTIME_DATA_TOKEN_SHARDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::runtime {

inline constexpr char kShardMagic[8] = {'C', 'A', 'I', 'R', 'N', 'T', 'O', 'K'};
inline constexpr uint32_t kShardVersion = 1;

// Writes one shard. InvalidArgument if a token does not fit `bytes_per_token`; errors name the file.
absl::Status WriteShard(const std::string& path, const std::vector<uint32_t>& tokens,
                        int bytes_per_token);

// Reads one whole shard (validating magic, version, size).
absl::StatusOr<std::vector<uint32_t>> ReadShard(const std::string& path);

class TokenDataset {
 public:
  // Loads every <split>_*.bin shard in `dir` (sorted by name) into memory. NotFound when there is
  // none; InvalidArgument naming the file for a corrupt shard.
  static absl::StatusOr<TokenDataset> Open(const std::string& dir, const std::string& split);

  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  uint32_t max_token() const { return max_token_; }

  // Sample `sample` of step `step`: inputs = tokens[p, p+seq_len), targets = tokens[p+1, p+seq_len+1)
  // at a position p in [0, num_tokens - seq_len - 1] chosen by hashing (seed, step, sample).
  // FailedPrecondition when the dataset is shorter than seq_len + 1 tokens.
  absl::Status Sample(uint64_t seed, int64_t step, int64_t sample, int seq_len,
                      std::vector<int32_t>* inputs, std::vector<int32_t>* targets) const;

 private:
  std::vector<uint32_t> tokens_;
  uint32_t max_token_ = 0;
};

// Byte-level tokenization (vocabulary 256): each byte of the text is one token.
std::vector<uint32_t> ByteTokens(const std::string& text);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_DATA_TOKEN_SHARDS_H_
