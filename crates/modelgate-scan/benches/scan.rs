//! Micro-benchmarks of the detection core's hot paths (divan):
//!
//! - the pickle walker on a large NumPy-style array pickle (one BINBYTES8
//!   payload: should cost the opcodes, not the bytes), on an opcode-heavy
//!   list of floats, and on many small state-dict pickles;
//! - zip central-directory reading on an archive of many small members;
//! - the header-only paths: a 1 GiB PyTorch zip and a 1 GiB safetensors
//!   file, as sparse files memory-mapped like `scan_file` does, so that any
//!   byte of tensor data touched shows up as page faults and time.
//!
//! `cargo bench` runs them all; throughput is reported in bytes per second.

use std::io::{Seek, SeekFrom, Write};

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use modelgate_scan::pickle::walker;
use modelgate_scan::{GlobalLists, Limits, Scanner};

fn main() {
    divan::main();
}

const MIB: usize = 1 << 20;

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn short_unicode(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// The opcodes NumPy emits for `pickle.dumps(np.zeros(n, 'f4'), 4)`.
fn array_pickle(nbytes: usize) -> Vec<u8> {
    let mut p = b"\x80\x04".to_vec();
    p.extend(global("numpy.core.multiarray", "_reconstruct"));
    p.extend(global("numpy", "ndarray"));
    p.extend_from_slice(b"K\x00\x85C\x01b\x87R(K\x01J");
    p.extend_from_slice(&((nbytes / 4) as i32).to_le_bytes());
    p.push(0x85);
    p.extend(global("numpy", "dtype"));
    p.extend(short_unicode("f4"));
    p.extend_from_slice(b"\x89\x88\x87R(K\x03");
    p.extend(short_unicode("<"));
    p.extend_from_slice(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89");
    p.push(0x8e);
    p.extend_from_slice(&(nbytes as u64).to_le_bytes());
    p.resize(p.len() + nbytes, 0);
    p.extend_from_slice(b"tb.");
    p
}

/// `pickle.dumps([float(i) for i in range(n)], 4)` without framing: one
/// BINFLOAT per element, APPENDS every 1000.
fn float_list_pickle(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x04]\x94".to_vec();
    for chunk in 0..n.div_ceil(1000) {
        p.push(b'(');
        for i in chunk * 1000..((chunk + 1) * 1000).min(n) {
            p.push(b'G');
            p.extend_from_slice(&(i as f64).to_be_bytes());
        }
        p.push(b'e');
    }
    p.push(b'.');
    p
}

/// A small `torch.save`-shaped state dict pickle.
fn small_state_dict(i: usize) -> Vec<u8> {
    let mut p = b"\x80\x02".to_vec();
    p.extend(global("collections", "OrderedDict"));
    p.extend_from_slice(b")R");
    let key = format!("layer{i}.weight");
    p.push(b'X');
    p.extend_from_slice(&(key.len() as u32).to_le_bytes());
    p.extend_from_slice(key.as_bytes());
    p.extend(global("torch._utils", "_rebuild_tensor_v2"));
    p.extend_from_slice(b"((X\x07\x00\x00\x00storage");
    p.extend(global("torch", "FloatStorage"));
    p.extend_from_slice(
        b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x10tQK\x00K\x04K\x04\x86K\x04K\x01\x86\x89",
    );
    p.extend(global("collections", "OrderedDict"));
    p.extend_from_slice(b")Rtq\x00Rs.");
    p
}

#[divan::bench(sample_count = 20)]
fn walker_large_array_pickle(bencher: Bencher) {
    let data = array_pickle(256 * MIB);
    let (limits, globals) = (Limits::default(), GlobalLists::default());
    bencher
        .counter(BytesCount::of_slice(&data))
        .bench(|| walker::walk(divan::black_box(&data), 0, &limits, &globals));
}

#[divan::bench(sample_count = 20)]
fn scan_large_array_pickle(bencher: Bencher) {
    let data = array_pickle(256 * MIB);
    let scanner = Scanner::default();
    bencher
        .counter(BytesCount::of_slice(&data))
        .bench(|| scanner.scan_bytes("array.pkl", divan::black_box(&data)));
}

#[divan::bench(sample_count = 10)]
fn walker_float_list_pickle(bencher: Bencher) {
    let data = float_list_pickle(1_000_000);
    let (limits, globals) = (Limits::default(), GlobalLists::default());
    bencher
        .counter(BytesCount::of_slice(&data))
        .bench(|| walker::walk(divan::black_box(&data), 0, &limits, &globals));
}

#[divan::bench(sample_count = 20)]
fn scan_many_small_pickles(bencher: Bencher) {
    let pickles: Vec<Vec<u8>> = (0..1000).map(small_state_dict).collect();
    let total: usize = pickles.iter().map(Vec::len).sum();
    let scanner = Scanner::default();
    bencher.counter(BytesCount::new(total)).bench(|| {
        for p in &pickles {
            divan::black_box(scanner.scan_bytes("model.pkl", p));
        }
    });
}

/// A stored zip of `n` small text members.
fn many_member_zip(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for i in 0..n {
        let name = format!("docs/file_{i:05}.txt");
        let data = format!("notes {i}\n").into_bytes();
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        let offset = out.len() as u32;
        let mut fields = Vec::new();
        fields.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        fields.extend_from_slice(&crc.sum().to_le_bytes());
        fields.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fields.extend_from_slice(&[0, 0]);
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&fields);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);
        central.extend_from_slice(b"PK\x01\x02\x14\x00");
        central.extend_from_slice(&fields);
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[divan::bench(sample_count = 20)]
fn zip_many_members(bencher: Bencher) {
    let data = many_member_zip(10_000);
    let scanner = Scanner::default();
    assert_parsed(&scanner.scan_bytes("archive.zip", &data), "zip");
    bencher
        .counter(ItemsCount::new(10_000usize))
        .bench(|| scanner.scan_bytes("archive.zip", divan::black_box(&data)));
}

/// Writes `header` then `hole` bytes of sparse zeros then `trailer` to a
/// temporary file and maps it.
fn sparse_map(header: &[u8], hole: u64, trailer: &[u8]) -> (tempfile::TempDir, memmap2::Mmap) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(header).expect("write");
    f.seek(SeekFrom::Current(hole as i64)).expect("seek");
    f.write_all(trailer).expect("write");
    drop(f);
    let f = std::fs::File::open(&path).expect("open");
    // SAFETY: the file is private to this benchmark and never modified.
    let map = unsafe { memmap2::Mmap::map(&f) }.expect("map");
    (dir, map)
}

