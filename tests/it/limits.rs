//! Resource-limit attacks end as findings, quickly and in bounded memory.
//!
//! Memory is measured as the growth of this process's peak resident set
//! (`VmHWM`) across the scan, after resetting the peak with
//! `/proc/self/clear_refs` (Linux ≥ 4.0). Tests run one at a time (a lock)
//! so that one test's allocations do not show up in another's peak. Wall
//! time is only checked against a generous bound that catches hangs.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use modelgate::scan::{FileReport, Limits, ScanConfig, Scanner, Verdict};

static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;
/// Peak-RSS growth allowed for one hostile scan. The defaults would let a
/// scanner buffer up to 1 GiB of decompressed data; none of these attacks
/// may get anywhere near that.
const MAX_PEAK_GROWTH: u64 = 64 * MIB;
/// Only a hang guard: each of these scans takes milliseconds.
const HANG_GUARD: Duration = Duration::from_secs(5);

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Scans `data` and returns the report with the peak-RSS growth in bytes
/// (`None` where the kernel cannot reset the peak).
fn measured_scan(scanner: &Scanner, name: &str, data: &[u8]) -> (FileReport, Option<u64>) {
    let reset = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok();
    let before = status_kib("VmHWM:");
    let started = Instant::now();
    let report = scanner.scan_bytes(name, data);
    let elapsed = started.elapsed();
    let after = status_kib("VmHWM:");
    assert!(
        elapsed < HANG_GUARD,
        "{name}: scan took {elapsed:?} (hang guard)"
    );
    let growth = match (reset, before, after) {
        (true, Some(b), Some(a)) => Some(a.saturating_sub(b) * 1024),
        _ => None,
    };
    eprintln!("{name}: {elapsed:?}, peak RSS growth {growth:?} bytes");
    (report, growth)
}

fn assert_bounded(name: &str, growth: Option<u64>) {
    if let Some(g) = growth {
        assert!(
            g <= MAX_PEAK_GROWTH,
            "{name}: peak RSS grew by {} MiB",
            g / MIB
        );
    }
}

fn has_finding(r: &FileReport, rule: &str) -> bool {
    r.findings.iter().any(|f| f.rule.id == rule)
}

fn deflate(data_len: u64) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; MIB as usize];
    let mut left = data_len;
    while left > 0 {
        let n = left.min(MIB);
        enc.write_all(&block[..n as usize]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

struct Member<'a> {
    name: &'a str,
    method: u16,
    crc: u32,
    compressed: &'a [u8],
    uncompressed: u32,
}

/// A minimal zip writer: local headers, central directory, end record.
fn zip(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let offset = out.len() as u32;
        for (sig, is_central) in [(&b"PK\x03\x04"[..], false), (&b"PK\x01\x02"[..], true)] {
            let h = if is_central { &mut central } else { &mut out };
            h.extend_from_slice(sig);
            if is_central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&m.method.to_le_bytes());
            h.extend_from_slice(&[0; 4]); // time, date
            h.extend_from_slice(&m.crc.to_le_bytes());
            h.extend_from_slice(&(m.compressed.len() as u32).to_le_bytes());
            h.extend_from_slice(&m.uncompressed.to_le_bytes());
            h.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if is_central {
                h.extend_from_slice(&[0; 6]); // comment length, disk, internal attrs
                h.extend_from_slice(&[0; 4]); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(m.name.as_bytes());
        }
        out.extend_from_slice(m.compressed);
    }
    let cd_offset = out.len() as u32;
    let n = members.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

fn zeros_crc(len: u64) -> u32 {
    let mut c = flate2::Crc::new();
    let block = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        c.update(&block[..n as usize]);
        left -= n;
    }
    c.sum()
}

#[test]
fn zip_bomb_that_declares_its_size_is_reported_without_inflating() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let size = 128 * MIB;
    let compressed = deflate(size);
    let data = zip(&[Member {
        name: "archive/data.pkl",
        method: 8,
        crc: zeros_crc(size),
        compressed: &compressed,
        uncompressed: size as u32,
    }]);
    let (r, growth) = measured_scan(&Scanner::default(), "bomb.zip", &data);
    assert!(has_finding(&r, "ARC001"), "{r:#?}");
    assert_eq!(r.verdict, Verdict::Malicious);
    assert_bounded("bomb.zip", growth);
}

#[test]
fn zip_bomb_that_lies_about_its_size_stops_at_the_declared_size() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let size = 128 * MIB;
    let compressed = deflate(size);
    let data = zip(&[Member {
        name: "weights.bin",
        method: 8,
        crc: 0,
        compressed: &compressed,
        uncompressed: 4096,
    }]);
    let (r, growth) = measured_scan(&Scanner::default(), "liar.zip", &data);
    assert!(has_finding(&r, "ARC001"), "{r:#?}");
    assert_bounded("liar.zip", growth);
}

#[test]
fn gzip_bomb_is_reported_in_bounded_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A bare compressed stream declares no size: only the running ratio can
    // tell a bomb before the whole 1 GiB budget is spent.
    let size = 512 * MIB;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        enc.write_all(&block).unwrap();
    }
    let data = enc.finish().unwrap();
    let (r, growth) = measured_scan(&Scanner::default(), "model.pkl.gz", &data);
    assert!(has_finding(&r, "ARC001"), "{r:#?}");
    assert!(r.verdict >= Verdict::Suspicious);
    // Output stops once it outgrows the ratio limit: memory is bounded by
    // ratio × compressed size (and by the decompression budget), not by
    // what the bomb would expand to. Vec doubling may hold twice that.
    let bound = 2 * Limits::default().max_compression_ratio * data.len() as u64 + 32 * MIB;
    if let Some(g) = growth {
        assert!(g <= bound, "peak RSS grew by {} MiB", g / MIB);
        assert!(g < size / 2, "the bomb was inflated");
    }
}

