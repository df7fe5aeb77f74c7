//! CMCD v2 event-mode reports (CTA-5004-B), as hls.js, dash.js and Shaka
//! post them to an event target.
//!
//! ```text
//! POST /v1/cmcd/{key}   Content-Type: application/cmcd (or text/cmcd)
//! bl=(31900),br=(4500),cid="clip-1",e=ps,sf=h,sid="1113…",sn=6,st=v,sta=p,ts=1795951800694,v=2
//! ```
//!
//! One report per line; each line is an RFC 8941 structured-field
//! dictionary: the form players send is scanned by hand, anything else is
//! parsed by the `sfv` crate ([`keys`]). Keys this pipeline does not use
//! are ignored, as the specification asks of receivers (custom keys, `rr`
//! timings, ...). A report is a *sparse* state change: unlike a beacon it
//! carries no totals, so [`decode`] turns each into an [`Event`] holding
//! what the report said (its state, bitrate, buffer, error) and the
//! processor's sessionizer (`processor/src/sessions.rs`) derives the
//! view's totals from the reports in `sn` order.
//!
//! A view is one session (`sid`) and content (`cid`): its `view_id` is the
//! session's id, plus `:` and a hash of `cid` when there is one
//! ([`view_id`]). The Kafka key is the session ([`session_of`]), so one
//! worker sees a session's views in order.
//!
//! Refusals reuse the beacon's [`Reason`] codes (`invalid_cmcd` and
//! `line_too_long` are CMCD's own): a body that is not CMCD fails whole, a
//! bad line is refused by index while the others are accepted.

use std::sync::Arc;

use crate::beacon::{limits, Event, EventType, PlayerState, StreamType};
use crate::validate::{check_ts, reject, BodyError, Checks, Decoded, Reason, Rejection};

mod keys;
#[doc(hidden)]
pub use keys::scan_agrees_with_sfv;
use keys::Keys;

/// Most reports one body may carry (a player batches a handful).
pub const MAX_REPORTS: usize = crate::beacon::MAX_EVENTS_PER_BATCH;
/// Longest report line, bytes (a full report is a few hundred).
pub const MAX_LINE_BYTES: usize = 4096;
/// Longest `sid` kept as it is (CTA-5004 allows 64 characters); longer or
/// odd ones are hashed.
const MAX_SID: usize = 64;
/// `cid` limit (CTA-5004: 128 characters).
const MAX_CID: usize = 128;

/// The CMCD event (`e`), as far as the view's state is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmcdEvent {
    /// `ps`: play state change (`sta` says which).
    PlayState,
    /// `t`: time interval (every 10 s by default).
    Interval,
    /// `bc`: bitrate change.
    BitrateChange,
    /// `c`: content change (a new view of the session).
    ContentChange,
    /// `e`: error (`ec` says which). Players send it for errors that stop
    /// playback (hls.js only for fatal ones; dash.js for a segment it could
    /// not load, while `sta` still says playing), so it is a playback
    /// failure.
    Error,
    /// Anything else (`sk`, `b`, `m`, `um`, `pe`, `pc`, `rr`, ad events,
    /// `ce`, and events of later versions): no change to the view.
    Other,
}

impl CmcdEvent {
    fn parse(token: &str) -> CmcdEvent {
        match token {
            "ps" => CmcdEvent::PlayState,
            "t" => CmcdEvent::Interval,
            "bc" => CmcdEvent::BitrateChange,
            "c" => CmcdEvent::ContentChange,
            "e" => CmcdEvent::Error,
            _ => CmcdEvent::Other,
        }
    }
}

/// The player state (`sta`) as this pipeline's [`PlayerState`]. `w`
/// (waiting) is the player waiting for data, as rebuffering is (dash.js
/// sends it while a seek waits: the sessionizer's seek rule makes that seek
/// latency), and `q` (quit) is ended.
pub fn player_state(sta: &str) -> Option<PlayerState> {
    Some(match sta {
        "d" => PlayerState::Idle,
        "s" => PlayerState::Starting,
        "p" => PlayerState::Playing,
        "k" => PlayerState::Seeking,
        "r" | "w" => PlayerState::Rebuffering,
        "a" => PlayerState::Paused,
        "e" | "q" => PlayerState::Ended,
        "f" => PlayerState::Errored,
        _ => return None,
    })
}

