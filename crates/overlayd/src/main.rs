//! `overlayd`: the host network daemon (`overlayd run`) and its CLI client,
//! in one binary. `main` parses, sets up logging, runs the verb, and maps
//! the outcome to an exit code.

use clap::Parser;
use overlayd::{cli, logging};

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let is_daemon = matches!(args.command, cli::Command::Run(_));
    logging::init(if is_daemon { "info" } else { "warn" }, args.log_json);
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("overlayd: error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
