//! YAML read into JSON values: the one place codebuilder parses YAML (a rendered chart, a
//! Chart.yaml, the operator's values file, a buildpack's `bin/release` output), so that the
//! code that looks at it works on `serde_json::Value` alone.
//!
//! Plain scalars are resolved by the YAML 1.2 core schema, as codebuilder has always read
//! them: `true`/`True`/`TRUE` is a boolean, `~`/`null`/`Null`/`NULL` and nothing are null,
//! `12`, `0x1f`, `0o17`, `0b11` are integers, `1.5`, `1e3` are floats, and digits with a
//! leading zero (`0123`) stay text. Quoted scalars are text. The core tags (`!!bool`, `!!int`,
//! `!!float`, `!!null`) must hold what they name; any other tag is dropped and its plain
//! value resolved as if untagged, as helm's YAML reader does. Mapping keys become text: a
//! key that is a number or a boolean is written as its value is (`1`, `true`); a null, a
//! sequence or a mapping as a key is refused. Aliases are copies of their anchor.
//!
//! The text may be untrusted (a pushed chart renders it), so it is bounded: nesting is
//! limited, and aliases may copy at most a hundred nodes for each one read so far, which stops
//! an alias bomb before it fills memory.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// Deepest nesting of sequences and mappings; dropping and walking a value recurse, so a
/// deeper one could overflow the stack.
const MAX_DEPTH: usize = 128;
/// How many nodes aliases may copy, per event read so far.
const MAX_COPIES_PER_EVENT: usize = 100;
/// The prefix `!!` stands for.
const CORE_TAG: &str = "tag:yaml.org,2002:";

/// Why a text is not YAML that codebuilder reads.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

/// The one document of `text` as JSON; `null` when the text holds none (only comments, or
/// nothing).
pub fn document(text: &str) -> Result<Value, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut reader = Reader::default();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError(e.to_string()))?;
        if event == Event::StreamEnd {
            break;
        }
        reader.read(event).map_err(|reason| {
            YamlError(format!(
                "{reason} at line {} column {}",
                mark.line(),
                mark.col() + 1
            ))
        })?;
    }
    let mut documents = reader.documents.into_iter();
    match (documents.next(), documents.next()) {
        (None, _) => Ok(Value::Null),
        (Some(value), None) => Ok(value),
        (Some(_), Some(_)) => Err(YamlError(
            "more than one document, where one belongs".into(),
        )),
    }
}

/// A sequence or mapping whose end has not been read yet.
enum Open {
    Sequence {
        anchor: usize,
        items: Vec<Value>,
    },
    Mapping {
        anchor: usize,
        entries: Map<String, Value>,
        key: Option<String>,
    },
}

/// Builds JSON values from the parser's events. The events are pulled one by one, not pushed
/// by the parser's `load`, which recurses once per level of nesting.
#[derive(Default)]
struct Reader {
    documents: Vec<Value>,
    open: Vec<Open>,
    /// Each anchor's value, and how many nodes it has.
    anchors: HashMap<usize, (Value, usize)>,
    events: usize,
    copies: usize,
}

impl Reader {
    fn read(&mut self, event: Event) -> Result<(), String> {
        self.events += 1;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref())?;
                self.add(value, anchor)
            }
            Event::Alias(id) => {
                let (value, nodes) = self
                    .anchors
                    .get(&id)
                    .ok_or("an alias to an unknown anchor")?;
                self.copies += nodes;
                if self.copies > self.events * MAX_COPIES_PER_EVENT {
                    return Err("aliases that copy too much".into());
                }
                let value = value.clone();
                self.add(value, 0)
            }
            Event::SequenceStart(anchor, _) => self.open(Open::Sequence {
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.open(Open::Mapping {
                anchor,
                entries: Map::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.open.pop() {
                    Some(Open::Sequence { anchor, items }) => (Value::Array(items), anchor),
                    Some(Open::Mapping {
                        anchor, entries, ..
                    }) => (Value::Object(entries), anchor),
                    None => return Err("an end without a start".into()),
                };
                self.add(value, anchor)
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn open(&mut self, collection: Open) -> Result<(), String> {
        if self.open.len() >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.open.push(collection);
        Ok(())
    }

    /// Puts a finished node where it belongs: in the open collection, or as a document.
    fn add(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), nodes(&value)));
        }
        match self.open.last_mut() {
            None => self.documents.push(value),
            Some(Open::Sequence { items, .. }) => items.push(value),
            Some(Open::Mapping { entries, key, .. }) => match key.take() {
                None => *key = Some(key_text(value)?),
                Some(name) => {
                    if entries.contains_key(&name) {
                        return Err(format!("the key {name:?} twice in one mapping"));
                    }
                    entries.insert(name, value);
                }
            },
        }
        Ok(())
    }
}

