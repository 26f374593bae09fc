//! Python's string formatting, folded over known arguments without running it.

use super::value::is_dunder;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
