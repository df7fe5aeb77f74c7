//! Test helper shared by every crate's integration tests.
//!
//! `deploy/local/stack test` starts an isolated stack (broker and two
//! ClickHouse shards on offset ports) and exports where it is:
//! `QOE_TEST_BROKERS`, `QOE_TEST_SHARDS`, `QOE_TEST_TANSU`. Without them the
//! defaults point at that same test stack, so `cargo test` works while one
//! started by `deploy/local/stack test --keep` is running.
//!
//! Tests use unique topic and database names ([`unique`]) so they can run in
//! parallel against one stack. For "dependency down" scenarios they start a
//! private broker ([`Broker`]) or put a [`TcpProxy`] in front of a shard and
//! switch it off — the servers behind are always the real ones.

pub mod mmdb;
pub mod webdriver;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use qoe_common::httpc;

/// Where the test stack runs.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka bootstrap address.
    pub brokers: String,
    /// ClickHouse HTTP URLs, one per shard (its first replica's).
    pub shards: Vec<String>,
    /// Every replica of each shard; `replicas[i][0] == shards[i]`.
    pub replicas: Vec<Vec<String>>,
    /// The shards hold `Replicated*MergeTree` tables
    /// (`QOE_TEST_REPLICATED=1`, `deploy/local/stack up --replicated`).
    pub replicated: bool,
}

