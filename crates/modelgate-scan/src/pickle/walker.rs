//! A symbolic pickle machine: it reads every opcode of protocols 0–5 the way
//! `pickle.Unpickler` would, but instead of importing and calling it pushes
//! *descriptions* of values onto a stack and into a memo. That is enough to
//! know, for each import, which module and name it names (even when
//! STACK_GLOBAL takes them from the memo or from protocol-0 string opcodes),
//! what it is called with, and whether BUILD touches an imported global.
//!
//! It never builds Python values beyond short strings and small containers,
//! never resolves an import, and never recurses without a depth cap. Every
//! loop is bounded by [`Limits`]. Opcode semantics follow CPython's
//! `Lib/pickletools.py` table and `Lib/pickle.py` `_Unpickler`.
//!
//! The walker is pure: it returns a [`Stream`] describing what it saw, and
//! the caller turns that into findings. That keeps it easy to fuzz and lets
//! the sniffer reuse it as a probe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use super::globals::{self, ArgPos, Audit, Class, Forward, GlobalLists, Resolver};
use super::opcodes::*;
use crate::limits::Limits;

/// Loaders that unpickle the bytes they are given. They are denied
/// wherever they appear; a literal payload is also scanned as a nested file
/// (so its own findings are located), a computed one is reported as opaque.
const BYTE_LOADERS: &[&str] = &[
    "torch.storage._load_from_bytes",
    "pickle.loads",
    "_pickle.loads",
    "numpy.loads",
    "marshal.loads",
    "dill.loads",
    "dill._dill.loads",
    "cloudpickle.loads",
];
/// How deep the walker follows one trusted callable handing an argument to
/// another (`_rebuild_from_type_v2(partial(f, …), …)`).
const MAX_GADGET_DEPTH: u32 = 8;
/// Special names that describe an object rather than change what it does:
/// `functools.wraps` copies them (with `__wrapped__`, the function wrapped)
/// onto wrapper objects, which pickle them as plain attributes.
const DESCRIPTIVE_DUNDERS: &[&str] = &[
    "__wrapped__",
    "__doc__",
    "__module__",
    "__name__",
    "__qualname__",
    "__annotations__",
    "__type_params__",
];
/// Values the argument and state checks may visit per stream. The memo lets
/// a file share one value many times, so a walk over values (not opcodes)
/// could take exponential time without a budget; past it, what is left is
/// judged the worst way (a gadget, an object dtype).
const MAX_CHECK_STEPS: u64 = 200_000;

/// Strings longer than this are kept as a prefix only: long strings are
/// payloads or data, never module names.
const MAX_KEPT_STR: usize = 4096;
/// Items kept per container; the rest are counted, not stored.
const MAX_KEPT_ITEMS: usize = 64;

/// A value on the symbolic stack.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string short enough to keep (module and attribute names).
    Str(Rc<str>),
    /// A string too long to keep whole (a payload, not a name).
    LongStr(Rc<str>),
    /// Bytes, as a range of the walked buffer (not copied).
    Bytes {
        /// Offset of the first byte in the walked buffer.
        start: usize,
        /// Offset just past the last byte.
        end: usize,
    },
    /// An int that fits in an i64.
    Int(i64),
    /// An int too large for an i64 (its value is never needed).
    BigInt,
    /// A float (its value is never needed).
    Float,
    /// `True` or `False`.
    Bool(bool),
    /// Python's `None`.
    None,
    /// An imported global; the index points into [`Stream::uses`].
    Global(usize),
    /// An import through the copyreg extension registry.
    Ext(u32),
    /// The result of calling something.
    Call(Rc<Call>),
    /// A tuple; immutable once built, as in Python.
    Tuple(Rc<Vec<Value>>),
    /// A list, shared so that APPEND through a memo copy reaches every
    /// holder; items beyond a cap are counted, not kept.
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict as its key/value pairs in insertion order, shared like a list.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A set or frozenset (its items are never needed).
    Set,
    /// An object the unpickler's `persistent_load` supplies (a PyTorch
    /// storage), not the stream.
    PersistentId,
    /// A protocol-5 out-of-band buffer (never present in a file).
    Buffer,
}

/// One call the unpickler would make (REDUCE, NEWOBJ, INST, OBJ…).
#[derive(Debug)]
pub struct Call {
    /// What is called: usually a [`Value::Global`].
    pub callee: Value,
    /// The argument tuple as it was on the stack.
    pub args: Value,
    /// What BUILD applied to the result, if anything.
    pub state: RefCell<Option<Value>>,
    /// Values APPEND/SETITEM(S) added to the object (kept up to a cap):
    /// the hooks of an `OrderedDict()` of backward hooks.
    pub items: RefCell<Vec<Value>>,
    /// Offset of the opcode that made the call.
    pub offset: usize,
}

/// One import the unpickler would perform.
#[derive(Debug, Clone)]
pub struct GlobalUse {
    /// Offset of the opcode that imported it.
    pub offset: usize,
    /// The module as the resolver would import it (after Python 2 renames).
    pub module: String,
    /// The attribute looked up in that module (may be dotted).
    pub name: String,
    /// What the allow and deny tables say about it.
    pub class: Class,
    /// The first call made with it, rendered for evidence.
    pub call: Option<String>,
    /// Uses of `builtins.getattr` that matched the enum pattern only.
    pub getattr_ok: bool,
    /// Set when this getattr was used in any way other than the enum pattern.
    pub getattr_bad: Option<String>,
}

/// Stands in for an import index that is not in `uses`. The walker only
/// makes indices by pushing, so this is never reached; should it be, the
/// import is unknown (never trusted) rather than a panic.
static NO_USE: GlobalUse = GlobalUse {
    offset: 0,
    module: String::new(),
    name: String::new(),
    class: Class::Unknown,
    call: None,
    getattr_ok: false,
    getattr_bad: None,
};

impl GlobalUse {
    /// `module.name`, as findings and policies spell an import.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }

    fn is_getattr(&self) -> bool {
        self.module == "builtins" && self.name == "getattr"
    }
}

/// Something the walker saw that is a finding in itself.
///
/// Every variant's `offset` is that of the opcode that caused it, and its
/// `detail` (where there is one) is the finding's message text.
#[derive(Debug, Clone)]
pub enum Event {
    /// STACK_GLOBAL operands that are not constant strings.
    Unresolved {
        /// Opcode offset.
        offset: usize,
        /// Where the module and name came from instead.
        detail: String,
    },
    /// EXT1/EXT2/EXT4.
    Ext {
        /// Opcode offset.
        offset: usize,
        /// The extension-registry code.
        code: u32,
    },
    /// BUILD applied to an imported global.
    Poison {
        /// Opcode offset.
        offset: usize,
        /// The global's qualified name.
        target: String,
    },
    /// A call whose callee was produced by another call.
    IndirectCall {
        /// Opcode offset.
        offset: usize,
        /// The call, rendered.
        detail: String,
    },
    /// Bytes passed to a loader; to be scanned as a nested file.
    Nested {
        /// Opcode offset.
        offset: usize,
        /// First byte of the payload in the walked buffer.
        start: usize,
        /// Just past its last byte.
        end: usize,
        /// The loader it is handed to.
        via: String,
    },
    /// A payload handed to an allowlisted loader that is not a literal, so
    /// it cannot be scanned.
    OpaquePayload {
        /// Opcode offset.
        offset: usize,
        /// The loader and what it was handed.
        detail: String,
    },
    /// A NumPy object array inside a joblib pickle (a nested pickle).
    ObjectArray {
        /// Opcode offset.
        offset: usize,
    },
    /// A trusted callable is handed something that makes it run code: a
    /// computed callable, a gadget with hidden arguments, a loader.
    Gadget {
        /// Opcode offset.
        offset: usize,
        /// What the callable is handed, and why that runs code.
        detail: String,
    },
    /// BUILD state that rewrites how a trusted object behaves (a callable
    /// planted under a special name, `__class__` set through slot state).
    StateHijack {
        /// Opcode offset.
        offset: usize,
        /// The name written and what it is set to.
        detail: String,
    },
    /// A `numpy.dtype` state whose flags disagree with its type (object
    /// handling switched on for plain numbers, or off for objects).
    DtypeFlags {
        /// Opcode offset.
        offset: usize,
        /// The type and the flags it was given.
        detail: String,
    },
    /// A budget ran out.
    Budget {
        /// Opcode offset.
        offset: usize,
        /// Which budget.
        what: String,
    },
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// STOP at this offset; the next stream (if any) starts after it.
    Stop {
        /// Offset just past the STOP opcode.
        next: usize,
    },
    /// The stream is malformed at `offset` (what a loader would raise on).
    Error {
        /// Offset of the opcode that broke.
        offset: usize,
        /// What a loader would raise.
        reason: String,
    },
    /// A budget was exhausted; the rest was not inspected.
    Budget {
        /// Offset of the opcode at which it ran out.
        offset: usize,
    },
}

/// Everything the walker learned from one pickle stream.
#[derive(Debug)]
pub struct Stream {
    /// Every import, in stream order; [`Value::Global`] indexes into it.
    pub uses: Vec<GlobalUse>,
    /// Findings-to-be, in stream order.
    pub events: Vec<Event>,
    /// How the stream ended.
    pub end: End,
    /// The value left by STOP, for format detection (PyTorch legacy magic).
    pub result: Option<Value>,
    /// Opcodes read, STOP included.
    pub opcodes: u64,
    /// The highest protocol seen in a PROTO opcode.
    pub protocol: u8,
    /// Whether joblib's array wrapper appeared (the stream is a joblib file).
    pub joblib: bool,
}

impl Stream {
    /// Calls, imports or other activity happened: the stream is a real
    /// pickle, not random bytes that start like one.
    pub fn did_something(&self) -> bool {
        !self.uses.is_empty() || !self.events.is_empty()
    }
}

struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    extra: &'a GlobalLists,
    resolver: Resolver,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    uses: Vec<GlobalUse>,
    events: Vec<Event>,
    opcodes: u64,
    protocol: u8,
    /// The protocol of the last PROTO opcode, which `find_class` consults
    /// for Python 2 renames.
    proto_now: u8,
    joblib: bool,
    nesting: u32,
    /// Values visited by the argument and state checks (see
    /// [`MAX_CHECK_STEPS`]).
    check_steps: std::cell::Cell<u64>,
    /// Every mutable value made, held weakly: APPEND, SETITEM and BUILD can
    /// make a value contain itself (`L.append(L)`), and reference counting
    /// never frees such cycles. [`Walker::break_cycles`] empties them all
    /// when the walk ends, so a hostile pickle leaks nothing into a
    /// long-running daemon.
    lists: Vec<Weak<ListCell>>,
    dicts: Vec<Weak<DictCell>>,
    calls: Vec<Weak<Call>>,
}

