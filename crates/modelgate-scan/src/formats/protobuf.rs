//! A zero-copy walker over the protobuf wire format, shared by the ONNX and
//! TensorFlow parsers.
//!
//! ONNX models and SavedModels are protobuf messages without a magic number.
//! Generated bindings (prost, rust-protobuf) would decode every field into
//! owned structures, allocating from lengths the file declares; this walker
//! instead yields one field at a time as a borrowed view of the input, so
//! that a parser reads only the handful of fields its checks need
//! (`node.op_type`, `external_data`, `NodeDef.op`, …) and skips the rest,
//! tensor payloads included, without copying them.
//!
//! What it refuses to do: it never allocates from a declared length (a
//! length-delimited field is a sub-slice of the input, checked against what
//! is left), never recurses (nesting is driven by the caller, which caps it
//! with `Limits::max_structure_depth`), never panics, and never guesses: a
//! varint longer than 10 bytes, a length past the end of its message, a
//! reserved wire type or an unbalanced group is an [`Error`] carrying the
//! absolute byte offset where the input broke.
//!
//! Groups (wire types 3 and 4, deprecated since proto2) appear in none of the
//! schemas read here, but protobuf runtimes skip them as unknown fields, so
//! the walker skips them too (with a bounded stack of open group numbers)
//! rather than declaring a loadable file broken.
//!
//! Spec: <https://protobuf.dev/programming-guides/encoding/>

use std::fmt;

/// The wire-format problem at a byte offset of the outermost buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Absolute offset of the byte where reading failed.
    pub offset: u64,
    /// What was wrong there (truncated varint, bad wire type…).
    pub reason: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid protobuf at byte {}: {}",
            self.offset, self.reason
        )
    }
}

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0: an integer, bool or enum, still zigzag- or
    /// two's-complement-encoded as the schema says.
    Varint(u64),
    /// Wire type 1: eight little-endian bytes (`fixed64`, `double`…).
    Fixed64(u64),
    /// Wire type 5: four little-endian bytes (`fixed32`, `float`…).
    Fixed32(u32),
    /// A length-delimited payload (string, bytes, sub-message or packed
    /// repeated scalars) and the absolute offset of its first byte.
    Bytes(&'a [u8], u64),
}

/// One field of a message: its number, its payload and the absolute offset
/// of its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field number from the schema.
    pub number: u64,
    /// Its payload.
    pub value: Value<'a>,
    /// Absolute offset of its tag.
    pub offset: u64,
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field, if it is one.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b, _) => Some(b),
            _ => None,
        }
    }

    /// The payload as a sub-message to walk.
    pub fn message(&self) -> Option<Message<'a>> {
        match self.value {
            Value::Bytes(b, at) => Some(Message::at(b, at)),
            _ => None,
        }
    }

    /// The payload of a varint field, if it is one.
    pub fn varint(&self) -> Option<u64> {
        match self.value {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }

    /// The payload as text, lossily decoded (names in these schemas are
    /// `string` fields; invalid UTF-8 is shown, not trusted).
    pub fn text(&self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// A message: a byte range and where it sits in the outermost buffer.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    data: &'a [u8],
    base: u64,
}

impl<'a> Message<'a> {
    /// A top-level message spanning `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Message { data, base: 0 }
    }

    /// A message whose first byte is at absolute offset `base`.
    pub fn at(data: &'a [u8], base: u64) -> Self {
        Message { data, base }
    }

    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the message has no bytes (every field at its default).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Absolute offset of the message's first byte.
    pub fn offset(&self) -> u64 {
        self.base
    }

    /// The fields in wire order; iteration stops after the first error.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            data: self.data,
            pos: 0,
            base: self.base,
            failed: false,
        }
    }

    /// Checks that the whole message is well-formed at the top level
    /// (sub-messages are not entered).
    pub fn validate(&self) -> Result<(), Error> {
        self.fields().try_for_each(|f| f.map(|_| ()))
    }
}

/// Iterator over the fields of one message. After the first error it yields
/// nothing more: a broken length makes every later byte meaningless.
pub struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    failed: bool,
}

/// Open groups tolerated inside one group before the input is refused. Real
/// encoders never nest groups at all.
const MAX_GROUP_DEPTH: usize = 64;

