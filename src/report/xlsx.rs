use anyhow::Context;
use std::path::Path;

use rust_xlsxwriter::{Format, Workbook};

use super::Entry;
use crate::model::DiscrepancyKind;

const HEADERS: [&str; 11] = [
    "编号",
    "类型",
    "期间",
    "行政区划",
    "严重程度",
    "状态",
    "匹配分数",
    "来源记录",
    "人口库记录",
    "差异字段",
    "说明",
];

/// A summary sheet, then one sheet per kind with Chinese headers (empty kinds keep their sheet,
/// so a clerk sees a zero rather than a missing tab).
pub fn write_xlsx(entries: &[Entry], period: &str, path: &Path) -> anyhow::Result<()> {
    let mut book = workbook(entries, period)?;
    book.save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The same workbook in memory (a download).
pub fn xlsx_bytes(entries: &[Entry], period: &str) -> anyhow::Result<Vec<u8>> {
    Ok(workbook(entries, period)?.save_to_buffer()?)
}

fn workbook(entries: &[Entry], period: &str) -> anyhow::Result<Workbook> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let summary = book.add_worksheet();
    summary.set_name("汇总")?;
    summary.write_string_with_format(0, 0, format!("差异报告 {period}"), &bold)?;
    summary.write_string_with_format(1, 0, "类型", &bold)?;
    summary.write_string_with_format(1, 1, "代码", &bold)?;
    summary.write_string_with_format(1, 2, "数量", &bold)?;
    for (i, kind) in DiscrepancyKind::ALL.iter().enumerate() {
        let r = i as u32 + 2;
        summary.write_string(r, 0, kind.label_zh())?;
        summary.write_string(r, 1, kind.name())?;
        summary.write_number(
            r,
            2,
            entries.iter().filter(|e| e.kind == *kind).count() as f64,
        )?;
    }
    summary.set_column_width(0, 22)?;
    summary.set_column_width(1, 28)?;
    for kind in DiscrepancyKind::ALL {
        let sheet = book.add_worksheet();
        sheet.set_name(kind.label_zh())?;
        for (c, h) in HEADERS.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *h, &bold)?;
        }
        let rows = entries.iter().filter(|e| e.kind == kind);
        for (i, e) in rows.enumerate() {
            let r = i as u32 + 1;
            sheet.write_string(r, 0, &e.id)?;
            sheet.write_string(r, 1, kind.label_zh())?;
            sheet.write_string(r, 2, &e.period)?;
            sheet.write_string(r, 3, e.division.as_deref().unwrap_or(""))?;
            sheet.write_string(r, 4, severity_zh(e.severity))?;
            sheet.write_string(r, 5, &e.status)?;
            sheet.write_number(r, 6, e.score)?;
            sheet.write_string(r, 7, e.sources_text())?;
            sheet.write_string(r, 8, e.registry_key.as_deref().unwrap_or(""))?;
            sheet.write_string(r, 9, e.fields_text())?;
            sheet.write_string(r, 10, &e.explanation)?;
        }
        for (c, w) in [(0u16, 20.0), (7, 45.0), (9, 40.0), (10, 70.0)] {
            sheet.set_column_width(c, w)?;
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    Ok(book)
}

pub fn severity_zh(s: &str) -> &'static str {
    match s {
        "high" => "高",
        "medium" => "中",
        _ => "低",
    }
}
