//! `overlayd-cni`: a CNI plugin (spec 1.1.0; results also in 0.3.0, 0.3.1,
//! 0.4.0 and 1.0.0) that is a thin client of the overlayd daemon. The daemon
//! owns every host object and all state; the plugin only translates one CNI
//! invocation into socket requests and the answers into a CNI result.

pub mod commands;
pub mod config;
pub mod daemon;
pub mod env;
pub mod error;
pub mod result;

use config::{NetConf, CURRENT_VERSION};
use env::{CniEnv, Command};
use error::CniError;

/// What one invocation prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Text for stdout (a result, a version answer or an error JSON).
    pub stdout: String,
    /// Process exit code: 0 on success, 1 on error.
    pub exit_code: i32,
}

/// Run one invocation from its environment and stdin.
pub fn run(env: &CniEnv, stdin: &[u8]) -> Outcome {
    let mut version = CURRENT_VERSION.to_string();
    let result = (|| {
        let command = Command::parse(
            env.command
                .as_deref()
                .ok_or_else(|| CniError::new(error::INVALID_ENV, "CNI_COMMAND is not set"))?,
        )?;
        if command == Command::Version {
            // VERSION only reads cniVersion and must answer even without a
            // full configuration.
            let asked = serde_json::from_slice::<serde_json::Value>(stdin)
                .ok()
                .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
                .unwrap_or_default();
            return Ok(Some(commands::version(&asked)));
        }
        if let Some(v) = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        {
            if config::SUPPORTED_VERSIONS.contains(&v.as_str()) {
                version = v;
            }
        }
        let conf = NetConf::parse(stdin)?;
        commands::run(command, env, &conf)
    })();
    match result {
        Ok(Some(v)) => Outcome {
            stdout: v.to_string(),
            exit_code: 0,
        },
        Ok(None) => Outcome {
            stdout: String::new(),
            exit_code: 0,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version),
            exit_code: 1,
        },
    }
}

/// The whole plugin process: read the `CNI_*` environment and stdin, run the
/// command, print the result or a CNI error JSON, and exit. A panic becomes a
/// CNI error too, never a stack trace. The `overlayd-cni` binary is this; the
/// `overlayd` binary runs it when invoked under the name `overlayd-cni`.
pub fn plugin_main() -> ! {
    use std::io::{Read, Write};
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        let env = CniEnv::from_lookup(|k| std::env::var(k).ok());
        let mut stdin = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
            return Outcome {
                stdout: CniError::new(
                    error::IO_FAILURE,
                    "cannot read the configuration from stdin",
                )
                .with_details(e.to_string())
                .to_json(CURRENT_VERSION),
                exit_code: 1,
            };
        }
        run(&env, &stdin)
    })
    .unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Outcome {
            stdout: CniError::new(error::DAEMON_OTHER, "overlayd-cni failed unexpectedly")
                .with_details(what)
                .to_json(CURRENT_VERSION),
            exit_code: 1,
        }
    });
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(outcome.exit_code);
}
