//! Decides what a blob *is* from its bytes. The file name is only a hint for
//! formats without magic bytes (protobuf-based ONNX and SavedModel) and for
//! spotting disguises; it never makes the scanner skip content.

use super::pickle;
use crate::bytes::record;
use crate::kind::Kind;

/// What a blob's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A zip archive (local header at byte 0, or an end record that finds
    /// its central directory).
    Zip,
    /// A tar archive (`ustar` magic, or a pre-POSIX header whose checksum
    /// is right).
    Tar,
    /// A gzip stream.
    Gzip,
    /// A bzip2 stream.
    Bzip2,
    /// An xz stream.
    Xz,
    /// Raw LZMA ("alone") stream, as joblib's `.lzma` compressor writes.
    Lzma,
    /// A zlib stream (text that merely opens like one must also inflate).
    Zlib,
    /// A zstd frame.
    Zstd,
    /// LZ4 frame, as joblib's `lz4` compressor writes.
    Lz4,
    /// joblib's pre-0.10 `ZF` container (`numpy_pickle_compat`): `ZF`, the
    /// length in hex, then a zlib stream. Current joblib still loads it.
    ZFile,
    /// A 7z archive.
    SevenZ,
    /// A pickle stream: PROTO 2–5 at byte 0, or protocol 0/1 opcodes that
    /// a probe walk accepts.
    Pickle,
    /// A NumPy `.npy` array.
    Numpy,
    /// An HDF5 file (superblock at 0 or after a user block).
    Hdf5,
    /// A GGUF file, either byte order.
    Gguf,
    /// A safetensors file (length prefix, then a JSON header).
    Safetensors,
    /// A TFLite flatbuffer (`TFL3` at bytes 4..8).
    TfLite,
    /// An ONNX protobuf, recognised by name and a valid top-level message.
    Onnx,
    /// A TensorFlow SavedModel `saved_model.pb`.
    SavedModel,
    /// What modelgate's quarantine leaves in place of a quarantined file.
    Tombstone,
    /// UTF-8 text without NULs: scanned only for chat templates.
    Text,
    /// An image (PNG, JPEG, GIF, WebP, TIFF…): nothing a loader executes.
    Image,
    /// Bytes no rule recognises; never a pass by itself (see GEN004).
    Unknown,
}

impl Format {
    /// The name reports use for this format (from [`Kind`]'s table).
    pub fn name(self) -> &'static str {
        Kind::from(self).name()
    }

    /// Formats whose loaders can run code or that wrap such formats: a file
    /// *named* as a safe format but holding one of these is a disguise.
    pub fn can_execute(self) -> bool {
        matches!(
            self,
            Format::Pickle | Format::Zip | Format::Tar | Format::SevenZ | Format::Numpy
        ) || self.is_compression()
    }

    /// Compressed streams (and joblib's `ZF` wrapper): the scanner
    /// decompresses them within its budget and scans what comes out.
    pub fn is_compression(self) -> bool {
        matches!(
            self,
            Format::Gzip
                | Format::Bzip2
                | Format::Xz
                | Format::Lzma
                | Format::Zlib
                | Format::Zstd
                | Format::Lz4
                | Format::ZFile
        )
    }
}

/// First bytes of a quarantine tombstone. The NUL makes every unpickler and
/// header parser fail on it at once.
pub const TOMBSTONE_MAGIC: &[u8] = b"\0MODELGATE-QUARANTINED\n";
/// Tombstones are a few hundred bytes of text. Anything longer that starts
/// with the magic could be a real archive behind it (zip readers start from
/// the end), so it is scanned like any other file.
const MAX_TOMBSTONE_BYTES: usize = 4096;

