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
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&serde_yaml_ng::to_string(value).map_err(|e| format!("internal error: cannot write YAML: {e}"))?);
    Ok(out)
}

/// Documents joined with `---` separators.
pub fn stream(docs: &[String]) -> String {
    docs.join("---\n")
}
