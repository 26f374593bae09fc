//! Policy diagnostics, rendered like a compiler's: severity and message,
//! `file:line:col`, the offending source line with a caret under the value,
//! and a help line saying how to fix it.
//!
//! A diagnostic is resolved to line and column when it is created (from a
//! byte span into the file's text), so that it can outlive the text and be
//! printed, compared in tests or serialized without the source at hand.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// The file as the user named it (or as it was found).
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (an unreadable file).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    source_line: String,
    caret_len: usize,
}

impl Diagnostic {
    /// A diagnostic pointing at `span` (byte offsets into `text`).
    pub fn at(
        severity: Severity,
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text
            .get(..start)
            .and_then(|t| t.rfind('\n'))
            .map_or(0, |i| i + 1);
        let line_end = text
            .get(start..)
            .and_then(|t| t.find('\n'))
            .map_or(text.len(), |i| start + i);
        let line = text.get(..start).map_or(0, |t| t.matches('\n').count()) + 1;
        let before = text.get(line_start..start).unwrap_or("");
        let source_line = text
            .get(line_start..line_end)
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string();
        let caret_text = text.get(start..end.min(line_end)).unwrap_or("");
        Diagnostic {
            severity,
            message: message.into(),
            help,
            file: file.to_path_buf(),
            line,
            column: before.chars().count() + 1,
            source_line,
            caret_len: caret_text.chars().count().max(1),
        }
    }

    /// A diagnostic about a whole file (it cannot be read, say).
    pub fn whole_file(
        severity: Severity,
        file: &Path,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            help,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            source_line: String::new(),
            caret_len: 0,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        let file = self.file.display();
        if self.line == 0 {
            writeln!(f, "  --> {file}")?;
        } else {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad}--> {file}:{}:{}", self.line, self.column)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {}", self.source_line)?;
            let indent: String = self
                .source_line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {indent}{}", "^".repeat(self.caret_len))?;
        }
        if let Some(help) = &self.help {
            let pad = " ".repeat(if self.line == 0 {
                1
            } else {
                self.line.to_string().len()
            });
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Renders a list of diagnostics, errors last so they stay on screen, with
/// a closing count.
pub fn render(diags: &[Diagnostic]) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| d.severity);
    let mut out = String::new();
    for d in &sorted {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let s = if errors == 1 { "" } else { "s" };
        out.push_str(&format!("policy invalid: {errors} error{s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_value() {
        let text = "[actions]\nmalicious = \"blok\"\n";
        let start = text.find("\"blok\"").unwrap_or(0);
        let d = Diagnostic::at(
            Severity::Error,
            Path::new("policy.toml"),
            text,
            start..start + 6,
            "unknown action `blok`",
            Some("use one of `allow`, `warn`, `block`".into()),
        );
        assert_eq!((d.line, d.column), (2, 13));
        let shown = d.to_string();
        assert!(shown.contains(" --> policy.toml:2:13"), "{shown}");
        assert!(shown.contains("2 | malicious = \"blok\""), "{shown}");
        assert!(shown.contains("  |             ^^^^^^"), "{shown}");
    }

    #[test]
    fn spans_outside_text_do_not_panic() {
        let d = Diagnostic::at(Severity::Error, Path::new("p"), "é", 1..99, "m", None);
        assert_eq!(d.line, 1);
    }
}