/// HDF5 superblocks sit at 0, 512, 1024, 2048, … (a user block may precede).
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// The format of `data`, from its content first; `name` only decides
/// between formats without magic bytes (ONNX, SavedModel).
pub fn sniff(data: &[u8], name: &str) -> Format {
    let starts = |m: &[u8]| data.starts_with(m);
    if let Some(rest) = data.strip_prefix(TOMBSTONE_MAGIC)
        && data.len() <= MAX_TOMBSTONE_BYTES
        && std::str::from_utf8(rest).is_ok()
    {
        return Format::Tombstone;
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return Format::Zip;
    }
    if starts(b"\x1f\x8b") {
        return Format::Gzip;
    }
    if matches!(data, [b'B', b'Z', b'h', b'1'..=b'9', ..]) {
        return Format::Bzip2;
    }
    if starts(b"\xfd7zXZ\x00") {
        return Format::Xz;
    }
    if starts(b"\x28\xb5\x2f\xfd") {
        return Format::Zstd;
    }
    if starts(b"\x04\x22\x4d\x18") {
        return Format::Lz4;
    }
    if starts(b"7z\xbc\xaf\x27\x1c") {
        return Format::SevenZ;
    }
    if starts(b"\x93NUMPY") {
        return Format::Numpy;
    }
    if zfile_data_start(data).is_some() {
        return Format::ZFile;
    }
    if starts(b"GGUF") {
        return Format::Gguf;
    }
    // A PROTO opcode at byte 0 decides before formats whose magic sits
    // further in (TFLite at 4, HDF5 after a user block, safetensors' `{` at
    // 8): a pickle can carry those bytes inside its first string argument.
    if matches!(data, [pickle::opcodes::PROTO, 2..=5, ..]) && pickle::looks_like_pickle(data) {
        return Format::Pickle;
    }
    if data.get(4..8) == Some(b"TFL3") {
        return Format::TfLite;
    }
    if hdf5_superblock_offset(data).is_some() {
        return Format::Hdf5;
    }
    if looks_like_safetensors(data) {
        return Format::Safetensors;
    }
    if data.get(257..262) == Some(b"ustar") {
        return Format::Tar;
    }
    if pickle::looks_like_pickle(data) {
        return Format::Pickle;
    }
    if looks_like_zip_without_local_header(data) {
        return Format::Zip;
    }
    if looks_like_zlib(data) {
        return Format::Zlib;
    }
    if starts(b"\x5d\x00\x00") && data.len() > 13 {
        return Format::Lzma;
    }
    // ONNX has no magic number: a strict structural check, late so that no
    // format with magic bytes can be claimed by it.
    if super::formats::onnx::looks_like_onnx(data) {
        return Format::Onnx;
    }
    let base = base_name(name);
    if base == "saved_model.pb" {
        return Format::SavedModel;
    }
    // Protobuf fields may come in any order, and a run of string fields
    // with printable lengths is printable text: a model can open with
    // kilobytes of "text" before its graph. Structure decides, before the
    // text check; a name that says ONNX but content that fails the check
    // still goes to the ONNX parser, which reports why it cannot read it.
    if looks_like_onnx_any_order(data) {
        return Format::Onnx;
    }
    let lower = base.to_ascii_lowercase();
    if lower.ends_with(".onnx") || lower.ends_with(".ort") {
        return Format::Onnx;
    }
    if is_image(data) {
        return Format::Image;
    }
    if is_text(data) {
        return Format::Text;
    }
    if data.len() >= 512 && is_old_tar(data) {
        return Format::Tar;
    }
    Format::Unknown
}

/// An ONNX `ModelProto` with its fields in any order: every top-level field
/// is one ModelProto defines with its wire type, `ir_version` is a small
/// number and a `graph` is present.
fn looks_like_onnx_any_order(data: &[u8]) -> bool {
    use super::formats::protobuf::{Message, Value};
    let (mut ir_version, mut graph) = (false, false);
    for field in Message::new(data).fields() {
        let Ok(f) = field else { return false };
        match (f.number, f.value) {
            (1, Value::Varint(v)) => ir_version = v > 0 && v < 1000,
            (7, Value::Bytes(..)) => graph = true,
            (5, Value::Varint(_)) | (2 | 3 | 4 | 6 | 8 | 14 | 20 | 25 | 26, Value::Bytes(..)) => {}
            _ => return false,
        }
    }
    ir_version && graph
}

/// Where the zlib stream of a joblib `ZF` file starts, if `data` is one:
/// `read_zfile` reads `ZF` and 19 bytes that `int(…, 16)` must accept (hex,
/// optional `0x`, padding whitespace), skips one space if there is one, and
/// inflates the rest.
pub fn zfile_data_start(data: &[u8]) -> Option<usize> {
    const HEADER: usize = 2 + 19;
    let length = data.strip_prefix(b"ZF")?.get(..19)?;
    let text = std::str::from_utf8(length).ok()?.trim();
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_') {
        return None;
    }
    let start = if data.get(HEADER) == Some(&b' ') {
        HEADER + 1
    } else {
        HEADER
    };
    data.get(start..).filter(|z| looks_like_zlib(z))?;
    Some(start)
}

/// A Git LFS pointer (what a clone without `git lfs pull` holds in place
/// of a model): text, not a model, and not a disguise either.
pub fn is_lfs_pointer(data: &[u8]) -> bool {
    data.len() < 1024 && data.starts_with(b"version https://git-lfs.github.com/spec/")
}

