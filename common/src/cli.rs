//! The command-line surface every service shares: `--config FILE`,
//! `--print-config` and `--check-config`.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{self, ConfigError, LogConfig, Validate};

/// Flags common to every service binary; flatten it into the binary's parser.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// TOML configuration file. Keys missing from it keep their defaults;
    /// `QOE_<SECTION>__<KEY>` environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE", env = "QOE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file and environment
    /// merged) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Load and validate the configuration, then exit: 0 if it is valid.
    #[arg(long)]
    pub check_config: bool,
}

/// A configuration that carries the shared `[log]` section.
pub trait HasLog {
    /// The `[log]` section.
    fn log(&self) -> &LogConfig;
}

/// What `main` should do after [`start`].
pub enum Start<T> {
    /// Run the service with this configuration.
    Run(T),
    /// Exit successfully (`--print-config`, `--check-config`).
    Exit,
}

/// Loads the configuration, handles the config-only flags and starts logging.
pub fn start<T>(args: &ServiceArgs) -> Result<Start<T>, ConfigError>
where
    T: DeserializeOwned + Serialize + Validate + HasLog,
{
    let cfg: T = config::load(args.config.as_deref())?;
    if args.print_config {
        print!("{}", config::to_toml(&cfg));
        return Ok(Start::Exit);
    }
    if args.check_config {
        eprintln!("configuration is valid");
        return Ok(Start::Exit);
    }
    crate::telemetry::init(cfg.log());
    Ok(Start::Run(cfg))
}

/// The whole `main` of a service: load the configuration, start logging,
/// build the multi-threaded runtime and run `service` until SIGTERM/SIGINT.
/// Errors are printed as one line (`error: ...: cause`) with exit code 1.
pub fn serve<T, F, Fut, E>(args: &ServiceArgs, service: F) -> std::process::ExitCode
where
    T: DeserializeOwned + Serialize + Validate + HasLog,
    F: FnOnce(T, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    exit_code(try_serve(args, service))
}

/// Turns `main`'s result into an exit code, printing the error chain on one
/// line instead of a debug dump.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "exiting");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn try_serve<T, F, Fut, E>(args: &ServiceArgs, service: F) -> anyhow::Result<()>
where
    T: DeserializeOwned + Serialize + Validate + HasLog,
    F: FnOnce(T, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let Start::Run(cfg) = start::<T>(args)? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(service(cfg, Box::pin(crate::shutdown::signal())))?;
    Ok(())
}
