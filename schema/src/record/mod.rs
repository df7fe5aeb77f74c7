//! The Kafka record: the normalized, enriched events one request carried
//! for one view. Encoding and decoding live here and nowhere else.
//!
//! Key: `view_id` (one view's events stay ordered in one partition).
//! Value, by format version, told apart by the first byte (no Kafka header:
//! a broker that stores headers as rows of their own, as tansu does, paid
//! 32-45 % of its produce rate for one, `docs/benchmarks.md`):
//! - **2** (written today): the compact [`binary`] encoding of a [`Record`]
//!   — 1 to [`binary::MAX_EVENTS`] events of one view, in request order,
//!   after the property, receive time and enrichment they share. Its first
//!   byte is the version. One record per view and request, not per event:
//!   the broker client's per-message cost is paid once per SDK batch.
//! - **1**: JSON of one [`Heartbeat`] with `"v": 1`. Still read, so records
//!   a previous collector wrote are processed during a rolling upgrade.
//!
//! A consumer that meets a version it does not know sends the record to the
//! dead-letter topic instead of guessing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::beacon::Event;

pub mod binary;

/// Current record format version.
pub const FORMAT_VERSION: u16 = binary::VERSION as u16;
/// The JSON format version, still decoded.
pub const JSON_FORMAT_VERSION: u16 = 1;
/// Kafka header carrying the reason a record was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = "qoe-dead-letter-reason";

/// What the collector adds on the server side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// ISO 3166-1 alpha-2 country of the client IP, empty if unknown.
    pub country: String,
    /// Autonomous system number of the client IP, 0 if unknown.
    pub asn: u32,
    /// Operating system family from the User-Agent.
    pub os: String,
    /// Browser family from the User-Agent.
    pub browser: String,
    /// `desktop`, `mobile`, `tablet`, `tv`, `console`, `bot` or `other`.
    pub device_type: String,
    /// The wire format the request came in (which endpoint took it).
    #[serde(default)]
    pub source: Source,
}

/// The wire format a view's events arrived in: the `source` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Source {
    /// This pipeline's beacon format (`schema::beacon`); every event carries
    /// the view's state so far.
    #[default]
    #[serde(rename = "beacon")]
    Beacon,
    /// CMCD v2 event-mode reports (`schema::cmcd`): sparse state changes
    /// the processor sessionizes into the view's state.
    #[serde(rename = "cmcd")]
    Cmcd,
    /// mux-embed beacons (`schema::mux`): each event carries only the keys
    /// that changed; the processor rebuilds the view's state per `xid`.
    #[serde(rename = "mux-embed")]
    MuxEmbed,
}

impl Source {
    /// Every source, in encoding order (the binary record's byte).
    pub const ALL: [Source; 3] = [Source::Beacon, Source::Cmcd, Source::MuxEmbed];

    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Beacon => "beacon",
            Source::Cmcd => "cmcd",
            Source::MuxEmbed => "mux-embed",
        }
    }

    /// Whether the events are sparse reports the processor must
    /// sessionize before they carry the view's state.
    pub fn is_sparse(self) -> bool {
        self != Source::Beacon
    }
}

/// One Kafka record: events of one view from one request, and what the
/// collector added to all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The customer property the ingest key belongs to.
    pub property_id: String,
    /// Server receive time, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// Server-side enrichment.
    pub enrichment: Enrichment,
    /// The validated events, in request order, all of one view.
    pub events: Vec<Event>,
}

