//! A 1 GB checkpoint costs its pickle and headers, not its tensors: scanning
//! a PyTorch zip with a 1 GiB storage member (a sparse file) must touch only
//! a handful of pages. Measured as page faults of this process, which is
//! deterministic where wall-clock time is not.

use std::io::{Seek, SeekFrom, Write};

use modelgate::scan::{Scanner, Verdict};

const GIB: u64 = 1 << 30;

fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Field 10 (minflt), counted after the parenthesised command name.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(7).unwrap().parse().unwrap()
}

fn local_header(name: &[u8], size: u32, crc: u32) -> Vec<u8> {
    let mut h = b"PK\x03\x04".to_vec();
    h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(name);
    h
}

fn central_header(name: &[u8], size: u32, crc: u32, offset: u32) -> Vec<u8> {
    let mut h = b"PK\x01\x02".to_vec();
    h.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&[0; 12]);
    h.extend_from_slice(&offset.to_le_bytes());
    h.extend_from_slice(name);
    h
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

#[test]
fn one_gib_torch_zip_reads_only_its_pickle() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.pt");
    let mut f = std::fs::File::create(&path).unwrap();
    // data.pkl: an OrderedDict with one tensor rebuilt from storage "0".
    let pkl: &[u8] = b"\x80\x02ccollections\nOrderedDict\n)R.";
    let storage_size = (GIB - 4096) as u32;
    let mut offset = 0u32;
    let mut central = Vec::new();
    for (name, data_len, crc) in [
        (&b"archive/data.pkl"[..], pkl.len() as u32, crc32(pkl)),
        (b"archive/data/0", storage_size, 0),
    ] {
        let header = local_header(name, data_len, crc);
        f.write_all(&header).unwrap();
        if name.ends_with(b".pkl") {
            f.write_all(pkl).unwrap();
        } else {
            f.seek(SeekFrom::Current(i64::from(data_len))).unwrap(); // a hole: no disk, no pages
        }
        central.extend(central_header(name, data_len, crc, offset));
        offset += header.len() as u32 + data_len;
    }
    f.write_all(&central).unwrap();
    let mut eocd = b"PK\x05\x06\0\0\0\0\x02\0\x02\0".to_vec();
    eocd.extend_from_slice(&(central.len() as u32).to_le_bytes());
    eocd.extend_from_slice(&offset.to_le_bytes());
    eocd.extend_from_slice(&[0, 0]);
    f.write_all(&eocd).unwrap();
    drop(f);
    assert!(std::fs::metadata(&path).unwrap().len() > GIB - 8192);

    let scanner = Scanner::default();
    let before = minor_faults();
    let report = scanner.scan_file(&path, "big.pt").unwrap();
    let faults = minor_faults() - before;

    assert_eq!(report.verdict, Verdict::Clean, "{:#?}", report.findings);
    assert_eq!(report.format, modelgate::scan::Kind::PytorchZip);
    // 1 GiB is 262,144 pages; reading it would fault on each of them.
    assert!(faults < 2_000, "scan touched {faults} pages");
}
