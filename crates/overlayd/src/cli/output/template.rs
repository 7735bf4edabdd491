//! `--format` templates, a small subset of Go's text/template as docker and
//! podman use it: literal text with `{{.field}}`, `{{.a.b}}`, `{{.}}`,
//! `{{json .}}` and `{{json .field}}` actions, and `\t` / `\n` escapes.
//! Field names match the JSON keys, also written the Go way (`.WgPort`
//! finds `wg_port`).

use anyhow::{bail, Result};
use serde_json::Value;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A path of keys (empty = the whole value), printed as text or JSON.
    Field {
        path: Vec<String>,
        json: bool,
    },
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse a template; an unknown function or an unclosed action is an error.
    pub fn parse(src: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(unescape(&rest[..start])));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("--format: unclosed {{{{ in {src:?}");
            };
            pieces.push(parse_action(after[..end].trim(), src)?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(unescape(rest)));
        }
        Ok(Template { pieces })
    }

    /// Refuse a field that no item has (a typo), naming the fields there are.
    pub fn check_fields(&self, items: &[Value]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for p in &self.pieces {
            let Piece::Field { path, .. } = p else {
                continue;
            };
            if path.is_empty() || items.iter().any(|i| lookup(i, path).is_some()) {
                continue;
            }
            let mut known: Vec<String> = items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.keys().cloned())
                .collect();
            known.sort();
            known.dedup();
            bail!(
                "--format: no field {:?}; the fields are: {}",
                path.join("."),
                known.join(", ")
            );
        }
        Ok(())
    }

    /// Render the template for one value. Absent optional fields print empty.
    pub fn render(&self, v: &Value) -> Result<String> {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Field { path, json } => match lookup(v, path) {
                    Some(x) if *json => s.push_str(&serde_json::to_string(x)?),
                    Some(x) => s.push_str(&text(x)),
                    None if *json => s.push_str("null"),
                    None => {}
                },
            }
        }
        Ok(s)
    }
}

fn parse_action(action: &str, src: &str) -> Result<Piece> {
    let (json, arg) = match action.split_once(char::is_whitespace) {
        Some(("json", arg)) => (true, arg.trim()),
        Some((f, _)) => bail!(
            "--format: unknown function {f:?} in {src:?}; use {{{{json .}}}} or {{{{.field}}}}"
        ),
        None => (false, action),
    };
    let Some(path) = arg.strip_prefix('.') else {
        bail!("--format: {action:?} is not a field; write {{{{.field}}}} or {{{{json .}}}}");
    };
    let path = if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(str::to_string).collect()
    };
    Ok(Piece::Field { path, json })
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Normalise a key for Go-style matching: lower case, no `_`.
fn norm(k: &str) -> String {
    k.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        let m = cur.as_object()?;
        cur = match m.get(key) {
            Some(x) => x,
            None => {
                let want = norm(key);
                m.iter().find(|(k, _)| norm(k) == want).map(|(_, x)| x)?
            }
        };
    }
    Some(cur)
}

/// A value as plain text: strings unquoted, lists joined with commas,
/// null as empty, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// One field of a value as text (for field-list tables); `-` when absent.
pub fn field_text(v: &Value, field: &str) -> String {
    let path: Vec<String> = field.split('.').map(str::to_string).collect();
    match lookup(v, &path) {
        Some(Value::Null) | None => "-".into(),
        Some(x) => text(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_json_and_escapes() {
        let v = json!({"name": "db", "wg_port": 51821, "ips": ["10.0.0.2", "fd00::2"], "nested": {"a": 1}});
        let t = Template::parse("{{.name}}\\t{{.WgPort}} {{.ips}} {{.nested.a}}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "db\t51821 10.0.0.2,fd00::2 1");
        let t = Template::parse("{{json .}}").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&t.render(&v).unwrap()).unwrap(),
            v
        );
        let t = Template::parse("{{ json .ips }}").unwrap();
        assert_eq!(t.render(&v).unwrap(), r#"["10.0.0.2","fd00::2"]"#);
    }

    #[test]
    fn absent_optional_fields_are_empty_but_unknown_fields_are_refused() {
        let items = vec![json!({"name": "a", "subnet": "x"}), json!({"name": "b"})];
        let t = Template::parse("{{.name}}:{{.subnet}}").unwrap();
        t.check_fields(&items).unwrap();
        assert_eq!(t.render(&items[1]).unwrap(), "b:");
        let bad = Template::parse("{{.nmae}}").unwrap();
        let e = bad.check_fields(&items).unwrap_err().to_string();
        assert!(
            e.contains("no field \"nmae\"") && e.contains("name, subnet"),
            "{e}"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(Template::parse("{{.name").is_err());
        assert!(Template::parse("{{upper .name}}").is_err());
        assert!(Template::parse("{{name}}").is_err());
    }

    #[test]
    fn field_text_marks_absent_values() {
        let v = json!({"a": null, "b": [1, 2]});
        assert_eq!(field_text(&v, "a"), "-");
        assert_eq!(field_text(&v, "zz"), "-");
        assert_eq!(field_text(&v, "b"), "1,2");
    }
}
