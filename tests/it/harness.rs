//! Starting a Roster install for a test and driving it through the `roster` command line,
//! exactly as an operator would. Every install has its own folder, database, queue prefix
//! and tenant ids.
//!
//! - [`Install::embedded`]: the `roster` binary alone, SQLite in a temp folder.
//! - [`Install::distributed`]: the four stage binaries as separate processes on RabbitMQ
//!   and PostgreSQL (`ROSTER_TEST_AMQP_URL`, `ROSTER_TEST_PG_URL`, as `scripts/test.sh`
//!   sets them), with `roster` talking to them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Where the workspace's binaries are (the test binary lives in `target/<profile>/deps`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The test broker.
pub fn amqp_url() -> String {
    std::env::var("ROSTER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The test PostgreSQL server's maintenance database.
pub fn pg_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The stage binaries, by stage name.
pub const STAGES: [&str; 4] = ["fetcher", "parser", "differ", "writer"];

/// A Roster install for one test.
pub struct Install {
    dir: TempDir,
    env: Vec<(String, String)>,
    /// Name of the backend, for messages.
    pub backend: &'static str,
    /// The running stage processes (distributed only).
    stages: BTreeMap<&'static str, Child>,
    /// The database to drop at the end (distributed only).
    database: Option<String>,
}

/// What one `roster` invocation did.
#[derive(Debug)]
pub struct Ran {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The JSON on stdout.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A directory row as the CSV prints it: header to value.
pub type Row = BTreeMap<String, String>;

fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(pg_url())
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Install {
    /// The embedded default: stages in the `roster` process, SQLite in a temp folder.
    pub fn embedded() -> Install {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = vec![
            (
                "ROSTER_DATABASE_URL".into(),
                format!("sqlite://{}", dir.path().join("roster.db").display()),
            ),
            (
                "ROSTER_DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
        ];
        Install {
            dir,
            env,
            backend: "embedded",
            stages: BTreeMap::new(),
            database: None,
        }
    }

    /// The four stage binaries as processes on RabbitMQ and a fresh PostgreSQL database,
    /// migrated with `roster migrate`.
    pub fn distributed() -> Install {
        Self::distributed_with(&[])
    }

    /// All four stages in one `roster serve` process, on RabbitMQ and PostgreSQL.
    pub fn served() -> Install {
        let mut install = Self::on_broker(&[], "served");
        install.start_process("serve", "roster", &["serve"]);
        install
    }

    /// [`Install::distributed`] with extra environment for every process.
    pub fn distributed_with(extra: &[(&str, &str)]) -> Install {
        let mut install = Self::on_broker(extra, "distributed");
        for stage in STAGES {
            install.start_stage(stage);
        }
        install
    }

    /// A fresh database (migrated) and queue prefix on the test broker; no process yet
    /// (start them with [`Install::start_process`]).
    pub fn on_broker(extra: &[(&str, &str)], backend: &'static str) -> Install {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("roster_test_{}", &id[..12]);
        psql(&format!("CREATE DATABASE {database}"));
        let base = pg_url();
        let db_url = format!(
            "{}/{database}",
            &base[..base.rfind('/').expect("a database in the URL")]
        );
        let mut env: Vec<(String, String)> = vec![
            ("ROSTER_DATABASE_URL".into(), db_url),
            (
                "ROSTER_DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
            ("ROSTER_AMQP_URL".into(), amqp_url()),
            ("ROSTER_QUEUE_PREFIX".into(), format!("it{}.", &id[..12])),
            ("ROSTER_RETRY_BASE_MS".into(), "250".into()),
            ("ROSTER_POLL_INTERVAL_MS".into(), "200".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let install = Install {
            dir,
            env,
            backend,
            stages: BTreeMap::new(),
            database: Some(database),
        };
        let ran = install.roster(&["migrate"]);
        assert_eq!(ran.code, 0, "migrate: {}", ran.stderr);
        install
    }

    /// The install's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The value of one of the install's environment variables.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A command for binary `name` with the install's environment (and no stray
    /// `ROSTER_*` from the caller's).
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(bin_dir().join(name));
        for (key, _) in std::env::vars() {
            if key.starts_with("ROSTER_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Starts (or restarts) the stage process `stage`, logging to `<dir>/<stage>.log`.
    pub fn start_stage(&mut self, stage: &'static str) {
        self.start_process(stage, &format!("roster-{stage}"), &[]);
    }

    /// Starts binary `bin` with `args` as the process called `name`, logging to
    /// `<dir>/<name>.log`.
    pub fn start_process(&mut self, name: &'static str, bin: &str, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let child = self
            .command(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{bin} starts (build it with `cargo build --workspace --bins`): {e}")
            });
        self.stages.insert(name, child);
    }

    /// Starts `roster serve` with the import API on a free loopback port (`ROSTER_API_ADDR`)
    /// and waits until it takes connections; returns the API's base URL.
    pub fn serve_api(&mut self) -> String {
        let addr = free_addr();
        self.env.push(("ROSTER_API_ADDR".into(), addr.clone()));
        self.start_process("serve", "roster", &["serve"]);
        self.wait_for_port(&addr);
        format!("http://{addr}")
    }

    /// Sets an environment variable for the processes started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Waits until something listens on `addr`.
    pub fn wait_for_port(&self, addr: &str) {
        self.wait_until("a port to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
    }

    /// Stops the process `name` with SIGTERM and returns its exit code, failing if it
    /// takes longer than `within`.
    pub fn terminate(&mut self, name: &str, within: Duration) -> i32 {
        let mut child = self.stages.remove(name).expect("a running process");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > within {
                let _ = child.kill();
                panic!(
                    "{name} did not stop within {within:?} of SIGTERM\n{}",
                    self.stage_log(name)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of the process `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.stages.get(name).map(Child::id)
    }

    /// The full log of the process `name`.
    pub fn full_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Takes charge of a process started by the test (stopped when the install drops).
    pub fn adopt(&mut self, name: &'static str, child: Child) {
        self.stages.insert(name, child);
    }

    /// Kills the stage process `stage` with SIGKILL: no chance to finish anything.
    pub fn kill_stage(&mut self, stage: &str) {
        let mut child = self.stages.remove(stage).expect("a running stage");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The last lines of a stage's log, for failure messages.
    pub fn stage_log(&self, stage: &str) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("{stage}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Runs `roster` with `args`.
    pub fn roster(&self, args: &[&str]) -> Ran {
        Ran::from(
            self.command("roster")
                .args(args)
                .output()
                .expect("roster runs"),
        )
    }

    /// Starts `roster` with `args` without waiting.
    pub fn spawn_roster(&self, args: &[&str]) -> Child {
        self.command("roster")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roster starts")
    }

    /// Writes `content` to a file named `name` in the install's folder.
    pub fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join("files").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// `roster import --json` of `path` for `tenant`, with `extra` flags; the exit code
    /// and the summary.
    pub fn import(&self, tenant: &str, path: &Path, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["import", "--tenant", tenant, "--json"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let ran = self.roster(&args);
        assert!(
            (0..=2).contains(&ran.code) && !ran.stdout.trim().is_empty(),
            "[{}] import crashed ({}):\n{}\n{}",
            self.backend,
            ran.code,
            ran.stderr,
            self.logs()
        );
        (ran.code, ran.json())
    }

    /// Imports and expects it applied; returns the summary.
    pub fn import_ok(&self, tenant: &str, path: &Path, extra: &[&str]) -> Value {
        let (code, summary) = self.import(tenant, path, extra);
        assert_eq!(code, 0, "[{}] import failed: {summary:#}", self.backend);
        assert_eq!(
            summary["status"], "applied",
            "[{}] {summary:#}",
            self.backend
        );
        summary
    }

    /// Every stage's recent log (distributed), for failure messages.
    pub fn logs(&self) -> String {
        STAGES
            .iter()
            .chain(&["serve"])
            .filter(|s| self.dir.path().join(format!("{s}.log")).exists())
            .map(|s| format!("--- {s} ---\n{}", self.stage_log(s)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The raw CSV `roster directory` prints.
    pub fn directory_csv(&self, tenant: &str, all: bool) -> String {
        let mut args = vec!["directory", "--tenant", tenant];
        if all {
            args.push("--all");
        }
        let ran = self.roster(&args);
        assert_eq!(
            ran.code, 0,
            "[{}] directory failed: {}",
            self.backend, ran.stderr
        );
        ran.stdout
    }

    /// The directory as rows.
    pub fn directory(&self, tenant: &str, all: bool) -> Vec<Row> {
        let csv = self.directory_csv(tenant, all);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers().unwrap().clone();
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                headers
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The emails in the directory, in order.
    pub fn emails(&self, tenant: &str, all: bool) -> Vec<String> {
        self.directory(tenant, all)
            .into_iter()
            .map(|r| r["email"].clone())
            .collect()
    }

    /// Fails if `secret` is in any file Roster wrote in the install's folder (database,
    /// blobs, logs; not the tenants file nor `keys/`, where the operator keeps secrets on
    /// purpose) or in any of `also` (outputs of commands).
    pub fn assert_no_secret(&self, secret: &str, also: &[&str]) {
        fn walk(dir: &Path) -> Vec<PathBuf> {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if !path.ends_with("keys") {
                        out.extend(walk(&path));
                    }
                } else if !path.ends_with("tenants.yaml") {
                    out.push(path);
                }
            }
            out
        }
        for text in also {
            assert!(!text.contains(secret), "the secret leaked into: {text}");
        }
        for file in walk(self.dir.path()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the secret leaked into {}", file.display());
        }
    }

    /// Polls `check` until it holds or `timeout` passes.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < timeout,
                "[{}] timed out waiting for {what}\n{}",
                self.backend,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        if std::env::var_os("ROSTER_TEST_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            eprintln!("[{}] kept {}", self.backend, kept.display());
        }
        for (_, mut child) in std::mem::take(&mut self.stages) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(prefix) = self.env("ROSTER_QUEUE_PREFIX").map(str::to_owned) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                if let Ok(t) = roster_shared::transport::amqp::AmqpTransport::connect(
                    &amqp_url().into(),
                    &prefix,
                )
                .await
                {
                    let _ = t.delete_topology().await;
                }
            });
        }
        if let Some(db) = &self.database {
            let _ = Command::new("psql")
                .arg(pg_url())
                .args(["-qc", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")])
                .output();
        }
    }
}

/// A tenant id unique to this test run.
/// A free loopback address (`127.0.0.1:<port>`) for a server to listen on.
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

pub fn tenant(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
