//! `roster bench`: import speed and memory on synthetic people. Generates N people, then
//! for each repetition, on an empty directory: a first import, a re-import of the same
//! file (no change), a re-import of the same people in another order (no change, but
//! other bytes: parsed and compared), and a re-import with 1% of them changed. Reports
//! the median time and rows per second of each phase and the peak resident memory
//! (VmHWM, reset before each phase) of every process. `--peer` runs the same phases
//! through hand-written SQL ([`PEER_SQL`]), Roster embedded and Roster distributed in
//! turn and prints them side by side.

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
    /// Side by side, alternating in every repetition: the hand-written SQL a DBA would
    /// run instead (COPY into a staging table, MERGE, deactivate the missing; through
    /// `psql` on the PostgreSQL of `--database-url`), Roster embedded (SQLite in this
    /// process) and Roster distributed (needs what `--distributed` needs). Prints each
    /// phase's medians and how many times faster than the SQL each mode is.
    #[arg(long, conflicts_with = "distributed")]
    pub peer: bool,
    /// Tenants syncing the file in every phase, each its own directory (`--rows` people
    /// each): every tenant's run is handed over, then all are awaited; a phase's time is
    /// the whole. Shows the fixed costs of a run (`--tenants 1000 --rows 1000`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenants: u32,
    /// Small tenants syncing at the same time as the main ones in every Roster phase,
    /// `--small-rows` people each (memory under a mix: `--rows 2000000 --small 8`). Not
    /// counted in rows per second; the SQL of `--peer` leaves them out.
    #[arg(long, default_value_t = 0)]
    pub small: u32,
    /// People of each small tenant.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub small_rows: u64,
    /// With `--peer` (one tenant, no small ones): after each distributed round, also time
    /// PostgreSQL's own floor for the first import, bare `COPY`s of the rows Roster
    /// stored for that tenant into an empty copy of its directory table (same columns and
    /// index), one session per core at once, with nothing else running. Printed under the
    /// table.
    #[arg(long, requires = "peer")]
    pub floor: bool,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// What was measured.
    pub system: System,
    /// Phase name.
    pub phase: &'static str,
    /// Rows in the file.
    pub rows: u64,
    /// Tenants importing it in the phase.
    pub tenants: u32,
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
    /// Peak resident memory of each process (`roster`, and the stage binaries when
    /// distributed), MiB.
    pub peak_rss_by_process_mib: std::collections::BTreeMap<&'static str, f64>,
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

/// The order [`generate`] writes people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Person 0, 1, 2, ...
    Natural,
    /// The odd-numbered people first, then the even-numbered: the same people in a file
    /// with other bytes.
    Reordered,
}

