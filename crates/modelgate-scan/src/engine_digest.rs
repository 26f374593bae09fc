//! The identity of the detection logic, for caches of verdicts.
//!
//! A verdict cached under one digest is only valid for the same rules,
//! parsers and data tables: `build.rs` hashes every file under the core crate's `src`
//! (rule registry, parsers, the TSV tables under `scan/data`) at build time,
//! so editing any of them changes the key and every cached verdict is a
//! miss. Adapters (the daemon's scan cache, and any later one) key their
//! caches with [`ENGINE_DIGEST`] rather than the crate version.

include!(concat!(env!("OUT_DIR"), "/engine_digest.rs"));

#[cfg(test)]
mod tests {
    #[test]
    fn digest_is_128_bit_hex() {
        assert_eq!(super::ENGINE_DIGEST.len(), 32);
        assert!(super::ENGINE_DIGEST.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
