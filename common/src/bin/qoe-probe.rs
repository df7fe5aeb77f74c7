//! `qoe-probe kafka --brokers HOST:PORT TOPIC...`: asks the broker for the
//! topics' metadata through the Kafka protocol, exactly as the services'
//! `/readyz` probe does, and exits 0 if it answered with every topic, 1
//! (printing why) if not. `deploy/local/stack status` uses it, so a broker
//! whose port is open but whose storage stopped answering is reported
//! unhealthy.

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
    }
}
