//! The seam between the policy and the pickle engine's built-in global
//! tables: the policy asks whether a global is on the built-in denylist
//! (a team may only allow such a global with `override = true` and a
//! reason) and hands its extra allowed and denied globals to the scanner.
//!
//! Everything the policy needs from the engine goes through these two
//! functions, so that the engine's table types can change without touching
//! validation or decisions.
//!
//! BRANCH-LOCAL STAND-IN: the engine's `is_builtin_denied(module, name) ->
//! Option<&'static str>` and a `GlobalLists` holding `(module, qualname)`
//! pairs are being written on main. Until they land, `is_builtin_denied`
//! answers from the short list below and `GlobalLists` (still the
//! placeholder with `Vec<String>` fields) receives `module.qualname` strings.
//! When main lands, both bodies become one-line calls.

use crate::scan::GlobalLists;

/// Why the built-in tables deny `module.name`, if they do.
pub fn is_builtin_denied(module: &str, name: &str) -> Option<&'static str> {
    const DENIED: &[(&str, &str, &str)] = &[
        ("os", "system", "runs a shell command"),
        ("posix", "system", "runs a shell command"),
        ("nt", "system", "runs a shell command"),
        ("subprocess", "Popen", "starts a process"),
        ("subprocess", "run", "starts a process"),
        ("subprocess", "check_output", "starts a process"),
        ("builtins", "exec", "executes Python source"),
        ("builtins", "eval", "evaluates Python source"),
        ("builtins", "__import__", "imports arbitrary modules"),
        ("runpy", "_run_code", "executes Python code"),
    ];
    DENIED
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|(_, _, why)| *why)
}

/// Builds the scanner's global tables from the policy's extra entries.
pub fn global_lists(allow: &[(String, String)], deny: &[(String, String)]) -> GlobalLists {
    let join = |v: &[(String, String)]| v.iter().map(|(m, n)| format!("{m}.{n}")).collect();
    GlobalLists { allow: join(allow), deny: join(deny) }
}