/// Writes `rows` synthetic people as CSV in `order`; every `changed_every`-th person (if
/// any) gets a different job title, as if promoted. Person `i` is the same in every file.
pub fn generate(
    path: &Path,
    rows: u64,
    changed_every: Option<u64>,
    order: Order,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        out,
        "Employee ID,Email,First Name,Last Name,Title,Department,Phone,Status,Office,Company"
    )?;
    let person = |out: &mut BufWriter<std::fs::File>, i: u64| -> std::io::Result<()> {
        let r = Rng(0x9E37_79B9_7F4A_7C15 ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9)).next();
        let first = FIRST[(r % 10) as usize];
        let last = LAST[((r >> 8) % 10) as usize];
        let promoted = changed_every.is_some_and(|n| i.is_multiple_of(n));
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
        )
    };
    match order {
        Order::Natural => (0..rows).try_for_each(|i| person(&mut out, i))?,
        Order::Reordered => (1..rows)
            .step_by(2)
            .chain((0..rows).step_by(2))
            .try_for_each(|i| person(&mut out, i))?,
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

/// The phases of every repetition, each a whole import of one file on the state the
/// phase before left.
const PHASES: [&str; 4] = [
    "first import",
    "no-change re-import",
    "no-change, reordered",
    "1% changed re-import",
];

/// The generated files, one a phase ([`PHASES`]).
struct Files {
    dir: PathBuf,
    phases: [PathBuf; 4],
}

impl Files {
    /// Generates the files of `rows` people in `dir`: the people, the same file again,
    /// the same people in another order, and 1% of them changed.
    fn generate(dir: &Path, rows: u64) -> anyhow::Result<Files> {
        let base = dir.join("people.csv");
        let reordered = dir.join("people-reordered.csv");
        let changed = dir.join("people-1pct.csv");
        eprintln!("generating {rows} people in {}", dir.display());
        generate(&base, rows, None, Order::Natural)?;
        generate(&reordered, rows, None, Order::Reordered)?;
        generate(&changed, rows, Some(100), Order::Natural)?;
        Ok(Files {
            dir: dir.to_owned(),
            phases: [base.clone(), base, reordered, changed],
        })
    }
}

/// One way of syncing the files, measured phase by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The hand-written SQL a DBA would run instead ([`PEER_SQL`] through `psql`).
    Sql,
    /// `roster` in one process on SQLite.
    Embedded,
    /// The four stage binaries on RabbitMQ and PostgreSQL.
    Distributed,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Sql => "hand-written SQL",
            System::Embedded => "Roster embedded",
            System::Distributed => "Roster distributed",
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    secs: f64,
    /// Highest peak RSS of one process, KiB.
    peak_kib: u64,
    /// Peak RSS of the processes summed, KiB.
    sum_kib: u64,
    /// Peak RSS of each process by name, KiB.
    by_process: Vec<(&'static str, u64)>,
}

/// Who syncs what in a phase: the main tenants with the phase's file, the small ones
/// with theirs.
struct Mix<'a> {
    files: &'a Files,
    tenants: u32,
    small: Option<(&'a Files, u32)>,
}

impl Mix<'_> {
    /// Every (tenant, file) of phase `p`, for new tenants made once per repetition.
    fn jobs(&self, main: &[TenantId], small: &[TenantId], p: usize) -> Vec<(TenantId, PathBuf)> {
        let mut jobs: Vec<(TenantId, PathBuf)> = main
            .iter()
            .map(|t| (t.clone(), self.files.phases[p].clone()))
            .collect();
        if let Some((files, _)) = self.small {
            jobs.extend(small.iter().map(|t| (t.clone(), files.phases[p].clone())));
        }
        jobs
    }

    fn new_tenants(&self) -> anyhow::Result<(Vec<TenantId>, Vec<TenantId>)> {
        Ok((
            new_tenants("bench", self.tenants)?,
            new_tenants("small", self.small.map_or(0, |(_, n)| n))?,
        ))
    }
}

/// The plain-SQL sync the peer benchmark compares Roster with, as a DBA would script it
/// for `psql`: COPY the file into a staging table, MERGE it into the directory by email,
/// deactivate whoever is missing; one transaction. `psql -v tenant=T -f peer.sql < FILE`.
pub const PEER_SQL: &str = r#"\set ON_ERROR_STOP on
CREATE TABLE IF NOT EXISTS peer_people (
    tenant_id text NOT NULL,
    email text NOT NULL,
    employee_id text, first_name text, last_name text, title text, department text,
    phone text, status text, office text, company text,
    active boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, email)
);
BEGIN;
CREATE TEMP TABLE staging (
    employee_id text, email text, first_name text, last_name text, title text,
    department text, phone text, status text, office text, company text
) ON COMMIT DROP;
\copy staging FROM pstdin WITH (FORMAT csv, HEADER true)
MERGE INTO peer_people p
USING (SELECT lower(trim(email)) AS email, employee_id, first_name, last_name, title,
              department, phone, status, office, company,
              coalesce(lower(status), 'active') <> 'inactive' AS active
       FROM staging) s
ON p.tenant_id = :'tenant' AND p.email = s.email
WHEN MATCHED AND (p.employee_id, p.first_name, p.last_name, p.title, p.department, p.phone,
                  p.status, p.office, p.company, p.active)
     IS DISTINCT FROM (s.employee_id, s.first_name, s.last_name, s.title, s.department,
                       s.phone, s.status, s.office, s.company, s.active) THEN
    UPDATE SET employee_id = s.employee_id, first_name = s.first_name,
               last_name = s.last_name, title = s.title, department = s.department,
               phone = s.phone, status = s.status, office = s.office, company = s.company,
               active = s.active, updated_at = now()
