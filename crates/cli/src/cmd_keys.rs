//! `switchboard keys create --role R [--name N]` and `switchboard keys revoke ID`: API keys for the REST
//! API, the call WebSocket and the console. The key is printed once; only its hash is stored.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use switchboard_core::Config;
use switchboard_server::{Role, generate_api_key};
use switchboard_store::AuditEntry;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a key and print it (it cannot be shown again).
    Create {
        /// admin, supervisor or viewer.
        #[arg(long)]
        role: String,
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revoke a key by its id (the part after `sb_`, before the next `_`).
    Revoke {
        /// The key's id.
        id: String,
    },
    /// Print a new data key line for DATA_KEY_FILE (`<id> <base64 of 32 random bytes>`). To rotate, put
    /// it first in the file and keep the old lines below it: the first key seals, every key opens.
    DataKey {
        /// The key's id, stored with every value it seals.
        #[arg(long, default_value_t = default_key_id())]
        id: String,
    },
}

/// Today's date as a key id (`2026-12-04`).
fn default_key_id() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y-%m-%d")
        .to_string()
}

pub(crate) fn run(cmd: KeysCommand, config: &Config) -> anyhow::Result<ExitCode> {
    if let KeysCommand::DataKey { id } = &cmd {
        // Nothing is stored: the key goes only where the operator puts it.
        let line = switchboard_store::new_key_line(id).map_err(anyhow::Error::msg)?;
        println!("{line}");
        eprintln!(
            "append this line to your DATA_KEY_FILE (first line: the key that seals); keep the file readable by switchboard only"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = crate::cmd_kb::open_database(config)
            .await
            .context("opening the database (check DATABASE_URL / POSTGRES_* settings)")?;
        let (action, target) = match cmd {
            KeysCommand::Create { role, name } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                let new = generate_api_key(&name, role).map_err(anyhow::Error::msg)?;
                db.insert_api_key(&new.record).await?;
                println!("{}", new.key);
                eprintln!(
                    "created {} key {} ({name}); store it now, it is not shown again",
                    role.as_str(),
                    new.record.id
                );
                ("key.create", new.record.id)
            }
            KeysCommand::Revoke { id } => {
                if !db.revoke_api_key(&id, SystemTime::now()).await? {
                    bail!("no active key with id {id}");
                }
                eprintln!("revoked key {id}");
                ("key.revoke", id)
            }
            KeysCommand::DataKey { .. } => unreachable!("handled above"),
        };
        db.audit(&AuditEntry {
            at: SystemTime::now(),
            actor: "cli".into(),
            action: action.into(),
            target: Some(target),
            detail: None,
        })
        .await?;
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