/// The last component of a path with `/` or `\\` separators (archive
/// member names use either).
pub fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Where the HDF5 superblock starts: 0, or after a user block of 512,
/// 1024, 2048, … bytes (whatever the user block holds is read by nobody
/// but whoever put it there, so it is scanned too).
pub fn hdf5_superblock_offset(data: &[u8]) -> Option<usize> {
    [0usize, 512, 1024, 2048, 4096, 8192]
        .into_iter()
        .find(|&o| data.get(o..o + 8) == Some(HDF5_MAGIC))
}

/// safetensors: an 8-byte little-endian header length, then a JSON object.
/// The length itself is not trusted here (hostile lengths are findings of
/// the safetensors parser), only the shape of the first header bytes. Text
/// whose ninth character opens a brace (`Query: {{ query }}`) is not one: a
/// length spelled in printable characters is over 2^61 bytes, which no
/// safetensors reader would even try to allocate.
fn looks_like_safetensors(data: &[u8]) -> bool {
    let printable_length = data.get(..8).is_some_and(|len| {
        len.iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b"\t\n\r".contains(&b))
    });
    matches!(
        data.get(8..10),
        Some([b'{', b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t'])
    ) && !(printable_length && is_text(data))
}

/// An archive whose first member is preceded by other data (a self-extracting
/// stub, or a polyglot) still loads in readers that start from the end.
/// Readers find the central directory right before the end record (or a
/// ZIP64 locator there), so that is required too: a program that merely
/// contains the end-record signature as a constant (`/usr/bin/zip`) is no
/// archive.
pub fn looks_like_zip_without_local_header(data: &[u8]) -> bool {
    let tail_start = data.len().saturating_sub(22 + 65_535);
    if data.len() < 22 || is_text(data) {
        return false;
    }
    let tail = data.get(tail_start..).unwrap_or_default();
    let Some(eocd) = memfind(tail, b"PK\x05\x06").map(|p| p + tail_start) else {
        return false;
    };
    let Some(record) = record::<22>(data, eocd) else {
        return false;
    };
    let starts_at = |at: usize, magic: &[u8]| data.get(at..).is_some_and(|r| r.starts_with(magic));
    let zip64_locator = eocd
        .checked_sub(20)
        .is_some_and(|at| starts_at(at, b"PK\x06\x07"));
    let cd_size = le!(u32, record, 12);
    zip64_locator
        || usize::try_from(cd_size)
            .ok()
            .filter(|&size| size > 0)
            .and_then(|size| eocd.checked_sub(size))
            .is_some_and(|cd| starts_at(cd, b"PK\x01\x02"))
}

fn looks_like_zlib(data: &[u8]) -> bool {
    // CMF 0x78 (deflate, 32 KiB window), an FLG of one of the four levels,
    // and the header check: CMF·256 + FLG is a multiple of 31.
    let header = matches!(data, [0x78, flg @ (0x01 | 0x5e | 0x9c | 0xda), ..]
        if (0x7800 | u16::from(*flg)) % 31 == 0);
    // `x^2 + y^2` opens with a valid zlib header too: text counts as zlib
    // only if its start really inflates.
    header && (!is_text(data) || inflates(data.get(..4096).unwrap_or(data)))
}

/// Whether the start of a zlib stream decodes without error.
fn inflates(head: &[u8]) -> bool {
    use std::io::Read;
    let mut out = [0u8; 1024];
    flate2::read::ZlibDecoder::new(head)
        .read(&mut out)
        .is_ok_and(|n| n > 0)
}

fn is_image(data: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"GIF87a",
        b"GIF89a",
        b"BM",
        b"RIFF",
        b"II*\x00",
        b"MM\x00*",
    ];
    MAGICS.iter().any(|m| data.starts_with(m))
}

/// Text: the first 8 KiB are UTF-8 (allowing a character cut at the end)
/// without NUL bytes.
pub fn is_text(data: &[u8]) -> bool {
    let head = data.get(..8192).unwrap_or(data);
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() == 8192,
    }
}

/// Pre-POSIX tar headers have no `ustar` magic; accept one whose header
/// checksum is right.
fn is_old_tar(data: &[u8]) -> bool {
    let Some(header) = data.first_chunk::<512>() else {
        return false;
    };
    let Some(stored) = parse_octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == stored && header[0] != 0
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 8).ok()
}

