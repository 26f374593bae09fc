//! The abstract values of the template data-flow analysis: what the
//! analysis knows about a value without rendering anything.
//!
//! A string is a sequence of known literal pieces and holes; a hole records
//! who picks its characters ([`Hole`]). A sandbox escape needs a name that
//! begins and ends with `__`; a name can only be steered there by the
//! template's author if those underscores come from the template itself
//! (its constants, `%c` of numbers, `str()` of engine objects), so that is
//! what [`Val::can_be_dunder`] asks.

/// Longest literal a folded string keeps (`'_' * 10**9` must not allocate).
pub const MAX_FOLDED_LEN: usize = 256;

/// Characters kept at each end of a string that grew too long.
const KEPT_ENDS: usize = 16;

/// Pieces in one string before it collapses to a hole.
const MAX_PIECES: usize = 32;

/// Items a literal list or map keeps in order.
pub const MAX_ITEMS: usize = 64;

/// Size of one value (items, entries and pieces, nested) before it is
/// summarised: self-referencing `{% set %}` chains must not grow values
/// from one pass of the analysis to the next.
const MAX_WEIGHT: usize = 512;

/// Who picks the characters of a string the analysis cannot spell out.
/// Ordered: a join of two holes is the larger.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Hole {
    /// Never an underscore: digits, booleans, lorem ipsum text.
    Plain,
    /// The conversation (messages, tools): chosen by whoever chats, not by
    /// the template.
    Data,
    /// Characters the template picks, `_` included: pieces of its own
    /// constants, `%c` of numbers, `str()` of engine objects, slices of these.
    Chars,
}

#[derive(Clone, PartialEq, Debug)]
pub enum Piece {
    Lit(String),
    Hole(Hole),
}

#[derive(Clone, PartialEq, Debug)]
pub enum Val {
    /// A name the template binds, before any assignment reached it: the
    /// bottom of the analysis. Operations on it give `Unset` again.
    Unset,
    Str(Vec<Piece>),
    /// Numbers, booleans and `none`; the integer where it is known.
    Num(Option<i64>),
    /// A list or tuple. `exact`: the items in order (a literal); otherwise
    /// the one item stands for all of them.
    Seq {
        items: Vec<Val>,
        exact: bool,
    },
    /// A dict or namespace the template built, with its known keys in order.
    Map(Vec<(String, Val)>),
    /// The render context (messages, tools, ...) and whatever is read from it.
    Data,
    /// Objects of the template engine: its globals, `loop`, `self`, callables,
    /// methods. Their attributes lead into Python internals.
    Engine,
    /// A value of unknown shape whose characters come from `Hole`.
    Any(Hole),
}

impl Val {
    pub fn lit(s: impl Into<String>) -> Val {
        Val::text(vec![Piece::Lit(s.into())])
    }

    pub fn hole(h: Hole) -> Val {
        Val::Str(vec![Piece::Hole(h)])
    }

