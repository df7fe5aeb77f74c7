//! `qoe-collector`: the edge. Player SDKs post beacons; the collector
//! validates and enriches them and puts them in a bounded channel that K
//! drain workers produce into Kafka.
//!
//! How data moves:
//! 1. [`http`] accepts connections (capped) on the ingest listener and, if
//!    configured, the mux-embed one, and hands each request to
//!    [`ingest::Ingest::handle`]: [`route`] (listener and path → format) →
//!    key → content type → bounded body (gzip capped) → decode and
//!    validate (`schema::validate`, `schema::cmcd` or `schema::mux`) →
//!    per-property rate limit ([`shed`]) → [`enrich`] (country, ASN, OS,
//!    browser, device).
//! 2. The accepted events become Kafka records, one per view
//!    (`schema::record::Record::group`); [`channel`] reserves room for all of
//!    them in the backlog (all or nothing: a full backlog is a 503 with
//!    `Retry-After`), serializes them, appends them to the [`journal`] (so a
//!    kill loses nothing acknowledged) and enqueues each record on the
//!    worker its `view_id` hashes to. Only then is the request answered.
//! 3. [`producer`]'s workers hand the records to one rdkafka producer,
//!    keyed by `view_id`; acknowledgements release the backlog and the
//!    journal, failed deliveries go to [`retry`] and are produced again
//!    (still holding their room).
//!
//! On SIGTERM: `/readyz` turns 503, the listener closes, in-flight requests
//! finish, the channel is drained into Kafka and every delivery report is
//! awaited (bounded by `producer.shutdown_deadline`); what is undelivered
//! then is written to the [`spill`] directory, which the next start reads
//! back and produces again before deleting it. After a kill, the next start
//! does the same with the journal segments left there.

pub mod channel;
pub mod config;
pub mod enrich;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod producer;
pub mod retry;
pub mod route;
pub mod shed;
pub mod spill;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use config::CollectorConfig;

