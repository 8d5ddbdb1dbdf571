//! Small builders for ordered YAML documents, and writing them with a leading comment.

use serde_yaml_ng::{Mapping, Value};

/// A mapping whose keys keep the order given.
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Mapping(m)
}

pub fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub fn seq(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

pub fn num(n: u64) -> Value {
    Value::Number(n.into())
}

/// Any serialisable value (the plugin configuration) as YAML, order kept.
pub fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_yaml_ng::to_value(v).map_err(|e| format!("internal error: cannot convert to YAML: {e}"))
}

/// One YAML document with `comment` as `#` lines above it.
pub fn document(comment: &str, value: &Value) -> Result<String, String> {
    let mut out = String::new();
    for line in comment.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            // Names from the input appear in comments: a line break YAML 1.1 knows (NEL,
            // U+2028) or a control character would end the comment early.
            out.extend(line.chars().map(|c| if c == ' ' || c.is_ascii_graphic() || c.is_alphanumeric() { c } else { '?' }));
            out.push('\n');
        }
    }
    match value {
        Value::Mapping(m) if !m.is_empty() => write_mapping(&mut out, m, 0, false)?,
        Value::Sequence(items) if !items.is_empty() => write_sequence(&mut out, items, 0)?,
        other => {
            out.push_str(&scalar(other)?);
            out.push('\n');
        }
    }
    Ok(out)
}

// The writer below exists because a YAML 1.2 writer leaves `on`, `yes`, `no`, `y`, `1_000`,
// `2001-01-01`, `1:20` or `<<` unquoted, and kubectl reads YAML 1.1, where those are
// booleans, numbers, timestamps and merge keys: a client ID `on` would reach Istio as `true`.
// So every string value is double-quoted, and a key only stays plain when it reads the same
// in both versions.

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// `first_inline`: the first entry continues a `- ` already written.
fn write_mapping(out: &mut String, m: &serde_yaml_ng::Mapping, indent: usize, first_inline: bool) -> Result<(), String> {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            spaces(out, indent);
        }
        let Value::String(k) = k else {
            return Err("internal error: a mapping key that is not a string".to_string());
        };
        out.push_str(&key(k));
        out.push(':');
        write_value(out, v, indent, indent.saturating_add(2))?;
    }
    Ok(())
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) -> Result<(), String> {
    for item in items {
        spaces(out, indent);
        out.push('-');
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push(' ');
                write_mapping(out, m, indent.saturating_add(2), true)?;
            }
            _ => write_value(out, item, indent, indent.saturating_add(2))?,
        }
    }
    Ok(())
}

/// A value after `key:` or `-`. A sequence under a key sits at the key's own indentation,
/// a mapping two further.
fn write_value(out: &mut String, v: &Value, indent: usize, inner: usize) -> Result<(), String> {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            write_mapping(out, m, inner, false)
        }
        Value::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            write_sequence(out, items, indent)
        }
        Value::String(text) if literal_block(text) => {
            out.push_str(" |");
            if !text.ends_with('\n') {
                out.push('-');
            }
            out.push('\n');
            for line in text.lines() {
                if !line.is_empty() {
                    spaces(out, inner);
                    out.push_str(line);
                }
                out.push('\n');
            }
            Ok(())
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other)?);
            out.push('\n');
            Ok(())
        }
    }
}

/// Several lines of plain ASCII (the Envoy filter's JSON) read best as a `|` block, which
/// YAML never types; anything else is written double-quoted.
fn literal_block(text: &str) -> bool {
    text.contains('\n')
        && !text.ends_with("\n\n")
        && !text.starts_with([' ', '\n'])
        && text.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(text) => Ok(quoted(text)),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".to_string()),
        Value::Mapping(_) => Ok("{}".to_string()),
        Value::Sequence(_) => Ok("[]".to_string()),
        Value::Tagged(_) => Err("internal error: a tagged YAML value".to_string()),
    }
}

/// Words YAML 1.1 reads as booleans or null whatever their case.
const YAML11_WORDS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// A key stays plain when it is a name such as `apiVersion`, `app.kubernetes.io/name` or
/// `X-User` that no YAML version reads as anything but that string.
fn key(k: &str) -> String {
    let mut chars = k.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !YAML11_WORDS.contains(&k.to_ascii_lowercase().as_str());
    if plain {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// A double-quoted scalar. Besides quotes, backslashes and control characters, everything
/// outside printable ASCII that is not a letter or digit is escaped: YAML 1.1 takes NEL and
/// U+2028/U+2029 for line breaks, and bidirectional controls would make the file read
/// differently from what it holds.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().saturating_add(2));
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if !c.is_ascii() && c.is_alphanumeric() => out.push(c),
            c if u32::from(c) <= 0xff => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Documents joined with `---` separators.
pub fn stream(docs: &[String]) -> String {
    docs.join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(quoted("on"), "\"on\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("x\u{2028}y\u{85}z\u{202e}é\u{1F600}"), "\"x\\u2028y\\x85z\\u202Eé\\U0001F600\"");
        assert_eq!(quoted("\u{7f}\u{1}"), "\"\\x7F\\x01\"");
    }

    #[test]
    fn keys_stay_plain_only_when_unambiguous() {
        for k in ["apiVersion", "app.kubernetes.io/name", "X-User", "path_prefix"] {
            assert_eq!(key(k), k);
        }
        for k in ["on", "Y", "NO", "@type", "1:20", "<<", "x y", "-a", ""] {
            assert!(key(k).starts_with('"'), "{k}");
        }
    }

    #[test]
    fn layout() {
        let v = map([
            ("a", s("on")),
            ("b", seq([map([("c", s("x")), ("d", num(1))]), s("y")])),
            ("e", map([("f", seq([]))])),
            ("g", s("{\n  \"k\": 1\n}\n")),
        ]);
        let text = document("c1\n\nc\u{2028}2", &v).unwrap();
        assert_eq!(text, "# c1\n#\n# c?2\na: \"on\"\nb:\n- c: \"x\"\n  d: 1\n- \"y\"\ne:\n  f: []\ng: |\n  {\n    \"k\": 1\n  }\n");
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
