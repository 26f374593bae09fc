//! PLACEHOLDER: replaced by the Keras config analysis.

use crate::scan::Ctx;

/// Analyses a Keras model config (the `config.json` of a `.keras` zip, or the
/// `model_config` attribute of an H5 file).
pub fn scan_config(_cx: &mut Ctx, _json: &[u8]) {}
