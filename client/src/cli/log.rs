//! `sigil log`: read a transparency log as an auditor, trusting nothing the server says until
//! it is checked against the trusted root.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use sigil_proto::trust::TrustedRoot;

use super::exit;
use super::image::{Failure, Output, failed, report_failure, runtime, usage};
use super::verify::TrustArgs;
use crate::audit::{self, AuditError, EntryRef};
use crate::trust_source::{ServerUrl, load_trusted_root};

const LOG_ABOUT: &str = "\
Read a Rekor v1 transparency log as an auditor: its signed checkpoint, one entry with its
inclusion proof, and proof that the log only grew since a checkpoint you saved. Every answer
is checked against the trusted root's log keys before it is shown.

The log is --rekor-url, else --server, else the first log in the trusted root.

Examples:
  # Where is the log now? Save the checkpoint to check against later.
  sigil log info --server https://sigil.example.com --save-checkpoint sigil.checkpoint

  # Who signed entry 42, and what?
  sigil log get --log-index 42 --server https://sigil.example.com --output json

  # What did this identity sign? (every match fetched and verified, newest first)
  sigil log search --email alice@example.com --details --server https://sigil.example.com

  # Later (e.g. daily from cron): has the log only grown since? Exit 1 if not.
  sigil log verify-consistency --from sigil.checkpoint --update --server https://sigil.example.com

  # Read every new entry since the last run; report what the release identity signed.
  sigil log monitor --state monitor.json --once --watch-identity release@example.com \\
    --server https://sigil.example.com --output json

  # Follow the log with a rules file (expected signers, signing hours, bursts, re-signed
  # digests; the format is in docs/auditing.md), findings to a file, metrics for Prometheus.
  sigil log monitor --state monitor.json --rules rules.json --findings findings.jsonl \\
    --metrics-listen 127.0.0.1:9465 --server https://sigil.example.com

Exit codes: 0 verified, 1 the log failed a check (or could not be read), 2 usage error,
3 (monitor --once) entries to report.";

#[derive(Debug, Args)]
#[command(about = "Audit a transparency log: checkpoint, entries, consistency", long_about = LOG_ABOUT)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// The log's size and root hash, from its checkpoint (signature verified).
    Info(InfoArgs),
    /// One entry by index or UUID: who signed what, with its inclusion proof verified.
    Get(GetArgs),
    /// Prove that the log only grew since a saved checkpoint.
    VerifyConsistency(ConsistencyArgs),
    /// Find entries by signer email, subject, artifact digest or public key.
    Search(SearchArgs),
    /// Follow the log from a saved state, read every entry, check they build the signed
    /// tree, and report entries by watched identities or digests.
    Monitor(MonitorArgs),
}

/// Which log, and what to trust.
#[derive(Debug, Args)]
struct LogTarget {
    #[command(flatten)]
    trust: TrustArgs,
    /// Rekor v1 base URL of the log [default: --server, else the trusted root's first log].
    #[arg(long)]
    rekor_url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Args)]
struct InfoArgs {
    #[command(flatten)]
    target: LogTarget,
    /// Write the verified checkpoint here, for `verify-consistency --from`.
    #[arg(long, value_name = "FILE")]
    save_checkpoint: Option<PathBuf>,
    /// Also require the log's newest witnessed checkpoint to carry valid cosignatures from at
    /// least N of the --witness keys, and the current checkpoint to extend it.
    #[arg(long, value_name = "N")]
    require_witnesses: Option<usize>,
    /// A witness to trust: its verifier key, `<name>+<key id>+<base64 key>` (a sigild
    /// witness serves it at /witness/vkey). Repeatable. Without it: $SIGIL_WITNESS_KEYS, else
    /// the keys listed in ~/.config/sigil/witnesses.
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
}

#[derive(Debug, Args)]
#[group(id = "entry", required = true, multiple = false, args = ["log_index", "uuid"])]
struct GetArgs {
    #[command(flatten)]
    target: LogTarget,
    /// The entry's index in the log.
    #[arg(long)]
    log_index: Option<u64>,
    /// The entry's UUID (64 hex characters, or 80 with the tree id).
    #[arg(long)]
    uuid: Option<String>,
}

