//! WIP
use crate::scan::Ctx;
pub fn scan(_cx: &mut Ctx, _data: &[u8]) {}