/// The offset of the *last* occurrence of `needle` (readers that search
/// from the end, like zip's end-record search, take the last); `None` for
/// an empty needle.
pub fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Extensions of formats that cannot run code. A file named so whose content
/// can is disguised.
pub fn claims_safe_format(name: &str) -> bool {
    let lower = base_name(name).to_ascii_lowercase();
    [
        ".safetensors",
        ".gguf",
        ".onnx",
        ".json",
        ".txt",
        ".md",
        ".png",
        ".jpg",
        ".tflite",
        ".msgpack",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// Extensions of model formats. Content of no known format under such a
/// name is reported rather than skipped: a loader chosen by the name will
/// still try to read it. (`.bin`, `.pb`, `.msgpack` and `.ggml` are left
/// out: they also name formats the scanner does not parse.)
pub fn claims_model_format(name: &str) -> bool {
    let lower = base_name(name).to_ascii_lowercase();
    claims_pickle_format(name)
        || [
            ".safetensors",
            ".gguf",
            ".onnx",
            ".ort",
            ".tflite",
            ".h5",
            ".hdf5",
            ".keras",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Extensions whose loaders unpickle.
pub fn claims_pickle_format(name: &str) -> bool {
    let lower = base_name(name).to_ascii_lowercase();
    [
        ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".dill", ".npy", ".npz", ".pth.tar",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_beats_extension() {
        assert_eq!(
            sniff(
                b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
                "model.safetensors"
            ),
            Format::Pickle
        );
        assert_eq!(sniff(b"PK\x03\x04rest", "weights"), Format::Zip);
        assert_eq!(sniff(b"GGUF\x03\x00\x00\x00", "x.bin"), Format::Gguf);
    }

    #[test]
    fn text_is_text() {
        assert_eq!(
            sniff(b"# README\nsome words about os.system\n", "README.md"),
            Format::Text
        );
        assert_eq!(
            sniff(b"import torch\nmodel = torch.load('x')\n", "train.py"),
            Format::Text
        );
        assert_eq!(sniff(b"[PAD]\n[UNK]\n", "vocab.txt"), Format::Text);
    }

    #[test]
    fn tombstones_are_recognised_but_cannot_hide_an_archive() {
        let mut t = TOMBSTONE_MAGIC.to_vec();
        t.extend_from_slice(b"quarantine id: q1\n");
        assert_eq!(sniff(&t, "model.bin"), Format::Tombstone);
        t.extend_from_slice(&[0xff; 8192]);
        assert_ne!(sniff(&t, "model.bin"), Format::Tombstone);
    }

    #[test]
    fn zip_read_from_the_end_needs_its_central_directory() {
        let eocd = |cd_size: u32| {
            let mut e = b"PK\x05\x06".to_vec();
            e.extend_from_slice(&[0; 8]);
            e.extend_from_slice(&cd_size.to_le_bytes());
            e.extend_from_slice(&[0; 6]);
            e
        };
        // A program holding the signature as a constant.
        let mut program = b"\x7fELF\x02\x01\x01\0".to_vec();
        program.extend_from_slice(&eocd(0x1234));
        program.extend_from_slice(&[0x90; 64]);
        assert!(!looks_like_zip_without_local_header(&program));
        // A stub, then a central directory entry and the end record.
        let mut sfx = b"\x7fELF\0stub".to_vec();
        sfx.extend_from_slice(b"PK\x01\x02");
        sfx.extend_from_slice(&[0; 42]);
        sfx.extend_from_slice(&eocd(46));
        assert!(looks_like_zip_without_local_header(&sfx));
    }

    #[test]
    fn every_codec_counts_as_compression() {
        for f in [Format::Zstd, Format::Lz4, Format::ZFile, Format::Gzip] {
            assert!(f.is_compression() && f.can_execute(), "{f:?}");
        }
    }

    #[test]
    fn joblib_zfile_needs_a_hex_length_and_a_zlib_stream() {
        let mut z = b"ZF0x1d".to_vec();
        z.resize(21, b' ');
        z.extend_from_slice(&[0x78, 0x9c, 0x6b, 0x60, 0x00, 0x00]);
        assert_eq!(sniff(&z, "model.pkl"), Format::ZFile);
        assert_eq!(zfile_data_start(&z), Some(21));
        // Older joblib wrote one more space after the padded length.
        z.insert(21, b' ');
        assert_eq!(zfile_data_start(&z), Some(22));
        assert_ne!(
            sniff(b"ZFnot hex at all, just text\n", "notes.txt"),
            Format::ZFile
        );
    }

    #[test]
    fn safetensors_header_shape() {
        let mut f = 2u64.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(sniff(&f, "a"), Format::Safetensors);
        assert_eq!(
            sniff(
                b"Query: {{ query }}\nDocument: {{ document }}\n",
                "basic.jinja"
            ),
            Format::Text
        );
        assert_eq!(sniff(b"x^2 + y^2 = z^2\n", "notes.txt"), Format::Text);
    }
}
