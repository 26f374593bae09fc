//! WIP
use crate::scan::{Ctx, Format};
pub fn scan(_cx: &mut Ctx, _data: &[u8], _f: Format) {}
