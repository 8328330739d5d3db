//! A private RabbitMQ node for one test: its own folder, node name and ports, so a test can stop
//! and restart its broker without disturbing other tests. Needs Debian's `rabbitmq-server`
//! (`.ci/run` installs it); a test that needs a broker fails, never skips, when it is missing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

pub struct Broker {
    dir: tempfile::TempDir,
    node: String,
    pub port: u16,
    server: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Broker {
    pub fn start() -> Broker {
        assert!(
            std::path::Path::new(SERVER).exists(),
            "{SERVER} is missing: install Debian's rabbitmq-server (.ci/run does)"
        );
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let node = format!(
            "vh{}n{}@localhost",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        let port = free_port();
        let mut broker = Broker {
            server: Command::new("true").spawn().unwrap(),
            dir,
            node,
            port,
        };
        let mut server = Command::new(SERVER);
        broker.env(&mut server);
        server.env("RABBITMQ_DIST_PORT", free_port().to_string());
        let log = std::fs::File::create(broker.dir.path().join("server.out")).unwrap();
        broker.server = server
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("rabbitmq-server starts");
        let pid_file = broker.dir.path().join("rabbit.pid");
        let waited = broker.ctl(&["wait", pid_file.to_str().unwrap(), "--timeout", "120"]);
        assert!(
            waited.status.success(),
            "broker did not start: {}\n{}",
            String::from_utf8_lossy(&waited.stderr),
            std::fs::read_to_string(broker.dir.path().join("server.out")).unwrap_or_default()
        );
        broker
    }

    fn env(&self, cmd: &mut Command) {
        let r = self.dir.path();
        let p = |name: &str| -> PathBuf { r.join(name) };
        cmd.env("RABBITMQ_HOME", "/usr/lib/rabbitmq")
            .env("RABBITMQ_BASE", r)
            .env("RABBITMQ_MNESIA_BASE", p("mnesia"))
            .env("RABBITMQ_LOG_BASE", p("log"))
            .env("RABBITMQ_PID_FILE", p("rabbit.pid"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", p("rabbitmq"))
            .env("HOME", r);
    }

    pub fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(CTL);
        self.env(&mut cmd);
        cmd.arg("-n").arg(&self.node).args(args);
        cmd.output().expect("rabbitmqctl runs")
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the broker application (connections drop, durable queues stay).
    pub fn stop_app(&self) {
        self.ctl_ok(&["stop_app"]);
    }

    pub fn start_app(&self) {
        self.ctl_ok(&["start_app"]);
    }

    /// Messages waiting in `queue`.
    /// Waits until `queue` is declared (a consumer starting up declares it), at most `limit`.
    pub fn wait_for_queue(&self, queue: &str, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            let out = self.ctl_ok(&["list_queues", "-q", "--no-table-headers", "name"]);
            if out.lines().any(|l| l.trim() == queue) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "queue {queue} was never declared"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    pub fn queue_depth(&self, queue: &str) -> u64 {
        let out = self.ctl_ok(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages",
        ]);
        out.lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?, parts.next()?.parse().ok()?))
            })
            .find(|(name, _)| *name == queue)
            .map(|(_, n)| n)
            .unwrap_or(0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("rabbit.pid");
        let _ = self.ctl(&["stop", pid_file.to_str().unwrap()]);
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
