//! Static analysis of Jinja chat templates (`tokenizer.chat_template` in GGUF
//! files, `chat_template` in tokenizer configs).
//!
//! A chat template is a program: runtimes render it with Jinja2 on every
//! conversation. llama-cpp-python before 0.2.72 did so in a non-sandboxed
//! environment, so a template reaching `cycler.__init__.__globals__.os` or
//! `''.__class__.__mro__[1].__subclasses__()` ran shell commands when the model
//! was used (CVE-2024-34359, "Llama Drama"). This module parses the template
//! into minijinja's AST and walks it; it never renders, evaluates or compiles
//! anything, and it never calls a filter.
//!
//! What is flagged:
//! * malicious (GGUF010): attribute names, subscripts or `|attr` arguments that
//!   resolve to a dunder (`__class__`, `__globals__`, ...), module and exec
//!   names (`os`, `popen`, `eval`, `__import__`, ...), attribute access on
//!   Jinja's own globals (`cycler`, `joiner`, `namespace`, `lipsum`, `range`,
//!   `self`) and Flask's (`config`, `request`), and any string constant that is
//!   by itself a dunder name. Names are constant-folded first, so
//!   `'__cla' ~ 'ss__'`, `['__cla', 'ss__']|join`, `'__ssalc__'[::-1]` and a
//!   `{% set %}` variable holding such a string are seen through.
//! * suspicious (GGUF011): names that cannot be folded (`|attr(x)`,
//!   `map(attribute=x)`), dunder fragments being glued together, private
//!   `_attributes`, and `include`/`import`/`extends`, which load other
//!   templates.
//! * suspicious and inconclusive (GGUF012): a template that is not UTF-8, does
//!   not parse, or is too large or deep to analyse. HF's harmless
//!   `{% generation %}` markers, which only transformers understands, are
//!   blanked out (same length, so offsets stay exact) before parsing.
//!
//! Invariants: the input is bounded by `max_string_bytes`; before parsing,
//! a token pass refuses tags with more than [`MAX_TAG_TOKENS`] tokens or
//! brackets nested deeper than [`MAX_BRACKET_DEPTH`] (minijinja builds
//! operator chains iteratively, so their AST depth, and the recursion of its
//! drop, is bounded only by the token count); the walk is capped at
//! `max_structure_depth`. Findings carry the byte offset of the offending
//! expression in the file and the snippet as evidence.

use std::collections::{HashMap, HashSet};

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, Token};
use minijinja::syntax::SyntaxConfig;

use crate::scan::{Ctx, rules};

/// Tokens in one `{{ }}` or `{% %}` tag. Real templates stay below a few
/// hundred; the cap bounds AST depth (see the module docs).
pub const MAX_TAG_TOKENS: usize = 2048;

/// Nesting of `(`, `[` and `{` inside one tag.
pub const MAX_BRACKET_DEPTH: usize = 48;

/// Findings of one rule reported per template; the rest repeat the point.
const MAX_FINDINGS_PER_RULE: usize = 8;

/// Longest string the constant folder builds (`'_' * 10**9` must not allocate).
const MAX_FOLDED_LEN: usize = 256;

/// Jinja (and Flask) globals whose attributes lead to Python internals. A
/// template only ever calls them.
const JINJA_GLOBALS: &[&str] = &[
    "cycler",
    "joiner",
    "namespace",
    "lipsum",
    "range",
    "dict",
    "self",
    "config",
    "request",
    "session",
    "g",
    "url_for",
    "get_flashed_messages",
];

/// Attribute or item names that only matter to code execution or
/// interpreter introspection.
const EXEC_NAMES: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "builtins",
    "importlib",
    "posix",
    "nt",
    "pty",
    "popen",
    "eval",
    "exec",
    "execfile",
    "import_module",
    "check_output",
    "check_call",
    "getoutput",
    "getstatusoutput",
    "spawnl",
    "spawnv",
    "execl",
    "execv",
    "execve",
    "func_globals",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_back",
    "gi_frame",
    "cr_frame",
    "tb_frame",
    "mro",
];

/// Function names that execute code when called (as a global or a method).
const EXEC_CALLS: &[&str] = &[
    "system",
    "popen",
    "eval",
    "exec",
    "execfile",
    "compile",
    "getattr",
    "setattr",
    "globals",
    "locals",
    "vars",
    "open",
    "import_module",
    "Popen",
];

/// Filters that read attributes named by an argument.
const ATTRIBUTE_FILTERS: &[&str] = &[
    "map",
    "selectattr",
    "rejectattr",
    "sort",
    "groupby",
    "sum",
    "unique",
    "min",
    "max",
];

/// The key under which Hugging Face configs carry chat templates.
const CHAT_TEMPLATE_KEY: &[u8] = b"\"chat_template\"";

/// Whether a text file can carry a chat template a runtime renders:
/// `chat_template` in a JSON config (`tokenizer_config.json`,
/// `chat_template.json`), or a template file (`chat_template.jinja`, which
/// transformers writes beside the tokenizer). The git hooks use this to
/// keep skipping every other text file cheaply.
pub fn text_may_hold_template(data: &[u8], name: &str) -> bool {
    is_template_file(name) || chat_template_key_at(data).is_some()
}

fn chat_template_key_at(data: &[u8]) -> Option<usize> {
    data.windows(CHAT_TEMPLATE_KEY.len())
        .position(|w| w == CHAT_TEMPLATE_KEY)
}

fn is_template_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jinja") || lower.ends_with(".jinja2") || lower.ends_with(".j2")
}

