//! RFC 8785 JSON Canonicalization Scheme (JCS), for Rekor bodies and signed entry timestamps.
//!
//! Sigstore only canonicalises objects of strings, integers and nested objects/arrays, but the
//! full rules are cheap: keys sorted by UTF-16 code units, no whitespace, minimal string
//! escapes, and ECMAScript number formatting (integers print as integers).

use serde_json::Value;

pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

pub fn to_canonical_string(value: &Value) -> String {
    // Only valid UTF-8 is ever written.
    String::from_utf8(to_canonical_vec(value)).expect("canonical JSON is UTF-8")
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(&map[key], out);
            }
            out.push(b'}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 && f.abs() < 1e21 {
            out.extend_from_slice(format!("{}", f as i128).as_bytes());
        } else {
            // Rust's shortest round-trip formatting matches ECMAScript for the values that
            // appear in practice; exponents are written the ECMAScript way.
            let s = format!("{f:e}");
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            if (-7..21).contains(&exp) {
                out.extend_from_slice(format!("{f}").as_bytes());
            } else {
                let sign = if exp >= 0 { "+" } else { "-" };
                out.extend_from_slice(format!("{mantissa}e{sign}{}", exp.abs()).as_bytes());
            }
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"spec": {"b": 1, "a": [true, null, "x"]}, "kind": "hashedrekord", "apiVersion": "0.0.1"});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"a":[true,null,"x"],"b":1}}"#
        );
    }

    #[test]
    fn escapes_minimally() {
        let v = json!({"s": "a\"b\\c\n\u{1}é€"});
        assert_eq!(
            to_canonical_string(&v),
            "{\"s\":\"a\\\"b\\\\c\\n\\u0001é€\"}"
        );
    }

    #[test]
    fn sorts_by_utf16_code_units() {
        // RFC 8785 §3.2.3 example: U+1F600 (surrogates D83D DE00) sorts before U+FB33 by UTF-16.
        let v = json!({"\u{fb33}": 1, "\u{1f600}": 2, "a": 3});
        assert_eq!(
            to_canonical_string(&v),
            "{\"a\":3,\"\u{1f600}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn numbers_print_like_ecmascript() {
        let v: Value = serde_json::from_str(r#"[1.0, -0, 1e21, 123456789, 0.5]"#).unwrap();
        assert_eq!(to_canonical_string(&v), "[1,0,1e+21,123456789,0.5]");
    }
}
