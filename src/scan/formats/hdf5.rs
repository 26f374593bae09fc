//! PLACEHOLDER: replaced by the format's parser.

use crate::scan::Ctx;

pub fn scan(_cx: &mut Ctx, _data: &[u8]) {}
