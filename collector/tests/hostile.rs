//! The hostile-input corpus: every case gets its documented answer while
//! good beacons keep flowing beside it, and the collector's memory and the
//! good beacons' latency stay flat. The corpus covers each ingest route:
//! the beacon (JSON), CMCD v2 reports and the mux-embed listener. Figures
//! are printed (`--nocapture`); the bounds asserted are loose enough for a
//! loaded 2-core machine and tight enough to catch a leak or a stall.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qoe_testkit::{unique, Stack};
use serde_json::json;
use support::{event, gzip, json_of, latin1, now_ms, post_mux, Collector, KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a corpus case is sent.
enum Send {
    /// A POST to `/v1/beacon/testkey` with extra headers.
    Post(Vec<u8>, Vec<(&'static str, String)>),
    /// A POST to another ingest route, with its usual content type.
    At(Route, Vec<u8>),
    /// Raw bytes on a fresh connection, then read the answer (or the close).
    Raw(Vec<u8>),
    /// Raw bytes, then the connection is closed without waiting.
    Abandon(Vec<u8>),
}

/// What the case must get: a status and code, or (raw cases) a status
/// line, or nothing but a close.
enum Expect {
    Answer(u16, &'static str),
    StatusLine(&'static str),
    Nothing,
}

/// The ingest routes besides the beacon's.
#[derive(Clone, Copy)]
enum Route {
    /// `/v1/cmcd/testkey`, `application/cmcd`.
    Cmcd,
    /// The mux-embed listener's `/`, `text/plain` as the SDK sends.
    Mux,
}

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
}

fn body_with(field: &str, raw_value: &str) -> Vec<u8> {
    let mut e = event("hostile", 1);
    e[field] = json!("__RAW__");
    e.to_string().replace("\"__RAW__\"", raw_value).into_bytes()
}

/// A valid CMCD v2 event-mode report, timed now.
fn cmcd_report() -> String {
    format!(
        "bl=1,br=(3200),cid=\"c\",e=ps,sf=h,sid=\"hostile\",sn=0,st=v,sta=p,ts={},v=2",
        now_ms()
    )
}

/// The report with `from` replaced by `to`.
fn cmcd_with(from: &str, to: &str) -> Vec<u8> {
    let good = cmcd_report();
    assert!(good.contains(from), "{from} in {good}");
    good.replacen(from, to, 1).into_bytes()
}

/// A valid mux-embed event, timed now; `ake` is the ingest key.
fn mux_event() -> String {
    format!(
        r#"{{"mem":"mux-embed","xsqno":5,"uti":{},"ake":"{KEY}","xid":"hostile","e":"viewstart","vid":"clip"}}"#,
        now_ms()
    )
}

/// A mux-embed body of one event.
fn mux_body() -> String {
    format!("{{\"metadata\":{{}},\"events\":[{}]}}", mux_event())
}

/// A mux-embed body of one event with `from` replaced by `to`.
fn mux_with(from: &str, to: &str) -> Vec<u8> {
    let good = mux_body();
    assert!(good.contains(from), "{from} in {good}");
    good.replacen(from, to, 1).into_bytes()
}

fn request_head(extra: &str, length: usize) -> String {
    format!(
        "POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         {extra}Content-Length: {length}\r\n\r\n"
    )
}

fn corpus() -> Vec<Case> {
    use Expect::*;
    use Send::*;
    let good = event("hostile", 1).to_string();
    let dup = good
        .replacen('{', "{\"view_id\":\"other\",", 1)
        .into_bytes();
    let utf16: Vec<u8> = good.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let beacon_latin1 = latin1(&good.replace("hostile", "h\u{f4}stile"));
    let many_events = json!({ "events": vec![json!({}); 501] }).to_string();
    let many_headers: String = (0..200).map(|i| format!("X-Junk-{i}: {i}\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "a".repeat(128 * 1024));
    let cmcd_good = cmcd_report();
    let cmcd_latin1 = latin1(&cmcd_good.replace("\"c\"", "\"\u{f4}\""));
    let mux_many = format!(
        "{{\"metadata\":{{}},\"events\":[{}]}}",
        vec![mux_event(); 501].join(",")
    );
    let mux_latin1 = latin1(&mux_body().replace("clip", "cl\u{f4}p"));
    vec![
        Case { name: "huge number", send: Post(body_with("seq", "1e400"), vec![]), expect: Answer(400, "invalid_json") },
        Case { name: "negative number", send: Post(body_with("seq", "-1"), vec![]), expect: Answer(400, "out_of_range") },
        Case { name: "number past u64", send: Post(body_with("ts", "184467440737095516160"), vec![]), expect: Answer(400, "out_of_range") },
        Case { name: "NaN", send: Post(body_with("seq", "NaN"), vec![]), expect: Answer(400, "invalid_json") },
        Case { name: "Infinity", send: Post(body_with("seq", "Infinity"), vec![]), expect: Answer(400, "invalid_json") },
        Case { name: "duplicate key", send: Post(dup, vec![]), expect: Answer(400, "invalid_json") },
        Case { name: "UTF-16 body", send: Post(utf16, vec![]), expect: Answer(400, "invalid_json") },
        Case { name: "Latin-1 body", send: Post(beacon_latin1, vec![]), expect: Answer(400, "invalid_utf8") },
        Case { name: "huge string", send: Post(body_with("view_id", &format!("\"{}\"", "v".repeat(60_000))), vec![]), expect: Answer(400, "field_too_long") },
        Case { name: "too many events", send: Post(many_events.into_bytes(), vec![]), expect: Answer(400, "too_many_events") },
        Case { name: "oversized body", send: Post(vec![b' '; 70_000], vec![]), expect: Answer(413, "body_too_large") },
        Case { name: "gzip bomb", send: Post(gzip(&vec![b'['; 20 * 1024 * 1024]), vec![("content-encoding", "gzip".into())]), expect: Answer(413, "body_too_large") },
        Case { name: "deep nesting", send: Post(format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes(), vec![]), expect: Answer(400, "not_an_object") },
        Case { name: "charset lie", send: Post(good.clone().into_bytes(), vec![("content-type", "application/json; charset=utf-16".into())]), expect: Answer(202, "") },
        Case { name: "many headers", send: Raw(format!("{}{many_headers}\r\n", request_head("", 0).trim_end_matches("\r\n")).into_bytes()), expect: StatusLine("HTTP/1.1 431") },
        Case { name: "huge header", send: Raw(request_head(&big_header, 0).into_bytes()), expect: StatusLine("HTTP/1.1 431") },
        Case { name: "huge URL", send: Raw(format!("POST /v1/beacon/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "k".repeat(512 * 1024)).into_bytes()), expect: StatusLine("HTTP/1.1 431") },
        Case { name: "bad Content-Length", send: Raw(b"POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n".to_vec()), expect: StatusLine("HTTP/1.1 400") },
        Case { name: "two Content-Lengths", send: Raw(b"POST /v1/beacon/testkey HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec()), expect: StatusLine("HTTP/1.1 400") },
        Case { name: "not HTTP", send: Raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec()), expect: StatusLine("HTTP/1.1 400") },
        Case { name: "truncated body", send: Abandon(format!("{}{{\"view_id\":", request_head("", 1000)).into_bytes()), expect: Nothing },
        Case { name: "declared but never sent", send: Abandon(request_head("", 500_000).into_bytes()), expect: Nothing },
        // CMCD v2 reports: one per line, `key=value` pairs.
        Case { name: "CMCD huge number", send: At(Route::Cmcd, cmcd_with("bl=1", "bl=99999999999999999999999")), expect: Answer(400, "invalid_cmcd") },
        Case { name: "CMCD negative number", send: At(Route::Cmcd, cmcd_with("sn=0", "sn=-1")), expect: Answer(400, "out_of_range") },
        Case { name: "CMCD NaN", send: At(Route::Cmcd, cmcd_with("bl=1", "bl=NaN")), expect: Answer(400, "invalid_type") },
        // RFC 8941: the last instance of a key counts.
        Case { name: "CMCD duplicate key", send: At(Route::Cmcd, cmcd_with("sn=0", "sn=0,sn=1")), expect: Answer(204, "") },
        Case { name: "CMCD bad UTF-8", send: At(Route::Cmcd, cmcd_latin1), expect: Answer(400, "invalid_utf8") },
        Case { name: "CMCD huge string", send: At(Route::Cmcd, cmcd_with("cid=\"c\"", &format!("cid=\"{}\"", "c".repeat(60_000)))), expect: Answer(400, "line_too_long") },
        Case { name: "CMCD deep nesting", send: At(Route::Cmcd, cmcd_with("br=(3200)", &format!("br={}3200{}", "(".repeat(1500), ")".repeat(1500)))), expect: Answer(400, "invalid_cmcd") },
        Case { name: "CMCD too many reports", send: At(Route::Cmcd, vec![cmcd_good.as_str(); 501].join("\n").into_bytes()), expect: Answer(400, "too_many_events") },
        Case { name: "CMCD oversized body", send: At(Route::Cmcd, vec![b' '; 70_000]), expect: Answer(413, "body_too_large") },
        // mux-embed beacons on their own listener.
        Case { name: "mux NaN", send: At(Route::Mux, mux_with("\"xsqno\":5", "\"xsqno\":NaN")), expect: Answer(400, "invalid_json") },
        // As JSON.parse in the SDK: the last instance of a key counts.
        Case { name: "mux duplicate key", send: At(Route::Mux, mux_with("\"xsqno\":5", "\"xsqno\":5,\"xsqno\":6")), expect: Answer(202, "") },
        Case { name: "mux huge number", send: At(Route::Mux, mux_with("\"xsqno\":5", "\"xsqno\":1e400")), expect: Answer(400, "invalid_json") },
        Case { name: "mux negative number", send: At(Route::Mux, mux_with("\"xsqno\":5", "\"xsqno\":-1")), expect: Answer(400, "out_of_range") },
        Case { name: "mux bad UTF-8", send: At(Route::Mux, mux_latin1), expect: Answer(400, "invalid_json") },
        // Kept, cut to 2 048 bytes (schema::mux::MAX_VALUE_BYTES), as mux's own collector does.
        Case { name: "mux huge string", send: At(Route::Mux, mux_with("\"clip\"", &format!("\"{}\"", "v".repeat(60_000)))), expect: Answer(202, "") },
        Case { name: "mux deep nesting", send: At(Route::Mux, format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes()), expect: Answer(400, "invalid_json") },
        Case { name: "mux too many events", send: At(Route::Mux, mux_many.into_bytes()), expect: Answer(400, "too_many_events") },
        Case { name: "mux oversized body", send: At(Route::Mux, vec![b' '; 70_000]), expect: Answer(413, "body_too_large") },
    ]
}

/// Sends one case and checks its answer.
async fn run_case(collector: &Collector, mux_url: &str, addr: &str, case: &Case) {
    match (&case.send, &case.expect) {
        (Send::Post(..) | Send::At(..), Expect::Answer(status, code)) => {
            let r = match &case.send {
                Send::Post(body, headers) => {
                    let headers: Vec<(&str, &str)> =
                        headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    collector.post(body.clone(), &headers).await
                }
                Send::At(Route::Cmcd, body) => {
                    let cmcd = [("content-type", "application/cmcd")];
                    collector
                        .post_to(&format!("/v1/cmcd/{KEY}"), body.clone(), &cmcd)
                        .await
                }
                Send::At(Route::Mux, body) => post_mux(mux_url, "/", body.clone()).await,
                _ => unreachable!(),
            };
            assert_eq!(r.status.as_u16(), *status, "{}: {}", case.name, r.text());
            if !code.is_empty() {
                let body = json_of(&r);
                let got = body["error"]["code"]
                    .as_str()
                    .or(body["rejected"][0]["reason"].as_str());
                assert_eq!(got, Some(*code), "{}: {body}", case.name);
            }
        }
        (Send::Raw(bytes), Expect::StatusLine(line)) => {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            // The server may answer and close before it has read it all.
            let _ = s.write_all(bytes).await;
            let mut reply = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await;
            let reply = String::from_utf8_lossy(&reply);
            assert!(reply.starts_with(line), "{}: {reply:.200}", case.name);
        }
        (Send::Abandon(bytes), Expect::Nothing) => {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(bytes).await.unwrap();
        }
        _ => unreachable!("{}: send and expect do not match", case.name),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Times each of the four clients sends the corpus.
const ROUNDS: usize = 20;

#[tokio::test]
async fn hostile_input_is_refused_while_good_beacons_flow() {
    let stack = Stack::from_env();
    let topic = unique("hostile");
    stack.create_topic(&topic, 2).await;
    let mux_port = qoe_testkit::free_port();
    let mux_url = format!("http://127.0.0.1:{mux_port}");
    let collector = Arc::new(Collector::start(
        &stack.brokers,
        &topic,
        &[
            ("QOE_MUX_EMBED__LISTEN", format!("127.0.0.1:{mux_port}")),
            ("QOE_HTTP__MAX_BODY_BYTES", "65536".into()),
            ("QOE_HTTP__HEADER_TIMEOUT", "2s".into()),
            ("QOE_HTTP__BODY_TIMEOUT", "2s".into()),
            ("QOE_HTTP__MAX_CONNECTIONS", "256".into()),
        ],
    ));
    collector
        .svc
        .wait_ready(true, Duration::from_secs(30))
        .await;
    collector.wait_listening().await;
    let addr = collector.url.trim_start_matches("http://").to_owned();

    // Good beacons every 10 ms from start to end, each timed.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let (collector, stop) = (collector.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let started = Instant::now();
                let r = collector.post(event("good", seq).to_string(), &[]).await;
                samples.push((
                    started,
                    started.elapsed().as_secs_f64() * 1000.0,
                    r.status.as_u16(),
                ));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = collector.svc.resident_mib().await;
    let hostile_from = Instant::now();

    // The corpus ROUNDS times over from four clients at once, while a
    // slowloris crowd holds 200 of the 256 connection slots.
    let corpus = Arc::new(corpus());
    let mut clients = Vec::new();
    for client in 0..4 {
        let (collector, corpus, addr, mux_url) = (
            collector.clone(),
            corpus.clone(),
            addr.clone(),
            mux_url.clone(),
        );
        clients.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                for i in 0..corpus.len() {
                    let case = &corpus[(i + client * 5 + round) % corpus.len()];
                    run_case(&collector, &mux_url, &addr, case).await;
                }
            }
        }));
    }
    let mut crowd = Vec::new();
    for _ in 0..200 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
            let _ = s.write_all(b"POST /v1/beacon/testkey HTTP/1.1\r\nHo").await;
            crowd.push(s);
        }
    }
    for c in clients {
        c.await.expect("a corpus client failed");
    }
    let hostile_to = Instant::now();
    drop(crowd);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = collector.svc.resident_mib().await;
    stop.store(true, Ordering::Relaxed);
    let samples = good.await.unwrap();

    let (mut before, mut during) = (Vec::new(), Vec::new());
    for (at, ms, status) in &samples {
        assert_eq!(*status, 202, "a good beacon was refused");
        if *at < hostile_from {
            before.push(*ms);
        } else if *at < hostile_to {
            during.push(*ms);
        }
    }
    before.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    println!(
        "hostile corpus: {} cases × {} sends + 200 slow connections in {:.1} s; good beacons p50/p99 {:.1}/{:.1} ms before ({} sent), {:.1}/{:.1} ms during ({} sent, all 202); RSS {:.1} MiB before, {:.1} MiB after",
        corpus.len(),
        4 * ROUNDS,
        (hostile_to - hostile_from).as_secs_f64(),
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        before.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len(),
        rss_before,
        rss_after,
    );
    assert!(during.len() >= 10, "too few good beacons during the corpus");
    assert!(
        percentile(&during, 0.99) < 1000.0,
        "good beacons stalled during the corpus"
    );
    assert!(
        rss_after - rss_before < 64.0,
        "RSS grew from {rss_before:.1} to {rss_after:.1} MiB"
    );
    // Still serving, and the good beacons were all counted.
    let ok = collector.post(event("after", 1).to_string(), &[]).await;
    assert_eq!(ok.status, 202);
}
