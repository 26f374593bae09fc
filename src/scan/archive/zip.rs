//! Zip archives, read the way PyTorch's loader (miniz) reads them: from the
//! central directory, ignoring general-purpose flag bits and CRCs, accepting
//! local headers whose name differs from the central directory. The scanner
//! must see what the loader sees, so it is exactly as tolerant — and then
//! reports every disagreement (name mismatch, "encrypted" flags on clear
//! data, bad CRCs, duplicate names) as a finding of its own, because those
//! are how scanners built on stricter readers have been bypassed
//! (CVE-2025-1944, CVE-2025-1945, CVE-2025-10156).
//!
//! Members are scanned by content whatever their names (CVE-2025-1889).
//! Tensor storages of a PyTorch archive are never read beyond a probe: a
//! 10 GB checkpoint costs its `data.pkl`.

use std::collections::HashSet;

use super::compress::{self, Codec};
use crate::scan::limits::{BOMB_MIN_UNCOMPRESSED, SNIFF_BYTES};
use crate::scan::{Ctx, Resolver, formats, pickle, rules, sniff};

const EOCD_SIG: &[u8] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: &[u8] = b"PK\x06\x07";
const ZIP64_EOCD_SIG: &[u8] = b"PK\x06\x06";
const CENTRAL_SIG: &[u8] = b"PK\x01\x02";
const LOCAL_SIG: &[u8] = b"PK\x03\x04";
const FLAG_ENCRYPTED: u16 = 0x1;

/// One member as the central directory describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub compressed: u64,
    pub uncompressed: u64,
    pub local_offset: u64,
}

/// What kind of zip this is, from its member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Torch,
    Keras,
    Npz,
    Generic,
}

pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let entries = match read_central_directory(cx, data) {
        Ok(entries) => entries,
        Err(reason) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("zip archive unreadable: {reason}"),
            );
            return;
        }
    };
    let kind = classify(&entries);
    cx.set_kind(match kind {
        Kind::Torch => "pytorch-zip",
        Kind::Keras => "keras-v3",
        Kind::Npz => "npz",
        Kind::Generic => "zip",
    });
    let torchscript = kind == Kind::Torch && is_torchscript(&entries);
    let resolver = if torchscript {
        Resolver::TorchScript
    } else {
        cx.resolver()
    };
    cx.with_resolver(resolver, |cx| {
        scan_entries(cx, data, &entries, kind, torchscript)
    });
}

/// TorchScript archives (`torch.jit.save`) carry their compiled code in
/// `<prefix>/code/` next to `constants.pkl`; `torch.load` hands them to
/// `torch.jit.load`, whose unpickler resolves `__torch__.*` from that code.
fn is_torchscript(entries: &[Entry]) -> bool {
    let has = |pred: &dyn Fn(&str) -> bool| entries.iter().any(|e| pred(&e.name));
    has(&|n| n == "constants.pkl" || n.ends_with("/constants.pkl"))
        && has(&|n| n.starts_with("code/") || n.contains("/code/"))
}

fn scan_entries(cx: &mut Ctx, data: &[u8], entries: &[Entry], kind: Kind, torchscript: bool) {
    let mut seen = HashSet::new();
    for entry in entries {
        if !cx.in_time() {
            return;
        }
        if !seen.insert(entry.name.as_str()) {
            cx.report(
                &rules::DUPLICATE_MEMBER,
                Some(entry.local_offset),
                format!(
                    "member `{}` appears more than once; readers disagree on which copy wins",
                    entry.name
                ),
                Some(entry.name.clone()),
            );
        }
        check_path(cx, &entry.name, entry.local_offset);
        scan_entry(cx, data, entry, kind, torchscript);
    }
}

/// Reports member names that would escape an extraction directory.
pub fn check_path(cx: &mut Ctx, name: &str, offset: u64) {
    let normalized = name.replace('\\', "/");
    let absolute = normalized.starts_with('/') || normalized.get(1..3) == Some(":/");
    if absolute || normalized.split('/').any(|c| c == "..") {
        cx.report(
            &rules::ARCHIVE_PATH_TRAVERSAL,
            Some(offset),
            format!("member path `{name}` escapes the extraction directory"),
            Some(name.to_string()),
        );
    }
}

fn classify(entries: &[Entry]) -> Kind {
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    if names.iter().any(|n| {
        n.ends_with("/data.pkl")
            || *n == "data.pkl"
            || n.ends_with(".data/version")
            || n.ends_with("/constants.pkl")
    }) {
        return Kind::Torch;
    }
    if names.contains(&"config.json")
        && (names.contains(&"metadata.json") || names.contains(&"model.weights.h5"))
    {
        return Kind::Keras;
    }
    if !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
        return Kind::Npz;
    }
    Kind::Generic
}

/// Tensor storages of a PyTorch archive (`<prefix>/data/<key>`): raw bytes
/// that the loader copies, never unpickles.
fn is_storage(kind: Kind, name: &str) -> bool {
    kind == Kind::Torch && {
        let mut parts = name.rsplit('/');
        let leaf = parts.next().unwrap_or_default();
        parts.next() == Some("data") && !leaf.ends_with(".pkl")
    }
}

