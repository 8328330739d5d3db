use std::path::Path;

use vitalhub_connectors::files::read_all;
use vitalhub_connectors::{Location, RawRecord};

use super::*;
use crate::model::*;

fn map_file(mapping: &Mapping, path: &Path) -> Vec<Result<Record, FieldError>> {
    let spec = mapping.read_spec(path).unwrap();
    read_all(path, &spec)
        .unwrap()
        .iter()
        .map(|r| mapping.apply(r))
        .collect()
}

#[test]
fn every_builtin_mapping_loads() {
    for name in builtin_names() {
        Mapping::load(&format!("builtin:{name}")).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn unknown_fields_and_formats_are_refused_with_the_mapping_name() {
    let err = Mapping::from_toml(
        "m.toml",
        "feed='registry'\nformat='csv'\n[fields]\nshoe_size='x'\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("m.toml") && err.to_string().contains("shoe_size"),
        "{err}"
    );
    let err =
        Mapping::from_toml("m.toml", "feed='registry'\nformat='pdf'\n[fields]\n").unwrap_err();
    assert!(err.to_string().contains("pdf"), "{err}");
    assert!(Mapping::load("builtin:nope").is_err());
}

#[test]
fn birth_xml_maps_every_field_and_keeps_no_gestation_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("births-202610.xml");
    std::fs::write(
        &p,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<BirthNotifications issuer="410600-WJW" period="2026-10">
  <Birth status="issued" updatedAt="2026-10-05T09:12:00+08:00">
    <CertNo>q410123456</CertNo>
    <Child><Name>王 梓涵</Name><Sex>女</Sex><BirthDate>2026年10月3日</BirthDate><BirthTime>14:25</BirthTime></Child>
    <BirthPlace division="410611"><Hospital code="H4106110001">鹤壁市妇幼保健院</Hospital></BirthPlace>
    <GestationWeeks>39</GestationWeeks><WeightG>3350</WeightG>
    <Mother><Name>阿依古丽•买买提</Name><IdNumber>４１０６１１１９９２０３１５４３２５</IdNumber><Division>410611</Division></Mother>
  </Birth>
  <Birth status="作废"><CertNo>Q410123457</CertNo><Child><BirthDate>20261004</BirthDate></Child></Birth>
</BirthNotifications>"#,
    )
    .unwrap();
    let m = Mapping::load("builtin:health-births-xml").unwrap();
    let recs = map_file(&m, &p);
    let Ok(Record::Birth(b)) = &recs[0] else {
        panic!("{:?}", recs[0])
    };
    assert_eq!(b.cert_no, "Q410123456");
    assert_eq!(b.child_name, "王梓涵");
    assert_eq!(b.child_sex, Sex::Female);
    assert_eq!(b.birth_date, NaiveDate::from_ymd_opt(2026, 10, 3).unwrap());
    assert_eq!(b.mother_name, "阿依古丽·买买提");
    assert_eq!(
        b.mother_id.as_ref().map(|i| i.as_str()),
        Some("410611199203154325")
    );
    assert!(b.mother_id.as_ref().unwrap().is_valid());
    assert_eq!(
        b.birth_division.as_ref().map(|d| d.as_str()),
        Some("410611")
    );
    let json = serde_json::to_string(&recs[0].as_ref().unwrap()).unwrap();
    assert!(
        !json.contains("3350") && !json.contains("39"),
        "gestation data must not be kept: {json}"
    );
    let Ok(Record::Birth(v)) = &recs[1] else {
        panic!()
    };
    assert_eq!(v.status, CertStatus::Void);
    assert!(recs[1].as_ref().unwrap().is_retired());
}

use chrono::NaiveDate;

const ROWS: [[&str; 8]; 3] = [
    [
        "出生登记",
        "41061120261003582X",
        "王梓涵",
        "女",
        "2026-10-03",
        "Q410123456",
        "410611199203154325",
        "2026-10-20",
    ],
    [
        "迁出",
        "41062219900101231X",
        "王强",
        "男",
        "1990-01-01",
        "",
        "",
        "2026-10-21",
    ],
    [
        "死亡注销",
        "410621194501023317",
        "张秀英",
        "女",
        "1945-01-02",
        "",
        "",
        "2026-10-22",
    ],
];

#[test]
fn a_new_layout_needs_only_a_new_mapping_file() {
    let dir = tempfile::tempdir().unwrap();
    // The reference layout: xlsx with a title row, Chinese reference headers and a totals row.
    let reference = dir.path().join("hukou-202610.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .write_string(0, 0, "鹤壁市公安局2026年10月户籍登记情况")
        .unwrap();
    let headers = [
        "登记类别",
        "公民身份号码",
        "姓名",
        "性别",
        "出生日期",
        "出生医学证明编号",
        "母亲公民身份号码",
        "登记日期",
        "民族",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string(1, c as u16, *h).unwrap();
    }
    for (r, row) in ROWS.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            sheet.write_string(r as u32 + 2, c as u16, *v).unwrap();
        }
        sheet.write_string(r as u32 + 2, 8, "汉族").unwrap();
    }
    sheet.write_string(5, 0, "合计").unwrap();
    sheet.write_number(5, 1, 3.0).unwrap();
    book.save(&reference).unwrap();

    // A county's own layout: GB18030 CSV, other headers and order, short event names,
    // legacy 15-digit numbers and a different date form per row.
    let alt_dates = [
        ("2026/10/3", "20261020"),
        ("1990年1月1日", "2026.10.21"),
        ("19450102", "2026年10月22日"),
    ];
    let alt_events = ["出生", "迁出户口", "死亡"];
    let mut csv = String::from("某县公安局户籍业务办理清单\n业务类型,办理日期,身份证号,姓名,性别,出生日期,出生证编号,母亲身份证号\n");
    for (i, row) in ROWS.iter().enumerate() {
        let id = if i == 1 {
            "410622900101231".to_owned()
        } else {
            row[1].to_lowercase()
        };
        csv += &format!(
            "{},{},{},{},{},{},{},{}\n",
            alt_events[i], alt_dates[i].1, id, row[2], row[3], alt_dates[i].0, row[5], row[6]
        );
    }
    csv += "合计,3,,,,,,\n";
    let (bytes, _, _) = encoding_rs::GB18030.encode(&csv);
    let alt = dir.path().join("hukou-202610-county.csv");
    std::fs::write(&alt, &bytes).unwrap();

    let from_reference = map_file(&Mapping::load("builtin:police-hukou").unwrap(), &reference);
    let from_alt = map_file(
        &Mapping::load("mappings/police-hukou-county-csv.toml").unwrap(),
        &alt,
    );
    assert_eq!(from_reference.len(), 3);
    assert!(
        from_reference.iter().all(Result::is_ok),
        "{from_reference:?}"
    );
    assert_eq!(from_reference, from_alt);
    let keys: Vec<String> = from_reference
        .iter()
        .map(|r| r.as_ref().unwrap().key())
        .collect();
    assert_eq!(keys[0], "41061120261003582X|出生登记|2026-10-20");
    assert_eq!(keys[1], "41062219900101231X|迁出|2026-10-21");
}

