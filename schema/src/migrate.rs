//! Versioned ClickHouse migrations, applied to every shard.
//!
//! Migrations are `.sql` files under `schema/migrations/`, compiled into the
//! binary. A migration either has one file for every server (`NNNN_name.sql`)
//! or one per server generation (`NNNN_name.v18.sql` for ClickHouse 18.x-19.x,
//! `NNNN_name.current.sql` for 20.x and later); which one runs is decided per
//! shard by `SELECT version()`.
//!
//! Each shard records what it applied in `<database>.schema_migrations`
//! (version, name, variant, checksum). Applying is idempotent: recorded
//! versions are skipped, and every statement is written `IF NOT EXISTS` so a
//! migration interrupted halfway can simply run again. A recorded migration
//! whose file changed since is an error — edit history by adding a migration.
//!
//! Statements are separated by a `;` at the end of a line. `{database}` and
//! `{cluster}` in the text are replaced by the configured names. There is no
//! `ON CLUSTER` (it needs ZooKeeper/Keeper); the tool visits each shard.

use std::fmt;

use clickhouse::Client;
use serde::Deserialize;

use qoe_common::clickhouse::{replica_urls, server_client};
use qoe_common::config::ClickHouseConfig;

/// Server generations whose DDL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// ClickHouse 18.x and 19.x (the Debian package is 18.16): no TTL, no
    /// codecs, no `SimpleAggregateFunction`, no `insert_deduplication_token`.
    V18,
    /// ClickHouse 20.x and later.
    Current,
}

impl Variant {
    /// The variant for a `SELECT version()` answer such as `18.16.1` or
    /// `24.8.4.13`.
    pub fn for_version(version: &str) -> Result<Variant, MigrateError> {
        let major: u32 = version
            .trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| MigrateError::Version(version.to_owned()))?;
        Ok(if major < 20 {
            Variant::V18
        } else {
            Variant::Current
        })
    }

    /// Placeholders whose text differs between server generations:
    /// `{lowcard}` (a dictionary-encoded string type; experimental on 18.x,
    /// so plain `String` there), `{raw_ttl}` and `{live_ttl}` (raw
    /// heartbeat and live-bucket retention; 18.x has no TTL) and
    /// `{add_column}` (18.x has no `IF NOT EXISTS` there; an existing
    /// column is then tolerated on a re-run).
    pub fn substitutions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Variant::V18 => &[
                ("{lowcard}", "String"),
                ("{raw_ttl}", ""),
                ("{live_ttl}", ""),
                ("{add_column}", "ADD COLUMN"),
            ],
            Variant::Current => &[
                ("{lowcard}", "LowCardinality(String)"),
                ("{raw_ttl}", "TTL received_at + INTERVAL 3 DAY"),
                ("{live_ttl}", "TTL bucket + INTERVAL 2 DAY"),
                ("{add_column}", "ADD COLUMN IF NOT EXISTS"),
            ],
        }
    }

    /// Name recorded in the migrations table.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::V18 => "v18",
            Variant::Current => "current",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One migration's SQL.
#[derive(Debug, Clone, Copy)]
pub enum Sql {
    /// Same text on every server.
    Any(&'static str),
    /// One text per server generation.
    PerVariant {
        /// For ClickHouse < 20.
        v18: &'static str,
        /// For ClickHouse ≥ 20.
        current: &'static str,
    },
}

/// A versioned migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version.
    pub version: u32,
    /// Short name (file name without version and extension).
    pub name: &'static str,
    /// Its statements.
    pub sql: Sql,
}

impl Migration {
    /// The text for `variant`.
    pub fn text(&self, variant: Variant) -> &'static str {
        match (self.sql, variant) {
            (Sql::Any(text), _) => text,
            (Sql::PerVariant { v18, .. }, Variant::V18) => v18,
            (Sql::PerVariant { current, .. }, Variant::Current) => current,
        }
    }

    /// The statements for `variant`, with names and variant placeholders
    /// substituted.
    pub fn statements(&self, variant: Variant, database: &str, cluster: &str) -> Vec<String> {
        split_statements(self.text(variant))
            .into_iter()
            .map(|stmt| {
                let mut stmt = stmt
                    .replace("{database}", database)
                    .replace("{cluster}", cluster);
                for (from, to) in variant.substitutions() {
                    stmt = stmt.replace(from, to);
                }
                stmt
            })
            .collect()
    }

    /// A stable checksum of what runs for `variant` (FNV-1a, hex).
    pub fn checksum(&self, variant: Variant) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.statements(variant, "", "").concat().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// Splits a file into statements at `;` ending a line; drops `--` comment