fn scan_entry(cx: &mut Ctx, data: &[u8], entry: &Entry, kind: Kind, torchscript: bool) {
    let Some(local) = read_local_header(data, entry.local_offset) else {
        cx.in_member(&entry.name, |cx| {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(entry.local_offset),
                "local header missing or truncated",
            )
        });
        return;
    };
    if local.name != entry.name {
        cx.report(
            &rules::ZIP_NAME_MISMATCH,
            Some(entry.local_offset),
            format!(
                "local header names the member `{}` but the central directory says `{}`",
                local.name, entry.name
            ),
            Some(format!("local={:?} central={:?}", local.name, entry.name)),
        );
    }
    let end = local
        .data_start
        .checked_add(entry.compressed)
        .filter(|&e| e <= data.len() as u64);
    let Some(end) = end else {
        cx.in_member(&entry.name, |cx| {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(entry.local_offset),
                "member data runs past the end of the archive",
            )
        });
        return;
    };
    let raw = &data[local.data_start as usize..end as usize];
    let codec = match entry.method {
        0 => None,
        8 => Some(Codec::Deflate),
        12 => Some(Codec::Bzip2),
        95 => Some(Codec::Xz),
        m => {
            cx.in_member(&entry.name, |cx| {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    Some(entry.local_offset),
                    format!("unsupported compression method {m}"),
                )
            });
            return;
        }
    };
    if codec.is_some()
        && entry.uncompressed >= BOMB_MIN_UNCOMPRESSED
        && entry.uncompressed / entry.compressed.max(1) > cx.limits().max_compression_ratio
    {
        cx.report(
            &rules::DECOMPRESSION_BOMB,
            Some(entry.local_offset),
            format!(
                "member `{}` declares {} bytes from {} compressed ({}:1)",
                entry.name,
                entry.uncompressed,
                entry.compressed,
                entry.uncompressed / entry.compressed.max(1)
            ),
            Some(entry.name.clone()),
        );
        return;
    }
    let head = match codec {
        None => raw[..raw.len().min(SNIFF_BYTES)].to_vec(),
        Some(c) => compress::prefix(c, raw, SNIFF_BYTES),
    };
    if (entry.flags | local.flags) & FLAG_ENCRYPTED != 0 {
        if sniff::sniff(&head, &entry.name) == sniff::Format::Unknown {
            cx.in_member(&entry.name, |cx| {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    Some(entry.local_offset),
                    "member is encrypted and cannot be inspected",
                )
            });
            return;
        }
        cx.report(
            &rules::ZIP_EVASION_FLAGS,
            Some(entry.local_offset),
            format!(
                "member `{}` is flagged encrypted but stored in clear (loaders ignore the flag)",
                entry.name
            ),
            Some(format!("flags=0x{:04x}", entry.flags | local.flags)),
        );
    }
    if is_storage(kind, &entry.name) {
        // Storages are only probed: a pickle hidden in one is reported, raw
        // tensor bytes are not read.
        if codec.is_none()
            && pickle::looks_like_pickle(&head)
            && pickle::looks_like_complete_pickle(raw)
        {
            cx.scan_member(&entry.name, raw);
        }
        return;
    }
    let owned;
    let content: &[u8] = match codec {
        None => raw,
        Some(c) => match compress::decompress(cx, c, raw, Some(entry.uncompressed)) {
            Some(v) => {
                owned = v;
                &owned
            }
            None => return,
        },
    };
    if content.len() <= 64 << 20
        && crc32(content) != entry.crc
        && content.len() as u64 == entry.uncompressed
    {
        cx.report(
            &rules::ZIP_EVASION_FLAGS,
            Some(entry.local_offset),
            format!(
                "member `{}` has a CRC that does not match its data (loaders ignore it)",
                entry.name
            ),
            Some(format!("crc=0x{:08x}", entry.crc)),
        );
    }
    if kind == Kind::Keras && entry.name == "config.json" {
        cx.in_member(&entry.name, |cx| formats::keras::scan_config(cx, content));
        return;
    }
    if kind == Kind::Torch && formats::torchscript::is_bytecode_member(&entry.name) {
        cx.in_member(&entry.name, |cx| {
            formats::torchscript::scan_bytecode(cx, content)
        });
    }
    // `torch.jit.load` compiles `code/**/*.py` by name, whatever the bytes;
    // content that is not text is also scanned for what it is.
    if torchscript && formats::torchscript::is_code_member(&entry.name) {
        cx.in_member(&entry.name, |cx| {
            formats::torchscript::scan_code(cx, content)
        });
        if sniff::sniff(&head, &entry.name) == sniff::Format::Text {
            return;
        }
    }
    cx.scan_member(&entry.name, content);
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

struct Local {
    name: String,
    flags: u16,
    data_start: u64,
}