/// Scans the chat templates a text file carries (see
/// [`text_may_hold_template`]); returns whether it had any. A JSON
/// `chat_template` is a string or a list of `{"name", "template"}`.
pub fn scan_text(cx: &mut Ctx, data: &[u8], name: &str) -> bool {
    if is_template_file(name) {
        scan_template(cx, name, data, 0);
        return true;
    }
    let Some(key_at) = chat_template_key_at(data) else {
        return false;
    };
    if data.len() as u64 > cx.limits().max_string_bytes {
        cx.inconclusive(
            &rules::TEMPLATE_UNPARSEABLE,
            Some(key_at as u64),
            format!(
                "{name} has a chat_template but is {} bytes, over the {}-byte limit for analysed text",
                data.len(),
                cx.limits().max_string_bytes
            ),
        );
        return true;
    }
    // Only a JSON object with the key at its top level is a config a
    // runtime reads the template from; anything else is just text.
    let Ok(serde_json::Value::Object(config)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return false;
    };
    match config.get("chat_template") {
        Some(serde_json::Value::String(t)) => {
            scan_template(cx, "chat_template", t.as_bytes(), key_at as u64);
        }
        Some(serde_json::Value::Array(named)) => {
            for entry in named {
                let label = entry.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                if let Some(t) = entry.get("template").and_then(|t| t.as_str()) {
                    scan_template(
                        cx,
                        &format!("chat_template.{label}"),
                        t.as_bytes(),
                        key_at as u64,
                    );
                }
            }
        }
        _ => return false,
    }
    true
}

/// Scans one chat template. `name` says where it came from (the metadata
/// key); `base_offset` is the file offset of the template's first byte.
pub fn scan_template(cx: &mut Ctx, name: &str, raw: &[u8], base_offset: u64) {
    let Ok(text) = std::str::from_utf8(raw) else {
        cx.inconclusive(
            &rules::TEMPLATE_UNPARSEABLE,
            Some(base_offset),
            format!("{name} is not valid UTF-8, so its Jinja code cannot be analysed"),
        );
        return;
    };
    if raw.len() as u64 > cx.limits().max_string_bytes {
        let max = cx.limits().max_string_bytes;
        cx.inconclusive(
            &rules::LIMIT_EXCEEDED,
            Some(base_offset),
            format!(
                "{name} is {} bytes, over the {max}-byte limit for analysed strings",
                raw.len()
            ),
        );
        return;
    }
    let source = blank_hf_generation_tags(text);
    if let Err(reason) = check_complexity(&source) {
        cx.inconclusive(
            &rules::TEMPLATE_UNPARSEABLE,
            Some(base_offset),
            format!("{name}: {reason}"),
        );
        return;
    }
    let tree = match minijinja::machinery::parse(&source, "chat_template", SyntaxConfig::default())
    {
        Ok(tree) => tree,
        Err(err) => {
            let line = err
                .line()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let detail = err.detail().unwrap_or("syntax error");
            cx.inconclusive(
                &rules::TEMPLATE_UNPARSEABLE,
                Some(base_offset),
                format!("{name} is not valid Jinja{line}: {detail}"),
            );
            return;
        }
    };
    let max_depth = cx.limits().max_structure_depth as usize;
    // The first pass only learns which names the template binds itself.
    let mut assigned = Assignments::default();
    let mut collector = Collector {
        out: &mut assigned,
        max_depth,
        too_deep: false,
    };
    collector.stmt(&tree, 0);
    let too_deep = collector.too_deep;
    let constants: HashMap<String, String> = assigned
        .constants
        .iter()
        .filter(|(k, _)| assigned.set_count.get(*k) == Some(&1))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut walker = Walker {
        cx,
        name,
        source: &source,
        base_offset,
        max_depth,
        too_deep,
        assigned: &assigned,
        constants: &constants,
        in_glue: false,
        reported: HashMap::new(),
    };
    walker.stmt(&tree, 0);
    if walker.too_deep {
        cx.inconclusive(
            &rules::TEMPLATE_UNPARSEABLE,
            Some(base_offset),
            format!("{name} nests deeper than {max_depth} levels; the rest was not analysed"),
        );
    }
}

/// Replaces `{% generation %}` / `{% endgeneration %}` (HF's marker for
/// assistant tokens, unknown to other Jinja engines) with a comment of the
/// same length, so spans still point at the original bytes.
fn blank_hf_generation_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        let (before, tag) = rest.split_at(start);
        out.push_str(before);
        match hf_generation_tag_len(tag) {
            Some(len) => {
                out.push_str("{#");
                out.extend(std::iter::repeat_n(' ', len - 4));
                out.push_str("#}");
                rest = tag.get(len..).unwrap_or("");
            }
            None => {
                out.push_str("{%");
                rest = tag.get(2..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of a `{%[-+] (end)generation [-+]%}` tag at the start of `s`.
fn hf_generation_tag_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 2;
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    let word = s.get(i..)?;
    let kw = ["endgeneration", "generation"]
        .into_iter()
        .find(|k| word.starts_with(k))?;
    i += kw.len();
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    (s.get(i..i + 2)? == "%}").then_some(i + 2)
}

/// Token pass that refuses inputs whose AST would be deep enough to strain
/// the parser's or the AST's recursion. Lexer errors are left to the parser.
fn check_complexity(source: &str) -> Result<(), String> {
    let mut in_tag = 0usize;
    let mut brackets = 0usize;
    for item in minijinja::machinery::tokenize(source, false, SyntaxConfig::default()) {
        let Ok((token, span)) = item else {
            return Ok(());
        };
        match token {
            Token::VariableStart | Token::BlockStart => {
                in_tag = 0;
                brackets = 0;
            }
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => {
                brackets += 1;
                if brackets > MAX_BRACKET_DEPTH {
                    return Err(format!(
                        "brackets nested deeper than {MAX_BRACKET_DEPTH} levels at line {}",
                        span.start_line
                    ));
                }
            }
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                brackets = brackets.saturating_sub(1);
            }
            _ => {}
        }
        in_tag += 1;
        if in_tag > MAX_TAG_TOKENS {
            return Err(format!(
                "a tag at line {} has more than {MAX_TAG_TOKENS} tokens",
                span.start_line
            ));
        }
    }
    Ok(())
}

/// Names the template binds (`set`, `for`, macro arguments, `with`), and
/// the constant string of names assigned exactly once from a constant.
#[derive(Default)]
struct Assignments {
    bound: HashSet<String>,
    set_count: HashMap<String, usize>,
    constants: HashMap<String, String>,
}

struct Collector<'a> {
    out: &'a mut Assignments,
    max_depth: usize,
    too_deep: bool,
}

