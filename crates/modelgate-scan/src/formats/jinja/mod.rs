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
//! The walk is a data-flow analysis ([`flow`]): every expression becomes an
//! abstract value ([`value`]): a folded constant where the value is
//! knowable, otherwise a record of who picks its characters: the template
//! itself (its constants, `%c` of numbers, `str()` of engine objects such as
//! `lipsum`, `cycler`, `self`, `loop`), the conversation (messages, tools),
//! or nobody (numbers). Values flow through `set`/`with`/`for` bindings,
//! macro parameters and output, `caller()`, `{% set %}` blocks, namespace
//! slots, lists, dicts and the string filters and methods, to a fixed point.
//! Jinja2's own string-literal decoding and its `trim_blocks`/`lstrip_blocks`
//! whitespace are followed, since those are what the runtimes render with.
//!
//! What is flagged:
//! * malicious (GGUF010): an attribute, subscript, `|attr` name or attribute
//!   argument of a filter (`map(attribute=)`, `map('attr', n)`, `selectattr`,
//!   `groupby`, `sort`, `sum`, `unique`, `min`/`max`, `join`) that is a dunder
//!   (`__class__`, `__globals__`, ...) or can become one with underscores the
//!   template supplies; module and exec names (`os`, `popen`, `eval`, ...);
//!   members of Jinja's and Flask's globals (`cycler`, `lipsum`, `self`,
//!   `config`, `request`, ...); `str.format` fields that read dunders; string
//!   constants or string operations that spell a dunder.
//! * suspicious (GGUF011): member names computed at render time from data
//!   that cannot be steered to a dunder, when read through `|attr`, an
//!   attribute filter or from an engine object; `__` fragments glued to
//!   computed strings; private `_attributes`; `include`/`import`/`extends`.
//! * suspicious and inconclusive (GGUF012): a template that is not UTF-8, does
//!   not parse (including Jinja2 syntax minijinja lacks), is too large or
//!   deep, or whose data flow does not settle. HF's harmless
//!   `{% generation %}` markers, which only transformers understands, are
//!   blanked out (same length, so offsets stay exact) before parsing.
//!
//! Not covered statically: what the conversation itself contains (a message
//! whose text is `__class__` used as a name by an otherwise harmless
//! template), and escapes through objects the runtime adds to the context
//! beyond the documented ones; names the analysis cannot follow are
//! reported, never assumed safe.
//!
//! Invariants: the input is bounded by `max_string_bytes`; before parsing,
//! a token pass refuses tags with more than [`MAX_TAG_TOKENS`] tokens or
//! brackets nested deeper than [`MAX_BRACKET_DEPTH`] (minijinja builds
//! operator chains iteratively, so their AST depth, and the recursion of its
//! drop, is bounded only by the token count); the walk is capped at
//! `max_structure_depth`; the fixed point is capped at a number of passes,
//! and abstract values are bounded in size. Findings carry the byte offset of the offending
//! expression in the file and the snippet as evidence.

mod flow;
mod pyfmt;
mod value;

use minijinja::machinery::Token;
use minijinja::syntax::SyntaxConfig;

use crate::{Ctx, rules};

/// Tokens in one `{{ }}` or `{% %}` tag. Real templates stay below a few
/// hundred; the cap bounds AST depth (see the module docs).
pub const MAX_TAG_TOKENS: usize = 2048;

/// Nesting of `(`, `[` and `{` inside one tag.
pub const MAX_BRACKET_DEPTH: usize = 48;

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
            // Jinja2 accepts syntax minijinja does not (unary `+`, Unicode
            // names, a call on a filter's result): a dunder name written in
            // the code of such a template is still the sandbox escape.
            if let Some((at, word)) = dunder_in_code(&source) {
                cx.report(
                    &rules::TEMPLATE_CODE_EXECUTION,
                    Some(base_offset + at as u64),
                    format!(
                        "{name}: code that could not be parsed names `{word}`, a Python special attribute (sandbox escape)"
                    ),
                    Some(word.to_string()),
                );
            }
            return;
        }
    };
    let max_depth = cx.limits().max_structure_depth as usize;
    let site = flow::Site {
        name,
        source: &source,
        base_offset,
        max_depth,
    };
    let why = match flow::analyse(cx, &site, &tree) {
        Ok(()) => return,
        Err(flow::Incomplete::TooDeep) => format!("nests deeper than {max_depth} levels"),
        Err(flow::Incomplete::Unsettled) => {
            "has data flow too tangled to follow (its values did not settle)".to_string()
        }
    };
    cx.inconclusive(
        &rules::TEMPLATE_UNPARSEABLE,
        Some(base_offset),
        format!("{name} {why}; it was not fully analysed"),
    );
}

