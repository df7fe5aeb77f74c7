//! Debian's Chromium driven over WebDriver by `chromedriver` (both
//! installed by `deploy/local/stack install`), for the tests that look at
//! a page as a person would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `chromedriver` on a free port, killed when dropped with every browser
/// it started (a test that fails leaves its sessions open; their Chromium
/// would outlive chromedriver and load the machine).
pub struct Driver {
    child: Child,
    url: String,
    /// The browsers' profile directories start with this (a unique path).
    profiles: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.profiles])
            .status();
        if let Some(parent) = Path::new(&self.profiles).parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

impl Driver {
    /// Starts `/usr/bin/chromedriver` and waits until it answers.
    pub async fn start() -> Driver {
        let port = crate::free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "/usr/bin/chromedriver: run `deploy/local/stack install` (Debian chromium-driver)",
            );
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: std::env::temp_dir()
                .join(crate::unique("webdriver"))
                .join("profile")
                .display()
                .to_string(),
        };
        let status = format!("{}/status", driver.url);
        crate::wait_until(Duration::from_secs(20), "chromedriver to answer", || {
            let url = status.clone();
            async move { crate::status_of(&url).await == Some(200) }
        })
        .await;
        driver
    }

    /// One WebDriver command; its `value`. Panics on a refusal.
    pub async fn call(&self, method: hyper::Method, path: &str, body: Value) -> Value {
        let reply = qoe_common::httpc::send(
            method,
            &format!("{}{path}", self.url),
            &[("content-type", "application/json")],
            // A GET has no body; a POST always sends an object.
            if body.is_null() {
                Vec::new().into()
            } else {
                serde_json::to_vec(&body).expect("JSON").into()
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        assert!(reply.status.is_success(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    /// A headless Chromium session with `args` added to the usual ones.
    pub async fn browser(&self, args: &[&str]) -> Browser<'_> {
        let profile = format!("--user-data-dir={}-{}", self.profiles, crate::unique("b"));
        let mut all = vec![
            profile.as_str(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        all.extend_from_slice(args);
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": all}}}});
        let session = self.call(hyper::Method::POST, "/session", caps).await;
        Browser {
            driver: self,
            session: session["sessionId"]
                .as_str()
                .expect("a session id")
                .to_owned(),
        }
    }
}

/// A browser session's commands.
pub struct Browser<'d> {
    driver: &'d Driver,
    /// The WebDriver session id.
    pub session: String,
}

impl Browser<'_> {
    /// `POST /session/{id}{path}`.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.driver.call(hyper::Method::POST, &path, body).await
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Runs `js` (a function body) in the page; its return value.
    pub async fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({ "script": js, "args": [] }))
            .await
    }

    /// Waits until `js` returns true, polling; panics after `timeout`.
    pub async fn wait_for(&self, js: &str, what: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.script(js).await.as_bool().unwrap_or(false) {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The WebDriver id of the element `css` selects.
    pub async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        let id = found.as_object().and_then(|o| o.values().next()).cloned();
        id.and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no element {css}"))
    }

    /// Saves a PNG of the page as `dir/name`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self
            .driver
            .call(
                hyper::Method::GET,
                &format!("/session/{}/screenshot", self.session),
                Value::Null,
            )
            .await;
        let bytes = base64_decode(png.as_str().expect("base64 text"));
        std::fs::create_dir_all(dir).expect("screenshot directory");
        std::fs::write(dir.join(name), bytes).expect("screenshot written");
    }

    /// Ends the session (closing the browser).
    pub async fn close(self) {
        self.driver
            .call(
                hyper::Method::DELETE,
                &format!("/session/{}", self.session),
                Value::Null,
            )
            .await;
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, c| (acc << 6) | value(*c)) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