impl Collector<'_> {
    fn bind(&mut self, target: &Expr) {
        match target {
            Expr::Var(v) => {
                self.out.bound.insert(v.id.to_string());
            }
            Expr::Tuple(t) => t.items.iter().for_each(|e| {
                if let Expr::Var(v) = e {
                    self.out.bound.insert(v.id.to_string());
                }
            }),
            _ => {}
        }
    }

    fn body(&mut self, body: &[Stmt], depth: usize) {
        body.iter().for_each(|s| self.stmt(s, depth + 1));
    }

    fn stmt(&mut self, stmt: &Stmt, depth: usize) {
        if depth > self.max_depth {
            self.too_deep = true;
            return;
        }
        match stmt {
            Stmt::Template(t) => self.body(&t.children, depth),
            Stmt::ForLoop(f) => {
                self.bind(&f.target);
                self.body(&f.body, depth);
                self.body(&f.else_body, depth);
            }
            Stmt::IfCond(i) => {
                self.body(&i.true_body, depth);
                self.body(&i.false_body, depth);
            }
            Stmt::WithBlock(w) => {
                w.assignments.iter().for_each(|(t, _)| self.bind(t));
                self.body(&w.body, depth);
            }
            Stmt::Set(s) => {
                self.bind(&s.target);
                if let Expr::Var(v) = &s.target {
                    *self.out.set_count.entry(v.id.to_string()).or_default() += 1;
                    if let Some(c) = fold(&s.expr, &HashMap::new(), 0) {
                        self.out.constants.insert(v.id.to_string(), c);
                    }
                }
            }
            Stmt::SetBlock(s) => {
                self.bind(&s.target);
                self.body(&s.body, depth);
            }
            Stmt::AutoEscape(a) => self.body(&a.body, depth),
            Stmt::FilterBlock(f) => self.body(&f.body, depth),
            Stmt::Block(b) => self.body(&b.body, depth),
            Stmt::Macro(m) => {
                m.args.iter().for_each(|a| self.bind(a));
                self.out.bound.insert(m.name.to_string());
                self.body(&m.body, depth);
            }
            Stmt::CallBlock(c) => {
                c.macro_decl.args.iter().for_each(|a| self.bind(a));
                self.body(&c.macro_decl.body, depth);
            }
            Stmt::Import(i) => self.bind(&i.name),
            Stmt::FromImport(f) => f
                .names
                .iter()
                .for_each(|(n, alias)| self.bind(alias.as_ref().unwrap_or(n))),
            Stmt::EmitExpr(_)
            | Stmt::EmitRaw(_)
            | Stmt::Extends(_)
            | Stmt::Include(_)
            | Stmt::Continue(_)
            | Stmt::Break(_)
            | Stmt::Do(_) => {}
        }
    }
}