    /// A string from pieces, normalised (adjacent literals and holes merged)
    /// and collapsed to one hole once it gets long.
    pub fn text(pieces: Vec<Piece>) -> Val {
        let mut out: Vec<Piece> = Vec::new();
        for p in pieces {
            match (out.last_mut(), p) {
                (_, Piece::Lit(s)) if s.is_empty() => {}
                (Some(Piece::Lit(a)), Piece::Lit(b)) if a.len() <= MAX_FOLDED_LEN => a.push_str(&b),
                (Some(Piece::Hole(a)), Piece::Hole(b)) => *a = (*a).max(b),
                (_, p) => out.push(p),
            }
        }
        let len: usize = out
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => s.len(),
                Piece::Hole(_) => 1,
            })
            .sum();
        if len > MAX_FOLDED_LEN || out.len() > MAX_PIECES {
            // Keep the ends: whether a name can start and end with `__`
            // is what the analysis asks of a string.
            let head = match out.first() {
                Some(Piece::Lit(s)) => s.chars().take(KEPT_ENDS).collect(),
                _ => String::new(),
            };
            let tail = match out.last() {
                Some(Piece::Lit(s)) => {
                    let n = s.chars().count().saturating_sub(KEPT_ENDS);
                    s.chars().skip(n).collect()
                }
                _ => String::new(),
            };
            let hole = pieces_hole(&out);
            return Val::Str(
                [Piece::Lit(head), Piece::Hole(hole), Piece::Lit(tail)]
                    .into_iter()
                    .filter(|p| !matches!(p, Piece::Lit(s) if s.is_empty()))
                    .collect(),
            );
        }
        Val::Str(out)
    }

    /// A list; long or heavy ones are summarised by one item.
    pub fn seq(items: Vec<Val>, exact: bool) -> Val {
        if exact && items.len() <= MAX_ITEMS {
            return Val::Seq { items, exact }.bounded();
        }
        let one = items.into_iter().fold(Val::Unset, join);
        Val::Seq {
            items: vec![one],
            exact: false,
        }
        .bounded()
    }

    pub fn map(entries: Vec<(String, Val)>) -> Val {
        if entries.len() > MAX_ITEMS {
            let h = entries
                .iter()
                .map(|(k, v)| key_hole(k).max(v.hole_kind()))
                .max()
                .unwrap_or(Hole::Plain);
            return Val::Any(h);
        }
        Val::Map(entries).bounded()
    }

    /// The value without its structure: what a binding that keeps changing
    /// becomes, so the analysis settles.
    pub fn widened(self) -> Val {
        match self {
            Val::Seq { .. } | Val::Map(_) if self.contains_engine() => Val::Engine,
            Val::Seq { .. } | Val::Map(_) => Val::Any(self.hole_kind()),
            Val::Num(_) => Val::Num(None),
            v => v,
        }
    }

    /// Replaces a value that grew too heavy by a summary of its characters.
    fn bounded(self) -> Val {
        if self.weight(0) > MAX_WEIGHT {
            return if self.contains_engine() {
                Val::Engine
            } else {
                Val::Any(self.hole_kind())
            };
        }
        self
    }

    fn weight(&self, acc: usize) -> usize {
        if acc > MAX_WEIGHT {
            return acc;
        }
        match self {
            Val::Seq { items, .. } => items.iter().fold(acc + 1, |a, v| v.weight(a)),
            Val::Map(e) => e.iter().fold(acc + 1, |a, (_, v)| v.weight(a + 1)),
            Val::Str(p) => acc + p.len(),
            _ => acc + 1,
        }
    }

    fn contains_engine(&self) -> bool {
        match self {
            Val::Engine => true,
            Val::Seq { items, .. } => items.iter().any(Val::contains_engine),
            Val::Map(e) => e.iter().any(|(_, v)| v.contains_engine()),
            _ => false,
        }
    }

    /// Who picks the characters of this value once it is a string.
    pub fn hole_kind(&self) -> Hole {
        match self {
            Val::Unset | Val::Num(_) => Hole::Plain,
            Val::Str(p) => pieces_hole(p),
            Val::Seq { items, .. } => items
                .iter()
                .map(Val::hole_kind)
                .max()
                .unwrap_or(Hole::Plain),
            Val::Map(e) => e
                .iter()
                .map(|(k, v)| key_hole(k).max(v.hole_kind()))
                .max()
                .unwrap_or(Hole::Plain),
            Val::Data => Hole::Data,
            Val::Engine => Hole::Chars,
            Val::Any(h) => *h,
        }
    }

    /// The string, when every character of it is known.
    pub fn known(&self) -> Option<String> {
        match self {
            Val::Str(p) => match p.as_slice() {
                [] => Some(String::new()),
                [Piece::Lit(s)] => Some(s.clone()),
                _ => None,
            },
            Val::Num(Some(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Val::Num(n) => *n,
            _ => None,
        }
    }

    /// The value as `~` and `{{ }}` turn it into a string.
    pub fn pieces(&self) -> Vec<Piece> {
        match self {
            Val::Str(p) => p.clone(),
            Val::Num(Some(n)) => vec![Piece::Lit(n.to_string())],
            Val::Unset => Vec::new(),
            v => vec![Piece::Hole(v.hole_kind())],
        }
    }

    /// The same value as an unknown string of its characters.
    pub fn opaque(&self) -> Val {
        match self {
            Val::Unset => Val::Unset,
            v => Val::hole(v.hole_kind()),
        }
    }

    pub fn is_engine(&self) -> bool {
        matches!(self, Val::Engine)
    }

    pub fn is_unset(&self) -> bool {
        matches!(self, Val::Unset)
    }

    /// What iterating over the value yields, all items joined.
    pub fn elem(&self) -> Val {
        match self {
            Val::Seq { items, .. } => items.iter().cloned().fold(Val::Unset, join),
            Val::Map(e) => e
                .iter()
                .map(|(k, _)| Val::lit(k.clone()))
                .fold(Val::Unset, join),
            Val::Str(_) => match self.known() {
                Some(s) => s
                    .chars()
                    .take(MAX_FOLDED_LEN)
                    .map(|c| Val::lit(c.to_string()))
                    .fold(Val::Unset, join),
                None => self.opaque(),
            },
            Val::Unset => Val::Unset,
            Val::Data => Val::Data,
            Val::Num(_) => Val::Any(Hole::Plain),
            Val::Engine => Val::Any(Hole::Chars),
            Val::Any(h) => Val::Any(*h),
        }
    }

    /// The items of a list-like value, in order, where they are known.
    pub fn items(&self) -> Option<Vec<Val>> {
        match self {
            Val::Seq { items, exact: true } => Some(items.clone()),
            Val::Map(e) => Some(e.iter().map(|(k, _)| Val::lit(k.clone())).collect()),
            Val::Str(_) => self.known().map(|s| {
                s.chars()
                    .take(MAX_ITEMS + 1)
                    .map(|c| Val::lit(c.to_string()))
                    .collect()
            }),
            _ => None,
        }
    }

    /// Element `index` of a `for a, b in ...` or `set a, b = ...` target of
    /// `count` names.
    pub fn unpack(&self, index: usize, count: usize) -> Val {
        match self {
            Val::Seq { items, exact: true } if items.len() == count => {
                items.get(index).cloned().unwrap_or(Val::Unset)
            }
            v => v.elem(),
        }
    }

    /// `value.name` once the lookup was judged.
    pub fn attr(&self, name: &str) -> Val {
        match self {
            Val::Map(e) => e
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or(Val::Any(Hole::Plain)),
            Val::Unset => Val::Unset,
            Val::Data => Val::Data,
            Val::Any(h) => Val::Any(*h),
            // Methods of strings, lists and numbers, engine internals.
            _ => Val::Engine,
        }
    }

    /// `value[key]` once the lookup was judged.
    pub fn item(&self, key: &Val) -> Val {
        match self {
            Val::Seq { items, exact } => match (key.int(), exact) {
                (Some(i), true) => {
                    let len = items.len() as i64;
                    let i = if i < 0 { i + len } else { i };
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| items.get(i).cloned())
                        .unwrap_or(Val::Any(Hole::Plain))
                }
                _ => self.elem(),
            },
            Val::Map(e) => match key.known() {
                Some(k) => self.attr(&k),
                None => e.iter().map(|(_, v)| v.clone()).fold(Val::Unset, join),
            },
            Val::Str(_) => match (self.known(), key.int()) {
                (Some(s), Some(i)) => {
                    let chars: Vec<char> = s.chars().collect();
                    let len = chars.len() as i64;
                    let i = if i < 0 { i + len } else { i };
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| chars.get(i))
                        .map(|c| Val::lit(c.to_string()))
                        .unwrap_or(Val::lit(""))
                }
                _ => self.opaque(),
            },
            Val::Unset => Val::Unset,
            Val::Data => Val::Data,
            Val::Engine => Val::Engine,
            Val::Num(_) => Val::Any(Hole::Plain),
            Val::Any(h) => Val::Any(*h),
        }
    }

    /// Whether the value, used as an attribute name, can be a Python
    /// special name `__x__` whose underscores the template chose.
    pub fn can_be_dunder(&self) -> bool {
        match self {
            Val::Str(p) => match self.known() {
                Some(s) => is_dunder(&s),
                None => underscores_lead(p.iter(), false) && underscores_lead(p.iter().rev(), true),
            },
            Val::Engine | Val::Any(Hole::Chars) => true,
            _ => false,
        }
    }

    /// [`Self::can_be_dunder`] for a dotted attribute path as filters take it
    /// (`map(attribute='a.b')`): any of its segments.
    pub fn path_can_be_dunder(&self) -> bool {
        let Val::Str(pieces) = self else {
            return self.can_be_dunder();
        };
        let mut segment: Vec<Piece> = Vec::new();
        for p in pieces {
            match p {
                Piece::Lit(s) => {
                    let mut parts = s.split('.');
                    if let Some(first) = parts.next() {
                        segment.push(Piece::Lit(first.to_string()));
                    }
                    for part in parts {
                        if Val::text(std::mem::take(&mut segment)).can_be_dunder() {
                            return true;
                        }
                        segment.push(Piece::Lit(part.to_string()));
                    }
                }
                Piece::Hole(h) => segment.push(Piece::Hole(*h)),
            }
        }
        Val::text(segment).can_be_dunder()
    }

    /// A string with a literal `__` fragment glued to parts only known at
    /// render time.
    pub fn glues_underscores(&self) -> bool {
        match self {
            Val::Str(p) => {
                self.known().is_none()
                    && p.iter()
                        .any(|p| matches!(p, Piece::Lit(s) if s.contains("__")))
            }
            _ => false,
        }
    }
}

