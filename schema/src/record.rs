//! The Kafka record: a normalized, enriched heartbeat. Encoding and decoding
//! live here and nowhere else.
//!
//! Key: `view_id` (one view's events stay ordered in one partition).
//! Value: JSON of [`Heartbeat`], whose `v` field is the format version; the
//! same version is also sent as the [`FORMAT_HEADER`] header so consumers can
//! route by version without parsing. A consumer that meets a version it does
//! not know sends the record to the dead-letter topic instead of guessing.

use serde::{Deserialize, Serialize};

use crate::beacon::Event;

/// Current record format version.
pub const FORMAT_VERSION: u16 = 1;
/// Kafka header carrying the format version (decimal ASCII).
pub const FORMAT_HEADER: &str = "qoe-format";
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
}

/// One heartbeat as it travels through Kafka.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Format version ([`FORMAT_VERSION`]).
    pub v: u16,
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
    /// Not JSON of the expected shape.
    #[error("undecodable record: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this build does not understand.
    #[error("unsupported record format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u16),
}

impl RecordError {
    /// A short, stable reason for metrics and the dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::Malformed(_) => "malformed",
            RecordError::Version(_) => "unsupported_version",
        }
    }
}

impl Heartbeat {
    /// A current-version record.
    pub fn new(
        property_id: String,
        received_at_ms: i64,
        enrichment: Enrichment,
        event: Event,
    ) -> Self {
        Heartbeat {
            v: FORMAT_VERSION,
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

    /// The Kafka value.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(768);
        self.encode_into(&mut buf);
        buf
    }

    /// Appends the Kafka value to `buf` (lets producers reuse buffers).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_writer(buf, self).expect("heartbeat serializes");
    }

    /// Decodes a Kafka value, refusing unknown versions.
    pub fn decode(bytes: &[u8]) -> Result<Heartbeat, RecordError> {
        match serde_json::from_slice::<Heartbeat>(bytes) {
            Ok(hb) if hb.v == FORMAT_VERSION => Ok(hb),
            Ok(hb) => Err(RecordError::Version(hb.v)),
            Err(err) => {
                // A future version may not even parse as this one: say so.
                #[derive(Deserialize)]
                struct VersionOnly {
                    v: u16,
                }
                match serde_json::from_slice::<VersionOnly>(bytes) {
                    Ok(VersionOnly { v }) if v != FORMAT_VERSION => Err(RecordError::Version(v)),
                    _ => Err(RecordError::Malformed(err)),
                }
            }
        }
    }
}
