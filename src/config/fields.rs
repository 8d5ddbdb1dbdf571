//! Typed access to the configuration's JSON fields, with errors that name the field; durations.

use serde_json::{Map, Value};

use super::{ConfigError, SecretSource, DAY, HOUR, MINUTE};

/// The raw JSON object with typed accessors whose errors name the field.
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    pub(super) prefix: String,
}

impl<'a> Fields<'a> {
    pub(super) fn new(map: &'a Map<String, Value>, prefix: &str) -> Fields<'a> {
        Fields { map, prefix: prefix.to_string() }
    }

    pub(super) fn err(&self, name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&format!("{}{name}", self.prefix), message)
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub(super) fn required_string(&self, name: &str) -> Result<String, ConfigError> {
        match self.optional_string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.err(name, "must not be empty")),
            None => Err(self.err(name, "is required")),
        }
    }

    pub(super) fn optional_string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(name, format!("must be a string, got {}", kind_of(other)))),
        }
    }

    pub(super) fn optional_bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(name, format!("must be true or false, got {}", kind_of(other)))),
        }
    }

    /// A secret: a string, `{"env": "NAME"}` (the VM's environment) or `{"file": "/path"}`.
    pub(super) fn secret_value(&self, name: &str, value: &Value, secrets: &dyn SecretSource) -> Result<String, ConfigError> {
        let resolved = match value {
            Value::String(s) => s.clone(),
            Value::Object(m) if m.len() == 1 => match (m.get("env"), m.get("file")) {
                (Some(Value::String(var)), None) => secrets.env(var).ok_or_else(|| {
                    self.err(name, format!("environment variable `{var}` is not set in the plugin's VM; pass it with Envoy `vm_config.environment_variables` (host_env_keys or key_values) or Istio `vmConfig.env`"))
                })?,
                (None, Some(Value::String(path))) => secrets.file(path).map_err(|e| self.err(name, format!("cannot read `{path}`: {e}")))?,
                _ => return Err(self.err(name, "must be a string, {\"env\": \"NAME\"} or {\"file\": \"/path\"}")),
            },
            other => return Err(self.err(name, format!("must be a string, {{\"env\": \"NAME\"}} or {{\"file\": \"/path\"}}, got {}", kind_of(other)))),
        };
        let trimmed = resolved.trim_end_matches(['\n', '\r']).to_string();
        if trimmed.is_empty() {
            return Err(self.err(name, "must not be empty"));
        }
        Ok(trimmed)
    }

    pub(super) fn required_secret(&self, name: &str, secrets: &dyn SecretSource) -> Result<String, ConfigError> {
        match self.get(name) {
            None => Err(self.err(name, "is required")),
            Some(v) => self.secret_value(name, v, secrets),
        }
    }

    pub(super) fn secret_list(&self, name: &str, secrets: &dyn SecretSource) -> Result<Vec<String>, ConfigError> {
        match self.get(name) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items.iter().map(|v| self.secret_value(name, v, secrets)).collect(),
            Some(other) => Err(self.err(name, format!("must be a list of secrets, got {}", kind_of(other)))),
        }
    }

    pub(super) fn optional_string_list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(name, format!("must be a list of strings, found {}", kind_of(other)))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(name, format!("must be a list of strings, got {}", kind_of(other)))),
        }
    }

    pub(super) fn path_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        let list = self.optional_string_list(name)?.unwrap_or_default();
        for p in &list {
            let bare = p.strip_suffix('*').unwrap_or(p);
            if !bare.starts_with('/') || bare.contains(['?', '#']) || bare.bytes().any(|b| b <= b' ') {
                return Err(self.err(name, format!("`{p}` is not an absolute path such as `/healthz` or `/api/`")));
            }
        }
        Ok(list)
    }

    pub(super) fn optional_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| self.err(name, "must be a non-negative whole number")),
            Some(other) => Err(self.err(name, format!("must be a number, got {}", kind_of(other)))),
        }
    }

    /// A duration: a number of seconds, or a string like `90s`, `15m`, `1h`, `7d`.
    pub(super) fn optional_duration(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let secs = match self.get(name) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => parse_duration(s),
            Some(other) => return Err(self.err(name, format!("must be a duration such as \"1h\" or a whole number of seconds, got {}", kind_of(other)))),
        };
        let secs = secs.ok_or_else(|| self.err(name, "must be a duration such as \"30s\", \"15m\", \"1h\", \"7d\" or a whole number of seconds"))?;
        if secs < min || secs > max {
            return Err(self.err(name, format!("must be between {} and {}", human(min), human(max))));
        }
        Ok(Some(secs))
    }
}

/// `90`, `90s`, `15m`, `1h`, `7d` → seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn human(secs: u64) -> String {
    if secs == 0 {
        "0s".into()
    } else if secs % DAY == 0 {
        format!("{}d", secs / DAY)
    } else if secs % HOUR == 0 {
        format!("{}h", secs / HOUR)
    } else if secs % MINUTE == 0 {
        format!("{}m", secs / MINUTE)
    } else {
        format!("{secs}s")
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
