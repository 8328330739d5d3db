//! Partner batches over a real RabbitMQ broker: two regions both ways, rejected batches
//! dead-lettered with their reason, replays applied once, and a broker restart in the middle of
//! 1,000 batches that loses and doubles nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rabbit::Broker;
use common::{ok, region_config, simulate};
use vitalhub::model::{check_char, Feed};
use vitalhub::store::Store;

const AMQP: &str = "[exchange.amqp]\nurl_env = \"VITALHUB_TEST_AMQP_URL\"\nprefetch = 8\n";

/// One region's instance: its folder (database inside) and its config.
struct Region {
    dir: PathBuf,
    config: PathBuf,
}

impl Region {
    fn new(dir: PathBuf, code: &str, keys: &Path, partner: &str) -> Region {
        let config = region_config(&dir, code, keys, partner, AMQP);
        Region { dir, config }
    }

    fn command(&self, broker: &Broker, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vitalhub"));
        cmd.arg("--db")
            .arg(self.dir.join("vitalhub.db"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("VITALHUB_TEST_AMQP_URL", broker.url());
        cmd
    }

    /// Runs vitalhub for this region and returns its stdout; fails the test on failure.
    fn run(&self, broker: &Broker, args: &[&str]) -> String {
        ok(&self.command(broker, args).output().expect("vitalhub runs"))
    }

    fn spawn(&self, broker: &Broker, args: &[&str]) -> Child {
        self.command(broker, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vitalhub starts")
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.join("vitalhub.db")).unwrap()
    }

    fn migrant_keys(&self) -> BTreeSet<String> {
        self.store()
            .records(Feed::ExchangeMigrants)
            .unwrap()
            .into_iter()
            .map(|r| r.record.key())
            .collect()
    }
}

/// Waits for a spawned vitalhub; its stdout then its stderr (the logs).
fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    ok(&out) + &String::from_utf8_lossy(&out.stderr)
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in:\n{text}"))
}

fn keys(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    for region in ["410600", "320411"] {
        vitalhub::exchange::generate_keys(&keys, region).unwrap();
    }
    keys
}

/// The identity number of an `inflow` record key (`{id}|inflow|{date}`).
fn inflow_id(key: &str) -> Option<String> {
    let (id, rest) = key.split_once('|')?;
    rest.starts_with("inflow|").then(|| id.to_owned())
}

/// Registry rows of Hebi people who now live in Changzhou, for Changzhou's registry.
fn changzhou_registry(hebi_registry: &Path, out: &Path, n: usize) {
    let mut reader = csv::Reader::from_path(hebi_registry).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (residence, status, id) = (col("residence_division"), col("status"), col("id_number"));
    let mut writer = csv::Writer::from_path(out).unwrap();
    writer.write_record(&headers).unwrap();
    let mut written = 0;
    for row in reader.records() {
        let row = row.unwrap();
        if written == n || row.get(status) != Some("resident") || row.get(id).unwrap().len() != 18 {
            continue;
        }
        let mut fields: Vec<String> = row.iter().map(str::to_owned).collect();
        fields[residence] = "320411".into();
        writer.write_record(&fields).unwrap();
        written += 1;
    }
    writer.flush().unwrap();
}

#[test]
fn two_regions_exchange_batches_both_ways_over_the_broker() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let hebi = Region::new(dir.path().join("hebi"), "410600", &keys, "320411");
    let cz = Region::new(dir.path().join("changzhou"), "320411", &keys, "410600");

    // Hebi holds people registered in 320411 who live in Hebi; Changzhou holds Hebi people.
    let feeds = simulate(&hebi.dir, "2000", "9");
    for f in ["migrants-202610.json", "migrants-202610.json.sig"] {
        std::fs::remove_file(feeds.join(f)).unwrap();
    }
    hebi.run(&broker, &["ingest", feeds.to_str().unwrap()]);
    let cz_feeds = cz.dir.join("feeds");
    std::fs::create_dir_all(&cz_feeds).unwrap();
    changzhou_registry(
        &feeds.join("registry.csv"),
        &cz_feeds.join("registry.csv"),
        40,
    );
    cz.run(&broker, &["ingest", cz_feeds.to_str().unwrap()]);
    assert_eq!(cz.store().records(Feed::Registry).unwrap().len(), 40);

