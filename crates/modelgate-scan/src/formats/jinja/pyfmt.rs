//! Python's string formatting, folded over known arguments without running it.

use super::value::{Hole, Piece, is_dunder};

/// Python's `%` formatting over folded arguments, for the conversions that
/// can spell a name: `%s`, `%d`/`%i`, `%c` (`'%c%c' % (95, 95)` is `__`),
/// `%x`/`%o`, `%%`. Anything else does not fold.
pub fn percent_format(fmt: &str, args: &[String]) -> Option<String> {
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
pub fn brace_format(fmt: &str, args: &[String]) -> Option<String> {
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
pub fn format_field_dunder(s: &str) -> Option<&str> {
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

/// The value Jinja2 gives a run of string literals (`'a' "b"`): Python's
/// `unicode-escape` decoding of each body, which minijinja's unescaping
/// does not match (`\N{LOW LINE}`, `\U0000005f`, backslash-newline, `\v`).
/// `None` when `src` is not a run of quoted literals. The pieces are not
/// merged or shortened.
pub fn py_string_literals(src: &str) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = src.trim_start();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
        let body_and_more = rest.get(1..)?;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body_and_more.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == quote => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        unescape_into(body_and_more.get(..end)?, &mut pieces);
        rest = body_and_more.get(end + 1..)?.trim_start();
    }
    Some(pieces)
}

fn unescape_into(body: &str, out: &mut Vec<Piece>) {
    let mut lit = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            lit.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            lit.push('\\');
            break;
        };
        let hex = |n: usize, chars: &mut std::iter::Peekable<std::str::Chars>| {
            let digits: String = (0..n)
                .filter_map(|_| chars.next_if(char::is_ascii_hexdigit))
                .collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
        };
        let decoded = match d {
            '0'..='7' => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.next_if(|c| c.is_digit(8)) {
                        Some(o) => v = v * 8 + o.to_digit(8).unwrap_or(0),
                        None => break,
                    }
                }
                Some(char::from_u32(v))
            }
            'x' => Some(hex(2, &mut chars).and_then(char::from_u32)),
            'u' => Some(hex(4, &mut chars).and_then(char::from_u32)),
            'U' => Some(hex(8, &mut chars).and_then(char::from_u32)),
            'N' if chars.peek() == Some(&'{') => {
                let name: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                if name.trim().eq_ignore_ascii_case("LOW LINE") {
                    Some(Some('_'))
                } else {
                    // Some other named character: never an underscore.
                    out.push(Piece::Lit(std::mem::take(&mut lit)));
                    out.push(Piece::Hole(Hole::Plain));
                    continue;
                }
            }
            _ => crate::formats::python_simple_escape(d),
        };
        match decoded {
            Some(Some(c)) => lit.push(c),
            Some(None) => {}
            // An escape Python keeps as written, or one it refuses (then
            // Jinja2 refuses the template).
            None => {
                lit.push('\\');
                lit.push(d);
            }
        }
    }
    out.push(Piece::Lit(lit));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::jinja::value::Val;

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
    fn string_literals_decode_like_python() {
        let k = |s: &str| py_string_literals(s).and_then(|p| Val::text(p).known());
        assert_eq!(k(r"'\N{LOW LINE}_class__'").as_deref(), Some("__class__"));
        assert_eq!(
            k(r"'\U0000005f\x5fclass\137_'").as_deref(),
            Some("__class__")
        );
        assert_eq!(k("'_\\\n_class__'").as_deref(), Some("__class__"));
        assert_eq!(k(r#"'a' "b\"c""#).as_deref(), Some("ab\"c"));
        assert_eq!(k(r"'\/\q'").as_deref(), Some(r"\/\q"));
        assert!(
            py_string_literals(r"'__\N{LATIN SMALL LETTER C}lass__'")
                .is_some_and(|p| Val::text(p).can_be_dunder())
        );
        for hostile in [
            "'",
            "'\\",
            "'\\N{",
            "'\\x'",
            "x",
            "'a' b",
            "'\\U0011ffff'",
            "",
        ] {
            py_string_literals(hostile);
        }
    }
}