fn read_local_header(data: &[u8], offset: u64) -> Option<Local> {
    let off = usize::try_from(offset).ok()?;
    let h = data.get(off..off.checked_add(30)?)?;
    if &h[..4] != LOCAL_SIG {
        return None;
    }
    let flags = le16(h, 6);
    let name_len = usize::from(le16(h, 26));
    let extra_len = usize::from(le16(h, 28));
    let name_bytes = data.get(off + 30..off + 30 + name_len)?;
    Some(Local {
        name: decode_name(name_bytes),
        flags,
        data_start: (off + 30 + name_len + extra_len) as u64,
    })
}

fn decode_name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Finds the end-of-central-directory record (searching back over a
/// comment of up to 64 KiB) and reads every central entry, handling ZIP64
/// and archives with data prepended (offsets then need shifting).
pub fn read_central_directory(cx: &Ctx, data: &[u8]) -> Result<Vec<Entry>, String> {
    let tail_start = data.len().saturating_sub(22 + 65_535);
    let eocd = sniff::memfind(&data[tail_start..], EOCD_SIG)
        .map(|p| p + tail_start)
        .ok_or("no end-of-central-directory record")?;
    let e = data
        .get(eocd..eocd + 22)
        .ok_or("truncated end-of-central-directory record")?;
    let mut count = u64::from(le16(e, 10));
    let mut cd_size = u64::from(le32(e, 12));
    let mut cd_offset = u64::from(le32(e, 16));
    let mut eocd_start = eocd as u64;
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        let loc = eocd
            .checked_sub(20)
            .and_then(|l| data.get(l..l + 20))
            .ok_or("ZIP64 locator missing")?;
        if &loc[..4] != ZIP64_LOCATOR_SIG {
            return Err("ZIP64 locator missing".into());
        }
        let rec_off =
            usize::try_from(le64(loc, 8)).map_err(|_| "ZIP64 record offset out of range")?;
        let rec = data
            .get(rec_off..rec_off.saturating_add(56))
            .ok_or("ZIP64 record out of range")?;
        if &rec[..4] != ZIP64_EOCD_SIG {
            return Err("ZIP64 end-of-central-directory record missing".into());
        }
        count = le64(rec, 32);
        cd_size = le64(rec, 40);
        cd_offset = le64(rec, 48);
        eocd_start = rec_off as u64;
    }
    if count > cx.limits().max_archive_members {
        return Err(format!(
            "declares {count} members, over the limit of {}",
            cx.limits().max_archive_members
        ));
    }
    // Data prepended to the archive shifts every offset by the same amount;
    // only assume that when nothing sits at the declared offset.
    let at_declared = usize::try_from(cd_offset)
        .ok()
        .and_then(|o| data.get(o..o.saturating_add(4)));
    let shift = if at_declared == Some(CENTRAL_SIG) || count == 0 {
        0
    } else {
        eocd_start
            .checked_sub(cd_size)
            .and_then(|real| real.checked_sub(cd_offset))
            .unwrap_or(0)
    };
    let mut pos =
        usize::try_from(cd_offset + shift).map_err(|_| "central directory offset out of range")?;
    let mut entries = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let h = data
            .get(pos..pos.saturating_add(46))
            .ok_or("central directory truncated")?;
        if &h[..4] != CENTRAL_SIG {
            return Err(format!("bad central directory entry at byte {pos}"));
        }
        let name_len = usize::from(le16(h, 28));
        let extra_len = usize::from(le16(h, 30));
        let comment_len = usize::from(le16(h, 32));
        let name = data
            .get(pos + 46..pos + 46 + name_len)
            .ok_or("central directory name truncated")?;
        let extra = data
            .get(pos + 46 + name_len..pos + 46 + name_len + extra_len)
            .unwrap_or_default();
        let mut entry = Entry {
            name: decode_name(name),
            flags: le16(h, 8),
            method: le16(h, 10),
            crc: le32(h, 16),
            compressed: u64::from(le32(h, 20)),
            uncompressed: u64::from(le32(h, 24)),
            local_offset: u64::from(le32(h, 42)),
        };
        apply_zip64_extra(&mut entry, extra);
        entry.local_offset = entry.local_offset.saturating_add(shift);
        entries.push(entry);
        pos += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// The ZIP64 extra field (id 1) holds, in order, only the sizes and offset
/// whose 32-bit fields are saturated.
fn apply_zip64_extra(entry: &mut Entry, mut extra: &[u8]) {
    while extra.len() >= 4 {
        let id = le16(extra, 0);
        let len = usize::from(le16(extra, 2));
        let Some(body) = extra.get(4..4 + len) else {
            return;
        };
        if id == 1 {
            let mut fields = body.chunks_exact(8).map(|c| le64(c, 0));
            if entry.uncompressed == 0xffff_ffff {
                entry.uncompressed = fields.next().unwrap_or(entry.uncompressed);
            }
            if entry.compressed == 0xffff_ffff {
                entry.compressed = fields.next().unwrap_or(entry.compressed);
            }
            if entry.local_offset == 0xffff_ffff {
                entry.local_offset = fields.next().unwrap_or(entry.local_offset);
            }
            return;
        }
        extra = &extra[4 + len..];
    }
}
