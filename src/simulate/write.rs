//! Writes the simulated world as the reference feeds of SPEC.md.

use std::fmt::Write as _;
use std::path::Path;

use quick_xml::escape::escape;

use super::world::{HealthRow, MarriageRow, SimPerson, World, PARTNER};
use crate::model::{Period, REGISTRY_COLUMNS};

/// The registry CSV, written person by person as the generator makes them.
pub struct RegistryCsv {
    out: csv::Writer<std::io::BufWriter<std::fs::File>>,
    pub persons: usize,
}

impl RegistryCsv {
    pub fn create(path: &Path) -> anyhow::Result<RegistryCsv> {
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        let mut out = csv::Writer::from_writer(file);
        out.write_record(REGISTRY_COLUMNS)?;
        Ok(RegistryCsv { out, persons: 0 })
    }

    pub fn person(&mut self, p: &SimPerson) -> anyhow::Result<()> {
        let birth = p.birth.to_string();
        let sex = p.sex.to_string();
        self.out.write_record([
            p.key.as_str(),
            p.id.as_deref().unwrap_or(""),
            &p.name,
            &sex,
            &birth,
            &p.hukou_div,
            &p.res_div,
            p.marital,
            p.spouse.as_deref().unwrap_or(""),
            p.mother.as_deref().unwrap_or(""),
            p.father.as_deref().unwrap_or(""),
            p.status,
            "2026-01-01T00:00:00+08:00",
        ])?;
        self.persons += 1;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<usize> {
        self.out.flush()?;
        Ok(self.persons)
    }
}

pub fn births_xml(world: &World, period: Period, path: &Path) -> anyhow::Result<()> {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    writeln!(
        x,
        "<BirthNotifications issuer=\"410600-WJW\" period=\"{period}\" generated=\"{}T02:00:00+08:00\">",
        period.next().first_day()
    )?;
    for b in &world.births {
        birth_element(&mut x, b)?;
    }
    x.push_str("</BirthNotifications>\n");
    std::fs::write(path, x)?;
    Ok(())
}

fn birth_element(x: &mut String, b: &HealthRow) -> std::fmt::Result {
    writeln!(
        x,
        "  <Birth status=\"{}\" updatedAt=\"{}\">",
        b.status, b.updated_at
    )?;
    writeln!(x, "    <CertNo>{}</CertNo>", b.cert)?;
    writeln!(
        x,
        "    <Child><Name>{}</Name><Sex>{}</Sex><BirthDate>{}</BirthDate><BirthTime>{}</BirthTime></Child>",
        escape(&b.child_name),
        b.sex,
        b.birth,
        b.time
    )?;
    writeln!(
        x,
        "    <BirthPlace division=\"{}\"><Hospital code=\"H{}0001\">鹤壁市妇幼保健院</Hospital></BirthPlace>",
        b.division, b.division
    )?;
    writeln!(
        x,
        "    <GestationWeeks>{}</GestationWeeks><WeightG>{}</WeightG>",
        b.gestation, b.weight
    )?;
    writeln!(
        x,
        "    <Mother><Name>{}</Name><IdNumber>{}</IdNumber><Division>{}</Division></Mother>",
        escape(&b.mother_name),
        escape(&b.mother_id),
        b.division
    )?;
    writeln!(
        x,
        "    <Father><Name>{}</Name><IdNumber>{}</IdNumber></Father>",
        escape(&b.father_name),
        escape(&b.father_id)
    )?;
    writeln!(x, "  </Birth>")
}

pub fn hukou_xlsx(world: &World, period: Period, path: &Path) -> anyhow::Result<()> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    // A fixed creation time keeps the file byte-for-byte the same for the same seed.
    let created = ExcelDateTime::from_ymd(2026, 1, 1)?;
    book.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let sheet = book.add_worksheet();
    sheet.set_name("户籍登记")?;
    let first = period.first_day();
    sheet.write_string(
        0,
        0,
        format!(
            "鹤壁市公安局{}年{}月户籍登记情况",
            chrono::Datelike::year(&first),
            chrono::Datelike::month(&first)
        ),
    )?;
    let headers = [
        "登记类别",
        "公民身份号码",
        "姓名",
        "性别",
        "民族",
        "出生日期",
        "户籍地行政区划",
        "户籍地址",
        "出生医学证明编号",
        "父亲姓名",
        "父亲公民身份号码",
        "母亲姓名",
        "母亲公民身份号码",
        "登记日期",
        "登记机关",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string(1, c as u16, *h)?;
    }
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    let excel_date = |d: chrono::NaiveDate| {
        ExcelDateTime::from_ymd(
            chrono::Datelike::year(&d) as u16,
            chrono::Datelike::month(&d) as u8,
            chrono::Datelike::day(&d) as u8,
        )
    };
    for (i, h) in world.hukou.iter().enumerate() {
        let r = i as u32 + 2;
        sheet.write_string(r, 0, h.event)?;
        sheet.write_string(r, 1, &h.id)?;
        sheet.write_string(r, 2, &h.name)?;
        sheet.write_string(r, 3, if h.sex == 1 { "男" } else { "女" })?;
        sheet.write_string(r, 4, "汉族")?;
        sheet.write_datetime_with_format(r, 5, &excel_date(h.birth)?, &date_format)?;
        sheet.write_string(r, 6, &h.division)?;
        sheet.write_string(r, 7, "鹤壁市某街道某号")?;
        sheet.write_string(r, 8, &h.cert)?;
        sheet.write_string(r, 9, &h.father_name)?;
        sheet.write_string(r, 10, &h.father_id)?;
        sheet.write_string(r, 11, &h.mother_name)?;
        sheet.write_string(r, 12, &h.mother_id)?;
        sheet.write_datetime_with_format(r, 13, &excel_date(h.reg_date)?, &date_format)?;
        sheet.write_string(r, 14, format!("鹤壁市公安局{}分局", &h.division[4..]))?;
    }
    let total_row = world.hukou.len() as u32 + 2;
    sheet.write_string(total_row, 0, "合计")?;
    sheet.write_number(total_row, 1, world.hukou.len() as f64)?;
    book.save(path)?;
    Ok(())
}

