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

/// Python's one-character string escapes (after the backslash), shared by
/// the readers of Python literals (`.npy` headers, as `ast.literal_eval`
/// reads them) and of Jinja2 string constants (decoded the same way):
/// `Some(None)` for a line continuation, `Some(Some(c))` for a character,
/// `None` for everything else (octal, hex, named, or kept as written).
pub(crate) fn python_simple_escape(c: char) -> Option<Option<char>> {
    Some(match c {
        '\n' => None,
        '\\' | '\'' | '"' => Some(c),
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => return None,
    })
}
