//! Argument parsing and the subcommands. Exit codes (the CLI contract): 0 every asset registered;
//! 1 the run finished but some assets failed for good; 2 the run could not start or was stopped
//! batch-wide; 130 interrupted by a signal.

mod bench;
mod config;
mod demo;
mod emulator;
mod estimate;
mod progress;
mod report;
mod run;
mod scan;
mod scan_remote;
mod shard;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: every asset registered.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the run finished, some assets failed for good.
pub(crate) const EXIT_FAILED_ASSETS: u8 = 1;
/// Exit code: the run could not start, or stopped batch-wide.
pub(crate) const EXIT_STOPPED: u8 = 2;
/// Exit code: interrupted by a signal.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

// No `Debug` on the arguments: they hold the API key.
#[derive(Parser)]
#[command(name = "spinlift", version, about = "Crash-safe bulk uploads into FileSpin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write logs to this file (appended) instead of standard error. Levels come from RUST_LOG
    /// (default: warnings).
    #[arg(long, global = true)]
    log_file: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sets up `tracing`: RUST_LOG levels (default warnings; s3s's own refusal logs off), to standard error
/// or `--log-file`, as text or JSON. Secrets never reach it: the key and forms are redacted types.
fn init_logs(cli: &Cli) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,s3s=off"));
    let (writer, ansi) = match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            (tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// Write a manifest listing a directory tree (with --include/--exclude globs).
    Scan(scan::ScanArgs),
    /// Upload every entry of a manifest into FileSpin.
    Run(run::RunArgs),
    /// Verify a finished batch: read each registered asset back until FileSpin has processed it, and
    /// check its size and checksum (and set its data if that was not done). Uploads nothing.
    Verify(run::RunArgs),
    /// Where a batch stands, from its checkpoint alone (no network).
    Status(status::StatusArgs),
    /// The path -> asset id mapping of a batch, from its checkpoint (JSON Lines or CSV; no network).
    Report(report::ReportArgs),
    /// Upload a generated sample set into a local FileSpin emulator and verify every byte.
    Demo(demo::DemoArgs),
    /// Run the local FileSpin emulator (API + S3 POST endpoint) until Ctrl-C.
    Emulator(Box<emulator::EmulatorArgs>),
    /// Measure uploads against the raw limit of this machine (a reference client in the same run).
    Bench(Box<bench::BenchArgs>),
    /// One measured pass of `bench`, in a process of its own.
    #[command(hide = true)]
    BenchWorker(Box<bench::worker::WorkerArgs>),
}

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_STOPPED } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(e) = init_logs(&cli) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_STOPPED);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_STOPPED);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Scan(args) => scan::scan(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Verify(mut args) => {
                args.verify = true;
                args.registered_only = true;
                run::run(args).await
            }
            Command::Status(args) => status::status(args),
            Command::Report(args) => report::report(args),
            Command::Demo(args) => demo::demo(args).await,
            Command::Emulator(args) => emulator::emulator(*args).await,
            Command::Bench(args) => bench::bench(*args).await,
            Command::BenchWorker(args) => bench::worker::worker(*args).await,
        }
    });
    ExitCode::from(code)
}

/// Cancels `token` on the first Ctrl-C or SIGTERM.
pub(crate) fn cancel_on_signal(token: spinlift::CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\ninterrupted: finishing requests in flight (Ctrl-C again to quit at once)");
        token.cancel();
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "interrupted again: quitting now; the checkpoint holds what was done, run the same command to continue"
        );
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
}
