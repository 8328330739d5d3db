//! The mapping files of `mappings/`, compiled in so the binary works from any folder.

const BUILTIN: &[(&str, &str)] = &[
    ("registry", include_str!("../../mappings/registry.toml")),
    (
        "health-births-xml",
        include_str!("../../mappings/health-births-xml.toml"),
    ),
    (
        "health-births-json",
        include_str!("../../mappings/health-births-json.toml"),
    ),
    (
        "police-hukou",
        include_str!("../../mappings/police-hukou.toml"),
    ),
    (
        "police-hukou-county-csv",
        include_str!("../../mappings/police-hukou-county-csv.toml"),
    ),
    (
        "civil-marriages-xml",
        include_str!("../../mappings/civil-marriages-xml.toml"),
    ),
    (
        "exchange-migrants-json",
        include_str!("../../mappings/exchange-migrants-json.toml"),
    ),
];

/// Names accepted after `builtin:`; each is the file `mappings/NAME.toml`.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}
