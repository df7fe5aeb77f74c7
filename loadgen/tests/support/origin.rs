//! A media origin for the players test: serves a directory (pages, player
//! scripts, HLS and DASH streams made with `ffmpeg`) on loopback, and can
//! hold a segment back for a while (a stall on cue) or answer 404 for it.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the origin does differently for some paths.
#[derive(Default)]
struct Rules {
    delay: HashMap<String, Duration>,
    missing: HashSet<String>,
}

/// The running origin.
pub struct Origin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    rules: Arc<Mutex<Rules>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Serves `root` (`/a/b` is `root/a/b`).
    pub async fn start(root: PathBuf) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let rules: Arc<Mutex<Rules>> = Arc::default();
        let root = Arc::new(root);
        let shared = rules.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (root, rules) = (root.clone(), shared.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (root, rules) = (root.clone(), rules.clone());
                            async move {
                                Ok::<_, Infallible>(serve(&root, &rules, req.uri().path()).await)
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin { url, rules, task }
    }

    /// Answers `path` only `by` after it is asked for.
    pub fn delay(&self, path: &str, by: Duration) {
        self.rules.lock().unwrap().delay.insert(path.to_owned(), by);
    }

    /// Serves everything as it is again.
    pub fn reset(&self) {
        *self.rules.lock().unwrap() = Rules::default();
    }

    /// Answers `path` with 404.
    pub fn missing(&self, path: &str) {
        self.rules.lock().unwrap().missing.insert(path.to_owned());
    }
}

async fn serve(root: &Path, rules: &Mutex<Rules>, path: &str) -> Response<Full<Bytes>> {
    let (delay, missing) = {
        let r = rules.lock().unwrap();
        (r.delay.get(path).copied(), r.missing.contains(path))
    };
    if let Some(by) = delay {
        tokio::time::sleep(by).await;
    }
    let file = root.join(path.trim_start_matches('/'));
    let body = match (missing, path.contains("..")) {
        (false, false) => tokio::fs::read(&file).await.ok(),
        _ => None,
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
    if body.is_none() {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    }
    let mime = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("ts") => "video/mp2t",
        Some("m4s") | Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    };
    let h = resp.headers_mut();
    h.insert("content-type", mime.parse().expect("a header value"));
    h.insert("cache-control", "no-store".parse().expect("a header value"));
    resp
}

/// A 30-second 320×180 test picture in 2-second segments, as HLS
/// (`hls/index.m3u8`, `hls/seg_000.ts`…) and DASH (`dash/manifest.mpd`,
/// `dash/seg_001.m4s`…), made with Debian's `ffmpeg` under `dir`.
pub fn make_media(dir: &Path) {
    let source = [
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=25",
        "-t",
        "30",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-b:v",
        "300k",
    ];
    let outputs: [(&str, Vec<&str>); 2] = [
        (
            "hls",
            vec![
                "-f",
                "hls",
                "-hls_time",
                "2",
                "-hls_playlist_type",
                "vod",
                "-hls_segment_filename",
                "hls/seg_%03d.ts",
                "hls/index.m3u8",
            ],
        ),
        (
            "dash",
            vec![
                "-f",
                "dash",
                "-seg_duration",
                "2",
                "-use_template",
                "1",
                "-use_timeline",
                "0",
                "-init_seg_name",
                "init.m4s",
                "-media_seg_name",
                "seg_$Number%03d$.m4s",
                "dash/manifest.mpd",
            ],
        ),
    ];
    for (sub, args) in outputs {
        std::fs::create_dir_all(dir.join(sub)).expect("media directory");
        let status = Command::new("ffmpeg")
            .current_dir(dir)
            .args(source)
            .args(args)
            .status()
            .expect("ffmpeg: run `deploy/local/stack install` (Debian ffmpeg)");
        assert!(status.success(), "ffmpeg could not make the {sub} stream");
    }
}
