//! Where recordings' bytes go: the spool (local files, appended and fsynced block by block
//! while a recording runs: `convrec_store::spool`) and the object store (`object_store`; a local
//! directory by default), which takes each file as a multipart upload streamed from the spool
//! while the recording runs (`crate::upload`). Object keys derive from the recording id; the
//! names users see come from the filename pattern (step 4).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use convrec_store::metadata::UploadedPart;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Why storing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object store refused.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The object store's URL cannot be used.
    #[error("object store URL '{url}': {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong, and what is allowed.
        why: String,
    },
    /// A local file could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The spool directory and the object store.
#[derive(Debug, Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    parts: Parts,
    objects_root: Option<PathBuf>,
    spool_dir: PathBuf,
}

/// Multipart uploads: the store's own (S3, GCS, Azure), whose upload ids and parts survive a
/// restart of the server, or the same made of files for a local directory.
#[derive(Clone)]
enum Parts {
    Remote {
        store: Arc<dyn MultipartStore>,
        /// The URL's path, which the object store side applies through a `PrefixStore`.
        prefix: String,
    },
    /// Parts are files under `ROOT/.uploads/UPLOAD_ID/`; completing joins them into the object
    /// and renames it into place.
    Local { root: PathBuf },
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Parts::Remote { prefix, .. } => write!(f, "Parts::Remote({prefix:?})"),
            Parts::Local { root } => write!(f, "Parts::Local({})", root.display()),
        }
    }
}

impl Parts {
    fn path(&self, key: &str) -> ObjectPath {
        match self {
            Parts::Remote { prefix, .. } if !prefix.is_empty() => {
                ObjectPath::from(format!("{prefix}/{key}"))
            }
            _ => ObjectPath::from(key),
        }
    }
}