/// How many nodes `value` has, itself included.
fn nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(nodes).sum(),
        Value::Object(entries) => entries.values().map(nodes).sum(),
        _ => 0,
    }
}

/// A mapping key as JSON holds it: text. A null key is refused rather than read as the name
/// `null`: no name codebuilder reads is null, and `~: x` must not become a config var.
fn key_text(key: Value) -> Result<String, String> {
    match key {
        Value::String(text) => Ok(text),
        Value::Bool(_) | Value::Number(_) => Ok(key.to_string()),
        Value::Null => Err("a mapping key that is null".into()),
        Value::Array(_) | Value::Object(_) => {
            Err("a mapping key that is a sequence or a mapping".into())
        }
    }
}

fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let plain = style == TScalarStyle::Plain;
    let Some(tag) = tag else {
        return Ok(if plain {
            untagged(text)
        } else {
            Value::String(text)
        });
    };
    let invalid = |what: &str| format!("{text:?} tagged {what} is not {what}");
    let core = (tag.handle == CORE_TAG).then_some(tag.suffix.as_str());
    match core {
        Some("bool") => boolean(&text)
            .map(Value::Bool)
            .ok_or_else(|| invalid("bool")),
        Some("int") => integer(&text).ok_or_else(|| invalid("int")),
        Some("float") => float(&text).ok_or_else(|| invalid("float")),
        Some("null") => is_null(&text)
            .then_some(Value::Null)
            .ok_or_else(|| invalid("null")),
        None if plain && tag.handle.starts_with('!') => Ok(untagged(text)),
        _ => Ok(Value::String(text)),
    }
}

/// A plain scalar by the core schema.
fn untagged(text: String) -> Value {
    if text.is_empty() || is_null(&text) {
        return Value::Null;
    }
    if let Some(boolean) = boolean(&text) {
        return Value::Bool(boolean);
    }
    integer(&text)
        .or_else(|| float(&text))
        .unwrap_or(Value::String(text))
}

fn is_null(text: &str) -> bool {
    matches!(text, "~" | "null" | "Null" | "NULL")
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Digits after a leading zero are text to YAML 1.2 (`0123`), not an octal or decimal number.
fn leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An integer: decimal, `0x`, `0o` or `0b`, with a sign; one that no 64-bit integer holds
/// is read as a float.
fn integer(text: &str) -> Option<Value> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| unsigned.strip_prefix(prefix).map(|rest| (radix, rest)))
        .unwrap_or((10, unsigned));
    if digits.starts_with(['+', '-']) || leading_zero(text) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if !negative {
        return Some(magnitude.into());
    }
    0i64.checked_sub_unsigned(magnitude).map(Value::from)
}