type ListCell = RefCell<Vec<Value>>;
type DictCell = RefCell<Vec<(Value, Value)>>;

/// Walks one pickle stream starting at `start`.
pub fn walk(data: &[u8], start: usize, limits: &Limits, extra: &GlobalLists) -> Stream {
    walk_as(data, start, limits, extra, Resolver::Python)
}

/// [`walk`] for a pickle whose imports `resolver` resolves.
pub fn walk_as(
    data: &[u8],
    start: usize,
    limits: &Limits,
    extra: &GlobalLists,
    resolver: Resolver,
) -> Stream {
    let mut w = Walker::new(data, start, limits, extra);
    w.resolver = resolver;
    let (end, mut result) = w.run();
    // The result is only consulted for scalars and strings; containers in
    // it would keep cycles alive.
    if matches!(
        result,
        Some(Value::List(_) | Value::Dict(_) | Value::Call(_))
    ) {
        result = None;
    }
    w.break_cycles();
    Stream {
        uses: w.uses,
        events: w.events,
        end,
        result,
        opcodes: w.opcodes,
        protocol: w.protocol,
        joblib: w.joblib,
    }
}

/// The error type inside the walker: where and why the stream breaks.
struct Broken {
    offset: usize,
    reason: String,
    budget: bool,
}

type Step<T> = Result<T, Broken>;

