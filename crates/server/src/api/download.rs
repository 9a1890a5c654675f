//! `GET /v1/recordings/{id}/download[?file=N][&grant=…]` (SPEC §5): a recording's file, from
//! the spool while it is being recorded (up to the last durable fragment) and from the object
//! store after. One `Range` per request (`bytes=a-b`, `a-`, `-n`); a file that is still growing
//! answers `Content-Range: bytes a-b/*`. The caller is an admin, a participant whose role may see
//! recordings, or anyone holding the link's signed grant (so `<video src>` plays it).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convrec_core::config::{FileNameParts, render_file_name};
use convrec_store::metadata::{Recording, RecordingFile};
use serde::Deserialize;

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use crate::auth::Caller;

/// The query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The file (raw recordings); the first by default.
    file: Option<u32>,
    /// A signed grant from a download link.
    grant: Option<String>,
}

/// Serves a recording's file: from the spool while it is recorded (up to the last durable
/// fragment), from the object store after. Needs the link's `grant`, or the credentials of a
/// caller who may see the recording.
#[utoipa::path(get, operation_id = "downloadRecording", path = "/recordings/{id}/download", tag = "recordings",
    params(("id" = String, Path, description = "The recording"), DownloadQuery,
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=a-b`, `a-` or `-n`")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The file", content_type = "video/mp4", body = Vec<u8>,
            headers(("Content-Disposition" = String, description = "attachment; the file name"))),
        (status = 206, description = "The range; `Content-Range: bytes a-b/*` while the file grows",
            content_type = "video/mp4", body = Vec<u8>,
            headers(("Content-Range" = String, description = "bytes a-b/total (or /*)"))),
        (status = 416, description = "`RANGE_NOT_SATISFIABLE`", body = ErrorBody)))]
pub async fn download(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hidden = || ApiError::not_found("recording", &id);
    // Without a grant, credentials first: an unauthenticated caller learns nothing of what exists.
    let caller = match &query.grant {
        Some(_) => None,
        None => Some(crate::auth::caller(&app, &headers).await?),
    };
    let recording = app.metadata.recording(&id).await?.ok_or_else(hidden)?;
    let files = app.metadata.recording_files(&id).await?;
    let file = match query.file {
        Some(n) => files.iter().find(|f| f.file == n),
        None => files.first(),
    }
    .ok_or_else(hidden)?;
    let admitted = match (&query.grant, &caller) {
        (Some(grant), _) => app.grants.check(grant, &id, file.file, crate::now_ms()),
        (None, Some(caller)) => may_see(&app, caller, &recording).await?,
        (None, None) => false,
    };
    if !admitted {
        // A bad grant or a caller who may not see it: the recording does not exist for them.
        return Err(hidden());
    }
    let name = file_name(&app, &recording, file, files.len()).await?;
    let growing = recording.status != "COMPLETE";
    let total = file.durable_bytes;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) => Some(parse_range(spec, total).ok_or_else(|| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                format!("'{spec}' is not one satisfiable byte range of a {total}-byte file"),
            )
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, total.saturating_sub(1)));
    let length = if total == 0 { 0 } else { end - start + 1 };
    let body = if length == 0 {
        Body::empty()
    } else if let Some(body) = growing
        .then(|| app.storage.spool_path(&id, file.file))
        .filter(|path| path.is_file())
    {
        // Still being recorded (or being stored): the spool holds it.
        spool_body(&body, start, length).await?
    } else {
        let stream = app
            .storage
            .read_range(&file.object_key, start..end + 1)
            .await?;
        Body::from_stream(stream)
    };
    let mut response = Response::new(body);
    *response.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    let content_type = mime_type(&recording.recording_type, file.encryption_key_id.is_some());
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if range.is_some() {
        let of = if growing {
            "*".to_owned()
        } else {
            total.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{of}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response.into_response())
}

/// The MIME type of a recording's files (SPEC §5): `audio/mp4` or `video/mp4`, or
/// [`SEALED_MIME_TYPE`] for a file sealed for the account's key.
pub fn mime_type(recording_type: &str, sealed: bool) -> &'static str {
    if sealed {
        SEALED_MIME_TYPE
    } else if recording_type == "AUDIO" {
        "audio/mp4"
    } else {
        "video/mp4"
    }
}

/// The MIME type announced for a whole recording (listing, manifest, webhook): sealed when any
/// of its files is.
pub fn recording_mime_type(recording: &Recording, files: &[RecordingFile]) -> &'static str {
    mime_type(
        &recording.recording_type,
        files.iter().any(|f| f.encryption_key_id.is_some()),
    )
}

/// A download link of a recording's file with a grant valid for [`GRANT_LIFETIME_MS`].
///
/// [`GRANT_LIFETIME_MS`]: crate::grants::GRANT_LIFETIME_MS
pub fn link(app: &AppState, recording_id: &str, file: u32) -> String {
    let expires = crate::now_ms() + crate::grants::GRANT_LIFETIME_MS;
    let grant = app.grants.sign(recording_id, file, expires);
    format!(
        "{}/v1/recordings/{recording_id}/download?file={file}&grant={grant}",
        app.base_url
    )
}

/// Whether a caller sees a recording: admins do; participants of its conversation whose role
/// is in `allowSeeRecordingAvailableMessages`.
pub async fn may_see(
    app: &AppState,
    caller: &Caller,
    recording: &Recording,
) -> Result<bool, ApiError> {
    let Some(conversation) = app
        .metadata
        .conversation(&recording.conversation_id)
        .await?
    else {
        return Ok(false);
    };
    if !caller.sees_conversation(&conversation.account_id, &conversation.id) {
        return Ok(false);
    }
    super::sees_recordings(app, caller, &conversation.id).await
}

/// The name users see: the conversation's file-name pattern, with the file's number before the
/// extension when a raw recording has several.
pub async fn file_name(
    app: &AppState,
    recording: &Recording,
    file: &RecordingFile,
    files: usize,
) -> Result<String, ApiError> {
    let conversation = app
        .metadata
        .conversation(&recording.conversation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation", &recording.conversation_id))?;
    let settings = crate::recording::settings(app, &recording.conversation_id).await?;
    let name = render_file_name(
        &settings.filename_pattern,
        &FileNameParts {
            conversation_id: &recording.conversation_id,
            recording_id: &recording.id,
            account_id: &conversation.account_id,
            start_ms: recording.started_at_ms.unwrap_or(0),
            recording_type: &recording.recording_type,
        },
    );
    let name = if files <= 1 {
        name
    } else {
        match name.rsplit_once('.') {
            Some((stem, extension)) => format!("{stem}-{:03}.{extension}", file.file),
            None => format!("{name}-{:03}", file.file),
        }
    };
    // A sealed file is not playable as it is: `convrec decrypt` turns it back into the name.
    Ok(match file.encryption_key_id {
        Some(_) => format!("{name}.{SEALED_EXTENSION}"),
        None => name,
    })
}

/// The extension a sealed (encrypted) file's name gets after its own.
pub const SEALED_EXTENSION: &str = "sealed";

/// The MIME type of a sealed (encrypted) file.
pub const SEALED_MIME_TYPE: &str = "application/octet-stream";

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `total`-byte file, as inclusive bounds.
fn parse_range(spec: &str, total: u64) -> Option<(u64, u64)> {
    let (first, last) = spec.trim().strip_prefix("bytes=")?.split_once('-')?;
    if total == 0 {
        return None;
    }
    let (start, end) = match (first.trim(), last.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (a, "") => (a.parse().ok()?, total - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
}

/// `length` bytes of a spool file from `start`.
async fn spool_body(path: &std::path::Path, start: u64, length: u64) -> Result<Body, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(ApiError::internal)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    Ok(Body::from_stream(tokio_util::io::ReaderStream::new(
        file.take(length),
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
