//! HDF5 files: legacy Keras models (`.h5`, `.hdf5`) and plain weight files
//! (including the `model.weights.h5` inside a `.keras` zip).
//!
//! A Keras H5 model keeps its architecture as JSON in the root attribute
//! `model_config` (and its compile settings in `training_config`). The Keras
//! loader deserializes both, and legacy H5 loading has historically run
//! `Lambda` bytecode even with `safe_mode=True` (CVE-2025-9905). This module
//! reads those two attributes with the pure-Rust `hdf5-reader` crate and hands
//! them to [`super::keras`] for the same analysis as a `.keras` config. A file
//! without `model_config` is not a Keras model (weights only) and yields no
//! Keras findings.
//!
//! Independently of Keras, the object tree is walked for references to other
//! files: external links (HDF001) make the library open another file when a
//! loader follows them, and External Data Files messages (HDF002) make a
//! dataset read its bytes from another file. `hdf5-reader` resolves neither
//! unless given a resolver; the resolver installed here only records the file
//! names it is asked for and resolves nothing, so the scan never leaves the
//! input. Only object headers are read, never dataset contents.
//!
//! Bounds: `hdf5-reader`'s own limits are set from [`Limits`] (largest read,
//! largest object header), the walk stops at `max_structure_depth` group
//! levels and `max_archive_members` objects, revisits no object (hard links
//! can form cycles), and checks the time budget per group. Anything the crate
//! cannot parse is GEN001: an HDF5 file that cannot be read is never a pass.
//!
//! Input is a byte slice. At the top level it is the memory map of the file
//! on disk, which is mapped once more for the crate (its storage must own its
//! bytes) so that a multi-gigabyte weight file is not copied; an archive
//! member has no file of its own and is copied (it is already bounded by the
//! decompression budget). Untrusted bytes are never written to disk.
//!
//! [`Limits`]: crate::Limits

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use hdf5_reader::error::Error as H5Error;
use hdf5_reader::group::Group;
use hdf5_reader::local_heap::LocalHeap;
use hdf5_reader::messages::HdfMessage;
use hdf5_reader::messages::link::LinkTarget;
use hdf5_reader::{ExternalLinkResolver, Hdf5File, OpenOptions};

use super::keras;
use crate::{Ctx, Verdict, rules};

/// Root attributes a Keras loader deserializes, in the order it reads them.
const KERAS_ATTRIBUTES: [&str; 2] = ["model_config", "training_config"];

/// Root attributes that make a file a Keras model or weights file. Keras
/// walks every weight group of such a file, so an external link in it is
/// followed on load (malicious); in other HDF5 files (datasets, scientific
/// data shipped next to a model) external links are a legitimate HDF5
/// feature that only some reader may follow (suspicious, target named).
const KERAS_MARKERS: [&str; 4] = ["model_config", "keras_version", "layer_names", "backend"];

/// Scans an HDF5 file: the Keras model and training configs in its root
/// attributes, and links or external storage that reach outside it.
pub fn scan(cx: &mut Ctx, data: &[u8]) {
    let recorder = Arc::new(LinkRecorder::default());
    let limits = cx.limits();
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let options = OpenOptions::default()
        .with_max_read_bytes(to_usize(limits.max_header_bytes))
        .with_max_object_header_bytes(
            to_usize(limits.max_header_bytes).min(hdf5_reader::DEFAULT_MAX_OBJECT_HEADER_BYTES),
        )
        .with_max_chunk_bytes(to_usize(limits.max_header_bytes))
        .with_chunk_cache_bytes(0)
        .with_external_link_resolver(recorder.clone());
    let file = match open(cx, data, options) {
        Ok(f) => f,
        Err(e) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("HDF5 structure could not be parsed: {e}"),
            );
            return;
        }
    };
    let root = match file.root_group() {
        Ok(r) => r,
        Err(e) => {
            cx.inconclusive(
                &rules::UNPARSEABLE,
                None,
                format!("HDF5 root group could not be read: {e}"),
            );
            return;
        }
    };
    for name in KERAS_ATTRIBUTES {
        let text = match root.attribute(name).and_then(|a| a.read_string()) {
            Ok(text) => text,
            Err(e) if not_found(&e) => continue,
            Err(e) => {
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    None,
                    format!("HDF5 attribute `{name}` could not be read: {e}"),
                );
                continue;
            }
        };
        if name == "model_config" {
            cx.set_kind(crate::Kind::KerasH5);
        }
        keras::scan_h5_attribute(cx, name, text.as_bytes());
    }
    let keras = KERAS_MARKERS
        .iter()
        .any(|name| root.attribute(name).is_ok());
    walk(cx, &file, root, &recorder, LinkContext { keras });
}

