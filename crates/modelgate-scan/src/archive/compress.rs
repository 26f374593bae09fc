//! Bounded decompression, shared by the wrapper formats (a gzip'd checkpoint,
//! a bz2 joblib file) and by archive members.
//!
//! Every decompression draws on the per-file budget in [`Ctx`] and stops one
//! byte past it, so a bomb costs at most the budget in memory and time. A
//! stream that expands past a huge ratio is reported as a bomb; a stream
//! that is merely corrupt is reported as unparseable, with whatever
//! decompressed before the error still scanned (a loader would read that
//! prefix too).

use std::io::Read;

use crate::limits::BOMB_MIN_UNCOMPRESSED;
use crate::{Ctx, Format, rules, sniff};

/// The codecs the scanner can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Raw deflate (zip method 8).
    Deflate,
    /// gzip, every member of a multi-member stream.
    Gzip,
    /// zlib-wrapped deflate.
    Zlib,
    /// bzip2, every stream of a concatenation.
    Bzip2,
    /// xz.
    Xz,
    /// A raw LZMA ("alone") stream.
    Lzma,
    /// Zip method 14: a 4-byte version and properties-size header, the
    /// 5-byte LZMA properties, then a raw stream ended by its marker.
    ZipLzma,
    /// A zstd frame.
    Zstd,
    /// An LZ4 frame.
    Lz4,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Deflate => "deflate",
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::ZipLzma => "zip-lzma",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}

/// Scans a compression wrapper: decompress, then scan what is inside.
pub fn scan(cx: &mut Ctx, data: &[u8], format: Format) {
    let codec = match format {
        Format::Gzip => Codec::Gzip,
        Format::Bzip2 => Codec::Bzip2,
        Format::Xz => Codec::Xz,
        Format::Lzma => Codec::Lzma,
        Format::Zstd => Codec::Zstd,
        Format::Lz4 => Codec::Lz4,
        _ => Codec::Zlib,
    };
    let data = if format == Format::ZFile {
        cx.set_kind(crate::Kind::ZFile);
        sniff::zfile_data_start(data)
            .and_then(|start| data.get(start..))
            .unwrap_or(data)
    } else {
        data
    };
    if let Some(inner) = decompress(cx, codec, data, None) {
        let name = format!("<{} content>", codec.name());
        cx.scan_member(&name, &inner);
    }
}

/// A streaming decoder for `codec` over `input`.
fn open(codec: Codec, input: &[u8]) -> std::io::Result<Box<dyn Read + '_>> {
    Ok(match codec {
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(input)),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Codec::Zlib => Box::new(flate2::read::ZlibDecoder::new(input)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        Codec::Xz => Box::new(lzma_rust2::XzReader::new(input, true)),
        Codec::Lzma => Box::new(lzma_rust2::LzmaReader::new_mem_limit(
            input,
            u32::MAX,
            None,
        )?),
        Codec::ZipLzma => {
            // Version (2 bytes), properties size (always 5), properties
            // (lc/lp/pb byte, dictionary size), then the raw stream.
            let (header, stream) = input
                .split_first_chunk::<9>()
                .filter(|(h, _)| matches!(h, [_, _, 5, 0, ..]))
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad zip LZMA header")
                })?;
            let dict_size = le!(u32, header, 5);
            Box::new(lzma_rust2::LzmaReader::new_with_props(
                stream,
                u64::MAX,
                header[4],
                dict_size,
                None,
            )?)
        }
        Codec::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?,
        ),
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
    })
}