    // Each listens first, so its queue exists; then each sends. Each expects one batch; the
    // idle limit only keeps a lost batch from hanging the test (a 4 s limit ran out under a
    // loaded CI machine before the other region's send had started).
    let listen = ["exchange", "listen", "--max", "1", "--idle-exit", "60"];
    let hebi_listener = hebi.spawn(&broker, &listen);
    let cz_listener = cz.spawn(&broker, &listen);
    for region in ["410600", "320411"] {
        broker.wait_for_queue(
            &format!("vitalhub.migrants.{region}"),
            Duration::from_secs(60),
        );
    }
    let sent_east = hebi.run(&broker, &["exchange", "send"]);
    assert!(
        sent_east.contains("confirmed by the broker: 1 batches"),
        "{sent_east}"
    );
    let sent_west = cz.run(&broker, &["exchange", "send"]);
    assert!(sent_west.contains("(40 records)"), "{sent_west}");
    for listener in [hebi_listener, cz_listener] {
        let heard = finish(listener);
        assert!(heard.contains("applied 1 batches"), "{heard}");
    }

    // Every person sent arrived, under the same keys.
    let sent = number_after(&sent_east, "(") as usize;
    assert!(sent > 0);
    assert_eq!(cz.migrant_keys().len(), sent);
    let west: BTreeSet<String> = hebi
        .migrant_keys()
        .iter()
        .filter_map(|k| inflow_id(k))
        .collect();
    let registered: BTreeSet<String> = csv::Reader::from_path(cz_feeds.join("registry.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[1].to_owned())
        .collect();
    assert_eq!(
        west, registered,
        "every Changzhou resident of Hebi, once, as an inflow"
    );

    // Nothing changed: sending again queues nothing, and the status shows it.
    let again = hebi.run(&broker, &["exchange", "send"]);
    assert!(!again.contains("queued message"), "{again}");
    let status = hebi.run(&broker, &["exchange", "status"]);
    assert!(
        status.contains("outbox: 0 waiting for the broker, 1 confirmed"),
        "{status}"
    );
    assert!(
        status.contains("received: 1 applied, 0 rejected"),
        "{status}"
    );
}

/// A batch of `n` people registered in 410600 who live in 320411, numbered from `first`.
fn batch(message_id: &str, first: u32, n: u32) -> Vec<u8> {
    let records: Vec<serde_json::Value> = (first..first + n)
        .map(|i| {
            let head = format!("41060219{:02}0101{:03}", 50 + (i / 1000) % 50, i % 1000);
            let id = format!("{head}{}", check_char(&head));
            serde_json::json!({"id_number": id, "name": "张伟", "sex": "1", "birth_date": format!("19{:02}-01-01", 50 + (i / 1000) % 50),
              "marital_status": "10", "hukou_division": "410602", "residence_division": "320411",
              "event": "inflow", "event_date": "2026-10-15", "children": []})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"schema": "migrant-exchange/1", "message_id": message_id,
        "from": "410600", "to": "320411", "created": "2026-11-01T03:00:00+08:00", "records": records}))
    .unwrap()
}

fn publish_raw(broker: &Broker, message_id: &str, body: &[u8], signature: &str) {
    use vitalhub_connectors::amqp::{Outgoing, Publisher};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut publisher = Publisher::new(&broker.url(), "vitalhub.migrants");
        publisher
            .publish(&Outgoing {
                message_id: message_id.into(),
                routing_key: "320411".into(),
                body: body.to_vec(),
                content_type: "application/json".into(),
                headers: vec![("signature".into(), signature.trim().into())],
            })
            .await
            .unwrap();
    });
}