/// Folds an expression to a constant string where that is possible without
/// running anything but string operations on literals.
fn fold(expr: &Expr, constants: &HashMap<String, String>, depth: usize) -> Option<String> {
    if depth > 32 {
        return None;
    }
    let bounded = |s: String| (s.len() <= MAX_FOLDED_LEN).then_some(s);
    match expr {
        Expr::Const(c) => match c.value.as_str() {
            Some(s) => Some(s.to_string()),
            None if c.value.is_number() => bounded(c.value.to_string()),
            None => None,
        },
        Expr::Var(v) => constants.get(v.id).cloned(),
        Expr::BinOp(b) => match b.op {
            BinOpKind::Concat | BinOpKind::Add => {
                let l = fold(&b.left, constants, depth + 1)?;
                let r = fold(&b.right, constants, depth + 1)?;
                bounded(l + &r)
            }
            BinOpKind::Mul => {
                let (s, n) = match (&b.left, &b.right) {
                    (Expr::Const(n), other) | (other, Expr::Const(n))
                        if n.value.as_i64().is_some() =>
                    {
                        (fold(other, constants, depth + 1)?, n.value.as_i64()?)
                    }
                    _ => return None,
                };
                let n = usize::try_from(n).ok()?;
                (s.len().checked_mul(n)? <= MAX_FOLDED_LEN).then(|| s.repeat(n))
            }
            BinOpKind::Rem => {
                let fmt = fold(&b.left, constants, depth + 1)?;
                let args: Vec<String> = match &b.right {
                    Expr::Tuple(t) => t
                        .items
                        .iter()
                        .map(|e| fold(e, constants, depth + 1))
                        .collect::<Option<_>>()?,
                    other => vec![fold(other, constants, depth + 1)?],
                };
                bounded(percent_format(&fmt, &args)?)
            }
            _ => None,
        },
        Expr::Slice(s) => {
            let base = fold(&s.expr, constants, depth + 1)?;
            let reversed = s.start.is_none()
                && s.stop.is_none()
                && matches!(&s.step, Some(Expr::Const(c)) if c.value.as_i64() == Some(-1));
            reversed.then(|| base.chars().rev().collect())
        }
        Expr::Filter(f) => {
            let input = f.expr.as_ref()?;
            let arg = |i: usize| match f.args.get(i) {
                Some(CallArg::Pos(e)) => fold(e, constants, depth + 1),
                _ => None,
            };
            match f.name {
                "join" => {
                    let items = list_items(input)?;
                    let sep = if f.args.is_empty() {
                        String::new()
                    } else {
                        arg(0)?
                    };
                    let parts: Vec<String> = items
                        .iter()
                        .map(|e| fold(e, constants, depth + 1))
                        .collect::<Option<_>>()?;
                    bounded(parts.join(&sep))
                }
                "reverse" => Some(fold(input, constants, depth + 1)?.chars().rev().collect()),
                "lower" => Some(fold(input, constants, depth + 1)?.to_lowercase()),
                "upper" => Some(fold(input, constants, depth + 1)?.to_uppercase()),
                "trim" => Some(fold(input, constants, depth + 1)?.trim().to_string()),
                "string" | "safe" | "e" | "escape" => fold(input, constants, depth + 1),
                "replace" => {
                    let s = fold(input, constants, depth + 1)?;
                    bounded(s.replace(&arg(0)?, &arg(1)?))
                }
                "format" => {
                    let fmt = fold(input, constants, depth + 1)?;
                    let args: Vec<String> = (0..f.args.len()).map(arg).collect::<Option<_>>()?;
                    bounded(percent_format(&fmt, &args)?)
                }
                _ => None,
            }
        }
        Expr::Call(c) => {
            // `'sep'.join([...])`, `'{}{}'.format(...)` and friends.
            let Expr::GetAttr(m) = &c.expr else {
                return None;
            };
            let recv = fold(&m.expr, constants, depth + 1)?;
            let pos = || -> Option<Vec<String>> {
                c.args
                    .iter()
                    .map(|a| match a {
                        CallArg::Pos(e) => fold(e, constants, depth + 1),
                        _ => None,
                    })
                    .collect()
            };
            match m.name {
                "join" => {
                    let CallArg::Pos(list) = c.args.first()? else {
                        return None;
                    };
                    let parts: Vec<String> = list_items(list)?
                        .iter()
                        .map(|e| fold(e, constants, depth + 1))
                        .collect::<Option<_>>()?;
                    bounded(parts.join(&recv))
                }
                "format" => bounded(brace_format(&recv, &pos()?)?),
                "lower" => Some(recv.to_lowercase()),
                "upper" => Some(recv.to_uppercase()),
                "strip" => Some(recv.trim().to_string()),
                "replace" => {
                    let args = pos()?;
                    bounded(recv.replace(args.first()?, args.get(1)?))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Python's `%` formatting over folded arguments, for the conversions that
/// can spell a name: `%s`, `%d`/`%i`, `%c` (`'%c%c' % (95, 95)` is `__`),
/// `%x`/`%o`, `%%`. Anything else does not fold.
fn percent_format(fmt: &str, args: &[String]) -> Option<String> {
    let mut out = String::with_capacity(fmt.len());
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            conv => out.push_str(&convert(conv, args.next()?)?),
        }
    }
    args.next().is_none().then_some(out)
}

/// `str.format` over folded positional arguments: `{}`, `{N}` and the
/// conversions of [`convert`] after a colon (`'{:c}'.format(95)`).
fn brace_format(fmt: &str, args: &[String]) -> Option<String> {
    let mut out = String::with_capacity(fmt.len());
    let mut next = 0;
    let mut rest = fmt;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            // A single `}`: Python refuses the format string.
            return None;
        }
        let end = tail.find('}')?;
        let field = &tail[1..end];
        let (index, spec) = field.split_once(':').unwrap_or((field, ""));
        let arg = if index.is_empty() {
            next += 1;
            args.get(next - 1)?
        } else {
            args.get(index.parse::<usize>().ok()?)?
        };
        out.push_str(&match spec {
            "" => arg.clone(),
            s if s.len() == 1 => convert(s.chars().next()?, arg)?,
            _ => return None,
        });
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn convert(conv: char, arg: &str) -> Option<String> {
    let int = || arg.parse::<i64>().ok();
    Some(match conv {
        's' => arg.to_string(),
        'd' | 'i' => int()?.to_string(),
        'x' => format!("{:x}", int()?),
        'o' => format!("{:o}", int()?),
        'c' => match int() {
            Some(n) => char::from_u32(u32::try_from(n).ok()?)?.to_string(),
            None if arg.chars().count() == 1 => arg.to_string(),
            None => return None,
        },
        _ => return None,
    })
}

/// The first special attribute a `str.format` replacement field reads
/// (`'{0.__class__}'.format(x)` walks `x.__class__` while formatting).
fn format_field_dunder(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i + 1..];
        if let Some(t) = tail.strip_prefix('{') {
            rest = t;
            continue;
        }
        let end = tail.find('}').unwrap_or(tail.len());
        let field = &tail[..end];
        let name = field.split([':', '!']).next().unwrap_or_default();
        if let Some(d) = name
            .split(['.', '[', ']'])
            .map(|p| p.trim_matches(['\'', '"']))
            .find(|p| is_dunder(p))
        {
            return Some(d);
        }
        rest = &tail[end..];
    }
    None
}

fn list_items<'e, 'a>(expr: &'e Expr<'a>) -> Option<&'e [Expr<'a>]> {
    match expr {
        Expr::List(l) => Some(&l.items),
        Expr::Tuple(t) => Some(&t.items),
        _ => None,
    }
}

