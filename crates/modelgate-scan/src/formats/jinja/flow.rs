//! Data flow through a chat template's AST: every expression is evaluated
//! to an abstract [`Val`] (constants folded, everything else reduced to who
//! picks its characters), names bound by `set`, `for`, `with`, macro
//! parameters and `namespace` attributes hold the join of everything
//! assigned to them, and every attribute or item lookup is judged by the
//! value of its name and of its target.
//!
//! The analysis is flow-insensitive and runs to a fixed point: passes over
//! the whole template repeat until no bound name changes. Values only grow
//! (joins) and are bounded in size, so this settles within a few passes;
//! a template that does not settle within [`MAX_PASSES`] is reported as not
//! analysable. Macro calls read the macro's output and parameters from the
//! previous pass instead of walking the body again, so recursion in the
//! template costs nothing here. Findings are reported by one last pass over
//! the settled values.

use std::collections::{HashMap, HashSet};

use minijinja::machinery::Span;
use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt, UnaryOpKind};

use super::pyfmt::{brace_format, format_field_dunder, percent_format, py_string_literals};
use super::value::{Hole, Piece, Val, is_dunder, join, py_slice};
use crate::{Ctx, rules};

/// Passes of the fixed-point iteration before the template is given up on.
const MAX_PASSES: usize = 24;

/// Passes after which a binding that still changes is widened to a value
/// without structure, so that self-nesting values (`{% set l = [l] %}`)
/// settle.
const WIDEN_AFTER: usize = 6;

/// Findings of one rule reported per template; the rest repeat the point.
const MAX_FINDINGS_PER_RULE: usize = 8;

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

/// Names the runtimes (and Jinja) provide that are callables or engine
/// objects rather than conversation data.
const ENGINE_NAMES: &[&str] = &[
    "loop",
    "caller",
    "varargs",
    "kwargs",
    "raise_exception",
    "strftime_now",
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
    "__import__",
];

/// `loop` attributes that are counters or flags.
const LOOP_NUMBERS: &[&str] = &[
    "index",
    "index0",
    "revindex",
    "revindex0",
    "length",
    "depth",
    "depth0",
    "first",
    "last",
];

#[derive(Clone, PartialEq)]
struct MacroInfo {
    params: Vec<String>,
    output: Val,
}

/// Where the findings go and what they are labelled with.
pub struct Site<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub base_offset: u64,
    pub max_depth: usize,
}

/// Why a template was not fully analysed.
pub enum Incomplete {
    TooDeep,
    Unsettled,
}

/// Runs the analysis on a parsed template and reports its findings.
pub fn analyse(cx: &mut Ctx, site: &Site, tree: &Stmt) -> Result<(), Incomplete> {
    let mut flow = Flow {
        cx,
        site,
        reporting: false,
        too_deep: false,
        bound: HashSet::new(),
        vars: HashMap::new(),
        macros: HashMap::new(),
        loops: Vec::new(),
        glue: 0,
        widen: false,
        reported: HashMap::new(),
    };
    flow.collect(tree, 0);
    let mut settled = false;
    for pass in 0..MAX_PASSES {
        flow.widen = pass >= WIDEN_AFTER;
        let before = (flow.vars.clone(), flow.macros.clone());
        flow.stmt(tree, 0);
        if flow.too_deep {
            return Err(Incomplete::TooDeep);
        }
        if before == (flow.vars.clone(), flow.macros.clone()) {
            // Names still without a value were never assigned one the
            // analysis could see (`{% set t = t %}`, a parameter never
            // passed): at render time they hold context data or undefined.
            let unset: Vec<String> = flow
                .bound
                .iter()
                .filter(|n| flow.vars.get(*n).is_none_or(Val::is_unset))
                .cloned()
                .collect();
            if unset.is_empty() {
                settled = true;
                break;
            }
            for n in unset {
                flow.vars.insert(n, Val::Data);
            }
        }
    }
    if !settled {
        return Err(Incomplete::Unsettled);
    }
    flow.reporting = true;
    flow.stmt(tree, 0);
    if flow.too_deep {
        return Err(Incomplete::TooDeep);
    }
    Ok(())
}

struct Flow<'c, 's, 'a> {
    cx: &'c mut Ctx<'s>,
    site: &'a Site<'a>,
    /// The last pass: values are settled, findings are reported.
    reporting: bool,
    too_deep: bool,
    /// Every name the template binds somewhere.
    bound: HashSet<String>,
    /// Bound names (and `ns.attr` namespace slots) and their joined values.
    vars: HashMap<String, Val>,
    macros: HashMap<String, MacroInfo>,
    /// Items of the enclosing `for` loops (`loop.previtem`).
    loops: Vec<Val>,
    /// Inside the operands of a string operation already judged whole.
    glue: usize,
    /// Bindings that change are widened (see [`WIDEN_AFTER`]).
    widen: bool,
    reported: HashMap<&'static str, usize>,
}

/// Positional and keyword arguments of a call or filter, evaluated.
struct Args<'a> {
    pos: Vec<Val>,
    kw: Vec<(&'a str, Val)>,
}

impl Args<'_> {
    fn pos(&self, i: usize) -> Option<&Val> {
        self.pos.get(i)
    }

    fn kw(&self, name: &str) -> Option<&Val> {
        self.kw.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    fn hole(&self) -> Hole {
        self.pos
            .iter()
            .chain(self.kw.iter().map(|(_, v)| v))
            .map(Val::hole_kind)
            .max()
            .unwrap_or(Hole::Plain)
    }

    fn has_number(&self) -> bool {
        self.pos.iter().any(|v| matches!(v, Val::Num(_)))
    }

    fn known(&self) -> Option<Vec<String>> {
        self.pos.iter().map(Val::known).collect()
    }
}

