//! `overlayd`: the host network daemon (`overlayd run`) and its CLI client,
//! in one binary. `main` parses, sets up logging, runs the verb, and maps
//! the outcome to an exit code (the table is in docs/operations.md).

use std::process::ExitCode;

use clap::Parser;
use overlayd::cli::exit::{classify, Exit};
use overlayd::cli::output::is_broken_pipe;
use overlayd::{cli, logging};

fn main() -> ExitCode {
    // Installed as the CNI plugin (`overlayd cni install` copies this
    // executable when no separate overlayd-cni sits beside it).
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some(std::ffi::OsStr::new("overlayd-cni")) {
        overlayd_cni::plugin_main();
    }
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are not errors; a closed stdout is fine.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let is_daemon = matches!(args.command, cli::Command::Run(_));
    if let Err(e) = logging::init(if is_daemon { "info" } else { "warn" }, args.log_json) {
        eprintln!("overlayd: error: {e:#}");
        return Exit::Usage.into();
    }
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overlayd: error: {e:#}");
            classify(&e).into()
        }
    }
}
