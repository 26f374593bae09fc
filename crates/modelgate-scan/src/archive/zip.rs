//! Zip archives, read the way every loader that may open them reads them.
//!
//! PyTorch's loader (miniz) reads the central directory at its declared
//! offset, ignores general-purpose flag bits and CRCs and accepts local
//! headers whose name differs from the central directory. NumPy's `np.load`
//! on `.npz`, Keras `.keras` and joblib use Python's `zipfile`, which finds
//! the end record and ZIP64 record differently, always shifts offsets by the
//! concatenation amount, truncates names at a NUL, honours the Unicode path
//! extra field and refuses members whose local name differs. A member is
//! dangerous if *any* of those readers would load it, so the archive is read
//! once per reader, the union of members is scanned, and every disagreement
//! between the readers is a finding of its own: such archives are built to
//! show a scanner one face and a loader another (CVE-2025-1944,
//! CVE-2025-1945, CVE-2025-10156).
//!
//! Members are scanned by content whatever their names (CVE-2025-1889).
//! Tensor storages of a PyTorch archive are only probed: a 10 GB checkpoint
//! costs its `data.pkl`.

use std::collections::{HashMap, HashSet};

use super::compress::{self, Codec};
use crate::bytes::record;
use crate::limits::{BOMB_MIN_UNCOMPRESSED, SNIFF_BYTES};
use crate::{Ctx, Resolver, formats, pickle, rules, sniff};

const EOCD_SIG: &[u8] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIG: &[u8] = b"PK\x06\x07";
const ZIP64_EOCD_SIG: &[u8] = b"PK\x06\x06";
const CENTRAL_SIG: &[u8] = b"PK\x01\x02";
const LOCAL_SIG: &[u8] = b"PK\x03\x04";
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const MAX_COMMENT: usize = 65_535;
const FLAG_ENCRYPTED: u16 = 0x1;
const FLAG_PATCHED: u16 = 0x20;
const FLAG_STRONG_ENCRYPTION: u16 = 0x40;
const FLAG_UTF8: u16 = 0x800;
/// Disagreements reported one by one before the rest are summarised.
const MAX_DISAGREEMENTS: usize = 16;

/// One member as a reader's view of the central directory describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name the reader looks the member up by.
    pub name: String,
    /// The name bytes as stored in the central directory.
    pub raw_name: Vec<u8>,
    /// Compression method (0 stored, 8 deflate, 12 bzip2, 14 LZMA…).
    pub method: u16,
    /// General-purpose flags (encryption, UTF-8 name, data descriptor).
    pub flags: u16,
    /// CRC-32 of the uncompressed data, as declared.
    pub crc: u32,
    /// Declared compressed size (ZIP64 extra applied).
    pub compressed: u64,
    /// Declared uncompressed size (ZIP64 extra applied).
    pub uncompressed: u64,
    /// Offset of the local header, shifted as this reader shifts it for
    /// data prepended to the archive.
    pub local_offset: u64,
    /// Where `zipfile` says the member's bytes must end (the next local
    /// header or the central directory): it refuses overlapping members.
    end_offset: Option<u64>,
}

/// The readers whose view of an archive decides what gets loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Torch,
    Zipfile,
}

impl Reader {
    fn label(self) -> &'static str {
        match self {
            Reader::Torch => "PyTorch's reader (miniz)",
            Reader::Zipfile => "Python's zipfile (np.load, Keras, joblib)",
        }
    }
}

/// What kind of zip this is, from its member names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Torch,
    Keras,
    Npz,
    Generic,
}

/// A member whose local header was found: where its bytes are.
struct Located<'e> {
    entry: &'e Entry,
    local_name: Vec<u8>,
    local_flags: u16,
    data_start: u64,
}

/// The bytes of a member, as the key for "already scanned".
type Span = (u64, u64, u16);