WHEN NOT MATCHED THEN
    INSERT (tenant_id, email, employee_id, first_name, last_name, title, department, phone,
            status, office, company, active, updated_at)
    VALUES (:'tenant', s.email, s.employee_id, s.first_name, s.last_name, s.title,
            s.department, s.phone, s.status, s.office, s.company, s.active, now());
UPDATE peer_people p SET active = false, updated_at = now()
WHERE p.tenant_id = :'tenant' AND p.active
  AND NOT EXISTS (SELECT 1 FROM staging s WHERE lower(trim(s.email)) = p.email);
COMMIT;
"#;

/// Runs [`PEER_SQL`] with `psql` for `tenant` on `file`; its wall time.
fn peer_sql_once(url: &str, script: &Path, tenant: &str, file: &Path) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let out = std::process::Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", &format!("tenant={tenant}"), "-f"])
        .arg(script)
        .stdin(std::fs::File::open(file)?)
        .stdout(std::process::Stdio::null())
        .output()
        .context("running psql (apt install postgresql-client)")?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Sample {
        secs,
        ..Sample::default()
    })
}

/// PostgreSQL's floor under a first import of `tenant`: the rows Roster stored for it
/// are written to one file per core (untimed), an empty table like the directory
/// (`people`, with its index) is made, and bare `COPY ... FROM STDIN`s of those files
/// into it, one session per file and all at once (as the writer writes several batches
/// at once), are timed after [`quiesce`]. The table is dropped after. What no way of
/// storing the same rows in this PostgreSQL can beat on this machine.
fn copy_floor_once(url: &str, dir: &Path, tenant: &TenantId) -> anyhow::Result<f64> {
    let sessions = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let psql = |args: &[&str]| {
        let mut cmd = std::process::Command::new("psql");
        cmd.arg(url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(args);
        cmd
    };
    let finish = |child: std::process::Child| -> anyhow::Result<std::process::Output> {
        let out = child
            .wait_with_output()
            .context("running psql (apt install postgresql-client)")?;
        ensure!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    let run = |cmd: &mut std::process::Command| -> anyhow::Result<std::process::Output> {
        finish(
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("running psql (apt install postgresql-client)")?,
        )
    };
    let export = dir.join("floor-export.sql");
    std::fs::write(
        &export,
        "COPY (SELECT * FROM people WHERE tenant_id = :'tenant' \
         AND mod(abs(hashtext(email)::bigint), :n) = :k) TO STDOUT (FORMAT csv)\n",
    )?;
    let mut parts = Vec::new();
    for k in 0..sessions {
        let out = run(psql(&[]).args([
            "-v",
            &format!("tenant={tenant}"),
            "-v",
            &format!("n={sessions}"),
            "-v",
            &format!("k={k}"),
            "-f",
            &export.to_string_lossy(),
        ]))?;
        let part = dir.join(format!("floor-rows-{k}.csv"));
        std::fs::write(&part, &out.stdout)?;
        parts.push(part);
    }
    run(psql(&[
        "-c",
        "DROP TABLE IF EXISTS roster_floor",
        "-c",
        "CREATE TABLE roster_floor (LIKE people INCLUDING ALL)",
    ])
    .stdin(std::process::Stdio::null()))?;
    quiesce(url)?;
    let started = Instant::now();
    let children = parts
        .iter()
        .map(|part| {
            psql(&["-c", "COPY roster_floor FROM STDIN (FORMAT csv)"])
                .stdin(std::fs::File::open(part)?)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("running psql (apt install postgresql-client)")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for child in children {
        finish(child)?;
    }
    let secs = started.elapsed().as_secs_f64();
    run(psql(&["-c", "DROP TABLE roster_floor"]).stdin(std::process::Stdio::null()))?;
    for part in parts {
        std::fs::remove_file(part)?;
    }
    Ok(secs)
}

/// Lets no round pay for the writes an earlier one deferred: before each round (untimed),
/// PostgreSQL (when the database is one) writes out what earlier rounds left in its
/// buffers (`CHECKPOINT`), and the file system flushes its dirty pages (`sync`). Without
/// it, a round ran while the previous one's checkpoint went on in the background.
fn quiesce(url: &str) -> anyhow::Result<()> {
    if url.starts_with("postgres") {
        let out = std::process::Command::new("psql")
            .arg(url)
            .args(["-X", "-q", "-c", "CHECKPOINT"])
            .output()
            .context("running psql (apt install postgresql-client)")?;
        if !out.status.success() {
            // (Needs a superuser or `pg_checkpoint`; the figures then carry the debt.)
            eprintln!(
                "  warning: CHECKPOINT between rounds failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let synced = std::process::Command::new("sync")
        .status()
        .context("running sync")?;
    ensure!(synced.success(), "sync failed");
    Ok(())
}

/// A distributed install: the stage processes and a handle on their database.
struct Distributed {
    app: App,
    stages: Stages,
    broker: BrokerSettings,
}

impl Distributed {
    async fn start(
        store: &StoreSettings,
        broker: &BrokerSettings,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            broker.amqp_url.is_some() && !store.is_sqlite(),
            "--distributed and --peer need ROSTER_AMQP_URL and a PostgreSQL ROSTER_DATABASE_URL"
        );
        let mut broker = broker.clone();
        broker.queue_prefix = format!("bench{}.", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let store = StoreSettings {
            data_dir: dir.join("data"),
            ..store.clone()
        };
        let db = Db::connect(&store.database_url).await?;
        db.migrate().await?;
        let app = App::open_quiet(store.clone(), broker.clone()).await?;
        let stages = Stages::start(&store, &broker, dir)?;
        Ok(Distributed {
            app,
            stages,
            broker,
        })
    }

    /// One repetition's phases for a new tenant (an empty directory), and the main
    /// tenants it made.
    async fn round(&self, mix: &Mix<'_>) -> anyhow::Result<(Vec<Sample>, Vec<TenantId>)> {
        let (main, small) = mix.new_tenants()?;
        let mut pids = self.stages.pids();
        pids.push("self".into());
        let names = ["fetcher", "parser", "differ", "writer", "roster"];
        let mut out = Vec::new();
        for p in 0..PHASES.len() {
            for pid in &pids {
                reset_peak_rss(pid);
            }
            let t = import_all(&self.app, &mix.jobs(&main, &small, p)).await?;
            let each: Vec<u64> = pids.iter().map(|p| peak_rss_kib(p).unwrap_or(0)).collect();
            out.push(Sample {
                secs: t.as_secs_f64(),
                peak_kib: each.iter().copied().max().unwrap_or(0),
                sum_kib: each.iter().sum(),
                by_process: names.iter().copied().zip(each.iter().copied()).collect(),
            });
        }
        Ok((out, main))
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.stages);
        if let roster_shared::transport::TransportConfig::RabbitMq { url, prefix } =
            roster_shared::runner::transport_config(&self.broker)
        {
            roster_shared::transport::amqp::AmqpTransport::connect(&url, &prefix)
                .await?
                .delete_topology()
                .await?;
        }
        Ok(())
    }
}

/// One repetition's phases embedded, on a new SQLite database in `work`.
async fn embedded_round(work: &Path, mix: &Mix<'_>) -> anyhow::Result<Vec<Sample>> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let store = StoreSettings::sqlite(&work.join("roster.db"), work.join("data"));
    let app = App::open(
        store,
        BrokerSettings::default(),
        std::sync::Arc::new(roster_shared::stage::NoProgress),
        true,
    )
    .await?;
    let (main, small) = mix.new_tenants()?;
    let mut out = Vec::new();
    for p in 0..PHASES.len() {
        reset_peak_rss("self");
        let t = import_all(&app, &mix.jobs(&main, &small, p)).await?;
        let peak = peak_rss_kib("self").unwrap_or(0);
        out.push(Sample {
            secs: t.as_secs_f64(),
            peak_kib: peak,
            sum_kib: peak,
            by_process: vec![("roster", peak)],
        });
    }
    drop(app);
    std::fs::remove_dir_all(work)?;
    Ok(out)
}

/// One repetition's phases of the hand-written SQL, for a new tenant.
fn sql_round(url: &str, files: &Files, tenants: u32) -> anyhow::Result<Vec<Sample>> {
    let script = files.dir.join("peer.sql");
    std::fs::write(&script, PEER_SQL)?;
    let tenants = new_tenants("peer", tenants)?;
    files
        .phases
        .iter()
        .map(|f| {
            let started = Instant::now();
            for t in &tenants {
                peer_sql_once(url, &script, t.as_str(), f)?;
            }
            Ok(Sample {
                secs: started.elapsed().as_secs_f64(),
                ..Sample::default()
            })
        })
        .collect()
}

/// `n` new tenant ids starting with `prefix`, unlike any before.
fn new_tenants(prefix: &str, n: u32) -> anyhow::Result<Vec<TenantId>> {
    let base = uuid::Uuid::now_v7().simple().to_string();
    (0..n)
        .map(|i| Ok(TenantId::new(format!("{prefix}-{base}-{i}"))?))
        .collect()
}

/// Imports each (tenant, file) of `jobs` (all handed over first, then awaited) and
/// returns the wall time until the last run is applied.
async fn import_all(app: &App, jobs: &[(TenantId, PathBuf)]) -> anyhow::Result<Duration> {
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
    let mut runs = Vec::with_capacity(jobs.len());
    for (tenant, file) in jobs {
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
                ignore_encoding: false,
                seen: None,
                options: Default::default(),
            },
            &roster_fetcher::FetchLimits::default(),
        )
        .await?;
        runs.push(run);
    }
    for ((tenant, _), run) in jobs.iter().zip(runs) {
        let done = match pipeline.as_mut() {
            Some(p) => p.wait_for(app, tenant, run).await?,
            None => crate::pipeline::wait_for_run(app, tenant, run).await?,
        };
        ensure!(
            done.state == RunState::Applied,
            "bench run ended {}: {:?}",
            done.state,
            done.reason
        );
    }
    if let Some(p) = pipeline {
        p.stop().await?;
    }
    Ok(started.elapsed())
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
    let files = Files::generate(&dir, args.rows)?;
    let small_files = if args.small > 0 {
        let small_dir = dir.join("small");
        std::fs::create_dir_all(&small_dir)?;
        Some(Files::generate(&small_dir, args.small_rows)?)
    } else {
        None
    };
    let mix = Mix {
        files: &files,
        tenants: args.tenants,
        small: small_files.as_ref().map(|f| (f, args.small)),
    };
    let systems: Vec<System> = if args.peer {
        vec![System::Sql, System::Embedded, System::Distributed]
    } else if args.distributed {
        vec![System::Distributed]
    } else {
        vec![System::Embedded]
    };
    let distributed = if systems.contains(&System::Distributed) {
        Some(Distributed::start(&store, &args.broker, &dir).await?)
    } else {
        None
    };
    let url = store.database_url.expose().to_owned();
    // samples[system][phase]: one per repetition.
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); PHASES.len()]; systems.len()];
    let floor = args.floor && args.tenants == 1 && args.small == 0;
    if args.floor && !floor {
        eprintln!("  --floor measures one tenant alone: left out with --tenants or --small");
    }
    let mut floor_s = Vec::new();
    for rep in 0..args.repeat {
        // Alternating: every repetition runs each system once, in turn.
        for (s, system) in systems.iter().enumerate() {
            quiesce(&url)?;
            let round = match system {
                System::Sql => sql_round(&url, &files, args.tenants)?,
                System::Embedded => embedded_round(&dir.join(format!("rep{rep}")), &mix).await?,
                System::Distributed => {
                    let (round, main) = distributed
                        .as_ref()
                        .expect("started above")
                        .round(&mix)
                        .await?;
                    if floor {
                        let secs = copy_floor_once(&url, &dir, &main[0])?;
                        eprintln!("  rep {} PostgreSQL COPY floor: {secs:.2} s", rep + 1);
                        floor_s.push(secs);
                    }
                    round
                }
            };
            for (p, sample) in round.into_iter().enumerate() {
                eprintln!(
                    "  rep {} {}: {}: {:.2} s",
                    rep + 1,
                    system.label(),
                    PHASES[p],
                    sample.secs
                );
                samples[s][p].push(sample);
            }
        }
    }
    if let Some(d) = distributed {
        d.stop().await?;
    }
    if temporary {
        std::fs::remove_dir_all(&dir)?;
    }
    let results: Vec<PhaseResult> = systems
        .iter()
        .enumerate()
        .flat_map(|(s, system)| {
            let samples = &samples[s];
            PHASES.iter().enumerate().map(move |(p, name)| {
                let runs: Vec<f64> = samples[p].iter().map(|x| x.secs).collect();
                let m = median(runs.clone());
                PhaseResult {
                    system: *system,
                    phase: name,
                    rows: args.rows,
                    tenants: args.tenants,
                    median_s: m,
                    runs_s: runs,
                    rows_per_s: (args.rows * u64::from(args.tenants)) as f64 / m,
                    peak_rss_mib: samples[p].iter().map(|x| x.peak_kib).max().unwrap_or(0) as f64
                        / 1024.0,
                    peak_rss_sum_mib: samples[p].iter().map(|x| x.sum_kib).max().unwrap_or(0)
                        as f64
                        / 1024.0,
                    peak_rss_by_process_mib: samples[p]
                        .iter()
                        .flat_map(|x| x.by_process.iter().copied())
                        .fold(std::collections::BTreeMap::new(), |mut m, (name, kib)| {
                            let mib = kib as f64 / 1024.0;
                            let e = m.entry(name).or_insert(0.0f64);
                            *e = e.max(mib);
                            m
                        }),
                }
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else if args.peer {
        print_peer_table(&results, args.rows, args.tenants);
        if !floor_s.is_empty() {
            let runs = floor_s.len();
            let copy = median(floor_s);
            let sql = results
                .iter()
                .find(|r| r.system == System::Sql && r.phase == PHASES[0])
                .map_or(f64::NAN, |r| r.median_s);
            println!(
                "\nPostgreSQL floor of the first import (bare COPY of the rows Roster stored, one \
                 session per core, median of {}): {:.2} s, {:.1}x the SQL's first import",
                runs,
                copy,
                sql / copy
            );
        }
    } else {
        println!(
            "{:<22} {:>10} {:>10} {:>12} {:>14} {:>14}",
            "phase", "rows", "median s", "rows/s", "peak RSS MiB", "sum RSS MiB"
        );
        for r in &results {
            println!(
                "{:<22} {:>10} {:>10.2} {:>12.0} {:>14.0} {:>14.0}",
                r.phase,
                r.rows * u64::from(r.tenants),
                r.median_s,
                r.rows_per_s,
                r.peak_rss_mib,
                r.peak_rss_sum_mib
            );
        }
        if args.distributed {
            println!("\npeak RSS MiB of each process");
            for r in &results {
                let each: Vec<String> = r
                    .peak_rss_by_process_mib
                    .iter()
                    .map(|(name, mib)| format!("{name} {mib:.0}"))
                    .collect();
                println!("{:<22} {}", r.phase, each.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the side-by-side table: each phase's median per system, and how many times
/// faster than the hand-written SQL each Roster mode is.
fn print_peer_table(results: &[PhaseResult], rows: u64, tenants: u32) {
    let of = |system: System, phase: &str| {
        results
            .iter()
            .find(|r| r.system == system && r.phase == phase)
            .map_or(f64::NAN, |r| r.median_s)
    };
    println!(
        "{:<22} {:>10} {:>8} {:>10} {:>8} {:>12} {:>8}",
        format!("{rows} people x {tenants}"),
        "SQL s",
        "",
        "embedded s",
        "x SQL",
        "distributed s",
        "x SQL"
    );
    for phase in PHASES {
        let sql = of(System::Sql, phase);
        let (e, d) = (of(System::Embedded, phase), of(System::Distributed, phase));
        println!(
            "{phase:<22} {sql:>10.2} {:>8} {e:>10.2} {:>8.1} {d:>12.2} {:>8.1}",
            "",
            sql / e,
            sql / d
        );
    }
}
