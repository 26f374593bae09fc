//! Pickle opcodes, protocols 0 to 5, named as CPython's `Lib/pickle.py`
//! names them, so that the walker and every other reader of pickle bytes
//! match on the same names a reader of `pickletools.dis` output sees.
//!
//! Comments give each opcode's argument as it appears in the stream; what
//! the walker does with it is documented where it is handled.

// Protocol 0 and 1: text and the first binary forms.

/// Pushes the mark that `TUPLE`, `LIST`, `DICT`, `APPENDS`… pop back to.
pub const MARK: u8 = b'(';
/// Ends the stream; the value on top of the stack is the result.
pub const STOP: u8 = b'.';
/// Discards the top value (or the topmost mark, when nothing is above it).
pub const POP: u8 = b'0';
/// Discards everything down to and including the topmost mark.
pub const POP_MARK: u8 = b'1';
/// Pushes a copy of the top value.
pub const DUP: u8 = b'2';
/// A float as a decimal line.
pub const FLOAT: u8 = b'F';
/// An int (or `00`/`01` for a bool) as a decimal line.
pub const INT: u8 = b'I';
/// A signed 4-byte little-endian int.
pub const BININT: u8 = b'J';
/// An unsigned 1-byte int.
pub const BININT1: u8 = b'K';
/// A long as a decimal line, optionally ending in `L`.
pub const LONG: u8 = b'L';
/// An unsigned 2-byte little-endian int.
pub const BININT2: u8 = b'M';
/// Pushes `None`.
pub const NONE: u8 = b'N';
/// A persistent id as a line, resolved by the unpickler's `persistent_load`.
pub const PERSID: u8 = b'P';
/// A persistent id popped from the stack.
pub const BINPERSID: u8 = b'Q';
/// Calls the callable below the top with the argument tuple on top.
pub const REDUCE: u8 = b'R';
/// A Python-repr quoted byte string as a line.
pub const STRING: u8 = b'S';
/// A byte string with a 4-byte length.
pub const BINSTRING: u8 = b'T';
/// A byte string with a 1-byte length.
pub const SHORT_BINSTRING: u8 = b'U';
/// A raw-unicode-escaped str as a line.
pub const UNICODE: u8 = b'V';
/// A UTF-8 str with a 4-byte length.
pub const BINUNICODE: u8 = b'X';
/// Appends the top value to the list below it.
pub const APPEND: u8 = b'a';
/// Sets the state of the object below the top (`__setstate__` or
/// `__dict__` update).
pub const BUILD: u8 = b'b';
/// Imports `module\nname\n` (two lines) and pushes the object.
pub const GLOBAL: u8 = b'c';
/// Builds a dict from the key/value pairs above the mark.
pub const DICT: u8 = b'd';
/// Pushes an empty dict.
pub const EMPTY_DICT: u8 = b'}';
/// Appends everything above the mark to the list below it.
pub const APPENDS: u8 = b'e';
/// Pushes a memo entry; the key is a decimal line.
pub const GET: u8 = b'g';
/// Pushes a memo entry; the key is one byte.
pub const BINGET: u8 = b'h';
/// Imports `module\nname\n` and calls it with the values above the mark.
pub const INST: u8 = b'i';
/// Pushes a memo entry; the key is four bytes.
pub const LONG_BINGET: u8 = b'j';
/// Builds a list from the values above the mark.
pub const LIST: u8 = b'l';
/// Pushes an empty list.
pub const EMPTY_LIST: u8 = b']';
/// Calls the first value above the mark with the rest as arguments.
pub const OBJ: u8 = b'o';
/// Stores the top value in the memo; the key is a decimal line.
pub const PUT: u8 = b'p';
/// Stores the top value in the memo; the key is one byte.
pub const BINPUT: u8 = b'q';
/// Stores the top value in the memo; the key is four bytes.
pub const LONG_BINPUT: u8 = b'r';
/// Sets one key/value pair (the two top values) in the dict below them.
pub const SETITEM: u8 = b's';
/// Builds a tuple from the values above the mark.
pub const TUPLE: u8 = b't';
/// Pushes an empty tuple.
pub const EMPTY_TUPLE: u8 = b')';
/// Sets the key/value pairs above the mark in the dict below it.
pub const SETITEMS: u8 = b'u';
/// An 8-byte big-endian IEEE double.
pub const BINFLOAT: u8 = b'G';

