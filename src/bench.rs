//! `roster bench`: import speed and memory on synthetic people. Generates N people, then
//! for each repetition, on a fresh database: a first import, a re-import of the same
//! people (no change) and a re-import with 1% of them changed. Reports the median time
//! and rows per second of each phase and the peak resident memory (VmHWM, reset before
//! each phase) of this process.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Args;
use roster_differ::BrakeSettings;
use roster_fetcher::Submission;
use roster_shared::config::{BrokerSettings, StoreSettings};
use roster_shared::db::Db;
use roster_shared::model::envelope::{Format, SyncMode};
use roster_shared::model::ids::TenantId;
use roster_shared::model::run::RunState;
use serde::Serialize;

use crate::App;
use crate::pipeline::{Pipeline, PipelineSettings};

/// Arguments of `roster bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The broker, for `--distributed`.
    #[command(flatten)]
    pub broker: BrokerSettings,
    /// People to generate.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Repetitions of the three phases (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Work folder (default: a new folder under the system temp dir, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run the four stage binaries as separate processes on RabbitMQ and PostgreSQL
    /// (`--amqp-url`/`ROSTER_AMQP_URL`, `--database-url`/`ROSTER_DATABASE_URL`) instead
    /// of in this process on SQLite. The binaries must sit next to `roster`.
    #[arg(long)]
    pub distributed: bool,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// Phase name.
    pub phase: &'static str,
    /// Rows in the file.
    pub rows: u64,
    /// Median wall time in seconds.
    pub median_s: f64,
    /// Every repetition's time in seconds.
    pub runs_s: Vec<f64>,
    /// Rows per second at the median.
    pub rows_per_s: f64,
    /// Highest peak resident memory of one process in this phase, MiB.
    pub peak_rss_mib: f64,
    /// Peak resident memory of every process summed (distributed), MiB.
    pub peak_rss_sum_mib: f64,
}

/// Deterministic pseudo-random numbers (xorshift64*), so every bench sees the same people.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const FIRST: &[&str] = &[
    "Amit", "Frank", "Pierre", "Maria", "Chen", "Aisha", "Olga", "Kofi", "Lena", "Diego",
];
const LAST: &[&str] = &[
    "Kumar", "Williams", "Lefèvre", "Garcia", "Wang", "Khan", "Ivanova", "Mensah", "Berg", "Lopez",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Sales Executive",
    "Account Manager",
    "Analyst",
    "Designer",
    "Director",
];
const OFFICES: &[&str] = &[
    "HQ",
    "Mumbai Office",
    "Chicago Sales Office",
    "Paris Sales Office",
    "Remote",
];

/// Writes `rows` synthetic people as CSV; every `changed_every`-th person (if any) gets
/// a different job title, as if promoted.
pub fn generate(path: &Path, rows: u64, changed_every: Option<u64>) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        out,
        "Employee ID,Email,First Name,Last Name,Title,Department,Phone,Status,Office,Company"
    )?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..rows {
        let r = rng.next();
        let first = FIRST[(r % 10) as usize];
        let last = LAST[((r >> 8) % 10) as usize];
        let promoted = changed_every.is_some_and(|n| i % n == 0);
        let title = if promoted {
            "Senior Staff"
        } else {
            TITLES[((r >> 16) % 6) as usize]
        };
        writeln!(
            out,
            "E{i:07},{}.{}.{i}@example.com,{first},{last},{title},Dept {},+1 555 {:07},active,{},Example Corp",
            first.to_lowercase(),
            last.to_lowercase(),
            (r >> 24) % 40,
            (r >> 32) % 10_000_000,
            OFFICES[((r >> 40) % 5) as usize],
        )?;
    }
    out.flush()
}

/// Peak resident memory of process `pid` (`self` for this one) in KiB (Linux).
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident memory of process `pid`.
fn reset_peak_rss(pid: &str) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The four stage binaries as child processes.
struct Stages {
    children: Vec<std::process::Child>,
}