impl<'a> Fields<'a> {
    fn err(&mut self, at: usize, reason: &'static str) -> Error {
        self.failed = true;
        Error {
            offset: self.base.saturating_add(at as u64),
            reason,
        }
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err(start, "varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64, start: usize, reason: &'static str) -> Result<&'a [u8], Error> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n));
        match end.and_then(|end| self.data.get(self.pos..end).map(|s| (s, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.err(start, reason)),
        }
    }

    fn read_value(&mut self, wire: u64, tag_at: usize) -> Result<Option<Value<'a>>, Error> {
        Ok(Some(match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8, tag_at, "truncated fixed64")?;
                Value::Fixed64(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
            }
            5 => {
                let b = self.take(4, tag_at, "truncated fixed32")?;
                Value::Fixed32(b.iter().rev().fold(0u32, |acc, &x| acc << 8 | u32::from(x)))
            }
            2 => {
                let len = self.varint()?;
                let at = self.pos;
                let b = self.take(
                    len,
                    tag_at,
                    "length-delimited field runs past the end of its message",
                )?;
                Value::Bytes(b, self.base.saturating_add(at as u64))
            }
            3 => {
                self.skip_group(tag_at)?;
                return Ok(None);
            }
            4 => return Err(self.err(tag_at, "end-group without a matching start-group")),
            _ => return Err(self.err(tag_at, "reserved wire type")),
        }))
    }

    /// Skips a group whose start tag has been read, including nested groups.
    fn skip_group(&mut self, start: usize) -> Result<(), Error> {
        let mut open: Vec<u64> = vec![self.last_number(start)?];
        while let Some(&want) = open.last() {
            let tag_at = self.pos;
            if tag_at >= self.data.len() {
                return Err(self.err(start, "group is never closed"));
            }
            let key = self.varint()?;
            let (number, wire) = (key >> 3, key & 7);
            match wire {
                3 => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return Err(self.err(tag_at, "groups nested too deeply"));
                    }
                    open.push(number);
                }
                4 if number == want => {
                    open.pop();
                }
                4 => return Err(self.err(tag_at, "end-group does not match its start-group")),
                _ => {
                    self.read_value(wire, tag_at)?;
                }
            }
        }
        Ok(())
    }

    /// Re-reads the field number of the tag at `at` (used for groups).
    fn last_number(&mut self, at: usize) -> Result<u64, Error> {
        let saved = self.pos;
        self.pos = at;
        let key = self.varint();
        self.pos = saved;
        Ok(key? >> 3)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.pos < self.data.len() {
            let tag_at = self.pos;
            let key = match self.varint() {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            let number = key >> 3;
            if number == 0 {
                return Some(Err(self.err(tag_at, "field number 0")));
            }
            match self.read_value(key & 7, tag_at) {
                Ok(Some(value)) => {
                    let offset = self.base.saturating_add(tag_at as u64);
                    return Some(Ok(Field {
                        number,
                        value,
                        offset,
                    }));
                }
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

/// Encoding helpers for in-crate tests that build messages by hand.
#[cfg(test)]
pub(crate) mod enc {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    pub fn int(field: u64, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3, &mut out);
        varint(v, &mut out);
        out
    }

    pub fn bytes(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | 2, &mut out);
        varint(payload.len() as u64, &mut out);
        out.extend_from_slice(payload);
        out
    }

    pub fn msg(field: u64, parts: &[Vec<u8>]) -> Vec<u8> {
        bytes(field, &parts.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::enc::*;
    use super::*;

    fn collect(data: &[u8]) -> Vec<Result<Field<'_>, Error>> {
        Message::new(data).fields().collect()
    }

    #[test]
    fn reads_every_wire_type_with_offsets() {
        let mut data = int(1, 300);
        data.extend(bytes(2, b"abc"));
        data.extend([0x19, 1, 0, 0, 0, 0, 0, 0, 0]); // field 3 fixed64 = 1
        data.extend([0x25, 2, 0, 0, 0]); // field 4 fixed32 = 2
        let fields: Vec<_> = collect(&data).into_iter().map(Result::unwrap).collect();
        assert_eq!(fields[0].varint(), Some(300));
        assert_eq!(fields[1].bytes(), Some(&b"abc"[..]));
        assert_eq!(fields[1].offset, 3);
        assert_eq!(fields[1].value, Value::Bytes(b"abc", 5));
        assert_eq!(fields[2].value, Value::Fixed64(1));
        assert_eq!(fields[3].value, Value::Fixed32(2));
    }

    #[test]
    fn nested_offsets_are_absolute() {
        let data = [int(1, 1), msg(7, &[bytes(4, b"Relu")])].concat();
        let outer: Vec<_> = collect(&data).into_iter().map(Result::unwrap).collect();
        let inner = outer[1]
            .message()
            .unwrap()
            .fields()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(inner.offset, 4);
        assert_eq!(inner.value, Value::Bytes(b"Relu", 6));
    }

    #[test]
    fn hostile_lengths_and_varints_are_errors_not_panics() {
        let overlong = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(collect(&overlong)[0].is_err());
        let eleven = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(
            collect(&eleven)[0].clone().unwrap_err().reason,
            "varint longer than 10 bytes"
        );
        let past_end = [0x08, 0x01, 0x12, 0x05, b'a'];
        let r = collect(&past_end);
        assert_eq!(r[1].clone().unwrap_err().offset, 2);
        assert_eq!(r.len(), 2);
        assert!(collect(&[0x0f])[0].is_err()); // wire type 7
        assert!(collect(&[0x00, 0x00])[0].is_err()); // field 0
        assert!(collect(&[0x08])[0].is_err());
        assert!(collect(&[0x0c])[0].is_err()); // stray end-group
    }

    #[test]
    fn groups_are_skipped_and_must_balance() {
        // field 2 start-group { field 1 varint 5 } field 2 end-group, then field 3 = 7
        let data = [0x13, 0x08, 0x05, 0x14, 0x18, 0x07];
        let fields: Vec<_> = collect(&data).into_iter().map(Result::unwrap).collect();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].number, 3);
        assert!(collect(&[0x13, 0x08, 0x05])[0].is_err());
        assert!(collect(&[0x13, 0x1c])[0].is_err()); // closes field 3 instead of 2
        let deep: Vec<u8> = std::iter::repeat_n(0x13, 200).collect();
        assert!(collect(&deep)[0].is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            for f in Message::new(&data).fields().flatten() {
                if let Some(m) = f.message() {
                    m.fields().for_each(drop);
                }
            }
        }
    }
}