// Protocol 2.

/// The protocol version, one byte; the first opcode of protocol 2 and later.
pub const PROTO: u8 = 0x80;
/// `cls.__new__(cls, *args)` with the argument tuple on top.
pub const NEWOBJ: u8 = 0x81;
/// An extension-registry code, one byte (`copyreg.add_extension`).
pub const EXT1: u8 = 0x82;
/// An extension-registry code, two bytes.
pub const EXT2: u8 = 0x83;
/// An extension-registry code, four bytes.
pub const EXT4: u8 = 0x84;
/// Builds a tuple from the top value.
pub const TUPLE1: u8 = 0x85;
/// Builds a tuple from the two top values.
pub const TUPLE2: u8 = 0x86;
/// Builds a tuple from the three top values.
pub const TUPLE3: u8 = 0x87;
/// Pushes `True`.
pub const NEWTRUE: u8 = 0x88;
/// Pushes `False`.
pub const NEWFALSE: u8 = 0x89;
/// A two's-complement little-endian long with a 1-byte length.
pub const LONG1: u8 = 0x8a;
/// A two's-complement little-endian long with a 4-byte length.
pub const LONG4: u8 = 0x8b;

// Protocol 3.

/// A bytes object with a 4-byte length.
pub const BINBYTES: u8 = b'B';
/// A bytes object with a 1-byte length.
pub const SHORT_BINBYTES: u8 = b'C';

// Protocol 4.

/// A UTF-8 str with a 1-byte length.
pub const SHORT_BINUNICODE: u8 = 0x8c;
/// A UTF-8 str with an 8-byte length.
pub const BINUNICODE8: u8 = 0x8d;
/// A bytes object with an 8-byte length.
pub const BINBYTES8: u8 = 0x8e;
/// Pushes an empty set.
pub const EMPTY_SET: u8 = 0x8f;
/// Adds the values above the mark to the set below it.
pub const ADDITEMS: u8 = 0x90;
/// Builds a frozenset from the values above the mark.
pub const FROZENSET: u8 = 0x91;
/// `cls.__new__(cls, *args, **kwargs)` with the three on the stack.
pub const NEWOBJ_EX: u8 = 0x92;
/// Imports the module and name popped from the stack (two strs).
pub const STACK_GLOBAL: u8 = 0x93;
/// Stores the top value in the memo under the next free key.
pub const MEMOIZE: u8 = 0x94;
/// Announces the length (8 bytes) of the opcodes that follow inline.
pub const FRAME: u8 = 0x95;

// Protocol 5.

/// A bytearray with an 8-byte length.
pub const BYTEARRAY8: u8 = 0x96;
/// Pushes the next out-of-band buffer the unpickler was given.
pub const NEXT_BUFFER: u8 = 0x97;
/// Makes the buffer on top of the stack read-only.
pub const READONLY_BUFFER: u8 = 0x98;

/// Whether `op` is an opcode of some protocol up to 5.
pub fn is_opcode(op: u8) -> bool {
    matches!(
        op,
        MARK | STOP
            | POP
            | POP_MARK
            | DUP
            | FLOAT
            | INT
            | BININT
            | BININT1
            | LONG
            | BININT2
            | NONE
            | PERSID
            | BINPERSID
            | REDUCE
            | STRING
            | BINSTRING
            | SHORT_BINSTRING
            | UNICODE
            | BINUNICODE
            | APPEND
            | BUILD
            | GLOBAL
            | DICT
            | EMPTY_DICT
            | APPENDS
            | GET
            | BINGET
            | INST
            | LONG_BINGET
            | LIST
            | EMPTY_LIST
            | OBJ
            | PUT
            | BINPUT
            | LONG_BINPUT
            | SETITEM
            | TUPLE
            | EMPTY_TUPLE
            | SETITEMS
            | BINFLOAT
            | BINBYTES
            | SHORT_BINBYTES
            | PROTO..=READONLY_BUFFER
    )
}

#[cfg(test)]
mod tests {
    use super::is_opcode;

    /// `pickletools.opcodes` lists 68 opcodes for protocols 0–5.
    #[test]
    fn protocol_five_has_68_opcodes() {
        assert_eq!((0..=u8::MAX).filter(|&b| is_opcode(b)).count(), 68);
        assert!(!is_opcode(0x99));
        assert!(!is_opcode(b'A'));
    }
}
