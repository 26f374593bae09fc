//! NumPy `.npy` files (format versions 1.0–3.0). Numeric arrays are raw
//! bytes after a small text header and are never read. An object dtype
//! (`|O`, or an `O` field of a structured dtype) means the data is a pickle
//! that `np.load(allow_pickle=True)` would run (CVE-2019-6446): that pickle
//! is scanned. `.npz` files are zips of `.npy` and go through the zip reader.

use crate::scan::{Ctx, Verdict, pickle, rules};

pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let Some(&major) = data.get(6) else {
        cx.inconclusive(&rules::UNPARSEABLE, Some(6), "npy header truncated");
        return;
    };
    let (len_bytes, header_start): (usize, usize) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                Some(6),
                format!("unknown npy format version {v}"),
            );
            return;
        }
    };
    let Some(len_field) = data.get(8..8 + len_bytes) else {
        cx.inconclusive(&rules::UNPARSEABLE, Some(8), "npy header length truncated");
        return;
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = data.get(header_start..header_start.saturating_add(header_len)) else {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(8),
            format!("npy header of {header_len} bytes runs past the end of the file"),
        );
        return;
    };
    let header = String::from_utf8_lossy(header);
    let Some(descr) = descr_value(&header) else {
        cx.inconclusive(
            &rules::UNPARSEABLE,
            Some(header_start as u64),
            "npy header has no 'descr' entry",
        );
        return;
    };
    if !has_object_field(descr) {
        return;
    }
    let body_start = header_start + header_len;
    cx.report_as(
        &rules::OBJECT_ARRAY,
        Verdict::Info,
        Some(body_start as u64),
        "array of dtype object: its data is a pickle and loading needs allow_pickle=True (scanned)",
        Some(format!("descr {}", descr.trim())),
    );
    let body = &data[body_start.min(data.len())..];
    cx.in_member("<object array pickle>", |cx| pickle::scan(cx, body));
}

/// The text after `'descr':` up to the next top-level key. The header is a
/// Python dict literal; it is searched, never evaluated.
fn descr_value(header: &str) -> Option<&str> {
    let start = header
        .find("'descr'")
        .or_else(|| header.find("\"descr\""))?
        + 7;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let end = [
        "'fortran_order'",
        "\"fortran_order\"",
        "'shape'",
        "\"shape\"",
    ]
    .iter()
    .filter_map(|k| rest.find(k))
    .min()
    .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Whether a descr (a type string, or a list of fields for structured
/// dtypes) contains an object type code (`O`, `|O`, `O8`). Field names are
/// quoted too; only one spelled exactly like the code could be mistaken for
/// it, which errs towards scanning.
fn has_object_field(descr: &str) -> bool {
    descr.split(['\'', '"']).skip(1).step_by(2).any(|s| {
        let code = s.trim_start_matches(['<', '>', '|', '=']);
        code.strip_prefix('O')
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_codes() {
        assert!(has_object_field("'|O', "));
        assert!(has_object_field("[('a', '<i4'), ('b', '|O')], "));
        assert!(!has_object_field("'<f4', "));
        assert!(!has_object_field("[('name', '<U10'), ('Order', '<i4')], "));
    }

    #[test]
    fn descr_lookup() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        assert_eq!(descr_value(h).map(str::trim), Some("'<f4',"));
    }
}