/// Whether the file is a Keras model, which decides what following an
/// external link means.
#[derive(Clone, Copy)]
struct LinkContext {
    keras: bool,
}

impl LinkContext {
    /// Keras follows every link on load (malicious). Elsewhere a link to a
    /// file shipped beside this one (a plain name, as scientific
    /// datasets split across files use) is how HDF5 is meant to be used
    /// (info); one that leaves the folder (absolute, `..`, a
    /// drive or network path) would read whatever the loading machine has
    /// there (suspicious).
    fn verdict(self, filename: &str) -> Verdict {
        if self.keras {
            Verdict::Malicious
        } else if is_sibling_file(filename) {
            Verdict::Info
        } else {
            Verdict::Suspicious
        }
    }
}

fn is_sibling_file(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', ':'])
        && !name.starts_with('~')
}

/// Opens the bytes without copying them when they are the top-level file on
/// disk (see the module comment), and from a copy otherwise.
fn open(cx: &Ctx, data: &[u8], options: OpenOptions) -> Result<Hdf5File, H5Error> {
    if cx.depth() == 0
        && let Some(path) = cx.origin()
        && let Ok(f) = std::fs::File::open(path)
        && f.metadata().is_ok_and(|m| m.is_file() && m.len() == data.len() as u64)
        // SAFETY: read-only private map of the file that `data` already maps
        // (same path, same length); see `Scanner::scan_file` for the
        // truncation caveat, which applies equally here.
        && let Ok(map) = unsafe { memmap2::Mmap::map(&f) }
        && map.get(..4096.min(data.len())) == data.get(..4096.min(data.len()))
    {
        return Hdf5File::from_mmap_with_options(map, options);
    }
    Hdf5File::from_bytes_with_options(data, options)
}

fn not_found(e: &H5Error) -> bool {
    match e {
        H5Error::AttributeNotFound(_) => true,
        H5Error::Context { source, .. } => not_found(source),
        _ => false,
    }
}

/// An external-link "resolver" that resolves nothing and remembers what it
/// was asked for: `hdf5-reader` consults it for compact and dense links
/// alike, so no external link escapes the report.
#[derive(Default)]
struct LinkRecorder {
    asked: Mutex<Vec<String>>,
}

impl ExternalLinkResolver for LinkRecorder {
    fn resolve_external_link(
        &self,
        filename: &str,
    ) -> hdf5_reader::error::Result<Option<Hdf5File>> {
        if let Ok(mut asked) = self.asked.lock()
            && asked.len() < 1024
            && !asked.iter().any(|a| a == filename)
        {
            asked.push(filename.to_string());
        }
        Ok(None)
    }
}

