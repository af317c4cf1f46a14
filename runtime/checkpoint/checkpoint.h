// runtime/checkpoint/checkpoint.h — training state on disk, independent of the parallel plan, and
// committed as a unit: a resume never mixes steps, ranks or damaged bytes.
//
// Every value is stored under the unsharded tensor it belongs to ("<layer index>.<tensor>") and its
// index in that tensor, so a run can resume under any other plan or world size: each rank of the
// new run looks up the elements it holds.
//
// Layout of a checkpoint root (what --checkpoint-dir names):
//   latest                        "step_00000009": the newest committed step (written last)
//   step_00000009/                one directory per saved step
//     rank_00000.bin              the records rank 0 wrote (format below)
//     rank_00000.bin.sha256       its SHA-256 and size, written with it (`sha256sum -c` reads it)
//     ...
//     MANIFEST                    step, model, plan, world size, every file with size and SHA-256,
//                                 and a SHA-256 of the manifest's own lines; written last
// A rank file: "CAIRNCKP", uint32 version (2), then per record uint32 name length, name, uint8
// kind (0 value, 1 Adam m, 2 Adam v), uint64 count, int64 indices[count], float values[count]
// (little-endian).
//
// How a save commits (every file is written to a temporary name, fsynced, renamed into place, and
// its directory fsynced):
//   1. every rank: WriteRankFile(StepDirectory(root, step), rank, records)
//   2. barrier (all rank files and their checksums are on disk)
//   3. rank 0: CommitCheckpoint(root, meta, keep_last): the MANIFEST (from the ranks' checksum
//      files), then `latest`, then pruning (steps older than the newest `keep_last`, and
//      uncommitted step directories older than `latest`).
// A crash before the MANIFEST leaves an uncommitted directory that no resume reads; a crash
// before `latest` moves leaves the previous step the resumed one.
//
// How a resume verifies (ReadCheckpoint): `latest` (or a step directory named directly) -> its
// MANIFEST, whose own checksum must match -> exactly the files it lists (files of other world
// sizes lying beside them are ignored), each with the listed size and SHA-256 -> the records,
// parsed with bounds. Any mismatch is DATA_LOSS naming the file.
//
//   // save (every rank), then commit (rank 0):
//   CAIRN_ASSIGN_OR_RETURN(TensorRecords mine, engine->Snapshot());
//   CAIRN_RETURN_IF_ERROR(WriteRankFile(StepDirectory(root, step), rank, mine));
//   CAIRN_RETURN_IF_ERROR(world->Barrier());
//   if (rank == 0) CAIRN_RETURN_IF_ERROR(CommitCheckpoint(root, {step, model, world, plan}, 3));
//   // resume:
//   CAIRN_ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(root));   // all ranks' records merged
//
// WriteMeta(dir, meta) commits a single directory (its MANIFEST) without `latest` or pruning.
// Thread-compatible; different ranks may write the same step directory concurrently.
#ifndef CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_
#define CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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
  int format_version = 2;   // written by this library; other values are refused on read
  std::string plan;         // what wrote it, e.g. "pp=2 m=8 batch=16" (informational)
};

// All ranks' records, merged: for each kind, tensor name -> (global index -> value).
struct Checkpoint {
  CheckpointMeta meta;
  std::unordered_map<std::string, std::unordered_map<int64_t, float>> values, adam_m, adam_v;
};

// "<root>/step_<8 digits>".
std::string StepDirectory(const std::string& root, int64_t step);

// Writes rank `rank`'s records to `dir`/rank_<5 digits>.bin and its checksum file (creating `dir`),
// durably (temporary name, fsync, rename, fsync of the directory). FailedPrecondition when the
// directory cannot be created or written; DataLoss when a write or fsync fails.
absl::Status WriteRankFile(const std::string& dir, int rank, const TensorRecords& records);

// Commits `dir`: writes its MANIFEST listing rank files 0..meta.world_size-1 (sizes and SHA-256
// from their checksum files; every one must be there) and removes other rank files from `dir`.
// FailedPrecondition naming a missing rank file.
absl::Status WriteMeta(const std::string& dir, const CheckpointMeta& meta);

// Rank 0 after every rank's WriteRankFile for meta.step: WriteMeta on the step's directory, then
// `latest` := that step, then prunes step directories older than the newest `keep_last` committed
// ones (0 keeps all) and uncommitted ones older than the new step. Never removes what `latest`
// names.
absl::Status CommitCheckpoint(const std::string& root, const CheckpointMeta& meta, int keep_last);

// Reads and verifies the checkpoint `dir` names: a root with `latest`, or a committed step
// directory (one with a MANIFEST). NotFound when there is none (naming what is missing);
// DataLoss naming the file for a damaged, truncated or mismatching one; FailedPrecondition for
// another format version.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& dir);

// Building blocks of ReadCheckpoint, exposed for tests and fuzzing: parse one rank file's bytes
// (`name` is used in errors) into `out`, and a MANIFEST's text. Both are total on any input:
// every length and count is checked against the bytes there are before anything is allocated.
struct ManifestEntry {
  std::string file;     // "rank_00000.bin"
  int64_t bytes = 0;
  std::string sha256;   // 64 lowercase hex digits
};
struct Manifest {
  CheckpointMeta meta;
  std::vector<ManifestEntry> files;
};
absl::Status ParseRankFile(absl::string_view bytes, const std::string& name, Checkpoint* out);
absl::StatusOr<Manifest> ParseManifest(absl::string_view text, const std::string& name);

}  // namespace cairn::runtime

#endif  // CAIRN_RUNTIME_CHECKPOINT_CHECKPOINT_H_
