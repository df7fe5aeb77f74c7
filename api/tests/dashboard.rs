//! The dashboard's files as a browser gets them: served at `/` with a
//! strict content-security policy, and every api path the page calls is
//! one the router answers (and the OpenAPI document lists).

mod support;

use support::{setup, TOKEN_A};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_and_call_real_routes() {
    let api = setup(&[]).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let reply = api.raw(path).await;
        assert_eq!(reply.status.as_u16(), 200, "{path}");
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{path}: {policy}"
        );
    }
    let page = String::from_utf8(api.raw("/").await.body.to_vec()).unwrap();
    assert!(page.contains(r#"<script src="/dashboard.js" defer></script>"#));
    assert!(!page.contains("<script>"), "no inline script");

    // Each `/v1/…` literal in the script, with its `${…}` parts filled in
    // as the page fills them, is answered (not 404) with a token.
    let script = String::from_utf8(api.raw("/dashboard.js").await.body.to_vec()).unwrap();
    let mut paths = Vec::new();
    for piece in script.split(['"', '`']).filter(|p| p.starts_with("/v1/")) {
        let path = piece.replace("${id}", "views").replace("?", "");
        paths.push(path);
    }
    assert!(paths.len() >= 6, "{paths:?}");
    for path in &paths {
        let (status, body) = api.get(path, Some(TOKEN_A)).await;
        assert_ne!(status, 404, "{path}: {body}");
    }
    // Without a token, the data refuses; the page itself does not need one.
    let (status, _) = api.get("/v1/metrics", None).await;
    assert_eq!(status, 401);
}
