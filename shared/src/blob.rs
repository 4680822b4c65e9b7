//! The blob store: raw files as delivered and the snapshots made from them. A local folder
//! in the embedded default; any `object_store` backend (S3, GCS, Azure) in a cluster.
//!
//! Keys are `/`-separated and begin with the tenant: `raw/<tenant>/<sha256>`,
//! `snapshots/<tenant>/<run>.snap`, `rejects/<tenant>/<run>.rejects` (the reject file: CSV
//! for a delimited file, JSON lines of row errors for JSON).

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload};

use crate::model::ids::{RunId, TenantId};

/// Why the blob store failed. Always retryable: the data is ours and was written whole.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The backend failed.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    /// Local file work failed.
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
    /// A key that was expected is not there.
    #[error("blob {0} not found")]
    NotFound(String),
}

/// Where raw files and snapshots live. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Set for a local folder: lets large blobs move by rename and be read in place.
    root: Option<PathBuf>,
    scratch: PathBuf,
}

impl BlobStore {
    /// A store in the local folder `root` (created if missing).
    pub fn local(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let scratch = root.join(".scratch");
        std::fs::create_dir_all(&scratch)?;
        Ok(BlobStore {
            store: Arc::new(LocalFileSystem::new_with_prefix(&root)?),
            root: Some(root),
            scratch,
        })
    }

    /// A store over any `object_store` backend; `scratch` is a local folder for
    /// staging large blobs.
    pub fn remote(store: Arc<dyn ObjectStore>, scratch: PathBuf) -> Result<Self, BlobError> {
        std::fs::create_dir_all(&scratch)?;
        Ok(BlobStore {
            store,
            root: None,
            scratch,
        })
    }

    /// The local folder for staging large blobs and other scratch files.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// Key of a raw file's bytes: content-addressed, so one file stored twice is one blob.
    pub fn raw_key(tenant: &TenantId, sha256: &str) -> String {
        format!("raw/{tenant}/{sha256}")
    }

    /// Key of a run's snapshot.
    pub fn snapshot_key(tenant: &TenantId, run: RunId) -> String {
        format!("snapshots/{tenant}/{run}.snap")
    }

    /// Key of a run's reject file (`roster runs show RUN --rejects`): the rejected rows
    /// in the file's own columns, delimiter and encoding for a delimited file, JSON lines
    /// of row errors for JSON.
    pub fn rejects_key(tenant: &TenantId, run: RunId) -> String {
        format!("rejects/{tenant}/{run}.rejects")
    }

    /// Key of a run's related records (groups, memberships, contact details: JSON of
    /// [`crate::model::related::RelatedSnapshot`]).
    pub fn related_key(tenant: &TenantId, run: RunId) -> String {
        format!("related/{tenant}/{run}.json")
    }

    /// Key of the lines of a run's snapshot entries in the file (one little-endian `u32`
    /// per entry, in snapshot order; 0: unknown), so planning can name the line of a row
    /// it refuses. Written by the parser when the file has employee ids.
    pub fn lines_key(tenant: &TenantId, run: RunId) -> String {
        format!("snapshots/{tenant}/{run}.lines")
    }

    /// Keys of what a run's planning reads (its snapshot, the snapshot's lines and related
    /// records): of no more use once the run is final.
    pub fn planning_keys(tenant: &TenantId, run: RunId) -> [String; 3] {
        [
            Self::snapshot_key(tenant, run),
            Self::lines_key(tenant, run),
            Self::related_key(tenant, run),
        ]
    }

    /// Key of a dry run's planned changes (JSON lines: the people's changes, then the
    /// related ones, as `roster import --dry-run --dump` writes them).
    pub fn changes_key(tenant: &TenantId, run: RunId) -> String {
        format!("changes/{tenant}/{run}.jsonl")
    }

    /// A fresh path in the scratch folder for staging a blob before [`BlobStore::put_file`].
    pub fn scratch_path(&self, hint: &str) -> PathBuf {
        self.scratch
            .join(format!("{}-{hint}", uuid::Uuid::now_v7()))
    }

    /// Stores small bytes under `key`, replacing what was there (atomically).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(Bytes::from(bytes)))
            .await?;
        Ok(())
    }

    /// Moves the local file `path` into the store under `key`, replacing what was there
    /// (atomically: readers see the old blob or the new one, never a part).
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        if let Some(root) = &self.root {
            let target = root.join(key);
            let parent = target.parent().map(Path::to_path_buf);
            let path = path.to_owned();
            // Durable before anyone is told it exists: the file's data, then its name.
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                File::open(&path)?.sync_all()?;
                if let Some(parent) = &parent {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(&path, &target)?;
                if let Some(parent) = &parent {
                    File::open(parent)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
            return Ok(());
        }
        let bytes = tokio::fs::read(path).await?;
        self.put_bytes(key, bytes).await?;
        tokio::fs::remove_file(path).await?;
        Ok(())
    }

    /// Removes `key`; a key already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens `key` for reading as a local file (read in place for a local store,
    /// downloaded to scratch otherwise; a downloaded copy is removed when dropped).
    pub async fn open(&self, key: &str) -> Result<File, BlobError> {
        let result = match self.store.get(&ObjectPath::from(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        match result.payload {
            GetResultPayload::File(file, _) => Ok(file),
            GetResultPayload::Stream(_) => {
                let bytes = result.bytes().await?;
                let path = self.scratch_path("download");
                tokio::fs::write(&path, &bytes).await?;
                let file = File::open(&path)?;
                // Unlinked now; the open handle keeps the data until dropped.
                std::fs::remove_file(&path)?;
                Ok(file)
            }
        }
    }

    /// Reads bytes `range` of `key` (a ranged read: nothing else of the blob is
    /// fetched).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BlobError> {
        match self.store.get_range(&ObjectPath::from(key), range).await {
            Ok(bytes) => Ok(bytes),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(key.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a small blob whole.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, BlobError> {
        match self.store.get(&ObjectPath::from(key)).await {
            Ok(r) => Ok(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(key.to_owned())),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn files_move_in_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path().join("blobs")).unwrap();
        let staged = store.scratch_path("x");
        std::fs::write(&staged, b"hello").unwrap();
        store.put_file("raw/acme/abc", &staged).await.unwrap();
        assert!(!staged.exists());
        assert!(store.exists("raw/acme/abc").await.unwrap());
        let mut text = String::new();
        store
            .open("raw/acme/abc")
            .await
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
        store.put_bytes("k/v", b"1".to_vec()).await.unwrap();
        assert_eq!(&store.get_bytes("k/v").await.unwrap()[..], b"1");
        assert!(matches!(
            store.open("missing").await,
            Err(BlobError::NotFound(_))
        ));
    }
}