#[test]
fn a_bad_value_names_its_canonical_field() {
    let m = Mapping::load("builtin:police-hukou").unwrap();
    let mut raw = RawRecord::new(Location::Row(7));
    raw.push("登记类别", "迁出");
    raw.push("公民身份号码", "41062219900101231X");
    raw.push("登记日期", "2026-13-45");
    assert_eq!(
        m.apply(&raw).unwrap_err(),
        FieldError::new("reg_date", "cannot read date '2026-13-45'")
    );
    raw.fields[0].1 = "搬家".into();
    assert_eq!(m.apply(&raw).unwrap_err().field, "event");
    raw.fields[0].1 = "迁出".into();
    raw.fields.retain(|(k, _)| k != "公民身份号码");
    assert_eq!(
        m.apply(&raw).unwrap_err(),
        FieldError::new("id_number", "missing")
    );
}

#[test]
fn migrant_batches_map_children_and_batch_context() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("migrants-202610.json");
    std::fs::write(&p, r#"{"schema": "migrant-exchange/1", "message_id": "0f6c-1", "from": "320411", "to": "410600",
 "created": "2026-11-01T03:00:00+08:00",
 "records": [
  {"id_number": "410621199505061231", "name": "张伟", "sex": "1", "birth_date": "1995-05-06",
   "marital_status": "20", "hukou_division": "410621", "residence_division": "320411",
   "residence_address": "常州市新北区…", "event": "inflow", "event_date": "2026-09-20",
   "children": [{"name": "张一诺", "sex": "2", "birth_date": "2026-08-30", "id_number": null}]}
 ]}"#).unwrap();
    let m = Mapping::load("builtin:exchange-migrants-json").unwrap();
    let recs = map_file(&m, &p);
    let Ok(Record::Migrant(r)) = &recs[0] else {
        panic!("{:?}", recs[0])
    };
    assert_eq!(r.message_id.as_deref(), Some("0f6c-1"));
    assert_eq!(r.from_region.as_ref().unwrap().as_str(), "320411");
    assert_eq!(r.event, MigrantEvent::Inflow);
    assert_eq!(r.children.len(), 1);
    assert_eq!(r.children[0].name, "张一诺");
    assert_eq!(r.children[0].id_number, None);
    assert!(
        !serde_json::to_string(r).unwrap().contains("常州"),
        "addresses are not kept"
    );
}
