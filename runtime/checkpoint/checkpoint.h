// runtime/checkpoint/checkpoint.h — training state on disk, independent of the parallel plan.
//
// Every value is stored under the unsharded tensor it belongs to ("<layer index>.<tensor>") and its
// index in that tensor, so a run can resume under any other plan or world size: each rank of the
// new run looks up the elements it holds. A checkpoint is a directory:
//   meta.txt            step, model name, world size and format version (key=value lines)
//   rank_<r>.bin        the records rank r wrote: "CAIRNCKP", uint32 version, then per record
//                       uint32 name length, name, uint8 kind (0 value, 1 Adam m, 2 Adam v),
//                       uint64 count, int64 indices[count], float values[count]
// Ranks write their own file in parallel; rank 0 writes meta.txt last (after a barrier), so a
// directory without meta.txt is an incomplete checkpoint and is refused.
//
//   TensorRecords mine = engine->Snapshot();
//   CAIRN_RETURN_IF_ERROR(WriteRankFile(dir, rank, mine));
//   ... barrier ...; if (rank == 0) CAIRN_RETURN_IF_ERROR(WriteMeta(dir, meta));
//   CAIRN_ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(dir));   // all ranks' records merged
#ifndef CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_
#define CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::runtime {

enum class RecordKind : uint8_t { kValue = 0, kAdamM = 1, kAdamV = 2 };

struct TensorRecord {
  std::string name;
  RecordKind kind = RecordKind::kValue;
  std::vector<int64_t> indices;
  std::vector<float> values;
};
using TensorRecords = std::vector<TensorRecord>;

struct CheckpointMeta {
  int64_t step = 0;         // optimizer steps completed
  std::string model;
  int world_size = 0;
  int format_version = 1;
};

absl::Status WriteRankFile(const std::string& dir, int rank, const TensorRecords& records);
absl::Status WriteMeta(const std::string& dir, const CheckpointMeta& meta);

// All ranks' records, merged: for each kind, tensor name -> (global index -> value).
struct Checkpoint {
  CheckpointMeta meta;
  std::unordered_map<std::string, std::unordered_map<int64_t, float>> values, adam_m, adam_v;
};

// NotFound when `dir` or its meta.txt is missing (incomplete checkpoint); InvalidArgument naming the
// file for a corrupt one.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_
