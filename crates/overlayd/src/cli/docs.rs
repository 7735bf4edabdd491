//! `overlayd completions SHELL` and `overlayd man [--dir DIR]`: shell
//! completions and man pages generated from the CLI definition itself, so
//! they never drift from it. Packaging installs their output.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};

use super::{output, Cli};

/// `overlayd completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// `overlayd man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `overlayd.1` and one `overlayd-VERB.1` per verb into this
    /// directory instead of printing `overlayd.1` to stdout.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Print a completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "overlayd", &mut buf);
    write_stdout(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// The man page of the whole CLI, in roff.
pub fn man_page() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    Ok(buf)
}

/// Print the man page, or write every page into a directory.
pub fn man(args: &ManArgs) -> Result<ExitCode> {
    let Some(dir) = &args.dir else {
        write_stdout(&man_page()?)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = Cli::command();
    let mut written = vec![write_page(dir, "overlayd", cmd.clone())?];
    for sub in cmd.get_subcommands() {
        // clap names are `&'static str` here; this runs once per process.
        let name: &'static str = Box::leak(format!("overlayd-{}", sub.get_name()).into_boxed_str());
        written.push(write_page(dir, name, sub.clone().name(name))?);
    }
    for w in written {
        output::line(&w)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_page(dir: &std::path::Path, name: &str, cmd: clap::Command) -> Result<String> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.display().to_string())
}

fn write_stdout(buf: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(buf)?;
    out.flush()
}
