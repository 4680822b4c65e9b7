//! The per-tenant inbox folders: `<inbox>/<tenant>/` (full syncs) and
//! `<inbox>/<tenant>/delta/` (delta syncs).
//!
//! Promises:
//! - a file is taken only once its upload is finished (a `.done` marker beside it, or
//!   size and modification time unchanged across two polls; dot-files and `.tmp`,
//!   `.part`, ... names are never taken), and never twice;
//! - no symbolic link is ever followed, at any level: the inbox is walked with
//!   directory descriptors and every step is opened with `O_NOFOLLOW`, so a link in one
//!   tenant's inbox cannot read another tenant's files (or anything else), even if it
//!   is swapped in between a listing and a read. A link is skipped with a warning that
//!   names it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use roster_shared::error::StageError;
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::ids::{RunId, TenantId};
use roster_shared::stage::Services;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use tracing::warn;

use crate::db::{self, SourceFile};
use crate::{FetchLimits, Submission, format_of, store};

/// What the inbox looked like at the last poll: file to (size, modified ms).
#[derive(Debug, Default)]
pub struct InboxState {
    last: HashMap<PathBuf, (u64, i64)>,
}

/// Names never taken: hidden files, files still being written under a temporary name,
/// and markers.
fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [
            ".tmp",
            ".part",
            ".filepart",
            ".partial",
            ".done",
            ".crdownload",
            "~",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// One regular file found in an inbox folder.
#[derive(Debug, Clone)]
struct Found {
    tenant: TenantId,
    mode: SyncMode,
    /// Its name in its folder.
    name: String,
    /// Its path, for logs and to know it again at the next poll.
    path: PathBuf,
    size: u64,
    modified_ms: i64,
    /// Whether a `.done` marker stands beside it.
    marked: bool,
}

/// Opens `name` in `dir` without following a link, with `flags`.
fn open_in(dir: &OwnedFd, name: &OsStr, flags: OFlags) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The type, size and modification time (ms) of `name` in `dir`, not following a link.
fn stat_in(dir: &OwnedFd, name: &OsStr) -> std::io::Result<(FileType, u64, i64)> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let modified = st.st_mtime * 1000 + (st.st_mtime_nsec / 1_000_000) as i64;
    Ok((
        FileType::from_raw_mode(st.st_mode),
        u64::try_from(st.st_size).unwrap_or(0),
        modified,
    ))
}

/// The names in the directory `dir`.
fn names(dir: &OwnedFd) -> std::io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// Warns about a link found where a tenant's files are.
fn skip_link(path: &Path) {
    warn!(link = %path.display(), "skipping a symbolic link in the inbox: links are never followed");
}

