//! `switchboard migrate`: bring the database schema up to this build's.

use std::process::ExitCode;

use clap::Args;
use switchboard_core::Config;
use switchboard_store::{Database, MigrationState};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Only report; exit 1 when migrations are pending.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: MigrateArgs, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let db = Database::connect(&config.database.target).await?;
        let state = db.migration_state().await?;
        let code = match (state, args.check) {
            (MigrationState::Current, _) => {
                println!("{}: schema is current", db.display_url());
                ExitCode::SUCCESS
            }
            (MigrationState::Pending(versions), true) => {
                println!("{}: migrations pending: {versions:?}", db.display_url());
                ExitCode::FAILURE
            }
            (MigrationState::Pending(versions), false) => {
                db.migrate().await?;
                println!("{}: applied migrations {versions:?}", db.display_url());
                ExitCode::SUCCESS
            }
        };
        db.close().await;
        Ok(code)
    })
}