#[derive(Debug, Args)]
struct ConsistencyArgs {
    #[command(flatten)]
    target: LogTarget,
    /// A checkpoint saved earlier (`sigil log info --save-checkpoint`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// After a successful check, replace FILE with the current checkpoint.
    #[arg(long)]
    update: bool,
}

#[derive(Debug, Args)]
#[group(id = "terms", required = true, multiple = true, args = ["email", "subject", "sha256", "public_key", "artifact"])]
struct SearchArgs {
    #[command(flatten)]
    target: LogTarget,
    /// Signer email (compared case-insensitively).
    #[arg(long)]
    email: Option<String>,
    /// Signer subject: a URI (CI workflow), DNS name or username SAN, or an email.
    #[arg(long)]
    subject: Option<String>,
    /// Artifact digest: hex, or `sha256:<hex>` (sha384/sha512 by prefix or length).
    #[arg(long, value_name = "DIGEST")]
    sha256: Option<String>,
    /// A public key or certificate (PEM file): entries signed with it. Keyless entries are
    /// found by their certificate, not by the public key inside it.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// A file: entries for its SHA-256 digest.
    #[arg(long, value_name = "FILE")]
    artifact: Option<PathBuf>,
    /// How terms combine: `or` (any, the default, as in Rekor) or `and` (all).
    #[arg(long, value_parser = ["and", "or"], default_value = "or")]
    operator: String,
    /// Also fetch every match and check it (inclusion proof, entry timestamp), newest first.
    #[arg(long)]
    details: bool,
}

#[derive(Debug, Args)]
struct MonitorArgs {
    #[command(flatten)]
    target: LogTarget,
    /// Where the monitor keeps its place between runs (created on the first): the last
    /// verified checkpoint and the tree's right edge. Without it, every run starts at entry 0.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Read up to the current checkpoint once and exit: 0 nothing to report, 3 findings,
    /// 1 the log failed a check (split view, shrinking, entries that do not build its tree).
    #[arg(long)]
    once: bool,
    /// Seconds between scans when following (without --once).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    interval: u64,
    /// Report every entry signed by this identity (email or subject, any case). Repeatable.
    #[arg(long, value_name = "IDENTITY")]
    watch_identity: Vec<String>,
    /// Report every entry for this artifact digest (hex or sha256:<hex>). Repeatable.
    #[arg(long, value_name = "DIGEST")]
    watch_digest: Vec<String>,
    /// Rules file (JSON): identities, issuers, repositories and digests to watch; expected
    /// signers per identity or repository; allowed signing hours and days; a burst threshold;
    /// digests a release identity must not sign twice. See docs/auditing.md.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Also append each finding as a JSON line to FILE (written before the state moves on).
    #[arg(long, value_name = "FILE")]
    findings: Option<PathBuf>,
    /// Serve Prometheus metrics (entries read, tree size, scans, findings by rule) at
    /// http://ADDR/metrics while following.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Also read the CA's certificate-transparency log (the trusted root's first CT log) and
    /// judge every certificate issued by the watch, expected-signer and signing-hours rules
    /// (findings named ct-...).
    #[arg(long)]
    ct: bool,
    /// The CT log to read instead of the trusted root's (implies --ct).
    #[arg(long, value_name = "URL")]
    ct_url: Option<String>,
    /// After each scan, also fetch the log's witnessed checkpoint, require N valid
    /// cosignatures from the --witness keys, and check it lies on the history just read: a
    /// log that shows its witnesses another history than this monitor fails the run.
    #[arg(long, value_name = "N")]
    require_witnesses: Option<usize>,
    /// A witness to trust (`<name>+<key id>+<base64 key>`). Repeatable. Without it:
    /// $SIGIL_WITNESS_KEYS, else the keys listed in ~/.config/sigil/witnesses.
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// Another view of the log to compare with after each scan: another monitor's state file
    /// or a checkpoint saved by `sigil log info`. A different history (a split view) fails
    /// the run. Repeatable.
    #[arg(long, value_name = "FILE")]
    peer_state: Vec<PathBuf>,
}

/// `--once` found something to report.
const FINDINGS: u8 = 3;