impl Storage {
    /// The embedded default: both under the data directory (`spool/`, `objects/`).
    pub fn local(data_dir: &Path) -> Result<Self, StorageError> {
        let spool_dir = data_dir.join("spool");
        let objects_root = data_dir.join("objects");
        for dir in [&spool_dir, &objects_root] {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let objects = LocalFileSystem::new_with_prefix(&objects_root)?;
        Ok(Self {
            objects: Arc::new(objects),
            parts: Parts::Local {
                root: objects_root.clone(),
            },
            objects_root: Some(objects_root),
            spool_dir,
        })
    }

    /// The spool under the data directory and the object store `url` names:
    /// `s3://BUCKET[/PREFIX]` (S3 or an S3-compatible store), `gs://BUCKET[/PREFIX]` (Google
    /// Cloud Storage), `az://CONTAINER[/PREFIX]` (Azure Blob Storage) or `file:///PATH`. The
    /// credentials, region and endpoint come from the environment the way each provider's
    /// tools read them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`; `GOOGLE_SERVICE_ACCOUNT`, …; `AZURE_STORAGE_ACCOUNT_NAME`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, …); recorders never see them.
    pub fn remote(data_dir: &Path, url: &str) -> Result<Self, StorageError> {
        let spool_dir = data_dir.join("spool");
        std::fs::create_dir_all(&spool_dir).map_err(|source| StorageError::Io {
            path: spool_dir.clone(),
            source,
        })?;
        let (objects, parts) = objects_at(url)?;
        let objects_root = match &parts {
            Parts::Local { root } => Some(root.clone()),
            Parts::Remote { .. } => None,
        };
        Ok(Self {
            objects,
            parts,
            objects_root,
            spool_dir,
        })
    }

    /// Whether recordings can be stored now: the spool directory takes a file.
    pub async fn usable(&self) -> bool {
        let probe = self.spool_dir.join(".probe");
        let ok = tokio::fs::write(&probe, b"ok").await.is_ok();
        let _ = tokio::fs::remove_file(&probe).await;
        ok
    }

    /// Whether the object store answers: asking for an object that is not there must give
    /// "not found", not an error (for readiness checks).
    pub async fn objects_reachable(&self) -> Result<(), StorageError> {
        match self
            .objects
            .head(&ObjectPath::from(".convrec-health"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes in the spool now (recordings being written, and finished ones not yet stored).
    pub async fn spool_bytes(&self) -> u64 {
        let dir = self.spool_dir.clone();
        tokio::task::spawn_blocking(move || directory_bytes(&dir))
            .await
            .unwrap_or(0)
    }

    /// The spool file of a recording's file.
    pub fn spool_path(&self, recording_id: &str, file: u32) -> PathBuf {
        self.spool_dir
            .join(recording_id)
            .join(format!("{file:03}.mp4"))
    }

    /// A recording's spool directory.
    pub fn spool_dir_of(&self, recording_id: &str) -> PathBuf {
        self.spool_dir.join(recording_id)
    }

    /// Where the local-directory store keeps an object (`None` for remote stores).
    pub fn local_object_path(&self, key: &str) -> Option<PathBuf> {
        self.objects_root.as_ref().map(|root| root.join(key))
    }

    /// Starts a multipart upload of the object `key`; returns the store's id for it.
    pub async fn create_upload(&self, key: &str) -> Result<String, StorageError> {
        match &self.parts {
            Parts::Remote { store, .. } => {
                Ok(store.create_multipart(&self.parts.path(key)).await?)
            }
            Parts::Local { root } => {
                let id = format!("{:016x}{:016x}", rand_u64(), rand_u64());
                let dir = root.join(LOCAL_UPLOADS).join(&id);
                create_dir_durable(&dir).await.map_err(io_at(&dir))?;
                Ok(id)
            }
        }
    }

    /// Stores part `part` (from 0) of an upload; returns what the store answered for it.
    pub async fn put_part(
        &self,
        key: &str,
        upload: &str,
        part: u32,
        bytes: Bytes,
    ) -> Result<String, StorageError> {
        let index = usize::try_from(part).unwrap_or(usize::MAX);
        match &self.parts {
            Parts::Remote { store, .. } => {
                let id = store
                    .put_part(
                        &self.parts.path(key),
                        &upload.to_owned(),
                        index,
                        bytes.into(),
                    )
                    .await?;
                Ok(id.content_id)
            }
            Parts::Local { root } => {
                let dir = local_upload_dir(root, upload)?;
                let length = bytes.len();
                tokio::task::spawn_blocking(move || write_local_part(&dir, part, &bytes))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(io_at(root))?;
                Ok(length.to_string())
            }
        }
    }

    /// Makes the object of an upload from its parts, in order.
    pub async fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StorageError> {
        match &self.parts {
            Parts::Remote { store, .. } => {
                let parts = parts
                    .iter()
                    .map(|part| PartId {
                        content_id: part.content_id.clone(),
                    })
                    .collect();
                store
                    .complete_multipart(&self.parts.path(key), &upload.to_owned(), parts)
                    .await?;
                Ok(())
            }
            Parts::Local { root } => {
                let dir = local_upload_dir(root, upload)?;
                let target = root.join(key);
                let count = parts.len();
                tokio::task::spawn_blocking(move || join_local_parts(&dir, count, &target))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(io_at(root))
            }
        }
    }

    /// Drops an upload and its parts (one the store no longer knows counts as dropped).
    pub async fn abort_upload(&self, key: &str, upload: &str) -> Result<(), StorageError> {
        match &self.parts {
            Parts::Remote { store, .. } => {
                match store
                    .abort_multipart(&self.parts.path(key), &upload.to_owned())
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Parts::Local { root } => {
                let dir = local_upload_dir(root, upload)?;
                match tokio::fs::remove_dir_all(&dir).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_at(&dir)(e)),
                }
            }
        }
    }

    /// The size of an object, if it exists.
    pub async fn object_size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.objects.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a small object whole.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.objects
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await?;
        Ok(())
    }
}

impl Storage {
    /// A whole (small) object, such as a manifest.
    pub async fn get(&self, key: &str) -> Result<bytes::Bytes, StorageError> {
        Ok(self
            .objects
            .get(&ObjectPath::from(key))
            .await?
            .bytes()
            .await?)
    }

    /// A byte range of an object, as a stream.
    pub async fn read_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<
        futures_util::stream::BoxStream<'static, Result<bytes::Bytes, object_store::Error>>,
        StorageError,
    > {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        Ok(self
            .objects
            .get_opts(&ObjectPath::from(key), options)
            .await?
            .into_stream())
    }

    /// Deletes every object of a recording (its files and manifest) and its spool.
    pub async fn delete_recording(&self, recording_id: &str) -> Result<(), StorageError> {
        use futures_util::TryStreamExt;
        let prefix = ObjectPath::from(format!("recordings/{recording_id}"));
        let keys: Vec<ObjectPath> = self
            .objects
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in keys {
            self.objects.delete(&key).await?;
        }
        // The local store leaves the emptied directory behind.
        if let Some(dir) = self.local_object_path(&format!("recordings/{recording_id}")) {
            let _ = tokio::fs::remove_dir(&dir).await;
        }
        let spool = self.spool_dir_of(recording_id);
        match tokio::fs::remove_dir_all(&spool).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io {
                path: spool,
                source,
            }),
        }
    }
}