/// lines and empty statements.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix(';') {
            current.push_str(body);
            let stmt = current.trim().to_owned();
            if !stmt.is_empty() {
                statements.push(stmt);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        statements.push(rest.to_owned());
    }
    statements
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A shard did not answer or rejected a statement.
    #[error("shard {shard} ({url}): {context}: {source}")]
    ClickHouse {
        shard: usize,
        url: String,
        context: String,
        #[source]
        source: clickhouse::error::Error,
    },
    /// `SELECT version()` answered something unexpected.
    #[error("cannot parse ClickHouse version `{0}`")]
    Version(String),
    /// A recorded migration no longer matches its file.
    #[error(
        "shard {shard}: migration {version} ({name}) was applied with checksum {recorded} \
         but the file now has {current}; never edit an applied migration, add a new one"
    )]
    Checksum {
        shard: usize,
        version: u32,
        name: String,
        recorded: String,
        current: String,
    },
}

/// What happened on one shard.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// 1-based shard number.
    pub shard: usize,
    /// 1-based replica number within the shard.
    pub replica: usize,
    /// Its URL.
    pub url: String,
    /// Its `SELECT version()`.
    pub server_version: String,
    /// The DDL variant used.
    pub variant: Variant,
    /// Migrations applied now, as `NNNN_name`.
    pub applied: Vec<String>,
    /// How many were already recorded.
    pub already: usize,
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
}

/// Applies every pending migration in `migrations` to every shard of `cfg`
/// and to every replica listed for it (`url|url`): DDL is not replicated,
/// each server holds its own tables and `schema_migrations`. In shard
/// order; stops at the first error.
pub async fn apply(
    cfg: &ClickHouseConfig,
    migrations: &[Migration],
) -> Result<Vec<ShardReport>, MigrateError> {
    let mut servers = Vec::new();
    for (i, entry) in cfg.shards.iter().enumerate() {
        for (r, url) in replica_urls(entry).enumerate() {
            let server = Shard {
                number: i + 1,
                replica: r + 1,
                url: url.to_owned(),
                client: server_client(cfg, url),
            };
            let (report, applied) = server.start(cfg).await?;
            servers.push((server, report, applied));
        }
    }
    // Statement by statement across every server, so that a replica
    // creating a replicated table finds in ZooKeeper the structure its own
    // DDL gives, not one a later statement (an ALTER) already changed.
    for m in migrations {
        let label = format!("{:04}_{}", m.version, m.name);
        let mut pending = Vec::new();
        for (i, (server, report, applied)) in servers.iter_mut().enumerate() {
            if server.pending(m, applied, report)? {
                pending.push(i);
            }
        }
        // Servers of one generation run the same text, in lockstep.
        for variant in [Variant::V18, Variant::Current] {
            let group: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&i| servers[i].1.variant == variant)
                .collect();
            if group.is_empty() {
                continue;
            }
            for stmt in m.statements(variant, &cfg.database, &cfg.cluster) {
                let stmt = if cfg.replicated {
                    replicated_engine(&stmt)
                } else {
                    stmt
                };
                for &i in &group {
                    servers[i].0.run_statement(&stmt, &label).await?;
                }
            }
        }
        for &i in &pending {
            let (server, report, _) = &mut servers[i];
            server.record(cfg, m, report).await?;
        }
    }
    Ok(servers.into_iter().map(|(_, report, _)| report).collect())
}

