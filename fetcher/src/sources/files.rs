//! Files pulled from a remote folder (SFTP, FTP, FTPS): one flow for every file server.
//!
//! 1. List the folder (regular files only, at most [`MAX_LISTED`]).
//! 2. Keep the names the source's `pattern` matches, never hidden names, markers or
//!    names still being written (`.part`, `.tmp`, `.filepart`, ...: see [`ignored`]).
//! 3. A file counts as finished when a `<name>.done` marker stands beside it, or when
//!    its size and modification time are the same in a second listing `stable_after`
//!    later (default 2 s). Others wait for the next fetch.
//! 4. A file is known by name, size, modification time and content. It is downloaded
//!    and hashed, and skipped if its content is that of the last file taken under its
//!    name (a touched but unchanged file is not taken again; a rewrite is, whatever its
//!    time says: the same second, or an older time). Only a local file whose size, time
//!    and change token (inode and status-change time, which no one can set back) are
//!    those of the last take is known without being read.
//! 5. Each new file is downloaded into the scratch area (hashing as it comes, never more
//!    than `ROSTER_MAX_FILE_BYTES`), stored and announced like an inbox file, then left,
//!    archived or deleted on the server as `after_fetch` says.
//!
//! Oldest first, so a tenant's runs follow the order the files were written.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use roster_shared::model::envelope::SyncMode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use super::spec::{AfterFetch, SourceSpec};
use super::{SourceError, Taken};
use crate::db::{self, SourceFile};
use crate::{Copied, FetchLimits, Submission, format_of};

/// Entries in one listing, at most: a folder holding more is refused as a whole rather
/// than read without bound.
pub const MAX_LISTED: usize = 100_000;

/// Default of a source's `stable_after`.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(2);

/// A regular file in a remote folder, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name in the folder (no path).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, milliseconds since the epoch (whole seconds on most servers).
    pub modified_ms: i64,
    /// For a local file, a token that changes whenever it is written or touched and that
    /// nobody can set back (inode and status-change time); `None` on a remote server,
    /// where only the content can prove a file unchanged.
    pub change: Option<String>,
}

/// A file server, connected and logged in. Paths are the server's (`/outgoing/a.csv`).
#[async_trait]
pub trait FileServer: Send {
    /// The regular files directly in `dir` (no folders, no links), at most
    /// [`MAX_LISTED`] (more is an error).
    async fn list(&mut self, dir: &str) -> Result<Vec<RemoteFile>, SourceError>;

