//! Where the hub cache is, resolved as huggingface_hub resolves it.
//!
//! Root resolution mirrors `huggingface_hub/constants.py` (2.4.0):
//! `HF_HUB_CACHE`, then the legacy `HUGGINGFACE_HUB_CACHE`, then
//! `$HF_HOME/hub`, where `HF_HOME` is itself `HF_HOME`, else
//! `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`; `~` and
//! `$VARS` are expanded as Python's `expanduser`/`expandvars` do. One
//! deliberate difference: an empty variable counts as unset (Python would
//! turn it into a path relative to the working directory, which for a
//! service is `/`).

use std::path::{Path, PathBuf};

/// Expands a leading `~` and `$NAME` / `${NAME}` references; unknown
/// variables are left as written, as `os.path.expandvars` does.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> PathBuf {
    let mut out = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (braced.get(..end).unwrap_or_default(), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (after.get(..end).unwrap_or_default(), end)
        };
        match (name.is_empty(), env(name)) {
            (false, Some(v)) => out.push_str(&v),
            _ => out.push_str(rest.get(pos..pos + 1 + consumed).unwrap_or("$")),
        }
        rest = after.get(consumed..).unwrap_or_default();
    }
    out.push_str(rest);
    match (out.strip_prefix('~'), home) {
        (Some(tail), Some(h)) if tail.is_empty() || tail.starts_with('/') => {
            h.join(tail.trim_start_matches('/'))
        }
        _ => PathBuf::from(out),
    }
}

/// Resolves the hub cache root the way huggingface_hub does, from the given
/// environment lookup and home directory.
pub fn resolve_hub_cache(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(v) = get("HF_HUB_CACHE").or_else(|| get("HUGGINGFACE_HUB_CACHE")) {
        return Some(expand(&v, env, home));
    }
    let hf_home = match get("HF_HOME") {
        Some(v) => expand(&v, env, home),
        None => {
            let base = match get("XDG_CACHE_HOME") {
                Some(x) => expand(&x, env, home),
                None => home?.join(".cache"),
            };
            base.join("huggingface")
        }
    };
    Some(hf_home.join("hub"))
}

/// The hub cache of the current process environment.
pub fn default_hub_cache() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()));
    resolve_hub_cache(&|k| std::env::var(k).ok(), home.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn resolution_order() {
        let home = Path::new("/home/u");
        let r = |p: &'static [(&'static str, &'static str)]| {
            resolve_hub_cache(&env_of(p), Some(home)).unwrap()
        };
        assert_eq!(r(&[]), PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(
            r(&[("XDG_CACHE_HOME", "/x")]),
            PathBuf::from("/x/huggingface/hub")
        );
        assert_eq!(
            r(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "~/hf")]),
            PathBuf::from("/home/u/hf/hub")
        );
        assert_eq!(
            r(&[("HF_HOME", "/h"), ("HUGGINGFACE_HUB_CACHE", "/legacy")]),
            PathBuf::from("/legacy")
        );
        assert_eq!(
            r(&[
                ("HF_HUB_CACHE", "$D/${E}/$NOPE"),
                ("HUGGINGFACE_HUB_CACHE", "/legacy"),
                ("D", "/d"),
                ("E", "e")
            ]),
            PathBuf::from("/d/e/$NOPE")
        );
        assert_eq!(
            r(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/h")]),
            PathBuf::from("/h/hub")
        );
    }
}