#[test]
fn deeply_nested_archive_is_cut_at_the_nesting_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut data = b"\x80\x02ccollections\nOrderedDict\n)R.".to_vec();
    let mut name = "data.pkl".to_string();
    for level in 0..40 {
        let wrapped = zip(&[Member {
            name: &name,
            method: 0,
            crc: crc32(&data),
            compressed: &data,
            uncompressed: data.len() as u32,
        }]);
        data = wrapped;
        name = format!("level{level}.zip");
    }
    let (r, growth) = measured_scan(&Scanner::default(), "tower.zip", &data);
    assert!(has_finding(&r, "GEN002"), "{r:#?}");
    assert!(r.verdict >= Verdict::Suspicious);
    let deepest = r
        .findings
        .iter()
        .map(|f| f.location.members.len())
        .max()
        .unwrap_or(0);
    assert!(deepest <= Limits::default().max_nesting_depth as usize);
    assert_bounded("tower.zip", growth);
}

#[test]
fn pickle_declaring_a_billion_element_length_is_a_finding_not_an_allocation() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let billion: u64 = 1_000_000_000;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // BINBYTES8, BINUNICODE8, BYTEARRAY8 with 8-byte lengths, then almost no data.
    for (name, op) in [
        ("binbytes8.pkl", 0x8eu8),
        ("binunicode8.pkl", 0x8d),
        ("bytearray8.pkl", 0x96),
    ] {
        let mut p = b"\x80\x05".to_vec();
        p.push(op);
        p.extend_from_slice(&billion.to_le_bytes());
        p.extend_from_slice(b"abc.");
        cases.push((name, p));
    }
    // BINBYTES / BINUNICODE / LONG4 with 4-byte lengths.
    for (name, op) in [
        ("binbytes.pkl", b'B'),
        ("binunicode.pkl", b'X'),
        ("long4.pkl", 0x8b),
    ] {
        let mut p = b"\x80\x02".to_vec();
        p.push(op);
        p.extend_from_slice(&(billion as u32).to_le_bytes());
        p.extend_from_slice(b"abc.");
        cases.push((name, p));
    }

    for (name, data) in &cases {
        let (r, growth) = measured_scan(&Scanner::default(), name, data);
        assert!(
            r.verdict >= Verdict::Suspicious,
            "{name}: a truncated stream is never a pass: {r:#?}"
        );
        assert!(
            has_finding(&r, "PKL006") || has_finding(&r, "GEN001") || has_finding(&r, "GEN002"),
            "{name}: {r:#?}"
        );
        assert_bounded(name, growth);
    }

    // A FRAME announcing a billion bytes: frames are only read-ahead hints
    // to the walker, so nothing is allocated. (CPython refuses the file
    // before running anything: "pickle data was truncated".)
    let mut frame = b"\x80\x04\x95".to_vec();
    frame.extend_from_slice(&billion.to_le_bytes());
    frame.extend_from_slice(b"N.");
    let (_, growth) = measured_scan(&Scanner::default(), "frame.pkl", &frame);
    assert_bounded("frame.pkl", growth);
}

#[test]
fn limits_are_tunable_from_a_policy_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limits: Limits =
        toml::from_str("max-nesting-depth = 2\nmax-pickle-opcodes = 100\n").unwrap();
    assert_eq!(limits.max_nesting_depth, 2);
    assert_eq!(limits.max_pickle_opcodes, 100);
    // Fields not named keep their defaults; unknown ones are refused.
    assert_eq!(
        limits.max_decompressed_bytes,
        Limits::default().max_decompressed_bytes
    );
    assert!(toml::from_str::<Limits>("max-nesting-dept = 2").is_err());

    let scanner = Scanner::new(ScanConfig {
        limits,
        ..ScanConfig::default()
    });
    // 200 NONE/POP pairs: fine by default, over a 100-opcode budget.
    let mut p = b"\x80\x02".to_vec();
    for _ in 0..200 {
        p.extend_from_slice(b"N0");
    }
    p.extend_from_slice(b"N.");
    let r = Scanner::default().scan_bytes("ok.pkl", &p);
    assert!(!has_finding(&r, "GEN002"), "{r:#?}");
    let r = scanner.scan_bytes("spin.pkl", &p);
    assert!(has_finding(&r, "GEN002"), "{r:#?}");
}

#[test]
fn gguf_declaring_2_pow_60_tensors_is_a_finding_not_an_allocation() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (name, tensors, kvs) in [
        ("tensors.gguf", 1u64 << 60, 0u64),
        ("kvs.gguf", 0, 1u64 << 60),
    ] {
        let mut g = b"GGUF".to_vec();
        g.extend_from_slice(&3u32.to_le_bytes());
        g.extend_from_slice(&tensors.to_le_bytes());
        g.extend_from_slice(&kvs.to_le_bytes());
        g.extend_from_slice(&[0u8; 64]);
        let (r, growth) = measured_scan(&Scanner::default(), name, &g);
        assert!(r.verdict >= Verdict::Suspicious, "{name}: {r:#?}");
        assert!(!r.findings.is_empty());
        assert_bounded(name, growth);
    }
}