impl Stack {
    /// The stack `deploy/local/stack test` started: `QOE_TEST_SHARDS` lists
    /// each shard's URL, or its replicas' as `url|url`.
    pub fn from_env() -> Stack {
        let brokers =
            std::env::var("QOE_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
        let replicas: Vec<Vec<String>> = std::env::var("QOE_TEST_SHARDS")
            .unwrap_or_else(|_| "http://127.0.0.1:18123,http://127.0.0.1:18124".into())
            .split(',')
            .map(|entry| {
                qoe_common::clickhouse::replica_urls(entry)
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        Stack {
            brokers,
            shards: replicas.iter().map(|r| r[0].clone()).collect(),
            replicas,
            replicated: std::env::var("QOE_TEST_REPLICATED").is_ok_and(|v| v == "1"),
        }
    }

    /// The `clickhouse.shards` entries: each shard's replicas, `|`-joined.
    pub fn shard_entries(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.join("|")).collect()
    }

    /// Kafka settings pointing at the stack's broker and `topic`.
    pub fn kafka(&self, topic: &str) -> qoe_common::config::KafkaConfig {
        qoe_common::config::KafkaConfig {
            brokers: self.brokers.clone(),
            topic: topic.to_owned(),
            dead_letter_topic: format!("{topic}.dlq"),
            ..Default::default()
        }
    }

    /// ClickHouse settings for the stack's shards and `database`.
    pub fn clickhouse(&self, database: &str) -> qoe_common::config::ClickHouseConfig {
        qoe_common::config::ClickHouseConfig {
            shards: self.shard_entries(),
            database: database.to_owned(),
            replicated: self.replicated,
            ..Default::default()
        }
    }

    /// Creates `topic` with `partitions` partitions on the stack's broker.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        create_topic(&self.brokers, topic, partitions).await
    }
}

/// Creates a topic through the Kafka admin API; panics if the broker refuses.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// A name no other test (or test run) uses: `prefix_<pid>_<n>_<millis>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{millis}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port nothing listens on right now, below the kernel's
/// ephemeral range (32768-60999 by default): a port from that range can be
/// taken, between this check and the service's own bind, as the local port
/// of any outgoing connection (a Kafka client's, say), which made a
/// service fail to start now and then.
pub fn free_port() -> u16 {
    const FIRST: u32 = 21_000;
    const COUNT: u32 = 11_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // Each process starts somewhere else in the range; each call moves on
    // by a prime stride, so ports handed out in one process do not repeat.
    let seed = *SEED.get_or_init(|| {
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
    });
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + seed.wrapping_add(n.wrapping_mul(7_919)) % COUNT;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Polls `check` every 100 ms until it returns true; panics with `what` after
/// `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// HTTP status of `GET url`, or `None` if nothing answered.
pub async fn status_of(url: &str) -> Option<u16> {
    httpc::get(url, Duration::from_secs(3))
        .await
        .ok()
        .map(|r| r.status.as_u16())
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    name: String,
}

impl Process {
    /// Starts `program` with `args` and extra `env`, output discarded unless
    /// `QOE_TEST_VERBOSE` is set.
    pub fn spawn(name: &str, program: &str, args: &[&str], env: &[(&str, String)]) -> Process {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Process::from_command(name, cmd)
    }

    /// Starts a prepared command (output discarded unless `QOE_TEST_VERBOSE`).
    pub fn from_command(name: &str, mut cmd: Command) -> Process {
        let verbose = std::env::var_os("QOE_TEST_VERBOSE").is_some();
        let out = || {
            if verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = cmd
            .stdout(out())
            .stderr(out())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child,
            name: name.to_owned(),
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private tansu broker with in-memory storage on its own port, for tests
/// that need to stop and start "the broker".
pub struct Broker {
    /// `127.0.0.1:port`.
    pub addr: String,
    port: u16,
    process: Option<Process>,
    /// Working directory of a durable (SQLite) broker; `None` = in memory.
    dir: Option<std::path::PathBuf>,
}

impl Broker {
    /// A broker address that is not running yet.
    pub fn stopped() -> Broker {
        let port = free_port();
        Broker {
            addr: format!("127.0.0.1:{port}"),
            port,
            process: None,
            dir: None,
        }
    }

    /// A broker address that is not running yet, whose records and offsets
    /// survive a stop/start (SQLite storage in a fresh directory).
    pub fn stopped_durable() -> Broker {
        let dir = std::env::temp_dir().join(unique("tansu"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        Broker {
            dir: Some(dir),
            ..Broker::stopped()
        }
    }

    /// Starts it and waits until it accepts connections.
    pub async fn start(&mut self) {
        let tansu = std::env::var("QOE_TEST_TANSU").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/qoe-pipeline/tansu-0.6.0-libsql-dynostore-postgres/bin/tansu")
        });
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = if self.dir.is_some() {
            "sqlite://tansu.db"
        } else {
            "memory://tansu/"
        };
        let mut cmd = Command::new(&tansu);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            storage,
        ]);
        if let Some(dir) = &self.dir {
            // tansu resolves a sqlite:// path against its working directory.
            cmd.current_dir(dir);
        }
        self.process = Some(Process::from_command("tansu", cmd));
        let addr = self.addr.clone();
        wait_until(
            Duration::from_secs(20),
            "the private broker to listen",
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
            },
        )
        .await;
    }

    /// Stops it.
    pub fn stop(&mut self) {
        self.process = None;
    }
}

/// A TCP forwarder in front of a real server; switching it off closes its
/// listener and every open connection, which is what a crashed or
/// partitioned server looks like to a client.
pub struct TcpProxy {
    /// The address clients use.
    pub addr: SocketAddr,
    enabled: watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts an enabled proxy on a free loopback port towards `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (enabled, rx) = watch::channel(true);
        tokio::spawn(Self::run(Some(listener), addr, target, rx));
        TcpProxy { addr, enabled }
    }

    /// Opens or closes the proxy.
    pub fn set_enabled(&self, on: bool) {
        let _ = self.enabled.send(on);
    }

    async fn run(
        mut listener: Option<TcpListener>,
        addr: SocketAddr,
        target: SocketAddr,
        mut enabled: watch::Receiver<bool>,
    ) {
        let conns: Arc<tokio::sync::Notify> = Arc::new(tokio::sync::Notify::new());
        loop {
            let Some(l) = listener.as_ref() else {
                // Closed: wait to be re-enabled, then listen on the same port.
                if enabled.changed().await.is_err() {
                    return;
                }
                if *enabled.borrow() {
                    listener = TcpListener::bind(addr).await.ok();
                }
                continue;
            };
            tokio::select! {
                changed = enabled.changed() => {
                    if changed.is_err() { return; }
                    if !*enabled.borrow() {
                        listener = None;
                        conns.notify_waiters();
                    }
                }
                accepted = l.accept() => {
                    let Ok((mut inbound, _)) = accepted else { continue };
                    let kill = conns.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = kill.notified() => {}
                        }
                    });
                }
            }
        }
    }
}

/// The `host:port` of an `http://host:port` URL.
pub fn socket_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url} is not http://ip:port: {e}"))
}

/// A service binary (`qoe-collector`, ...) started for a test, with its admin
/// listener on a free port and fast probes.
pub struct Service {
    /// The child process.
    pub process: Process,
    /// `http://127.0.0.1:<admin port>`.
    pub admin: String,
}

impl Service {
    /// Starts `bin` with `env` plus an admin listener on a free port.
    pub fn spawn(name: &str, bin: &str, env: &[(&str, String)]) -> Service {
        let port = free_port();
        let mut all = vec![
            ("QOE_ADMIN__LISTEN", format!("127.0.0.1:{port}")),
            ("QOE_ADMIN__PROBE_INTERVAL", "200ms".to_owned()),
            ("QOE_ADMIN__PROBE_TIMEOUT", "2s".to_owned()),
        ];
        all.extend(env.iter().cloned());
        Service {
            process: Process::spawn(name, bin, &[], &all),
            admin: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/readyz` says `ready` (200) or not ready (503).
    pub async fn wait_ready(&self, ready: bool, timeout: Duration) {
        let url = format!("{}/readyz", self.admin);
        let want = if ready { 200 } else { 503 };
        let what = format!("{} /readyz to answer {want}", self.process.name());
        wait_until(timeout, &what, || {
            let url = url.clone();
            async move { status_of(&url).await == Some(want) }
        })
        .await;
    }

    /// The `/readyz` JSON body.
    pub async fn readiness(&self) -> serde_json::Value {
        let reply = httpc::get(&format!("{}/readyz", self.admin), Duration::from_secs(3))
            .await
            .expect("readyz answers");
        serde_json::from_slice(&reply.body).expect("readyz is JSON")
    }

    /// Waits until `/metrics` contains `needle` (a sample line, say).
    pub async fn wait_metric(&self, needle: &str, timeout: Duration) {
        let what = format!("{} /metrics to contain {needle}", self.process.name());
        wait_until(timeout, &what, || async {
            self.metrics().await.contains(needle)
        })
        .await;
    }

    /// `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        httpc::get(&format!("{}/metrics", self.admin), Duration::from_secs(3))
            .await
            .expect("metrics answers")
            .text()
    }

    /// Its resident memory in MiB (`process_resident_memory_bytes`).
    pub async fn resident_mib(&self) -> f64 {
        let metrics = self.metrics().await;
        let bytes = metrics
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("process_resident_memory_bytes exported");
        bytes / 1048576.0
    }
}

/// Reads records from the start of `topic` with a fresh consumer group until
/// `n` arrived (panics after `timeout`), then for as long as more keep
/// coming within half a second. Returns every record read.
pub async fn consume(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    consume_weighted(brokers, topic, n, timeout, |_| 1).await
}

/// [`consume`], where each record counts `weight(record)` towards `n` (the
/// events a record holds, say).
pub async fn consume_weighted(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
    weight: impl Fn(&rdkafka::message::OwnedMessage) -> usize,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("testkit"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    let mut out = Vec::new();
    let mut got = 0;
    while got < n {
        let left = timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(msg)) => {
                let msg = msg.detach();
                got += weight(&msg);
                out.push(msg);
            }
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) => panic!("only {got} of {n} arrived on {topic} within {timeout:?}"),
        }
    }
    // Anything beyond n (duplicates) shows up quickly if it exists.
    while let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
    {
        out.push(msg.detach());
    }
    out
}
