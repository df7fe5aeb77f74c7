//! `qoe-loadgen plan`: sizes every tier for an audience from the figures
//! measured on this project's machine. Each per-core input is read from a
//! named row of `docs/benchmarks.md` (so a new measurement changes the plan
//! with no code change), and the arithmetic is printed next to the answer
//! so an SRE can check it before an event.

use std::fmt::Write as _;
use std::time::Duration;

/// What can go wrong reading the measured figures.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("docs/benchmarks.md has no section starting `## {0}`")]
    NoSection(String),
    #[error("section `{section}` has no table row starting `{row}`")]
    NoRow { section: String, row: String },
    #[error("section `{section}`: no column `{column}` in the table holding row `{row}`")]
    NoColumn {
        section: String,
        row: String,
        column: String,
    },
    #[error("section `{section}`, row `{row}`, column `{column}`: `{cell}` holds no number")]
    NotANumber {
        section: String,
        row: String,
        column: String,
        cell: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One measured input and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub value: f64,
    /// `§ section, row …, column …`.
    pub source: String,
}

/// Where each input is read in `docs/benchmarks.md`: (section heading
/// prefix, first cell of the row, column header).
const EVENTS: (&str, &str, &str) = ("End-to-end load", "run (while", "events/s");
const EVENTS_VIEWERS: (&str, &str, &str) = ("End-to-end load", "run (while", "viewers");
const COLLECTOR: (&str, &str, &str) = (
    "Collector ingest on loopback",
    "collector K=1, single",
    "requests/s",
);
const PROCESSOR: (&str, &str, &str) = ("Processor throughput to ClickHouse", "*", "per CPU-second");
const CLICKHOUSE: (&str, &str, &str) =
    ("Processor throughput to ClickHouse", "*", "ceiling rows/s");
const BROKER: (&str, &str, &str) = ("Broker storage engines", "sqlite | no", "records/s");
const CLICKHOUSE_BYTES: (&str, &str, &str) = (
    "Storage per event",
    "ClickHouse, all tables",
    "bytes per event",
);
const BROKER_BYTES: (&str, &str, &str) = (
    "Storage per event",
    "broker (tansu SQLite)",
    "bytes per event",
);

/// The measured inputs of a plan.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Events per second one simulated viewer sends (10 s heartbeats plus
    /// state changes), from the end-to-end run.
    pub events_per_viewer: Figure,
    /// Single-event requests per second one collector core answers.
    pub collector_per_core: Figure,
    /// Heartbeats per second per processor core (the slowest run).
    pub processor_per_core: Figure,
    /// Rows per second one ClickHouse core inserts, materialized views
    /// included (the slowest run; ClickHouse 18.16).
    pub clickhouse_per_core: Figure,
    /// Records per second one broker core takes (tansu SQLite, the one
    /// durable broker measured here; no replication).
    pub broker_per_core: Figure,
    /// Bytes on ClickHouse's disk per event, all tables, one replica.
    pub clickhouse_bytes: Figure,
    /// Bytes on the broker's disk per event, one copy.
    pub broker_bytes: Figure,
}

impl Inputs {
    /// Reads every input from the text of `docs/benchmarks.md`.
    pub fn from_benchmarks(markdown: &str) -> Result<Inputs, PlanError> {
        let events = read(markdown, EVENTS, Pick::First)?;
        let viewers = read(markdown, EVENTS_VIEWERS, Pick::First)?;
        if viewers.value <= 0.0 {
            return Err(PlanError::Invalid(format!(
                "{}: no viewers",
                viewers.source
            )));
        }
        Ok(Inputs {
            events_per_viewer: Figure {
                value: events.value / viewers.value,
                source: format!(
                    "{} ({}) ÷ {} ({})",
                    events.value, events.source, viewers.value, viewers.source
                ),
            },
            collector_per_core: read(markdown, COLLECTOR, Pick::First)?,
            processor_per_core: read(markdown, PROCESSOR, Pick::Min)?,
            clickhouse_per_core: read(markdown, CLICKHOUSE, Pick::Min)?,
            broker_per_core: read(markdown, BROKER, Pick::First)?,
            clickhouse_bytes: read(markdown, CLICKHOUSE_BYTES, Pick::First)?,
            broker_bytes: read(markdown, BROKER_BYTES, Pick::First)?,
        })
    }
}

