//! The hostile-input corpus against the read API: each request gets its
//! documented answer while good reads go on beside it, and the api's
//! memory stays flat. Figures are printed (`--nocapture`).

mod support;

use std::time::{Duration, Instant};

use support::{events, range_of, setup_with, TOKEN_A};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Raw bytes on a fresh connection → the first bytes of the answer.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read it all.
    let _ = s.write_all(bytes).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_while_good_reads_go_on() {
    let events = events();
    let api = setup_with(
        &events[..50],
        &[
            ("QOE_HTTP__MAX_CONNECTIONS", "64".into()),
            ("QOE_HTTP__HEADER_TIMEOUT", "2s".into()),
        ],
    )
    .await;
    let addr = api.url().trim_start_matches("http://").to_owned();
    let r = range_of(&events);
    let good = format!(
        "/v1/metrics/views/overall?timeframe[]={}&timeframe[]={}",
        r.from, r.to
    );
    let many_headers: String = (0..200).map(|i| format!("X-Junk-{i}: {i}\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "a".repeat(128 * 1024));
    let big_token = format!(
        "GET {good} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        "t".repeat(16 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("many headers", get(&good, &many_headers), "HTTP/1.1 431", ""),
        ("huge header", get(&good, &big_header), "HTTP/1.1 431", ""),
        ("huge URL", get(&format!("/v1/{}", "m".repeat(512 * 1024)), ""), "HTTP/1.1 431", ""),
        ("query over max_query_bytes", get(&format!("{good}&{}", "filters[]=country:US&".repeat(300)), ""), "HTTP/1.1 414", "query_too_long"),
        ("huge token", big_token.into_bytes(), "HTTP/1.1 401", "unauthorized"),
        ("bad percent-encoding", get(&format!("{good}&filters[]=country:%ZZ"), ""), "HTTP/1.1 400", ""),
        ("NUL in a filter (bound as a value: matches nothing)", get(&format!("{good}&filters[]=country:%00"), ""), "HTTP/1.1 200", ""),
        ("huge number", get(&format!("/v1/metrics/views/overall?timeframe[]=1{}&timeframe[]=2", "9".repeat(400)), ""), "HTTP/1.1 400", "invalid_timeframe"),
        ("negative limit", get(&format!("/v1/metrics/views/breakdown?group_by=country&limit=-5&timeframe[]={}&timeframe[]={}", r.from, r.to), ""), "HTTP/1.1 400", ""),
        ("a body on GET", format!("GET {good} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").into_bytes(), "HTTP/1.1 200", ""),
        ("POST", format!("POST {good} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").into_bytes(), "HTTP/1.1 405", ""),
        ("bad Content-Length", format!("GET {good} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n").into_bytes(), "HTTP/1.1 400", ""),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), "HTTP/1.1 400", ""),
    ];

    // Good reads every 20 ms, each timed.
    let good_reads = |n: usize| {
        let (url, good) = (api.url().to_owned(), good.clone());
        async move {
            let mut ms = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let reply = qoe_common::httpc::send(
                    hyper::Method::GET,
                    &format!("{url}{good}"),
                    &[("authorization", &format!("Bearer {TOKEN_A}"))],
                    Vec::new().into(),
                    Duration::from_secs(10),
                )
                .await
                .expect("a good read is answered");
                assert_eq!(reply.status, 200, "a good read: {}", reply.text());
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ms.sort_by(f64::total_cmp);
            ms
        }
    };
    let before = good_reads(50).await;
    let rss_before = api.svc.resident_mib().await;

    // A slowloris crowd holds 40 of the 64 connection slots while the
    // corpus runs three times and good reads go on.
    let mut crowd = Vec::new();
    for _ in 0..40 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /v1/metrics HTTP/1.1\r\nHo")
            .await
            .unwrap();
        crowd.push(s);
    }
    let during = tokio::spawn(good_reads(50));
    for _ in 0..3 {
        for (name, bytes, line, code) in &cases {
            let reply = raw(&addr, bytes).await;
            assert!(reply.starts_with(line), "{name}: {reply:.300}");
            assert!(reply.contains(code), "{name}: {reply:.300}");
        }
    }
    let during = during.await.unwrap();
    // Over the cap: a cheap 503 at once. (The crowd may have timed out
    // by now: 64 fresh slow connections fill the cap whatever is left.)
    let mut more = Vec::new();
    for _ in 0..64 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Ones over the cap are answered and closed: a failed write is fine.
        let _ = s.write_all(b"GET /v1/metrics HTTP/1.1\r\nHo").await;
        more.push(s);
    }
    let over = raw(&addr, &get(&good, "")).await;
    assert!(over.starts_with("HTTP/1.1 503"), "{over:.300}");
    assert!(over.contains("too_many_connections"), "{over:.300}");
    // The slow ones are closed after the header timeout; slots come back.
    drop(more);
    for mut s in crowd {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a slow-header connection was not closed");
    }
    let after = good_reads(5).await;
    let rss_after = api.svc.resident_mib().await;
    let p = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "api hostile corpus: {} cases × 3 + 40 slow connections, then 64 more; good reads p50/p99 {:.1}/{:.1} ms before, {:.1}/{:.1} ms during, {:.1} ms after; RSS {:.1} MiB before, {:.1} MiB after",
        cases.len(),
        p(&before, 0.5),
        p(&before, 0.99),
        p(&during, 0.5),
        p(&during, 0.99),
        p(&after, 0.5),
        rss_before,
        rss_after
    );
    assert!(
        p(&during, 0.99) < 2000.0,
        "good reads stalled during the corpus"
    );
    assert!(
        rss_after - rss_before < 64.0,
        "RSS grew from {rss_before:.1} to {rss_after:.1} MiB"
    );
}
