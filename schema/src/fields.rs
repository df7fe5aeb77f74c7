//! The event's integer fields, in one table.
//!
//! Every integer an SDK reports that needs nothing but a range check —
//! counters, the bitrate, the playhead, the player's size — is one line
//! here: its name (the same on the wire, in the record and in ClickHouse),
//! its Rust type, the largest value accepted and what it means. Everything
//! that lists these fields is generated from this table: the wire types
//! ([`RawEvent`](crate::beacon::RawEvent), [`Event`](crate::beacon::Event),
//! [`WireEvent`](crate::beacon::WireEvent)), validation, the envelope's
//! `metadata` fill, the fast scanner, the binary record (a counted block, so
//! older readers skip fields they do not know and newer ones default the
//! missing to 0), and the ClickHouse row and its encoder.
//!
//! Adding such a field is one line here plus one migration adding its
//! column (`ALTER TABLE … ADD COLUMN`) to `heartbeats_local` and
//! `heartbeats`; `schema/tests/clickhouse.rs` fails until the migration
//! exists, and a unit test until `schema/README.md` documents it. Append new
//! lines at the end: the binary record carries the fields in this order.
//!
//! Fields with more meaning (identity, times, strings, enums, flags, the
//! optional startup time) are written out where they are used.

/// Calls `$callback! { { extra tokens } rows… }` with one row per integer
/// field: `name: Type = largest accepted value, "doc";`.
macro_rules! integer_fields {
    ($callback:ident! { $($extra:tt)* }) => {
        $callback! {
            { $($extra)* }
            video_duration_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Video duration, ms; 0 when unknown or live.";
            player_width: u16 = $crate::beacon::limits::MAX_PIXELS,
                "Player width in pixels, 0 when unknown.";
            player_height: u16 = $crate::beacon::limits::MAX_PIXELS,
                "Player height in pixels, 0 when unknown.";
            watch_time_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Cumulative time since the play request, pauses excluded, ms.";
            playing_time_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Cumulative time with frames advancing, ms.";
            rebuffer_count: u32 = u32::MAX as u64,
                "Cumulative rebuffer events.";
            rebuffer_duration_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Cumulative rebuffering time, ms.";
            bitrate_kbps: u32 = $crate::beacon::limits::MAX_BITRATE_KBPS,
                "Current rendition bitrate, kbit/s.";
            avg_bitrate_kbps: u32 = $crate::beacon::limits::MAX_BITRATE_KBPS,
                "Playing-time-weighted average bitrate so far, kbit/s.";
            dropped_frames: u64 = u32::MAX as u64,
                "Cumulative dropped frames.";
            playhead_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Current playhead position, ms.";
            buffer_length_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "Forward buffer length (media buffered ahead of the playhead) at `ts`, ms.";
            current_rebuffer_ms: u64 = $crate::beacon::limits::MAX_DURATION_MS,
                "How long the rebuffering in progress at `ts` has lasted, ms; 0 when not rebuffering.";
        }
    };
}
pub(crate) use integer_fields;

/// The ClickHouse column type of a Rust integer type.
pub trait ColumnType {
    const COLUMN_TYPE: &'static str;
}

impl ColumnType for u16 {
    const COLUMN_TYPE: &'static str = "UInt16";
}

impl ColumnType for u32 {
    const COLUMN_TYPE: &'static str = "UInt32";
}

impl ColumnType for u64 {
    const COLUMN_TYPE: &'static str = "UInt64";
}

macro_rules! names {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// The integer fields' names, in table order.
        pub const INTEGER_FIELDS: &[&str] = &[$(stringify!($name)),*];

        /// Each integer field's ClickHouse column: name and type (what the
        /// migrations are checked against).
        pub const INTEGER_COLUMNS: &[(&str, &str)] =
            &[$((stringify!($name), <$ty as ColumnType>::COLUMN_TYPE)),*];
    };
}
integer_fields!(names! {});

#[cfg(test)]
mod tests {
    use super::INTEGER_FIELDS;

    #[test]
    fn the_readme_documents_every_integer_field() {
        let readme = include_str!("../README.md");
        for name in INTEGER_FIELDS {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "schema/README.md's field table lacks `{name}`"
            );
        }
    }
}
