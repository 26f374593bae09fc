//! The checked-in data tables under `data/`, and the one reader of them.
//!
//! Each table is tab-separated, one row a line, `#` comments and blank
//! lines ignored. Every table declares its shape here (how many columns,
//! per row kind where the first column is a kind), and
//! `every_table_is_well_formed` rejects any row that does not fit it, so a
//! parser's `match` on a row's columns can never be silently skipping a
//! malformed row: there is none in a build whose tests pass.

/// How the rows of a table are laid out.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the shape is the contract `every_table_is_well_formed` checks"
    )
)]
pub(crate) enum Shape {
    /// Every row has this many columns.
    Columns(usize),
    /// The first column names the row's kind, which fixes its column count.
    Kinds(&'static [(&'static str, usize)]),
}

/// One table, compiled into the binary.
pub(crate) struct Table {
    /// The file under `data/`, for messages.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the table tests"))]
    pub(crate) file: &'static str,
    /// The whole file, for tests that audit it line by line.
    pub(crate) text: &'static str,
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the table tests"))]
    shape: Shape,
}

impl Table {
    /// The table's data rows, split into columns.
    pub(crate) fn rows(&self) -> impl Iterator<Item = Vec<&'static str>> {
        self.text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split('\t').collect())
    }

    /// Checks every row against the table's shape; the error names the file,
    /// the line and what is wrong with it.
    #[cfg(test)]
    fn check(&self) -> Result<usize, String> {
        check_text(self.file, self.text, &self.shape)
    }
}

#[cfg(test)]
fn check_text(file: &str, text: &str, shape: &Shape) -> Result<usize, String> {
    let mut rows = 0;
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        let cols: Vec<&str> = line.split('\t').collect();
        let want = match shape {
            Shape::Columns(n) => *n,
            Shape::Kinds(kinds) => match kinds.iter().find(|(k, _)| Some(k) == cols.first()) {
                Some((_, n)) => *n,
                None => return Err(format!("{at}: unknown row kind {:?}", cols.first())),
            },
        };
        if cols.len() != want {
            return Err(format!("{at}: {} columns, expected {want}", cols.len()));
        }
        if let Some(c) = cols.iter().find(|c| c.is_empty() || c.trim() != **c) {
            return Err(format!("{at}: empty or space-padded column {c:?}"));
        }
        if !seen.insert(line) {
            return Err(format!("{at}: duplicate row"));
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(format!("{file}: no rows"));
    }
    Ok(rows)
}

macro_rules! table {
    ($file:literal, $shape:expr) => {
        Table {
            file: $file,
            text: include_str!(concat!("data/", $file)),
            shape: $shape,
        }
    };
}

/// Pickle globals: allowed (with their audited calls), profiled, denied.
pub(crate) static PICKLE_GLOBALS: Table = table!(
    "pickle_globals.tsv",
    Shape::Kinds(&[
        ("allow", 5),
        ("profile", 5),
        ("deny", 4),
        ("deny-module", 4),
        ("deny-any", 4),
        ("deny-attr", 4),
    ])
);
/// CPython's `_compat_pickle` renames (Python 2 names to Python 3), generated
/// by `tests/fixtures/gen/compat_pickle.py`.
pub(crate) static COMPAT_PICKLE: Table = table!(
    "compat_pickle.tsv",
    Shape::Kinds(&[("name", 5), ("module", 3)])
);
/// Keras layer and function names: safe, denied, marshal-bearing.
pub(crate) static KERAS_NAMES: Table = table!(
    "keras_names.tsv",
    Shape::Kinds(&[("safe", 3), ("deny", 3), ("deny-name", 3), ("marshal", 3)])
);
/// ONNX operator domains a runtime implements itself.
pub(crate) static ONNX_DOMAINS: Table = table!("onnx_domains.tsv", Shape::Columns(2));
/// Words that make a custom operator's name dangerous.
pub(crate) static CUSTOM_OP_WORDS: Table = table!("custom_op_words.tsv", Shape::Columns(2));
/// TensorFlow ops and their classes.
pub(crate) static TF_OPS: Table = table!("tf_ops.tsv", Shape::Columns(4));
/// TFLite custom ops a runtime resolves.
pub(crate) static TFLITE_CUSTOM_OPS: Table = table!("tflite_custom_ops.tsv", Shape::Columns(2));
/// Every op TorchScript code can call, with its audit.
pub(crate) static TORCHSCRIPT_OPS: Table = table!("torchscript_ops.tsv", Shape::Columns(4));

/// Every table under `data/`.
#[cfg(test)]
static ALL: &[&Table] = &[
    &PICKLE_GLOBALS,
    &COMPAT_PICKLE,
    &KERAS_NAMES,
    &ONNX_DOMAINS,
    &CUSTOM_OP_WORDS,
    &TF_OPS,
    &TFLITE_CUSTOM_OPS,
    &TORCHSCRIPT_OPS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_well_formed() {
        for t in ALL {
            if let Err(e) = t.check() {
                panic!("{e}");
            }
        }
    }

    /// Every file under `data/` is declared above (a new table cannot skip
    /// the check).
    #[test]
    fn every_data_file_is_declared() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/data");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("data dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut declared: Vec<String> = ALL.iter().map(|t| t.file.to_string()).collect();
        declared.sort();
        assert_eq!(files, declared);
    }

    #[test]
    fn malformed_rows_are_rejected() {
        let kinds = Shape::Kinds(&[("deny", 3)]);
        assert!(check_text("t", "# c\ndeny\ta\tb\n", &kinds).is_ok());
        for bad in [
            "deny\ta\n",
            "deny\ta\tb\tc\n",
            "nope\ta\tb\n",
            "deny\t\tb\n",
            "deny\ta \tb\n",
            "deny\ta\tb\ndeny\ta\tb\n",
            "# only\n",
        ] {
            assert!(check_text("t", bad, &kinds).is_err(), "{bad:?}");
        }
        assert!(check_text("t", "a\tb\tc\n", &Shape::Columns(2)).is_err());
    }
}
