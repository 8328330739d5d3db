//! Streaming JSON: records are the elements of the array at `record_path`, read one at a
//! time with a serde seed so a large file never sits in memory whole. A file whose first
//! non-blank byte is `{` while no `record_path` is set is read as JSON lines, one record a line.
//!
//! Records are flattened to `/`-joined paths (`children/0/name`). Top-level scalar members
//! that come before the record array (`message_id`, `from`) are added to each record as
//! `/name`.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{CountingReader, ReadError, ReadSpec, Sink};
use crate::{Location, RawRecord};

pub(super) fn read(path: &Path, spec: &ReadSpec, sink: &mut Sink<'_>) -> Result<u64, ReadError> {
    let file =
        File::open(path).map_err(|e| ReadError::new(path, None, format!("cannot open: {e}")))?;
    let mut counting = CountingReader::new(BufReader::new(file));
    let consumed = counting.count.clone();
    let first = first_significant_byte(&mut counting)
        .map_err(|e| ReadError::new(path, None, format!("cannot read: {e}")))?;
    let mut state = State {
        sink,
        consumed,
        delivered: 0,
        context: Vec::new(),
    };
    match first {
        None => Ok(0),
        Some(b'[') | Some(b'{') if first == Some(b'[') || !spec.record_path.is_empty() => {
            let segments: Vec<String> = spec
                .record_path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let mut de = serde_json::Deserializer::from_reader(counting);
            let result = Walk {
                path: &segments,
                top: true,
                state: &mut state,
            }
            .deserialize(&mut de);
            let delivered = state.delivered;
            result
                .and_then(|_| de.end())
                .map_err(|e| json_error(path, delivered, e))?;
            Ok(delivered)
        }
        Some(_) => {
            let mut line_no = 0u64;
            for line in counting.lines() {
                line_no += 1;
                let line = line.map_err(|e| {
                    ReadError::new(path, Some(Location::Item(line_no)), e.to_string())
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(&line).map_err(|e| {
                    ReadError::new(
                        path,
                        Some(Location::Item(line_no)),
                        format!("malformed JSON line: {e}"),
                    )
                })?;
                state.emit(value, Location::Item(line_no));
            }
            Ok(state.delivered)
        }
    }
}

fn json_error(path: &Path, delivered: u64, e: serde_json::Error) -> ReadError {
    ReadError::new(
        path,
        Some(Location::Item(delivered + 1)),
        format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ),
    )
}

fn first_significant_byte<R: BufRead>(r: &mut R) -> std::io::Result<Option<u8>> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        let skip = buf
            .iter()
            .take_while(|b| b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF)
            .count();
        if skip < buf.len() {
            let b = buf[skip];
            r.consume(skip);
            return Ok(Some(b));
        }
        let n = buf.len();
        r.consume(n);
    }
}

struct State<'s, 'k> {
    sink: &'s mut Sink<'k>,
    consumed: std::rc::Rc<std::cell::Cell<u64>>,
    delivered: u64,
    context: Vec<(String, String)>,
}

impl State<'_, '_> {
    fn emit(&mut self, value: Value, location: Location) {
        let mut rec = RawRecord::new(location);
        rec.fields.extend(self.context.iter().cloned());
        flatten("", &value, &mut rec);
        self.delivered += 1;
        (self.sink)(rec, self.consumed.get());
    }
}

fn flatten(prefix: &str, value: &Value, rec: &mut RawRecord) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}/{k}")
        }
    };
    match value {
        Value::Null => {}
        Value::Bool(b) => rec.push(prefix, b.to_string()),
        Value::Number(n) => rec.push(prefix, n.to_string()),
        Value::String(s) => rec.push(prefix, s.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), item, rec);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, rec);
            }
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Descends along `path`; at its end, hands every array element to the state.
struct Walk<'p, 'a, 's, 'k> {
    path: &'p [String],
    top: bool,
    state: &'a mut State<'s, 'k>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str("an array of records")
        } else {
            write!(f, "an object with member '{}'", self.path[0])
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.path.is_empty() {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut index = 0u64;
        while let Some(value) = seq.next_element::<Value>()? {
            index += 1;
            self.state.emit(value, Location::Item(index));
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        };
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == *head {
                found = true;
                map.next_value_seed(Walk {
                    path: rest,
                    top: false,
                    state: self.state,
                })?;
            } else if self.top {
                let value: Value = map.next_value()?;
                if let Some(text) = scalar_text(&value) {
                    self.state.context.push((format!("/{key}"), text));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !found {
            return Err(de::Error::missing_field("record array"));
        }
        Ok(())
    }
}
