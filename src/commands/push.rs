//! `roster push-server config|run|hash-password`: our SFTP server for tenants who push
//! (see [`crate::push_server`]).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use roster_shared::config::StoreSettings;
use sha_crypt::{PasswordHasher, ShaCrypt};
use tracing::info;

use crate::app::read_db;
use crate::push_server::{self, PushServer};

/// `roster push-server ...`.
#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Renders sshd's configuration, the push logins' password hashes and authorized
    /// keys into a folder (and a host key if it has none); changes nothing else.
    Config(ConfigArgs),
    /// Renders, sets up the accounts and jails, and runs sshd in the foreground until
    /// SIGTERM, reloading it when `tenants apply` changes the push logins.
    Run(RunArgs),
    /// Reads a password from standard input and prints its crypt(3) SHA-512 hash, for
    /// `push.password_hash` in the tenants file.
    HashPassword,
}

/// Where the server listens and keeps its files.
#[derive(Debug, Clone, Args)]
pub struct ServerSettings {
    /// Address sshd listens on.
    #[arg(long, env = "ROSTER_PUSH_ADDR", default_value = "0.0.0.0:2222")]
    pub push_addr: String,
    /// The sshd program.
    #[arg(long, env = "ROSTER_SSHD", default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,
}

/// Arguments of `roster push-server config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Where and how it listens.
    #[command(flatten)]
    pub server: ServerSettings,
    /// The folder to render into.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `roster push-server run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where and how it listens.
    #[command(flatten)]
    pub server: ServerSettings,
    /// The folder to render into (default: `$ROSTER_DATA_DIR/push-server`). It and every
    /// folder above it must be root-owned and writable by no one else (sshd checks the
    /// authorized keys' folders so).
    #[arg(long, env = "ROSTER_PUSH_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// How often the push logins are read again, in milliseconds.
    #[arg(long, env = "ROSTER_PUSH_RELOAD_MS", default_value_t = 2000)]
    pub reload_ms: u64,
}

/// Runs `roster push-server ...`.
pub async fn run(store: StoreSettings, command: PushCommand) -> anyhow::Result<ExitCode> {
    match command {
        PushCommand::Config(args) => config(store, args).await,
        PushCommand::Run(args) => serve(store, args).await,
        PushCommand::HashPassword => hash_password(),
    }
}

async fn config(store: StoreSettings, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let server = PushServer {
        addr: args.server.push_addr,
        root: store.push_dir(),
        config_dir: std::path::absolute(&args.out)?,
    };
    let logins = push_server::declared(&db).await?;
    server.render(&logins).await?;
    println!(
        "rendered {} push logins into {}",
        logins.len(),
        args.out.display()
    );
    Ok(super::ok())
}

async fn serve(store: StoreSettings, args: RunArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let config_dir = args
        .config_dir
        .clone()
        .unwrap_or_else(|| store.data_dir.join("push-server"));
    let server = PushServer {
        addr: args.server.push_addr.clone(),
        root: std::path::absolute(store.push_dir())?,
        config_dir: std::path::absolute(&config_dir)?,
    };
    std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
    push_server::prepare_root_owned(&server.config_dir, "ROSTER_PUSH_CONFIG_DIR")?;
    let mut logins = push_server::declared(&db).await?;
    server.sync_accounts(&logins).await?;
    server.render(&logins).await?;
    push_server::check_config(&args.server.sshd, &server.sshd_config_path()).await?;
    let mut sshd = tokio::process::Command::new(&args.server.sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(server.sshd_config_path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.server.sshd.display()))?;
    let pid = sshd.id().context("sshd has no pid")?;
    info!(addr = %server.addr, root = %server.root.display(), logins = logins.len(), pid, "push server running");
    let shutdown = roster_shared::stage::shutdown_on_signals();
    let mut every = tokio::time::interval(Duration::from_millis(args.reload_ms.max(100)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            status = sshd.wait() => anyhow::bail!("sshd stopped: {}", status?),
            _ = every.tick() => {
                let now = match push_server::declared(&db).await {
                    Ok(now) => now,
                    Err(e) => { push_server::reload_failed(&e); continue; }
                };
                if now == logins {
                    continue;
                }
                let applied = async {
                    server.sync_accounts(&now).await?;
                    server.render(&now).await?;
                    push_server::check_config(&args.server.sshd, &server.sshd_config_path()).await
                }
                .await;
                match applied {
                    Ok(()) => {
                        signal(pid, rustix::process::Signal::HUP);
                        info!(logins = now.len(), "push logins changed; sshd reloaded");
                        logins = now;
                    }
                    Err(e) => push_server::reload_failed(&e),
                }
            }
        }
    }
    signal(pid, rustix::process::Signal::TERM);
    let _ = tokio::time::timeout(Duration::from_secs(10), sshd.wait()).await;
    let _ = sshd.kill().await;
    info!("push server stopped");
    Ok(super::ok())
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    // 12 random bytes, which sha-crypt writes as the 16 salt characters crypt(3) reads
    // (a longer salt would be cut by crypt(3) and the hash would never match).
    let salt: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| {
            let b = *u.as_bytes();
            // Bytes 6 and 8 carry the version and variant bits.
            (0..16).filter(|i| *i != 6 && *i != 8).map(move |i| b[i])
        })
        .take(12)
        .collect();
    let hash = ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    println!("{hash}");
    Ok(super::ok())
}