/// `__name__`: Python's special attributes, the entry points of every
/// known sandbox escape.
fn is_dunder(name: &str) -> bool {
    name.len() > 4
        && name.starts_with("__")
        && name.ends_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

struct Walker<'c, 's, 'a> {
    cx: &'c mut Ctx<'s>,
    name: &'a str,
    source: &'a str,
    base_offset: u64,
    max_depth: usize,
    too_deep: bool,
    assigned: &'a Assignments,
    /// Names assigned exactly once, from a constant string.
    constants: &'a HashMap<String, String>,
    /// Inside a string operation already judged as a whole.
    in_glue: bool,
    reported: HashMap<&'static str, usize>,
}

impl Walker<'_, '_, '_> {
    fn report(&mut self, rule: &'static rules::Rule, span: Span, what: String) {
        let count = self.reported.entry(rule.id).or_default();
        if *count >= MAX_FINDINGS_PER_RULE {
            return;
        }
        *count += 1;
        let start = span.start_offset as usize;
        let end = (span.end_offset as usize).max(start);
        let snippet = self.source.get(start..end).unwrap_or("");
        let message = format!("{} line {}: {what}", self.name, span.start_line);
        self.cx.report(
            rule,
            Some(self.base_offset + start as u64),
            message,
            Some(snippet.to_string()),
        );
    }

    fn fold(&self, expr: &Expr) -> Option<String> {
        fold(expr, self.constants, 0)
    }

    /// Judges one member name read from `base` (attribute, subscript or
    /// `|attr`), `dynamic` when the name could not be folded.
    fn member(&mut self, base: &Expr, name: Option<&str>, span: Span, how: &str) {
        let Some(name) = name else {
            self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                format!("{how} with a name computed at render time hides which member is read"),
            );
            return;
        };
        if is_dunder(name) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("{how} `{name}` reaches Python object internals (sandbox escape)"),
            );
            return;
        }
        if EXEC_NAMES.contains(&name) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("{how} `{name}` reaches modules or functions that run code"),
            );
            return;
        }
        if let Expr::Var(v) = base
            && JINJA_GLOBALS.contains(&v.id)
            && !self.assigned.bound.contains(v.id)
        {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "{how} `{name}` on Jinja's `{}` global reaches template-engine internals",
                    v.id
                ),
            );
            return;
        }
        if name.starts_with('_') && name.len() > 1 {
            self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                format!("{how} `{name}` reads a private attribute"),
            );
        }
    }

    fn constant_string(&mut self, expr: &Expr, span: Span) {
        let Expr::Const(c) = expr else { return };
        let Some(s) = c.value.as_str() else { return };
        if is_dunder(s.trim()) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "string constant `{}` names a Python special attribute",
                    s.trim()
                ),
            );
        } else if let Some(d) = format_field_dunder(s) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("format field in `{s}` reads `{d}`, a Python special attribute"),
            );
        }
    }

    fn body(&mut self, body: &[Stmt], depth: usize) {
        for s in body {
            self.stmt(s, depth + 1);
        }
    }

    fn stmt(&mut self, stmt: &Stmt, depth: usize) {
        if depth > self.max_depth {
            self.too_deep = true;
            return;
        }
        let d = depth + 1;
        match stmt {
            Stmt::Template(t) => self.body(&t.children, depth),
            Stmt::EmitExpr(e) => self.expr(&e.expr, d),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.target, d);
                self.expr(&f.iter, d);
                if let Some(e) = &f.filter_expr {
                    self.expr(e, d);
                }
                self.body(&f.body, depth);
                self.body(&f.else_body, depth);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr, d);
                self.body(&i.true_body, depth);
                self.body(&i.false_body, depth);
            }
            Stmt::WithBlock(w) => {
                for (t, e) in &w.assignments {
                    self.expr(t, d);
                    self.expr(e, d);
                }
                self.body(&w.body, depth);
            }
            Stmt::Set(s) => {
                self.expr(&s.target, d);
                self.expr(&s.expr, d);
            }
            Stmt::SetBlock(s) => {
                self.expr(&s.target, d);
                if let Some(f) = &s.filter {
                    self.expr(f, d);
                }
                self.body(&s.body, depth);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, d);
                self.body(&a.body, depth);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter, d);
                self.body(&f.body, depth);
            }
            Stmt::Block(b) => self.body(&b.body, depth),
            Stmt::Extends(x) => self.loader(&x.name, x.span(), "extends", d),
            Stmt::Include(x) => self.loader(&x.name, x.span(), "include", d),
            Stmt::Import(x) => self.loader(&x.expr, x.span(), "import", d),
            Stmt::FromImport(x) => self.loader(&x.expr, x.span(), "from ... import", d),
            Stmt::Macro(m) => {
                m.args
                    .iter()
                    .chain(&m.defaults)
                    .for_each(|e| self.expr(e, d));
                self.body(&m.body, depth);
            }
            Stmt::CallBlock(c) => {
                self.call(&c.call, c.call.span(), d);
                c.macro_decl
                    .args
                    .iter()
                    .chain(&c.macro_decl.defaults)
                    .for_each(|e| self.expr(e, d));
                self.body(&c.macro_decl.body, depth);
            }
            Stmt::Do(c) => self.call(&c.call, c.call.span(), d),
        }
    }

    fn loader(&mut self, target: &Expr, span: Span, kind: &str, depth: usize) {
        self.report(
            &rules::TEMPLATE_DYNAMIC_ACCESS,
            span,
            format!("`{{% {kind} %}}` loads another template, which a chat template cannot need"),
        );
        self.expr(target, depth);
    }

    fn args(&mut self, args: &[CallArg], depth: usize) {
        for a in args {
            // `dict(__class__=1)|first` turns a keyword into the string.
            if let CallArg::Kwarg(name, e) = a
                && is_dunder(name)
            {
                self.report(
                    &rules::TEMPLATE_CODE_EXECUTION,
                    e.span(),
                    format!("keyword `{name}` names a Python special attribute"),
                );
            }
            match a {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e, depth),
            }
        }
    }

    fn call(&mut self, call: &ast::Call, span: Span, depth: usize) {
        let callee = match &call.expr {
            Expr::Var(v) if !self.assigned.bound.contains(v.id) => Some(v.id),
            Expr::GetAttr(a) => Some(a.name),
            _ => None,
        };
        if let Some(name) = callee
            && (EXEC_CALLS.contains(&name) || name == "__import__")
        {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("calls `{name}`, which runs code or reaches arbitrary objects"),
            );
        }
        self.expr(&call.expr, depth);
        self.args(&call.args, depth);
    }

    fn expr(&mut self, expr: &Expr, depth: usize) {
        if depth > self.max_depth {
            self.too_deep = true;
            return;
        }
        let d = depth + 1;
        match expr {
            Expr::Var(_) => {}
            Expr::Const(c) => self.constant_string(expr, c.span()),
            Expr::Slice(s) => {
                self.expr(&s.expr, d);
                for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(e, d);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr, d),
            Expr::BinOp(b) => {
                let string_op = matches!(b.op, BinOpKind::Concat | BinOpKind::Add | BinOpKind::Rem);
                self.with_glue(string_op, expr, b.span(), |w| {
                    w.expr(&b.left, d);
                    w.expr(&b.right, d);
                });
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, d);
                c.ops.iter().for_each(|op| self.expr(&op.expr, d));
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, d);
                self.expr(&i.true_expr, d);
                if let Some(e) = &i.false_expr {
                    self.expr(e, d);
                }
            }
            Expr::Filter(f) => {
                self.filter(f, f.span());
                let string_op = matches!(f.name, "join" | "format" | "replace" | "reverse");
                self.with_glue(string_op, expr, f.span(), |w| {
                    if let Some(e) = &f.expr {
                        w.expr(e, d);
                    }
                    w.args(&f.args, d);
                });
            }
            Expr::Test(t) => {
                self.expr(&t.expr, d);
                self.args(&t.args, d);
            }
            Expr::GetAttr(a) => {
                self.member(&a.expr, Some(a.name), a.span(), "attribute");
                self.expr(&a.expr, d);
            }
            Expr::GetItem(g) => {
                // Non-constant subscripts (`messages[i]`) are everyday code;
                // only subscripts that fold to a name are judged.
                match self.fold(&g.subscript_expr) {
                    Some(name) => self.member(&g.expr, Some(&name), g.span(), "subscript"),
                    None => self.expr(&g.subscript_expr, d),
                }
                self.expr(&g.expr, d);
            }
            Expr::Call(c) => {
                let string_op = matches!(&c.expr, Expr::GetAttr(m) if matches!(m.name, "join" | "format" | "replace"));
                self.with_glue(string_op, expr, c.span(), |w| w.call(c, c.span(), d));
            }
            Expr::List(l) => l.items.iter().for_each(|e| self.expr(e, d)),
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.expr(e, d)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| self.expr(e, d)),
        }
    }

    fn filter(&mut self, f: &ast::Filter, span: Span) {
        let base = f.expr.as_ref();
        if f.name == "attr" {
            let name = match f.args.first() {
                Some(CallArg::Pos(e)) => self.fold(e),
                _ => None,
            };
            if let Some(base) = base {
                self.member(base, name.as_deref(), span, "`|attr`");
            }
            return;
        }
        if ATTRIBUTE_FILTERS.contains(&f.name) {
            for a in &f.args {
                let (CallArg::Kwarg("attribute", e) | CallArg::Pos(e)) = a else {
                    continue;
                };
                let is_attribute_kwarg = matches!(a, CallArg::Kwarg(..));
                match self.fold(e) {
                    Some(name) if name.split('.').any(is_dunder) => {
                        self.report(
                            &rules::TEMPLATE_CODE_EXECUTION,
                            span,
                            format!(
                                "`|{}` reads attribute `{name}`, a Python special attribute",
                                f.name
                            ),
                        );
                    }
                    None if is_attribute_kwarg => self.report(
                        &rules::TEMPLATE_DYNAMIC_ACCESS,
                        span,
                        format!(
                            "`|{}(attribute=...)` with a name computed at render time",
                            f.name
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }

    /// Runs `walk` (the children of `expr`), first judging `expr` as a whole
    /// if it is the outermost of a string operation.
    fn with_glue(
        &mut self,
        string_op: bool,
        expr: &Expr,
        span: Span,
        walk: impl FnOnce(&mut Self),
    ) {
        if !string_op || self.in_glue {
            let outer = self.in_glue;
            self.in_glue = string_op && outer;
            walk(self);
            self.in_glue = outer;
            return;
        }
        self.glued(expr, span);
        self.in_glue = true;
        walk(self);
        self.in_glue = false;
    }

    /// A string concatenation (or `%` formatting) whose pieces carry dunder
    /// fragments: folds to a dunder (malicious) or hides one (suspicious).
    fn glued(&mut self, expr: &Expr, span: Span) {
        if let Some(s) = self.fold(expr) {
            if is_dunder(s.trim()) {
                self.report(
                    &rules::TEMPLATE_CODE_EXECUTION,
                    span,
                    format!(
                        "string operations build `{}`, a Python special attribute",
                        s.trim()
                    ),
                );
            }
            return;
        }
        if has_underscore_fragment(expr, 0) {
            self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                "string operations glue `__` fragments into a name computed at render time"
                    .to_string(),
            );
        }
    }
}

/// Whether a string expression carries a `__` fragment in one of its pieces.
fn has_underscore_fragment(expr: &Expr, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    let d = depth + 1;
    let arg_has = |args: &[CallArg]| {
        args.iter().any(|a| match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => has_underscore_fragment(e, d),
        })
    };
    match expr {
        Expr::Const(c) => c.value.as_str().is_some_and(|s| s.contains("__")),
        Expr::BinOp(b) => {
            has_underscore_fragment(&b.left, d) || has_underscore_fragment(&b.right, d)
        }
        Expr::List(l) => l.items.iter().any(|e| has_underscore_fragment(e, d)),
        Expr::Tuple(t) => t.items.iter().any(|e| has_underscore_fragment(e, d)),
        Expr::Filter(f) => {
            f.expr
                .as_ref()
                .is_some_and(|e| has_underscore_fragment(e, d))
                || arg_has(&f.args)
        }
        Expr::Call(c) => match &c.expr {
            Expr::GetAttr(m) => has_underscore_fragment(&m.expr, d) || arg_has(&c.args),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{FileReport, Scanner, Verdict};

    macro_rules! real {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!(
                    "../../../tests/fixtures/gen/gguf_templates/",
                    $name,
                    ".jinja"
                )),
            )
        };
    }

    const REAL_TEMPLATES: &[(&str, &str)] = &[
        real!("chatml"),
        real!("llama3"),
        real!("llama31_tools"),
        real!("mistral"),
        real!("gemma"),
        real!("qwen25_tools"),
        real!("deepseek_r1"),
        real!("hermes_tools_macro"),
        real!("phi3"),
        real!("hf_generation"),
    ];

    fn scan(template: &str) -> FileReport {
        let scanner = Scanner::default();
        let mut cx = Ctx::new(&scanner, None);
        scan_template(&mut cx, "tokenizer.chat_template", template.as_bytes(), 100);
        cx.finish("t", 0)
    }

    fn ids(report: &FileReport) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.rule.id).collect()
    }

    #[test]
    fn real_world_templates_are_clean() {
        for (name, template) in REAL_TEMPLATES {
            let report = scan(template);
            assert!(report.findings.is_empty(), "{name}: {:#?}", report.findings);
        }
    }

    #[test]
    fn dunder_chains_are_malicious() {
        for t in [
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ x['__globals__'] }}",
            "{{ x|attr('__class__') }}",
            "{{ x[('__cla' ~ 'ss__')] }}",
            "{{ x['__cla' + 'ss__'] }}",
            "{{ x|attr(['__cla', 'ss__']|join) }}",
            "{{ x|attr('__ssalc__'[::-1]) }}",
            "{{ x|attr('_' * 2 ~ 'class' ~ '_' * 2) }}",
            "{{ x|attr('%sclass%s' % ('__', '__')) }}",
            "{{ x|attr('{}class{}'.format('__', '__')) }}",
            "{{ x|attr(''.join(['__', 'class__'])) }}",
            "{% set a = '__cla' ~ 'ss__' %}{{ x[a] }}",
            "{% set a = '__globals__' %}{{ lipsum|attr(a) }}",
            "{{ messages|map(attribute='__class__')|list }}",
            "{{ self._TemplateReference__context.cycler }}",
            "{{ lipsum.__globals__['os'].popen('id') }}",
            "{{ namespace.__init__ }}",
            "{{ joiner.whatever }}",
            "{{ config.items() }}",
            "{{ request.application }}",
            "{{ x.os.system('id') }}",
            "{{ eval('1') }}",
            "{{ __import__('os') }}",
            "{{ x|attr('%c%cclass%c%c'|format(95, 95, 95, 95)) }}",
            "{{ x|attr('%c%cclass%c%c' % (95, 95, 95, 95)) }}",
            "{{ x|attr('{:c}{:c}class{:c}{:c}'.format(95, 95, 95, 95)) }}",
            "{{ x|attr('%sclass%s' % ('%c' % 95 * 2, '_' * 2)) }}",
            "{{ '{0.__class__.__mro__}'.format(x) }}",
            "{{ '{0[__globals__]}'.format(x) }}",
            "{{ x|attr(dict(__class__=1)|list|first) }}",
        ] {
            let report = scan(t);
            assert_eq!(
                report.verdict,
                Verdict::Malicious,
                "{t}: {:#?}",
                report.findings
            );
            assert!(ids(&report).contains(&"GGUF010"), "{t}");
        }
    }

    #[test]
    fn computed_names_are_suspicious() {
        for t in [
            "{{ x|attr(name) }}",
            "{{ x|attr(a ~ b) }}",
            "{{ x[a ~ '__'] }}",
            "{{ x|map(attribute=name)|list }}",
            "{{ x._private }}",
            "{% include 'other.j2' %}",
            "{% import 'macros.j2' as m %}",
        ] {
            let report = scan(t);
            assert_eq!(
                report.verdict,
                Verdict::Suspicious,
                "{t}: {:#?}",
                report.findings
            );
            assert!(ids(&report).contains(&"GGUF011"), "{t}");
        }
    }

    #[test]
    fn format_folding_follows_python_and_never_panics() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            brace_format("{}{:c}{0}", &args(&["a", "95"])).as_deref(),
            Some("a_a")
        );
        assert_eq!(brace_format("{{}}", &[]).as_deref(), Some("{}"));
        for hostile in ["}", "a}b", "{", "{:", "{0", "{99}", "{:cc}", "}{"] {
            assert_eq!(brace_format(hostile, &args(&["1"])), None, "{hostile}");
        }
        assert_eq!(
            percent_format("%c%s%d%%", &args(&["95", "x", "7"])).as_deref(),
            Some("_x7%")
        );
        for hostile in ["%", "%c", "%q", "%s %s", "%c"] {
            assert_eq!(percent_format(hostile, &args(&["-1"])), None, "{hostile}");
        }
        assert_eq!(format_field_dunder("{0.__class__}"), Some("__class__"));
        assert_eq!(
            format_field_dunder("{x['__globals__']}"),
            Some("__globals__")
        );
        assert_eq!(format_field_dunder("{{0.__class__}}"), None);
        assert_eq!(format_field_dunder("{\"a\": 1}"), None);
        for hostile in ["{", "}", "{{", "{.", "{[", "{:{"] {
            format_field_dunder(hostile);
        }
    }

    #[test]
    fn normal_api_use_is_clean() {
        for t in [
            "{% set ns = namespace(found=false) %}{% set ns.found = true %}{{ ns.found }}",
            "{% for i in range(3) %}{{ i }}{% endfor %}",
            "{% set c = cycler('a', 'b') %}{{ c.next() }}",
            "{{ messages|map(attribute='role')|join(', ') }}",
            "{{ message['content'].split('</think>')[-1].strip() }}",
            "{% set config = {'a': 1} %}{{ config.a }}",
            "{{ messages[loop.index0 - 1].role }}",
            "{{ raise_exception('x') }}",
            "{{ '{0}: {1}'.format(m.role, m.content) }}",
            "{{ '{\"name\": \"{}\"}'.format(t.name) }}",
            "{{ '%s%c' % (m.content, 10) }}",
            "{{ dict(role='user', content=x)|tojson }}",
        ] {
            let report = scan(t);
            assert!(report.findings.is_empty(), "{t}: {:#?}", report.findings);
        }
    }

    #[test]
    fn unparseable_templates_are_inconclusive() {
        for t in ["{% for x in %}", "{{ x", "{% frobnicate %}"] {
            let report = scan(t);
            assert_eq!(ids(&report), ["GGUF012"], "{t}");
            assert!(matches!(
                report.status,
                crate::scan::ScanStatus::Inconclusive { .. }
            ));
        }
        let report = {
            let scanner = Scanner::default();
            let mut cx = Ctx::new(&scanner, None);
            scan_template(&mut cx, "t", b"{{ \xff }}", 0);
            cx.finish("t", 0)
        };
        assert_eq!(ids(&report), ["GGUF012"]);
    }

    #[test]
    fn generation_tags_are_blanked_without_moving_offsets() {
        let src = "a{% generation %}b{%- endgeneration -%}c{% if x %}{% endif %}";
        let out = blank_hf_generation_tags(src);
        assert_eq!(out.len(), src.len());
        assert!(
            out.starts_with("a{#")
                && out.contains("#}b{#")
                && out.ends_with("#}c{% if x %}{% endif %}")
        );
        assert!(!out.contains("generation"));
    }

    #[test]
    fn evidence_and_offset_point_at_the_expression() {
        let report = scan("hello {{ x.__class__ }}");
        let f = &report.findings[0];
        assert_eq!(f.location.offset, Some(100 + 9));
        assert_eq!(f.evidence.as_deref(), Some("x.__class__"));
    }

    #[test]
    fn hostile_shapes_stay_bounded() {
        let chain = format!("{{{{ {} }}}}", vec!["a"; 5000].join(" ~ "));
        assert_eq!(ids(&scan(&chain)), ["GGUF012"]);
        let parens = format!("{{{{ {}a{} }}}}", "(".repeat(200), ")".repeat(200));
        assert_eq!(ids(&scan(&parens)), ["GGUF012"]);
        let nested = format!("{}{}", "{% if a %}".repeat(400), "{% endif %}".repeat(400));
        assert_eq!(scan(&nested).verdict, Verdict::Suspicious);
        // Just under the token cap: parsed (and dropped) without trouble,
        // then refused by the walk's depth cap.
        let deep = format!("{{{{ {} }}}}", vec!["a"; 1020].join(" ~ "));
        assert_eq!(ids(&scan(&deep)), ["GGUF012"]);
        let long_ok = format!("{{{{ {} }}}}", vec!["a"; 100].join(" ~ "));
        assert!(scan(&long_ok).findings.is_empty());
    }
}
