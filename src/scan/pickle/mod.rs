//! WIP
pub mod globals;
use crate::scan::Ctx;
pub fn scan(_cx: &mut Ctx, _data: &[u8]) {}
pub fn looks_like_pickle(data: &[u8]) -> bool { data.len() > 2 && data[0] == 0x80 && data[1] <= 5 }