    /// Writes the content of `path` to `out`; returns the bytes written.
    async fn download(
        &mut self,
        path: &str,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, SourceError>;

    /// Moves `from` to `to` on the server (for `after_fetch: archive`).
    async fn rename(&mut self, from: &str, to: &str) -> Result<(), SourceError>;

    /// Deletes `path` on the server (for `after_fetch: delete`).
    async fn delete(&mut self, path: &str) -> Result<(), SourceError>;

    /// Logs out and closes the connection.
    async fn close(self: Box<Self>) -> Result<(), SourceError>;
}

/// Names never taken: hidden files, markers, and files still being written under a
/// temporary name.
pub fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [
            ".tmp",
            ".part",
            ".filepart",
            ".partial",
            ".done",
            ".crdownload",
            ".swp",
            "~",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// `dir` joined with `name`, server-style.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The files of `first` that count as finished: a `.done` marker stands beside them
/// (in `first`), or `second` (a later listing) shows them with the same size and time.
/// Oldest first.
pub fn finished(
    first: &[RemoteFile],
    second: Option<&[RemoteFile]>,
    pattern: &glob::Pattern,
) -> Vec<RemoteFile> {
    let names: std::collections::HashSet<&str> = first.iter().map(|f| f.name.as_str()).collect();
    let mut out: Vec<RemoteFile> = first
        .iter()
        .filter(|f| !ignored(&f.name) && pattern.matches(&f.name))
        .filter_map(|f| {
            let settled = second.is_some_and(|s| s.iter().any(|g| g == f));
            let marked = names.contains(format!("{}.done", f.name).as_str());
            (settled || marked).then(|| f.clone())
        })
        .collect();
    out.sort_by(|a, b| (a.modified_ms, &a.name).cmp(&(b.modified_ms, &b.name)));
    out
}

/// What a pull needs to know besides the server.
pub struct Pull<'a> {
    /// Where files are stored and runs created.
    pub services: &'a roster_shared::stage::Services,
    /// Whose files.
    pub tenant: &'a roster_shared::model::ids::TenantId,
    /// The source's name (recorded with each run and taken file).
    pub source: &'a str,
    /// Its settings.
    pub spec: &'a SourceSpec,
    /// File size limit.
    pub limits: &'a FetchLimits,
    /// Download only, to local files; record, store and change nothing.
    pub dry_run: bool,
}

/// Takes every finished, new file of the source's folder from `server` (see the module
/// documentation). Returns what was taken, oldest first.
pub async fn pull(server: &mut dyn FileServer, p: &Pull<'_>) -> Result<Vec<Taken>, SourceError> {
    let dir = p.spec.path.as_deref().unwrap_or(".");
    let pattern = glob::Pattern::new(p.spec.pattern.as_deref().unwrap_or("*"))
        .map_err(|e| SourceError::Config(format!("pattern: {e}")))?;
    let first = server.list(dir).await?;
    let wait = p.spec.stable_after.map_or(DEFAULT_STABLE_AFTER, |s| s.0);
    let unmarked = first.iter().any(|f| {
        !ignored(&f.name)
            && pattern.matches(&f.name)
            && !first.iter().any(|g| g.name == format!("{}.done", f.name))
    });
    let second = if unmarked && !wait.is_zero() {
        tokio::time::sleep(wait).await;
        Some(server.list(dir).await?)
    } else if unmarked {
        Some(first.clone())
    } else {
        None
    };
    let mut taken = Vec::new();
    for file in finished(&first, second.as_deref(), &pattern) {
        if let Some(t) = take(server, p, dir, &file).await? {
            taken.push(t);
        }
    }
    Ok(taken)
}

/// Takes one finished file unless it is known; `None` if it is.
async fn take(
    server: &mut dyn FileServer,
    p: &Pull<'_>,
    dir: &str,
    file: &RemoteFile,
) -> Result<Option<Taken>, SourceError> {
    let db = &p.services.db;
    let last = db::last_take(db, p.tenant, p.source, &file.name).await?;
    if last
        .as_ref()
        .is_some_and(|l| l.unchanged(file.size, file.modified_ms, file.change.as_deref()))
    {
        return Ok(None);
    }
    let remote = join(dir, &file.name);
    let seen = SourceFile {
        name: file.name.clone(),
        size: file.size,
        modified_ms: file.modified_ms,
        change: file.change.clone(),
    };
    let submission = Submission {
        tenant: p.tenant.clone(),
        source: p.source.to_owned(),
        path: PathBuf::from(&remote),
        file_name: file.name.clone(),
        format: p.spec.format.unwrap_or_else(|| format_of(&file.name)),
        mode: p.spec.mode.unwrap_or(SyncMode::Full),
        encoding: p.spec.encoding.clone(),
        ignore_encoding: p.spec.ignore_encoding,
        seen: Some(seen.clone()),
        options: Default::default(),
    };
    let max = p.limits.max_file_bytes;
    if file.size > max && !p.dry_run {
        let run = crate::refuse_size(p.services, &submission, file.size, max).await?;
        after_fetch(server, p, dir, &file.name).await;
        return Ok(Some(Taken::Run(run)));
    }
    let scratch = p.services.blobs.scratch_path("pull");
    let copied = download(server, &remote, scratch.clone(), max).await;
    let copied = match copied {
        Ok(Some(c)) => c,
        Ok(None) => {
            let _ = tokio::fs::remove_file(&scratch).await;
            if p.dry_run {
                return Err(SourceError::Protocol(format!(
                    "{remote}: larger than {max} bytes (ROSTER_MAX_FILE_BYTES)"
                )));
            }
            let run = crate::refuse_size(p.services, &submission, max + 1, max).await?;
            after_fetch(server, p, dir, &file.name).await;
            return Ok(Some(Taken::Run(run)));
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&scratch).await;
            return Err(e);
        }
    };
    if p.dry_run {
        return Ok(Some(Taken::Local {
            name: file.name.clone(),
            path: copied.scratch,
        }));
    }
    if let Some(last) = last.filter(|l| l.sha256 == copied.sha256) {
        // Touched or rewritten with the same content: known.
        let _ = tokio::fs::remove_file(&copied.scratch).await;
        if !last.same_listing(&seen) {
            db::record_sighting(db, p.tenant, p.source, &seen, &last.sha256, &last.run_id).await?;
        }
        return Ok(None);
    }
    let run = crate::store_copied(p.services, submission, copied).await?;
    info!(tenant = %p.tenant, source = p.source, file = %remote, run = %run, "pulled");
    after_fetch(server, p, dir, &file.name).await;
    Ok(Some(Taken::Run(run)))
}

