use std::fmt;

/// Where a raw record came from inside its file, so a quarantined record can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// 1-based row number as a spreadsheet or text editor shows it.
    Row(u64),
    /// 1-based position of the record element among its siblings in an XML document.
    Element(u64),
    /// 1-based position of the record in a JSON array or JSON-lines file.
    Item(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Row(n) => write!(f, "row {n}"),
            Location::Element(n) => write!(f, "element {n}"),
            Location::Item(n) => write!(f, "item {n}"),
        }
    }
}

/// One record as the source wrote it: source paths (column headers, XML paths such as
/// `Child/Name` or `@status`, JSON paths such as `children/0/name`) with their text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawRecord {
    pub location: Location,
    pub fields: Vec<(String, String)>,
}

impl RawRecord {
    pub fn new(location: Location) -> Self {
        RawRecord {
            location,
            fields: Vec::new(),
        }
    }

    /// The text at `path`; the first occurrence wins when a path repeats.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, path: impl Into<String>, value: impl Into<String>) {
        self.fields.push((path.into(), value.into()));
    }

    /// Indices `i` for which some path starts with `prefix/i/`: the elements of a nested list.
    pub fn list_indices(&self, prefix: &str) -> Vec<usize> {
        let head = format!("{prefix}/");
        let mut out: Vec<usize> = self
            .fields
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&head))
            .filter_map(|rest| rest.split('/').next())
            .filter_map(|i| i.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}
