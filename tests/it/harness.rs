//! Starting a Roster install for a test and driving it through the `roster` command line,
//! exactly as an operator would. Every install has its own folder, database and tenant
//! ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A Roster install for one test.
pub struct Install {
    dir: TempDir,
    env: Vec<(String, String)>,
    /// Name of the backend, for messages.
    pub backend: &'static str,
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
        }
    }

    /// The install's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
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

    /// Runs `roster` with `args`.
    pub fn roster(&self, args: &[&str]) -> Ran {
        Ran::from(
            self.command("roster")
                .args(args)
                .output()
                .expect("roster runs"),
        )
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
        let path = path.to_str().unwrap();
        args.push(path);
        let ran = self.roster(&args);
        assert!(
            ran.code == 0 || ran.code == 1 || ran.code == 2,
            "[{}] import crashed ({}):\n{}",
            self.backend,
            ran.code,
            ran.stderr
        );
        if ran.stdout.trim().is_empty() {
            panic!(
                "[{}] import printed no summary:\n{}",
                self.backend, ran.stderr
            );
        }
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
}

/// A tenant id unique to this test run.
pub fn tenant(name: &str) -> String {
    format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