/// The first dunder name (`__globals__`) inside a `{{ }}` or `{% %}` block,
/// with its offset. Lexical only, for templates the parser rejected: text
/// outside the blocks is output, not code.
fn dunder_in_code(source: &str) -> Option<(usize, &str)> {
    let bytes = source.as_bytes();
    let mut at = 0;
    while let Some(open) = source.get(at..).and_then(|rest| {
        let v = rest.find("{{");
        let b = rest.find("{%");
        v.into_iter().chain(b).min()
    }) {
        let start = at + open + 2;
        let close_pat = if bytes.get(at + open + 1) == Some(&b'{') {
            "}}"
        } else {
            "%}"
        };
        let end = source
            .get(start..)
            .and_then(|rest| rest.find(close_pat))
            .map_or(source.len(), |e| start + e);
        let code = source.get(start..end).unwrap_or_default();
        let mut from = 0;
        while let Some(i) = code.get(from..).and_then(|c| c.find("__")) {
            let begin = from + i;
            let word_len = code
                .get(begin..)
                .unwrap_or_default()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(code.len() - begin);
            let word = code.get(begin..begin + word_len).unwrap_or_default();
            let inner = word.trim_matches('_');
            if word.len() >= inner.len() + 4
                && word.ends_with("__")
                && inner.starts_with(|c: char| c.is_ascii_alphabetic())
            {
                return Some((start + begin, word));
            }
            from = begin + word_len.max(2);
        }
        at = end;
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileReport, Scanner, Verdict};

    macro_rules! real {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!(
                    "../../../../../tests/fixtures/gen/gguf_templates/",
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
            "{% for i in x %}{{ loop.__class__ }}{% endfor %}",
            "{% for i in x %}{{ loop.__init__() }}{% endfor %}",
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

    /// Escapes that never write a dunder constant: the name is built at
    /// render time and reaches the lookup through bindings, macros, loops,
    /// namespaces, filters and engine objects' string forms.
    #[test]
    fn data_flow_escapes_are_malicious() {
        for t in [
            // Jinja2 decodes string escapes as Python does.
            r#"{{ x['\N{LOW LINE}_class__'] }}"#,
            r#"{{ x['\U0000005f_class__'] }}"#,
            "{{ x['_\\\n_class__'] }}",
            r#"{{ x['__\N{LATIN SMALL LETTER C}lass__'] }}"#,
            // trim_blocks drops the newline after a block tag.
            "{% set n %}__cla{% set z = 1 %}\nss__{% endset %}{{ x[n] }}",
            "{% set n %}\n  __class__\n{% endset %}{{ x[n] }}",
            r#"{{ x[bos_token] }}"#,
            r#"{% macro m() %}{{ caller('_') }}{% endmacro %}{% call(u) m() %}{{ lipsum[u ~ u ~ 'globals' ~ u ~ u] }}{% endcall %}"#,
            r#"{% set ns = namespace(s='') %}{% for c in '_-_-class_-_'|list %}{% if c != '-' %}{% set ns.s = ns.s ~ c %}{% endif %}{% endfor %}{{ lipsum[ns.s] }}"#,
            r#"{% set n = '__cla' ~ 'ss__' %}{{ x[n] }}"#,
            r#"{% set c = cycler('_', 'x') %}{{ lipsum[c.next() ~ c.next() ~ 'globals' ~ c.next() ~ c.next()] }}"#,
            r#"{{ x['__' ~ message.content ~ '__'] }}"#,
            r#"{{ x[undefined_name|default('__cla') ~ 'ss__'] }}"#,
            r#"{% set d = {'_': 1} %}{{ x[(d|list|first) * 2 ~ 'class' ~ (d|list|first) * 2] }}"#,
            r#"{{ x[('_a'|first) * 2 ~ 'class' ~ ('a_'|last) * 2] }}"#,
            r#"{% for n in ['__glo' ~ 'bals__'] %}{{ lipsum[n] }}{% endfor %}"#,
            r#"{{ lipsum['{:_^11}'.format('globals')] }}"#,
            r#"{% set n = ['a', '__class__'][1] %}{{ x[n] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|groupby(u~u~'class'~u~u)|list }}"#,
            r#"{{ x[('__cla' if true else 'a') ~ 'ss__'] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|join(',', u~u~'class'~u~u) }}"#,
            r#"{% set j = joiner('_') %}{{ lipsum[j() ~ j() ~ 'globals' ~ j() ~ j()] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x[u ~ u ~ 'globals' ~ u ~ u] }}"#,
            r#"{% set u = (lipsum|string|list)[18] %}{{ lipsum|attr(u*2 ~ 'globals' ~ u*2) }}"#,
            r#"{% for i in [1] %}{{ x[(loop|string)[0:2] ~ 'class' ~ (loop|string)[0:2]] }}{% endfor %}"#,
            r#"{% macro n() %}_{{ '_glob' }}als_{{ '_' }}{% endmacro %}{{ lipsum|attr(n()) }}"#,
            r#"{% set u = (cycler|string)[18] %}{% macro g(o, n) %}{{ o[n] }}{% endmacro %}{{ g(lipsum, u ~ u ~ 'globals' ~ u ~ u) }}"#,
            r#"{% set u = (self|string)[1] %}{{ [lipsum]|map('attr', u~u~'globals'~u~u)|list }}"#,
            r#"{{ x|attr(['%c%cclass%c%c']|map('format', 95, 95, 95, 95)|first) }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|min(attribute=u~u~'class'~u~u) }}"#,
            r#"{% set ns = namespace(a='__glo') %}{% set ns.b = 'bals__' %}{{ lipsum[ns.a ~ ns.b] }}"#,
            r#"{{ x[(none or '__cla') ~ 'ss__'] }}"#,
            r#"{% for i in range(200) %}{{ x['%c%c' % (i, i) ~ 'class' ~ '%c%c' % (i, i)] }}{% endfor %}"#,
            r#"{% macro r(n, k) %}{% if k %}{{ lipsum[n] }}{% else %}{{ r(n ~ '_', 1) }}{% endif %}{% endmacro %}{{ r('_', 0) }}"#,
            r#"{{ x['-_class_-'|replace('-', '_')] }}"#,
            r#"{{ x['-_class_-'.replace('-', '_')] }}"#,
            r#"{{ x[request.args.n] }}"#,
            r#"{{ x['__ssalc__'|reverse] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|selectattr(u~u~'class'~u~u)|list }}"#,
            r#"{% set t = t %}{{ x['__cla' ~ t ~ 'ss__'] }}"#,
            r#"{{ x[self|string] }}"#,
            r#"{% set n %}__glo{{ 'bals' }}__{% endset %}{{ lipsum[n] }}"#,
            r#"{{ x['_._.c.l.a.s.s._._'[::2]] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|sort(attribute=u~u~'class'~u~u)|list }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|sort(false, false, u~u~'class'~u~u)|list }}"#,
            r#"{{ lipsum[strftime_now('_') * 2 ~ 'globals' ~ strftime_now('_') * 2] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|sum(attribute=u~u~'class'~u~u) }}"#,
            r#"{% set u = ('_'|tojson)[1] %}{{ x[u*2 ~ 'class' ~ u*2] }}"#,
            r#"{% set a, b = '_' ~ '_glo', 'bals_' ~ '_' %}{{ lipsum[a ~ b] }}"#,
            r#"{% set u = (lipsum|string)[18] %}{{ x|unique(attribute=u~u~'class'~u~u)|list }}"#,
            r#"{% with n = '__glo' ~ 'bals__' %}{{ lipsum[n] }}{% endwith %}"#,
        ] {
            let report = scan(t);
            assert!(
                ids(&report).contains(&"GGUF010"),
                "{t}: {:#?}",
                report.findings
            );
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
            "{% include name %}",
            "{{ x|attr(message.role) }}",
            "{{ cycler[message.content] }}",
            "{{ x|selectattr(message.role)|list }}",
            "{{ x|map('attr', message.role)|list }}",
            "{{ x|sort(attribute=tool.name)|list }}",
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
            r#"{% set k = 'content' %}{{ messages[0][k] }}"#,
            r#"{{ '<|{}|>'.format(m.role) }}"#,
            r#"{{ messages[loop.index0 - 1]['role'] }}"#,
            r#"{% macro f(k) %}{% set key = k ~ '' %}{{ message[key] }}{% endmacro %}{{ f('tool_calls') }}"#,
            r#"{% for m in messages %}{% if loop.previtem and loop.previtem.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}"#,
            r#"{% set ns = namespace(x=[]) %}{% for m in messages %}{% set ns.x = ns.x + [m] %}{% endfor %}{{ ns.x|length }}"#,
            r#"{% for name, p in tool.parameters.properties.items() %}{{ name }}: {{ tool.parameters.properties[name].type }}{% endfor %}"#,
            r#"{% for t in tools %}{{ x['tool_' ~ t.name] }}{% endfor %}"#,
            r#"{% set tools = tools|default([]) %}{% for t in tools %}{{ t.function.name }}{% endfor %}"#,
        ] {
            let report = scan(t);
            assert!(report.findings.is_empty(), "{t}: {:#?}", report.findings);
        }
    }

    #[test]
    fn unparseable_templates_are_inconclusive() {
        // The last two are Jinja2 that minijinja does not accept: a call on a
        // filter's result, a tag from a Jinja2 extension.
        for t in [
            "{% for x in %}",
            "{{ x",
            "{% frobnicate %}",
            "{{ x|attr('get')('os') }}",
            "{% trans %}hi{% endtrans %}",
        ] {
            let report = scan(t);
            assert_eq!(ids(&report), ["GGUF012"], "{t}");
            assert!(matches!(
                report.status,
                crate::ScanStatus::Inconclusive { .. }
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
    fn unparseable_templates_naming_a_dunder_are_malicious() {
        // Jinja2 parses all three; minijinja rejects them.
        for t in [
            "{{ +1 }}{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{% set \u{e9} = lipsum %}{{ \u{e9}.__globals__ }}",
            "{%- if x -%}{{ x|attr('__class__')('os') }}{%- endif -%}",
        ] {
            let report = scan(t);
            assert_eq!(ids(&report), ["GGUF012", "GGUF010"], "{t}");
        }
        // Output text is not code; nor is a name that only starts with `__`.
        for t in [
            "__init__ {{ +1 }}",
            "{{ +x.__private }}",
            "{{ +1 }}{# __globals__ #}",
        ] {
            assert_eq!(ids(&scan(t)), ["GGUF012"], "{t}");
        }
        assert_eq!(dunder_in_code("{{ a }}{% b.__c__ %}"), Some((12, "__c__")));
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
        // Self-feeding bindings stay bounded and settle.
        let doubling = "{% for i in range(9) %}{% set a = [a, a] %}{% set s = s ~ s ~ '_' %}{% endfor %}{{ x[s] }}";
        assert_eq!(scan(doubling).verdict, Verdict::Malicious);
        let grow = "{% set ns = namespace(l=[]) %}{% for m in messages %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}";
        assert!(scan(grow).findings.is_empty());
        // A chain that propagates one step per pass, written backwards,
        // does not settle: inconclusive, never clean.
        let chain: String = (0..60)
            .rev()
            .map(|i| format!("{{% set v{} = v{} ~ 'x' %}}", i + 1, i))
            .collect();
        let backwards = format!("{chain}{{% set v0 = 'y' %}}{{{{ x[v60] }}}}");
        assert_eq!(ids(&scan(&backwards)), ["GGUF012"]);
        // Macros calling each other: output is read, not re-walked, so a
        // chain costs a pass per link; a long one is inconclusive.
        let macros = |n: usize| -> String {
            let defs: String = (0..n)
                .map(|i| {
                    format!(
                        "{{% macro m{i}(a) %}}{{{{ m{}(a ~ a) }}}}{{% endmacro %}}",
                        i + 1
                    )
                })
                .collect();
            format!("{defs}{{{{ m0('x') }}}}")
        };
        assert!(scan(&macros(8)).findings.is_empty());
        assert_eq!(ids(&scan(&macros(200))), ["GGUF012"]);
    }
}