pub fn log(args: LogArgs) -> u8 {
    if let LogCommand::Monitor(a) = args.command {
        let json = a.target.output == Output::Json;
        return match monitor(a) {
            Ok(code) => code,
            Err(f) => report_failure(f, json),
        };
    }
    let output = match &args.command {
        LogCommand::Info(a) => a.target.output,
        LogCommand::Get(a) => a.target.output,
        LogCommand::VerifyConsistency(a) => a.target.output,
        LogCommand::Search(a) => a.target.output,
        LogCommand::Monitor(_) => unreachable!("handled above"),
    };
    let result = match args.command {
        LogCommand::Info(a) => info(a),
        LogCommand::Get(a) => get(a),
        LogCommand::VerifyConsistency(a) => verify_consistency(a),
        LogCommand::Search(a) => search(a),
        LogCommand::Monitor(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => exit::OK,
        Err(f) => report_failure(f, output == Output::Json),
    }
}

/// The trusted root and the log's URL.
fn resolve(target: &LogTarget) -> Result<(TrustedRoot, String), Failure> {
    let root = load_trusted_root(&target.trust.source().map_err(usage)?).map_err(usage)?;
    let url = match (&target.rekor_url, &target.trust.server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => ServerUrl::new(server, target.trust.insecure_trust)
            .map_err(usage)?
            .to_string(),
        (None, None) => root
            .tlogs
            .first()
            .map(|l| l.base_url.clone())
            .ok_or_else(|| usage("the trusted root names no transparency log; pass --rekor-url"))?,
    };
    Ok((root, url.trim_end_matches('/').to_string()))
}

fn audit_failure(e: AuditError) -> Failure {
    failed(e)
}

fn info(args: InfoArgs) -> Result<(), Failure> {
    let (root, url) = resolve(&args.target)?;
    let trusted_witnesses =
        crate::witness::trusted_keys(&args.witnesses, args.require_witnesses.unwrap_or(0))
            .map_err(usage)?;
    let http = crate::sign::http_client();
    let rt = runtime()?;
    let (info, verified) = rt
        .block_on(audit::log_info(&http, &url, &root.tlogs))
        .map_err(audit_failure)?;
    let witnessed = match args.require_witnesses {
        None => None,
        Some(n) => Some(
            rt.block_on(async {
                let w = crate::witness::fetch_witnessed(
                    &http,
                    &url,
                    &root.tlogs,
                    &trusted_witnesses,
                    n,
                )
                .await?;
                // The witnessed checkpoint is what others saw; the one just read must extend it.
                audit::prove_extends(&http, &url, &w.checkpoint.checkpoint, &verified.checkpoint)
                    .await?;
                Ok(w)
            })
            .map_err(audit_failure)?,
        ),
    };
    if let Some(path) = &args.save_checkpoint {
        std::fs::write(path, &verified.note)
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let cp = &verified.checkpoint;
    match args.target.output {
        Output::Json => println!(
            "{}",
            json!({
                "ok": true,
                "origin": cp.origin,
                "treeSize": cp.size,
                "rootHash": hex::encode(cp.root_hash),
                "treeID": info.tree_id,
                "logKeyId": verified.log_key_id,
                "checkpoint": verified.note,
                "witnessedSize": witnessed.as_ref().map(|w| w.checkpoint.checkpoint.size),
                "witnesses": witnessed.as_ref().map(|w| w.witnesses.clone()),
            })
        ),
        Output::Text => {
            println!("log:        {}", cp.origin);
            println!("tree size:  {}", cp.size);
            println!("root hash:  {}", hex::encode(cp.root_hash));
            println!("tree id:    {}", info.tree_id);
            println!(
                "checkpoint: signature verified (log key {})",
                verified.log_key_id
            );
            if let Some(w) = &witnessed {
                println!(
                    "witnessed:  size {} cosigned by {}; the current checkpoint extends it",
                    w.checkpoint.checkpoint.size,
                    w.witnesses.join(", ")
                );
            }
            if let Some(path) = &args.save_checkpoint {
                println!("saved to:   {}", path.display());
            }
        }
    }
    Ok(())
}

fn get(args: GetArgs) -> Result<(), Failure> {
    let (root, url) = resolve(&args.target)?;
    let which = match (args.log_index, args.uuid) {
        (Some(i), _) => EntryRef::Index(i),
        (None, Some(u)) if !u.is_empty() && u.bytes().all(|b| b.is_ascii_hexdigit()) => {
            EntryRef::Uuid(u)
        }
        (None, Some(u)) => return Err(usage(format!("--uuid {u:?} is not hex"))),
        (None, None) => return Err(usage("give --log-index or --uuid")),
    };
    let http = crate::sign::http_client();
    let entry = runtime()?
        .block_on(audit::get_entry(&http, &url, &which, &root.tlogs))
        .map_err(audit_failure)?;
    match args.target.output {
        Output::Json => {
            let mut value = serde_json::to_value(&entry).map_err(failed)?;
            value["ok"] = json!(true);
            println!("{value}");
        }
        Output::Text => {
            let time = time::OffsetDateTime::from_unix_timestamp(entry.integrated_time)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| entry.integrated_time.to_string());
            println!("index:      {}", entry.log_index);
            println!("uuid:       {}", entry.uuid);
            println!("kind:       {} {}", entry.kind, entry.api_version);
            println!("integrated: {time}");
            if let Some(d) = &entry.artifact_digest {
                println!("artifact:   {d}");
            }
            if let Some(identity) = &entry.identity {
                println!("identity:   {identity}");
            }
            if let Some(issuer) = &entry.issuer {
                println!("issuer:     {issuer}");
            }
            if let Some(key) = &entry.public_key_sha256 {
                println!("key sha256: {key}");
            }
            println!(
                "verified:   inclusion in tree of size {}, checkpoint and entry timestamp signed by the log",
                entry.proven_in_tree_size
            );
        }
    }
    Ok(())
}

fn search(args: SearchArgs) -> Result<(), Failure> {
    let (root, url) = resolve(&args.target)?;
    if args.sha256.is_some() && args.artifact.is_some() {
        return Err(usage("give --sha256 or --artifact, not both"));
    }
    let hash = match (&args.sha256, &args.artifact) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(path)) => {
            use sha2::Digest;
            let bytes = std::fs::read(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            Some(format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(bytes))
            ))
        }
        (None, None) => None,
    };
    let public_key_pem = args
        .public_key
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| usage(format!("cannot read {}: {e}", p.display())))
        })
        .transpose()?;
    let query = audit::SearchQuery {
        email: args.email.clone(),
        subject: args.subject.clone(),
        hash,
        public_key_pem,
        all: args.operator == "and",
    };
    let http = crate::sign::http_client();
    let rt = runtime()?;
    let uuids = rt
        .block_on(audit::search(&http, &url, &query))
        .map_err(audit_failure)?;
    if !args.details {
        match args.target.output {
            Output::Json => println!(
                "{}",
                json!({"ok": true, "count": uuids.len(), "uuids": uuids})
            ),
            Output::Text => {
                for u in &uuids {
                    println!("{u}");
                }
                eprintln!("{} matching entries", uuids.len());
            }
        }
        return Ok(());
    }
    let mut entries = Vec::with_capacity(uuids.len());
    for (n, uuid) in uuids.iter().enumerate() {
        if args.target.output == Output::Text && uuids.len() > 20 && n % 20 == 0 {
            eprintln!("checking entries: {n}/{}", uuids.len());
        }
        let entry = rt
            .block_on(audit::get_entry(
                &http,
                &url,
                &EntryRef::Uuid(uuid.clone()),
                &root.tlogs,
            ))
            .map_err(audit_failure)?;
        entries.push(entry);
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.log_index));
    match args.target.output {
        Output::Json => println!(
            "{}",
            json!({"ok": true, "count": entries.len(), "entries": entries})
        ),
        Output::Text => {
            for e in &entries {
                println!(
                    "{:>8}  {}  {}  {}",
                    e.log_index,
                    e.identity
                        .as_deref()
                        .or(e.public_key_sha256.as_deref())
                        .unwrap_or("-"),
                    e.artifact_digest.as_deref().unwrap_or("-"),
                    e.uuid
                );
            }
            eprintln!("{} matching entries, each verified", entries.len());
        }
    }
    Ok(())
}