/// The object key of a recording's file.
pub fn object_key(recording_id: &str, file: u32) -> String {
    format!("recordings/{recording_id}/{file:03}.mp4")
}

/// The object key of a raw recording's manifest.
pub fn manifest_key(recording_id: &str) -> String {
    format!("recordings/{recording_id}/manifest.json")
}

/// The bytes of the files under `dir` (what cannot be read counts nothing).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The object store `url` names (see [`Storage::remote`]), under its path as a prefix, and its
/// multipart uploads.
fn objects_at(url: &str) -> Result<(Arc<dyn ObjectStore>, Parts), StorageError> {
    let wrong = |why: String| StorageError::Url {
        url: url.to_owned(),
        why,
    };
    let parsed = url::Url::parse(url).map_err(|e| wrong(e.to_string()))?;
    fn both<T: ObjectStore + MultipartStore>(
        store: T,
    ) -> (Arc<dyn ObjectStore>, Arc<dyn MultipartStore>) {
        let store = Arc::new(store);
        (store.clone(), store)
    }
    let (store, parts) = match parsed.scheme() {
        "s3" => both(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()?,
        ),
        "gs" => both(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        "az" | "azure" => both(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        "file" => {
            let root = parsed
                .to_file_path()
                .map_err(|()| wrong("not an absolute local path".into()))?;
            std::fs::create_dir_all(&root).map_err(io_at(&root))?;
            let store = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
            return Ok((store, Parts::Local { root }));
        }
        other => {
            return Err(wrong(format!(
                "'{other}' is not a supported scheme; allowed: s3, gs, az, file"
            )));
        }
    };
    let prefix = parsed.path().trim_matches('/').to_owned();
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(
            store,
            prefix.as_str(),
        ))
    };
    Ok((
        store,
        Parts::Remote {
            store: parts,
            prefix,
        },
    ))
}

/// Where a local directory store keeps the parts of unfinished uploads.
const LOCAL_UPLOADS: &str = ".uploads";

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("bug: the operating system has no random source");
    u64::from_le_bytes(bytes)
}

/// The directory of a local upload; the id comes from the database, so it is checked to be one
/// this module made (hex) before it is joined to a path.
fn local_upload_dir(root: &Path, upload: &str) -> Result<PathBuf, StorageError> {
    if upload.is_empty() || !upload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StorageError::Io {
            path: root.join(LOCAL_UPLOADS),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{upload}' is not a local upload id"),
            ),
        });
    }
    Ok(root.join(LOCAL_UPLOADS).join(upload))
}

/// [`convrec_store::spool::create_dir_durable`] off the async threads.
pub async fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || convrec_store::spool::create_dir_durable(&dir))
        .await
        .map_err(std::io::Error::other)?
}

fn local_part_path(dir: &Path, part: u32) -> PathBuf {
    dir.join(format!("{part:05}"))
}

/// Writes a part durably: to a temporary name, fsynced, then renamed.
fn write_local_part(dir: &Path, part: u32, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = dir.join(format!("{part:05}.partial"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let part = local_part_path(dir, part);
    std::fs::rename(&temporary, &part)?;
    convrec_store::spool::sync_parent(&part)
}

/// Joins parts `0..count` into `target` (fsynced, then renamed into place) and removes them.
fn join_local_parts(dir: &Path, count: usize, target: &Path) -> std::io::Result<()> {
    let joined = dir.join("joined");
    let mut out = std::fs::File::create(&joined)?;
    for part in 0..count {
        let part = u32::try_from(part).map_err(std::io::Error::other)?;
        let mut input = std::fs::File::open(local_part_path(dir, part))?;
        std::io::copy(&mut input, &mut out)?;
    }
    out.sync_all()?;
    if let Some(parent) = target.parent() {
        convrec_store::spool::create_dir_durable(parent)?;
    }
    std::fs::rename(&joined, target)?;
    convrec_store::spool::sync_parent(target)?;
    std::fs::remove_dir_all(dir)
}