impl Flow<'_, '_, '_> {
    fn report(&mut self, rule: &'static rules::Rule, span: Span, what: String) {
        if !self.reporting {
            return;
        }
        let count = self.reported.entry(rule.id).or_default();
        if *count >= MAX_FINDINGS_PER_RULE {
            return;
        }
        *count += 1;
        let start = span.start_offset as usize;
        let end = (span.end_offset as usize).max(start);
        let snippet = self.site.source.get(start..end).unwrap_or("");
        let message = format!("{} line {}: {what}", self.site.name, span.start_line);
        self.cx.report(
            rule,
            Some(self.site.base_offset + start as u64),
            message,
            Some(snippet.to_string()),
        );
    }

    // ---- binding ----------------------------------------------------------

    /// Learns the names the template binds and its macros' parameters.
    fn collect(&mut self, stmt: &Stmt, depth: usize) {
        if depth > self.site.max_depth {
            self.too_deep = true;
            return;
        }
        let d = depth + 1;
        let body = |f: &mut Self, b: &[Stmt]| b.iter().for_each(|s| f.collect(s, d));
        match stmt {
            Stmt::Template(t) => body(self, &t.children),
            Stmt::ForLoop(f) => {
                self.bind_names(&f.target);
                body(self, &f.body);
                body(self, &f.else_body);
            }
            Stmt::IfCond(i) => {
                body(self, &i.true_body);
                body(self, &i.false_body);
            }
            Stmt::WithBlock(w) => {
                w.assignments.iter().for_each(|(t, _)| self.bind_names(t));
                body(self, &w.body);
            }
            Stmt::Set(s) => self.bind_names(&s.target),
            Stmt::SetBlock(s) => {
                self.bind_names(&s.target);
                body(self, &s.body);
            }
            Stmt::AutoEscape(a) => body(self, &a.body),
            Stmt::FilterBlock(f) => body(self, &f.body),
            Stmt::Block(b) => body(self, &b.body),
            Stmt::Macro(m) => {
                m.args.iter().for_each(|a| self.bind_names(a));
                let params = m
                    .args
                    .iter()
                    .map(|a| match a {
                        Expr::Var(v) => v.id.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                self.macros.insert(
                    m.name.to_string(),
                    MacroInfo {
                        params,
                        output: Val::Unset,
                    },
                );
                body(self, &m.body);
            }
            Stmt::CallBlock(c) => {
                c.macro_decl.args.iter().for_each(|a| self.bind_names(a));
                body(self, &c.macro_decl.body);
            }
            Stmt::Import(i) => self.bind_names(&i.name),
            Stmt::FromImport(f) => f
                .names
                .iter()
                .for_each(|(n, alias)| self.bind_names(alias.as_ref().unwrap_or(n))),
            Stmt::EmitExpr(_)
            | Stmt::EmitRaw(_)
            | Stmt::Extends(_)
            | Stmt::Include(_)
            | Stmt::Continue(_)
            | Stmt::Break(_)
            | Stmt::Do(_) => {}
        }
    }

    fn bind_names(&mut self, target: &Expr) {
        match target {
            Expr::Var(v) => {
                self.bound.insert(v.id.to_string());
            }
            Expr::Tuple(t) => t.items.iter().for_each(|e| self.bind_names(e)),
            Expr::List(l) => l.items.iter().for_each(|e| self.bind_names(e)),
            _ => {}
        }
    }

    fn assign_name(&mut self, name: String, value: Val) {
        let old = self.vars.remove(&name).unwrap_or(Val::Unset);
        let mut new = join(old.clone(), value);
        if self.widen && new != old {
            new = new.widened();
        }
        self.vars.insert(name, new);
    }

    fn assign(&mut self, target: &Expr, value: Val, depth: usize) {
        match target {
            Expr::Var(v) => self.assign_name(v.id.to_string(), value),
            // Minijinja parses `a, b` targets as a list, Jinja2 as a tuple.
            Expr::Tuple(_) | Expr::List(_) => {
                let items = match target {
                    Expr::Tuple(t) => &t.items,
                    Expr::List(l) => &l.items,
                    _ => return,
                };
                let n = items.len();
                for (i, e) in items.iter().enumerate() {
                    self.assign(e, value.unpack(i, n), depth);
                }
            }
            // `{% set ns.attr = ... %}`: the namespace's slot.
            Expr::GetAttr(a) => {
                self.lookup(
                    &a.expr,
                    &Val::Unset,
                    &Val::lit(a.name),
                    a.span(),
                    "attribute",
                );
                if let Expr::Var(v) = &a.expr {
                    self.assign_name(format!("{}.{}", v.id, a.name), value);
                } else {
                    self.expr(&a.expr, depth);
                }
            }
            other => {
                self.expr(other, depth);
            }
        }
    }

    fn var(&self, id: &str) -> Val {
        if let Some(v) = self.vars.get(id) {
            return v.clone();
        }
        if self.bound.contains(id) {
            return Val::Unset;
        }
        if self.macros.contains_key(id) || JINJA_GLOBALS.contains(&id) || ENGINE_NAMES.contains(&id)
        {
            return Val::Engine;
        }
        // Special tokens come with the model, so their author picks them.
        if id.ends_with("_token") || id.ends_with("_tokens") {
            return Val::hole(Hole::Chars);
        }
        Val::Data
    }

    fn is_global(&self, expr: &Expr) -> Option<&'static str> {
        let Expr::Var(v) = expr else { return None };
        if self.bound.contains(v.id) {
            return None;
        }
        JINJA_GLOBALS.iter().find(|g| **g == v.id).copied()
    }

    // ---- statements -------------------------------------------------------

    fn body(&mut self, body: &[Stmt], depth: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        for s in body {
            out.extend(self.stmt(s, depth + 1));
        }
        out
    }

    /// Walks one statement; returns what it outputs (for `{% set %}` blocks,
    /// macros and `{% filter %}`).
    fn stmt(&mut self, stmt: &Stmt, depth: usize) -> Vec<Piece> {
        if depth > self.site.max_depth {
            self.too_deep = true;
            return Vec::new();
        }
        let d = depth + 1;
        match stmt {
            Stmt::Template(t) => self.body(&t.children, depth),
            Stmt::EmitExpr(e) => self.expr(&e.expr, d).pieces(),
            Stmt::EmitRaw(r) => vec![Piece::Lit(r.raw.to_string())],
            Stmt::Continue(_) | Stmt::Break(_) => Vec::new(),
            Stmt::ForLoop(f) => {
                let iter = self.expr(&f.iter, d);
                let item = iter.elem();
                self.assign(&f.target, item.clone(), d);
                self.loops.push(item);
                if let Some(e) = &f.filter_expr {
                    self.expr(e, d);
                }
                let mut out = self.body(&f.body, depth);
                self.loops.pop();
                out.extend(self.body(&f.else_body, depth));
                opaque_output(out)
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr, d);
                let t = self.body(&i.true_body, depth);
                let f = self.body(&i.false_body, depth);
                if t == f {
                    t
                } else {
                    vec![Piece::Hole(
                        super::value::pieces_hole(&t).max(super::value::pieces_hole(&f)),
                    )]
                }
            }
            Stmt::WithBlock(w) => {
                for (t, e) in &w.assignments {
                    let v = self.expr(e, d);
                    self.assign(t, v, d);
                }
                self.body(&w.body, depth)
            }
            Stmt::Set(s) => {
                let v = self.expr(&s.expr, d);
                self.assign(&s.target, v, d);
                Vec::new()
            }
            Stmt::SetBlock(s) => {
                let mut v = Val::text(self.body(&s.body, depth));
                if let Some(Expr::Filter(f)) = &s.filter {
                    v = self.filter(f, Some(v), d);
                } else if let Some(f) = &s.filter {
                    self.expr(f, d);
                    v = v.opaque();
                }
                self.assign(&s.target, v, d);
                Vec::new()
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, d);
                self.body(&a.body, depth)
            }
            Stmt::FilterBlock(f) => {
                let inner = Val::text(self.body(&f.body, depth));
                match &f.filter {
                    Expr::Filter(filter) => self.filter(filter, Some(inner), d).pieces(),
                    other => {
                        self.expr(other, d);
                        inner.opaque().pieces()
                    }
                }
            }
            Stmt::Block(b) => self.body(&b.body, depth),
            Stmt::Extends(x) => self.loader(&x.name, x.span(), "extends", d),
            Stmt::Include(x) => self.loader(&x.name, x.span(), "include", d),
            Stmt::Import(x) => {
                self.loader(&x.expr, x.span(), "import", d);
                self.assign(&x.name, Val::Engine, d);
                Vec::new()
            }
            Stmt::FromImport(x) => {
                self.loader(&x.expr, x.span(), "from ... import", d);
                for (n, alias) in &x.names {
                    self.assign(alias.as_ref().unwrap_or(n), Val::Engine, d);
                }
                Vec::new()
            }
            Stmt::Macro(m) => {
                self.macro_defaults(m, d);
                let out = self.body(&m.body, depth);
                if let Some(info) = self.macros.get_mut(m.name) {
                    let old = std::mem::replace(&mut info.output, Val::Unset);
                    info.output = join(old, Val::text(out));
                }
                Vec::new()
            }
            Stmt::CallBlock(c) => {
                let out = self.call(&c.call, c.call.span(), d);
                // The body is `caller()`; its parameters are what the macro
                // passes to `caller(...)`, which the template chooses.
                for a in &c.macro_decl.args {
                    self.assign(a, Val::Any(Hole::Chars), d);
                }
                self.macro_defaults(&c.macro_decl, d);
                self.body(&c.macro_decl.body, depth);
                out.pieces()
            }
            Stmt::Do(c) => {
                self.call(&c.call, c.call.span(), d);
                Vec::new()
            }
        }
    }

    fn macro_defaults(&mut self, m: &ast::Macro, depth: usize) {
        let skip = m.args.len().saturating_sub(m.defaults.len());
        for (arg, default) in m.args.iter().skip(skip).zip(&m.defaults) {
            let v = self.expr(default, depth);
            self.assign(arg, v, depth);
        }
    }

    fn loader(&mut self, target: &Expr, span: Span, kind: &str, depth: usize) -> Vec<Piece> {
        let name = self.expr(target, depth);
        let what = match name.known() {
            Some(n) => format!("`{{% {kind} %}}` loads another template (`{n}`)"),
            None => format!("`{{% {kind} %}}` loads another template named at render time"),
        };
        self.report(
            &rules::TEMPLATE_DYNAMIC_ACCESS,
            span,
            format!("{what}, which a chat template cannot need"),
        );
        vec![Piece::Hole(Hole::Chars)]
    }

    // ---- lookups ----------------------------------------------------------

    /// Judges one member read from `base` (attribute, subscript or `|attr`).
    fn lookup(&mut self, base_expr: &Expr, base: &Val, key: &Val, span: Span, how: &str) {
        if matches!(key, Val::Num(_)) {
            return;
        }
        match key.known() {
            Some(name) => self.named_lookup(base_expr, &name, span, how),
            None if key.can_be_dunder() => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "{how} with a name built at render time from characters the template \
                     chooses, which can spell a Python special attribute (sandbox escape)"
                ),
            ),
            None if how == "`|attr`" || base.is_engine() => self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                format!("{how} with a name computed at render time hides which member is read"),
            ),
            None => {}
        }
    }

    fn named_lookup(&mut self, base: &Expr, name: &str, span: Span, how: &str) {
        if is_dunder(name) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("{how} `{name}` reaches Python object internals (sandbox escape)"),
            );
        } else if EXEC_NAMES.contains(&name) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("{how} `{name}` reaches modules or functions that run code"),
            );
        } else if let Some(global) = self.is_global(base) {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "{how} `{name}` on Jinja's `{global}` global reaches template-engine internals"
                ),
            );
        } else if name.starts_with('_') && name.len() > 1 {
            self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                format!("{how} `{name}` reads a private attribute"),
            );
        }
    }

    /// An attribute name (or dotted path) a filter reads from each item.
    fn attribute_arg(&mut self, filter: &str, name: &Val, span: Span) {
        if matches!(name, Val::Num(_) | Val::Unset) {
            return;
        }
        match name.known() {
            Some(path) if path.split('.').any(is_dunder) => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("`|{filter}` reads attribute `{path}`, a Python special attribute"),
            ),
            Some(path) if path.split('.').any(|p| EXEC_NAMES.contains(&p)) => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("`|{filter}` reads attribute `{path}`, which reaches code execution"),
            ),
            Some(_) => {}
            None if name.path_can_be_dunder() => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "`|{filter}` reads an attribute whose name is built at render time from \
                     characters the template chooses, which can spell a Python special attribute"
                ),
            ),
            None => self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                format!("`|{filter}` reads an attribute whose name is computed at render time"),
            ),
        }
    }

    /// The arguments of filter `name` that Jinja uses as attribute names
    /// (`make_attrgetter`), positional or keyword; `map('attr', n)` and
    /// `map('selectattr', n)` apply a filter by name.
    fn attribute_args(&mut self, name: &str, args: &Args, span: Span, depth: usize) {
        if depth > 8 {
            return;
        }
        for (k, v) in &args.kw {
            if *k == "attribute" {
                self.attribute_arg(name, v, span);
            }
        }
        let positional = match name {
            "attr" | "selectattr" | "rejectattr" | "groupby" | "sum" => Some(0),
            "unique" | "min" | "max" | "join" => Some(1),
            "sort" => Some(2),
            "map" => {
                if let Some(f) = args.pos(0) {
                    match f.known() {
                        Some(inner) => {
                            let rest = Args {
                                pos: args.pos.get(1..).unwrap_or_default().to_vec(),
                                kw: Vec::new(),
                            };
                            self.attribute_args(&inner, &rest, span, depth + 1);
                        }
                        // A filter chosen at render time may be `attr`.
                        None => self.attribute_arg(name, f, span),
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(v) = positional.and_then(|i| args.pos(i)) {
            self.attribute_arg(name, v, span);
        }
    }

    // ---- expressions ------------------------------------------------------

    fn args<'e>(&mut self, args: &[CallArg<'e>], depth: usize) -> Args<'e> {
        let mut out = Args {
            pos: Vec::new(),
            kw: Vec::new(),
        };
        for a in args {
            match a {
                CallArg::Pos(e) => {
                    let v = self.expr(e, depth);
                    out.pos.push(v);
                }
                CallArg::Kwarg(name, e) => {
                    // `dict(__class__=1)|first` turns a keyword into the string.
                    if is_dunder(name) {
                        self.report(
                            &rules::TEMPLATE_CODE_EXECUTION,
                            e.span(),
                            format!("keyword `{name}` names a Python special attribute"),
                        );
                    }
                    let v = self.expr(e, depth);
                    out.kw.push((name, v));
                }
                CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    let v = self.expr(e, depth);
                    out.pos.push(v.elem());
                }
            }
        }
        out
    }

    fn constant(&mut self, c: &ast::Const, span: Span) -> Val {
        let Some(parsed) = c.value.as_str() else {
            return Val::Num(c.value.as_i64());
        };
        // Jinja2 decodes escapes as Python does; judge what it will see.
        let source = self
            .site
            .source
            .get(span.start_offset as usize..span.end_offset as usize)
            .unwrap_or("");
        let pieces =
            py_string_literals(source).unwrap_or_else(|| vec![Piece::Lit(parsed.to_string())]);
        // Judged whole: long constants are shortened once they become values.
        let full: Option<String> = pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(s) => Some(s.as_str()),
                Piece::Hole(_) => None,
            })
            .collect();
        let value = Val::text(pieces);
        match full {
            Some(s) if is_dunder(&s) => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!(
                    "string constant `{}` names a Python special attribute",
                    s.trim()
                ),
            ),
            Some(s) => {
                if let Some(d) = format_field_dunder(&s) {
                    self.report(
                        &rules::TEMPLATE_CODE_EXECUTION,
                        span,
                        format!("format field in `{s}` reads `{d}`, a Python special attribute"),
                    );
                }
            }
            None if value.can_be_dunder() => self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                "string constant with named characters can spell a Python special attribute"
                    .to_string(),
            ),
            None => {}
        }
        value
    }

    /// Judges the result of a string operation once, at the outermost one.
    fn glued(&mut self, v: &Val, span: Span) {
        if !self.reporting || self.glue > 0 {
            return;
        }
        if let Some(s) = v.known() {
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
        } else if v.glues_underscores() {
            self.report(
                &rules::TEMPLATE_DYNAMIC_ACCESS,
                span,
                "string operations glue `__` fragments into a name computed at render time"
                    .to_string(),
            );
        }
    }

    /// Evaluates the operands of a string operation, then judges its result.
    fn string_op(&mut self, span: Span, op: impl FnOnce(&mut Self) -> Val) -> Val {
        self.glue += 1;
        let v = op(self);
        self.glue -= 1;
        self.glued(&v, span);
        v
    }

    fn expr(&mut self, expr: &Expr, depth: usize) -> Val {
        if depth > self.site.max_depth {
            self.too_deep = true;
            return Val::Any(Hole::Chars);
        }
        let d = depth + 1;
        match expr {
            Expr::Var(v) => self.var(v.id),
            Expr::Const(c) => self.constant(c, c.span()),
            Expr::Slice(s) => self.string_op(s.span(), |w| {
                let base = w.expr(&s.expr, d);
                let mut bound = |e: &Option<Expr>| e.as_ref().map(|e| w.expr(e, d));
                let (start, stop, step) = (bound(&s.start), bound(&s.stop), bound(&s.step));
                slice(&base, start, stop, step)
            }),
            Expr::UnaryOp(u) => {
                let v = self.expr(&u.expr, d);
                match (&u.op, v) {
                    (_, Val::Unset) => Val::Unset,
                    (UnaryOpKind::Neg, Val::Num(Some(n))) => Val::Num(n.checked_neg()),
                    _ => Val::Num(None),
                }
            }
            Expr::BinOp(b) => self.binop(b, d),
            Expr::Compare(c) => {
                self.expr(&c.expr, d);
                for op in &c.ops {
                    self.expr(&op.expr, d);
                }
                Val::Num(None)
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, d);
                let t = self.expr(&i.true_expr, d);
                let f = match &i.false_expr {
                    Some(e) => self.expr(e, d),
                    None => Val::lit(""),
                };
                join(t, f)
            }
            Expr::Filter(f) => self.filter(f, None, d),
            Expr::Test(t) => {
                self.expr(&t.expr, d);
                self.args(&t.args, d);
                Val::Num(None)
            }
            Expr::GetAttr(a) => {
                let base = self.expr(&a.expr, d);
                self.lookup(&a.expr, &base, &Val::lit(a.name), a.span(), "attribute");
                if let Expr::Var(v) = &a.expr
                    && v.id == "loop"
                    && !self.bound.contains("loop")
                {
                    return self.loop_attr(a.name);
                }
                let mut v = base.attr(a.name);
                if let Expr::Var(ns) = &a.expr
                    && let Some(slot) = self.vars.get(&format!("{}.{}", ns.id, a.name))
                {
                    v = join(v, slot.clone());
                }
                v
            }
            Expr::GetItem(g) => {
                let base = self.expr(&g.expr, d);
                let key = self.expr(&g.subscript_expr, d);
                self.lookup(&g.expr, &base, &key, g.span(), "subscript");
                base.item(&key)
            }
            Expr::Call(c) => self.call(c, c.span(), d),
            Expr::List(l) => {
                let items = l.items.iter().map(|e| self.expr(e, d)).collect();
                Val::seq(items, true)
            }
            Expr::Tuple(t) => {
                let items = t.items.iter().map(|e| self.expr(e, d)).collect();
                Val::seq(items, true)
            }
            Expr::Map(m) => {
                let mut entries = Vec::new();
                let mut hole = Hole::Plain;
                let mut all_known = true;
                for (k, v) in m.keys.iter().zip(&m.values) {
                    let key = self.expr(k, d);
                    let value = self.expr(v, d);
                    match key.known() {
                        Some(k) => entries.push((k, value)),
                        None => {
                            all_known = false;
                            hole = hole.max(key.hole_kind()).max(value.hole_kind());
                        }
                    }
                }
                if all_known {
                    Val::map(entries)
                } else {
                    Val::Any(hole.max(Val::map(entries).hole_kind()))
                }
            }
        }
    }

    fn loop_attr(&self, name: &str) -> Val {
        if LOOP_NUMBERS.contains(&name) {
            return Val::Num(None);
        }
        match name {
            "previtem" | "nextitem" => self.loops.last().cloned().unwrap_or(Val::Data),
            _ => Val::Engine,
        }
    }

    fn binop(&mut self, b: &ast::Spanned<ast::BinOp>, d: usize) -> Val {
        let span = b.span();
        match b.op {
            BinOpKind::Concat => self.string_op(span, |w| {
                let l = w.expr(&b.left, d);
                let r = w.expr(&b.right, d);
                strict2(&l, &r, || concat(&l, &r))
            }),
            BinOpKind::Add => self.string_op(span, |w| {
                let l = w.expr(&b.left, d);
                let r = w.expr(&b.right, d);
                strict2(&l, &r, || match (&l, &r) {
                    (Val::Num(x), Val::Num(y)) => {
                        Val::Num(x.zip(*y).and_then(|(x, y)| x.checked_add(y)))
                    }
                    (
                        Val::Seq {
                            items: x,
                            exact: ex,
                        },
                        Val::Seq {
                            items: y,
                            exact: ey,
                        },
                    ) => Val::seq(x.iter().chain(y).cloned().collect(), *ex && *ey),
                    (Val::Str(_), _) | (_, Val::Str(_)) | (Val::Data, _) | (_, Val::Data) => {
                        concat(&l, &r)
                    }
                    _ => Val::Any(l.hole_kind().max(r.hole_kind())),
                })
            }),
            BinOpKind::Mul => self.string_op(span, |w| {
                let l = w.expr(&b.left, d);
                let r = w.expr(&b.right, d);
                strict2(&l, &r, || repeat(&l, &r))
            }),
            BinOpKind::Rem => self.string_op(span, |w| {
                let l = w.expr(&b.left, d);
                let r = w.expr(&b.right, d);
                strict2(&l, &r, || match (&l, &r) {
                    (Val::Num(_), Val::Num(_)) => Val::Num(None),
                    _ => {
                        let args = match &r {
                            Val::Seq { exact: true, .. } => r.items().unwrap_or_default(),
                            other => vec![other.clone()],
                        };
                        percent(&l, &args)
                    }
                })
            }),
            BinOpKind::Sub | BinOpKind::Div | BinOpKind::FloorDiv | BinOpKind::Pow => {
                let l = self.expr(&b.left, d);
                let r = self.expr(&b.right, d);
                strict2(&l, &r, || match (b.op, l.int(), r.int()) {
                    (BinOpKind::Sub, Some(x), Some(y)) => Val::Num(x.checked_sub(y)),
                    (BinOpKind::FloorDiv, Some(x), Some(y)) if y != 0 => {
                        Val::Num(x.checked_div_euclid(y))
                    }
                    _ => Val::Num(None),
                })
            }
            // `a or b`, `a and b` give one of their operands.
            BinOpKind::ScAnd | BinOpKind::ScOr => {
                let l = self.expr(&b.left, d);
                let r = self.expr(&b.right, d);
                join(l, r)
            }
            BinOpKind::Eq
            | BinOpKind::Ne
            | BinOpKind::Lt
            | BinOpKind::Lte
            | BinOpKind::Gt
            | BinOpKind::Gte
            | BinOpKind::In => {
                self.expr(&b.left, d);
                self.expr(&b.right, d);
                Val::Num(None)
            }
        }
    }

    fn call(&mut self, call: &ast::Call, span: Span, d: usize) -> Val {
        let callee_name = match &call.expr {
            Expr::Var(v) if !self.bound.contains(v.id) && !self.macros.contains_key(v.id) => {
                Some(v.id)
            }
            Expr::GetAttr(a) => Some(a.name),
            _ => None,
        };
        if let Some(name) = callee_name
            && EXEC_CALLS.contains(&name)
        {
            self.report(
                &rules::TEMPLATE_CODE_EXECUTION,
                span,
                format!("calls `{name}`, which runs code or reaches arbitrary objects"),
            );
        }
        match &call.expr {
            Expr::Var(v) if self.macros.contains_key(v.id) => {
                let args = self.args(&call.args, d);
                self.macro_call(v.id, args)
            }
            Expr::Var(v) if !self.bound.contains(v.id) => {
                let args = self.args(&call.args, d);
                global_call(v.id, &args)
            }
            Expr::GetAttr(m) => {
                let recv = self.expr(&m.expr, d);
                self.lookup(&m.expr, &recv, &Val::lit(m.name), m.span(), "attribute");
                if let Expr::Var(v) = &m.expr
                    && v.id == "loop"
                    && !self.bound.contains("loop")
                {
                    let args = self.args(&call.args, d);
                    return match m.name {
                        "cycle" => args.pos.into_iter().fold(Val::Unset, join),
                        "changed" => Val::Num(None),
                        _ => Val::Engine,
                    };
                }
                let string_op = matches!(
                    m.name,
                    "join" | "format" | "format_map" | "replace" | "lower" | "upper"
                );
                if string_op {
                    self.string_op(span, |w| {
                        let args = w.args(&call.args, d);
                        w.method(&recv, m.name, &args, span)
                    })
                } else {
                    let args = self.args(&call.args, d);
                    self.method(&recv, m.name, &args, span)
                }
            }
            other => {
                let callee = self.expr(other, d);
                let args = self.args(&call.args, d);
                match callee {
                    Val::Unset => Val::Unset,
                    Val::Data => Val::Any(Hole::Data.max(args.hole())),
                    _ => Val::Any(Hole::Chars),
                }
            }
        }
    }

    fn macro_call(&mut self, name: &str, args: Args) -> Val {
        let Some(info) = self.macros.get(name) else {
            return Val::Unset;
        };
        let params = info.params.clone();
        let output = info.output.clone();
        for (p, v) in params.iter().zip(args.pos) {
            self.assign_name(p.clone(), v);
        }
        for (k, v) in args.kw {
            if params.iter().any(|p| p == k) {
                self.assign_name(k.to_string(), v);
            }
        }
        output
    }

    /// `recv.name(args)`.
    fn method(&mut self, recv: &Val, name: &str, args: &Args, span: Span) -> Val {
        if recv.is_unset() {
            return Val::Unset;
        }
        match recv {
            Val::Str(_) => self.str_method(recv, name, args, span),
            Val::Data => match name {
                "get" => join(Val::Data, args.pos(1).cloned().unwrap_or(Val::Unset)),
                "replace" => {
                    Val::hole(Hole::Data.max(args.pos(1).map_or(Hole::Plain, Val::hole_kind)))
                }
                "format" | "format_map" | "join" => Val::hole(Hole::Data.max(args.hole())),
                _ => Val::Data,
            },
            Val::Map(entries) => match name {
                "items" => Val::seq(
                    entries
                        .iter()
                        .map(|(k, v)| Val::seq(vec![Val::lit(k.clone()), v.clone()], true))
                        .collect(),
                    true,
                ),
                "keys" => Val::seq(
                    entries.iter().map(|(k, _)| Val::lit(k.clone())).collect(),
                    true,
                ),
                "values" => Val::seq(entries.iter().map(|(_, v)| v.clone()).collect(), true),
                "get" => {
                    let found = args.pos(0).map(|k| recv.item(k)).unwrap_or(Val::Unset);
                    join(found, args.pos(1).cloned().unwrap_or(Val::Unset))
                }
                _ => Val::Any(recv.hole_kind().max(args.hole())),
            },
            Val::Engine => Val::Engine,
            Val::Num(_) => Val::Any(Hole::Plain),
            other => Val::Any(other.hole_kind().max(args.hole())),
        }
    }

    fn str_method(&mut self, recv: &Val, name: &str, args: &Args, span: Span) -> Val {
        let known = recv.known();
        let hole = recv.hole_kind().max(args.hole());
        match name {
            "format" | "format_map" => {
                match known.as_deref() {
                    Some(fmt) => {
                        if let Some(d) = format_field_dunder(fmt) {
                            self.report(
                                &rules::TEMPLATE_CODE_EXECUTION,
                                span,
                                format!("`str.format` field reads `{d}`, a Python special attribute"),
                            );
                        }
                    }
                    None if recv.hole_kind() == Hole::Chars => self.report(
                        &rules::TEMPLATE_DYNAMIC_ACCESS,
                        span,
                        "`str.format` with a format string built at render time can read any attribute"
                            .to_string(),
                    ),
                    None => {}
                }
                if name == "format"
                    && let (Some(fmt), Some(a)) = (&known, args.known())
                    && let Some(s) = brace_format(fmt, &a)
                {
                    return Val::lit(s);
                }
                let chars = if args.has_number() { Hole::Chars } else { hole };
                Val::hole(hole.max(chars))
            }
            "join" => match args.pos(0) {
                Some(list) => join_items(list, recv),
                None => Val::Unset,
            },
            "replace" => match (
                &known,
                args.pos(0).and_then(Val::known),
                args.pos(1).and_then(Val::known),
            ) {
                (Some(s), Some(a), Some(b)) if args.pos.len() == 2 => Val::lit(s.replace(&a, &b)),
                _ => Val::hole(hole),
            },
            "lower" | "casefold" => map_known(recv, |s| s.to_lowercase()),
            "upper" => map_known(recv, |s| s.to_uppercase()),
            "strip" | "lstrip" | "rstrip" if args.pos.is_empty() => {
                map_known(recv, |s| match name {
                    "strip" => s.trim().to_string(),
                    "lstrip" => s.trim_start().to_string(),
                    _ => s.trim_end().to_string(),
                })
            }
            "split" | "rsplit" | "splitlines" | "partition" | "rpartition" => {
                Val::seq(vec![Val::hole(hole)], false)
            }
            "startswith" | "endswith" | "count" | "find" | "rfind" | "index" | "rindex"
            | "isdigit" | "isalpha" | "isalnum" | "isspace" | "islower" | "isupper" => {
                Val::Num(None)
            }
            _ => Val::hole(hole),
        }
    }

    fn filter(&mut self, f: &ast::Spanned<ast::Filter>, input: Option<Val>, d: usize) -> Val {
        let span = f.span();
        let string_op = matches!(
            f.name,
            "join"
                | "format"
                | "replace"
                | "reverse"
                | "string"
                | "lower"
                | "upper"
                | "first"
                | "last"
                | "list"
        );
        let run = |w: &mut Self| {
            let input = match (&f.expr, input) {
                (Some(e), _) => w.expr(e, d),
                (None, Some(v)) => v,
                (None, None) => Val::Unset,
            };
            let args = w.args(&f.args, d);
            if f.name != "attr" {
                w.attribute_args(f.name, &args, span, 0);
            } else {
                let name = args.pos(0).cloned().unwrap_or(Val::Unset);
                if let Some(base) = &f.expr {
                    w.lookup(base, &input, &name, span, "`|attr`");
                }
                return match name.known() {
                    Some(n) => input.attr(&n),
                    None if input.is_unset() => Val::Unset,
                    None if matches!(input, Val::Data) => Val::Data,
                    None => Val::Engine,
                };
            }
            apply_filter(f.name, &input, &args, 0)
        };
        if string_op {
            self.string_op(span, run)
        } else {
            run(self)
        }
    }
}