/// Civil affairs sends GB18030, as declared in the document.
pub fn marriages_xml(world: &World, period: Period, path: &Path) -> anyhow::Result<()> {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"GB18030\"?>\n");
    writeln!(
        x,
        "<MarriageRegistrations office=\"410600\" month=\"{period}\">"
    )?;
    for m in &world.marriages {
        marriage_element(&mut x, m)?;
    }
    x.push_str("</MarriageRegistrations>\n");
    let (bytes, _, _) = encoding_rs::GB18030.encode(&x);
    std::fs::write(path, bytes)?;
    Ok(())
}

fn marriage_element(x: &mut String, m: &MarriageRow) -> std::fmt::Result {
    writeln!(x, "  <Registration kind=\"{}\">", m.kind)?;
    writeln!(
        x,
        "    <RegNo>{}</RegNo><RegDate>{}</RegDate>",
        m.reg_no, m.reg_date
    )?;
    for (tag, p) in [("Husband", &m.husband), ("Wife", &m.wife)] {
        writeln!(
            x,
            "    <{tag}><Name>{}</Name><IdNumber>{}</IdNumber><BirthDate>{}</BirthDate></{tag}>",
            escape(&p.name),
            escape(&p.id),
            p.birth
        )?;
    }
    writeln!(x, "  </Registration>")
}

pub fn migrants_json(world: &World, period: Period, seed: u64, path: &Path) -> anyhow::Result<()> {
    let records: Vec<serde_json::Value> = world
        .migrants
        .iter()
        .map(|m| {
            serde_json::json!({
                "id_number": m.id, "name": m.name, "sex": m.sex.to_string(), "birth_date": m.birth.to_string(),
                "marital_status": m.marital, "hukou_division": m.hukou_div, "residence_division": m.res_div,
                "residence_address": if m.res_div == PARTNER { "常州市新北区某路某号" } else { "鹤壁市某街道某号" },
                "event": m.event, "event_date": m.event_date.to_string(), "children": []
            })
        })
        .collect();
    let batch = serde_json::json!({
        "schema": "migrant-exchange/1",
        "message_id": format!("sim-{seed:016x}-{}", period.compact()),
        "from": PARTNER,
        "to": "410600",
        "created": format!("{}T03:00:00+08:00", period.next().first_day()),
        "records": records,
    });
    std::fs::write(path, serde_json::to_string_pretty(&batch)? + "\n")?;
    Ok(())
}

pub fn truth_jsonl(world: &World, path: &Path) -> anyhow::Result<()> {
    let mut truth = world.truth.clone();
    truth.sort();
    truth.dedup();
    let mut out = String::new();
    for t in truth {
        out.push_str(&serde_json::to_string(&t)?);
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(())
}