/// Scans a zip archive through both readers' views (PyTorch's miniz and
/// Python's `zipfile`), reporting where they disagree, then every member.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let torch = read_central_directory(cx, data);
    let zipfile = read_zipfile_view(data, cx.limits().max_archive_members);
    let (torch_entries, zipfile_entries) = match (torch, zipfile) {
        (Err(reason), Err(_)) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("zip archive unreadable: {reason}"),
            );
            return;
        }
        (Ok(t), Ok(z)) => (t, z),
        (Ok(t), Err(reason)) => {
            report_one_sided(cx, Reader::Torch, Reader::Zipfile, t.len(), &reason);
            (t, Vec::new())
        }
        (Err(reason), Ok(z)) => {
            report_one_sided(cx, Reader::Zipfile, Reader::Torch, z.len(), &reason);
            (Vec::new(), z)
        }
    };
    let kind = classify(torch_entries.iter().chain(&zipfile_entries));
    cx.set_kind(match kind {
        Kind::Torch => crate::Kind::PytorchZip,
        Kind::Keras => crate::Kind::KerasV3,
        Kind::Npz => crate::Kind::Npz,
        Kind::Generic => crate::Kind::Zip,
    });
    let torchscript = kind == Kind::Torch && is_torchscript(&torch_entries);
    let resolver = if torchscript {
        Resolver::TorchScript
    } else {
        cx.resolver()
    };
    cx.with_resolver(resolver, |cx| {
        let torch_spans = scan_torch_view(cx, data, &torch_entries, kind, torchscript);
        scan_zipfile_view(
            cx,
            data,
            &zipfile_entries,
            &torch_entries,
            &torch_spans,
            (kind, torchscript),
        );
    });
}

fn report_one_sided(cx: &mut Ctx, reads: Reader, fails: Reader, members: usize, reason: &str) {
    if members == 0 {
        return;
    }
    cx.report(
        &rules::ZIP_READER_DISAGREEMENT,
        None,
        format!(
            "{} reads {members} member(s) but {} cannot read the archive ({reason})",
            reads.label(),
            fails.label()
        ),
        Some(reason.to_string()),
    );
}

/// Whether either reader finds at least one member in `data` read from its
/// end (a zip behind other data).
pub fn readable_from_end(cx: &Ctx, data: &[u8]) -> bool {
    read_central_directory(cx, data).is_ok_and(|e| !e.is_empty())
        || read_zipfile_view(data, cx.limits().max_archive_members).is_ok_and(|e| !e.is_empty())
}

/// Whether either reader sees the member layout of an archive some model
/// loader opens (PyTorch, Keras, npz) rather than a plain bundle of files.
pub fn has_model_layout(cx: &Ctx, data: &[u8]) -> bool {
    let torch = read_central_directory(cx, data).unwrap_or_default();
    let zipfile = read_zipfile_view(data, cx.limits().max_archive_members).unwrap_or_default();
    classify(torch.iter().chain(&zipfile)) != Kind::Generic
}

/// TorchScript archives (`torch.jit.save`) carry their compiled code in
/// `<prefix>/code/` next to `constants.pkl`; `torch.load` hands them to
/// `torch.jit.load`, whose unpickler resolves `__torch__.*` from that code.
fn is_torchscript(entries: &[Entry]) -> bool {
    let has = |pred: &dyn Fn(&str) -> bool| entries.iter().any(|e| pred(&e.name));
    has(&|n| n == "constants.pkl" || n.ends_with("/constants.pkl"))
        && has(&|n| n.starts_with("code/") || n.contains("/code/"))
}