/// Decompresses `input` within the budget. `declared` is the size an
/// archive claims for the member; output beyond it is a lie worth
/// reporting. Returns what could be decompressed, or `None` when nothing
/// usable came out (the reason is already reported).
pub fn decompress(
    cx: &mut Ctx,
    codec: Codec,
    input: &[u8],
    declared: Option<u64>,
) -> Option<Vec<u8>> {
    let budget = cx.decompression_left();
    let cap = declared.map_or(budget, |d| d.min(budget));
    let mut out = Vec::new();
    let result = match open(codec, input) {
        Ok(reader) => {
            // Read one byte past the cap to know whether there was more.
            let mut limited = reader.take(cap.saturating_add(1));
            read_in_time(cx, &mut limited, &mut out, input.len() as u64)
        }
        Err(e) => Err(e),
    };
    if let Ok(ReadEnd::Bomb) = result {
        // Stopped early: the ratio can only grow from here, so waiting for
        // the end would cost up to the whole budget in memory for the same
        // verdict. What came out so far is still scanned.
        let ratio = out.len() as u64 / (input.len() as u64).max(1);
        cx.inconclusive(
            &rules::DECOMPRESSION_BOMB,
            None,
            format!(
                "{} stream of {} bytes expands over {ratio}:1; stopped after {} bytes of output",
                codec.name(),
                input.len(),
                out.len()
            ),
        );
        if !cx.take_decompression_budget(out.len() as u64) {
            return None;
        }
        return Some(out);
    }
    let produced = out.len() as u64;
    if produced > cap {
        out.truncate(cap as usize);
        let ratio = produced / (input.len() as u64).max(1);
        if declared.is_some_and(|d| produced > d) {
            cx.report(
                &rules::DECOMPRESSION_BOMB,
                None,
                format!(
                    "{} stream expands beyond its declared size of {} bytes",
                    codec.name(),
                    declared.unwrap_or(0)
                ),
                None,
            );
        } else {
            cx.inconclusive(
                &rules::DECOMPRESSION_BOMB,
                None,
                format!(
                    "{} stream of {} bytes expands past the decompression budget of {budget} bytes (ratio over {ratio}:1)",
                    codec.name(),
                    input.len()
                ),
            );
        }
    }
    if !cx.take_decompression_budget(out.len() as u64) {
        return None;
    }
    let ratio = out.len() as u64 / (input.len() as u64).max(1);
    if out.len() as u64 >= BOMB_MIN_UNCOMPRESSED && ratio > cx.limits().max_compression_ratio {
        cx.report(
            &rules::DECOMPRESSION_BOMB,
            None,
            format!(
                "{} stream expands {ratio}:1 to {} bytes",
                codec.name(),
                out.len()
            ),
            None,
        );
    }
    if let Err(e) = result {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(0),
            format!(
                "{} stream is corrupt after {} bytes of output: {e}",
                codec.name(),
                out.len()
            ),
        );
    }
    if out.is_empty() { None } else { Some(out) }
}

/// How a bounded read ended.
enum ReadEnd {
    /// End of stream, end of the cap, or out of time.
    Done,
    /// The output outgrew the bomb ratio (see [`BOMB_MIN_UNCOMPRESSED`]).
    Bomb,
}

/// Reads to the end in chunks, checking the clock between chunks so that a
/// slow codec on a hostile stream cannot stall the scan, and the expansion
/// ratio so that a bomb stops at a few MiB instead of the whole budget.
fn read_in_time(
    cx: &mut Ctx,
    reader: &mut dyn Read,
    out: &mut Vec<u8>,
    input_len: u64,
) -> std::io::Result<ReadEnd> {
    let mut chunk = vec![0u8; 1 << 20];
    let max_ratio = cx.limits().max_compression_ratio;
    loop {
        if !cx.in_time() {
            return Ok(ReadEnd::Done);
        }
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(ReadEnd::Done),
            Ok(n) => {
                let read = chunk
                    .get(..n)
                    .ok_or_else(|| std::io::Error::other("decoder overran its buffer"))?;
                out.extend_from_slice(read);
                let len = out.len() as u64;
                if len >= BOMB_MIN_UNCOMPRESSED && len / input_len.max(1) > max_ratio {
                    return Ok(ReadEnd::Bomb);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Decompresses only the first `n` bytes (to sniff a member without paying
/// for all of it). Errors yield whatever came out.
pub fn prefix(codec: Codec, input: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    if let Ok(reader) = open(codec, input) {
        let _ = reader.take(n as u64).read_to_end(&mut out);
    }
    out
}
