//! Multipart uploads of recording files into the object store: which upload the store gave a
//! file, and which parts it has taken, so a node that crashes mid-upload resumes where it was
//! (and a file that will never be completed has its upload aborted).

use super::{Columns, Metadata, MetadataError, Pool, small, with_pool};

/// A file's open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpload {
    /// The recording.
    pub recording_id: String,
    /// The file's number in the recording.
    pub file: u32,
    /// The node whose spool holds the file.
    pub node_id: String,
    /// The object it becomes.
    pub object_key: String,
    /// The store's id for the upload.
    pub upload_id: String,
    /// Bytes a part is cut at (at least; parts end on block boundaries).
    pub part_size: u64,
    /// The parts the store took so far, part 0 first.
    pub parts: Vec<UploadedPart>,
}

/// A part the store took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// What the store answered for it (the ETag in S3).
    pub content_id: String,
    /// Where it ends in the file (it starts where the part before ended).
    pub end: u64,
}

impl Metadata {
    /// Records that `upload.upload_id` was opened for a file (with no parts yet); replaces an
    /// upload the file had before (one that the store lost, say).
    pub async fn open_file_upload(
        &self,
        upload: &FileUpload,
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        let part_size = i64::try_from(upload.part_size).unwrap_or(i64::MAX);
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM file_uploads WHERE recording_id = $1 AND file = $2")
                .bind(&upload.recording_id)
                .bind(i64::from(upload.file))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO file_uploads (recording_id, file, node_id, object_key, upload_id, \
                 part_size, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&upload.recording_id)
            .bind(i64::from(upload.file))
            .bind(&upload.node_id)
            .bind(&upload.object_key)
            .bind(&upload.upload_id)
            .bind(part_size)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records that the store took part `part` of the upload `upload_id`, which ends at byte
    /// `end` of the file.
    pub async fn add_file_upload_part(
        &self,
        recording_id: &str,
        file: u32,
        upload_id: &str,
        part: u32,
        taken: &UploadedPart,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            // Only while that upload is the file's: a part of a replaced upload is not kept.
            sqlx::query(
                "INSERT INTO file_upload_parts (recording_id, file, part, content_id, end_offset) \
                 SELECT recording_id, file, $3, $4, $6 FROM file_uploads \
                 WHERE recording_id = $1 AND file = $2 AND upload_id = $5 \
                 ON CONFLICT (recording_id, file, part) DO UPDATE \
                 SET content_id = excluded.content_id, end_offset = excluded.end_offset",
            )
            .bind(recording_id)
            .bind(i64::from(file))
            .bind(i64::from(part))
            .bind(&taken.content_id)
            .bind(upload_id)
            .bind(i64::try_from(taken.end).unwrap_or(i64::MAX))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// A file's open upload, with its parts.
    pub async fn file_upload(
        &self,
        recording_id: &str,
        file: u32,
    ) -> Result<Option<FileUpload>, MetadataError> {
        let uploads = self.uploads_where(Some((recording_id, file)), None).await?;
        Ok(uploads.into_iter().next())
    }

    /// Every open upload of files in `node_id`'s spool.
    pub async fn file_uploads_of_node(
        &self,
        node_id: &str,
    ) -> Result<Vec<FileUpload>, MetadataError> {
        self.uploads_where(None, Some(node_id)).await
    }

    /// Forgets a file's upload (completed or aborted in the store).
    pub async fn close_file_upload(
        &self,
        recording_id: &str,
        file: u32,
    ) -> Result<(), MetadataError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM file_uploads WHERE recording_id = $1 AND file = $2")
                .bind(recording_id)
                .bind(i64::from(file))
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn uploads_where(
        &self,
        file: Option<(&str, u32)>,
        node_id: Option<&str>,
    ) -> Result<Vec<FileUpload>, MetadataError> {
        let (recording_id, number) = file.map_or((None, None), |(r, f)| (Some(r), Some(f)));
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT u.recording_id, u.file, u.node_id, u.object_key, u.upload_id, u.part_size, \
                   p.part, p.content_id, p.end_offset \
                 FROM file_uploads u LEFT JOIN file_upload_parts p \
                   ON p.recording_id = u.recording_id AND p.file = u.file \
                 WHERE ($1 IS NULL OR u.recording_id = $1) AND ($2 IS NULL OR u.file = $2) \
                   AND ($3 IS NULL OR u.node_id = $3) \
                 ORDER BY u.recording_id, u.file, p.part",
            )
            .bind(recording_id)
            .bind(number.map(i64::from))
            .bind(node_id)
            .fetch_all(pool)
            .await?;
            let mut uploads: Vec<FileUpload> = Vec::new();
            for r in &rows {
                let recording_id = r.text("recording_id")?;
                let file: u32 = small(r.integer("file")?)?;
                let same = uploads
                    .last()
                    .is_some_and(|u| u.recording_id == recording_id && u.file == file);
                if !same {
                    uploads.push(FileUpload {
                        recording_id,
                        file,
                        node_id: r.text("node_id")?,
                        object_key: r.text("object_key")?,
                        upload_id: r.text("upload_id")?,
                        part_size: small(r.integer("part_size")?)?,
                        parts: Vec::new(),
                    });
                }
                if let (Some(part), Some(content_id), Some(end)) = (
                    r.optional_integer("part")?,
                    r.optional_text("content_id")?,
                    r.optional_integer("end_offset")?,
                ) {
                    let upload = uploads.last_mut().expect("bug: pushed above");
                    // Parts are listed in order; one missing in the middle makes the rest
                    // unusable (never written so, but a store is not trusted to be tidy).
                    if usize::try_from(part).ok() == Some(upload.parts.len()) {
                        upload.parts.push(UploadedPart {
                            content_id,
                            end: small(end)?,
                        });
                    }
                }
            }
            Ok(uploads)
        })
    }
}