/// Leaves, archives or deletes a taken file (and its marker) as the source says. A
/// failure is logged, not raised: the file is recorded as taken, so it is not taken again.
async fn after_fetch(server: &mut dyn FileServer, p: &Pull<'_>, dir: &str, name: &str) {
    let action = p.spec.after_fetch.unwrap_or(AfterFetch::Leave);
    let marker = format!("{name}.done");
    let result = match action {
        AfterFetch::Leave => return,
        AfterFetch::Archive => {
            let to = p.spec.archive_path.as_deref().unwrap_or("done");
            let r = server.rename(&join(dir, name), &join(to, name)).await;
            let _ = server.delete(&join(dir, &marker)).await;
            r
        }
        AfterFetch::Delete => {
            let r = server.delete(&join(dir, name)).await;
            let _ = server.delete(&join(dir, &marker)).await;
            r
        }
    };
    if let Err(e) = result {
        warn!(tenant = %p.tenant, source = p.source, file = name, action = %action, error = %e,
            "the file was taken but could not be {}d on the server", action.name());
    }
}

/// Downloads `remote` into `scratch`, hashing as it comes; `None` if more than `max`
/// bytes came.
async fn download(
    server: &mut dyn FileServer,
    remote: &str,
    scratch: PathBuf,
    max: u64,
) -> Result<Option<Copied>, SourceError> {
    let file = tokio::fs::File::create(&scratch)
        .await
        .map_err(|e| SourceError::local("creating a scratch file", &e))?;
    let mut out = HashingWriter {
        inner: tokio::io::BufWriter::with_capacity(1 << 16, file),
        hasher: Sha256::new(),
        written: 0,
        max,
    };
    let result = server.download(remote, &mut out).await;
    if out.written > max {
        return Ok(None);
    }
    result?;
    out.inner
        .flush()
        .await
        .map_err(|e| SourceError::local("writing a scratch file", &e))?;
    Ok(Some(Copied {
        scratch,
        sha256: hex::encode(out.hasher.finalize()),
        size: out.written,
    }))
}

/// Writes through to `inner`, hashing what passes and refusing more than `max` bytes.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) written: u64,
    pub(crate) max: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.written + buf.len() as u64 > self.max {
            self.written += buf.len() as u64;
            return Poll::Ready(Err(std::io::Error::other(format!(
                "larger than {} bytes (ROSTER_MAX_FILE_BYTES)",
                self.max
            ))));
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, size: u64, t: i64) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size,
            modified_ms: t,
            change: None,
        }
    }

    #[test]
    fn finished_files_are_stable_or_marked_and_oldest_first() {
        let all = glob::Pattern::new("*.csv").unwrap();
        let first = [
            f("b.csv", 10, 2000),
            f("a.csv", 10, 1000),
            f("growing.csv", 5, 3000),
            f("marked.csv", 1, 4000),
            f("marked.csv.done", 0, 4000),
            f("upload.csv.part", 9, 1000),
            f(".hidden.csv", 9, 1000),
            f("notes.txt", 9, 1000),
        ];
        let second = [
            f("a.csv", 10, 1000),
            f("b.csv", 10, 2000),
            f("growing.csv", 9, 3001),
            f("marked.csv", 2, 4001),
        ];
        let got: Vec<String> = finished(&first, Some(&second), &all)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(got, ["a.csv", "b.csv", "marked.csv"]);
        // Without a second listing only marked files are finished.
        let got: Vec<String> = finished(&first, None, &all)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(got, ["marked.csv"]);
    }

    #[test]
    fn names_being_written_are_ignored() {
        for name in [
            "x.csv.part",
            "x.CSV.TMP",
            "x.filepart",
            ".x.csv",
            "x.csv.done",
            "x~",
        ] {
            assert!(ignored(name), "{name}");
        }
        assert!(!ignored("x.csv"));
        assert_eq!(join("/out", "a.csv"), "/out/a.csv");
        assert_eq!(join("/out/", "a.csv"), "/out/a.csv");
        assert_eq!(join("", "a.csv"), "a.csv");
    }
}
