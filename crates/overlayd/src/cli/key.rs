//! `overlayd rotate-key`: replace the node's WireGuard keypair — the only
//! way it ever changes. The daemon must be stopped (the instance lock is
//! taken); on its next start the base device comes up with the new key.
//! Peers on other nodes must then be given the new public key.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use overlayd_state::{InstanceLock, LoadOutcome, MarkerFile, NodeKeyFile, Owner};

use super::run::resolve_config;
use super::{Cli, RotateKeyArgs};
use crate::outln;

/// Rotate the node key.
pub fn rotate(cli: &Cli, args: &RotateKeyArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    let lock = InstanceLock::acquire(&cfg.data_dir)
        .map_err(|e| anyhow!("{e}; stop the daemon before rotating its key"))?;
    let marker_file = MarkerFile::new(&cfg.data_dir);
    let mut marker = match marker_file.load().context("cannot read the marker")? {
        LoadOutcome::Loaded(m) => Some(m),
        LoadOutcome::Missing => None,
        LoadOutcome::Quarantined { moved_to, reason } => {
            eprintln!(
                "overlayd: the marker was corrupt ({reason}); moved to {}; the daemon rebuilds it at start",
                moved_to.display()
            );
            None
        }
    };
    let kp = NodeKeyFile::rotate(&cfg.data_dir).context("cannot write the new node key")?;
    if let Some(m) = marker.as_mut() {
        if let Some(mut base) = m.get(&Owner::Base).cloned() {
            base.wg_public_key = Some(kp.public_base64());
            m.upsert(base);
            marker_file
                .save(m)
                .context("cannot record the new public key")?;
        }
    }
    drop(lock);
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({ "public_key": kp.public_base64() })
        )?;
    } else {
        outln!("new node public key: {}", kp.public_base64())?;
        outln!("start the daemon, then give this key to every peer (add_peer on the other nodes)")?;
    }
    Ok(ExitCode::SUCCESS)
}