/// `stmt` with its `…MergeTree` engine made `Replicated…MergeTree`, the
/// table's replicas sharing `/clickhouse/tables/{shard}/<db>.<table>` in
/// ZooKeeper; other statements unchanged.
pub fn replicated_engine(stmt: &str) -> String {
    const ENGINE: &str = "ENGINE = ";
    let (Some(at), Some(rest)) = (
        stmt.find(ENGINE),
        stmt.strip_prefix("CREATE TABLE IF NOT EXISTS "),
    ) else {
        return stmt.to_owned();
    };
    let table = rest
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default();
    let engine_at = at + ENGINE.len();
    let Some(open) = stmt[engine_at..].find('(').map(|i| engine_at + i) else {
        return stmt.to_owned();
    };
    let name = &stmt[engine_at..open];
    if !name.ends_with("MergeTree") || name.starts_with("Replicated") {
        return stmt.to_owned();
    }
    let args = &stmt[open + 1..];
    let sep = if args.trim_start().starts_with(')') {
        ""
    } else {
        ", "
    };
    format!(
        "{}Replicated{name}('/clickhouse/tables/{{shard}}/{table}', '{{replica}}'{sep}{args}",
        &stmt[..engine_at]
    )
}

struct Shard {
    number: usize,
    replica: usize,
    url: String,
    client: Client,
}

impl Shard {
    fn err(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(clickhouse::error::Error) -> MigrateError + '_ {
        let context = context.into();
        move |source| MigrateError::ClickHouse {
            shard: self.number,
            url: self.url.clone(),
            context,
            source,
        }
    }

    async fn execute(&self, sql: &str, context: &str) -> Result<(), MigrateError> {
        self.client
            .query(sql)
            .execute()
            .await
            .map_err(self.err(context))
    }

    /// Reads the server's version, creates the database and the bookkeeping
    /// table; returns the report to fill and what was applied before.
    async fn start(
        &self,
        cfg: &ClickHouseConfig,
    ) -> Result<(ShardReport, Vec<AppliedRow>), MigrateError> {
        let server_version: String = self
            .client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(self.err("SELECT version()"))?;
        let variant = Variant::for_version(&server_version)?;
        let db = &cfg.database;
        self.execute(
            &format!("CREATE DATABASE IF NOT EXISTS {db}"),
            "create database",
        )
        .await?;
        // Each server's own record, replicated tables or not.
        self.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (\
                   version UInt32, name String, variant String, checksum String, \
                   applied_at DateTime DEFAULT now()\
                 ) ENGINE = MergeTree() ORDER BY version"
            ),
            "create schema_migrations",
        )
        .await?;
        let applied: Vec<AppliedRow> = self
            .client
            .query(&format!(
                "SELECT version, name, checksum FROM {db}.schema_migrations ORDER BY version"
            ))
            .fetch_all()
            .await
            .map_err(self.err("read schema_migrations"))?;
        let report = ShardReport {
            shard: self.number,
            replica: self.replica,
            url: self.url.clone(),
            server_version,
            variant,
            applied: Vec::new(),
            already: 0,
        };
        Ok((report, applied))
    }

    /// Whether `m` is still to apply here: not if `applied` records it
    /// (with the same checksum, or it is an error).
    fn pending(
        &self,
        m: &Migration,
        applied: &[AppliedRow],
        report: &mut ShardReport,
    ) -> Result<bool, MigrateError> {
        let checksum = m.checksum(report.variant);
        let Some(row) = applied.iter().find(|r| r.version == m.version) else {
            return Ok(true);
        };
        if row.checksum != checksum {
            return Err(MigrateError::Checksum {
                shard: self.number,
                version: m.version,
                name: row.name.clone(),
                recorded: row.checksum.clone(),
                current: checksum,
            });
        }
        report.already += 1;
        Ok(false)
    }

    /// Runs one statement of migration `label`.
    async fn run_statement(&self, stmt: &str, label: &str) -> Result<(), MigrateError> {
        match self.execute(stmt, &format!("migration {label}")).await {
            // 18.x has no `ADD COLUMN IF NOT EXISTS`: on a re-run of an
            // interrupted migration the column is there, as it is on a
            // replica that another replica's ALTER reached first.
            Err(e) if is_existing_column(stmt, &e) => {
                tracing::info!(shard = self.number, replica = self.replica, migration = %label, "column already added");
                Ok(())
            }
            other => other,
        }
    }

    /// Records `m` as applied.
    async fn record(
        &self,
        cfg: &ClickHouseConfig,
        m: &Migration,
        report: &mut ShardReport,
    ) -> Result<(), MigrateError> {
        let variant = report.variant;
        let label = format!("{:04}_{}", m.version, m.name);
        self.execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version, name, variant, checksum) \
                 VALUES ({}, '{}', '{}', '{}')",
                cfg.database,
                m.version,
                m.name,
                variant,
                m.checksum(variant)
            ),
            "record migration",
        )
        .await?;
        tracing::info!(shard = self.number, replica = self.replica, migration = %label, %variant, "applied");
        report.applied.push(label);
        Ok(())
    }
}

