//! The one output layer of the CLI: aligned tables for people, `--json`
//! (the response payload exactly as the protocol carries it), `--format`
//! (a Go-template-like `{{json .}}` / `{{.field}}` or a field list), `-q`
//! (names or ids only) on list commands, and human times. Everything is
//! written through [`line()`], so a closed stdout (`overlayd network ls | head
//! -1`) surfaces as an `io::ErrorKind::BrokenPipe` error that `main` turns
//! into a quiet exit 0 instead of a panic.

mod human;
mod responses;
mod table;
mod template;

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

pub use human::{ago, ago_unix};
pub use responses::{print, print_inspect};
pub use table::{render_table, Column};
pub use template::Template;

/// How the user asked output to look.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// `--json`: the protocol payload.
    pub json: bool,
    /// `--format`: a template or a comma-separated field list.
    pub format: Option<String>,
    /// `-q`: names or ids only (list commands).
    pub quiet: bool,
}

/// Write one line to stdout; a closed stdout is an error, not a panic.
pub fn line(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// `println!` through [`line`], returning `io::Result`.
#[macro_export]
#[doc(hidden)]
macro_rules! outln {
    () => { $crate::cli::output::line("") };
    ($($arg:tt)*) => { $crate::cli::output::line(&format!($($arg)*)) };
}

/// Whether an error (anywhere in its chain) is a closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print a list: `--json` prints `payload`; `--format` renders each item;
/// `-q` prints each item's id; otherwise an aligned table of `columns`.
pub fn list<P: Serialize, T: Serialize>(
    style: &Style,
    payload: &P,
    items: &[T],
    columns: &[Column<T>],
    id: fn(&T) -> String,
) -> Result<()> {
    if style.json {
        line(&serde_json::to_string(payload)?)?;
        return Ok(());
    }
    if style.quiet {
        for i in items {
            line(&id(i))?;
        }
        return Ok(());
    }
    if let Some(f) = &style.format {
        let values: Vec<Value> = items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        return render_format(f, &values);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|c| (c.cell)(i)).collect())
        .collect();
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    for l in render_table(&headers, &rows) {
        line(&l)?;
    }
    Ok(())
}

/// Print one object: `--json` prints `payload`; `--format` renders it;
/// otherwise `human` prints it for people.
pub fn single<P: Serialize>(
    style: &Style,
    payload: &P,
    human: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if style.json {
        line(&serde_json::to_string(payload)?)?;
        return Ok(());
    }
    if let Some(f) = &style.format {
        return render_format(f, &[serde_json::to_value(payload)?]);
    }
    human()
}

/// Render `--format` over items: a template (one line per item) or a
/// comma-separated field list (a table with those columns).
fn render_format(format: &str, items: &[Value]) -> Result<()> {
    render_format_inner(format, items).map_err(|e| {
        if is_broken_pipe(&e) {
            e
        } else {
            crate::cli::exit::Failure::new(crate::cli::exit::Exit::Usage, e.to_string()).into()
        }
    })
}

fn render_format_inner(format: &str, items: &[Value]) -> Result<()> {
    if format.contains("{{") {
        let t = Template::parse(format)?;
        t.check_fields(items)?;
        for i in items {
            line(&t.render(i)?)?;
        }
        return Ok(());
    }
    let fields: Vec<String> = format
        .split(',')
        .map(|f| f.trim().trim_start_matches('.').to_string())
        .filter(|f| !f.is_empty())
        .collect();
    let t = Template::parse(
        &fields
            .iter()
            .map(|f| format!("{{{{.{f}}}}}"))
            .collect::<Vec<_>>()
            .join("\t"),
    )?;
    t.check_fields(items)?;
    let headers: Vec<String> = fields.iter().map(|f| f.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| fields.iter().map(|f| template::field_text(i, f)).collect())
        .collect();
    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
    for l in render_table(&h, &rows) {
        line(&l)?;
    }
    Ok(())
}

/// `-` for an absent value.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}