impl<'a> Walker<'a> {
    fn new(data: &'a [u8], start: usize, limits: &'a Limits, extra: &'a GlobalLists) -> Self {
        Walker {
            data,
            pos: start,
            limits,
            extra,
            resolver: Resolver::Python,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            uses: Vec::new(),
            events: Vec::new(),
            opcodes: 0,
            protocol: 0,
            proto_now: 0,
            joblib: false,
            nesting: 0,
            check_steps: std::cell::Cell::new(0),
            lists: Vec::new(),
            dicts: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// The import a `Value::Global` index names.
    fn use_at(&self, i: usize) -> &GlobalUse {
        self.uses.get(i).unwrap_or(&NO_USE)
    }

    fn new_list(&mut self, items: Vec<Value>) -> Value {
        let list = Rc::new(RefCell::new(items));
        self.lists.push(Rc::downgrade(&list));
        self.prune_weak();
        Value::List(list)
    }

    fn new_dict(&mut self, items: Vec<(Value, Value)>) -> Value {
        let dict = Rc::new(RefCell::new(items));
        self.dicts.push(Rc::downgrade(&dict));
        self.prune_weak();
        Value::Dict(dict)
    }

    /// Keeps the weak lists proportional to the live values: dead entries
    /// are dropped whenever a list doubles.
    fn prune_weak(&mut self) {
        fn prune<T>(v: &mut Vec<Weak<T>>) {
            if v.len() >= 1024 && v.len().is_power_of_two() {
                v.retain(|w| w.strong_count() > 0);
            }
        }
        prune(&mut self.lists);
        prune(&mut self.dicts);
        prune(&mut self.calls);
    }

    fn break_cycles(&mut self) {
        self.stack.clear();
        self.memo.clear();
        for l in self.lists.drain(..).filter_map(|w| w.upgrade()) {
            l.borrow_mut().clear();
        }
        for d in self.dicts.drain(..).filter_map(|w| w.upgrade()) {
            d.borrow_mut().clear();
        }
        for c in self.calls.drain(..).filter_map(|w| w.upgrade()) {
            c.state.borrow_mut().take();
            c.items.borrow_mut().clear();
        }
    }

    fn run(&mut self) -> (End, Option<Value>) {
        match self.run_stream() {
            Ok(next) => {
                let result = self.stack.pop();
                (End::Stop { next }, result)
            }
            Err(b) if b.budget => {
                self.events.push(Event::Budget {
                    offset: b.offset,
                    what: b.reason,
                });
                (End::Budget { offset: b.offset }, None)
            }
            Err(b) => (
                End::Error {
                    offset: b.offset,
                    reason: b.reason,
                },
                None,
            ),
        }
    }

    fn broken<T>(&self, offset: usize, reason: impl Into<String>) -> Step<T> {
        Err(Broken {
            offset,
            reason: reason.into(),
            budget: false,
        })
    }

    fn budget<T>(&self, offset: usize, reason: impl Into<String>) -> Step<T> {
        Err(Broken {
            offset,
            reason: reason.into(),
            budget: true,
        })
    }

    /// Runs opcodes until STOP; returns the offset just after it.
    fn run_stream(&mut self) -> Step<usize> {
        loop {
            let at = self.pos;
            self.opcodes += 1;
            if self.opcodes > self.limits.max_pickle_opcodes {
                return self.budget(
                    at,
                    format!(
                        "more than {} pickle opcodes",
                        self.limits.max_pickle_opcodes
                    ),
                );
            }
            let Some(&op) = self.data.get(at) else {
                return self.broken(at, "stream ends without STOP (truncated)");
            };
            self.pos += 1;
            if op == STOP {
                // STOP pops the result: with nothing above the topmost
                // mark every unpickler raises (stack underflow). Text such
                // as `GIT v1.5.0.1` reads as BINFLOAT, POP, STOP.
                if self.stack.len() == self.marks.last().copied().unwrap_or(0) {
                    return self.broken(at, "STOP with nothing on the stack");
                }
                return Ok(self.pos);
            }
            self.step(op, at)?;
            if self.stack.len() as u64 > self.limits.max_pickle_stack {
                return self.budget(
                    at,
                    format!("stack deeper than {} values", self.limits.max_pickle_stack),
                );
            }
        }
    }

    /// Dispatches one opcode to the method for its family.
    fn step(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            MARK | POP | POP_MARK | DUP => self.stack_op(op, at),
            NONE | NEWTRUE | NEWFALSE | INT | BININT | BININT1 | BININT2 | LONG | LONG1 | LONG4
            | FLOAT | BINFLOAT => self.push_number(op, at),
            STRING | BINSTRING | SHORT_BINSTRING | UNICODE | BINUNICODE | SHORT_BINUNICODE
            | BINUNICODE8 | BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 | NEXT_BUFFER
            | READONLY_BUFFER => self.push_string(op, at),
            EMPTY_TUPLE | TUPLE | TUPLE1 | TUPLE2 | TUPLE3 | EMPTY_LIST | LIST | EMPTY_DICT
            | DICT | EMPTY_SET | FROZENSET => self.new_container(op, at),
            APPEND | APPENDS | SETITEM | SETITEMS | ADDITEMS => self.fill_container(op, at),
            GET | BINGET | LONG_BINGET | PUT | BINPUT | LONG_BINPUT | MEMOIZE => {
                self.memo_op(op, at)
            }
            PROTO | FRAME => self.framing(op, at),
            GLOBAL | STACK_GLOBAL | EXT1 | EXT2 | EXT4 => self.global(op, at),
            PERSID | BINPERSID => self.persistent_id(op, at),
            REDUCE | NEWOBJ | NEWOBJ_EX | INST | OBJ | BUILD => self.call_op(op, at),
            _ => self.invalid(op, at),
        }
    }

    fn invalid<T>(&self, op: u8, at: usize) -> Step<T> {
        self.broken(at, format!("invalid opcode 0x{op:02x}"))
    }

    /// MARK, POP, POP_MARK, DUP.
    fn stack_op(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            MARK => {
                if self.marks.len() as u64 >= self.limits.max_pickle_stack {
                    return self.budget(at, "too many nested MARKs");
                }
                self.marks.push(self.stack.len());
            }
            POP => {
                // CPython pops the mark itself when the stack is empty above
                // the topmost mark.
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop(at)?;
                }
            }
            POP_MARK => {
                self.pop_mark(at)?;
            }
            DUP => {
                let top = self.top(at)?.clone();
                self.stack.push(top);
            }
            _ => return self.invalid(op, at),
        }
        Ok(())
    }

    /// None, bools, ints, longs and floats in their text and binary forms.
    fn push_number(&mut self, op: u8, at: usize) -> Step<()> {
        let v = match op {
            NONE => Value::None,
            NEWTRUE => Value::Bool(true),
            NEWFALSE => Value::Bool(false),
            FLOAT => {
                let line = self.line(at)?;
                if !numeric_line(line, FLOAT_CHARS) {
                    return self.broken(at, "FLOAT argument is not a number");
                }
                Value::Float
            }
            BINFLOAT => {
                self.take(at, 8)?;
                Value::Float
            }
            INT => {
                let line = self.line(at)?;
                if !numeric_line(line, INT_CHARS) {
                    return self.broken(at, "INT argument is not a number");
                }
                match line {
                    b"00" => Value::Bool(false),
                    b"01" => Value::Bool(true),
                    _ => parse_int(line).map_or(Value::BigInt, Value::Int),
                }
            }
            BININT => Value::Int(i64::from(i32::from_le_bytes(self.take_array(at)?))),
            BININT1 => Value::Int(i64::from(self.take_byte(at)?)),
            BININT2 => Value::Int(i64::from(u16::from_le_bytes(self.take_array(at)?))),
            LONG => {
                let line = self.line(at)?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                if !numeric_line(digits, INT_CHARS) {
                    return self.broken(at, "LONG argument is not a number");
                }
                parse_int(digits).map_or(Value::BigInt, Value::Int)
            }
            LONG1 => {
                let n = usize::from(self.take_byte(at)?);
                long_value(self.take(at, n)?)
            }
            LONG4 => {
                let n = self.len_u32(at)?;
                long_value(self.take(at, n)?)
            }
            _ => return self.invalid(op, at),
        };
        self.stack.push(v);
        Ok(())
    }

    /// Byte strings (Python 2 `str`), unicode strings, bytes, bytearrays
    /// and out-of-band buffers.
    fn push_string(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            STRING => {
                let line = self.line(at)?;
                let Some(s) = decode_repr_string(line) else {
                    return self.broken(at, "STRING argument is not a quoted string");
                };
                self.stack.push(str_value(&s));
            }
            BINSTRING => {
                let n = self.len_u32(at)?;
                self.push_byte_string(at, n)?;
            }
            SHORT_BINSTRING => {
                let n = usize::from(self.take_byte(at)?);
                self.push_byte_string(at, n)?;
            }
            UNICODE => {
                let line = self.line(at)?;
                let s = decode_raw_unicode_escape(line);
                self.stack.push(str_value(&s));
            }
            BINUNICODE => {
                let n = self.len_u32(at)?;
                self.push_unicode(at, n)?;
            }
            SHORT_BINUNICODE => {
                let n = usize::from(self.take_byte(at)?);
                self.push_unicode(at, n)?;
            }
            BINUNICODE8 => {
                let n = self.len_u64(at)?;
                self.push_unicode(at, n)?;
            }
            BINBYTES => {
                let n = self.len_u32(at)?;
                self.push_bytes(at, n)?;
            }
            SHORT_BINBYTES => {
                let n = usize::from(self.take_byte(at)?);
                self.push_bytes(at, n)?;
            }
            BINBYTES8 | BYTEARRAY8 => {
                let n = self.len_u64(at)?;
                self.push_bytes(at, n)?;
            }
            NEXT_BUFFER => self.stack.push(Value::Buffer),
            READONLY_BUFFER => {
                self.top(at)?;
            }
            _ => return self.invalid(op, at),
        }
        Ok(())
    }

    /// Opcodes that build a new tuple, list, dict or set.
    fn new_container(&mut self, op: u8, at: usize) -> Step<()> {
        let v = match op {
            EMPTY_TUPLE => Value::Tuple(Rc::new(Vec::new())),
            TUPLE => Value::Tuple(Rc::new(self.pop_mark(at)?)),
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1) + 1;
                if self.above_mark() < n {
                    return self.broken(at, "TUPLE needs more values than the stack holds");
                }
                let items = self.stack.split_off(self.stack.len() - n);
                Value::Tuple(Rc::new(items))
            }
            EMPTY_LIST => self.new_list(Vec::new()),
            LIST => {
                let items = self.pop_mark(at)?;
                self.new_list(cap(items))
            }
            EMPTY_DICT => self.new_dict(Vec::new()),
            DICT => {
                let items = self.pop_mark(at)?;
                self.new_dict(pairs(items))
            }
            EMPTY_SET => Value::Set,
            FROZENSET => {
                self.pop_mark(at)?;
                Value::Set
            }
            _ => return self.invalid(op, at),
        };
        self.stack.push(v);
        Ok(())
    }

    /// Opcodes that add to the list, dict or set below their arguments.
    fn fill_container(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            APPEND => {
                let v = self.pop(at)?;
                self.extend_list(at, vec![v])
            }
            APPENDS => {
                let items = self.pop_mark(at)?;
                self.extend_list(at, items)
            }
            SETITEM => {
                let v = self.pop(at)?;
                let k = self.pop(at)?;
                self.extend_dict(at, vec![(k, v)])
            }
            SETITEMS => {
                let items = self.pop_mark(at)?;
                self.extend_dict(at, pairs(items))
            }
            ADDITEMS => {
                self.pop_mark(at)?;
                match self.top(at)? {
                    Value::Set => Ok(()),
                    _ => self.broken(at, "ADDITEMS on something that is not a set"),
                }
            }
            _ => self.invalid(op, at),
        }
    }

    /// GET/PUT in their three key widths, and MEMOIZE.
    fn memo_op(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            GET | BINGET | LONG_BINGET => {
                let key = self.memo_key(op, at)?;
                self.memo_get(at, key)
            }
            PUT | BINPUT | LONG_BINPUT => {
                let key = self.memo_key(op, at)?;
                self.memo_put(at, key)
            }
            MEMOIZE => {
                let key = self.memo.len() as u64;
                self.memo_put(at, key)
            }
            _ => self.invalid(op, at),
        }
    }

    /// PROTO and FRAME: they shape the stream, not the values in it.
    fn framing(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            PROTO => {
                let v = self.take_byte(at)?;
                if v > 5 {
                    return self.broken(at, format!("unsupported pickle protocol {v}"));
                }
                self.protocol = self.protocol.max(v);
                self.proto_now = v;
            }
            FRAME => {
                // FRAME only announces how many bytes the next opcodes take;
                // the opcodes themselves follow inline.
                self.take(at, 8)?;
            }
            _ => return self.invalid(op, at),
        }
        Ok(())
    }

    /// Opcodes that import: GLOBAL, STACK_GLOBAL and the extension registry.
    fn global(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            GLOBAL => {
                let module = String::from_utf8_lossy(self.line(at)?).into_owned();
                let name = String::from_utf8_lossy(self.line(at)?).into_owned();
                let g = self.import(at, module, name);
                self.stack.push(g);
            }
            STACK_GLOBAL => self.stack_global(at)?,
            EXT1 => {
                let code = u32::from(self.take_byte(at)?);
                self.ext(at, code);
            }
            EXT2 => {
                let code = u32::from(u16::from_le_bytes(self.take_array(at)?));
                self.ext(at, code);
            }
            EXT4 => {
                let code = self.len_u32(at)? as u32;
                self.ext(at, code);
            }
            _ => return self.invalid(op, at),
        }
        Ok(())
    }

    /// STACK_GLOBAL with a module and name that are not both constant
    /// strings is an import the scanner cannot name: reported, and kept on
    /// the stack as a call to nothing so later opcodes still apply to it.
    fn stack_global(&mut self, at: usize) -> Step<()> {
        let name = self.pop(at)?;
        let module = self.pop(at)?;
        if let (Value::Str(m), Value::Str(n)) = (&module, &name) {
            let g = self.import(at, m.to_string(), n.to_string());
            self.stack.push(g);
            return Ok(());
        }
        let detail = format!(
            "module from {}, name from {}",
            self.describe(&module),
            self.describe(&name)
        );
        self.events.push(Event::Unresolved { offset: at, detail });
        let call = Rc::new(Call {
            callee: Value::None,
            args: Value::Tuple(Rc::new(vec![module, name])),
            state: RefCell::new(None),
            items: RefCell::new(Vec::new()),
            offset: at,
        });
        self.calls.push(Rc::downgrade(&call));
        self.stack.push(Value::Call(call));
        Ok(())
    }

    /// PERSID and BINPERSID: the object comes from the unpickler's
    /// `persistent_load`, never from the stream.
    fn persistent_id(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            PERSID => {
                self.line(at)?;
            }
            BINPERSID => {
                self.pop(at)?;
            }
            _ => return self.invalid(op, at),
        }
        self.stack.push(Value::PersistentId);
        Ok(())
    }

    /// The opcodes that call or instantiate, and BUILD (which may call
    /// `__setstate__`).
    fn call_op(&mut self, op: u8, at: usize) -> Step<()> {
        match op {
            REDUCE => {
                let args = self.pop(at)?;
                let callee = self.pop(at)?;
                self.call(at, callee, args)
            }
            NEWOBJ => {
                let args = self.pop(at)?;
                let cls = self.pop(at)?;
                self.call(at, cls, args)
            }
            NEWOBJ_EX => {
                let kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let cls = self.pop(at)?;
                self.audit_kwargs(at, &cls, &kwargs);
                self.call(at, cls, args)
            }
            INST => {
                let module = String::from_utf8_lossy(self.line(at)?).into_owned();
                let name = String::from_utf8_lossy(self.line(at)?).into_owned();
                let args = self.pop_mark(at)?;
                let cls = self.import(at, module, name);
                self.call(at, cls, Value::Tuple(Rc::new(args)))
            }
            OBJ => {
                let mut items = self.pop_mark(at)?;
                if items.is_empty() {
                    return self.broken(at, "OBJ without a class");
                }
                let cls = items.remove(0);
                self.call(at, cls, Value::Tuple(Rc::new(items)))
            }
            BUILD => {
                let state = self.pop(at)?;
                self.build(at, state)
            }
            _ => self.invalid(op, at),
        }
    }

    fn import(&mut self, at: usize, module: String, name: String) -> Value {
        // `find_class` renames Python 2 globals for protocols below 3
        // (`_compat_pickle`); later protocols import the name as written,
        // but a name that is dangerous under either spelling stays denied.
        let (module, name) = if self.proto_now < 3 {
            globals::fix_imports(&module, &name)
        } else {
            (module, name)
        };
        let mut class = globals::classify_for(&module, &name, self.extra, self.resolver);
        if !matches!(class, Class::Dangerous(_))
            && let Some(reason) = globals::builtin_denial(&module, &name)
            && !class.is_trusted()
        {
            class = Class::Dangerous(reason.to_string());
        }
        if module == "joblib.numpy_pickle" {
            self.joblib = true;
        }
        self.uses.push(GlobalUse {
            offset: at,
            module,
            name,
            class,
            call: None,
            getattr_ok: false,
            getattr_bad: None,
        });
        Value::Global(self.uses.len() - 1)
    }

    fn ext(&mut self, at: usize, code: u32) {
        self.events.push(Event::Ext { offset: at, code });
        self.stack.push(Value::Ext(code));
    }

    fn call(&mut self, at: usize, callee: Value, args: Value) -> Step<()> {
        match &callee {
            Value::Global(i) => {
                let i = *i;
                if self.use_at(i).is_getattr() {
                    let verdict = self.safe_getattr(&args);
                    if let Some(u) = self.uses.get_mut(i) {
                        match verdict {
                            Ok(()) => u.getattr_ok = true,
                            Err(detail) => {
                                u.getattr_bad.get_or_insert(detail);
                            }
                        }
                    }
                }
                if self.use_at(i).call.is_none() {
                    let rendered = format!(
                        "{}({})",
                        self.use_at(i).qualified(),
                        self.render_args(&args)
                    );
                    if let Some(u) = self.uses.get_mut(i) {
                        u.call = Some(rendered);
                    }
                }
                self.nested_payloads(at, i, &args);
                if let Some(detail) = self.audit_global_call(at, i, &Args::Shown(&args), 0) {
                    self.events.push(Event::Gadget { offset: at, detail });
                }
                self.check_state_argument(at, i, &args);
            }
            Value::Call(inner) => {
                let detail = format!("calls the result of {}", self.describe_call(inner));
                self.events.push(Event::IndirectCall { offset: at, detail });
            }
            _ => {}
        }
        let call = Rc::new(Call {
            callee,
            args,
            state: RefCell::new(None),
            items: RefCell::new(Vec::new()),
            offset: at,
        });
        self.calls.push(Rc::downgrade(&call));
        self.stack.push(Value::Call(call));
        Ok(())
    }

    /// `getattr(EnumClass, 'MEMBER')` with an allowlisted class and a plain
    /// public identifier is how enum members pickle; nothing else is.
    fn safe_getattr(&self, args: &Value) -> Result<(), String> {
        let Value::Tuple(items) = args else {
            return Err("getattr with non-constant arguments".into());
        };
        let [target, attr] = items.as_slice() else {
            return Err("getattr with an unusual argument count".into());
        };
        let target_ok = match target {
            Value::Global(i) => self.use_at(*i).class.is_trusted(),
            _ => false,
        };
        let attr_ok = match attr {
            Value::Str(s) => is_public_identifier(s),
            _ => false,
        };
        if target_ok && attr_ok {
            Ok(())
        } else {
            Err(format!(
                "getattr({}, {})",
                self.describe(target),
                self.describe(attr)
            ))
        }
    }

    /// Checks one call of the trusted global `callee` against its audit:
    /// every argument the callable calls must be unable to reach code.
    /// Returns what is wrong, if anything.
    fn audit_global_call(
        &mut self,
        at: usize,
        callee: usize,
        args: &Args,
        depth: u32,
    ) -> Option<String> {
        if !self.use_at(callee).class.is_trusted() {
            return None;
        }
        let qualified = self.use_at(callee).qualified();
        let Audit::Calls(specs) =
            globals::audit(&self.use_at(callee).module, &self.use_at(callee).name).clone()
        else {
            return None;
        };
        let Args::Shown(args) = args else {
            return Some(format!(
                "`{qualified}` calls its arguments, and here it is called with arguments the file does not show"
            ));
        };
        let items: Vec<Value> = match args {
            Value::Tuple(items) => items.to_vec(),
            other => {
                return Some(format!(
                    "`{qualified}` called with {}",
                    self.describe(other)
                ));
            }
        };
        for spec in specs {
            let positions: Vec<usize> = match spec.arg {
                ArgPos::At(n) => vec![n],
                ArgPos::Every => (0..items.len()).collect(),
            };
            for n in positions {
                let Some(v) = items.get(n) else { continue };
                let problem = match spec.with {
                    Forward::Items => self.check_container(at, v, depth + 1),
                    with => {
                        let forwarded = match with {
                            Forward::One(m) => items.get(m).map_or(Args::Unseen, |a| {
                                Args::Owned(Value::Tuple(Rc::new(vec![a.clone()])))
                            }),
                            Forward::Star(m) => match items.get(m) {
                                Some(t @ Value::Tuple(_)) => Args::Owned(t.clone()),
                                _ => Args::Unseen,
                            },
                            Forward::From(m) => Args::Owned(Value::Tuple(Rc::new(
                                items.get(m..).unwrap_or_default().to_vec(),
                            ))),
                            Forward::Unseen | Forward::Items => Args::Unseen,
                        };
                        self.check_callable(at, v, &forwarded.borrowed(), depth + 1)
                    }
                };
                if let Some(problem) = problem {
                    return Some(format!(
                        "`{qualified}` calls its argument {n}, which is {problem}"
                    ));
                }
            }
        }
        None
    }

    /// Whether calling `v` with `args` can run code the allowlist does not
    /// vouch for. Literals and data cannot be called; trusted globals are
    /// checked against their own audit; results of calls are callables only
    /// when the call returns one (a `functools.partial`, a `getattr`).
    fn check_callable(&mut self, at: usize, v: &Value, args: &Args, depth: u32) -> Option<String> {
        if depth > MAX_GADGET_DEPTH {
            return Some("the end of a chain of callables too deep to follow".into());
        }
        if !self.spend_check_step() {
            return Some("part of a structure too large to check".into());
        }
        match v {
            Value::Global(j) => {
                let j = *j;
                match &self.use_at(j).class {
                    // Reported on their own (PKL001/PKL002); a loader reached
                    // through a helper still has its payload scanned.
                    Class::Dangerous(_) => {
                        if let Args::Shown(a) = args {
                            let a = (*a).clone();
                            self.nested_payloads(at, j, &a);
                        }
                        Some(format!(
                            "`{}`, a dangerous callable",
                            self.use_at(j).qualified()
                        ))
                    }
                    Class::Unknown => None,
                    Class::Safe | Class::Profile(_) => self
                        .audit_global_call(at, j, args, depth)
                        .map(|p| format!("`{}` handed on: {p}", self.use_at(j).qualified())),
                }
            }
            Value::Call(c) => {
                let c = Rc::clone(c);
                match &c.callee {
                    Value::Global(j) if self.is_partial(*j) => {
                        self.check_partial(at, &c, args, depth)
                    }
                    Value::Global(j) if self.use_at(*j).is_getattr() => Some(format!(
                        "an attribute fetched at load time ({})",
                        self.describe_call(&c)
                    )),
                    Value::Global(j) if self.use_at(*j).class.is_trusted() => {
                        // An instance of a trusted class is data; only a
                        // call that builds a callable (a partial handed
                        // through) yields one.
                        let Value::Tuple(items) = &c.args else {
                            return None;
                        };
                        let yields = items.iter().any(|a| self.yields_callable(a));
                        yields.then(|| {
                            format!("a callable built at load time ({})", self.describe_call(&c))
                        })
                    }
                    // The import itself is reported (PKL001/PKL002/PKL003).
                    Value::Global(_) => None,
                    _ => Some(format!("the result of {}", self.describe_call(&c))),
                }
            }
            Value::Ext(code) => Some(format!("extension code {code}")),
            _ => None,
        }
    }

    /// Counts one visited value; false once the stream's budget is spent.
    fn spend_check_step(&self) -> bool {
        let used = self.check_steps.get() + 1;
        self.check_steps.set(used);
        used <= MAX_CHECK_STEPS
    }

    fn is_partial(&self, i: usize) -> bool {
        self.use_at(i).module == "functools" && self.use_at(i).name == "partial"
    }

    /// A value that is itself a callable made at load time.
    fn yields_callable(&self, v: &Value) -> bool {
        match v {
            Value::Global(j) => self.is_partial(*j) || self.use_at(*j).is_getattr(),
            Value::Call(c) => {
                matches!(&c.callee, Value::Global(j) if self.is_partial(*j) || self.use_at(*j).is_getattr())
            }
            _ => false,
        }
    }

    /// Calling `partial(f, *bound)` calls `f(*bound, *args)`; BUILD can
    /// replace `f` and the bound arguments (`partial.__setstate__` takes
    /// `(func, args, kwds, dict)`).
    fn check_partial(&mut self, at: usize, c: &Call, args: &Args, depth: u32) -> Option<String> {
        let (func, bound) = match c.state.borrow().as_ref() {
            Some(Value::Tuple(st)) if !st.is_empty() => (
                st.first().cloned(),
                match st.get(1) {
                    Some(Value::Tuple(b)) => b.to_vec(),
                    _ => Vec::new(),
                },
            ),
            _ => match &c.args {
                Value::Tuple(items) => (
                    items.first().cloned(),
                    items.get(1..).unwrap_or_default().to_vec(),
                ),
                _ => (None, Vec::new()),
            },
        };
        let func = func?;
        let forwarded = match args {
            Args::Shown(Value::Tuple(more)) => {
                let mut all = bound;
                all.extend(more.iter().cloned());
                Args::Owned(Value::Tuple(Rc::new(all)))
            }
            _ => Args::Unseen,
        };
        self.check_callable(at, &func, &forwarded.borrowed(), depth + 1)
            .map(|p| format!("a functools.partial over {p}"))
    }

    /// Each item of a container that is called later (backward hooks).
    fn check_container(&mut self, at: usize, v: &Value, depth: u32) -> Option<String> {
        let items: Vec<Value> = match v {
            Value::Tuple(items) => items.to_vec(),
            Value::List(items) => items.borrow().clone(),
            Value::Dict(pairs) => pairs.borrow().iter().map(|(_, v)| v.clone()).collect(),
            Value::Call(c) => {
                let mut kept = c.items.borrow().clone();
                if let Value::Tuple(args) = &c.args {
                    kept.extend(args.iter().cloned());
                }
                kept
            }
            _ => return None,
        };
        for item in items {
            // `OrderedDict([(key, hook)])` pickles its items as pairs.
            let inner = match &item {
                Value::Tuple(pair) => pair.to_vec(),
                Value::List(l) => l.borrow().clone(),
                other => vec![other.clone()],
            };
            for hook in inner {
                if let Some(p) = self.check_callable(at, &hook, &Args::Unseen, depth + 1) {
                    return Some(format!("a container of callables run later, holding {p}"));
                }
            }
        }
        None
    }

    /// NEWOBJ_EX hands keyword arguments too; a callable that calls its
    /// arguments gets no callable among them.
    fn audit_kwargs(&mut self, at: usize, cls: &Value, kwargs: &Value) {
        let Value::Global(i) = cls else { return };
        let i = *i;
        if !self.use_at(i).class.is_trusted()
            || globals::audit(&self.use_at(i).module, &self.use_at(i).name) == &Audit::Data
        {
            return;
        }
        let Value::Dict(pairs) = kwargs else { return };
        let values: Vec<Value> = pairs.borrow().iter().map(|(_, v)| v.clone()).collect();
        for v in values {
            if let Some(p) = self.check_callable(at, &v, &Args::Unseen, 1) {
                let detail = format!(
                    "`{}` gets a keyword argument that is {p}",
                    self.use_at(i).qualified()
                );
                self.events.push(Event::Gadget { offset: at, detail });
                return;
            }
        }
    }

    /// BUILD against the state the target really takes.
    fn check_build(&mut self, at: usize, call: &Call, state: &Value) {
        // `load_build` looks `__setstate__` up on the instance: a callable
        // an earlier BUILD planted in its `__dict__` is called with this
        // state.
        let planted = call
            .state
            .borrow()
            .as_ref()
            .and_then(|prev| dict_entry(prev, "__setstate__"));
        if let Some(setstate) = planted {
            let args = Value::Tuple(Rc::new(vec![state.clone()]));
            if let Some(p) = self.check_callable(at, &setstate, &Args::Shown(&args), 1) {
                self.events.push(Event::Gadget {
                    offset: at,
                    detail: format!("BUILD calls a planted `__setstate__`, which is {p}"),
                });
            }
        }
        self.check_special_names(at, state, false);
        let Some(i) = self.instance_class(call) else {
            return;
        };
        let (module, name) = (self.use_at(i).module.clone(), self.use_at(i).name.clone());
        match (module.as_str(), name.as_str()) {
            ("numpy", "dtype") => self.check_dtype_state(at, call, state),
            ("functools", "partial") => {
                // `partial.__setstate__((func, args, kwds, dict))` replaces
                // the function and the arguments bound to it.
                if let Value::Tuple(st) = state
                    && let Some(func) = st.first()
                {
                    let bound = match st.get(1) {
                        Some(t @ Value::Tuple(_)) => t.clone(),
                        _ => Value::Tuple(Rc::new(Vec::new())),
                    };
                    let func = func.clone();
                    if let Some(p) = self.check_callable(at, &func, &Args::Shown(&bound), 1) {
                        self.events.push(Event::Gadget {
                            offset: at,
                            detail: format!("BUILD makes a functools.partial call {p}"),
                        });
                    }
                }
            }
            ("joblib.numpy_pickle_compat" | "sklearn.externals.joblib.numpy_pickle_compat", _)
            | ("joblib.numpy_pickle" | "sklearn.externals.joblib.numpy_pickle", _) => {
                self.check_wrapper_state(at, &name, state)
            }
            ("statsmodels.base.data", _) => self.check_model_data_state(at, &name, state),
            ("sklearn_crfsuite._fileresource", "FileResource") => {
                self.check_file_resource_state(at, state)
            }
            _ => {}
        }
    }

    /// sklearn-crfsuite's `FileResource` (sklearn_crfsuite/_fileresource.py)
    /// owns a model file: `__setstate__` writes the pickled CRFsuite bytes to
    /// a new temporary file, and `__del__` unlinks the file its `name` names.
    /// A state that names a file turns that into deleting any path; only a
    /// state with no name (the temporary file is made at load) is data.
    fn check_file_resource_state(&mut self, at: usize, state: &Value) {
        let detail = match state {
            Value::Dict(_) => match dict_entry(state, "name") {
                None | Some(Value::None) => return,
                Some(name) => format!(
                    "sklearn-crfsuite `FileResource` state names the file {}: its `__del__` \
                     deletes that file",
                    self.describe(&name)
                ),
            },
            other => format!(
                "sklearn-crfsuite `FileResource` state is {}, not a dict shown to name no file \
                 (its `__del__` deletes the named file)",
                self.describe(other)
            ),
        };
        self.events.push(Event::StateHijack { offset: at, detail });
    }

    /// statsmodels' `ModelData.__setstate__` (statsmodels/base/data.py)
    /// rebuilds a formula model's design matrices when its state carries
    /// `restore_design_info`: patsy evaluates the state's `formula`, whose
    /// terms are Python expressions. Without that key it only updates
    /// `__dict__`. A state that is not a literal dict cannot be shown to
    /// lack the key.
    fn check_model_data_state(&mut self, at: usize, class: &str, state: &Value) {
        let detail = match state {
            Value::Dict(_) => match dict_entry(state, "restore_design_info") {
                None => return,
                Some(_) => {
                    let formula = dict_entry(state, "formula")
                        .map_or_else(|| "its formula".to_owned(), |f| self.describe(&f));
                    format!(
                        "statsmodels `{class}` state sets `restore_design_info`: loading evaluates \
                         the patsy formula {formula}, whose terms are Python expressions"
                    )
                }
            },
            other => format!(
                "statsmodels `{class}` state is {}, not a dict shown to lack \
                 `restore_design_info` (which makes loading evaluate a patsy formula)",
                self.describe(other)
            ),
        };
        self.events.push(Event::StateHijack { offset: at, detail });
    }

    /// PyTorch's rebuild helpers apply a state argument themselves:
    /// `_set_obj_state` (`_rebuild_from_type_v2`,
    /// `_rebuild_parameter_with_state`) `setattr`s both halves, and
    /// `_rebuild_from_type` assigns its dict as `__dict__`.
    fn check_state_argument(&mut self, at: usize, callee: usize, args: &Value) {
        if self.use_at(callee).module != "torch._tensor"
            && self.use_at(callee).module != "torch._utils"
        {
            return;
        }
        let via_setattr = match self.use_at(callee).name.as_str() {
            "_rebuild_from_type_v2" | "_rebuild_parameter_with_state" => true,
            "_rebuild_from_type" => false,
            _ => return,
        };
        if let Value::Tuple(items) = args
            && let Some(state) = items.get(3)
        {
            let state = state.clone();
            self.check_special_names(at, &state, via_setattr);
        }
    }

    /// The class a call makes an instance of: the callee, or the class
    /// argument of copyreg's reconstruction helpers.
    fn instance_class(&self, call: &Call) -> Option<usize> {
        let Value::Global(i) = &call.callee else {
            return None;
        };
        let helper = self.use_at(*i).module == "copyreg"
            && matches!(
                self.use_at(*i).name.as_str(),
                "_reconstructor" | "__newobj__" | "__newobj_ex__"
            );
        if !helper {
            return Some(*i);
        }
        match &call.args {
            Value::Tuple(args) => match args.first() {
                Some(Value::Global(j)) => Some(*j),
                _ => None,
            },
            _ => None,
        }
    }

    /// A dict state goes straight into the instance `__dict__`, slot state
    /// (and the whole state of a tensor, `_set_obj_state`) through
    /// `setattr`. Under a special name a callable changes what the object
    /// does when the loader or the model touches it next; `__class__` set
    /// through `setattr` swaps the object's type.
    fn check_special_names(&mut self, at: usize, state: &Value, dict_via_setattr: bool) {
        let (dict_state, slot_state) = match state {
            Value::Tuple(parts) if parts.len() == 2 => (parts.first(), parts.get(1)),
            other => (Some(other), None),
        };
        for (part, via_setattr) in [(dict_state, dict_via_setattr), (slot_state, true)] {
            let Some(Value::Dict(pairs)) = part else {
                continue;
            };
            let pairs = pairs.borrow().clone();
            for (k, v) in pairs {
                let Value::Str(key) = &k else { continue };
                let special = key.starts_with("__") && key.ends_with("__") && key.len() > 4;
                if !special || DESCRIPTIVE_DUNDERS.contains(&&**key) {
                    continue;
                }
                let problem = if via_setattr && &**key == "__class__" {
                    Some(format!("sets `__class__` to {}", self.describe(&v)))
                } else {
                    let callable = matches!(v, Value::Global(_))
                        || self.check_callable(at, &v, &Args::Unseen, 1).is_some()
                        || self.yields_callable(&v);
                    callable.then(|| format!("plants {} as `{key}`", self.describe(&v)))
                };
                if let Some(detail) = problem {
                    self.events.push(Event::StateHijack { offset: at, detail });
                }
            }
        }
    }

    /// `arraydescr_setstate` (numpy/_core/src/multiarray/descriptor.c)
    /// takes an 8- or 9-tuple `(version, byteorder, subarray, names, fields,
    /// elsize, alignment, flags[, metadata])` and, for versions 3 and 4,
    /// stores `flags` as given. NPY_ITEM_REFCOUNT/HASOBJECT (0x01),
    /// NPY_LIST_PICKLE (0x02) and NPY_ITEM_IS_POINTER (0x04) make NumPy treat
    /// the items as object pointers: on a dtype that holds numbers, the
    /// array's bytes become pointers the file chose.
    fn check_dtype_state(&mut self, at: usize, call: &Call, state: &Value) {
        const OBJECT_FLAGS: i64 = 0x01 | 0x02 | 0x04;
        let Value::Tuple(st) = state else { return };
        if st.len() < 8 {
            return; // versions 0-2 recompute the flags from the fields
        }
        let version = match st.first() {
            Some(Value::Int(v)) => *v,
            _ => return,
        };
        if version < 3 {
            return;
        }
        let flags = match st.get(7) {
            // A signed char from old NumPy is normalised the same way.
            Some(Value::Int(f)) if (-128..0).contains(f) => f + 128,
            Some(Value::Int(f)) => *f,
            _ => return,
        };
        let descr_is_object = match &call.args {
            Value::Tuple(args) => {
                matches!(args.first(), Some(Value::Str(d)) if d.trim_start_matches(['<', '>', '|', '=']).starts_with('O'))
            }
            _ => false,
        };
        let holds_objects = descr_is_object
            || st
                .iter()
                .skip(1)
                .take(4)
                .any(|part| self.mentions_object_dtype(part, 0));
        let claims_objects = flags & OBJECT_FLAGS != 0;
        if claims_objects && !holds_objects {
            self.events.push(Event::DtypeFlags {
                offset: at,
                detail: format!(
                    "flags {flags:#x} mark a dtype of plain values as holding Python objects"
                ),
            });
        } else if descr_is_object && flags & 0x01 == 0 {
            self.events.push(Event::DtypeFlags {
                offset: at,
                detail: format!("flags {flags:#x} drop reference counting from an object dtype"),
            });
        }
    }

    /// joblib's array wrappers: the array class they instantiate, and the
    /// sidecar file the old wrappers open next to the pickle.
    fn check_wrapper_state(&mut self, at: usize, wrapper: &str, state: &Value) {
        let Value::Dict(pairs) = state else { return };
        let pairs = pairs.borrow().clone();
        for (k, v) in pairs {
            let Value::Str(key) = &k else { continue };
            let problem = match &**key {
                "subclass" => self.check_callable(at, &v, &Args::Unseen, 1),
                "init_args" => match &v {
                    Value::Tuple(a) => a
                        .first()
                        .and_then(|cls| self.check_callable(at, cls, &Args::Unseen, 1)),
                    _ => None,
                },
                "filename" => match &v {
                    Value::Str(f) if is_plain_file_name(f) => None,
                    other => Some(format!(
                        "{} as the sidecar file to load, not a plain name beside the pickle",
                        self.describe(other)
                    )),
                },
                _ => None,
            };
            if let Some(p) = problem {
                self.events.push(Event::StateHijack {
                    offset: at,
                    detail: format!("joblib `{wrapper}` state `{key}`: {p}"),
                });
            }
        }
    }

    /// Bytes handed to a loader are themselves files: remember where they
    /// are so the caller can scan them.
    fn nested_payloads(&mut self, at: usize, callee: usize, args: &Value) {
        let qualified = self.use_at(callee).qualified();
        // A loader's literal payload is scanned as a file of its own; a
        // payload computed at load time cannot be.
        if BYTE_LOADERS.contains(&qualified.as_str()) {
            let literal = matches!(args, Value::Tuple(items) if matches!(items.first(), Some(Value::Bytes { .. })));
            if !literal {
                let detail = format!("{qualified}({})", self.render_args(args));
                self.events
                    .push(Event::OpaquePayload { offset: at, detail });
            }
        }
        let loads_payload = BYTE_LOADERS.contains(&qualified.as_str())
            || matches!(qualified.as_str(), "io.BytesIO" | "_io.BytesIO")
            || matches!(self.use_at(callee).class, Class::Dangerous(_));
        let Value::Tuple(items) = args else { return };
        if !loads_payload {
            return;
        }
        for item in items.iter() {
            if let Value::Bytes { start, end } = item {
                self.events.push(Event::Nested {
                    offset: at,
                    start: *start,
                    end: *end,
                    via: qualified.clone(),
                });
            }
        }
    }

    fn build(&mut self, at: usize, state: Value) -> Step<()> {
        let target = self.top(at)?.clone();
        match &target {
            Value::Global(i) => {
                let target = self.use_at(*i).qualified();
                self.events.push(Event::Poison { offset: at, target });
            }
            Value::Call(call) => {
                self.check_build(at, call, &state);
                *call.state.borrow_mut() = Some(state);
                if self.is_joblib_wrapper(&call.callee) {
                    self.skip_joblib_array(at, call)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn is_joblib_wrapper(&self, callee: &Value) -> bool {
        matches!(callee, Value::Global(i)
            if matches!(self.use_at(*i).module.as_str(), "joblib.numpy_pickle" | "sklearn.externals.joblib.numpy_pickle")
                && self.use_at(*i).name == "NumpyArrayWrapper")
    }

    /// joblib writes each array's raw bytes straight into the file right
    /// after the wrapper's BUILD (`NumpyArrayWrapper.write_array`): an
    /// optional alignment pad, then the data — or, for object arrays, a
    /// whole nested pickle. Skip them the way `read_array` reads them.
    fn skip_joblib_array(&mut self, at: usize, call: &Call) -> Step<()> {
        let state = call.state.borrow();
        let Some(Value::Dict(state)) = state.as_ref() else {
            return self.broken(at, "joblib array wrapper without a state dict");
        };
        let state = state.borrow();
        let lookup = |key: &str| {
            state.iter().find_map(|(k, v)| match k {
                Value::Str(s) if &**s == key => Some(v.clone()),
                _ => None,
            })
        };
        let Some(dtype) = lookup("dtype") else {
            return self.broken(at, "joblib array wrapper without a dtype");
        };
        let itemsize = match self.dtype_itemsize(&dtype) {
            Some(DtypeSize::Object) => {
                drop(state);
                self.events.push(Event::ObjectArray { offset: at });
                return self.nested_stream(at);
            }
            Some(DtypeSize::Bytes(n)) => n,
            None => return self.broken(at, "joblib array with a dtype the scanner cannot size"),
        };
        let count = match lookup("shape") {
            Some(Value::Tuple(dims)) => {
                let mut count: u64 = 1;
                for d in dims.iter() {
                    let Value::Int(d) = d else {
                        return self.broken(at, "joblib array shape is not a tuple of integers");
                    };
                    let Ok(d) = u64::try_from(*d) else {
                        return self.broken(at, "joblib array shape has a negative dimension");
                    };
                    count = count.saturating_mul(d);
                }
                count
            }
            _ => return self.broken(at, "joblib array wrapper without a shape"),
        };
        let aligned = lookup("numpy_array_alignment_bytes").is_some();
        drop(state);
        if aligned {
            let pad = usize::from(self.take_byte(at)?);
            self.take(at, pad)?;
        }
        let bytes = count.saturating_mul(itemsize);
        let Ok(bytes) = usize::try_from(bytes) else {
            return self.broken(at, "joblib array larger than the address space");
        };
        self.take(at, bytes)?;
        Ok(())
    }

    /// A nested pickle stream inline in this one (joblib object arrays).
    fn nested_stream(&mut self, at: usize) -> Step<()> {
        if self.nesting >= self.limits.max_pickle_nesting {
            return self.budget(
                at,
                format!(
                    "pickles nested deeper than {}",
                    self.limits.max_pickle_nesting
                ),
            );
        }
        let saved_stack = std::mem::take(&mut self.stack);
        let saved_marks = std::mem::take(&mut self.marks);
        let saved_memo = std::mem::take(&mut self.memo);
        self.nesting += 1;
        let result = self.run_stream();
        self.nesting -= 1;
        self.stack = saved_stack;
        self.marks = saved_marks;
        self.memo = saved_memo;
        self.pos = result?;
        Ok(())
    }

    fn dtype_itemsize(&self, dtype: &Value) -> Option<DtypeSize> {
        let Value::Call(call) = dtype else {
            return None;
        };
        let Value::Global(i) = call.callee else {
            return None;
        };
        if self.use_at(i).module != "numpy" || self.use_at(i).name != "dtype" {
            return None;
        }
        let Value::Tuple(args) = &call.args else {
            return None;
        };
        let Some(Value::Str(descr)) = args.first() else {
            return None;
        };
        // A structured dtype pickles as 'V<n>' with its fields in the BUILD
        // state; any object field makes the whole array an object array.
        if descr.starts_with('V') {
            let state = call.state.borrow();
            if state
                .as_ref()
                .is_some_and(|s| self.mentions_object_dtype(s, 0))
            {
                return Some(DtypeSize::Object);
            }
        }
        descr_itemsize(descr)
    }

    fn mentions_object_dtype(&self, v: &Value, depth: u32) -> bool {
        if depth > 16 || !self.spend_check_step() {
            return true;
        }
        match v {
            Value::Call(c) => {
                if let Value::Tuple(args) = &c.args
                    && let Some(Value::Str(d)) = args.first()
                    && d.starts_with('O')
                {
                    return true;
                }
                c.state
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| self.mentions_object_dtype(s, depth + 1))
            }
            Value::Tuple(items) => items
                .iter()
                .any(|i| self.mentions_object_dtype(i, depth + 1)),
            Value::Dict(d) => d
                .borrow()
                .iter()
                .any(|(_, v)| self.mentions_object_dtype(v, depth + 1)),
            _ => false,
        }
    }

    fn describe(&self, v: &Value) -> String {
        match v {
            Value::Str(s) => format!("{:?}", short(s)),
            Value::LongStr(_) => "a long string".into(),
            Value::Global(i) => format!("`{}`", self.use_at(*i).qualified()),
            Value::Call(c) => format!("the result of {}", self.describe_call(c)),
            Value::Bytes { .. } => "bytes".into(),
            Value::Int(n) => n.to_string(),
            Value::None => "None".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Ext(c) => format!("extension code {c}"),
            _ => "a computed value".into(),
        }
    }

    fn describe_call(&self, c: &Call) -> String {
        match &c.callee {
            Value::Global(i) => format!("`{}(…)`", self.use_at(*i).qualified()),
            Value::Call(inner) => format!("a call on {}", self.describe_call(inner)),
            _ => "a computed call".into(),
        }
    }

    fn render_args(&self, args: &Value) -> String {
        let Value::Tuple(items) = args else {
            return self.render(args, 0);
        };
        items
            .iter()
            .map(|v| self.render(v, 0))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn render(&self, v: &Value, depth: u32) -> String {
        if depth > 3 {
            return "…".into();
        }
        match v {
            Value::Str(s) | Value::LongStr(s) => format!("{:?}", short(s)),
            Value::Bytes { start, end } => {
                let b = self.data.get(*start..*end).unwrap_or_default();
                let head = b.get(..80).unwrap_or(b);
                format!("b{:?}", short(&String::from_utf8_lossy(head)))
            }
            Value::Int(n) => n.to_string(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::None => "None".into(),
            Value::Global(i) => self.use_at(*i).qualified(),
            Value::Call(c) => {
                let callee = match &c.callee {
                    Value::Global(i) => self.use_at(*i).qualified(),
                    other => self.render(other, depth + 1),
                };
                format!("{callee}({})", self.render_tuple_items(&c.args, depth + 1))
            }
            Value::Tuple(items) => {
                let inner: Vec<_> = items
                    .iter()
                    .take(8)
                    .map(|i| self.render(i, depth + 1))
                    .collect();
                format!("({})", inner.join(", "))
            }
            Value::List(items) => {
                let items = items.borrow();
                let inner: Vec<_> = items
                    .iter()
                    .take(8)
                    .map(|i| self.render(i, depth + 1))
                    .collect();
                format!("[{}]", inner.join(", "))
            }
            Value::Dict(_) => "{…}".into(),
            _ => "…".into(),
        }
    }

    fn render_tuple_items(&self, args: &Value, depth: u32) -> String {
        match args {
            Value::Tuple(items) => items
                .iter()
                .take(8)
                .map(|i| self.render(i, depth))
                .collect::<Vec<_>>()
                .join(", "),
            other => self.render(other, depth),
        }
    }

    // --- stack, memo and input primitives ---------------------------------

    fn pop(&mut self, at: usize) -> Step<Value> {
        if self.above_mark() == 0 {
            return self.broken(at, "stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.broken(at, "stack underflow"),
        }
    }

    fn top(&self, at: usize) -> Step<&Value> {
        if self.above_mark() == 0 {
            return self.broken(at, "stack underflow");
        }
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.broken(at, "stack underflow"),
        }
    }

    /// Values above the topmost mark (all values when there is no mark).
    fn above_mark(&self) -> usize {
        self.stack.len() - self.marks.last().copied().unwrap_or(0)
    }

    fn pop_mark(&mut self, at: usize) -> Step<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return self.broken(at, "MARK expected but none on the stack");
        };
        Ok(self.stack.split_off(mark))
    }

    fn extend_list(&mut self, at: usize, items: Vec<Value>) -> Step<()> {
        match self.top(at)? {
            Value::List(list) => {
                let mut list = list.borrow_mut();
                let room = MAX_KEPT_ITEMS.saturating_sub(list.len());
                list.extend(items.into_iter().take(room));
                Ok(())
            }
            // APPEND on an object calls its append/extend method; the
            // object came from an import that is checked on its own. The
            // values are kept: a container of hooks is called later.
            Value::Call(call) => {
                let mut kept = call.items.borrow_mut();
                let room = MAX_KEPT_ITEMS.saturating_sub(kept.len());
                kept.extend(items.into_iter().take(room));
                Ok(())
            }
            _ => self.broken(at, "APPEND on something that is not a list"),
        }
    }

    fn extend_dict(&mut self, at: usize, items: Vec<(Value, Value)>) -> Step<()> {
        match self.top(at)? {
            Value::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                for (k, v) in items {
                    if let Value::Str(key) = &k
                        && let Some(slot) = dict
                            .iter_mut()
                            .find(|(old, _)| matches!(old, Value::Str(o) if o == key))
                    {
                        slot.1 = v;
                        continue;
                    }
                    if dict.len() < MAX_KEPT_ITEMS {
                        dict.push((k, v));
                    }
                }
                Ok(())
            }
            // SETITEM on an object calls its __setitem__; see extend_list.
            Value::Call(call) => {
                let mut kept = call.items.borrow_mut();
                let room = MAX_KEPT_ITEMS.saturating_sub(kept.len());
                kept.extend(items.into_iter().map(|(_, v)| v).take(room));
                Ok(())
            }
            _ => self.broken(at, "SETITEM on something that is not a dict"),
        }
    }

    /// The memo key argument: a decimal line (GET/PUT), one byte
    /// (BINGET/BINPUT) or four (LONG_BINGET/LONG_BINPUT).
    fn memo_key(&mut self, op: u8, at: usize) -> Step<u64> {
        match op {
            GET | PUT => {
                let line = self.line(at)?;
                match parse_int(line).and_then(|k| u64::try_from(k).ok()) {
                    Some(key) => Ok(key),
                    None => self.broken(at, "memo key is not a number"),
                }
            }
            BINGET | BINPUT => Ok(u64::from(self.take_byte(at)?)),
            _ => Ok(self.len_u32(at)? as u64),
        }
    }

    fn memo_get(&mut self, at: usize, key: u64) -> Step<()> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.broken(at, format!("memo key {key} read before it was written")),
        }
    }

    fn memo_put(&mut self, at: usize, key: u64) -> Step<()> {
        let v = self.top(at)?.clone();
        if self.memo.len() as u64 >= self.limits.max_pickle_memo && !self.memo.contains_key(&key) {
            return self.budget(
                at,
                format!("more than {} memo entries", self.limits.max_pickle_memo),
            );
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn take(&mut self, at: usize, n: usize) -> Step<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| Some((end, data.get(self.pos..end)?)));
        match slice {
            Some((end, s)) => {
                self.pos = end;
                Ok(s)
            }
            None => self.broken(
                at,
                format!("argument of {n} bytes runs past the end of the data (truncated)"),
            ),
        }
    }

    /// A fixed-width argument, for the `from_le_bytes` of its integer.
    fn take_array<const N: usize>(&mut self, at: usize) -> Step<[u8; N]> {
        let b = self.take(at, N)?;
        match b.try_into() {
            Ok(a) => Ok(a),
            Err(_) => self.broken(at, format!("argument of {N} bytes is short")),
        }
    }

    fn take_byte(&mut self, at: usize) -> Step<u8> {
        let [b] = self.take_array(at)?;
        Ok(b)
    }

    fn line(&mut self, at: usize) -> Step<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or_default();
        let limit = rest.len().min(self.limits.max_string_bytes as usize);
        let window = rest.get(..limit).unwrap_or(rest);
        match window.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let line = window.get(..n).unwrap_or_default();
                self.pos += n + 1;
                Ok(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => self.broken(
                at,
                "text argument without a terminating newline (truncated)",
            ),
        }
    }

    fn len_u32(&mut self, at: usize) -> Step<usize> {
        Ok(u32::from_le_bytes(self.take_array(at)?) as usize)
    }

    fn len_u64(&mut self, at: usize) -> Step<usize> {
        let n = u64::from_le_bytes(self.take_array(at)?);
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => self.broken(at, format!("declared length {n} exceeds the address space")),
        }
    }

    /// Protocol 0–2 byte strings: Python 3 decodes them as text (ASCII or
    /// latin-1) by default, which is how names reach STACK_GLOBAL.
    fn push_byte_string(&mut self, at: usize, n: usize) -> Step<()> {
        let b = self.take(at, n)?;
        let s: String = b.iter().map(|&c| char::from(c)).collect();
        self.stack.push(str_value(&s));
        Ok(())
    }

    fn push_unicode(&mut self, at: usize, n: usize) -> Step<()> {
        let b = self.take(at, n)?;
        match decode_surrogatepass(b) {
            Some(s) => {
                self.stack.push(str_value(&s));
                Ok(())
            }
            None => self.broken(at, "unicode string is not valid UTF-8"),
        }
    }

    fn push_bytes(&mut self, at: usize, n: usize) -> Step<()> {
        let start = self.pos;
        self.take(at, n)?;
        self.stack.push(Value::Bytes {
            start,
            end: self.pos,
        });
        Ok(())
    }
}

