//! Local folders polled for files, one per tenant: the inboxes `<inbox>/<tenant>/` (full
//! syncs) and `<inbox>/<tenant>/delta/` (delta syncs), and the jails of our SFTP server
//! (`roster push-server`) `<push>/<tenant>/upload/` (full) and `<push>/<tenant>/delta/`
//! ([`Layout`]).
//!
//! Promises:
//! - a file is taken only once its upload is finished (a `.done` marker beside it, or
//!   size and modification time unchanged across two polls; dot-files and `.tmp`,
//!   `.part`, ... names are never taken), and never twice: a file is known by name,
//!   size, time and content, so neither a same-second rewrite nor one with an older time
//!   is skipped, and a touched but unchanged file is not taken again;
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
use crate::sources::files::ignored;
use crate::{FetchLimits, Submission, copy, format_of, refuse_size, store_copied};

/// How a root folder holds its tenants' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The source name runs and taken files record (`inbox`, `push`).
    pub source: &'static str,
    /// The folder of full files inside a tenant's folder (`None`: the tenant's folder).
    pub full: Option<&'static str>,
    /// The folder of delta files inside a tenant's folder.
    pub delta: &'static str,
}

impl Layout {
    /// `$ROSTER_DATA_DIR/inbox`: `<tenant>/` and `<tenant>/delta/`.
    pub const INBOX: Layout = Layout {
        source: "inbox",
        full: None,
        delta: "delta",
    };

    /// Our SFTP server's jails: `<tenant>/upload/` and `<tenant>/delta/`.
    pub const PUSH: Layout = Layout {
        source: "push",
        full: Some("upload"),
        delta: "delta",
    };

    /// The folder path (inside the tenant's) holding files of `mode`, as shown in file
    /// names (`delta/x.csv`); empty for the tenant's folder itself.
    fn folder(self, mode: SyncMode) -> &'static str {
        match mode {
            SyncMode::Full => self.full.unwrap_or(""),
            SyncMode::Delta => self.delta,
        }
    }
}

