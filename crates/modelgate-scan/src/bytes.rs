//! Reading fixed-size little-endian records without indexing that could
//! panic: a record is taken whole (`record`) or not at all, and its fields
//! are read at offsets the compiler checks against the record's size.

/// A little-endian field at a constant offset of a fixed-size record
/// (`&[u8; N]`): an offset past the record's end does not compile, so reading
/// a field cannot fail once the record itself was read whole.
macro_rules! le {
    (u16, $rec:expr, $at:literal) => {
        u16::from_le_bytes([$rec[$at], $rec[$at + 1]])
    };
    (u32, $rec:expr, $at:literal) => {
        u32::from_le_bytes([$rec[$at], $rec[$at + 1], $rec[$at + 2], $rec[$at + 3]])
    };
    (u64, $rec:expr, $at:literal) => {
        u64::from_le_bytes([
            $rec[$at],
            $rec[$at + 1],
            $rec[$at + 2],
            $rec[$at + 3],
            $rec[$at + 4],
            $rec[$at + 5],
            $rec[$at + 6],
            $rec[$at + 7],
        ])
    };
}

/// The fixed-size record of `N` bytes at `at`, if the data holds it whole.
pub(crate) fn record<const N: usize>(data: &[u8], at: usize) -> Option<&[u8; N]> {
    data.get(at..)?.first_chunk()
}
