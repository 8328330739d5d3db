use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn hukou_spec(format: FileFormat) -> ReadSpec {
    let mut spec = ReadSpec::new(format);
    spec.header = HeaderLocation::RowContaining("公民身份号码".into());
    spec.skip_rows_starting_with = vec!["合计".into()];
    spec
}

const HUKOU_CSV: &str = "鹤壁市公安局2026年10月户籍登记情况,,\n\
登记类别,公民身份号码,姓名\n\
出生登记,410611202610035821,王梓涵\n\
迁出,410622199001012315, 王强 \n\
合计,2,\n";

#[test]
fn csv_utf8_with_bom_skips_title_blank_and_totals_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(HUKOU_CSV.as_bytes());
    let p = write(dir.path(), "h.csv", &bytes);
    let recs = read_all(&p, &hukou_spec(FileFormat::Csv)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].location, Location::Row(3));
    assert_eq!(recs[0].get("公民身份号码"), Some("410611202610035821"));
    assert_eq!(recs[1].get("姓名"), Some(" 王强 "));
    assert_eq!(recs[1].location, Location::Row(4));
}

#[test]
fn csv_blank_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "h.csv",
        "登记类别,公民身份号码\n\n出生登记,1\n\n\n迁出,2\n".as_bytes(),
    );
    let recs = read_all(&p, &hukou_spec(FileFormat::Csv)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].get("登记类别"), Some("迁出"));
}

#[test]
fn csv_gb18030_is_detected_and_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _, _) = encoding_rs::GB18030.encode(HUKOU_CSV);
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "fixture must not be UTF-8"
    );
    let p = write(dir.path(), "h.csv", &bytes);
    let recs = read_all(&p, &hukou_spec(FileFormat::Csv)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].get("姓名"), Some("王梓涵"));
    assert_eq!(recs[0].get("登记类别"), Some("出生登记"));
}

#[test]
fn csv_missing_header_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h.csv", b"a,b\n1,2\n");
    let err = read_all(&p, &hukou_spec(FileFormat::Csv)).unwrap_err();
    assert!(err.to_string().contains("公民身份号码"), "{err}");
}

#[test]
fn xlsx_title_row_totals_row_and_date_cells() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .write_string(0, 0, "鹤壁市公安局2026年10月户籍登记情况")
        .unwrap();
    for (i, h) in ["登记类别", "公民身份号码", "出生日期", "体重"]
        .iter()
        .enumerate()
    {
        sheet.write_string(1, i as u16, *h).unwrap();
    }
    let fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 10, 3).unwrap();
    sheet.write_string(2, 0, "出生登记").unwrap();
    sheet.write_string(2, 1, "410611202610035821").unwrap();
    sheet.write_datetime_with_format(2, 2, &date, &fmt).unwrap();
    sheet.write_number(2, 3, 3350.0).unwrap();
    sheet.write_string(3, 0, "合计").unwrap();
    sheet.write_number(3, 1, 1.0).unwrap();
    book.save(&p).unwrap();

    let recs = read_all(&p, &hukou_spec(FileFormat::Xlsx)).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].location, Location::Row(3));
    assert_eq!(recs[0].get("出生日期"), Some("2026-10-03"));
    assert_eq!(recs[0].get("体重"), Some("3350"));
}

#[test]
fn xls_title_row_totals_row_and_date_cells() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/files/fixtures/hukou-title-totals.xls");
    let recs = read_all(&p, &hukou_spec(FileFormat::Xls)).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].get("姓名"), Some("王梓涵"));
    assert_eq!(recs[0].get("出生日期"), Some("2026-10-03"));
    assert_eq!(recs[1].get("登记类别"), Some("迁出"));
    assert_eq!(recs[1].location, Location::Row(4));
}

#[test]
fn not_a_workbook_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "h.xlsx", b"this is not a zip file");
    assert!(read_all(&p, &hukou_spec(FileFormat::Xlsx)).is_err());
    let p = write(
        dir.path(),
        "h.xls",
        b"\xd0\xcf\x11\xe0 truncated compound file",
    );
    assert!(read_all(&p, &hukou_spec(FileFormat::Xls)).is_err());
}

