//! JSON as Python's `json.dumps(obj, sort_keys=True)` writes it, the form
//! of aws-encryption-cli's metadata lines: `", "` and `": "` separators,
//! keys sorted, and every character outside printable ASCII escaped
//! (`\u007f`, `\u00fc`, a surrogate pair beyond the BMP).

use std::fmt::Write;

use serde_json::Value;

pub(crate) fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, &map[k]);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_python_writes_it() {
        let v = serde_json::json!({"b": [1, null, true], "a": {"z": "x\"\\\n\u{1}", "y": "é😀\u{7f}"}});
        assert_eq!(
            dumps(&v),
            // Python 3.11: json.dumps(v, sort_keys=True).
            r#"{"a": {"y": "\u00e9\ud83d\ude00\u007f", "z": "x\"\\\n\u0001"}, "b": [1, null, true]}"#
        );
    }
}