const GIB: u64 = 1 << 30;

/// A benchmark input that fails to parse would measure the error path.
fn assert_parsed(r: &modelgate_scan::FileReport, format: &str) {
    assert_eq!(r.format.name(), format, "{r:#?}");
    assert!(
        r.verdict <= modelgate_scan::Verdict::Info,
        "benign input flagged: {r:#?}"
    );
}

#[divan::bench(sample_count = 50)]
fn safetensors_1gib_header_only(bencher: Bencher) {
    let mut header = format!(
        r#"{{"weight":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}},"__metadata__":{{"format":"pt"}}}}"#,
        GIB / 4,
        GIB
    )
    .into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    let (_dir, map) = sparse_map(&file, GIB - 1, &[0]);
    let scanner = Scanner::default();
    assert_parsed(
        &scanner.scan_bytes("model.safetensors", &map),
        "safetensors",
    );
    bencher.bench(|| scanner.scan_bytes("model.safetensors", divan::black_box(&map[..])));
}

#[divan::bench(sample_count = 50)]
fn pytorch_zip_1gib_header_only(bencher: Bencher) {
    // archive/data.pkl, then a 1 GiB stored storage, then the directory.
    let pkl = small_state_dict(0);
    let storage = GIB as u32;
    let members: [(&str, u32, u32); 2] = [
        ("archive/data.pkl", pkl.len() as u32, {
            let mut c = flate2::Crc::new();
            c.update(&pkl);
            c.sum()
        }),
        ("archive/data/0", storage, 0),
    ];
    let mut head = Vec::new();
    let mut central = Vec::new();
    let mut offset = 0u64;
    for (i, (name, size, crc)) in members.iter().enumerate() {
        let mut fields = Vec::new();
        fields.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        fields.extend_from_slice(&crc.to_le_bytes());
        fields.extend_from_slice(&size.to_le_bytes());
        fields.extend_from_slice(&size.to_le_bytes());
        fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fields.extend_from_slice(&[0, 0]);
        central.extend_from_slice(b"PK\x01\x02\x14\x00");
        central.extend_from_slice(&fields);
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        let mut local = b"PK\x03\x04".to_vec();
        local.extend_from_slice(&fields);
        local.extend_from_slice(name.as_bytes());
        offset += local.len() as u64 + u64::from(*size);
        head.extend_from_slice(&local);
        if i == 0 {
            head.extend_from_slice(&pkl);
        }
    }
    let mut trailer = central.clone();
    trailer.extend_from_slice(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
    trailer.extend_from_slice(&(central.len() as u32).to_le_bytes());
    trailer.extend_from_slice(&(offset as u32).to_le_bytes());
    trailer.extend_from_slice(&[0, 0]);
    let (_dir, map) = sparse_map(&head, u64::from(storage), &trailer);
    let scanner = Scanner::default();
    assert_parsed(&scanner.scan_bytes("model.pt", &map), "pytorch-zip");
    bencher.bench(|| scanner.scan_bytes("model.pt", divan::black_box(&map[..])));
}