fn verify_consistency(args: ConsistencyArgs) -> Result<(), Failure> {
    let (root, url) = resolve(&args.target)?;
    let saved_text = std::fs::read_to_string(&args.from)
        .map_err(|e| usage(format!("cannot read {}: {e}", args.from.display())))?;
    // The saved checkpoint is checked too: a file edited since is not evidence of anything.
    let saved = audit::verify_checkpoint(&saved_text, &root.tlogs)
        .map_err(|e| failed(format!("{}: {e}", args.from.display())))?;
    let http = crate::sign::http_client();
    let rt = runtime()?;
    let (_, current) = rt
        .block_on(audit::log_info(&http, &url, &root.tlogs))
        .map_err(audit_failure)?;
    let (old, new) = (&saved.checkpoint, &current.checkpoint);
    let proof = if old.size > 0 && new.size > old.size {
        rt.block_on(audit::consistency_proof(&http, &url, old.size, new.size))
            .map_err(audit_failure)?
    } else {
        Vec::new()
    };
    audit::check_consistency(old, new, &proof).map_err(audit_failure)?;
    if args.update {
        std::fs::write(&args.from, &current.note)
            .map_err(|e| usage(format!("cannot write {}: {e}", args.from.display())))?;
    }
    match args.target.output {
        Output::Json => println!(
            "{}",
            json!({
                "ok": true,
                "consistent": true,
                "origin": new.origin,
                "from": {"treeSize": old.size, "rootHash": hex::encode(old.root_hash)},
                "to": {"treeSize": new.size, "rootHash": hex::encode(new.root_hash)},
            })
        ),
        Output::Text => println!(
            "consistent: {} grew from {} to {} entries (root {} → {}){}",
            new.origin,
            old.size,
            new.size,
            &hex::encode(old.root_hash)[..16],
            &hex::encode(new.root_hash)[..16],
            if args.update {
                "; checkpoint updated"
            } else {
                ""
            }
        ),
    }
    Ok(())
}

