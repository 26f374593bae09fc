use super::*;
use crate::scan::Scanner;

const PICKLE_OS_SYSTEM: &[u8] =
    b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";

fn report() -> FileReport {
    Scanner::default().scan_bytes("model.pkl", PICKLE_OS_SYSTEM)
}

fn both() -> Vec<(tempfile::TempDir, Cache)> {
    [BackendKind::Sqlite, BackendKind::Dir]
        .into_iter()
        .map(|k| {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::open(dir.path(), Some(k)).unwrap();
            (dir, cache)
        })
        .collect()
}

fn key() -> CacheKey {
    CacheKey::new(
        &crate::digest::sha256_bytes(PICKLE_OS_SYSTEM),
        "model.pkl",
        "s",
    )
}

#[test]
fn round_trip_keeps_the_report() {
    let r = report();
    assert_eq!(r.verdict, Verdict::Malicious);
    for (_d, cache) in both() {
        assert!(matches!(cache.get(&key(), "x").unwrap(), Lookup::Miss));
        cache.put(&key(), &r).unwrap();
        let Lookup::Hit(back) = cache.get(&key(), "other/model.pkl").unwrap() else {
            panic!("miss after put")
        };
        assert_eq!(back.path, "other/model.pkl");
        assert_eq!(back.verdict, r.verdict);
        assert_eq!(back.status, r.status);
        let ids = |r: &FileReport| r.findings.iter().map(|f| f.rule.id).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&r));
    }
}

#[test]
fn other_settings_name_or_engine_miss() {
    for (_d, cache) in both() {
        cache.put(&key(), &report()).unwrap();
        let mut k = key();
        k.settings_digest = "t".into();
        assert!(matches!(cache.get(&k, "x").unwrap(), Lookup::Miss));
        let mut k = key();
        k.name = "model.json".into();
        assert!(matches!(cache.get(&k, "x").unwrap(), Lookup::Miss));
        let mut k = key();
        k.rules_digest = "0".repeat(32);
        assert!(matches!(cache.get(&k, "x").unwrap(), Lookup::Miss));
    }
}

/// Every way a stored entry can be damaged or forged reads as a miss.
#[test]
fn damaged_entries_are_rejected_never_trusted() {
    let r = report();
    let good = encode(&key(), &r);
    let body_start = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut flipped = good.clone();
    let at = body_start + (good.len() - body_start) / 2;
    flipped[at] ^= 0x20;
    // A record that checks out but says "clean" for a malicious file's
    // findings, or names a rule this build does not know.
    let forged = |edit: &dyn Fn(&str) -> String| {
        let body = std::str::from_utf8(&good[body_start..]).unwrap();
        let body = edit(body);
        let mut out = format!(
            "{ENTRY_MAGIC} {ENTRY_VERSION} {} {}\n",
            key().engine(),
            crate::digest::sha256_bytes(body.as_bytes())
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    };
    type Case<'a> = (&'a str, Vec<u8>, fn(&Rejected) -> bool);
    let cases: Vec<Case> = vec![
        ("truncated", good[..good.len() - 7].to_vec(), |w| {
            *w == Rejected::Checksum
        }),
        ("header only", good[..body_start].to_vec(), |w| {
            *w == Rejected::Checksum
        }),
        ("empty", Vec::new(), |w| *w == Rejected::Header),
        ("bit flip", flipped, |w| *w == Rejected::Checksum),
        (
            "other layout",
            String::from_utf8_lossy(&good)
                .replacen(" 1 ", " 2 ", 1)
                .into_bytes(),
            |w| *w == Rejected::Header,
        ),
        (
            "unknown verdict",
            forged(&|b| b.replace("\"malicious\"", "\"benign\"")),
            |w| matches!(w, Rejected::Body(_)),
        ),
        (
            "verdict not the worst finding's",
            forged(&|b| b.replacen("\"verdict\":\"malicious\"", "\"verdict\":\"clean\"", 1)),
            |w| *w == Rejected::Content,
        ),
        (
            "unknown rule",
            forged(&|b| b.replace("\"PKL", "\"ZZZ")),
            |w| *w == Rejected::Content,
        ),
        (
            "unknown format",
            forged(&|b| b.replacen("\"format\":\"pickle\"", "\"format\":\"pickel\"", 1)),
            |w| matches!(w, Rejected::Body(_)),
        ),
        (
            "unknown field",
            forged(&|b| b.replacen("{\"key\"", "{\"allow\":true,\"key\"", 1)),
            |w| matches!(w, Rejected::Body(_)),
        ),
    ];
    for (name, bytes, expected) in cases {
        for (_d, cache) in both() {
            cache.store.put(&key().id(), &bytes).unwrap();
            match cache.get(&key(), "x").unwrap() {
                Lookup::Rejected(why) => assert!(expected(&why), "{name}: {why:?}"),
                other => panic!("{name}: {other:?}"),
            }
            // The scan that follows rewrites the entry.
            cache.put(&key(), &r).unwrap();
            assert!(
                matches!(cache.get(&key(), "x").unwrap(), Lookup::Hit(_)),
                "{name}"
            );
        }
    }
}

