//! A local folder as a file server (sources of kind `inbox` with their own `path`):
//! listed, read, moved and deleted without ever following a symbolic link below the
//! configured folder (every step is opened relative to the folder's descriptor with
//! `O_NOFOLLOW`), so a link dropped into the folder cannot make Roster read anything
//! else.

use std::ffi::OsStr;
use std::path::Path;

use async_trait::async_trait;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::SourceError;
use super::files::{FileServer, MAX_LISTED, RemoteFile};
use super::spec::SourceSpec;

/// A local folder.
pub struct LocalFolder {
    what: String,
}

/// Opens the source's folder (`path`). `what` names the source in errors.
pub fn open(spec: &SourceSpec, what: &str) -> Result<Box<dyn FileServer>, SourceError> {
    if spec.path.is_none() {
        return Err(SourceError::Config(format!("{what}: no path")));
    }
    Ok(Box::new(LocalFolder {
        what: what.to_owned(),
    }))
}

fn dir_fd(path: &str) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `path` split into its folder and its name.
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

impl LocalFolder {
    fn io(&self, doing: &str, path: &str, e: &std::io::Error) -> SourceError {
        SourceError::Protocol(format!("{}: {doing} {path}: {e}", self.what))
    }
}

fn list_blocking(dir: &str) -> std::io::Result<Vec<RemoteFile>> {
    let fd = dir_fd(dir)?;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let st = match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            continue;
        }
        if out.len() == MAX_LISTED {
            return Err(std::io::Error::other(format!(
                "more than {MAX_LISTED} files in the folder"
            )));
        }
        out.push(RemoteFile {
            name: name.to_owned(),
            size: u64::try_from(st.st_size).unwrap_or(0),
            modified_ms: st.st_mtime * 1000 + (st.st_mtime_nsec / 1_000_000) as i64,
            change: Some(change_token(&st)),
        });
    }
    Ok(out)
}

/// What changes whenever a file is written, touched or replaced and cannot be set back:
/// its inode and status-change time.
pub fn change_token(st: &rustix::fs::Stat) -> String {
    format!("{}:{}.{:09}", st.st_ino, st.st_ctime, st.st_ctime_nsec)
}

fn open_blocking(path: &str) -> std::io::Result<std::fs::File> {
    let (dir, name) = split(path);
    let fd = dir_fd(dir)?;
    let file = rustix::fs::openat(
        &fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&file)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(std::fs::File::from(file))
}

#[async_trait]
impl FileServer for LocalFolder {
    async fn list(&mut self, dir: &str) -> Result<Vec<RemoteFile>, SourceError> {
        let owned = dir.to_owned();
        tokio::task::spawn_blocking(move || list_blocking(&owned))
            .await
            .map_err(|e| SourceError::Config(format!("{}: listing {dir}: {e}", self.what)))?
            .map_err(|e| self.io("cannot list", dir, &e))
    }

    async fn download(
        &mut self,
        path: &str,
        out: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, SourceError> {
        let owned = path.to_owned();
        let file = tokio::task::spawn_blocking(move || open_blocking(&owned))
            .await
            .map_err(|e| SourceError::Config(format!("{}: opening {path}: {e}", self.what)))?
            .map_err(|e| self.io("cannot read", path, &e))?;
        let mut file = tokio::fs::File::from_std(file);
        let n = tokio::io::copy(&mut file, out)
            .await
            .map_err(|e| self.io("cannot read", path, &e))?;
        out.flush()
            .await
            .map_err(|e| self.io("cannot read", path, &e))?;
        Ok(n)
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<(), SourceError> {
        let (from_dir, from_name) = split(from);
        let (to_dir, to_name) = split(to);
        let result = (|| {
            let src = dir_fd(from_dir)?;
            if !Path::new(to_dir).exists() {
                std::fs::create_dir_all(to_dir)?;
            }
            let dst = dir_fd(to_dir)?;
            rustix::fs::renameat(&src, OsStr::new(from_name), &dst, OsStr::new(to_name))?;
            std::io::Result::Ok(())
        })();
        result.map_err(|e| self.io("cannot move", from, &e))
    }

    async fn delete(&mut self, path: &str) -> Result<(), SourceError> {
        let (dir, name) = split(path);
        let result =
            dir_fd(dir).and_then(|fd| Ok(rustix::fs::unlinkat(&fd, name, AtFlags::empty())?));
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("cannot delete", path, &e)),
        }
    }

    async fn close(self: Box<Self>) -> Result<(), SourceError> {
        Ok(())
    }
}