impl Record {
    /// Splits one request's events into records: one per view (several when
    /// a view has more than [`binary::MAX_EVENTS`]), each view's events in
    /// request order, each with the request's property, receive time and
    /// enrichment.
    pub fn group(
        property_id: String,
        received_at_ms: i64,
        enrichment: Enrichment,
        mut events: Vec<Event>,
    ) -> Vec<Record> {
        // An SDK batch is one view: it is one record as it stands, without
        // moving its events (a few hundred bytes each) into a new vector.
        let one_view = events
            .first()
            .is_some_and(|first| events.iter().all(|e| same(&e.view_id, &first.view_id)));
        if one_view && events.len() <= binary::MAX_EVENTS {
            return vec![Record {
                property_id,
                received_at_ms,
                enrichment,
                events,
            }];
        }
        // A stable sort keeps each view's events in order.
        if !events.is_sorted_by(|a, b| a.view_id <= b.view_id) {
            events.sort_by(|a, b| a.view_id.cmp(&b.view_id));
        }
        let mut groups: Vec<Vec<Event>> = Vec::new();
        for event in events {
            match groups.last_mut() {
                Some(g) if same(&g[0].view_id, &event.view_id) && g.len() < binary::MAX_EVENTS => {
                    g.push(event)
                }
                _ => groups.push(vec![event]),
            }
        }
        // The request's own strings go to the last record; only the others
        // (several views in one request) pay for copies.
        let mut records = Vec::with_capacity(groups.len());
        let last = groups.pop();
        for events in groups {
            records.push(Record {
                property_id: property_id.clone(),
                received_at_ms,
                enrichment: enrichment.clone(),
                events,
            });
        }
        records.extend(last.map(|events| Record {
            property_id,
            received_at_ms,
            enrichment,
            events,
        }));
        records
    }

    /// The Kafka key: the events' `view_id`, or for CMCD reports their
    /// session, so one worker sees all of a session's views in order.
    pub fn key(&self) -> &str {
        let view = self.events.first().map_or("", |e| &e.view_id);
        match self.enrichment.source {
            Source::Beacon | Source::MuxEmbed => view,
            Source::Cmcd => crate::cmcd::session_of(view),
        }
    }

    /// Appends the Kafka value (current format) to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        binary::encode(
            &self.property_id,
            self.received_at_ms,
            &self.enrichment,
            &self.events,
            buf,
        );
    }

    /// Decodes a Kafka value of either format, refusing unknown versions.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        match bytes.first() {
            Some(&binary::VERSION) => Ok(binary::decode(bytes)?),
            Some(b'{') => Heartbeat::decode_json(bytes).map(Record::from),
            // Anything else is a future binary version, or garbage.
            Some(&v) if v > binary::VERSION && v < b' ' => Err(RecordError::Version(v.into())),
            _ => Err(binary::BinaryError {
                what: "neither a binary nor a JSON record",
                at: 0,
            }
            .into()),
        }
    }

    /// How many events a Kafka value holds, without decoding it (1 for a
    /// JSON record or one that does not decode).
    pub fn event_count(bytes: &[u8]) -> usize {
        binary::event_count(bytes).unwrap_or(1).max(1)
    }

    /// Each event as a stand-alone heartbeat.
    pub fn heartbeats(&self) -> impl Iterator<Item = Heartbeat> + '_ {
        self.events.iter().map(|e| Heartbeat {
            property_id: self.property_id.clone(),
            received_at_ms: self.received_at_ms,
            enrichment: self.enrichment.clone(),
            event: e.clone(),
        })
    }
}

/// Equal strings, by pointer first: one batch's events share allocations.
fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

impl From<Heartbeat> for Record {
    fn from(hb: Heartbeat) -> Self {
        Record {
            property_id: hb.property_id,
            received_at_ms: hb.received_at_ms,
            enrichment: hb.enrichment,
            events: vec![hb.event],
        }
    }
}

/// One heartbeat: an event and what the collector added to it (what a
/// version-1 record held).
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The customer property the ingest key belongs to.
    pub property_id: String,
    /// Server receive time, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// Server-side enrichment.
    pub enrichment: Enrichment,
    /// The validated event.
    pub event: Event,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A version-1 record that is not JSON of the expected shape.
    #[error("undecodable JSON record: {0}")]
    Json(#[from] serde_json::Error),
    /// A version-2 record that does not decode.
    #[error("undecodable binary record: {0}")]
    Binary(#[from] binary::BinaryError),
    /// A version this build does not understand.
    #[error("unsupported record format version {0} (this build reads {JSON_FORMAT_VERSION} and {FORMAT_VERSION})")]
    Version(u16),
}

impl RecordError {
    /// A short, stable reason for metrics and the dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Json(_) | RecordError::Binary(_) => "malformed",
            RecordError::Version(_) => "unsupported_version",
        }
    }
}

