//! Parsers for model formats that are not containers. Each exposes
//! `scan(cx, data)` and reports into the [`Ctx`](super::Ctx).

pub mod gguf;
pub mod hdf5;
pub mod jinja;
pub mod keras;
pub mod numpy;
pub mod onnx;
pub mod protobuf;
pub mod safetensors;
pub mod savedmodel;
pub mod tflite;
pub mod torchscript;