#[test]
fn an_entry_stored_under_another_key_is_not_used() {
    for (_d, cache) in both() {
        let mut other = key();
        other.sha256 = "0".repeat(64);
        cache
            .store
            .put(&key().id(), &encode(&other, &report()))
            .unwrap();
        assert!(matches!(
            cache.get(&key(), "x").unwrap(),
            Lookup::Rejected(Rejected::OtherKey)
        ));
    }
}

#[test]
fn stats_and_prune() {
    for (_d, cache) in both() {
        cache.put(&key(), &report()).unwrap();
        let mut stale = key();
        stale.version = "0.0.0".into();
        cache.put(&stale, &report()).unwrap();
        let s = cache.stats().unwrap();
        assert_eq!((s.entries, s.current, s.stale), (2, 1, 1));
        assert_eq!(cache.prune(None, false).unwrap(), 1);
        assert_eq!(cache.stats().unwrap().entries, 1);
        assert_eq!(cache.prune(None, true).unwrap(), 1);
        assert_eq!(cache.stats().unwrap().entries, 0);
    }
}

#[test]
fn a_directory_keeps_its_backend() {
    let dir = tempfile::tempdir().unwrap();
    Cache::open(dir.path(), Some(BackendKind::Dir)).unwrap();
    assert_eq!(
        Cache::open(dir.path(), None).unwrap().kind(),
        BackendKind::Dir
    );
    assert!(matches!(
        Cache::open(dir.path(), Some(BackendKind::Sqlite)),
        Err(CacheError::BackendMismatch { .. })
    ));
}

#[test]
fn cached_scanner_skips_the_file_for_a_known_claim() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("c"), None).unwrap();
    let cs = CachedScanner::new(Scanner::default(), Some(cache), "s".into());
    let file = dir.path().join("model.pkl");
    std::fs::write(&file, PICKLE_OS_SYSTEM).unwrap();
    let first = cs.scan_file(&file, "model.pkl", None).unwrap();
    assert!(!first.cached);
    let sha = first.sha256.clone();
    std::fs::remove_file(&file).unwrap();
    // Not opened: the file is gone and the cached report still comes back.
    let second = cs.scan_file(&file, "model.pkl", Some(&sha)).unwrap();
    assert!(second.cached);
    assert_eq!(second.report.verdict, Verdict::Malicious);
    // A wrong claim the cache does not know is scanned and reported,
    // never trusted.
    std::fs::write(&file, PICKLE_OS_SYSTEM).unwrap();
    let wrong = "ab".repeat(32);
    let third = cs.scan_file(&file, "model.pkl", Some(&wrong)).unwrap();
    assert!(!third.cached);
    assert_eq!(third.claimed_sha256.as_deref(), Some(wrong.as_str()));
    assert_eq!(third.sha256, sha);
    assert_eq!(third.report.verdict, Verdict::Malicious);
}