/// Which row when a row pattern is `*` (every row of the table).
#[derive(Clone, Copy)]
enum Pick {
    First,
    Min,
}

fn read(markdown: &str, at: (&str, &str, &str), pick: Pick) -> Result<Figure, PlanError> {
    let (section, row, column) = at;
    let body = section_body(markdown, section)?;
    let cells = table_cells(body, row, column).ok_or_else(|| {
        if body.lines().any(|l| row_matches(l, row)) {
            PlanError::NoColumn {
                section: section.into(),
                row: row.into(),
                column: column.into(),
            }
        } else {
            PlanError::NoRow {
                section: section.into(),
                row: row.into(),
            }
        }
    })?;
    let mut values = Vec::new();
    for cell in &cells {
        let value = number(cell).ok_or_else(|| PlanError::NotANumber {
            section: section.into(),
            row: row.into(),
            column: column.into(),
            cell: cell.clone(),
        })?;
        values.push((value, cell.clone()));
    }
    let (value, cell) = match pick {
        Pick::First => values[0].clone(),
        Pick::Min => values
            .iter()
            .cloned()
            .fold((f64::INFINITY, String::new()), |a, b| {
                if b.0 < a.0 {
                    b
                } else {
                    a
                }
            }),
    };
    let which = match (pick, row) {
        (Pick::Min, "*") => format!("lowest of {} rows", values.len()),
        _ => format!("row `{row}`"),
    };
    Ok(Figure {
        value,
        source: format!("§ {section}, {which}, column `{column}`: `{cell}`"),
    })
}

/// The text under the first `## <prefix>…` heading, up to the next `## `.
fn section_body<'a>(markdown: &'a str, prefix: &str) -> Result<&'a str, PlanError> {
    let start = markdown
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| markdown[i + 3..].starts_with(prefix))
        .ok_or_else(|| PlanError::NoSection(prefix.into()))?;
    let rest = &markdown[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    Ok(&rest[..end])
}

fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// A row matches `pattern` when its first cells, joined by ` | `, start
/// with it; `*` matches every data row.
fn row_matches(line: &str, pattern: &str) -> bool {
    let line = line.trim();
    if !line.starts_with('|') || line.starts_with("| ---") {
        return false;
    }
    pattern == "*" || split_row(line).join(" | ").starts_with(pattern)
}

