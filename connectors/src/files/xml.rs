//! Streaming XML: one record per `record_element`, flattened to relative paths.
//!
//! Inside a record, `Child/Name` is the text of `<Child><Name>`, `@status` an attribute of
//! the record element and `BirthPlace/@division` one of a nested element. Attributes of the
//! document's root element are added to every record as `/@name` (`/@period`, `/@office`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use quick_xml::encoding::DecodingReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{CountingReader, ReadError, ReadSpec, Sink};
use crate::{Location, RawRecord};

struct Open {
    path: String,
    text: String,
}

pub(super) fn read(path: &Path, spec: &ReadSpec, sink: &mut Sink<'_>) -> Result<u64, ReadError> {
    let file =
        File::open(path).map_err(|e| ReadError::new(path, None, format!("cannot open: {e}")))?;
    let counting = CountingReader::new(BufReader::new(file));
    let consumed = counting.count.clone();
    // The decoding reader sniffs BOMs; the declared encoding is applied when the declaration
    // arrives, before any element text is read.
    let mut reader = Reader::from_reader(DecodingReader::new(counting));
    reader.config_mut().trim_text(false);

    let mut buf = Vec::new();
    let mut root_attrs: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    let mut seen = 0u64;
    let mut delivered = 0u64;
    // While inside a record: the record and the stack of open elements below it.
    let mut current: Option<(RawRecord, Vec<Open>)> = None;

    loop {
        let at = |seen: u64| (seen > 0).then_some(Location::Element(seen));
        // A break outside any record is in (or just before) the next record element.
        let breaks_at = if current.is_some() { seen } else { seen + 1 };
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            ReadError::new(
                path,
                Some(Location::Element(breaks_at)),
                format!("malformed XML: {e}"),
            )
        })?;
        let (element, is_empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = element {
            match current.as_mut() {
                None => {
                    if depth == 0 {
                        root_attrs =
                            attributes(e, "/").map_err(|m| ReadError::new(path, None, m))?;
                    }
                    if local_name(e) == spec.record_element {
                        seen += 1;
                        let mut rec = RawRecord::new(Location::Element(seen));
                        rec.fields.extend(root_attrs.iter().cloned());
                        rec.fields.extend(
                            attributes(e, "").map_err(|m| ReadError::new(path, at(seen), m))?,
                        );
                        if is_empty {
                            delivered += 1;
                            sink(rec, consumed.get());
                        } else {
                            current = Some((
                                rec,
                                vec![Open {
                                    path: String::new(),
                                    text: String::new(),
                                }],
                            ));
                        }
                    }
                }
                Some((rec, stack)) => {
                    let parent = stack.last().map(|o| o.path.as_str()).unwrap_or("");
                    let elem_path = join(parent, &local_name(e));
                    rec.fields.extend(
                        attributes(e, &format!("{elem_path}/"))
                            .map_err(|m| ReadError::new(path, at(seen), m))?,
                    );
                    if !is_empty {
                        stack.push(Open {
                            path: elem_path,
                            text: String::new(),
                        });
                    }
                }
            }
            if !is_empty {
                depth += 1;
            }
            buf.clear();
            continue;
        }
        match event {
            Event::Decl(d) => {
                if let Some(Ok(name)) = d.encoding() {
                    let encoding = d.encoder().ok_or_else(|| {
                        ReadError::new(
                            path,
                            None,
                            format!("unsupported declared encoding '{name}'"),
                        )
                    })?;
                    reader.get_mut().set_encoding(encoding);
                }
            }
            Event::Text(t) => append_text(&mut current, &t.xml10_content()),
            Event::CData(t) => append_text(&mut current, &t.xml10_content()),
            Event::GeneralRef(r) if current.is_some() => {
                let resolved = resolve_entity(&r).map_err(|m| ReadError::new(path, at(seen), m))?;
                append_text(&mut current, resolved.encode_utf8(&mut [0u8; 4]));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some((rec, stack)) = current.as_mut() {
                    if let Some(open) = stack.pop() {
                        let text = open.text.trim();
                        if !text.is_empty() {
                            let key = if open.path.is_empty() {
                                "#text".to_owned()
                            } else {
                                open.path
                            };
                            rec.push(key, text);
                        }
                    }
                    if stack.is_empty() {
                        if let Some((rec, _)) = current.take() {
                            delivered += 1;
                            sink(rec, consumed.get());
                        }
                    }
                }
            }
            Event::Eof => {
                if current.is_some() || depth > 0 {
                    return Err(ReadError::new(
                        path,
                        at(seen),
                        "document ends inside an open element (file truncated?)",
                    ));
                }
                break;
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(delivered)
}

fn append_text(current: &mut Option<(RawRecord, Vec<Open>)>, text: &str) {
    if let Some(open) = current.as_mut().and_then(|(_, stack)| stack.last_mut()) {
        open.text.push_str(text);
    }
}

fn local_name(e: &BytesStart) -> String {
    e.local_name().as_ref().to_owned()
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}/{child}")
    }
}

fn attributes(e: &BytesStart, prefix: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|err| format!("malformed attribute: {err}"))?;
        let key = attr.key.local_name().as_ref().to_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| format!("attribute '{key}': {err}"))?;
        out.push((format!("{prefix}@{key}"), value.trim().to_owned()));
    }
    Ok(out)
}

fn resolve_entity(r: &quick_xml::events::BytesRef) -> Result<char, String> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| format!("bad character reference: {e}"))?
    {
        return Ok(c);
    }
    let name = r.xml10_content();
    match name.as_ref() {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(format!("unknown entity &{other};")),
    }
}