impl Stages {
    fn start(store: &StoreSettings, broker: &BrokerSettings, dir: &Path) -> anyhow::Result<Stages> {
        let bin = std::env::current_exe()?
            .parent()
            .context("the folder of this binary")?
            .to_path_buf();
        let mut children = Vec::new();
        for stage in ["fetcher", "parser", "differ", "writer"] {
            let exe = bin.join(format!("roster-{stage}"));
            let log = std::fs::File::create(dir.join(format!("{stage}.log")))?;
            let child = std::process::Command::new(&exe)
                .env("ROSTER_DATABASE_URL", store.database_url.expose())
                .env(
                    "ROSTER_AMQP_URL",
                    broker.amqp_url.as_ref().map_or("", |u| u.expose()),
                )
                .env("ROSTER_QUEUE_PREFIX", &broker.queue_prefix)
                .env("ROSTER_DATA_DIR", &store.data_dir)
                .env("ROSTER_MAX_DEACTIVATE", u64::MAX.to_string())
                .env_remove("ROSTER_HEALTH_ADDR")
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (cargo build --release --workspace --bins)",
                        exe.display()
                    )
                })?;
            children.push(child);
        }
        Ok(Stages { children })
    }

    fn pids(&self) -> Vec<String> {
        self.children.iter().map(|c| c.id().to_string()).collect()
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn import_once(app: &App, tenant: &TenantId, file: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    // Every row is new in the first import: lift the brake, which is not measured here.
    let settings = PipelineSettings {
        brake: BrakeSettings {
            max_deactivate: u64::MAX,
            ..BrakeSettings::default()
        },
        ..PipelineSettings::default()
    };
    let mut pipeline = app
        .is_embedded()
        .then(|| Pipeline::start(app, &settings, None));
    let run = roster_fetcher::submit(
        &app.services,
        Submission {
            tenant: tenant.clone(),
            source: "bench".into(),
            path: file.to_owned(),
            file_name: file.file_name().unwrap().to_string_lossy().into_owned(),
            format: Format::Csv,
            mode: SyncMode::Full,
            encoding: None,
            seen: None,
        },
        &roster_fetcher::FetchLimits::default(),
    )
    .await?;
    let done = match pipeline.as_mut() {
        Some(p) => p.wait_for(app, tenant, run).await?,
        None => crate::pipeline::wait_for_run(app, tenant, run).await?,
    };
    if let Some(p) = pipeline {
        p.stop().await?;
    }
    let elapsed = started.elapsed();
    ensure!(
        done.state == RunState::Applied,
        "bench run ended {}: {:?}",
        done.state,
        done.reason
    );
    Ok(elapsed)
}

/// Runs `roster bench`.
pub async fn run(store: StoreSettings, args: BenchArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.rows > 0 && args.repeat > 0,
        "--rows and --repeat must be positive"
    );
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("roster-bench-{}", uuid::Uuid::now_v7())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let base = dir.join("people.csv");
    let changed = dir.join("people-1pct.csv");
    eprintln!("generating {} people in {}", args.rows, dir.display());
    generate(&base, args.rows, None)?;
    generate(&changed, args.rows, Some(100))?;
    let phases = [
        ("first import", &base),
        ("no-change re-import", &base),
        ("1% changed re-import", &changed),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut peaks = [0u64; 3];
    let mut sums = [0u64; 3];
    if args.distributed {
        anyhow::ensure!(
            args.broker.amqp_url.is_some() && !store.is_sqlite(),
            "--distributed needs ROSTER_AMQP_URL and a PostgreSQL ROSTER_DATABASE_URL"
        );
        let mut broker = args.broker.clone();
        broker.queue_prefix = format!("bench{}.", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let store = StoreSettings {
            data_dir: dir.join("data"),
            ..store
        };
        let db = Db::connect(&store.database_url).await?;
        db.migrate().await?;
        let app = App::open_quiet(store.clone(), broker.clone()).await?;
        let stages = Stages::start(&store, &broker, &dir)?;
        let mut pids = stages.pids();
        pids.push("self".into());
        for rep in 0..args.repeat {
            // A new tenant is an empty directory: the first import creates everyone.
            let tenant = TenantId::new(format!("bench-{}-{rep}", uuid::Uuid::now_v7().simple()))?;
            for (i, (name, file)) in phases.iter().enumerate() {
                for p in &pids {
                    reset_peak_rss(p);
                }
                let t = import_once(&app, &tenant, file).await?;
                let each: Vec<u64> = pids.iter().map(|p| peak_rss_kib(p).unwrap_or(0)).collect();
                peaks[i] = peaks[i].max(each.iter().copied().max().unwrap_or(0));
                sums[i] = sums[i].max(each.iter().sum());
                eprintln!("  rep {} {name}: {:.2} s", rep + 1, t.as_secs_f64());
                times[i].push(t.as_secs_f64());
            }
        }
        drop(stages);
        if let roster_shared::transport::TransportConfig::RabbitMq { url, prefix } =
            roster_shared::runner::transport_config(&broker)
        {
            roster_shared::transport::amqp::AmqpTransport::connect(&url, &prefix)
                .await?
                .delete_topology()
                .await?;
        }
    } else {
        let tenant = TenantId::new("bench").expect("a valid id");
        for rep in 0..args.repeat {
            let work = dir.join(format!("rep{rep}"));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)?;
            let store = StoreSettings::sqlite(&work.join("roster.db"), work.join("data"));
            let app = App::open(
                store,
                BrokerSettings::default(),
                std::sync::Arc::new(roster_shared::stage::NoProgress),
                true,
            )
            .await?;
            for (i, (name, file)) in phases.iter().enumerate() {
                reset_peak_rss("self");
                let t = import_once(&app, &tenant, file).await?;
                peaks[i] = peaks[i].max(peak_rss_kib("self").unwrap_or(0));
                sums[i] = peaks[i];
                eprintln!("  rep {} {name}: {:.2} s", rep + 1, t.as_secs_f64());
                times[i].push(t.as_secs_f64());
            }
            drop(app);
            std::fs::remove_dir_all(&work)?;
        }
    }
    if temporary {
        std::fs::remove_dir_all(&dir)?;
    }
    let results: Vec<PhaseResult> = phases
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let m = median(times[i].clone());
            PhaseResult {
                phase: name,
                rows: args.rows,
                median_s: m,
                runs_s: times[i].clone(),
                rows_per_s: args.rows as f64 / m,
                peak_rss_mib: peaks[i] as f64 / 1024.0,
                peak_rss_sum_mib: sums[i] as f64 / 1024.0,
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{:<22} {:>10} {:>10} {:>12} {:>14} {:>14}",
            "phase", "rows", "median s", "rows/s", "peak RSS MiB", "sum RSS MiB"
        );
        for r in &results {
            println!(
                "{:<22} {:>10} {:>10.2} {:>12.0} {:>14.0} {:>14.0}",
                r.phase, r.rows, r.median_s, r.rows_per_s, r.peak_rss_mib, r.peak_rss_sum_mib
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