#[test]
fn a_changed_byte_and_a_stranger_key_are_dead_lettered_and_a_replay_is_applied_once() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let cz = Region::new(dir.path().join("changzhou"), "320411", &keys, "410600");
    // The listener declares the queue; it stops at once, then batches are published into it.
    let out = cz.run(&broker, &["exchange", "listen", "--idle-exit", "1"]);
    assert!(out.contains("applied 0 batches"), "{out}");

    let hebi_key = vitalhub::exchange::load_signing_key(&keys.join("410600.key")).unwrap();
    let stranger_dir = dir.path().join("stranger");
    vitalhub::exchange::generate_keys(&stranger_dir, "410600").unwrap();
    let stranger = vitalhub::exchange::load_signing_key(&stranger_dir.join("410600.key")).unwrap();

    let good = batch("m-good", 0, 3);
    let signature = vitalhub::exchange::sign(&hebi_key, &good);
    let mut changed = good.clone();
    let at = changed
        .windows(3)
        .position(|w| w == "张".as_bytes())
        .unwrap();
    changed[at + 2] ^= 1;
    publish_raw(&broker, "m-changed", &changed, &signature);
    publish_raw(
        &broker,
        "m-stranger",
        &good,
        &vitalhub::exchange::sign(&stranger, &good),
    );
    publish_raw(&broker, "m-good", &good, &signature);
    publish_raw(&broker, "m-good", &good, &signature);

    let out = cz.run(&broker, &["exchange", "listen", "--idle-exit", "2"]);
    assert!(
        out.contains("applied 1 batches, 1 seen before, 2 rejected"),
        "{out}"
    );
    assert_eq!(cz.migrant_keys().len(), 3, "the good batch, once");
    assert_eq!(broker.queue_depth("vitalhub.migrants.320411"), 0);
    assert_eq!(
        broker.queue_depth("vitalhub.migrants.320411.dead"),
        2,
        "both rejected batches wait in the dead-letter queue"
    );

    // Kept with their reasons, for an operator.
    let status = cz.run(&broker, &["exchange", "status"]);
    assert!(
        status.contains("received: 1 applied, 2 rejected"),
        "{status}"
    );
    assert!(
        status.contains("rejected m-changed") && status.contains("rejected m-stranger"),
        "{status}"
    );
    let reason = "signature does not verify against the key of partner region 410600";
    assert_eq!(status.matches(reason).count(), 2, "{status}");
    let quarantine = cz.run(&broker, &["quarantine", "list"]);
    assert_eq!(
        quarantine.matches("signature does not verify").count(),
        2,
        "{quarantine}"
    );
}

#[test]
fn a_broker_restart_during_1000_batches_loses_and_doubles_nothing() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let hebi = Region::new(dir.path().join("hebi"), "410600", &keys, "320411");
    let cz = Region::new(dir.path().join("changzhou"), "320411", &keys, "410600");

    // 1,000 batches signed by Hebi, 2 people each, every person in exactly one batch.
    let outbox = dir.path().join("batches");
    std::fs::create_dir_all(&outbox).unwrap();
    let key = vitalhub::exchange::load_signing_key(&keys.join("410600.key")).unwrap();
    let mut files = Vec::new();
    for b in 0..1000u32 {
        let body = batch(&format!("m-{b:04}"), b * 2, 2);
        let file = outbox.join(format!("migrants-410600-to-320411-{b:04}.json"));
        std::fs::write(&file, &body).unwrap();
        let signature = vitalhub::exchange::sign(&key, &body);
        std::fs::write(vitalhub::exchange::signature_path(&file), signature).unwrap();
        files.push(file.to_str().unwrap().to_owned());
    }

    let listener = cz.spawn(&broker, &["exchange", "listen", "--idle-exit", "8"]);
    // Publishing is mandatory: until the consumer has declared its queue, batches are
    // unroutable, so the publisher starts only once the queue is there.
    broker.wait_for_queue("vitalhub.migrants.320411", Duration::from_secs(60));
    // Paced, so that the restart falls while batches are still being published: unpaced,
    // the publisher sometimes had all 1,000 confirmed before the broker went down.
    let mut args = vec!["exchange", "publish", "--patience", "120", "--rate", "60"];
    args.extend(files.iter().map(String::as_str));
    let publisher = hebi.spawn(&broker, &args);

    // Restart the broker once a share of the batches is through.
    let started = Instant::now();
    loop {
        let confirmed = Store::open(&hebi.dir.join("vitalhub.db"))
            .ok()
            .and_then(|s| s.exchange_counts().ok())
            .map(|c| c.outbox_confirmed)
            .unwrap_or(0);
        if confirmed >= 150 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "publishing stalled at {confirmed}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.stop_app();
    std::thread::sleep(Duration::from_secs(3));
    broker.start_app();

    let sent = finish(publisher);
    assert!(sent.contains("confirmed by the broker"), "{sent}");
    assert!(
        sent.contains("reconnecting"),
        "the publisher lost its connection and came back: {sent}"
    );
    let got = finish(listener);
    println!("publisher:\n{sent}\nlistener:\n{got}");
    assert_eq!(number_after(&got, "applied "), 1000, "{got}");
    assert!(
        number_after(&got, "(dead-lettered); ") >= 2,
        "the consumer reconnected after the restart: {got}"
    );

    // Every person exactly once, every batch applied once and confirmed once.
    assert_eq!(cz.migrant_keys().len(), 2000);
    let received = cz.store().exchange_counts().unwrap();
    assert_eq!((received.inbox_applied, received.inbox_rejected), (1000, 0));
    let sent = hebi.store().exchange_counts().unwrap();
    assert_eq!((sent.outbox_confirmed, sent.outbox_pending), (1000, 0));
}