const BIRTHS_XML: &str = r#"<?xml version="1.0" encoding="ENC"?>
<BirthNotifications issuer="410600-WJW" period="2026-10">
  <Birth status="issued" updatedAt="2026-10-05T09:12:00+08:00">
    <CertNo>Q410123456</CertNo>
    <Child><Name>王梓涵</Name><Sex>2</Sex><BirthDate>2026-10-03</BirthDate></Child>
    <BirthPlace division="410611"><Hospital code="H4106110001">鹤壁市妇幼保健院 &amp; 分院</Hospital></BirthPlace>
    <Mother><Name>李娜</Name><IdNumber>410611199203154328</IdNumber></Mother>
  </Birth>
  <Birth status="void"><CertNo>Q410123457</CertNo><Child><Name/></Child></Birth>
</BirthNotifications>
"#;

fn births_spec() -> ReadSpec {
    let mut spec = ReadSpec::new(FileFormat::Xml);
    spec.record_element = "Birth".into();
    spec
}

#[test]
fn xml_records_flatten_to_paths_with_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "b.xml",
        BIRTHS_XML.replace("ENC", "UTF-8").as_bytes(),
    );
    let recs = read_all(&p, &births_spec()).unwrap();
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!(r.location, Location::Element(1));
    assert_eq!(r.get("/@period"), Some("2026-10"));
    assert_eq!(r.get("@status"), Some("issued"));
    assert_eq!(r.get("CertNo"), Some("Q410123456"));
    assert_eq!(r.get("Child/Name"), Some("王梓涵"));
    assert_eq!(r.get("BirthPlace/@division"), Some("410611"));
    assert_eq!(
        r.get("BirthPlace/Hospital"),
        Some("鹤壁市妇幼保健院 & 分院")
    );
    assert_eq!(r.get("BirthPlace/Hospital/@code"), Some("H4106110001"));
    assert_eq!(recs[1].get("@status"), Some("void"));
    assert_eq!(recs[1].get("Child/Name"), None);
}

#[test]
fn xml_declared_gb18030_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let text = BIRTHS_XML.replace("ENC", "GB18030");
    let (bytes, _, _) = encoding_rs::GB18030.encode(&text);
    let p = write(dir.path(), "b.xml", &bytes);
    let recs = read_all(&p, &births_spec()).unwrap();
    assert_eq!(recs[0].get("Mother/Name"), Some("李娜"));
    assert_eq!(
        recs[0].get("BirthPlace/Hospital"),
        Some("鹤壁市妇幼保健院 & 分院")
    );
}

#[test]
fn truncated_xml_delivers_complete_records_then_fails_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let text = BIRTHS_XML.replace("ENC", "UTF-8");
    let cut = text.find("<Birth status=\"void\"").unwrap() + 30;
    let p = write(dir.path(), "b.xml", &text.as_bytes()[..cut]);
    let mut got = Vec::new();
    let err = read_file(&p, &births_spec(), &mut |r, _| got.push(r)).unwrap_err();
    assert_eq!(got.len(), 1, "the complete first record is kept");
    assert_eq!(err.location, Some(Location::Element(2)));
}

#[test]
fn json_records_at_a_path_carry_top_level_context() {
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"{"schema":"migrant-exchange/1","message_id":"m-1","from":"320411",
      "records":[{"id_number":"410621199505061234","name":"张伟","children":[{"name":"张一诺","id_number":null}]},
                 {"id_number":"410621199505061235","weight":3.5}]}"#;
    let p = write(dir.path(), "m.json", doc.as_bytes());
    let mut spec = ReadSpec::new(FileFormat::Json);
    spec.record_path = "records".into();
    let recs = read_all(&p, &spec).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].get("/message_id"), Some("m-1"));
    assert_eq!(recs[0].get("children/0/name"), Some("张一诺"));
    assert_eq!(recs[0].get("children/0/id_number"), None);
    assert_eq!(recs[0].list_indices("children"), vec![0]);
    assert_eq!(recs[1].location, Location::Item(2));
    assert_eq!(recs[1].get("weight"), Some("3.5"));
}

#[test]
fn json_lines_and_broken_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.jsonl", b"{\"a\":1}\n\n{\"a\":2}\n");
    let recs = read_all(&p, &ReadSpec::new(FileFormat::Json)).unwrap();
    assert_eq!(
        recs.iter().map(|r| r.get("a").unwrap()).collect::<Vec<_>>(),
        ["1", "2"]
    );

    let p = write(
        dir.path(),
        "m.json",
        b"{\"records\":[{\"a\":1},{\"a\":2},{\"a\":",
    );
    let mut spec = ReadSpec::new(FileFormat::Json);
    spec.record_path = "records".into();
    let mut got = Vec::new();
    let err = read_file(&p, &spec, &mut |r, _| got.push(r)).unwrap_err();
    assert_eq!(got.len(), 2);
    assert_eq!(err.location, Some(Location::Item(3)));
}