/// The arguments a callable receives: the ones the file shows, or
/// arguments a helper makes up that the file does not show.
enum Args<'v> {
    Shown(&'v Value),
    Owned(Value),
    Unseen,
}

impl Args<'_> {
    fn borrowed(&self) -> Args<'_> {
        match self {
            Args::Shown(v) => Args::Shown(v),
            Args::Owned(v) => Args::Shown(v),
            Args::Unseen => Args::Unseen,
        }
    }
}

/// The value under a string key of a dict state, or of the dict half of a
/// `(dict, slots)` state.
fn dict_entry(state: &Value, key: &str) -> Option<Value> {
    let dicts: Vec<&Value> = match state {
        Value::Tuple(parts) if parts.len() == 2 => parts.iter().collect(),
        other => vec![other],
    };
    dicts.into_iter().find_map(|d| match d {
        Value::Dict(pairs) => pairs.borrow().iter().find_map(|(k, v)| match k {
            Value::Str(s) if &**s == key => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// The unpickler decodes BINUNICODE strings as UTF-8 with `surrogatepass`
/// (pickle.py, _pickle.c): the three-byte encodings of lone surrogates
/// (U+D800..U+DFFF, which strict UTF-8 rejects) load as those code points.
/// Rust strings cannot hold them, so each becomes U+FFFD: a name holding one
/// matches no table row and stays unknown. Any other invalid byte fails the
/// load, and so fails here.
fn decode_surrogatepass(b: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let mut rest = match std::str::from_utf8(b) {
        Ok(s) => return Some(std::borrow::Cow::Borrowed(s)),
        Err(_) => b,
    };
    let mut out = String::with_capacity(b.len());
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return Some(std::borrow::Cow::Owned(out));
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).ok()?);
                match bad {
                    [0xED, 0xA0..=0xBF, 0x80..=0xBF, tail @ ..] => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = tail;
                    }
                    _ => return None,
                }
            }
        }
    }
}