/// Whether the pieces (from the start, or from the end when `from_end`)
/// begin with two underscores the template can choose.
fn underscores_lead<'p>(pieces: impl Iterator<Item = &'p Piece>, from_end: bool) -> bool {
    let mut need = 2usize;
    for p in pieces {
        match p {
            Piece::Hole(Hole::Chars) => return true,
            Piece::Hole(_) => return false,
            Piece::Lit(s) => {
                // Whitespace may be trimmed away at render time (see is_dunder).
                let mut bytes: Box<dyn Iterator<Item = u8>> = if from_end {
                    Box::new(s.bytes().rev())
                } else {
                    Box::new(s.bytes())
                };
                for b in &mut bytes {
                    match b {
                        b'_' => need -= 1,
                        b if b.is_ascii_whitespace() => continue,
                        _ => return false,
                    }
                    if need == 0 {
                        return true;
                    }
                }
            }
        }
    }
    false
}

fn key_hole(k: &str) -> Hole {
    if k.contains('_') {
        Hole::Chars
    } else {
        Hole::Plain
    }
}

pub fn pieces_hole(p: &[Piece]) -> Hole {
    p.iter()
        .map(|p| match p {
            Piece::Lit(s) => key_hole(s),
            Piece::Hole(h) => *h,
        })
        .max()
        .unwrap_or(Hole::Plain)
}