/// A `for` loop's or `if`'s output: the characters it may emit.
fn opaque_output(out: Vec<Piece>) -> Vec<Piece> {
    if out.is_empty() {
        out
    } else {
        vec![Piece::Hole(super::value::pieces_hole(&out))]
    }
}

fn strict2(l: &Val, r: &Val, f: impl FnOnce() -> Val) -> Val {
    if l.is_unset() || r.is_unset() {
        Val::Unset
    } else {
        f()
    }
}

fn concat(l: &Val, r: &Val) -> Val {
    let mut p = l.pieces();
    p.extend(r.pieces());
    Val::text(p)
}

fn map_known(v: &Val, f: impl FnOnce(&str) -> String) -> Val {
    match v.known() {
        Some(s) => Val::lit(f(&s)),
        None => v.opaque(),
    }
}

/// `s * n`, `n * s`, `list * n`.
fn repeat(l: &Val, r: &Val) -> Val {
    let (v, n) = match (l, r) {
        (Val::Num(_), Val::Num(_)) => {
            return Val::Num(l.int().zip(r.int()).and_then(|(a, b)| a.checked_mul(b)));
        }
        (Val::Num(n), v) | (v, Val::Num(n)) => (v, *n),
        _ => return Val::Any(l.hole_kind().max(r.hole_kind())),
    };
    match (v, n.and_then(|n| usize::try_from(n).ok())) {
        (Val::Str(p), Some(n)) => {
            let lits: usize = p
                .iter()
                .map(|p| match p {
                    Piece::Lit(s) => s.len(),
                    Piece::Hole(_) => 1,
                })
                .sum();
            if lits.saturating_mul(n) > super::value::MAX_FOLDED_LEN {
                return v.opaque();
            }
            Val::text(p.iter().cloned().cycle().take(p.len() * n).collect())
        }
        (Val::Str(_), None) => v.opaque(),
        (Val::Seq { items, .. }, _) => Val::seq(items.clone(), false),
        _ => Val::Any(v.hole_kind()),
    }
}

