//! `switchboard retention run [--dry-run]`: remove what is past RETENTION_DAYS and AUDIT_RETENTION_DAYS
//! now, as a serving node does every hour.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchboard_core::Config;
use switchboard_server::retention::purge;
use switchboard_store::LiveState;

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Delete calls that ended more than RETENTION_DAYS ago (transcript, claim, synthesis and their
    /// events in Redis) and audit entries older than AUDIT_RETENTION_DAYS.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Only count what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(cmd: RetentionCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Run(args) = cmd;
    let privacy = config.privacy;
    if privacy.retention_days.is_none() && privacy.audit_retention_days.is_none() {
        println!(
            "nothing expires: RETENTION_DAYS and AUDIT_RETENTION_DAYS are not set (data is kept until erased)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let db = crate::cmd_kb::connect(config)
            .await
            .context("opening the database (check DATABASE_URL / POSTGRES_* settings)")?;
        let live = match &config.redis {
            Some(redis) => Some(
                LiveState::connect(redis, "switchboard-retention")
                    .await
                    .context(
                        "connecting to Redis (check REDIS_HOST / REDIS_PORT / REDIS_PASSWORD, or REDIS_SENTINELS / REDIS_SENTINEL_MASTER)",
                    )?,
            ),
            None => None,
        };
        let purged = purge(&db, live.as_ref(), privacy, SystemTime::now(), args.dry_run).await;
        db.close().await;
        let purged = purged.context("removing data past its retention period")?;
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let days = |d: Option<u32>| d.map_or_else(|| "kept".to_owned(), |d| format!("{d} days"));
        println!(
            "{verb}: {} calls (RETENTION_DAYS: {}), {} audit entries (AUDIT_RETENTION_DAYS: {}){}",
            purged.calls,
            days(privacy.retention_days),
            purged.audit_entries,
            days(privacy.audit_retention_days),
            if args.dry_run || live.is_none() {
                String::new()
            } else {
                format!(", {} live events from Redis", purged.events)
            }
        );
        Ok(ExitCode::SUCCESS)
    })
}