/// The least value covering both (the analysis is flow-insensitive: a name
/// holds the join of everything assigned to it).
pub fn join(a: Val, b: Val) -> Val {
    match (a, b) {
        (Val::Unset, v) | (v, Val::Unset) => v,
        (a, b) if a == b => a,
        (Val::Engine, _) | (_, Val::Engine) => Val::Engine,
        (Val::Num(_), Val::Num(_)) => Val::Num(None),
        (Val::Str(x), Val::Str(y)) => Val::hole(pieces_hole(&x).max(pieces_hole(&y))),
        (
            Val::Seq {
                items: x,
                exact: true,
            },
            Val::Seq {
                items: y,
                exact: true,
            },
        ) if x.len() == y.len() => Val::seq(
            x.into_iter().zip(y).map(|(a, b)| join(a, b)).collect(),
            true,
        ),
        (Val::Seq { items: x, .. }, Val::Seq { items: y, .. }) => {
            Val::seq(x.into_iter().chain(y).collect(), false)
        }
        (Val::Map(x), Val::Map(mut y)) => {
            let mut out = Vec::with_capacity(x.len() + y.len());
            for (k, v) in x {
                let v = match y.iter().position(|(k2, _)| *k2 == k) {
                    Some(i) => join(v, y.remove(i).1),
                    None => v,
                };
                out.push((k, v));
            }
            out.extend(y);
            Val::map(out)
        }
        (a, b) => Val::Any(a.hole_kind().max(b.hole_kind())),
    }
}