/// `fmt % args` and `fmt|format(args)`.
fn percent(fmt: &Val, args: &[Val]) -> Val {
    if let Some(f) = fmt.known() {
        let known: Option<Vec<String>> = args.iter().map(Val::known).collect();
        if let Some(s) = known.and_then(|a| percent_format(&f, &a)) {
            return Val::lit(s);
        }
    }
    // `%c` turns numbers into any character, `_` included.
    let chars = args.iter().any(|a| matches!(a, Val::Num(_)));
    let hole = args
        .iter()
        .map(Val::hole_kind)
        .fold(fmt.hole_kind(), Hole::max);
    Val::hole(if chars { Hole::Chars } else { hole })
}

/// `sep.join(list)` and `list|join(sep)`.
fn join_items(list: &Val, sep: &Val) -> Val {
    if list.is_unset() || sep.is_unset() {
        return Val::Unset;
    }
    match list.items() {
        Some(items) => {
            let mut pieces = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    pieces.extend(sep.pieces());
                }
                pieces.extend(item.pieces());
            }
            Val::text(pieces)
        }
        None => Val::hole(
            list.elem()
                .hole_kind()
                .max(sep.hole_kind())
                .max(match list {
                    Val::Data => Hole::Data,
                    _ => Hole::Plain,
                }),
        ),
    }
}

