//! Where recordings' bytes go: the spool (local files, appended and fsynced block by block
//! while a recording runs: `convrec_store::spool`) and, once a file is finished, the object
//! store (`object_store`; a local directory by default). Object keys derive from the recording
//! id; the names users see come from the filename pattern (step 4).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

/// Bytes read from the spool per multipart chunk.
const CHUNK: usize = 8 * 1024 * 1024;

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
    objects_root: Option<PathBuf>,
    spool_dir: PathBuf,
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
        Ok(Self {
            objects: objects_at(url)?,
            objects_root: None,
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

    /// Copies a finished spool file into the store, streaming it in chunks.
    pub async fn upload(&self, key: &str, spool: &Path) -> Result<u64, StorageError> {
        let io = |source| StorageError::Io {
            path: spool.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::open(spool).await.map_err(io)?;
        let upload = self.objects.put_multipart(&ObjectPath::from(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut buffer = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buffer).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]);
            total += n as u64;
        }
        writer.finish().await?;
        Ok(total)
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

/// The object store `url` names (see [`Storage::remote`]), under its path as a prefix.
fn objects_at(url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let wrong = |why: String| StorageError::Url {
        url: url.to_owned(),
        why,
    };
    let parsed = url::Url::parse(url).map_err(|e| wrong(e.to_string()))?;
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        "az" | "azure" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()?,
        ),
        "file" => {
            let root = parsed
                .to_file_path()
                .map_err(|()| wrong("not an absolute local path".into()))?;
            std::fs::create_dir_all(&root).map_err(|source| StorageError::Io {
                path: root.clone(),
                source,
            })?;
            return Ok(Arc::new(LocalFileSystem::new_with_prefix(root)?));
        }
        other => {
            return Err(wrong(format!(
                "'{other}' is not a supported scheme; allowed: s3, gs, az, file"
            )));
        }
    };
    let prefix = parsed.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        store
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    })
}