/// Why the collector stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
    /// The Kafka client could not be created from the configuration.
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An enrichment database could not be opened.
    #[error("enrichment (configuration keys `ingest.geo_db`, `ingest.asn_db`): {0}")]
    Enrich(#[from] enrich::OpenError),
    /// The spill directory could not be read (a damaged file is named).
    #[error("spill directory (configuration key `producer.spill_dir`): {0}")]
    Spill(#[from] spill::SpillError),
    /// The journal could not be opened.
    #[error("cannot open the journal in {dir} (configuration keys `producer.spill_dir`, `producer.journal`): {source}")]
    Journal {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An ingest listener could not bind.
    #[error("cannot listen on {addr} (configuration key `{key}`): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        key: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the collector until `shutdown` resolves, then drains.
pub async fn run(
    cfg: CollectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CollectorError> {
    let enricher = enrich::Enricher::open(
        cfg.ingest.geo_db.as_deref(),
        cfg.ingest.asn_db.as_deref(),
        &cfg.ingest.trusted_proxies,
    )?;
    let spill_dir = &cfg.producer.spill_dir;
    let _lock = spill::lock(spill_dir)?;
    // What an earlier run left (spill files, journal segments), read before
    // this run's journal adds its own.
    let left = spill::load(spill_dir)?;
    let journal = if cfg.producer.journal {
        Some(
            journal::Journal::open(spill_dir).map_err(|source| CollectorError::Journal {
                dir: spill_dir.clone(),
                source,
            })?,
        )
    } else {
        None
    };
    let rotating = journal
        .as_ref()
        .map(|j| j.start_rotating(cfg.producer.journal_rotate));
    let backlog = channel::Backlog::new(cfg.producer.channel_capacity);
    let workers = cfg.producer.worker_count();
    let (channel, receivers) = channel::Channel::new(workers, backlog.clone(), journal.clone());
    let drain = producer::Drain::start(
        &cfg.kafka,
        &cfg.producer,
        receivers,
        backlog,
        journal.clone(),
    )?;
    let spilled = replay_spill(spill_dir, left, &drain);
    let probes = vec![
        qoe_common::kafka::probe(&cfg.kafka, vec![cfg.kafka.topic.clone()])?,
        drain.probe(cfg.kafka.topic.clone()),
    ];
    // Listening before the admin side can say ready: ready means a
    // client's connection is taken.
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|source| CollectorError::Listen {
            addr: cfg.http.listen,
            key: "http.listen",
            source,
        })?;
    let mux_listener = match cfg.mux_embed.listen {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CollectorError::Listen {
                    addr,
                    key: "mux_embed.listen",
                    source,
                })?,
        ),
    };
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    let ingest = Arc::new(ingest::Ingest::new(&cfg, channel, enricher));
    let probe = {
        let ingest = ingest.clone();
        tokio::spawn(async move { ingest.probe_overload().await })
    };
    tracing::info!(
        addr = %listener.local_addr().unwrap_or(cfg.http.listen),
        workers,
        capacity = cfg.producer.channel_capacity,
        topic = %cfg.kafka.topic,
        "collector accepting beacons"
    );

    // The shutdown deadline counts from the signal.
    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let health = admin.health.clone();
    let mark = signalled.clone();
    // Both listeners stop on the one signal.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let on_signal = async move {
        shutdown.await;
        *mark.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        health.set_draining();
        let _ = stop.send(true);
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
    };
    let budget = cfg.producer.shutdown_deadline;
    let deadline = move || {
        signalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(Instant::now)
            + budget
    };
    let mux_served = mux_listener.map(|listener| {
        tracing::info!(
            addr = %listener.local_addr().unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            path = cfg.mux_embed.path(),
            "collector accepting mux-embed beacons"
        );
        let (ingest, http_cfg, deadline) = (ingest.clone(), cfg.http.clone(), deadline.clone());
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let on_stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            http::serve(
                listener,
                ingest::Listener::MuxEmbed,
                ingest,
                &http_cfg,
                on_stop,
                &deadline,
            )
            .await;
        })
    });
    http::serve(
        listener,
        ingest::Listener::Ingest,
        ingest.clone(),
        &cfg.http,
        on_signal,
        &deadline,
    )
    .await;
    if let Some(served) = mux_served {
        let _ = served.await;
    }

    probe.abort();
    let _ = probe.await;
    ingest.close();
    drop(ingest);
    let until = deadline();
    let report = tokio::task::spawn_blocking(move || drain.finish(until))
        .await
        .unwrap_or_else(|_| producer::DrainReport {
            lost: usize::MAX,
            ..Default::default()
        });
    // The old spill files and this run's journal are delivered, or their
    // undelivered records are in the new spill file: either way they are
    // done with. If the spill file could not be written, the journal keeps
    // every record for the next start.
    if report.lost == 0 {
        spilled.remove_all();
    }
    if let Some(journal) = &journal {
        if report.lost == 0 {
            journal.retire();
        } else {
            journal.keep();
        }
    }
    if let Some(rotating) = rotating {
        let _ = rotating.join();
    }
    if report.spilled == 0 && report.lost == 0 {
        tracing::info!(
            delivered = report.delivered,
            "collector stopped: every accepted record delivered"
        );
    } else if report.lost == 0 {
        tracing::warn!(
            delivered = report.delivered,
            spilled = report.spilled,
            file = %report.spill_file.as_deref().unwrap_or(std::path::Path::new("")).display(),
            "collector stopped: records undelivered by the deadline are in the spill file and are produced at the next start"
        );
    } else if journal.is_some() {
        tracing::error!(
            delivered = report.delivered,
            undelivered = report.lost,
            dir = %spill_dir.display(),
            "collector stopped without writing its spill file: the journal segments keep every accepted record and the next start produces them"
        );
    } else {
        tracing::error!(
            delivered = report.delivered,
            lost = report.lost,
            "collector stopped with accepted records neither delivered nor spilled"
        );
    }
    admin.stop().await;
    Ok(())
}

/// The spill files an earlier stop left, being produced again.
#[derive(Clone)]
struct Spilled {
    files: Arc<Mutex<Vec<std::path::PathBuf>>>,
}

impl Spilled {
    fn remove_all(&self) {
        for path in self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if let Err(err) = spill::remove(&path) {
                tracing::error!(error = %err, "cannot remove a replayed spill file; its records will be produced again (duplicates are harmless downstream)");
            }
        }
    }
}

/// Hands what an earlier run left (`loaded`: spill files and journal
/// segments) to the producer, and deletes the files once the broker
/// acknowledged all of it.
fn replay_spill(
    dir: &std::path::Path,
    loaded: Vec<(std::path::PathBuf, Vec<spill::Frame>)>,
    drain: &producer::Drain,
) -> Spilled {
    let files: Vec<_> = loaded.iter().map(|(path, _)| path.clone()).collect();
    let frames: Vec<_> = loaded.into_iter().flat_map(|(_, frames)| frames).collect();
    let spilled = Spilled {
        files: Arc::new(Mutex::new(files)),
    };
    if frames.is_empty() {
        // Empty journal segments of a run that accepted nothing.
        spilled.remove_all();
        return spilled;
    }
    let events: usize = frames.iter().map(|f| f.events).sum();
    tracing::info!(
        files = spilled.files.lock().map(|f| f.len()).unwrap_or(0),
        records = frames.len(),
        events,
        dir = %dir.display(),
        "producing the records an earlier run spilled or journaled"
    );
    drain.replay(frames);
    let outstanding = drain.replay_outstanding();
    let done = spilled.clone();
    tokio::spawn(async move {
        while outstanding.load(std::sync::atomic::Ordering::Acquire) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        done.remove_all();
        tracing::info!(events, "replayed records delivered; their files removed");
    });
    spilled
}
