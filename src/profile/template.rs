//! Templates: strings and JSON values with `{variable}` holes, checked when a profile is loaded and filled when a
//! request is rendered.
//!
//! Rules (the same for paths, headers, query parameters and bodies):
//! - `{name}` is a variable; `{{` and `}}` are literal braces. A name must be in the set allowed where the template
//!   is written (for operations, [`OPERATION_VARIABLES`]); any other name is refused when the profile is loaded.
//! - A JSON string that is exactly one variable (`"{amount}"`) is replaced by the variable's JSON value, whatever its
//!   type (string, number, boolean, object); if the variable is not given, the field is left out of its object (so
//!   optional fields such as `description` need no second template).
//! - A JSON object key that is exactly one variable (`"{field}" = "{value}"`) is replaced by the variable's text.
//! - Anywhere else a variable is interpolated as text: strings as they are, other values as compact JSON. In a path,
//!   the text is percent-encoded as one path segment.

use std::collections::BTreeMap;

use serde_json::Value;

/// Variables an operation's path, query, headers and body may name. The checking engine fills them from the
/// scenario; a profile naming any other variable is refused.
pub const OPERATION_VARIABLES: &[&str] = &[
    "access_token",
    "actor_id",
    "amount",
    "approval_id",
    "buyer_id",
    "credential",
    "currency",
    "cursor",
    "dead_letter_id",
    "description",
    "destination",
    "escrow_id",
    "field",
    "limit",
    "new_password",
    "note",
    "older_than_seconds",
    "overlap_seconds",
    "password",
    "proof_id",
    "provider",
    "provider_name",
    "reason",
    "refresh_token",
    "resolution",
    "role",
    "secret",
    "seconds",
    "seller_id",
    "session_id",
    "state",
    "totp",
    "tx_hash",
    "user_id",
    "username",
    "value",
    "version",
];

/// Variables of `[fixtures.create_user]`.
pub const FIXTURE_VARIABLES: &[&str] = &["role", "username", "password", "totp_seed"];

/// Variables of `[fixtures.configure]`: `{passkeys_enabled}` (a boolean) alone, or `{provider}` (the profile's
/// name for it) with `{enabled}` (a boolean); the fields of the variables not given are left out.
pub const CONFIGURE_VARIABLES: &[&str] = &["passkeys_enabled", "provider", "enabled"];

/// Variables of `[clock]`.
pub const CLOCK_VARIABLES: &[&str] = &["seconds"];

/// Variables of `[launch.env]` values and `[launch].args`: the provider simulators' base URLs, and the port conform
/// chose for the target (also in `[target].http` as `{port}`).
pub const LAUNCH_VARIABLES: &[&str] = &["shkeeper_url", "request_network_url", "port"];

/// Variables of the Socket.IO `auth` payload.
pub const SOCKETIO_AUTH_VARIABLES: &[&str] = &["access_token"];

/// Variables of the Socket.IO subscribe payload.
pub const SOCKETIO_SUBSCRIBE_VARIABLES: &[&str] = &["escrow_id"];

/// Values for the variables of a template, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars(BTreeMap<String, Value>);

impl Vars {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a variable (builder form).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets a variable.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The variable's value as text for interpolation.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Vars(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// One piece of a parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// Splits a template into text and variables; the error says what is wrong.
fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!("unclosed `{{` in {template:?} (write `{{{{` for a literal brace)"));
                        }
                    }
                }
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("`{{{name}}}` in {template:?} is not a variable name (letters, digits, `_`)"));
                }
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Var(name));
            }
            '}' => return Err(format!("unmatched `}}` in {template:?} (write `}}}}` for a literal brace)")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// The variables a template string names, in order; an error for malformed templates.
pub fn variables(template: &str) -> Result<Vec<String>, String> {
    Ok(pieces(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Checks that a template string is well formed and names only `allowed` variables.
pub fn check_str(template: &str, allowed: &[&str]) -> Result<(), String> {
    for name in variables(template)? {
        if !allowed.contains(&name.as_str()) {
            return Err(format!("unknown variable `{{{name}}}` (allowed here: {})", allowed.join(", ")));
        }
    }
    Ok(())
}

/// Checks every string and key of a JSON template.
pub fn check_json(template: &Value, allowed: &[&str]) -> Result<(), String> {
    match template {
        Value::String(s) => check_str(s, allowed),
        Value::Array(items) => items.iter().try_for_each(|item| check_json(item, allowed)),
        Value::Object(map) => map.iter().try_for_each(|(key, value)| {
            check_str(key, allowed)?;
            check_json(value, allowed)
        }),
        _ => Ok(()),
    }
}

/// Whether a template is exactly one variable (`"{credential}"`).
pub fn is_whole_variable(template: &str) -> bool {
    whole_variable(template).is_some()
}

/// The single variable a template is exactly, if it is one (`"{amount}"`).
fn whole_variable(template: &str) -> Option<String> {
    match pieces(template).ok()?.as_slice() {
        [Piece::Var(name)] => Some(name.clone()),
        _ => None,
    }
}

/// Fills a template string; `encode` percent-encodes each value (for paths). A missing variable is an error naming
/// it.
pub fn render_str(template: &str, vars: &Vars, encode: bool) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(&text),
            Piece::Var(name) => {
                let value = vars.text(&name).ok_or_else(|| format!("variable `{{{name}}}` is not given"))?;
                if encode {
                    out.push_str(&encode_segment(&value));
                } else {
                    out.push_str(&value);
                }
            }
        }
    }
    Ok(out)
}

/// Renders a template string that may be left out: `Ok(None)` when it is exactly one variable that is not given.
pub fn render_optional_str(template: &str, vars: &Vars) -> Result<Option<String>, String> {
    if let Some(name) = whole_variable(template)
        && vars.get(&name).is_none()
    {
        return Ok(None);
    }
    render_str(template, vars, false).map(Some)
}

/// Fills a JSON template. `None` means the value is left out (it was exactly a variable that is not given).
pub fn render_json(template: &Value, vars: &Vars) -> Result<Option<Value>, String> {
    Ok(Some(match template {
        Value::String(s) => match whole_variable(s) {
            Some(name) => match vars.get(&name) {
                Some(value) => value.clone(),
                None => return Ok(None),
            },
            None => Value::String(render_str(s, vars, false)?),
        },
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(value) = render_json(item, vars)? {
                    out.push(value);
                }
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                let key = match whole_variable(key) {
                    Some(name) => match vars.text(&name) {
                        Some(text) => text,
                        None => continue,
                    },
                    None => render_str(key, vars, false)?,
                };
                if let Some(value) = render_json(value, vars)? {
                    out.insert(key, value);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }))
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_variables_keep_their_type_and_missing_ones_are_left_out() {
        let vars = Vars::new().with("amount", "12.50").with("version", 3).with("field", "state");
        let body =
            json!({"amount": "{amount}", "v": "{version}", "d": "{description}", "{field}": "x", "s": "a{version}b"});
        assert_eq!(
            render_json(&body, &vars).unwrap(),
            Some(json!({"amount": "12.50", "v": 3, "state": "x", "s": "a3b"}))
        );
    }

    #[test]
    fn paths_are_encoded_and_braces_escape() {
        let vars = Vars::new().with("escrow_id", "a b/c");
        assert_eq!(render_str("/e/{escrow_id}/{{x}}", &vars, true).unwrap(), "/e/a%20b%2Fc/{x}");
        assert!(check_str("/e/{nope}", OPERATION_VARIABLES).unwrap_err().contains("nope"));
        assert!(check_str("/e/{escrow_id", OPERATION_VARIABLES).is_err());
    }
}
