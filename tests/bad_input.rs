//! Bad input never crashes a run and never loses data.

mod common;

use common::{ok, path, simulate, vitalhub};

const HUKOU_HEADER: &str = "登记类别,公民身份号码,姓名,性别,民族,出生日期,户籍地行政区划,户籍地址,出生医学证明编号,父亲姓名,父亲公民身份号码,母亲姓名,母亲公民身份号码,登记日期,登记机关\n";

#[test]
fn a_bad_date_quarantines_the_row_and_the_rest_is_ingested_then_retried_after_a_mapping_fix() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    let csv = format!(
        "鹤壁市公安局2026年10月户籍登记情况\n{HUKOU_HEADER}\
         迁出,41062219900101231X,王强,男,汉族,1990-01-01,410622,,,,,,,2026-10-21,分局\n\
         迁出,410611199203154325,李娜,女,汉族,1992-03-15,410611,,,,,,,21/10/2026,分局\n\
         迁入,410621199505061231,张伟,男,汉族,1995-05-06,410621,,,,,,,2026-10-22,分局\n\
         合计,3,,,,,,,,,,,,,\n"
    );
    std::fs::write(feeds.join("hukou-202610.csv"), csv).unwrap();
    let out = ok(&vitalhub(dir.path(), &["ingest", path(&feeds)]));
    let line = out
        .lines()
        .find(|l| l.starts_with("hukou-202610.csv"))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cols[2..6],
        ["3", "2", "0", "1"],
        "read, upserted, unchanged, quarantined: {out}"
    );

    let list = ok(&vitalhub(dir.path(), &["quarantine", "list"]));
    assert!(
        list.contains("hukou-202610.csv") && list.contains("row 4") && list.contains("reg_date"),
        "{list}"
    );
    assert!(list.contains("cannot read date '21/10/2026'"), "{list}");

    // Still failing with the same mapping: the entry stays open with its reason.
    let retry = ok(&vitalhub(dir.path(), &["quarantine", "retry"]));
    assert!(retry.contains("0 re-processed, 1 still failing"), "{retry}");

    // The operator adds the day-first format to a copy of the mapping and retries.
    let fixed = dir.path().join("police-hukou-dmy.toml");
    let text = std::fs::read_to_string("mappings/police-hukou.toml").unwrap();
    let text = text.replace(
        "[fields]",
        "date_formats = [\"%Y-%m-%d\", \"%d/%m/%Y\"]\n\n[fields]",
    );
    std::fs::write(&fixed, text).unwrap();
    let retry = ok(&vitalhub(
        dir.path(),
        &["quarantine", "retry", "--mapping", path(&fixed)],
    ));
    assert!(retry.contains("1 re-processed, 0 still failing"), "{retry}");
    assert!(ok(&vitalhub(dir.path(), &["quarantine", "list"])).contains("0 entries"));
    let all = ok(&vitalhub(dir.path(), &["quarantine", "list", "--all"]));
    assert!(all.contains("resolved"), "{all}");

    // The retried record is now used: a move-out of someone the registry does not hold.
    ok(&vitalhub(
        dir.path(),
        &["reconcile", "--period", "2026-10", "--as-of", "2026-11-20"],
    ));
    let report = ok(&vitalhub(dir.path(), &["report", "--period", "2026-10"]));
    assert!(
        report.contains("410611199203154325|迁出|2026-10-21"),
        "{report}"
    );
}

#[test]
fn a_truncated_xml_file_keeps_its_complete_records_and_is_quarantined_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "300", "1");
    let births = feeds.join("births-202610.xml");
    let text = std::fs::read_to_string(&births).unwrap();
    let total = text.matches("<Birth ").count();
    let cut = text.match_indices("<Birth ").nth(5).unwrap().0 + 40;
    std::fs::write(&births, &text[..cut]).unwrap();

    let out = vitalhub(dir.path(), &["ingest", path(&feeds)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a file that could not be read to its end fails the run"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("registry.csv") && stdout.contains("marriages-202610.xml"),
        "the other files go on: {stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("births-202610.xml"))
        .unwrap();
    assert!(
        line.split_whitespace().nth(2) == Some("5"),
        "five complete records kept: {line} (of {total})"
    );
    assert!(stdout.contains("element 6"), "{stdout}");
    let list = ok(&vitalhub(dir.path(), &["quarantine", "list"]));
    assert!(
        list.contains("births-202610.xml") && list.contains("file"),
        "{list}"
    );
}

#[test]
fn a_file_with_a_wrong_column_layout_fails_with_a_clear_message_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "100", "1");
    std::fs::remove_file(feeds.join("hukou-202610.xlsx")).unwrap();
    std::fs::write(
        feeds.join("hukou-202610.csv"),
        "身份证,类别\n41062219900101231X,迁出\n",
    )
    .unwrap();
    let out = vitalhub(dir.path(), &["ingest", path(&feeds)]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no header row with a column named '公民身份号码'"),
        "{stdout}"
    );
    let registry = stdout
        .lines()
        .find(|l| l.starts_with("registry.csv"))
        .unwrap();
    assert!(
        registry
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 300,
        "{registry}"
    );
}

#[test]
fn garbage_in_every_format_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for name in [
        "registry.csv",
        "births-202610.xml",
        "hukou-202610.xlsx",
        "hukou-202611.xls",
        "marriages-202610.xml",
        "migrants-202610.json",
    ] {
        std::fs::write(feeds.join(name), &garbage).unwrap();
    }
    let out = vitalhub(dir.path(), &["ingest", path(&feeds)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}