/// A float. JSON has no infinity or NaN: those stay text, written as YAML writes them.
fn float(text: &str) -> Option<Value> {
    if leading_zero(text) {
        return None;
    }
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    let special = match (unsigned, text) {
        (".inf" | ".Inf" | ".INF", _) => ".inf",
        (_, "-.inf" | "-.Inf" | "-.INF") => "-.inf",
        (_, ".nan" | ".NaN" | ".NAN") => ".nan",
        _ => {
            let float: f64 = unsigned.parse().ok()?;
            return Number::from_f64(float).map(Value::Number);
        }
    };
    Some(Value::String(special.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Value {
        document(text).unwrap()
    }

    fn refused(text: &str) -> String {
        document(text).unwrap_err().to_string()
    }

    #[test]
    fn comments_and_empty_documents_are_null() {
        assert_eq!(read(""), Value::Null);
        assert_eq!(read("# only a comment\n"), Value::Null);
        assert_eq!(read("---\n"), Value::Null);
        assert_eq!(read("a:\nb: ''\n"), json!({"a": null, "b": ""}));
        assert_eq!(read("# head\n---\na: 1 # tail\n# end\n"), json!({"a": 1}));
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let value = read(concat!(
            "[true, True, FALSE, yes, on, ~, null, NULL, 12, -3, +4, 0x1f, 0o17, 0b11, -0x10,\n",
            " 0123, 1.5, 1e3, .5, -.INF, .nan, inf, 18446744073709551615, 18446744073709551616,\n",
            " '12', \"true\", 'null', \"\"]"
        ));
        assert_eq!(
            value,
            json!([
                true,
                true,
                false,
                "yes",
                "on",
                null,
                null,
                null,
                12,
                -3,
                4,
                31,
                15,
                3,
                -16,
                "0123",
                1.5,
                1000.0,
                0.5,
                "-.inf",
                ".nan",
                "inf",
                18446744073709551615u64,
                18446744073709551616.0,
                "12",
                "true",
                "null",
                ""
            ])
        );
    }

    #[test]
    fn block_scalars_are_text() {
        assert_eq!(
            read("a: |\n  12\n  x\nb: >-\n  true\n"),
            json!({"a": "12\nx\n", "b": "true"})
        );
    }

    #[test]
    fn tags_are_dropped_and_core_tags_must_hold_their_type() {
        assert_eq!(
            read("a: !!bool true\nb: !custom 5\nc: !custom '5'\nd: !!str 5\ne: !local {x: !!int 7}\nf: !!float 1\n"),
            json!({"a": true, "b": 5, "c": "5", "d": "5", "e": {"x": 7}, "f": 1.0})
        );
        assert_eq!(
            refused("a: !!bool yes\n"),
            "\"yes\" tagged bool is not bool at line 1 column 11"
        );
        assert!(refused("a: !!int x\n").starts_with("\"x\" tagged int is not int"));
    }

    #[test]
    fn anchors_and_aliases_are_copies() {
        assert_eq!(
            read("base: &b {image: x, ports: [80]}\nweb: *b\nname: &n web\nalso: *n\n"),
            json!({"base": {"image": "x", "ports": [80]}, "web": {"image": "x", "ports": [80]}, "name": "web", "also": "web"})
        );
        assert_eq!(
            read("x: &p {privileged: true}\nspec:\n  <<: *p\n"),
            json!({"x": {"privileged": true}, "spec": {"<<": {"privileged": true}}})
        );
    }

    #[test]
    fn keys_are_text() {
        assert_eq!(
            read("1: a\ntrue: b\n0x10: c\n1.50: d\nname: e\n"),
            json!({"1": "a", "true": "b", "16": "c", "1.5": "d", "name": "e"})
        );
        assert!(refused("~: a\n").starts_with("a mapping key that is null"));
        assert!(
            refused("? [a]\n: b\n").starts_with("a mapping key that is a sequence or a mapping")
        );
    }

    #[test]
    fn a_key_twice_is_refused_also_when_only_its_text_is_the_same() {
        assert!(refused("a: 1\nb: 2\na: 3\n").starts_with("the key \"a\" twice in one mapping"));
        assert!(refused("1: a\n'1': b\n").starts_with("the key \"1\" twice in one mapping"));
        assert_eq!(read("a: 1\nA: 2\n"), json!({"a": 1, "A": 2}));
    }

    #[test]
    fn what_does_not_parse_is_refused_with_where() {
        assert_eq!(
            refused("a: [\n"),
            "while parsing a node, did not find expected node content at byte 5 line 2 column 1"
        );
        assert_eq!(
            refused("a: 1\n...\nb: 2\n"),
            "more than one document, where one belongs"
        );
        assert!(refused("a: *nothing\n").contains("unknown anchor"));
    }

    #[test]
    fn nesting_and_aliases_are_bounded() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(refused(&deep).starts_with("nesting deeper than 128 levels"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            bomb.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        assert!(refused(&bomb).starts_with("aliases that copy too much"));
    }
}
