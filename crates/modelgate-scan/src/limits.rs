//! Every resource limit of the detection core, in one place, each with the
//! attack it stops. Hostile input is the normal case: tripping a limit never
//! crashes or hangs the scan, it becomes a finding (`GEN002`) and the file is
//! reported as inconclusive.

use serde::{Deserialize, Serialize};

/// Tunable limits. The defaults are sized for real checkpoints (a 70B-model
/// shard's pickle is a few MB) with room to spare; a policy can change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Archive-in-archive depth. Stops zip-in-zip (and gzip-in-tar-in-zip)
    /// towers that multiply work and hide payloads below a scanner's horizon.
    pub max_nesting_depth: u32,
    /// Bytes decompressed for one top-level file, all members together.
    /// Stops decompression bombs from exhausting memory or time.
    pub max_decompressed_bytes: u64,
    /// Ratio of uncompressed to compressed size above which a large member is
    /// a bomb. Deflate cannot exceed about 1032:1 on real data.
    pub max_compression_ratio: u64,
    /// Members read from one archive. Stops central directories that declare
    /// millions of entries (quadratic blow-up, memory exhaustion).
    pub max_archive_members: u64,
    /// Pickle opcodes executed symbolically per stream. Stops pickles built to
    /// make the walker spin (e.g. billions of `DUP`/`POP`).
    pub max_pickle_opcodes: u64,
    /// Symbolic stack depth. Stops unbounded `MARK`/`EMPTY_LIST` pushes.
    pub max_pickle_stack: u64,
    /// Memo entries. Stops `MEMOIZE` floods that would grow the memo table.
    pub max_pickle_memo: u64,
    /// Pickle streams nested inside pickles (joblib object arrays,
    /// `pickle.loads` payloads). Stops recursion through nested payloads.
    pub max_pickle_nesting: u32,
    /// Length of one string, header or metadata value that a parser will
    /// copy. Stops declared lengths like 2^62 from reaching an allocator.
    pub max_string_bytes: u64,
    /// Elements in one declared array (GGUF arrays, tensor counts, shapes).
    pub max_array_len: u64,
    /// Size of a JSON or protobuf header read whole (safetensors header,
    /// Keras config, ONNX graph without its weights).
    pub max_header_bytes: u64,
    /// Nesting depth of JSON, protobuf messages, Jinja ASTs and GGUF arrays.
    /// Stops recursion-based stack overflows.
    pub max_structure_depth: u32,
    /// Wall-clock milliseconds for one top-level file. Stops pathological
    /// inputs that stay inside every other limit from stalling a hook.
    pub max_scan_millis: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nesting_depth: 10,
            max_decompressed_bytes: 1 << 30,
            max_compression_ratio: 200,
            max_archive_members: 100_000,
            max_pickle_opcodes: 50_000_000,
            max_pickle_stack: 1_000_000,
            max_pickle_memo: 1_000_000,
            max_pickle_nesting: 8,
            max_string_bytes: 64 << 20,
            max_array_len: 1 << 24,
            max_header_bytes: 256 << 20,
            max_structure_depth: 128,
            max_scan_millis: 60_000,
        }
    }
}

/// Members smaller than this are never called bombs whatever their ratio:
/// a 1 MiB block of zeros compresses 1000:1 and harms nobody.
pub const BOMB_MIN_UNCOMPRESSED: u64 = 16 << 20;

/// Bytes read from a member only to decide its format.
pub const SNIFF_BYTES: usize = 64;