/// A file name that `os.path.join(dirname, name)` keeps in `dirname`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', ':', '\0'])
}

enum DtypeSize {
    Bytes(u64),
    Object,
}

/// Item size of a NumPy type string such as `f8`, `<i4`, `U10`, `S5`, `O8`.
fn descr_itemsize(descr: &str) -> Option<DtypeSize> {
    let d = descr.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = d.chars();
    let kind = chars.next()?;
    let digits = chars.as_str();
    if kind == 'O' {
        return Some(DtypeSize::Object);
    }
    let n: u64 = if digits.is_empty() {
        match kind {
            '?' | 'b' | 'B' => 1,
            _ => return None,
        }
    } else {
        digits.split('[').next()?.parse().ok()?
    };
    match kind {
        'f' | 'i' | 'u' | 'c' | 'b' | 'V' | 'S' | 'a' | '?' | 'B' | 'M' | 'm' => {
            Some(DtypeSize::Bytes(n))
        }
        'U' => n.checked_mul(4).map(DtypeSize::Bytes),
        _ => None,
    }
}

fn cap(mut items: Vec<Value>) -> Vec<Value> {
    items.truncate(MAX_KEPT_ITEMS);
    items
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if out.len() < MAX_KEPT_ITEMS {
            out.push((k, v));
        }
    }
    out
}