fn slice(base: &Val, start: Option<Val>, stop: Option<Val>, step: Option<Val>) -> Val {
    if base.is_unset() {
        return Val::Unset;
    }
    let int = |v: &Option<Val>| -> Option<Option<i64>> {
        match v {
            None => Some(None),
            Some(v) => v.int().map(Some),
        }
    };
    match base {
        Val::Str(_) => {
            if let (Some(s), Some(a), Some(b), Some(c)) =
                (base.known(), int(&start), int(&stop), int(&step))
                && let Some(out) = py_slice(&s, a, b, c.unwrap_or(1))
            {
                return Val::lit(out);
            }
            base.opaque()
        }
        Val::Seq { items, .. } => Val::seq(items.clone(), false),
        Val::Data => Val::Data,
        other => Val::Any(other.hole_kind()),
    }
}

/// A call of a name the template does not bind.
fn global_call(name: &str, args: &Args) -> Val {
    match name {
        "range" => Val::seq(vec![Val::Num(None)], false),
        "dict" | "namespace" => {
            let entries = args
                .kw
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            match args.pos(0) {
                Some(v) => join(Val::map(entries), v.clone()),
                None => Val::map(entries),
            }
        }
        "lipsum" => Val::hole(Hole::Plain),
        "raise_exception" => Val::Num(None),
        "strftime_now" => Val::hole(args.hole().max(Hole::Plain)),
        "caller" => Val::hole(Hole::Chars),
        "cycler" | "joiner" => Val::Engine,
        _ if JINJA_GLOBALS.contains(&name) || ENGINE_NAMES.contains(&name) => Val::Engine,
        _ => Val::Any(Hole::Data.max(args.hole())),
    }
}

