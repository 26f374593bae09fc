//! Tar archives (PyTorch's ancient `tar` checkpoint format, exported model
//! folders). Members are sliced out of the input without copying; names and
//! link targets that escape the extraction directory are findings.
//!
//! The loader is Python's `tarfile` (`torch.load` on a legacy checkpoint
//! calls `extractfile` on its members), so members are judged the way it
//! judges them: `CONTTYPE` (`7`), sparse and unknown type flags are regular
//! files whose data it returns, and the data blocks of directories, links
//! and devices are *not* skipped — `tarfile` reads its next header right
//! after theirs, where other readers skip the declared size. Such members
//! are reported and the archive is read again from there.

use super::zip::check_path;
use crate::pickle::{self, LegacyRecords};
use crate::{Ctx, rules};

/// Scans a tar archive member by member, as `tarfile` would read it.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let mut archive = tar::Archive::new(data);
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("tar archive unreadable: {e}"),
            );
            return;
        }
    };
    let is_torch_legacy = has_torch_legacy_layout(data);
    if is_torch_legacy {
        cx.set_kind(crate::Kind::PytorchLegacy);
    }
    let mut count = 0u64;
    let mut reread = false;
    for entry in entries {
        if !cx.in_time() {
            return;
        }
        count += 1;
        if count > cx.limits().max_archive_members {
            let max = cx.limits().max_archive_members;
            cx.inconclusive(
                &rules::LIMIT_EXCEEDED,
                None,
                format!("tar archive has more than {max} members"),
            );
            return;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    None,
                    format!("tar archive breaks after {count} members: {e}"),
                );
                return;
            }
        };
        let offset = entry.raw_header_position();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_path(cx, &name, offset);
        let kind = entry.header().entry_type();
        let typeflag = kind.as_byte();
        if matches!(typeflag, b'L' | b'K' | b'x' | b'g' | b'X') {
            // Headers that modify the next member: both readers consume them.
            continue;
        }
        let start = entry.raw_file_position();
        if !python_reads_data(typeflag, &name) && entry.size() > 0 {
            // Python's view from the first such member on covers every later
            // byte, so the archive is re-read from there once (the nested
            // read does the same for what follows: a chain, not a tree).
            report_hidden_blocks(cx, data, &name, typeflag, offset, start, !reread);
            reread = true;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
            {
                let escapes = target.starts_with('/') || target.split('/').any(|c| c == "..");
                if escapes {
                    cx.report(
                        &rules::ARCHIVE_PATH_TRAVERSAL,
                        Some(offset),
                        format!("member `{name}` links to `{target}`, outside the archive"),
                        Some(format!("{name} -> {target}")),
                    );
                }
            }
            continue;
        }
        if !python_reads_data(typeflag, &name) {
            continue;
        }
        if !matches!(typeflag, b'\0' | b'0' | b'7' | b'S') {
            cx.report(
                &rules::TAR_TYPE_AMBIGUITY,
                Some(offset),
                format!(
                    "member `{name}` has type flag {:?}, which Python's tarfile reads as a regular file",
                    char::from(typeflag)
                ),
                Some(format!("typeflag={:?}", char::from(typeflag))),
            );
        }
        let end = start.checked_add(entry.size());
        let Some(content) = end.and_then(|end| data.get(start as usize..end as usize)) else {
            cx.in_member(&name, |cx| {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    Some(offset),
                    "member data runs past the end of the archive",
                )
            });
            return;
        };
        let records = match name.as_str() {
            "storages" if is_torch_legacy => Some(LegacyRecords::Storages),
            "tensors" if is_torch_legacy => Some(LegacyRecords::Tensors),
            _ => None,
        };
        match records {
            Some(records) => cx.in_member(&name, |cx| {
                pickle::scan_legacy_records(cx, content, records)
            }),
            None => cx.scan_member(&name, content),
        }
    }
}

/// Whether `tarfile` treats a member with this type flag as a file whose
/// data follows (`isreg()` or a type it does not support). A `\0`-typed
/// member whose name ends in `/` is an old-style directory to it.
fn python_reads_data(typeflag: u8, name: &str) -> bool {
    match typeflag {
        b'\0' => !name.ends_with('/'),
        b'0' | b'7' | b'S' => true,
        // Links, devices, directories, FIFOs: no data to `tarfile`.
        b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => false,
        _ => true,
    }
}

/// A link, directory or device that declares data: `tarfile` reads headers
/// where other readers skip, so the rest of the archive is scanned again
/// from the start of those blocks (when `reread`).
fn report_hidden_blocks(
    cx: &mut Ctx,
    data: &[u8],
    name: &str,
    typeflag: u8,
    offset: u64,
    start: u64,
    reread: bool,
) {
    cx.report(
        &rules::TAR_TYPE_AMBIGUITY,
        Some(offset),
        format!(
            "member `{name}` (type {:?}) declares data blocks that Python's tarfile reads as further members",
            char::from(typeflag)
        ),
        Some(format!("typeflag={:?}", char::from(typeflag))),
    );
    if !reread {
        return;
    }
    if let Some(rest) = usize::try_from(start).ok().and_then(|s| data.get(s..)) {
        let label = format!("<tar as Python reads it after `{name}`>");
        cx.scan_member(&label, rest);
    }
}

/// The legacy format's four members, in any order.
fn has_torch_legacy_layout(data: &[u8]) -> bool {
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        return false;
    };
    let names: Vec<String> = entries
        .take(16)
        .filter_map(|e| {
            e.ok()
                .map(|e| String::from_utf8_lossy(&e.path_bytes()).into_owned())
        })
        .collect();
    ["sys_info", "pickle", "storages", "tensors"]
        .iter()
        .all(|n| names.iter().any(|m| m == n))
}