fn walk(cx: &mut Ctx, file: &Hdf5File, root: Group, recorder: &LinkRecorder, links: LinkContext) {
    let max_depth = cx.limits().max_structure_depth;
    let max_objects = cx.limits().max_archive_members;
    let mut seen: HashSet<u64> = HashSet::from([root.address()]);
    let mut reported_links: HashSet<String> = HashSet::new();
    let mut stack: Vec<(Group, String, u32)> = vec![(root, String::new(), 0)];
    let mut objects = 0u64;
    while let Some((group, path, depth)) = stack.pop() {
        if !cx.in_time() {
            return;
        }
        compact_external_links(cx, file, &group, &path, &mut reported_links, links);
        let (groups, datasets) = match group.members() {
            Ok(m) => m,
            Err(e) => {
                let shown = if path.is_empty() { "/" } else { &path[..] };
                cx.inconclusive(
                    &rules::UNPARSEABLE,
                    None,
                    format!("HDF5 group `{shown}` could not be listed: {e}"),
                );
                continue;
            }
        };
        objects = objects.saturating_add((groups.len() + datasets.len()) as u64);
        if objects > max_objects {
            cx.inconclusive(
                &rules::LIMIT_EXCEEDED,
                None,
                format!(
                    "HDF5 file holds more than {max_objects} objects; the rest was not inspected"
                ),
            );
            return;
        }
        for ds in datasets {
            if seen.insert(ds.address()) {
                external_data(
                    cx,
                    file,
                    &group,
                    ds.address(),
                    &format!("{path}/{}", ds.name()),
                );
            }
        }
        for child in groups {
            if !seen.insert(child.address()) {
                continue;
            }
            if depth + 1 > max_depth {
                cx.inconclusive(
                    &rules::LIMIT_EXCEEDED,
                    None,
                    format!("HDF5 groups nest deeper than {max_depth} levels; the rest was not inspected"),
                );
                return;
            }
            let child_path = format!("{path}/{}", child.name());
            stack.push((child, child_path, depth + 1));
        }
    }
    let asked = recorder.asked.lock().map(|a| a.clone()).unwrap_or_default();
    for filename in asked.into_iter().filter(|f| !reported_links.contains(f)) {
        cx.report_as(
            &rules::HDF5_EXTERNAL_LINK,
            links.verdict(&filename),
            None,
            format!("a link points into `{filename}`: following it opens that file"),
            Some(filename),
        );
    }
}

/// Reports external links stored in the group's own header (compact
/// storage), where the link name and target path are at hand.
fn compact_external_links(
    cx: &mut Ctx,
    file: &Hdf5File,
    group: &Group,
    path: &str,
    reported: &mut HashSet<String>,
    links: LinkContext,
) {
    let Ok(header) = file.get_or_parse_header(group.address()) else {
        return;
    };
    for msg in &header.messages {
        if let HdfMessage::Link(link) = msg
            && let LinkTarget::External {
                filename,
                path: target,
            } = &link.target
        {
            reported.insert(filename.clone());
            cx.report_as(
                &rules::HDF5_EXTERNAL_LINK,
                links.verdict(filename),
                None,
                format!(
                    "link `{path}/{}` points to `{target}` in `{filename}`: following it opens that file",
                    link.name
                ),
                Some(format!("{filename}:{target}")),
            );
        }
    }
}

