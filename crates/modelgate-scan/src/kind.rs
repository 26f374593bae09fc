//! The names of the formats a report can carry, from one table.
//!
//! [`Format`] is what the sniffer can tell from the first bytes; a parser
//! then often knows more (a zip is a PyTorch checkpoint, an HDF5 file is a
//! Keras model) and names the file by a [`Kind`]. Every name a report,
//! a policy's `require-format` or a cache row uses comes from the table
//! below, so the core, the policy checker and serde cannot disagree.

use crate::sniff::Format;

macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// What a scanned file is, as precisely as the scan could tell.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum Kind {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Kind {
            /// Every kind, in table order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The name reports, policies and caches use.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// The kind with this name; `None` for a name the scanner never
            /// reports (a typo in a policy, a row written by another version).
            pub fn from_name(name: &str) -> Option<Kind> {
                match name {
                    $($name => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// A zip archive with no model layout.
    Zip => "zip",
    /// A tar archive.
    Tar => "tar",
    /// A gzip stream.
    Gzip => "gzip",
    /// A bzip2 stream.
    Bzip2 => "bzip2",
    /// An xz stream.
    Xz => "xz",
    /// A raw LZMA ("alone") stream.
    Lzma => "lzma",
    /// A zlib stream.
    Zlib => "zlib",
    /// A zstd frame.
    Zstd => "zstd",
    /// An LZ4 frame.
    Lz4 => "lz4",
    /// joblib's pre-0.10 `ZF` container.
    ZFile => "joblib-zfile",
    /// A 7z archive.
    SevenZ => "7z",
    /// A bare pickle stream.
    Pickle => "pickle",
    /// A NumPy `.npy` array.
    Numpy => "numpy",
    /// An HDF5 file with no Keras model in it.
    Hdf5 => "hdf5",
    /// A little-endian GGUF file.
    Gguf => "gguf",
    /// A safetensors file.
    Safetensors => "safetensors",
    /// A TensorFlow Lite flatbuffer.
    TfLite => "tflite",
    /// An ONNX model.
    Onnx => "onnx",
    /// A TensorFlow SavedModel (directory or `saved_model.pb`).
    SavedModel => "savedmodel",
    /// A modelgate quarantine tombstone.
    Tombstone => "modelgate-tombstone",
    /// Text, not a model format.
    Text => "text",
    /// An image, not a model format.
    Image => "image",
    /// No format recognised.
    Unknown => "unknown",
    /// A PyTorch zip checkpoint (`torch.save` since 1.6).
    PytorchZip => "pytorch-zip",
    /// A PyTorch checkpoint of the legacy (pre-1.6) pickle or tar layout.
    PytorchLegacy => "pytorch-legacy",
    /// A Keras v3 `.keras` zip.
    KerasV3 => "keras-v3",
    /// A Keras HDF5 model (`.h5`).
    KerasH5 => "keras-h5",
    /// A NumPy `.npz` zip of arrays.
    Npz => "npz",
    /// A joblib pickle (NumPy arrays stored after their pickle).
    Joblib => "joblib",
    /// A big-endian GGUF file.
    GgufBigEndian => "gguf-big-endian",
}

impl From<Format> for Kind {
    fn from(format: Format) -> Kind {
        match format {
            Format::Zip => Kind::Zip,
            Format::Tar => Kind::Tar,
            Format::Gzip => Kind::Gzip,
            Format::Bzip2 => Kind::Bzip2,
            Format::Xz => Kind::Xz,
            Format::Lzma => Kind::Lzma,
            Format::Zlib => Kind::Zlib,
            Format::Zstd => Kind::Zstd,
            Format::Lz4 => Kind::Lz4,
            Format::ZFile => Kind::ZFile,
            Format::SevenZ => Kind::SevenZ,
            Format::Pickle => Kind::Pickle,
            Format::Numpy => Kind::Numpy,
            Format::Hdf5 => Kind::Hdf5,
            Format::Gguf => Kind::Gguf,
            Format::Safetensors => Kind::Safetensors,
            Format::TfLite => Kind::TfLite,
            Format::Onnx => Kind::Onnx,
            Format::SavedModel => Kind::SavedModel,
            Format::Tombstone => Kind::Tombstone,
            Format::Text => Kind::Text,
            Format::Image => Kind::Image,
            Format::Unknown => Kind::Unknown,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &k in Kind::ALL {
            assert!(seen.insert(k.name()), "duplicate name {}", k.name());
            assert_eq!(Kind::from_name(k.name()), Some(k));
            let json = serde_json::to_string(&k).expect("serializes");
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).expect("parses"), k);
        }
        assert_eq!(Kind::from_name("pytorch"), None);
    }
}