/// The value of `input|name(args)`.
fn apply_filter(name: &str, input: &Val, args: &Args, depth: usize) -> Val {
    if input.is_unset() {
        return Val::Unset;
    }
    let hole = input.hole_kind().max(args.hole());
    match name {
        "string" | "safe" | "e" | "escape" | "forceescape" => match input {
            Val::Str(_)
                if input
                    .known()
                    .is_none_or(|s| !s.contains(['<', '>', '&', '\'', '"'])) =>
            {
                input.clone()
            }
            Val::Num(Some(n)) => Val::lit(n.to_string()),
            other => other.opaque(),
        },
        "lower" => map_known(&stringify(input), |s| s.to_lowercase()),
        "upper" => map_known(&stringify(input), |s| s.to_uppercase()),
        "trim" if args.pos.is_empty() => map_known(&stringify(input), |s| s.trim().to_string()),
        "capitalize" | "title" | "trim" | "center" | "indent" | "wordwrap" | "truncate"
        | "striptags" | "urlencode" | "pprint" | "xmlattr" | "filesizeformat" => Val::hole(hole),
        "tojson" => match input.known() {
            Some(s) if matches!(input, Val::Str(_)) => {
                serde_json::to_string(&s).map_or(Val::hole(hole), Val::lit)
            }
            _ => Val::hole(hole),
        },
        "replace" => match (
            input.known(),
            args.pos(0).and_then(Val::known),
            args.pos(1).and_then(Val::known),
        ) {
            (Some(s), Some(a), Some(b)) if args.pos.len() == 2 => Val::lit(s.replace(&a, &b)),
            _ => Val::hole(hole),
        },
        "format" => percent(input, &args.pos),
        "join" => join_items(input, args.pos(0).unwrap_or(&Val::lit(""))),
        "reverse" => match input {
            Val::Str(p) => Val::text(
                p.iter()
                    .rev()
                    .map(|p| match p {
                        Piece::Lit(s) => Piece::Lit(s.chars().rev().collect()),
                        h => h.clone(),
                    })
                    .collect(),
            ),
            Val::Seq { items, exact } => Val::seq(items.iter().rev().cloned().collect(), *exact),
            other => other.clone(),
        },
        "first" | "last" => match input.items() {
            Some(items) => {
                let item = if name == "first" {
                    items.first()
                } else {
                    items.last()
                };
                item.cloned().unwrap_or(Val::lit(""))
            }
            None => input.elem(),
        },
        "random" | "min" | "max" => input.elem(),
        "list" => match input.items() {
            Some(items) => Val::seq(items, true),
            None if matches!(input, Val::Data) => Val::Data,
            None => Val::seq(vec![input.elem()], false),
        },
        "items" | "dictsort" => match input {
            Val::Map(entries) => Val::seq(
                entries
                    .iter()
                    .map(|(k, v)| Val::seq(vec![Val::lit(k.clone()), v.clone()], true))
                    .collect(),
                true,
            ),
            Val::Data => Val::Data,
            other => Val::seq(vec![Val::Any(other.hole_kind())], false),
        },
        "sort" | "unique" | "select" | "reject" | "selectattr" | "rejectattr" | "batch"
        | "slice" | "groupby" => match input {
            Val::Data => Val::Data,
            other => Val::seq(vec![other.elem()], false),
        },
        "map" => {
            if let Val::Data = input {
                return Val::Data;
            }
            let item = input.elem();
            let mapped = match (args.kw("attribute"), args.pos(0)) {
                (Some(a), _) => match a.known() {
                    Some(n) => n.split('.').fold(item, |v, p| v.attr(p)),
                    None => Val::Any(Hole::Chars),
                },
                (None, Some(f)) if depth < 8 => match f.known() {
                    Some(inner) => {
                        let rest = Args {
                            pos: args.pos.get(1..).unwrap_or_default().to_vec(),
                            kw: args.kw.clone(),
                        };
                        apply_filter(&inner, &item, &rest, depth + 1)
                    }
                    None => Val::Any(Hole::Chars),
                },
                _ => Val::Any(hole),
            };
            Val::seq(vec![mapped], false)
        }
        "attr" => match args.pos(0).and_then(Val::known) {
            Some(n) => input.attr(&n),
            None => Val::Any(Hole::Chars),
        },
        "default" | "d" => join(input.clone(), args.pos(0).cloned().unwrap_or(Val::lit(""))),
        "length" | "count" | "wordcount" | "float" | "abs" | "round" | "sum" => Val::Num(None),
        "int" => Val::Num(input.known().and_then(|s| s.trim().parse().ok())),
        "bool" => Val::Num(None),
        _ => Val::Any(hole),
    }
}

/// A value as a filter that works on strings sees it.
fn stringify(v: &Val) -> Val {
    match v {
        Val::Str(_) => v.clone(),
        Val::Num(Some(n)) => Val::lit(n.to_string()),
        other => other.opaque(),
    }
}
