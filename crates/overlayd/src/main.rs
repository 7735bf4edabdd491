//! `overlayd`: the host network daemon (`overlayd run`) and its CLI client,
//! in one binary. `main` parses, sets up logging, runs the verb, and maps
//! the outcome to an exit code.

use clap::Parser;
use overlayd::{cli, logging};

fn main() -> std::process::ExitCode {
    // Installed as the CNI plugin (`overlayd cni install` copies this
    // executable when no separate overlayd-cni sits beside it).
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some(std::ffi::OsStr::new("overlayd-cni")) {
        overlayd_cni::plugin_main();
    }
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