fn str_value(s: &str) -> Value {
    if s.len() > MAX_KEPT_STR {
        let mut end = MAX_KEPT_STR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Value::LongStr(Rc::from(&s[..end]))
    } else {
        Value::Str(Rc::from(s))
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(120).collect();
        format!("{cut}…")
    } else {
        s.to_string()
    }
}

/// Characters Python's `int()` accepts in a protocol-0 INT or LONG line
/// (sign, digits, underscores, surrounding whitespace).
const INT_CHARS: &[u8] = b"0123456789+-_ \t\r\x0b\x0c";
/// And `float()`: also a point, exponents, `inf`, `infinity` and `nan` in
/// any case.
const FLOAT_CHARS: &[u8] = b"0123456789+-_. \t\r\x0b\x0ceEiInNfFtTyYaA";

/// Whether a protocol-0 number line could be a number at all. Deliberately
/// looser than Python (never reject what it accepts, or a payload behind
/// the line would go unseen), but text such as `FUNC:_ZN...` is no number:
/// without this, a symbol list reads as thousands of FLOAT opcodes.
fn numeric_line(line: &[u8], allowed: &[u8]) -> bool {
    line.iter().all(|b| allowed.contains(b)) && line.iter().any(|b| b.is_ascii_alphanumeric())
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// LONG1/LONG4 little-endian two's complement; kept when it fits an i64.
fn long_value(b: &[u8]) -> Value {
    let Some(&high) = b.last() else {
        return Value::Int(0);
    };
    let negative = high & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    match buf.get_mut(..b.len()) {
        Some(low) => low.copy_from_slice(b),
        None => return Value::BigInt,
    }
    Value::Int(i64::from_le_bytes(buf))
}

fn is_public_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Decodes the argument of protocol-0 `STRING`: a Python `repr` of a byte
/// string, single- or double-quoted, with backslash escapes.
pub fn decode_repr_string(line: &[u8]) -> Option<String> {
    let (&q, rest) = line.split_first()?;
    if q != b'\'' && q != b'"' {
        return None;
    }
    let (&last, body) = rest.split_last()?;
    if last != q {
        return None;
    }
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = body.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(char::from(c));
            continue;
        }
        let Some(&e) = body.get(i) else {
            out.push('\\');
            break;
        };
        i += 1;
        match e {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v & 0xff).unwrap_or('?'));
            }
            b'x' => {
                let hex = body.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(char::from(v));
                        i += 2;
                    }
                    None => out.push_str("\\x"),
                }
            }
            b'a' => out.push('\x07'),
            b'b' => out.push('\x08'),
            b'f' => out.push('\x0c'),
            b'v' => out.push('\x0b'),
            b'\n' => {}
            other => out.push(char::from(other)),
        }
    }
    Some(out)
}

