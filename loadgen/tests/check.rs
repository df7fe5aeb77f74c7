//! `qoe-loadgen check` waits for its targets and names those not ready.

use std::process::Command;

use qoe_common::config::AdminConfig;
use qoe_testkit::free_port;

#[test]
fn check_names_an_unreachable_target() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_qoe-loadgen"))
        .args(["check", "--timeout", "1s"])
        .env("QOE_TARGET__READY_URLS", format!("http://127.0.0.1:{port}"))
        .env("QOE_ADMIN__LISTEN", "127.0.0.1:0")
        .output()
        .expect("run qoe-loadgen");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[tokio::test]
async fn check_passes_when_targets_are_ready() {
    // A real admin listener with no dependencies is ready after its first probe run.
    let target = qoe_common::admin::start(&AdminConfig::default(), vec![])
        .await
        .expect("admin listener");
    target
        .health
        .check_now(std::time::Duration::from_secs(1))
        .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_qoe-loadgen"))
        .args(["check", "--timeout", "20s"])
        .env("QOE_TARGET__READY_URLS", format!("http://{}", target.addr))
        .env("QOE_ADMIN__LISTEN", "127.0.0.1:0")
        .output()
        .await
        .expect("run qoe-loadgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.stop().await;
}