/// Whether `err` says the column an `ADD COLUMN` statement adds exists.
fn is_existing_column(stmt: &str, err: &MigrateError) -> bool {
    stmt.contains(" ADD COLUMN ")
        && err
            .to_string()
            .contains("column with this name already exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_by_major_version() {
        assert_eq!(Variant::for_version("18.16.1").unwrap(), Variant::V18);
        assert_eq!(Variant::for_version("19.17.4.11").unwrap(), Variant::V18);
        assert_eq!(Variant::for_version("24.8.4.13").unwrap(), Variant::Current);
        assert!(Variant::for_version("garbage").is_err());
    }

    #[test]
    fn replicated_engines_keep_their_arguments() {
        assert_eq!(
            replicated_engine("CREATE TABLE IF NOT EXISTS d.t (x UInt8) ENGINE = ReplacingMergeTree(seq) ORDER BY x"),
            "CREATE TABLE IF NOT EXISTS d.t (x UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d.t', '{replica}', seq) ORDER BY x"
        );
        assert_eq!(
            replicated_engine("CREATE TABLE IF NOT EXISTS d.s AS d.t\nENGINE = MergeTree()\nORDER BY x"),
            "CREATE TABLE IF NOT EXISTS d.s AS d.t\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d.s', '{replica}')\nORDER BY x"
        );
        let distributed =
            "CREATE TABLE IF NOT EXISTS d.v AS d.t ENGINE = Distributed(c, d, t, rand())";
        assert_eq!(replicated_engine(distributed), distributed);
        let mv = "CREATE MATERIALIZED VIEW IF NOT EXISTS d.mv TO d.t AS SELECT 1";
        assert_eq!(replicated_engine(mv), mv);
    }

    #[test]
    fn splits_at_line_ending_semicolons() {
        let text = "-- header\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Log;\n\nSELECT 1;\nSELECT 2";
        let s = split_statements(text);
        assert_eq!(s.len(), 3);
        assert!(s[0].contains("DEFAULT ';'"));
        assert_eq!(s[1], "SELECT 1");
        assert_eq!(s[2], "SELECT 2");
    }

    #[test]
    fn every_migration_is_idempotent_ddl() {
        let mut last = 0;
        for m in crate::migrations::ALL {
            assert!(m.version > last, "versions must increase: {}", m.version);
            last = m.version;
            for variant in [Variant::V18, Variant::Current] {
                for stmt in m.statements(variant, "qoe", "qoe") {
                    let upper = stmt.to_ascii_uppercase();
                    // 18.x's ADD COLUMN re-runs by tolerating the column.
                    let v18_add = variant == Variant::V18 && upper.contains(" ADD COLUMN ");
                    assert!(
                        upper.contains("IF NOT EXISTS") || upper.contains("IF EXISTS") || v18_add,
                        "migration {} ({variant}) has a statement that cannot re-run: {stmt}",
                        m.version
                    );
                    assert!(!stmt.contains('{'), "unsubstituted placeholder in {stmt}");
                    // Every table that stores rows has a replicated form.
                    let replicated = replicated_engine(&stmt);
                    if stmt.contains("MergeTree(") {
                        assert!(
                            replicated.contains("ENGINE = Replicated")
                                && replicated.contains("'/clickhouse/tables/{shard}/qoe.")
                                && replicated.contains("'{replica}'"),
                            "no replicated form of {stmt}"
                        );
                    } else {
                        assert_eq!(replicated, stmt);
                    }
                }
            }
        }
    }
}