impl Heartbeat {
    /// A heartbeat of `event`.
    pub fn new(
        property_id: String,
        received_at_ms: i64,
        enrichment: Enrichment,
        event: Event,
    ) -> Self {
        Heartbeat {
            property_id,
            received_at_ms,
            enrichment,
            event,
        }
    }

    /// The Kafka key.
    pub fn key(&self) -> &str {
        &self.event.view_id
    }

    /// The Kafka value (current format) of a record of this one event.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        binary::encode(
            &self.property_id,
            self.received_at_ms,
            &self.enrichment,
            std::slice::from_ref(&self.event),
            &mut buf,
        );
        buf
    }

    /// The version-1 JSON value (what collectors wrote before the binary formats).
    pub fn encode_json(&self) -> Vec<u8> {
        let json = JsonOut {
            v: JSON_FORMAT_VERSION,
            property_id: &self.property_id,
            received_at_ms: self.received_at_ms,
            enrichment: &self.enrichment,
            event: &self.event,
        };
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(&json).expect("heartbeat serializes")
    }

    fn decode_json(bytes: &[u8]) -> Result<Heartbeat, RecordError> {
        match serde_json::from_slice::<JsonIn>(bytes) {
            Ok(json) if json.v == JSON_FORMAT_VERSION => Ok(Heartbeat {
                property_id: json.property_id,
                received_at_ms: json.received_at_ms,
                enrichment: json.enrichment,
                event: json.event,
            }),
            Ok(json) => Err(RecordError::Version(json.v)),
            Err(err) => {
                // A future version may not even parse as this one: say so.
                #[derive(Deserialize)]
                struct VersionOnly {
                    v: u16,
                }
                match serde_json::from_slice::<VersionOnly>(bytes) {
                    Ok(VersionOnly { v }) if v != JSON_FORMAT_VERSION => {
                        Err(RecordError::Version(v))
                    }
                    _ => Err(RecordError::Json(err)),
                }
            }
        }
    }
}

/// A version-1 record as written: a heartbeat's fields and `"v": 1`.
#[derive(Serialize)]
struct JsonOut<'a> {
    v: u16,
    property_id: &'a str,
    received_at_ms: i64,
    enrichment: &'a Enrichment,
    event: &'a Event,
}

/// A version-1 record as read.
#[derive(Deserialize)]
struct JsonIn {
    v: u16,
    property_id: String,
    received_at_ms: i64,
    enrichment: Enrichment,
    event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn grouping_keeps_each_views_order_and_caps_records() {
        let mut events = Vec::new();
        for seq in 1..=3 {
            events.push(sample::event("b", seq));
            events.push(sample::event("a", seq));
        }
        let country = Enrichment {
            country: "FR".into(),
            ..Enrichment::default()
        };
        let grouped = Record::group("p".into(), 7, country, events);
        let seqs: Vec<(&str, Vec<u32>)> = grouped
            .iter()
            .map(|r| (r.key(), r.events.iter().map(|e| e.seq).collect()))
            .collect();
        assert_eq!(seqs, [("a", vec![1, 2, 3]), ("b", vec![1, 2, 3])]);
        for r in &grouped {
            assert_eq!((r.property_id.as_str(), r.received_at_ms), ("p", 7));
            assert_eq!(r.enrichment.country, "FR");
        }

        let max = binary::MAX_EVENTS;
        let many = (1..=max as u32 + 5)
            .map(|seq| sample::event("big", seq))
            .collect();
        let grouped = Record::group("p".into(), 7, Enrichment::default(), many);
        let sizes: Vec<usize> = grouped.iter().map(|r| r.events.len()).collect();
        assert_eq!(sizes, [max, 5]);
        assert_eq!(grouped[1].events[0].seq, max as u32 + 1);
        assert!(Record::group("p".into(), 7, Enrichment::default(), vec![]).is_empty());

        // One view within the cap (an SDK batch) is one record, in order.
        let batch: Vec<Event> = (1..=3).map(|seq| sample::event("v", seq)).collect();
        let grouped = Record::group("p".into(), 7, Enrichment::default(), batch.clone());
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].events, batch);
    }
}