/// The event type a report stands for in the heartbeats table.
fn event_type(e: CmcdEvent, state: Option<PlayerState>) -> EventType {
    match (e, state) {
        (CmcdEvent::PlayState, Some(s)) => match s {
            PlayerState::Idle => EventType::Viewstart,
            PlayerState::Starting => EventType::Play,
            PlayerState::Playing => EventType::Playing,
            PlayerState::Seeking => EventType::Seeking,
            PlayerState::Rebuffering => EventType::Rebufferstart,
            PlayerState::Paused => EventType::Pause,
            PlayerState::Ended => EventType::Viewend,
            PlayerState::Errored => EventType::Error,
        },
        (CmcdEvent::BitrateChange, _) => EventType::Renditionchange,
        (CmcdEvent::ContentChange, _) => EventType::Viewstart,
        (CmcdEvent::Error, _) => EventType::Error,
        _ => EventType::Heartbeat,
    }
}

/// The `view_id` of content `cid` in session `sid`: the session id when it
/// is a valid view id of at most 64 characters (else its hash), then `:`
/// and the hash of `cid` when `cid` is not empty.
pub fn view_id(sid: &str, cid: &str) -> String {
    use std::fmt::Write as _;
    let plain = !sid.is_empty()
        && sid.len() <= MAX_SID
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    // One allocation: this runs once per body and view.
    let mut id = String::with_capacity(MAX_SID + 17);
    if plain {
        id.push_str(sid);
    } else {
        let _ = write!(id, "s{:016x}", crate::rows::view_hash(sid));
    }
    if !cid.is_empty() {
        let _ = write!(id, ":{:016x}", crate::rows::view_hash(cid));
    }
    id
}

/// The session part of a CMCD `view_id` (its Kafka key).
pub fn session_of(view_id: &str) -> &str {
    view_id.split(':').next().unwrap_or(view_id)
}

/// Decodes a body of CMCD reports at `checks.now_ms`.
pub fn decode(body: &[u8], checks: &Checks) -> Result<Decoded, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError {
        reason: Reason::InvalidUtf8,
        message: format!("body is not UTF-8 (first bad byte at {})", e.valid_up_to()),
    })?;
    // Lines are decoded as they are found: the scan of a line finds where
    // it ends, so the common form is read once (splitting the body into
    // lines first cost a tenth of a batch's decoding).
    let b = text.as_bytes();
    let mut out = Decoded {
        // A report has 100 bytes or more; a body rarely holds more than 20.
        accepted: Vec::with_capacity((b.len() / 100 + 1).min(MAX_REPORTS)),
        ..Decoded::default()
    };
    let mut strings = Shared::default();
    let mut keys = Keys::default();
    let mut index = 0;
    let mut at = 0;
    loop {
        while b
            .get(at)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            at += 1;
        }
        if at == b.len() {
            break;
        }
        if index == MAX_REPORTS {
            let n = MAX_REPORTS + text[at..].lines().filter(|l| !l.trim().is_empty()).count();
            return Err(BodyError {
                reason: Reason::TooManyEvents,
                message: format!("{n} reports in one body; at most {MAX_REPORTS}"),
            });
        }
        let (line, read, next) = keys.read_line(text, at);
        at = next;
        index += 1;
        match report(line, read.map(|()| &keys), checks, &mut strings) {
            Ok(e) => out.accepted.push(e),
            Err(mut r) => {
                r.index = index - 1;
                out.rejected.push(r);
            }
        }
    }
    if index == 0 {
        return Err(BodyError {
            reason: Reason::EmptyBatch,
            message: "the body has no CMCD report (one report per line)".into(),
        });
    }
    // Nothing in the body was CMCD: the sender is misconfigured.
    if out.accepted.is_empty() && out.rejected.iter().all(|r| r.reason == Reason::InvalidCmcd) {
        let first = &out.rejected[0];
        return Err(BodyError {
            reason: Reason::InvalidCmcd,
            message: first.message.clone(),
        });
    }
    Ok(out)
}

/// The strings a body's reports repeat (session, content, CDN, and the
/// view id they make), shared.
#[derive(Default)]
struct Shared {
    last: [Option<Arc<str>>; 3],
    view: Option<(Arc<str>, Arc<str>, Arc<str>)>,
    /// One empty string for every field a report leaves empty.
    empty: Arc<str>,
}

