use minijinja::{context, Environment};

use super::xlsx::severity_zh;
use super::Entry;
use crate::model::DiscrepancyKind;

const TEMPLATE: &str = include_str!("report.html");

/// One self-contained page (no external assets) a clerk can open and print.
pub fn write_html(entries: &[Entry], period: &str, region: &str) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.add_template("report", TEMPLATE)?;
    let kinds: Vec<minijinja::Value> = DiscrepancyKind::ALL
        .iter()
        .map(|kind| {
            let rows: Vec<minijinja::Value> = entries
                .iter()
                .filter(|e| e.kind == *kind)
                .map(|e| {
                    context! {
                        id => e.id.clone(),
                        division => e.division.clone().unwrap_or_default(),
                        severity => e.severity,
                        severity_zh => severity_zh(e.severity),
                        sources => e.sources.iter().map(|s| format!("{}:{}", s.feed, s.key)).collect::<Vec<_>>(),
                        registry_key => e.registry_key.clone().unwrap_or_default(),
                        fields => e.fields.iter().map(|f| format!(
                            "{}：人口库 {} / 来源 {}",
                            f.field,
                            f.registry.as_deref().unwrap_or("—"),
                            f.source.as_deref().unwrap_or("—")
                        )).collect::<Vec<_>>(),
                        explanation => e.explanation.clone(),
                    }
                })
                .collect();
            context! { label => kind.label_zh(), name => kind.name(), count => rows.len(), entries => rows }
        })
        .collect();
    let generated = chrono::Local::now().format("%Y-%m-%d %H:%M").to_string();
    Ok(env.get_template("report")?.render(context! {
        period, region, total => entries.len(), generated, kinds
    })?)
}