/// Every regular file in every tenant's inbox folders (blocking).
fn list(inbox: &Path) -> std::io::Result<Vec<Found>> {
    let root = match rustix::fs::open(
        inbox,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut found = Vec::new();
    for tenant_name in names(&root)? {
        let name = OsStr::from_bytes(&tenant_name);
        let Ok(tenant) = TenantId::new(name.to_string_lossy()) else {
            continue;
        };
        let tenant_path = inbox.join(name);
        match stat_in(&root, name)? {
            (FileType::Directory, ..) => {}
            (FileType::Symlink, ..) => {
                skip_link(&tenant_path);
                continue;
            }
            _ => continue,
        }
        let tenant_dir = open_in(&root, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
        scan_folder(
            &tenant_dir,
            &tenant,
            SyncMode::Full,
            &tenant_path,
            &mut found,
        )?;
        let delta = OsStr::new("delta");
        match stat_in(&tenant_dir, delta) {
            Ok((FileType::Directory, ..)) => {
                let delta_dir = open_in(&tenant_dir, delta, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let delta_path = tenant_path.join("delta");
                scan_folder(
                    &delta_dir,
                    &tenant,
                    SyncMode::Delta,
                    &delta_path,
                    &mut found,
                )?;
            }
            Ok((FileType::Symlink, ..)) => skip_link(&tenant_path.join("delta")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// The regular files of one inbox folder.
fn scan_folder(
    dir: &OwnedFd,
    tenant: &TenantId,
    mode: SyncMode,
    path: &Path,
    found: &mut Vec<Found>,
) -> std::io::Result<()> {
    let all = names(dir)?;
    for raw in &all {
        let name = OsStr::from_bytes(raw);
        let text = name.to_string_lossy().into_owned();
        if ignored(&text) {
            continue;
        }
        let (kind, size, modified_ms) = match stat_in(dir, name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // gone meanwhile
            Err(e) => return Err(e),
        };
        match kind {
            FileType::RegularFile => {}
            FileType::Symlink => {
                skip_link(&path.join(name));
                continue;
            }
            _ => continue,
        }
        let marker = [raw.as_slice(), b".done"].concat();
        found.push(Found {
            tenant: tenant.clone(),
            mode,
            name: text,
            path: path.join(name),
            size,
            modified_ms,
            marked: all.contains(&marker),
        });
    }
    Ok(())
}

/// Opens the file `found` describes for reading, walking from `inbox` again without
/// following any link (blocking). Fails if any step has become a link or the file is
/// no longer a regular file.
fn open_found(inbox: &Path, found: &Found) -> std::io::Result<File> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let root = rustix::fs::open(inbox, dir_flags | OFlags::CLOEXEC, Mode::empty())?;
    let mut dir = open_in(&root, OsStr::new(found.tenant.as_str()), dir_flags)?;
    if found.mode == SyncMode::Delta {
        dir = open_in(&dir, OsStr::new("delta"), dir_flags)?;
    }
    let fd = open_in(&dir, OsStr::new(&found.name), OFlags::RDONLY)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// One pass over every tenant's inbox: takes each finished, new file. Returns the runs
/// started. A file that cannot be taken (unreadable, say) is logged and skipped; the
/// others are taken all the same, and it is tried again at the next poll.
pub async fn poll_inbox(
    services: &Services,
    inbox: &Path,
    limits: &FetchLimits,
    state: &mut InboxState,
) -> Result<Vec<RunId>, StageError> {
    let root = inbox.to_owned();
    let found = tokio::task::spawn_blocking(move || list(&root))
        .await
        .map_err(|e| StageError::internal_from("listing the inbox", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let mut seen = HashMap::new();
    let mut started = Vec::new();
    for file in found {
        let now = (file.size, file.modified_ms);
        let stable = state.last.get(&file.path) == Some(&now);
        seen.insert(file.path.clone(), now);
        if !(file.marked || stable) {
            continue;
        }
        match take(services, inbox, limits, &file).await {
            Ok(Some(run)) => started.push(run),
            Ok(None) => {}
            Err(e) if matches!(e, StageError::Database(_) | StageError::Transport(_)) => {
                return Err(e);
            }
            Err(e) => {
                warn!(tenant = %file.tenant, file = %file.path.display(), error = %e, "cannot take the file; skipping it");
            }
        }
    }
    state.last = seen;
    Ok(started)
}

/// Takes one finished inbox file unless it was taken before; `None` if it was.
async fn take(
    services: &Services,
    inbox: &Path,
    limits: &FetchLimits,
    file: &Found,
) -> Result<Option<RunId>, StageError> {
    let shown = if file.mode == SyncMode::Delta {
        format!("delta/{}", file.name)
    } else {
        file.name.clone()
    };
    if db::was_fetched(
        &services.db,
        &file.tenant,
        "inbox",
        &shown,
        file.size,
        file.modified_ms,
    )
    .await?
    {
        return Ok(None);
    }
    let (root, found) = (inbox.to_owned(), file.clone());
    let opened = tokio::task::spawn_blocking(move || open_found(&root, &found))
        .await
        .map_err(|e| StageError::internal_from("opening an inbox file", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let run = store(
        services,
        Submission {
            tenant: file.tenant.clone(),
            source: "inbox".into(),
            path: file.path.clone(),
            file_name: shown.clone(),
            format: format_of(&file.name),
            mode: file.mode,
            encoding: None,
            seen: Some(SourceFile {
                name: shown,
                size: file.size,
                modified_ms: file.modified_ms,
            }),
        },
        opened,
        limits,
    )
    .await?;
    Ok(Some(run))
}