/// `__name__`: Python's special attributes, the entry points of every
/// known sandbox escape. Whitespace is ignored: runtimes render with
/// `trim_blocks`/`lstrip_blocks` (transformers, llama-cpp-python), which
/// drop newlines and indentation next to tags that this parser keeps.
pub fn is_dunder(name: &str) -> bool {
    let squeezed: String;
    let name = if name.contains(char::is_whitespace) {
        squeezed = name.chars().filter(|c| !c.is_whitespace()).collect();
        squeezed.as_str()
    } else {
        name
    };
    name.len() > 4
        && name.starts_with("__")
        && name.ends_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Python's `s[start:stop:step]` on a known string; `None` for a zero step.
pub fn py_slice(s: &str, start: Option<i64>, stop: Option<i64>, step: i64) -> Option<String> {
    if step == 0 {
        return None;
    }
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let (lower, upper) = if step > 0 { (0, len) } else { (-1, len - 1) };
    let clamp = |v: i64| {
        let v = if v < 0 { v.saturating_add(len) } else { v };
        v.clamp(lower, upper)
    };
    let mut i = start.map_or(if step > 0 { lower } else { upper }, clamp);
    let end = stop.map_or(if step > 0 { upper } else { lower }, clamp);
    let mut out = String::new();
    while (step > 0 && i < end) || (step < 0 && i > end) {
        if let Some(c) = usize::try_from(i).ok().and_then(|i| chars.get(i)) {
            out.push(*c);
        }
        i = i.checked_add(step)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dunder_reachability_follows_who_picks_the_underscores() {
        let s = |p: Vec<Piece>| Val::text(p);
        let lit = |x: &str| Piece::Lit(x.to_string());
        assert!(Val::lit("__class__").can_be_dunder());
        assert!(!Val::lit("tool_calls").can_be_dunder());
        assert!(s(vec![lit("__"), Piece::Hole(Hole::Data), lit("__")]).can_be_dunder());
        assert!(s(vec![lit("_"), Piece::Hole(Hole::Chars), lit("_")]).can_be_dunder());
        assert!(!s(vec![lit("tool_"), Piece::Hole(Hole::Chars)]).can_be_dunder());
        assert!(!s(vec![Piece::Hole(Hole::Data), lit("__")]).can_be_dunder());
        assert!(!Val::Data.can_be_dunder());
        assert!(Val::Engine.can_be_dunder());
        assert!(s(vec![lit("a.__"), Piece::Hole(Hole::Data), lit("__")]).path_can_be_dunder());
        assert!(!s(vec![lit("a."), Piece::Hole(Hole::Data)]).path_can_be_dunder());
        assert!(Val::lit("function.__globals__").path_can_be_dunder());
    }

    #[test]
    fn slices_follow_python() {
        assert_eq!(
            py_slice("__ssalc__", None, None, -1).as_deref(),
            Some("__class__")
        );
        assert_eq!(
            py_slice("abcdef", Some(1), Some(-1), 2).as_deref(),
            Some("bd")
        );
        assert_eq!(
            py_slice("abc", Some(-10), Some(10), 1).as_deref(),
            Some("abc")
        );
        assert_eq!(py_slice("abc", None, None, 0), None);
        assert_eq!(
            py_slice("abc", Some(i64::MIN), Some(i64::MAX), i64::MAX).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn joins_settle() {
        let a = Val::seq(vec![Val::Data], true);
        let b = Val::seq(vec![Val::Data, Val::lit("x")], true);
        let j = join(a, b);
        assert_eq!(join(j.clone(), j.clone()), j);
        assert_eq!(join(Val::lit("a"), Val::lit("b")), Val::hole(Hole::Plain));
        assert_eq!(join(Val::lit("a_"), Val::lit("b")), Val::hole(Hole::Chars));
    }
}