fn monitor(args: MonitorArgs) -> Result<u8, Failure> {
    use crate::monitor::metrics::{self, MonitorMetrics};
    use crate::monitor::{MonitorState, Rules, scan};
    use std::io::Write;
    let (root, url) = resolve(&args.target)?;
    let mut rules = match &args.rules {
        None => Rules::default(),
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            Rules::from_json(&bytes)
                .map_err(|e| usage(format!("{} is not a rules file: {e}", path.display())))?
        }
    };
    rules
        .watch
        .identities
        .extend(args.watch_identity.iter().cloned());
    rules
        .watch
        .digests
        .extend(args.watch_digest.iter().cloned());
    let mut findings_file = match &args.findings {
        None => None,
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| usage(format!("cannot open {}: {e}", path.display())))?,
        ),
    };
    let trusted_witnesses =
        crate::witness::trusted_keys(&args.witnesses, args.require_witnesses.unwrap_or(0))
            .map_err(usage)?;
    let stats = std::sync::Arc::new(std::sync::Mutex::new(MonitorMetrics::default()));
    if let Some(addr) = args.metrics_listen {
        let bound = metrics::serve(addr, stats.clone())
            .map_err(|e| usage(format!("cannot listen on {addr}: {e}")))?;
        eprintln!("metrics at http://{bound}/metrics");
    }
    let http = crate::sign::http_client();
    let rt = runtime()?;
    let json = args.target.output == Output::Json;
    let mut state: Option<MonitorState> = match std::fs::read(&args.state) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            usage(format!(
                "{} is not a monitor state file: {e}",
                args.state.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(usage(format!("cannot read {}: {e}", args.state.display()))),
    };
    let ct_url = match (&args.ct_url, args.ct) {
        (Some(u), _) => Some(u.clone()),
        (None, true) => Some(
            root.ctlogs
                .first()
                .map(|l| l.base_url.clone())
                .ok_or_else(|| usage("--ct: the trusted root lists no CT log; give --ct-url"))?,
        ),
        (None, false) => None,
    };
    let mut found_any = false;
    loop {
        let scanned = rt.block_on(async {
            let mut result = scan(&http, &url, &root.tlogs, state.as_ref(), &rules).await?;
            if let Some(ct_url) = &ct_url {
                let saved = state.as_ref().and_then(|s| s.ct.as_ref());
                let ct =
                    crate::monitor::ct::scan(&http, ct_url, &root.ctlogs, saved, &rules).await?;
                eprintln!(
                    "{ct_url}: read certificates {}..{}, they build the signed tree head",
                    ct.from, ct.to
                );
                result.findings.extend(ct.findings);
                result.state.ct = Some(ct.state);
            }
            Ok::<_, AuditError>(result)
        });
        let result = match scanned {
            Ok(result) => result,
            // Following, a log that cannot be reached is tried again; a log that fails a
            // check is not: that is what the monitor is for.
            Err(AuditError::Http { url, reason }) if !args.once => {
                stats.lock().unwrap_or_else(|p| p.into_inner()).scans_failed += 1;
                eprintln!("{url}: {reason}; trying again in {} s", args.interval);
                std::thread::sleep(std::time::Duration::from_secs(args.interval));
                continue;
            }
            Err(e) => {
                stats.lock().unwrap_or_else(|p| p.into_inner()).scans_failed += 1;
                return Err(failed(e));
            }
        };
        for f in &result.findings {
            found_any = true;
            let line = serde_json::to_string(f).map_err(failed)?;
            if let Some(file) = &mut findings_file {
                writeln!(file, "{line}")
                    .and_then(|()| file.sync_data())
                    .map_err(|e| failed(format!("writing findings: {e}")))?;
            }
            if json {
                println!("{line}");
            } else {
                println!(
                    "{}entry {}: {} {} signed {} (issuer {}){}",
                    if f.rule.starts_with("ct-") { "CT " } else { "" },
                    f.log_index,
                    f.rule,
                    f.identity.as_deref().unwrap_or("(a key)"),
                    f.artifact_digest.as_deref().unwrap_or("?"),
                    f.issuer.as_deref().unwrap_or("-"),
                    f.detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default(),
                );
            }
        }
        for peer in &args.peer_state {
            let text = std::fs::read_to_string(peer)
                .map_err(|e| usage(format!("cannot read {}: {e}", peer.display())))?;
            // A monitor state holds its checkpoint; anything else is taken as a checkpoint.
            let note = serde_json::from_str::<MonitorState>(&text)
                .map(|s| s.checkpoint)
                .unwrap_or(text);
            rt.block_on(crate::monitor::compare_with_peer(
                &http,
                &url,
                &root.tlogs,
                &result.checkpoint,
                &note,
            ))
            .map_err(|e| failed(format!("compared with {}: {e}", peer.display())))?;
        }
        if let Some(required) = args.require_witnesses {
            let witnessed = rt.block_on(crate::witness::fetch_witnessed(
                &http,
                &url,
                &root.tlogs,
                &trusted_witnesses,
                required,
            ));
            match witnessed {
                Ok(w) => rt
                    .block_on(crate::monitor::compare_with_peer(
                        &http,
                        &url,
                        &root.tlogs,
                        &result.checkpoint,
                        &w.checkpoint.note,
                    ))
                    .map_err(|e| failed(format!("compared with the witnessed checkpoint: {e}")))?,
                // Following, a log whose witnesses have not answered yet is looked at again
                // at the next scan; --once reports it.
                Err(e @ AuditError::Witnesses { .. }) if !args.once => {
                    eprintln!("{e}; looking again at the next scan");
                }
                Err(e) => return Err(failed(format!("witnesses: {e}"))),
            }
        }
        // The state moves only after the findings up to it are out.
        let text = serde_json::to_vec_pretty(&result.state).map_err(failed)?;
        let tmp = args.state.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &args.state))
            .map_err(|e| usage(format!("cannot write {}: {e}", args.state.display())))?;
        {
            let mut m = stats.lock().unwrap_or_else(|p| p.into_inner());
            m.entries_read += result.to - result.from;
            m.tree_size = result.to;
            m.scans_ok += 1;
            m.last_success_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for f in &result.findings {
                *m.findings.entry(f.rule).or_default() += 1;
            }
        }
        eprintln!(
            "{}: read entries {}..{}, they build the signed tree of {} entries; {} finding(s)",
            result.checkpoint.checkpoint.origin,
            result.from,
            result.to,
            result.to,
            result.findings.len()
        );
        state = Some(result.state);
        if args.once {
            return Ok(if found_any { FINDINGS } else { exit::OK });
        }
        std::thread::sleep(std::time::Duration::from_secs(args.interval));
    }
}
