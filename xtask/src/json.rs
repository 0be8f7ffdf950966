//! Just enough JSON for xtask: read the document `sluice --json` prints and write the benchmark's
//! result file. xtask depends on `anyhow` only, so it stays quick to build.
//!
//! Numbers keep their text, so a 64-bit snapshot id survives unchanged.

use std::fmt::Write as _;

use anyhow::{Result, bail};

/// A JSON value. Objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one document; anything but whitespace after it is an error.
    pub fn parse(text: &str) -> Result<Json> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value(0)?;
        parser.skip_whitespace();
        if parser.at != parser.bytes.len() {
            bail!(
                "unexpected text after the JSON document at byte {}",
                parser.at
            );
        }
        Ok(value)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// A number from an `f64`; non-finite values become `null`, which is what JSON can hold.
    pub fn number(value: f64) -> Json {
        if value.is_finite() {
            Json::Number(format!("{value}"))
        } else {
            Json::Null
        }
    }

    pub fn string(text: impl Into<String>) -> Json {
        Json::String(text.into())
    }

    pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(
            members
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }

    /// Indented text, two spaces per level, a newline at the end.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            out.extend(std::iter::repeat_n("  ", depth));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::String(text) => write_string(out, text),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    item.write(out, depth + 1);
                }
                indent(out, depth);
                out.push(']');
            }
            Json::Object(members) if members.is_empty() => out.push_str("{}"),
            Json::Object(members) => {
                out.push('{');
                for (index, (key, value)) in members.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    write_string(out, key);
                    out.push_str(": ");
                    value.write(out, depth + 1);
                }
                indent(out, depth);
                out.push('}');
            }
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Result<u8> {
        self.skip_whitespace();
        match self.bytes.get(self.at) {
            Some(byte) => Ok(*byte),
            None => bail!("the JSON document ends early"),
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek()? != byte {
            bail!("expected {:?} at byte {}", char::from(byte), self.at);
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            bail!("unexpected text at byte {}", self.at)
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            bail!("JSON nested deeper than {MAX_DEPTH} levels");
        }
        match self.peek()? {
            b'n' => self.literal("null", Json::Null),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => bail!("expected ',' or ']' at byte {}", self.at),
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    if self.peek()? != b'"' {
                        bail!("expected a member name at byte {}", self.at);
                    }
                    let key = self.string()?;
                    self.expect(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => bail!("expected ',' or '}}' at byte {}", self.at),
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while self.bytes.get(self.at).is_some_and(|byte| {
                    byte.is_ascii_digit() || matches!(byte, b'-' | b'+' | b'.' | b'e' | b'E')
                }) {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.at])?;
                if text.parse::<f64>().is_err() {
                    bail!("{text:?} at byte {start} is not a number");
                }
                Ok(Json::Number(text.to_string()))
            }
            other => bail!(
                "unexpected {:?} at byte {} of the JSON document",
                char::from(other),
                self.at
            ),
        }
    }

    /// A string starting at the current `"`.
    fn string(&mut self) -> Result<String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                bail!("unterminated string in the JSON document");
            };
            self.at += 1;
            match byte {
                b'"' => return Ok(String::from_utf8(out)?),
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.at) else {
                        bail!("unterminated escape in the JSON document");
                    };
                    self.at += 1;
                    let ch = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        other => bail!("unknown escape \\{}", char::from(other)),
                    };
                    let mut buffer = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
                }
                other => out.push(other),
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining surrogate pairs.
    fn unicode_escape(&mut self) -> Result<char> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.bytes[self.at..].starts_with(b"\\u") {
                bail!("unpaired surrogate \\u{high:04x} in the JSON document");
            }
            self.at += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                bail!("unpaired surrogate \\u{high:04x} in the JSON document");
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| anyhow::anyhow!("invalid \\u escape {code:04x}"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| anyhow::anyhow!("short \\u escape in the JSON document"))?;
        let code = u32::from_str_radix(std::str::from_utf8(digits)?, 16)?;
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_run_report_and_keeps_big_numbers_exact() {
        let text = r#"{
          "checks": [{"name": "unique(event_id)", "observed": {"distinct_keys": 40000}}],
          "commits": 2,
          "durations": {"write_ms": 111, "total_ms": 122},
          "error": null,
          "rows": 40000,
          "snapshot_id": 5659462344753104523,
          "status": "published",
          "ok": true,
          "ratio": -1.5e-3
        }"#;
        let json = Json::parse(text).unwrap();
        assert_eq!(json.get("rows").and_then(Json::as_u64), Some(40000));
        assert_eq!(
            json.get("snapshot_id").and_then(Json::as_u64),
            Some(5_659_462_344_753_104_523)
        );
        assert_eq!(json.get("status").and_then(Json::as_str), Some("published"));
        assert_eq!(
            json.get("durations")
                .and_then(|d| d.get("write_ms"))
                .and_then(Json::as_u64),
            Some(111)
        );
        assert_eq!(json.get("error"), Some(&Json::Null));
        assert_eq!(json.get("ok"), Some(&Json::Bool(true)));
        assert_eq!(json.get("ratio"), Some(&Json::Number("-1.5e-3".into())));
        assert_eq!(json.get("absent"), None);
        let Some(Json::Array(checks)) = json.get("checks") else {
            panic!("checks is not an array");
        };
        assert_eq!(
            checks[0].get("name").and_then(Json::as_str),
            Some("unique(event_id)")
        );
    }

    #[test]
    fn strings_round_trip_through_escapes() {
        let value = Json::object([
            (
                "text",
                Json::string("quote \" backslash \\ tab \t newline \n é 🦀 \u{1}"),
            ),
            ("items", Json::Array(vec![Json::number(0.25), Json::Null])),
            ("empty", Json::object(Vec::<(String, Json)>::new())),
        ]);
        let text = value.to_pretty();
        assert!(text.contains("\\u0001"), "{text}");
        assert_eq!(Json::parse(&text).unwrap(), value);
        assert_eq!(
            Json::parse(r#""\ud83e\udd80 \u00e9""#).unwrap(),
            Json::string("🦀 é")
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        for text in [
            "",
            "{",
            r#"{"a" 1}"#,
            "[1,]",
            "[1 2]",
            r#""open"#,
            "nul",
            "1 2",
            "--1",
            r#""\ud800""#,
        ] {
            assert!(Json::parse(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(Json::number(f64::NAN), Json::Null);
    }
}
