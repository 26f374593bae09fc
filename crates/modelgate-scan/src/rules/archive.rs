//! Rules about containers: zip, tar, 7z and compression wrappers.

use super::Rule;
use crate::finding::Verdict;

/// ARC001 (malicious): a compressed member expands far beyond any real model data.
pub static DECOMPRESSION_BOMB: Rule = Rule {
    id: "ARC001",
    name: "decompression-bomb",
    verdict: Verdict::Malicious,
    summary: "A compressed member expands far beyond any real model data",
    explanation: "A member whose uncompressed size is hundreds of times its compressed size, or \
        that would exceed the decompression budget, exists to exhaust the memory or disk of \
        whatever opens it (a loader, a scanner, an extraction step).",
    remediation: "Delete the file. Real checkpoints are stored uncompressed or compress by a \
        small factor.",
    references: &["https://en.wikipedia.org/wiki/Zip_bomb"],
};

/// ARC002 (suspicious): a zip member's local header and central directory disagree.
pub static ZIP_NAME_MISMATCH: Rule = Rule {
    id: "ARC002",
    name: "zip-header-mismatch",
    verdict: Verdict::Suspicious,
    summary: "A zip member's local header and central directory disagree",
    explanation: "The local file header names (or flags) a member differently from the central \
        directory. Python's zipfile refuses such archives while PyTorch's reader loads them, so \
        scanners built on zipfile have been bypassed this way (CVE-2025-1944).",
    remediation: "Do not load the file; re-export the checkpoint with torch.save or, better, \
        as safetensors.",
    references: &[
        "CVE-2025-1944",
        "https://github.com/protectai/modelscan/issues/263",
    ],
};

/// ARC003 (suspicious): a zip member carries flag bits or checksums that a loader ignores.
pub static ZIP_EVASION_FLAGS: Rule = Rule {
    id: "ARC003",
    name: "zip-evasion-flags",
    verdict: Verdict::Suspicious,
    summary: "A zip member carries flag bits or checksums that a loader ignores",
    explanation: "The member is marked encrypted (or with other general-purpose flags) while its \
        data is stored in clear, or its CRC does not match. PyTorch ignores both, Python's \
        zipfile refuses them: a known trick to make scanners error out while the model still \
        loads (CVE-2025-1945, CVE-2025-10156).",
    remediation: "Do not load the file; re-export it from a trusted source.",
    references: &["CVE-2025-1945", "CVE-2025-10156"],
};

/// ARC004 (malicious): an archive member's path escapes the extraction directory.
pub static ARCHIVE_PATH_TRAVERSAL: Rule = Rule {
    id: "ARC004",
    name: "archive-path-traversal",
    verdict: Verdict::Malicious,
    summary: "An archive member's path escapes the extraction directory",
    explanation: "Member names that are absolute, contain `..`, or are links pointing outside the \
        archive overwrite or expose arbitrary files when the archive is extracted (tar slip, zip \
        slip). Model archives have no reason to contain them.",
    remediation: "Do not extract the archive. Delete it or ask the publisher for a clean export.",
    references: &[
        "CVE-2024-5187",
        "https://snyk.io/research/zip-slip-vulnerability",
    ],
};

/// ARC005 (suspicious): two archive members have the same name.
pub static DUPLICATE_MEMBER: Rule = Rule {
    id: "ARC005",
    name: "duplicate-archive-member",
    verdict: Verdict::Suspicious,
    summary: "Two archive members have the same name",
    explanation: "Readers disagree on which copy wins (first or last), so a scanner and a loader \
        can look at different bytes under the same name.",
    remediation: "Re-create the archive from a clean export.",
    references: &[],
};

/// ARC006 (suspicious): zip readers disagree on what the archive contains.
pub static ZIP_READER_DISAGREEMENT: Rule = Rule {
    id: "ARC006",
    name: "zip-reader-disagreement",
    verdict: Verdict::Suspicious,
    summary: "Zip readers disagree on what the archive contains",
    explanation: "PyTorch reads zips with miniz; NumPy (np.load on .npz), Keras (.keras) and \
        joblib use Python's zipfile. They locate the central directory, ZIP64 records, prepended \
        data and member names differently (zipfile cuts names at a NUL, honours Unicode path \
        fields and always shifts offsets by the concatenation gap). An archive on which they \
        disagree (a member one reader lists and the other does not, or different bytes under the \
        same name) exists to show a scanner one face and a loader another. Every member either \
        reader would load is scanned.",
    remediation: "Do not load the file; re-create the archive with the framework's own save \
        function.",
    references: &[
        "https://github.com/python/cpython/blob/main/Lib/zipfile/__init__.py",
        "https://github.com/richgel999/miniz",
    ],
};

/// ARC007 (suspicious): a tar member's type flag makes readers disagree on what it holds.
pub static TAR_TYPE_AMBIGUITY: Rule = Rule {
    id: "ARC007",
    name: "tar-type-ambiguity",
    verdict: Verdict::Suspicious,
    summary: "A tar member's type flag makes readers disagree on what it holds",
    explanation: "Python's tarfile (and so torch.load on legacy tar checkpoints) reads members \
        with unknown type flags or CONTTYPE ('7') as regular files, and does not skip the data \
        blocks of directories, links or devices but parses them as further members. Scanners \
        built on other tar readers skip those bytes. The data is scanned as tarfile would read \
        it; the construction itself has no use in a model archive.",
    remediation: "Re-create the archive with a standard tar writer, or re-export the model.",
    references: &["https://github.com/python/cpython/blob/main/Lib/tarfile.py"],
};

pub(super) static RULES: &[&Rule] = &[
    &DECOMPRESSION_BOMB,
    &ZIP_NAME_MISMATCH,
    &ZIP_EVASION_FLAGS,
    &ARCHIVE_PATH_TRAVERSAL,
    &DUPLICATE_MEMBER,
    &ZIP_READER_DISAGREEMENT,
    &TAR_TYPE_AMBIGUITY,
];