/// What the folders looked like at the last poll: file to (size, modified ms).
#[derive(Debug, Default)]
pub struct InboxState {
    last: HashMap<PathBuf, (u64, i64)>,
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
    /// Inode and status-change time ([`crate::sources::local::change_token`]).
    change: String,
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
fn stat_in(dir: &OwnedFd, name: &OsStr) -> std::io::Result<(FileType, u64, i64, String)> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let modified = st.st_mtime * 1000 + (st.st_mtime_nsec / 1_000_000) as i64;
    Ok((
        FileType::from_raw_mode(st.st_mode),
        u64::try_from(st.st_size).unwrap_or(0),
        modified,
        crate::sources::local::change_token(&st),
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

/// Every regular file in every tenant's folders under `root` (blocking).
fn list(root_path: &Path, layout: Layout) -> std::io::Result<Vec<Found>> {
    let root = match rustix::fs::open(
        root_path,
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
        let tenant_path = root_path.join(name);
        match stat_in(&root, name)? {
            (FileType::Directory, ..) => {}
            (FileType::Symlink, ..) => {
                skip_link(&tenant_path);
                continue;
            }
            _ => continue,
        }
        let tenant_dir = open_in(&root, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
        for mode in [SyncMode::Full, SyncMode::Delta] {
            let folder = layout.folder(mode);
            if folder.is_empty() {
                scan_folder(&tenant_dir, &tenant, mode, &tenant_path, &mut found)?;
                continue;
            }
            let sub = OsStr::new(folder);
            let sub_path = tenant_path.join(folder);
            match stat_in(&tenant_dir, sub) {
                Ok((FileType::Directory, ..)) => {
                    let dir = open_in(&tenant_dir, sub, OFlags::RDONLY | OFlags::DIRECTORY)?;
                    scan_folder(&dir, &tenant, mode, &sub_path, &mut found)?;
                }
                Ok((FileType::Symlink, ..)) => skip_link(&sub_path),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
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
        let (kind, size, modified_ms, change) = match stat_in(dir, name) {
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
            change,
            marked: all.contains(&marker),
        });
    }
    Ok(())
}

/// Opens the file `found` describes for reading, walking from `root` again without
/// following any link (blocking). Fails if any step has become a link or the file is
/// no longer a regular file.
fn open_found(root: &Path, layout: Layout, found: &Found) -> std::io::Result<File> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY;
    let root = rustix::fs::open(root, dir_flags | OFlags::CLOEXEC, Mode::empty())?;
    let mut dir = open_in(&root, OsStr::new(found.tenant.as_str()), dir_flags)?;
    let folder = layout.folder(found.mode);
    if !folder.is_empty() {
        dir = open_in(&dir, OsStr::new(folder), dir_flags)?;
    }
    let fd = open_in(&dir, OsStr::new(&found.name), OFlags::RDONLY)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// One pass over every tenant's inbox (`$ROSTER_DATA_DIR/inbox`): [`poll`] with
/// [`Layout::INBOX`].
pub async fn poll_inbox(
    services: &Services,
    inbox: &Path,
    limits: &FetchLimits,
    state: &mut InboxState,
) -> Result<Vec<RunId>, StageError> {
    poll(services, inbox, Layout::INBOX, limits, state).await
}

/// One pass over every tenant's folders under `root`: takes each finished, new file.
/// Returns the runs started. A file that cannot be taken (unreadable, say) is logged and
/// skipped; the others are taken all the same, and it is tried again at the next poll.
pub async fn poll(
    services: &Services,
    root: &Path,
    layout: Layout,
    limits: &FetchLimits,
    state: &mut InboxState,
) -> Result<Vec<RunId>, StageError> {
    let root_path = root.to_owned();
    let found = tokio::task::spawn_blocking(move || list(&root_path, layout))
        .await
        .map_err(|e| StageError::internal_from("listing the inbox", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let mut seen = HashMap::new();
    let mut started = Vec::new();
    for file in found {
        let shape = (file.size, file.modified_ms);
        let stable = state.last.get(&file.path) == Some(&shape);
        seen.insert(file.path.clone(), shape);
        if !(file.marked || stable) {
            continue;
        }
        match take(services, root, layout, limits, &file).await {
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

/// Takes one finished file unless it is known (see the module documentation); `None` if
/// it is.
async fn take(
    services: &Services,
    root: &Path,
    layout: Layout,
    limits: &FetchLimits,
    file: &Found,
) -> Result<Option<RunId>, StageError> {
    let folder = layout.folder(file.mode);
    let shown = if folder.is_empty() || file.mode == SyncMode::Full {
        file.name.clone()
    } else {
        format!("{folder}/{}", file.name)
    };
    let last = db::last_take(&services.db, &file.tenant, layout.source, &shown).await?;
    if last
        .as_ref()
        .is_some_and(|l| l.unchanged(file.size, file.modified_ms, Some(&file.change)))
    {
        return Ok(None);
    }
    let seen = SourceFile {
        name: shown.clone(),
        size: file.size,
        modified_ms: file.modified_ms,
        change: Some(file.change.clone()),
    };
    let sub = Submission {
        tenant: file.tenant.clone(),
        source: layout.source.into(),
        path: file.path.clone(),
        file_name: shown.clone(),
        format: format_of(&file.name),
        mode: file.mode,
        encoding: None,
        ignore_encoding: false,
        seen: Some(seen.clone()),
        options: Default::default(),
    };
    let max = limits.max_file_bytes;
    if file.size > max {
        return refuse_size(services, &sub, file.size, max).await.map(Some);
    }
    let (root, found) = (root.to_owned(), file.clone());
    let opened = tokio::task::spawn_blocking(move || open_found(&root, layout, &found))
        .await
        .map_err(|e| StageError::internal_from("opening an inbox file", e))?
        .map_err(|e| StageError::Blob(e.into()))?;
    let Some(copied) = copy(services, opened, max).await? else {
        return refuse_size(services, &sub, max + 1, max).await.map(Some);
    };
    if let Some(last) = last.filter(|l| l.sha256 == copied.sha256) {
        // Touched or rewritten with the same content: known.
        let _ = tokio::fs::remove_file(&copied.scratch).await;
        if !last.same_listing(&seen) {
            db::record_sighting(
                &services.db,
                &file.tenant,
                layout.source,
                &seen,
                &last.sha256,
                &last.run_id,
            )
            .await?;
        }
        return Ok(None);
    }
    store_copied(services, sub, copied).await.map(Some)
}
