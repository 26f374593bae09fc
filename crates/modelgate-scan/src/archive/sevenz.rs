//! 7z archives. The nullifAI campaign shipped PyTorch checkpoints as 7z so
//! that zip-only scanners could not open them; PyTorch itself cannot load 7z,
//! but users extract and then load. Every member is decompressed within the
//! budget and scanned.

use std::io::{Cursor, Read};

use crate::{Ctx, rules};

/// Scans a 7z archive: every member, decompressed within the budget.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let mut reader = match sevenz_rust2::ArchiveReader::new(
        Cursor::new(data),
        sevenz_rust2::Password::empty(),
    ) {
        Ok(r) => r,
        Err(e) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("7z archive unreadable: {e}"),
            );
            return;
        }
    };
    let members = reader.archive().files.len() as u64;
    if members > cx.limits().max_archive_members {
        let max = cx.limits().max_archive_members;
        cx.inconclusive(
            &rules::LIMIT_EXCEEDED,
            None,
            format!("7z archive declares {members} members, over {max}"),
        );
        return;
    }
    let mut extracted: Vec<(String, Vec<u8>)> = Vec::new();
    let mut budget = cx.decompression_left();
    let mut over_budget = None;
    let result = reader.for_each_entries(|entry, r| {
        if entry.is_directory() {
            return Ok(true);
        }
        let mut buf = Vec::new();
        r.take(budget.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > budget {
            over_budget = Some(entry.name().to_string());
            return Ok(false);
        }
        budget -= buf.len() as u64;
        extracted.push((entry.name().to_string(), buf));
        Ok(true)
    });
    for (name, content) in &extracted {
        super::zip::check_path(cx, name, 0);
        if !cx.take_decompression_budget(content.len() as u64) {
            return;
        }
        cx.scan_member(name, content);
    }
    if let Some(name) = over_budget {
        cx.inconclusive(
            &rules::DECOMPRESSION_BOMB,
            None,
            format!("7z member `{name}` expands past the decompression budget"),
        );
    }
    if let Err(e) = result {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            None,
            format!("7z archive breaks while decompressing: {e}"),
        );
    }
}
