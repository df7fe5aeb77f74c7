//! `qoe-probe kafka --brokers HOST:PORT TOPIC...`: asks the broker for the
//! topics' metadata through the Kafka protocol, exactly as the services'
//! `/readyz` probe does, and exits 0 if it answered with every topic, 1
//! (printing why) if not. `deploy/local/stack status` uses it, so a broker
//! whose port is open but whose storage stopped answering is reported
//! unhealthy.
//!
//! `qoe-probe http URL`: GETs a plain-HTTP URL and exits 0 on a 2xx answer;
//! the container images' health check of `/readyz` (they carry no curl).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Checks a dependency the way the services' /readyz does"
)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Metadata for TOPIC... from the broker (exit 0: answered, every topic
    /// has partitions; 1: the reason is printed).
    Kafka {
        /// Bootstrap brokers, `host:port[,host:port]`.
        #[arg(long, default_value = "127.0.0.1:9092", env = "QOE_KAFKA__BROKERS")]
        brokers: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime_serde::re::humantime::parse_duration)]
        timeout: Duration,
        /// Topics that must exist.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// GET a plain-HTTP URL such as `http://127.0.0.1:9101/readyz` (exit 0:
    /// a 2xx status; 1: the status or error is printed).
    Http {
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime_serde::re::humantime::parse_duration)]
        timeout: Duration,
    },
}

/// The status line of `GET url`, e.g. `HTTP/1.1 200 OK`.
fn http_get_status(url: &str, timeout: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are probed"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e} (give host:port)"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    // The status line is all that is read; bounded.
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&head[..n]);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn main() -> ExitCode {
    let Args { what } = Args::parse();
    match what {
        What::Kafka {
            brokers,
            timeout,
            topics,
        } => match qoe_common::kafka::check_once(&brokers, &topics, timeout) {
            Ok(()) => {
                println!("ok: {brokers} answered metadata for {}", topics.join(", "));
                ExitCode::SUCCESS
            }
            Err(why) => {
                println!("{why}");
                ExitCode::FAILURE
            }
        },
        What::Http { url, timeout } => match http_get_status(&url, timeout) {
            Ok(status) if status.split(' ').nth(1).is_some_and(|c| c.starts_with('2')) => {
                println!("ok: {url}: {status}");
                ExitCode::SUCCESS
            }
            Ok(status) => {
                println!("{url}: {status}");
                ExitCode::FAILURE
            }
            Err(why) => {
                println!("{why}");
                ExitCode::FAILURE
            }
        },
    }
}