/// Decodes the argument of protocol-0 `UNICODE` ("raw-unicode-escape"):
/// only `\uXXXX` and `\UXXXXXXXX` are escapes; every other byte is latin-1.
pub fn decode_raw_unicode_escape(line: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = line.get(i) {
        if c == b'\\' {
            let width = match line.get(i + 1) {
                Some(b'u') => 4,
                Some(b'U') => 8,
                _ => 0,
            };
            if width > 0 {
                let hex = line
                    .get(i + 2..i + 2 + width)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(ch) = hex
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                {
                    out.push(ch);
                    i += 2 + width;
                    continue;
                }
            }
        }
        out.push(char::from(c));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8]) -> Stream {
        walk(data, 0, &Limits::default(), &GlobalLists::default())
    }

    fn imports(s: &Stream) -> Vec<String> {
        s.uses.iter().map(GlobalUse::qualified).collect()
    }

    fn stops(s: &Stream) -> bool {
        matches!(s.end, End::Stop { .. })
    }

    #[test]
    fn integers_and_longs() {
        for p in [
            &b"I42\n."[..],
            b"I01\n.",
            b"J\xff\xff\xff\xff.",
            b"K\x07.",
            b"M\x01\x02.",
            b"L123L\n.",
            b"\x8a\x02\x01\x00.",
            b"\x8b\x01\x00\x00\x00\x05.",
        ] {
            let s = run(p);
            assert!(stops(&s), "{p:?}: {:?}", s.end);
        }
        assert!(matches!(
            run(b"J\xff\xff\xff\xff.").result,
            Some(Value::Int(-1))
        ));
        assert!(matches!(run(b"\x8a\x01\xff.").result, Some(Value::Int(-1))));
        assert!(matches!(run(b"I01\n.").result, Some(Value::Bool(true))));
    }

    #[test]
    fn string_opcodes_decode_names() {
        assert_eq!(decode_repr_string(b"'o\\x73'").as_deref(), Some("os"));
        assert_eq!(
            decode_repr_string(b"\"sy\\163tem\"").as_deref(),
            Some("system")
        );
        assert_eq!(decode_repr_string(b"'unterminated"), None);
        assert_eq!(decode_raw_unicode_escape(b"\\u006fs"), "os");
        assert_eq!(decode_raw_unicode_escape(b"a\\b"), "a\\b");
        for p in [
            &b"S'x'\n."[..],
            b"T\x01\x00\x00\x00x.",
            b"U\x01x.",
            b"Vx\n.",
            b"X\x01\x00\x00\x00x.",
            b"\x8c\x01x.",
            b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00x.",
        ] {
            assert!(
                matches!(run(p).result, Some(Value::Str(ref s)) if &**s == "x"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn bytes_are_ranges_not_copies() {
        let s = run(b"C\x03abc.");
        assert!(matches!(s.result, Some(Value::Bytes { start: 2, end: 5 })));
        assert!(stops(&run(b"B\x01\x00\x00\x00a.")));
        assert!(stops(&run(b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.")));
        assert!(stops(&run(b"\x96\x01\x00\x00\x00\x00\x00\x00\x00a.")));
    }

    #[test]
    fn declared_lengths_past_the_end_are_errors_not_allocations() {
        let s = run(b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.");
        assert!(matches!(s.end, End::Error { .. }));
        let s = run(b"X\xff\xff\xff\xff");
        assert!(matches!(s.end, End::Error { .. }));
    }

    #[test]
    fn containers() {
        for p in [
            &b"(K\x01K\x02t."[..],
            b")K\x01\x85K\x02\x86K\x03\x87.",
            b"](K\x01K\x02e.",
            b"]K\x01a.",
            b"(K\x01l.",
            b"}(K\x01K\x02u.",
            b"}K\x01K\x02s.",
            b"(K\x01K\x02d.",
            b"\x8f(K\x01\x90.",
            b"(K\x01\x91.",
        ] {
            assert!(stops(&run(p)), "{p:?}: {:?}", run(p).end);
        }
    }

    #[test]
    fn stack_manipulation() {
        assert!(stops(&run(b"K\x01\x32\x30.")), "DUP then POP");
        assert!(stops(&run(b"K\x01(K\x02K\x031.")), "POP_MARK");
        assert!(
            stops(&run(b"K\x01(0.")),
            "POP of an empty mark pops the mark"
        );
        assert!(matches!(run(b"0.").end, End::Error { .. }), "underflow");
        assert!(
            matches!(run(b"t.").end, End::Error { .. }),
            "TUPLE without MARK"
        );
    }

    #[test]
    fn memo_round_trips() {
        assert!(stops(&run(b"K\x01p0\ng0\n.")));
        assert!(stops(&run(b"K\x01q\x05h\x05.")));
        assert!(stops(&run(b"K\x01r\x05\x00\x00\x00j\x05\x00\x00\x00.")));
        assert!(stops(&run(b"K\x01\x94h\x00.")));
        assert!(
            matches!(run(b"h\x09.").end, End::Error { .. }),
            "GET of a missing key"
        );
    }

    #[test]
    fn memoize_keys_follow_memo_size() {
        // Two MEMOIZEs then BINGET 1 must give the second value ("os").
        let s = run(b"\x8c\x01x\x94\x8c\x02os\x94\x8c\x06system\x94h\x01h\x02\x93.");
        assert_eq!(imports(&s), ["os.system"]);
    }

    #[test]
    fn frames_and_protocols() {
        assert!(stops(&run(
            b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00N."
        )));
        assert_eq!(run(b"\x80\x05N.").protocol, 5);
        assert!(matches!(run(b"\x80\x09N.").end, End::Error { .. }));
    }

    #[test]
    fn persistent_ids() {
        assert!(stops(&run(b"Pkey\n.")));
        assert!(stops(&run(b"(X\x07\x00\x00\x00storagetQ.")));
    }

    #[test]
    fn calls_record_their_arguments() {
        let s = run(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
        assert_eq!(s.uses[0].call.as_deref(), Some("os.system(\"id\")"));
        let s = run(b"\x80\x04cmod\nCls\n)}\x92.");
        assert!(s.uses[0].call.is_some(), "NEWOBJ_EX calls the class");
        let s = run(b"\x80\x02cmod\nCls\n)\x81.");
        assert!(s.uses[0].call.is_some(), "NEWOBJ calls the class");
    }

    #[test]
    fn budgets_stop_the_walk() {
        let tight = Limits {
            max_pickle_opcodes: 10,
            ..Limits::default()
        };
        let s = walk(&[b'N'; 100], 0, &tight, &GlobalLists::default());
        assert!(matches!(s.end, End::Budget { .. }));
        let tight = Limits {
            max_pickle_memo: 2,
            ..Limits::default()
        };
        let s = walk(b"N\x94\x94\x94\x94.", 0, &tight, &GlobalLists::default());
        assert!(matches!(s.end, End::Budget { .. }));
        let tight = Limits {
            max_pickle_stack: 3,
            ..Limits::default()
        };
        let s = walk(b"NNNNNN.", 0, &tight, &GlobalLists::default());
        assert!(matches!(s.end, End::Budget { .. }));
    }

    #[test]
    fn python2_names_are_renamed_below_protocol_3_only() {
        let s = run(b"\x80\x02c__builtin__\nset\n)R.");
        assert_eq!(imports(&s), ["builtins.set"]);
        assert_eq!(s.uses[0].class, Class::Safe);
        let s = run(b"c__builtin__\nlong\n(K\x01tR.");
        assert_eq!(imports(&s), ["builtins.int"], "no PROTO means protocol 0");
        let s = run(b"\x80\x04c__builtin__\nset\n)R.");
        assert_eq!(imports(&s), ["__builtin__.set"]);
        assert_eq!(s.uses[0].class, Class::Unknown);
        let s = run(b"\x80\x04c__builtin__\neval\n)R.");
        assert!(matches!(s.uses[0].class, Class::Dangerous(_)));
        let s = run(b"\x80\x02c__builtin__\nreduce\n)R.");
        assert_eq!(imports(&s), ["functools.reduce"]);
        assert!(matches!(s.uses[0].class, Class::Dangerous(_)));
    }

    fn gadgets(s: &Stream) -> usize {
        s.events
            .iter()
            .filter(|e| matches!(e, Event::Gadget { .. }))
            .count()
    }

    #[test]
    fn helper_arguments_are_checked_by_their_audit() {
        // __randomstate_ctor(name, ctor) calls ctor(name).
        let s = run(b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\nX\x07\x00\x00\x00MT19937cnumpy.random._pickle\n__bit_generator_ctor\n\x86R.");
        assert_eq!(gadgets(&s), 0);
        let s =
            run(b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\nC\x02idcos\nsystem\n\x86R.");
        assert_eq!(gadgets(&s), 1);
        // A bit-generator class (NumPy 2) is instantiated: data-only.
        let s = run(b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\ncnumpy.random._mt19937\nMT19937\n\x85R.");
        assert_eq!(gadgets(&s), 0);
        // A defaultdict factory computed by getattr.
        let s = run(b"\x80\x02ccollections\ndefaultdict\ncbuiltins\ngetattr\ncnumpy\nndarray\nX\x06\x00\x00\x00tofile\x86R\x85R.");
        assert_eq!(gadgets(&s), 1);
    }

    #[test]
    fn bytes_reaching_a_loader_through_a_helper_are_nested_files() {
        let s = run(b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\nC\x03abcctorch.storage\n_load_from_bytes\n\x86R.");
        assert!(s.events.iter().any(
            |e| matches!(e, Event::Nested { via, .. } if via == "torch.storage._load_from_bytes")
        ));
    }

    /// Memo sharing makes the value graph exponentially larger than the
    /// file: a `numpy.dtype` state whose fields hold a tuple of 60 copies of
    /// the previous level, eight levels deep. The object-dtype search stops
    /// at its budget and judges the rest the worst way.
    #[test]
    fn shared_values_do_not_make_checks_exponential() {
        let mut p = b"\x80\x02K\x01q\x01".to_vec();
        for level in 1u8..9 {
            p.extend_from_slice(b"(");
            for _ in 0..60 {
                p.extend_from_slice(&[b'h', level]);
            }
            p.extend_from_slice(&[b't', b'q', level + 1]);
        }
        p.extend_from_slice(b"cnumpy\ndtype\nX\x02\x00\x00\x00V8\x85R");
        p.extend_from_slice(b"(K\x03X\x01\x00\x00\x00|NNh\x09K\x08K\x01K\x00tb.");
        let started = std::time::Instant::now();
        let s = run(&p);
        assert!(stops(&s), "{:?}", s.end);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn dtype_item_sizes() {
        assert!(matches!(descr_itemsize("<f8"), Some(DtypeSize::Bytes(8))));
        assert!(matches!(descr_itemsize("U10"), Some(DtypeSize::Bytes(40))));
        assert!(matches!(descr_itemsize("|b1"), Some(DtypeSize::Bytes(1))));
        assert!(matches!(descr_itemsize("O8"), Some(DtypeSize::Object)));
        assert!(descr_itemsize("x3").is_none());
    }
}

#[cfg(test)]
mod cycle_tests {
    use super::*;

    /// Found by fuzzing (LeakSanitizer): `L.append(L)`, a dict holding
    /// itself, and BUILD state holding its own object are reference cycles
    /// that reference counting never frees. After a walk none survives.
    #[test]
    fn self_referencing_values_are_freed() {
        for p in [
            &b"]q\x00h\x00a."[..],
            b"}q\x00K\x01h\x00s.",
            b"cmod\nC\n)Rq\x00}q\x01K\x01h\x00sb.",
        ] {
            let limits = Limits::default();
            let extra = GlobalLists::default();
            let mut w = Walker::new(p, 0, &limits, &extra);
            let _ = w.run();
            let weak = w.lists.clone();
            let weak_dicts = w.dicts.clone();
            let weak_calls = w.calls.clone();
            w.break_cycles();
            drop(w);
            assert!(
                weak.iter().all(|l| l.strong_count() == 0),
                "{p:?}: a list leaked"
            );
            assert!(
                weak_dicts.iter().all(|d| d.strong_count() == 0),
                "{p:?}: a dict leaked"
            );
            assert!(
                weak_calls.iter().all(|c| c.strong_count() == 0),
                "{p:?}: a call leaked"
            );
        }
    }
}