impl Shared {
    /// The view id of `sid` and `cid`, computed once per body and view.
    fn view(&mut self, sid: &str, cid: &str) -> Arc<str> {
        if let Some((s, c, view)) = &self.view {
            if **s == *sid && **c == *cid {
                return view.clone();
            }
        }
        let view: Arc<str> = view_id(sid, cid).into();
        self.view = Some((sid.into(), cid.into(), view.clone()));
        view
    }

    fn get(&mut self, slot: usize, text: &str) -> Arc<str> {
        match &self.last[slot] {
            Some(s) if **s == *text => s.clone(),
            _ => {
                let s: Arc<str> = text.into();
                self.last[slot] = Some(s.clone());
                s
            }
        }
    }
}

fn refuse(reason: Reason, field: &str, message: impl Into<String>) -> Rejection {
    reject(reason, Some(field).filter(|f| !f.is_empty()), message)
}

/// One report line (its keys read, or why not) as an event holding what
/// it said.
fn report(
    line: &str,
    keys: Result<&Keys<'_>, sfv::Error>,
    checks: &Checks,
    strings: &mut Shared,
) -> Result<Event, Rejection> {
    if line.len() > MAX_LINE_BYTES {
        return Err(refuse(
            Reason::LineTooLong,
            "",
            format!(
                "a report line has {} bytes; at most {MAX_LINE_BYTES}",
                line.len()
            ),
        ));
    }
    let r = keys.map_err(|e| {
        refuse(
            Reason::InvalidCmcd,
            "",
            format!("not an RFC 8941 dictionary of CMCD keys: {e}"),
        )
    })?;
    let sid = r.string("sid")?.ok_or_else(|| missing("sid"))?;
    let cid = r.string("cid")?.unwrap_or("");
    if cid.len() > MAX_CID {
        return Err(refuse(
            Reason::FieldTooLong,
            "cid",
            format!("`cid` is longer than {MAX_CID} bytes"),
        ));
    }
    let e = CmcdEvent::parse(r.token("e")?.ok_or_else(|| missing("e"))?);
    let seq = r
        .integer("sn", limits::MAX_SEQ)?
        .ok_or_else(|| missing("sn"))? as u32;
    let ts_ms = r
        .integer("ts", i64::MAX as u64)?
        .ok_or_else(|| missing("ts"))? as i64;
    check_ts(ts_ms, checks)?;
    let state = match r.token("sta")? {
        None => None,
        Some(sta) => Some(player_state(sta).ok_or_else(|| {
            refuse(
                Reason::InvalidEnum,
                "sta",
                "`sta` must be one of d s p k r a w e f q",
            )
        })?),
    };
    let stream_type = match r.token("st")? {
        Some("l" | "ll") => StreamType::Live,
        _ => StreamType::OnDemand,
    };
    let cdn = r.string("cdn")?.unwrap_or("");
    if cdn.len() > limits::SHORT {
        return Err(refuse(Reason::FieldTooLong, "cdn", "`cdn` is too long"));
    }
    let error_code = r.text("ec")?.unwrap_or_default();
    // An error report ends playback whatever `sta` says (see `CmcdEvent::Error`).
    let state = if e == CmcdEvent::Error {
        Some(PlayerState::Errored)
    } else {
        state
    };
    let event = event_type(e, state);
    Ok(Event {
        view_id: strings.view(sid, cid),
        seq,
        event,
        ts_ms,
        view_start_ms: ts_ms,
        viewer_id: strings.get(0, sid),
        video_id: strings.get(1, cid),
        stream_type,
        cdn: strings.get(2, cdn),
        // A report without `sta` keeps the view's state: idle stands for
        // "not said" (the sessionizer knows).
        state: state.unwrap_or(PlayerState::Idle),
        error_code: match error_code.as_str() {
            "" => strings.empty.clone(),
            code => truncate(code, limits::ERROR_CODE).into(),
        },
        video_title: strings.empty.clone(),
        player_name: strings.empty.clone(),
        player_version: strings.empty.clone(),
        error_message: strings.empty.clone(),
        error_fatal: state == Some(PlayerState::Errored),
        bitrate_kbps: r.integer("br", limits::MAX_BITRATE_KBPS)?.unwrap_or(0) as u32,
        buffer_length_ms: r.integer("bl", limits::MAX_DURATION_MS)?.unwrap_or(0),
        ..Event::default()
    })
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn missing(key: &str) -> Rejection {
    refuse(
        Reason::MissingField,
        key,
        format!("event-mode reports need `{key}`"),
    )
}

#[cfg(test)]
mod tests;