/// Reports datasets whose raw data lives in external files.
fn external_data(cx: &mut Ctx, file: &Hdf5File, group: &Group, address: u64, path: &str) {
    let Ok(header) = file.get_or_parse_header(address) else {
        return;
    };
    for msg in &header.messages {
        let HdfMessage::ExternalFiles(efl) = msg else {
            continue;
        };
        let heap = LocalHeap::parse_at_storage(
            file.storage(),
            efl.heap_address,
            group.offset_size(),
            group.length_size(),
        );
        let names: Vec<String> = efl
            .slots
            .iter()
            .take(16)
            .map(|slot| {
                heap.as_ref()
                    .ok()
                    .and_then(|h| h.get_string_storage(slot.name_offset, file.storage()).ok())
                    .unwrap_or_else(|| "<unreadable name>".to_string())
            })
            .collect();
        cx.report(
            &rules::HDF5_EXTERNAL_DATA,
            None,
            format!(
                "dataset `{path}` reads its data from {} external file(s): loading it reads those files",
                efl.slots.len()
            ),
            Some(names.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileReport, Scanner, Verdict};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/rules");

    fn run(data: &[u8]) -> FileReport {
        let scanner = Scanner::default();
        let mut cx = Ctx::new(&scanner, None);
        scan(&mut cx, data);
        cx.finish("x.h5", data.len() as u64)
    }

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{rel}")).unwrap_or_default()
    }

    fn ids(r: &FileReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.rule.id).collect()
    }

    #[test]
    fn garbage_after_the_magic_is_inconclusive() {
        let mut data = b"\x89HDF\r\n\x1a\n".to_vec();
        data.extend_from_slice(&[0xFF; 64]);
        assert_eq!(ids(&run(&data)), ["GEN001"]);
        assert_eq!(ids(&run(b"\x89HDF\r\n\x1a\n")), ["GEN001"]);
    }

    #[test]
    fn links_to_sibling_files_are_info_outside_keras() {
        let plain = LinkContext { keras: false };
        assert_eq!(plain.verdict("elink2.h5"), Verdict::Info);
        for escaping in [
            "/etc/passwd",
            "../x.h5",
            "sub/x.h5",
            "C:x.h5",
            "\\\\host\\x",
            "~/x.h5",
            "..",
        ] {
            assert_eq!(plain.verdict(escaping), Verdict::Suspicious, "{escaping}");
        }
        assert_eq!(
            LinkContext { keras: true }.verdict("elink2.h5"),
            Verdict::Malicious
        );
    }

    #[test]
    fn external_links_compact_and_dense() {
        let r = run(&fixture("HDF001/bad_external_link.h5"));
        assert_eq!(ids(&r), ["HDF001"]);
        assert_eq!(r.findings[0].evidence.as_deref(), Some("/etc/passwd:/data"));
        // Outside a Keras model an external link is only suspicious ...
        assert_eq!(r.findings[0].verdict, Verdict::Suspicious);
        // ... inside one Keras follows it on load.
        let r = run(&fixture("HDF001/bad_keras_h5_external_link.h5"));
        assert!(
            r.findings
                .iter()
                .any(|f| f.rule.id == "HDF001" && f.verdict == Verdict::Malicious)
        );
        let r = run(&fixture("HDF001/bad_dense_external_link.h5"));
        assert_eq!(ids(&r), ["HDF001"]);
        assert!(
            run(&fixture("HDF001/good_soft_link.h5"))
                .findings
                .is_empty()
        );
    }

    #[test]
    fn external_data_files() {
        let r = run(&fixture("HDF002/bad_external_data_file.h5"));
        assert_eq!(ids(&r), ["HDF002"]);
        assert_eq!(r.findings[0].evidence.as_deref(), Some("kernel_data.raw"));
        assert!(
            run(&fixture("HDF002/good_contiguous_dataset.h5"))
                .findings
                .is_empty()
        );
    }

    #[test]
    fn keras_attributes_are_analysed_from_bytes_and_from_disk() {
        let path = format!("{FIXTURES}/KRS001/bad_tfkeras_lambda.h5");
        let data = fixture("KRS001/bad_tfkeras_lambda.h5");
        let from_bytes = Scanner::default().scan_bytes("m.h5", &data);
        let from_disk = Scanner::default().scan_file(std::path::Path::new(&path), "m.h5");
        for r in [Some(from_bytes), from_disk.ok()].into_iter().flatten() {
            assert_eq!(r.format, crate::Kind::KerasH5);
            assert_eq!(ids(&r), ["KRS001"]);
            assert_eq!(r.verdict, Verdict::Malicious);
        }
        let r =
            Scanner::default().scan_bytes("w.h5", &fixture("HDF002/good_contiguous_dataset.h5"));
        assert_eq!(r.format, crate::Kind::Hdf5);
        assert!(r.findings.is_empty());
        let r = run(&fixture("KRS002/good_builtin_loss.h5"));
        assert!(r.findings.is_empty(), "{:?}", r.findings);
    }

    #[test]
    fn truncated_and_mutated_files_never_panic() {
        let base = fixture("KRS001/bad_tfkeras_lambda.h5");
        assert!(!base.is_empty());
        for cut in (8..base.len()).step_by(97) {
            let r = run(&base[..cut]);
            assert_ne!(r.verdict, Verdict::Clean, "cut at {cut}");
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300 {
            let mut m = base.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
            }
            let _ = run(&m);
        }
    }
}
