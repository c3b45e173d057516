//! `sigild migrate-sqlite-to-postgres`: moving a single-node log to PostgreSQL without
//! changing a byte of its tree.

use std::time::Instant;

use anyhow::Context;
use sigil_log::Store;
use sigil_log::copy::copy_logs;

use crate::MigrateArgs;

pub async fn sqlite_to_postgres(args: MigrateArgs) -> anyhow::Result<()> {
    let db_file = args.data_dir.join("sigil.db");
    anyhow::ensure!(
        db_file.exists(),
        "no SQLite database at {}; give the data dir sigild serves from",
        db_file.display()
    );
    // Opening takes the data dir's lock: a running sigild makes this stop here.
    let source = Store::open_sqlite(&args.data_dir).await.with_context(|| {
        format!(
            "opening {} (is sigild still running on it?)",
            db_file.display()
        )
    })?;
    let target = Store::open_postgres(&args.database_url)
        .await
        .context("opening the PostgreSQL database")?;
    let started = Instant::now();
    let mut last = Instant::now();
    let report = copy_logs(&source, &target, |done, total| {
        if last.elapsed().as_secs() >= 2 || done == total {
            last = Instant::now();
            eprintln!(
                "copied {done} of {total} entries ({:.0}%, {:.0}/s)",
                100.0 * done as f64 / total.max(1) as f64,
                done as f64 / started.elapsed().as_secs_f64().max(0.001)
            );
        }
    })
    .await
    .context("copying; the PostgreSQL database was left unchanged")?;
    for (name, size, _) in &report.logs {
        println!("log {name}: {size} entries copied, root checked");
    }
    println!(
        "{} tree nodes and {} search keys copied in {:.1} s.\n\
         Now start sigild with --database-url and the same --data-dir (it holds the keys and \
         the head records checked against the copy). Keep {} until the new setup has served.",
        report.nodes,
        report.search_keys,
        started.elapsed().as_secs_f64(),
        db_file.display()
    );
    Ok(())
}
