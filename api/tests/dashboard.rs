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
        ("/chart.js", "text/javascript"),
        ("/views.js", "text/javascript"),
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
    for script in ["/chart.js", "/views.js", "/dashboard.js"] {
        assert!(page.contains(&format!(r#"<script src="{script}" defer></script>"#)));
    }
    assert!(!page.contains("<script>"), "no inline script");

    // Each `/v1/…` literal in the scripts, with its `${…}` parts filled
    // in as the page fills them, is a route the router has, with a token.
    let mut paths = Vec::new();
    for file in ["/dashboard.js", "/views.js"] {
        let script = String::from_utf8(api.raw(file).await.body.to_vec()).unwrap();
        for piece in script.split(['"', '`']).filter(|p| p.starts_with("/v1/")) {
            let path = piece
                .replace("${id}", "views")
                .replace("${encodeURIComponent(id)}", "some-view")
                .replace("?", "");
            paths.push(path);
        }
    }
    assert!(paths.len() >= 8, "{paths:?}");
    assert!(
        paths.contains(&"/v1/video-views/some-view".to_owned()),
        "{paths:?}"
    );
    for path in &paths {
        let (status, body) = api.get(path, Some(TOKEN_A)).await;
        assert_ne!(body["error"]["code"], "not_found", "{path}: {body}");
        // (Without the parameters the page adds, a 400 is fine; a view the
        // data lacks is the one 404 a real route gives.)
        assert!(
            status != 404 || body["error"]["code"] == "unknown_view",
            "{path}: {body}"
        );
    }
    // Without a token, the data refuses; the page itself does not need one.
    let (status, _) = api.get("/v1/metrics", None).await;
    assert_eq!(status, 401);
}
