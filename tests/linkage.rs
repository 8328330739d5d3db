//! `vitalhub link` on generated records with typos: accuracy, and scoring with a saved model.

mod common;

use common::{ok, path, simulate, vitalhub};

const SETTINGS: &str = r#"
unique_id = "person_key"
one_to_one = true
u_sample = 100000
[[blocking]]
keys = ["birth_date"]
[[blocking]]
keys = ["id_number"]
[[blocking]]
keys = ["name", "sex"]
[[comparisons]]
name = "identity number"
column = "id_number"
method = { type = "id_number" }
[[comparisons]]
name = "name"
column = "name"
method = { type = "chinese_name" }
tf = true
[[comparisons]]
name = "birth date"
column = "birth_date"
method = { type = "date" }
[[comparisons]]
name = "sex"
column = "sex"
method = { type = "exact" }
[[comparisons]]
name = "division"
column = "hukou_division"
method = { type = "division" }
"#;

/// The right-hand copy of a registry: every third record gets a typo in its number (two
/// adjacent digits swapped), every fifth a birth date a day off, every seventh is dropped.
fn corrupt_copy(registry: &str) -> String {
    let mut r = csv::Reader::from_reader(registry.as_bytes());
    let headers = r.headers().unwrap().clone();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = headers.iter().collect();
    header.push("truth");
    w.write_record(&header).unwrap();
    for (n, rec) in r.records().enumerate() {
        let rec = rec.unwrap();
        if n % 7 == 3 {
            continue;
        }
        let mut row: Vec<String> = rec.iter().map(str::to_owned).collect();
        let key = row[0].clone();
        row[0] = format!("R{n}");
        if n % 3 == 0 && row[1].len() == 18 {
            let mut b = row[1].clone().into_bytes();
            b.swap(10, 11);
            row[1] = String::from_utf8(b).unwrap();
        }
        if n % 5 == 0 {
            let d = chrono::NaiveDate::parse_from_str(&row[4], "%Y-%m-%d").unwrap();
            row[4] = (d + chrono::Duration::days(1)).to_string();
        }
        row.push(key);
        w.write_record(&row).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn with_truth(registry: &str) -> String {
    let mut out = String::new();
    for (n, line) in registry.lines().enumerate() {
        let key = line.split(',').next().unwrap();
        out += &format!("{line},{}\n", if n == 0 { "truth" } else { key });
    }
    out
}

#[test]
fn linking_records_with_typos_reaches_f1_of_0_99_and_a_saved_model_scores_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "600", "5");
    let registry = std::fs::read_to_string(feeds.join("registry.csv")).unwrap();
    let (left, right, settings) = (
        dir.path().join("left.csv"),
        dir.path().join("right.csv"),
        dir.path().join("s.toml"),
    );
    std::fs::write(&left, with_truth(&registry)).unwrap();
    std::fs::write(&right, corrupt_copy(&registry)).unwrap();
    std::fs::write(&settings, SETTINGS).unwrap();

    let (pairs, model) = (dir.path().join("pairs.csv"), dir.path().join("model.json"));
    let args = [
        "link",
        "--left",
        path(&left),
        "--right",
        path(&right),
        "--settings",
        path(&settings),
        "--truth-column",
        "truth",
    ];
    let mut first = args.to_vec();
    first.extend(["--output", path(&pairs), "--save-model", path(&model)]);
    let out = ok(&vitalhub(dir.path(), &first));
    let f1: f64 = out
        .split("F1 ")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .expect(&out);
    assert!(f1 >= 0.99, "{out}");

    let pairs2 = dir.path().join("pairs2.csv");
    let mut again = args.to_vec();
    again.extend(["--output", path(&pairs2), "--model", path(&model)]);
    ok(&vitalhub(dir.path(), &again));
    assert_eq!(
        std::fs::read_to_string(&pairs).unwrap(),
        std::fs::read_to_string(&pairs2).unwrap()
    );
}

#[test]
fn deduplication_clusters_the_injected_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "2000", "3");
    let settings = dir.path().join("s.toml");
    std::fs::write(&settings, SETTINGS.replace("one_to_one = true\n", "")).unwrap();
    let out = ok(&vitalhub(
        dir.path(),
        &[
            "link",
            "--left",
            path(&feeds.join("registry.csv")),
            "--dedupe",
            "--settings",
            path(&settings),
            "--output",
            path(&dir.path().join("p.csv")),
        ],
    ));
    let truth = std::fs::read_to_string(feeds.join("truth.jsonl")).unwrap();
    let injected = truth
        .lines()
        .filter(|l| l.contains("duplicate_registry_record"))
        .count();
    let clusters = out
        .lines()
        .find(|l| l.starts_with("clusters:"))
        .expect(&out);
    let multi: usize = clusters
        .rsplit(", ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect(&out);
    assert!(injected > 0);
    assert_eq!(multi, injected, "{out}");
}