/// Scans every member PyTorch's reader sees; returns the spans it covered
/// (keyed by name) so the zipfile view can skip identical members.
fn scan_torch_view(
    cx: &mut Ctx,
    data: &[u8],
    entries: &[Entry],
    kind: Kind,
    torchscript: bool,
) -> HashMap<String, Vec<Span>> {
    let mut seen = HashSet::new();
    let mut spans: HashMap<String, Vec<Span>> = HashMap::new();
    for entry in entries {
        if !cx.in_time() {
            break;
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
        let Some(local) = locate(data, entry) else {
            member_unparseable(cx, entry, "local header missing or truncated");
            continue;
        };
        if local.local_name != entry.raw_name {
            let local_name = decode_name(&local.local_name);
            cx.report(
                &rules::ZIP_NAME_MISMATCH,
                Some(entry.local_offset),
                format!(
                    "local header names the member `{local_name}` but the central directory says `{}`",
                    entry.name
                ),
                Some(format!("local={local_name:?} central={:?}", entry.name)),
            );
        }
        spans.entry(entry.name.clone()).or_default().push((
            local.data_start,
            entry.compressed,
            entry.method,
        ));
        scan_located(cx, data, &local, (kind, torchscript), true);
    }
    spans
}

/// Scans the members Python's zipfile would open that the PyTorch view did
/// not already cover, and reports where the two views disagree.
fn scan_zipfile_view(
    cx: &mut Ctx,
    data: &[u8],
    entries: &[Entry],
    torch_entries: &[Entry],
    torch_spans: &HashMap<String, Vec<Span>>,
    (kind, torchscript): (Kind, bool),
) {
    let mut disagreements = Vec::new();
    let zipfile_names: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    if !entries.is_empty() {
        for entry in torch_entries {
            if !zipfile_names.contains(entry.name.as_str()) {
                disagreements.push((
                    entry.local_offset,
                    format!(
                        "member `{}` exists only for {}; {} does not list it",
                        entry.name.escape_debug(),
                        Reader::Torch.label(),
                        Reader::Zipfile.label()
                    ),
                ));
            }
        }
    }
    let all_torch_spans: HashSet<Span> = torch_spans.values().flatten().copied().collect();
    for entry in entries {
        if !cx.in_time() {
            break;
        }
        let Some(local) = zipfile_open(data, entry) else {
            continue;
        };
        let span = (local.data_start, entry.compressed, entry.method);
        if !torch_entries.is_empty() {
            match torch_spans.get(&entry.name) {
                None => disagreements.push((
                    entry.local_offset,
                    format!(
                        "member `{}` exists only for {}; {} does not list it",
                        entry.name.escape_debug(),
                        Reader::Zipfile.label(),
                        Reader::Torch.label()
                    ),
                )),
                Some(spans) if !spans.contains(&span) => disagreements.push((
                    entry.local_offset,
                    format!(
                        "member `{}` has different data for {} than for {}",
                        entry.name.escape_debug(),
                        Reader::Zipfile.label(),
                        Reader::Torch.label()
                    ),
                )),
                Some(_) => {}
            }
        }
        if all_torch_spans.contains(&span) {
            continue;
        }
        check_path(cx, &entry.name, entry.local_offset);
        scan_located(cx, data, &local, (kind, torchscript), false);
    }
    let total = disagreements.len();
    for (offset, message) in disagreements.into_iter().take(MAX_DISAGREEMENTS) {
        cx.report(&rules::ZIP_READER_DISAGREEMENT, Some(offset), message, None);
    }
    if total > MAX_DISAGREEMENTS {
        cx.report(
            &rules::ZIP_READER_DISAGREEMENT,
            None,
            format!(
                "{} more members differ between the readers",
                total - MAX_DISAGREEMENTS
            ),
            None,
        );
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

fn classify<'a>(entries: impl Iterator<Item = &'a Entry> + Clone) -> Kind {
    let mut names = entries.map(|e| e.name.as_str());
    if names.clone().any(|n| {
        n.ends_with("/data.pkl")
            || n == "data.pkl"
            || n.ends_with(".data/version")
            || n.ends_with("/constants.pkl")
    }) {
        return Kind::Torch;
    }
    let has = |want: &str| names.clone().any(|n| n == want);
    if has("config.json")
        && (has("metadata.json") || has("model.weights.h5") || has("model.weights.npz"))
    {
        return Kind::Keras;
    }
    let mut any = false;
    if names.all(|n| {
        any = true;
        n.ends_with(".npy")
    }) && any
    {
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

/// Scans one member's bytes. `torch_view` members also get the checks for
/// flags and CRCs that PyTorch ignores (Python's zipfile refuses them, so
/// its view never opens such members).
fn scan_located(
    cx: &mut Ctx,
    data: &[u8],
    local: &Located,
    (kind, torchscript): (Kind, bool),
    torch_view: bool,
) {
    let entry = local.entry;
    let Some(raw) = usize::try_from(local.data_start).ok().and_then(|start| {
        data.get(start..start.checked_add(usize::try_from(entry.compressed).ok()?)?)
    }) else {
        member_unparseable(cx, entry, "member data runs past the end of the archive");
        return;
    };
    let codec = match entry.method {
        0 => None,
        8 => Some(Codec::Deflate),
        12 => Some(Codec::Bzip2),
        14 => Some(Codec::ZipLzma),
        95 => Some(Codec::Xz),
        m => {
            member_unparseable(cx, entry, format!("unsupported compression method {m}"));
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
        None => raw.get(..SNIFF_BYTES).unwrap_or(raw).to_vec(),
        Some(c) => compress::prefix(c, raw, SNIFF_BYTES),
    };
    if torch_view && (entry.flags | local.local_flags) & FLAG_ENCRYPTED != 0 {
        if sniff::sniff(&head, &entry.name) == sniff::Format::Unknown {
            member_unparseable(cx, entry, "member is encrypted and cannot be inspected");
            return;
        }
        cx.report(
            &rules::ZIP_EVASION_FLAGS,
            Some(entry.local_offset),
            format!(
                "member `{}` is flagged encrypted but stored in clear (loaders ignore the flag)",
                entry.name
            ),
            Some(format!("flags=0x{:04x}", entry.flags | local.local_flags)),
        );
    }
    if codec.is_none() && is_storage(kind, &entry.name) {
        // Storages are only probed: raw tensor bytes are not read, but a
        // storage whose start is a format some loader would parse (a pickle,
        // an .npy that np.load on the archive would open) is scanned.
        if storage_needs_scan(&head, raw) {
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
    if torch_view
        && content.len() <= 64 << 20
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

fn storage_needs_scan(head: &[u8], raw: &[u8]) -> bool {
    match sniff::sniff(head, "") {
        sniff::Format::Pickle => {
            pickle::looks_like_pickle(head) && pickle::looks_like_complete_pickle(raw)
        }
        sniff::Format::Unknown | sniff::Format::Text | sniff::Format::Image => false,
        _ => true,
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// Reads the local header the way miniz does: the name and flags there are
/// informational, the data starts after its name and extra field.
fn locate<'e>(data: &[u8], entry: &'e Entry) -> Option<Located<'e>> {
    let off = usize::try_from(entry.local_offset).ok()?;
    let h: &[u8; 30] = record(data, off)?;
    if !h.starts_with(LOCAL_SIG) {
        return None;
    }
    let name_len = usize::from(le!(u16, h, 26));
    let extra_len = usize::from(le!(u16, h, 28));
    let local_name = data.get(off + 30..off + 30 + name_len)?.to_vec();
    Some(Located {
        entry,
        local_name,
        local_flags: le!(u16, h, 6),
        data_start: (off + 30 + name_len + extra_len) as u64,
    })
}

/// `ZipFile.open` for reading: the member opens only if its local header is
/// there, its local name equals the stored central name, its data does not
/// run into the next member, it needs no password and its method is one
/// `zipfile` implements. `None` means `zipfile` raises.
fn zipfile_open<'e>(data: &[u8], entry: &'e Entry) -> Option<Located<'e>> {
    let local = locate(data, entry)?;
    if entry.flags & (FLAG_PATCHED | FLAG_STRONG_ENCRYPTION | FLAG_ENCRYPTED) != 0 {
        return None;
    }
    let same_name = if (local.local_flags ^ entry.flags) & FLAG_UTF8 == 0
        || (local.local_name.is_ascii() && entry.raw_name.is_ascii())
    {
        local.local_name == entry.raw_name
    } else {
        // Two encodings of non-ASCII text can decode to the same string;
        // assume they do, so the member is scanned.
        true
    };
    if !same_name {
        return None;
    }
    if entry
        .end_offset
        .is_some_and(|end| local.data_start.saturating_add(entry.compressed) > end)
    {
        return None;
    }
    matches!(entry.method, 0 | 8 | 12 | 14).then_some(local)
}

fn decode_name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The last end-of-central-directory signature with a whole record after
/// it, searching back over a comment of up to 64 KiB (miniz's search).
fn find_eocd(data: &[u8]) -> Option<usize> {
    let tail_start = data.len().saturating_sub(EOCD_LEN + MAX_COMMENT);
    let tail = data.get(tail_start..data.len().saturating_sub(EOCD_LEN - 4))?;
    sniff::memfind(tail, EOCD_SIG).map(|p| p + tail_start)
}

/// A ZIP64 end record at `at`, if its signature is there.
fn zip64_record(data: &[u8], at: usize) -> Option<&[u8; ZIP64_EOCD_LEN]> {
    record(data, at).filter(|r| r.starts_with(ZIP64_EOCD_SIG))
}

/// PyTorch's view: miniz finds the end record, then uses a ZIP64 record
/// whenever a locator precedes the end record and the record it designates
/// is valid (not only when 32-bit fields are saturated; miniz 3 looks right
/// before the locator first, older versions where the locator points).
/// Every central entry is read at the declared offset; when nothing is
/// there, the scanner (more tolerant than miniz) assumes prepended data.
pub fn read_central_directory(cx: &Ctx, data: &[u8]) -> Result<Vec<Entry>, String> {
    let eocd = find_eocd(data).ok_or("no end-of-central-directory record")?;
    let e: &[u8; EOCD_LEN] =
        record(data, eocd).ok_or("end-of-central-directory record truncated")?;
    let mut count = u64::from(le!(u16, e, 10));
    let mut cd_size = u64::from(le!(u32, e, 12));
    let mut cd_offset = u64::from(le!(u32, e, 16));
    let mut eocd_start = eocd as u64;
    let locator = eocd
        .checked_sub(ZIP64_LOCATOR_LEN)
        .and_then(|l| record::<ZIP64_LOCATOR_LEN>(data, l))
        .filter(|loc| loc.starts_with(ZIP64_LOCATOR_SIG));
    if let Some(loc) = locator {
        let before = eocd.checked_sub(ZIP64_LOCATOR_LEN + ZIP64_EOCD_LEN);
        let record = before
            .and_then(|at| zip64_record(data, at).map(|r| (at, r)))
            .or_else(|| {
                let at = usize::try_from(le!(u64, loc, 8)).ok()?;
                zip64_record(data, at).map(|r| (at, r))
            });
        if let Some((at, rec)) = record {
            count = le!(u64, rec, 32);
            cd_size = le!(u64, rec, 40);
            cd_offset = le!(u64, rec, 48);
            eocd_start = at as u64;
        } else if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            return Err("ZIP64 end-of-central-directory record missing".into());
        }
    } else if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        return Err("ZIP64 locator missing".into());
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
    let mut pos = usize::try_from(cd_offset.saturating_add(shift))
        .map_err(|_| "central directory offset out of range")?;
    let mut entries = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let (mut entry, len) = central_entry(data, pos)?;
        entry.name = decode_name(&entry.raw_name);
        apply_zip64_extra(&mut entry, central_extra(data, pos), true)?;
        entry.local_offset = entry.local_offset.saturating_add(shift);
        entries.push(entry);
        pos += len;
    }
    Ok(entries)
}

/// One central directory header at `pos` and its total length.
fn central_entry(data: &[u8], pos: usize) -> Result<(Entry, usize), String> {
    let h: &[u8; 46] = record(data, pos).ok_or("central directory truncated")?;
    if !h.starts_with(CENTRAL_SIG) {
        return Err(format!("bad central directory entry at byte {pos}"));
    }
    let name_len = usize::from(le!(u16, h, 28));
    let extra_len = usize::from(le!(u16, h, 30));
    let comment_len = usize::from(le!(u16, h, 32));
    let raw_name = data
        .get(pos + 46..pos + 46 + name_len)
        .ok_or("central directory name truncated")?
        .to_vec();
    Ok((
        Entry {
            name: String::new(),
            raw_name,
            flags: le!(u16, h, 8),
            method: le!(u16, h, 10),
            crc: le!(u32, h, 16),
            compressed: u64::from(le!(u32, h, 20)),
            uncompressed: u64::from(le!(u32, h, 24)),
            local_offset: u64::from(le!(u32, h, 42)),
            end_offset: None,
        },
        46 + name_len + extra_len + comment_len,
    ))
}

fn central_extra(data: &[u8], pos: usize) -> &[u8] {
    let Some(h) = record::<46>(data, pos) else {
        return &[];
    };
    let start = pos + 46 + usize::from(le!(u16, h, 28));
    data.get(start..start + usize::from(le!(u16, h, 30)))
        .unwrap_or_default()
}

/// The ZIP64 extra field (id 1) holds, in order, only the sizes and offset
/// whose 32-bit fields are saturated. miniz reads what is there; `zipfile`
/// (`strict`) raises on a short or malformed field.
fn apply_zip64_extra(entry: &mut Entry, mut extra: &[u8], lenient: bool) -> Result<(), String> {
    while let Some((field, rest)) = extra.split_first_chunk::<4>() {
        let id = le!(u16, field, 0);
        let len = usize::from(le!(u16, field, 2));
        let Some((body, after)) = rest.split_at_checked(len) else {
            return if lenient {
                Ok(())
            } else {
                Err(format!("corrupt extra field {id:04x}"))
            };
        };
        if id == 1 {
            let mut fields = body
                .as_chunks::<8>()
                .0
                .iter()
                .map(|c| u64::from_le_bytes(*c));
            let mut take = |current: u64| match fields.next() {
                Some(v) => Ok(v),
                None if lenient => Ok(current),
                None => Err("corrupt ZIP64 extra field".to_string()),
            };
            if entry.uncompressed == 0xffff_ffff {
                entry.uncompressed = take(entry.uncompressed)?;
            }
            if entry.compressed == 0xffff_ffff {
                entry.compressed = take(entry.compressed)?;
            }
            if entry.local_offset == 0xffff_ffff {
                entry.local_offset = take(entry.local_offset)?;
            }
            if lenient {
                return Ok(());
            }
        } else if id == 0x7075 && !lenient {
            apply_unicode_path(entry, body)?;
        }
        extra = after;
    }
    Ok(())
}

/// The Info-ZIP Unicode Path field (0x7075): `zipfile` replaces the member's
/// name with it when its CRC matches the stored name.
fn apply_unicode_path(entry: &mut Entry, body: &[u8]) -> Result<(), String> {
    let (Some(&version), Some(crc)) = (body.first(), record::<4>(body, 1)) else {
        return Err("corrupt unicode path extra field".into());
    };
    if version == 1 && le!(u32, crc, 0) == crc32(&entry.raw_name) {
        let name = std::str::from_utf8(body.get(5..).unwrap_or_default())
            .map_err(|_| "unicode path extra field is not UTF-8")?;
        if !name.is_empty() {
            entry.name = sanitize(name);
        }
    }
    Ok(())
}

/// `zipfile`'s name normalisation on POSIX: everything from the first NUL
/// on is dropped.
fn sanitize(name: &str) -> String {
    name.split('\0').next().unwrap_or_default().to_string()
}

/// Python's `zipfile` view (`_EndRecData`, `_EndRecData64`,
/// `_RealGetContents`): the end record is taken from the last 22 bytes when
/// it has no comment, else from the last signature in the final 64 KiB; a
/// ZIP64 locator right before it makes the ZIP64 record right before the
/// locator authoritative (the locator's offset is ignored); every offset is
/// shifted by `concat`, the gap between where the central directory is and
/// where it says it is, always; the directory is read for its declared size,
/// not its declared count; names are cut at a NUL; the last duplicate wins
/// lookups but every entry stays in `namelist()`.
pub fn read_zipfile_view(data: &[u8], max_members: u64) -> Result<Vec<Entry>, String> {
    let last = data.len().checked_sub(EOCD_LEN);
    let eocd = match last {
        Some(at)
            if data.get(at..).is_some_and(|r| r.starts_with(EOCD_SIG))
                && data.ends_with(b"\0\0") =>
        {
            at
        }
        _ => {
            let start = data.len().saturating_sub(MAX_COMMENT + EOCD_LEN);
            sniff::memfind(data.get(start..).unwrap_or_default(), EOCD_SIG)
                .map(|p| p + start)
                .ok_or("no end-of-central-directory record")?
        }
    };
    let e: &[u8; EOCD_LEN] =
        record(data, eocd).ok_or("end-of-central-directory record truncated")?;
    let mut cd_size = u64::from(le!(u32, e, 12));
    let mut cd_offset = u64::from(le!(u32, e, 16));
    let mut zip64 = false;
    let locator = eocd
        .checked_sub(ZIP64_LOCATOR_LEN)
        .and_then(|l| record::<ZIP64_LOCATOR_LEN>(data, l))
        .filter(|loc| loc.starts_with(ZIP64_LOCATOR_SIG));
    if let Some(loc) = locator {
        if le!(u32, loc, 4) != 0 || le!(u32, loc, 16) > 1 {
            return Err("zipfiles that span multiple disks are not supported".into());
        }
        if let Some(rec) = eocd
            .checked_sub(ZIP64_LOCATOR_LEN + ZIP64_EOCD_LEN)
            .and_then(|at| zip64_record(data, at))
        {
            cd_size = le!(u64, rec, 40);
            cd_offset = le!(u64, rec, 48);
            zip64 = true;
        }
    }
    let mut concat = i128::from(eocd as u64) - i128::from(cd_size) - i128::from(cd_offset);
    if zip64 {
        concat -= (ZIP64_EOCD_LEN + ZIP64_LOCATOR_LEN) as i128;
    }
    let start_dir = i128::from(cd_offset) + concat;
    let start_dir = usize::try_from(start_dir).map_err(|_| "bad offset for central directory")?;
    let cd_end = start_dir
        .saturating_add(usize::try_from(cd_size).unwrap_or(usize::MAX))
        .min(data.len());
    let cd = data.get(start_dir..cd_end).unwrap_or_default();
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while (pos as u64) < cd_size {
        if entries.len() as u64 >= max_members {
            return Err(format!("more than {max_members} members"));
        }
        let h: &[u8; 46] = record(cd, pos).ok_or("truncated central directory")?;
        if !h.starts_with(CENTRAL_SIG) {
            return Err("bad magic number for central directory".into());
        }
        let name_len = usize::from(le!(u16, h, 28));
        let extra_len = usize::from(le!(u16, h, 30));
        let comment_len = usize::from(le!(u16, h, 32));
        if le!(u16, h, 6) & 0xff > 63 {
            return Err("zip file version not supported".into());
        }
        let clamp = |from: usize, len: usize| {
            let from = from.min(cd.len());
            cd.get(from..from.saturating_add(len).min(cd.len()))
                .unwrap_or_default()
        };
        let raw_name = clamp(pos + 46, name_len).to_vec();
        let extra = clamp(pos + 46 + name_len, extra_len);
        let flags = le!(u16, h, 8);
        let decoded = if flags & FLAG_UTF8 != 0 {
            std::str::from_utf8(&raw_name)
                .map_err(|_| "member name is not UTF-8 although flagged so")?
                .to_string()
        } else {
            decode_name(&raw_name)
        };
        let mut entry = Entry {
            name: sanitize(&decoded),
            raw_name,
            flags,
            method: le!(u16, h, 10),
            crc: le!(u32, h, 16),
            compressed: u64::from(le!(u32, h, 20)),
            uncompressed: u64::from(le!(u32, h, 24)),
            local_offset: u64::from(le!(u32, h, 42)),
            end_offset: None,
        };
        apply_zip64_extra(&mut entry, extra, false)?;
        let shifted = i128::from(entry.local_offset) + concat;
        // A negative offset makes `open` fail; such a member is unloadable.
        entry.local_offset = u64::try_from(shifted).unwrap_or(u64::MAX);
        entries.push(entry);
        pos += 46 + name_len + extra_len + comment_len;
    }
    let mut by_offset: Vec<&mut Entry> = entries.iter_mut().collect();
    by_offset.sort_by_key(|e| std::cmp::Reverse(e.local_offset));
    let mut end = start_dir as u64;
    for e in by_offset {
        e.end_offset = Some(end);
        end = e.local_offset;
    }
    Ok(entries)
}

/// A member that cannot be read: inconclusive (GEN001) at its local
/// header, named by its path.
fn member_unparseable(cx: &mut Ctx, entry: &Entry, why: impl Into<String>) {
    cx.in_member(&entry.name, |cx| {
        cx.inconclusive(&rules::UNPARSEABLE, Some(entry.local_offset), why)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored member, its central entry and an end record, with `prefix`
    /// bytes in front (offsets written as if the archive started at 0).
    fn archive(prefix: &[u8], name: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        let mut local = LOCAL_SIG.to_vec();
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        local.extend_from_slice(&crc32(body).to_le_bytes());
        local.extend_from_slice(&(body.len() as u32).to_le_bytes());
        local.extend_from_slice(&(body.len() as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&[0, 0]);
        local.extend_from_slice(name);
        local.extend_from_slice(body);
        let cd_offset = local.len() as u32;
        out.extend_from_slice(&local);
        let mut cd = CENTRAL_SIG.to_vec();
        cd.extend_from_slice(&[20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        cd.extend_from_slice(&crc32(body).to_le_bytes());
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&0u32.to_le_bytes());
        cd.extend_from_slice(name);
        out.extend_from_slice(&cd);
        out.extend_from_slice(EOCD_SIG);
        out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn zipfile_takes_the_unicode_path_field_when_its_crc_matches() {
        let mut z = archive(b"", b"weights.bin", b"x");
        let mut field = vec![1u8];
        field.extend_from_slice(&crc32(b"weights.bin").to_le_bytes());
        field.extend_from_slice(b"arr_0.npy");
        let mut extra = 0x7075u16.to_le_bytes().to_vec();
        extra.extend_from_slice(&(field.len() as u16).to_le_bytes());
        extra.extend_from_slice(&field);
        // Rebuild the central entry with the extra field appended.
        let cd_at = z.len() - EOCD_LEN - (46 + 11);
        let mut cd = z[cd_at..z.len() - EOCD_LEN].to_vec();
        cd[30..32].copy_from_slice(&(extra.len() as u16).to_le_bytes());
        cd.extend_from_slice(&extra);
        let mut end = z[z.len() - EOCD_LEN..].to_vec();
        end[12..16].copy_from_slice(&(cd.len() as u32).to_le_bytes());
        z.truncate(cd_at);
        z.extend_from_slice(&cd);
        z.extend_from_slice(&end);
        let entries = read_zipfile_view(&z, 10).unwrap();
        assert_eq!(entries[0].name, "arr_0.npy");
        let scanner = crate::Scanner::default();
        let cx = Ctx::new(&scanner, None);
        assert_eq!(
            read_central_directory(&cx, &z).unwrap()[0].name,
            "weights.bin"
        );
    }

    #[test]
    fn zipfile_refuses_a_local_name_that_differs() {
        let mut z = archive(b"", b"a.npy", b"x");
        z[30] = b'b';
        let entries = read_zipfile_view(&z, 10).unwrap();
        assert!(zipfile_open(&z, &entries[0]).is_none());
    }

    #[test]
    fn zipfile_truncates_names_at_nul() {
        let z = archive(b"", b"arr.npy\0hidden", b"x");
        let entries = read_zipfile_view(&z, 10).unwrap();
        assert_eq!(entries[0].name, "arr.npy");
        assert!(zipfile_open(&z, &entries[0]).is_some());
    }

    #[test]
    fn zipfile_always_shifts_by_the_concatenated_prefix() {
        let z = archive(b"0123456789", b"a", b"payload");
        let entries = read_zipfile_view(&z, 10).unwrap();
        assert_eq!(entries[0].local_offset, 10);
        let local = zipfile_open(&z, &entries[0]).unwrap();
        assert_eq!(local.data_start, 10 + 30 + 1);
    }
}