/// The `column` cell of each row matching `row`, in the first table that
/// has such a row and that column.
fn table_cells(body: &str, row: &str, column: &str) -> Option<Vec<String>> {
    let mut header: Option<Vec<String>> = None;
    let mut found = Vec::new();
    for line in body.lines() {
        let is_table = line.trim_start().starts_with('|');
        if !is_table {
            if !found.is_empty() {
                return Some(found);
            }
            header = None;
            continue;
        }
        if header.is_none() {
            header = Some(split_row(line));
            continue;
        }
        if line.trim_start().starts_with("| ---") {
            continue;
        }
        let Some(index) = header.as_ref()?.iter().position(|h| h == column) else {
            continue;
        };
        if row_matches(line, row) {
            if let Some(cell) = split_row(line).get(index) {
                found.push(cell.clone());
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

/// The first number of a cell: `79.9 k` → 79 900, `326 797` → 326 797,
/// `9 963 at 80 k` → 9 963, `1.2 M` → 1 200 000. Spaces group thousands.
pub fn number(cell: &str) -> Option<f64> {
    let cell = cell.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut digits = String::new();
    let mut chars = cell.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() || c == '.' {
            digits.push(c);
            chars.next();
        } else if c == ' ' {
            // A space followed by three digits continues the number.
            let ahead: String = chars.clone().skip(1).take(4).collect();
            let three = ahead.len() >= 3 && ahead[..3].chars().all(|d| d.is_ascii_digit());
            let fourth_ends = ahead.chars().nth(3).is_none_or(|d| !d.is_ascii_digit());
            if three && fourth_ends && !digits.contains('.') {
                chars.next();
            } else {
                break;
            }
        } else {
            break;
        }
    }
    let value: f64 = digits.parse().ok()?;
    let rest: String = chars.collect();
    let multiplier = match rest.split_whitespace().next() {
        Some("k") => 1e3,
        Some("M") => 1e6,
        _ => 1.0,
    };
    Some(value * multiplier)
}

/// What the plan is for (`qoe-loadgen plan`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct Audience {
    /// Concurrent viewers at the peak.
    #[arg(long)]
    pub viewers: u64,
    /// The players' heartbeat interval (the measured viewers send every 10 s).
    #[arg(long, default_value = "10s", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub interval: Duration,
    /// Capacity over the expected peak (1.5 = 50 % more).
    #[arg(long, default_value_t = 1.5)]
    pub headroom: f64,
    /// ClickHouse replicas per shard.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Kafka replication factor (also the fewest brokers).
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Cores of one ClickHouse server.
    #[arg(long, default_value_t = 16)]
    pub cores_per_shard: u32,
    /// Cores of one collector pod and of one processor pod.
    #[arg(long, default_value_t = 1)]
    pub cores_per_pod: u32,
    /// Cores of one Kafka broker.
    #[arg(long, default_value_t = 8)]
    pub cores_per_broker: u32,
    /// Days the heartbeat topic keeps records.
    #[arg(long, default_value_t = 1.0)]
    pub kafka_retention_days: f64,
}

/// The sizes, and the arithmetic that gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub events_per_s: f64,
    pub planned_events_per_s: f64,
    pub collector_cores: u64,
    pub collector_pods: u64,
    pub brokers: u64,
    pub partitions: u64,
    pub processor_cores: u64,
    pub processor_pods: u64,
    pub clickhouse_cores: u64,
    pub shards: u64,
    pub clickhouse_servers: u64,
    pub clickhouse_bytes_per_day: f64,
    pub kafka_bytes: f64,
    /// Human-readable lines: each figure, its formula and its inputs.
    pub text: String,
}

fn ceil(x: f64) -> u64 {
    x.ceil().max(0.0) as u64
}

/// Sizes each tier for `audience` from `inputs`.
pub fn plan(inputs: &Inputs, audience: &Audience) -> Result<Plan, PlanError> {
    if audience.viewers == 0 || audience.interval.is_zero() || audience.headroom < 1.0 {
        return Err(PlanError::Invalid(
            "--viewers must be > 0, --interval > 0 and --headroom ≥ 1".into(),
        ));
    }
    if audience.replicas == 0
        || audience.replication_factor == 0
        || audience.cores_per_shard == 0
        || audience.cores_per_pod == 0
        || audience.cores_per_broker == 0
    {
        return Err(PlanError::Invalid(
            "--replicas, --replication-factor and the --cores-per-* options must be > 0".into(),
        ));
    }
    let i = inputs;
    let mut t = String::new();
    let interval_s = audience.interval.as_secs_f64();
    // The measured viewers heartbeat every 10 s; events scale with 1/interval.
    let per_viewer = i.events_per_viewer.value * 10.0 / interval_s;
    let events = audience.viewers as f64 * per_viewer;
    let planned = events * audience.headroom;
    let _ = writeln!(t, "Inputs (docs/benchmarks.md):");
    for (name, f) in [
        ("events/s per viewer at 10 s", &i.events_per_viewer),
        ("collector requests/s per core", &i.collector_per_core),
        ("processor heartbeats/s per core", &i.processor_per_core),
        ("ClickHouse rows/s per core", &i.clickhouse_per_core),
        ("broker records/s per core", &i.broker_per_core),
        ("ClickHouse bytes per event", &i.clickhouse_bytes),
        ("broker bytes per event", &i.broker_bytes),
    ] {
        let _ = writeln!(t, "  {name:<34} {:>10}  {}", figure(f.value), f.source);
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "Load: {} viewers × {:.4} events/s (× 10 s / {} s interval) = {:.0} events/s; × {} headroom = {:.0} events/s planned",
        audience.viewers, i.events_per_viewer.value, interval_s, events, audience.headroom, planned
    );

    // Collectors: one request per event, single posts (the costliest
    // shape; SDK batches cost less per event).
    let collector_cores = ceil(planned / i.collector_per_core.value);
    let collector_pods = ceil(collector_cores as f64 / audience.cores_per_pod as f64);
    let _ = writeln!(
        t,
        "Collectors: {planned:.0} ÷ {:.0} requests/s per core = {collector_cores} cores = {collector_pods} pods of {} core(s)",
        i.collector_per_core.value, audience.cores_per_pod
    );

    // Brokers: one record per request; at least the replication factor.
    let rf = audience.replication_factor as u64;
    let broker_cores = ceil(planned / i.broker_per_core.value);
    let brokers = ceil(broker_cores as f64 / audience.cores_per_broker as f64).max(rf);
    let _ = writeln!(
        t,
        "Kafka: {planned:.0} records/s ÷ {:.0} per core = {broker_cores} cores ÷ {} per broker = {brokers} brokers (at least the replication factor {rf})",
        i.broker_per_core.value, audience.cores_per_broker
    );
    // Processors, then partitions: twice the processors (room to scale
    // out past the plan), a multiple of the brokers so leaders spread
    // evenly.
    let processor_cores = ceil(planned / i.processor_per_core.value);
    let processor_pods = ceil(processor_cores as f64 / audience.cores_per_pod as f64).max(1);
    let partitions = ceil((2 * processor_pods) as f64 / brokers as f64) * brokers;
    let _ = writeln!(
        t,
        "Processors: {planned:.0} ÷ {:.0} heartbeats/s per core = {processor_cores} cores = {processor_pods} pods; partitions: 2 × {processor_pods} rounded up to a multiple of {brokers} brokers = {partitions} (the processors' KEDA maxReplicaCount)",
        i.processor_per_core.value
    );

    // ClickHouse: each event is one row through the measured tables and
    // materialized views; every replica inserts every row of its shard.
    let clickhouse_cores = ceil(planned / i.clickhouse_per_core.value);
    let shards = ceil(clickhouse_cores as f64 / audience.cores_per_shard as f64).max(1);
    let servers = shards * audience.replicas as u64;
    let _ = writeln!(
        t,
        "ClickHouse: {planned:.0} rows/s ÷ {:.0} per core = {clickhouse_cores} cores ÷ {} per server = {shards} shards × {} replicas = {servers} servers ({} cores)",
        i.clickhouse_per_core.value,
        audience.cores_per_shard,
        audience.replicas,
        servers * audience.cores_per_shard as u64
    );

    // Disk: the expected peak (no headroom) held for 24 hours, an upper
    // bound for a day of the event.
    let per_day = events * 86_400.0;
    let clickhouse_day = per_day * i.clickhouse_bytes.value * audience.replicas as f64;
    let kafka_bytes = per_day * audience.kafka_retention_days * i.broker_bytes.value * rf as f64;
    let _ = writeln!(
        t,
        "Disk: {per_day:.3e} events/day × {:.0} B × {} replicas = {} per day in ClickHouse ({} per server);",
        i.clickhouse_bytes.value,
        audience.replicas,
        bytes(clickhouse_day),
        bytes(clickhouse_day / servers as f64)
    );
    let _ = writeln!(
        t,
        "      × {:.0} B × replication {rf} × {} day(s) retention = {} on the brokers ({} per broker)",
        i.broker_bytes.value,
        audience.kafka_retention_days,
        bytes(kafka_bytes),
        bytes(kafka_bytes / brokers as f64)
    );
    Ok(Plan {
        events_per_s: events,
        planned_events_per_s: planned,
        collector_cores,
        collector_pods,
        brokers,
        partitions,
        processor_cores,
        processor_pods,
        clickhouse_cores,
        shards,
        clickhouse_servers: servers,
        clickhouse_bytes_per_day: clickhouse_day,
        kafka_bytes,
        text: t,
    })
}

fn figure(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.4}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: &str = "# Benchmarks\n\n## Collector ingest on loopback (`collector`)\n\n| configuration | requests/s | events/s |\n| --- | --- | --- |\n| nginx return 204 | 124.7–134.3 k | — |\n| collector K=1, single | 80 k | 80 k |\n\n## Processor throughput to ClickHouse (`processor`)\n\n| heartbeats | per CPU-second | ceiling rows/s |\n| --- | --- | --- |\n| 2 000 000 | 300 000 | 90 000 |\n| 2 000 000 | 250 000 | 100 000 |\n\n## Broker storage engines\n\n| engine | header | records/s |\n| --- | --- | --- |\n| memory | no | 241 874 |\n| sqlite | no | 50 000 |\n\n## End-to-end load (`loadgen`)\n\n| run | viewers | events/s |\n| --- | --- | --- |\n| run (while x) | 50 000 for 5 min | 5 000 |\n\n## Storage per event\n\n| store | bytes per event |\n| --- | --- |\n| ClickHouse, all tables | 100 |\n| broker (tansu SQLite) | 500 |\n";

    fn audience(viewers: u64, interval_s: u64, headroom: f64) -> Audience {
        Audience {
            viewers,
            interval: Duration::from_secs(interval_s),
            headroom,
            replicas: 2,
            replication_factor: 3,
            cores_per_shard: 8,
            cores_per_pod: 1,
            cores_per_broker: 1,
            kafka_retention_days: 1.0,
        }
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number("79.9 k"), Some(79_900.0));
        assert_eq!(number("326 797"), Some(326_797.0));
        assert_eq!(number("9 963 at 80 k"), Some(9_963.0));
        assert_eq!(number("50 000 for 5 min"), Some(50_000.0));
        assert_eq!(number("1.2 M"), Some(1_200_000.0));
        assert_eq!(number("2 015 rows"), Some(2_015.0));
        assert_eq!(number("—"), None);
    }

    #[test]
    fn inputs_come_from_named_rows() {
        let i = Inputs::from_benchmarks(BENCH).unwrap();
        assert_eq!(i.collector_per_core.value, 80_000.0);
        assert!(i
            .collector_per_core
            .source
            .contains("collector K=1, single"));
        assert_eq!(i.processor_per_core.value, 250_000.0);
        assert!(i.processor_per_core.source.contains("lowest of 2 rows"));
        assert_eq!(i.clickhouse_per_core.value, 90_000.0);
        assert_eq!(i.broker_per_core.value, 50_000.0);
        assert_eq!(i.events_per_viewer.value, 0.1);
        assert_eq!(i.clickhouse_bytes.value, 100.0);
    }

    #[test]
    fn a_missing_row_names_what_is_missing() {
        let text = BENCH.replace("collector K=1, single", "collector K=2");
        let err = Inputs::from_benchmarks(&text).unwrap_err().to_string();
        assert!(err.contains("collector K=1, single"), "{err}");
        let text = BENCH.replace("## Storage per event", "## Storage");
        let err = Inputs::from_benchmarks(&text).unwrap_err().to_string();
        assert!(err.contains("Storage per event"), "{err}");
    }

    #[test]
    fn the_arithmetic_sizes_each_tier() {
        let i = Inputs::from_benchmarks(BENCH).unwrap();
        let p = plan(&i, &audience(1_000_000, 10, 1.5)).unwrap();
        // 1 M × 0.1 = 100 k events/s, 150 k planned.
        assert_eq!(p.events_per_s, 100_000.0);
        assert_eq!(p.planned_events_per_s, 150_000.0);
        assert_eq!(p.collector_cores, 2); // 150 k ÷ 80 k
        assert_eq!(p.processor_cores, 1); // 150 k ÷ 250 k
        assert_eq!(p.brokers, 3); // 150 k ÷ 50 k = 3, ≥ rf
        assert_eq!(p.partitions, 3); // 2 × 1 processor, rounded to 3 brokers
        assert_eq!(p.clickhouse_cores, 2); // 150 k ÷ 90 k
        assert_eq!(p.shards, 1);
        assert_eq!(p.clickhouse_servers, 2);
        // 100 k × 86 400 × 100 B × 2 replicas.
        assert_eq!(p.clickhouse_bytes_per_day, 1.728e12);
        assert!(p.text.contains("collector K=1, single"), "{}", p.text);
        // Shorter heartbeats mean more events.
        let fast = plan(&i, &audience(1_000_000, 5, 1.0)).unwrap();
        assert_eq!(fast.events_per_s, 200_000.0);
    }

    #[test]
    fn the_project_benchmarks_hold_every_input() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
        let text = std::fs::read_to_string(path).unwrap();
        let i = Inputs::from_benchmarks(&text).unwrap();
        assert!(i.events_per_viewer.value > 0.01 && i.events_per_viewer.value < 1.0);
        assert!(i.collector_per_core.value > 1_000.0);
    }
}
