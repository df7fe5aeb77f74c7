//! What loadgen's end-to-end tests share: a collector, a processor and an
//! api run in this process against the test stack, with their own ports,
//! spill directory and consumer group, stopped together.
#![allow(dead_code, clippy::field_reassign_with_default)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qoe_common::config::{ClickHouseConfig, KafkaConfig};
use qoe_testkit::{free_port, unique, wait_until, Stack};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod origin;
pub mod page;

/// The services' settings, for a test to adjust before [`Pipeline::start`].
pub struct Settings {
    pub collector: qoe_collector::CollectorConfig,
    pub processor: qoe_processor::ProcessorConfig,
    pub api: qoe_api::ApiConfig,
}

/// The api's read token for every property of [`Settings::new`].
pub const READ_TOKEN_PREFIX: &str = "testreadtoken-";

impl Settings {
    /// Settings on the test stack: a fresh topic (4 partitions) and
    /// migrated database named after `name`, and a fresh property that
    /// ingest key `key` sends to (returned beside them).
    pub async fn on_test_stack(name: &str, key: &str) -> (Settings, String) {
        let stack = Stack::from_env();
        let topic = unique(name);
        stack.create_topic(&topic, 4).await;
        let clickhouse = stack.clickhouse(&unique(name));
        qoe_schema::migrate::apply(&clickhouse, qoe_schema::migrations::ALL)
            .await
            .expect("migrate");
        let property = unique("prop");
        let properties = BTreeMap::from([(key.to_owned(), property.clone())]);
        let settings = Settings::new(stack.kafka(&topic), clickhouse, properties);
        (settings, property)
    }

    /// A collector taking `properties` (ingest key → property) into
    /// `kafka`, and a processor writing it to `clickhouse`, on free ports.
    pub fn new(
        kafka: KafkaConfig,
        clickhouse: ClickHouseConfig,
        properties: BTreeMap<String, String>,
    ) -> Settings {
        let mut collector = qoe_collector::CollectorConfig::default();
        collector.kafka = kafka.clone();
        collector.http.listen = ([127, 0, 0, 1], free_port()).into();
        collector.admin.listen = ([127, 0, 0, 1], free_port()).into();
        collector.properties = properties;
        // Its own spill directory: another test's must not be replayed here.
        collector.producer.spill_dir = std::env::temp_dir().join(unique("spill"));
        let mut processor = qoe_processor::ProcessorConfig::default();
        processor.kafka = kafka;
        processor.clickhouse = clickhouse;
        processor.admin.listen = ([127, 0, 0, 1], free_port()).into();
        processor.processor.group = unique("group");
        processor.processor.batch_interval = Duration::from_millis(200);
        let mut api = qoe_api::ApiConfig::default();
        api.clickhouse = processor.clickhouse.clone();
        api.http.listen = ([127, 0, 0, 1], free_port()).into();
        api.admin.listen = ([127, 0, 0, 1], free_port()).into();
        api.read_tokens = collector
            .properties
            .values()
            .map(|p| (format!("{READ_TOKEN_PREFIX}{p}"), p.clone()))
            .collect();
        Settings {
            collector,
            processor,
            api,
        }
    }

    /// The api's base URL and the read token of `property`.
    pub fn api_for(&self, property: &str) -> (String, String) {
        (
            format!("http://{}", self.api.http.listen),
            format!("{READ_TOKEN_PREFIX}{property}"),
        )
    }

    /// The collector's ingest URL, `http://127.0.0.1:<port>`.
    pub fn ingest_url(&self) -> String {
        format!("http://{}", self.collector.http.listen)
    }

    /// The admin URLs, collector then processor.
    pub fn admin_urls(&self) -> [String; 2] {
        [
            format!("http://{}", self.collector.admin.listen),
            format!("http://{}", self.processor.admin.listen),
        ]
    }

    fn api_admin_url(&self) -> String {
        format!("http://{}", self.api.admin.listen)
    }
}

/// A running collector and processor.
pub struct Pipeline {
    stop: watch::Sender<bool>,
    services: Vec<JoinHandle<bool>>,
}

impl Pipeline {
    /// Starts both and waits until both are ready.
    pub async fn start(settings: Settings) -> Pipeline {
        let mut admin = settings.admin_urls().to_vec();
        admin.push(settings.api_admin_url());
        let (stop, rx) = watch::channel(false);
        let Settings {
            collector,
            processor,
            api,
        } = settings;
        // A service that stops while starting (a port taken, say) is
        // named with its error, instead of timing out as "not ready".
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let watch =
            |name: &'static str, run: Pin<Box<dyn Future<Output = Result<(), String>> + Send>>| {
                let failures = failures.clone();
                tokio::spawn(async move {
                    let outcome = run.await;
                    if let Err(e) = &outcome {
                        failures.lock().unwrap().push(format!("{name}: {e}"));
                    }
                    outcome.is_ok()
                })
            };
        let services = vec![
            watch("collector", {
                let rx = rx.clone();
                Box::pin(async move {
                    qoe_collector::run(collector, until(rx))
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
            watch("processor", {
                let rx = rx.clone();
                Box::pin(async move {
                    qoe_processor::run(processor, until(rx))
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
            watch(
                "api",
                Box::pin(async move {
                    qoe_api::run(api, until(rx))
                        .await
                        .map_err(|e| e.to_string())
                }),
            ),
        ];
        for url in admin {
            let ready = format!("{url}/readyz");
            wait_until(Duration::from_secs(60), "services ready", || {
                let url = ready.clone();
                let failed = failures.lock().unwrap().clone();
                async move {
                    assert!(
                        failed.is_empty(),
                        "a service stopped while starting: {failed:?}"
                    );
                    qoe_common::httpc::get(&url, Duration::from_secs(1))
                        .await
                        .is_ok_and(|r| r.status == 200)
                }
            })
            .await;
        }
        Pipeline { stop, services }
    }

    /// Stops both; whether both stopped cleanly.
    pub async fn stop(self) -> bool {
        let _ = self.stop.send(true);
        let mut clean = true;
        for service in self.services {
            clean &= service.await.unwrap_or(false);
        }
        clean
    }
}

/// Resolves once `rx` says stop: a service's shutdown signal.
pub async fn until(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
