//! Reading an upload: the multipart body streamed to scratch files (never held in memory
//! whole), its size capped as it arrives, its fields checked. Whatever is refused leaves
//! nothing behind: the scratch files go when the [`Upload`] is dropped.

use std::path::PathBuf;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use roster_shared::model::envelope::{Format, SyncMode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::ApiError;

/// Files in one upload, at most (a bundle's three).
pub const MAX_FILES: usize = 3;

/// Bytes of one text field, at most.
const MAX_FIELD_BYTES: usize = 1024;

/// One uploaded file in the scratch area.
#[derive(Debug)]
pub struct UploadedFile {
    /// The name the client gave (its last path part).
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Hex SHA-256 of its content.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// A read and checked upload. Dropping it removes its files.
#[derive(Debug, Default)]
pub struct Upload {
    /// The files, in the order sent.
    pub files: Vec<UploadedFile>,
    /// `type`.
    pub format: Option<Format>,
    /// `mode`.
    pub mode: Option<SyncMode>,
    /// `dry_run`.
    pub dry_run: bool,
    /// `ignore_encoding`.
    pub ignore_encoding: bool,
    /// `encoding`: of a file without a byte-order mark, if not UTF-8.
    pub encoding: Option<String>,
    /// `invite_new_users`.
    pub invite_new_users: Option<bool>,
    /// `sync_manager_email`.
    pub sync_manager_email: Option<String>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(&file.path);
        }
    }
}

impl Upload {
    /// Takes the files out (the caller now owns them and their removal).
    pub fn take_files(&mut self) -> Vec<UploadedFile> {
        std::mem::take(&mut self.files)
    }
}

/// The answer to a body over `max` bytes.
pub fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the upload is over the limit of {max} bytes"),
    )
}

fn multipart_error(e: &MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::invalid(
            "malformed_multipart",
            format!("the multipart body cannot be read: {}", e.body_text()),
        )
    }
}

fn boolean(field: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::invalid(
            "invalid_field",
            format!("{field}: {value:?} is not true or false"),
        )),
    }
}

/// Content types a file may be declared with: text, the formats Roster reads, archives,
/// and what browsers and Windows call a CSV file.
fn readable_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "" | "application/octet-stream"
                | "application/csv"
                | "application/json"
                | "application/xml"
                | "application/soap+xml"
                | "application/zip"
                | "application/x-zip-compressed"
                | "application/vnd.ms-excel"
        )
}

/// What a file's first bytes say it is, when that is something Roster cannot read.
fn unreadable_content(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 7] = [
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "a gzip archive"),
        (
            b"\xD0\xCF\x11\xE0",
            "an Excel 97-2003 workbook (save it as CSV)",
        ),
        (b"7z\xBC\xAF", "a 7-Zip archive"),
    ];
    SIGNATURES
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, what)| *what)
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// The last part of a client's file name, if it is a usable one.
fn file_name(raw: Option<&str>, index: usize) -> Result<String, ApiError> {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if last.chars().any(char::is_control) || last.len() > 255 {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("file {}: the file name is not usable", index + 1),
        ));
    }
    Ok(if last.is_empty() || last == "." || last == ".." {
        format!("upload-{}", index + 1)
    } else {
        last.to_owned()
    })
}

/// Reads `multipart` into scratch files under `scratch` (at most `max` bytes of files in
/// all), checking every field.
pub async fn read(
    mut multipart: Multipart,
    scratch: &std::path::Path,
    max: u64,
) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let mut total = 0u64;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, max))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if upload.files.len() == MAX_FILES {
                return Err(ApiError::invalid(
                    "too_many_files",
                    format!("at most {MAX_FILES} files (a bundle's users, groups and mappings)"),
                ));
            }
            let index = upload.files.len();
            if field.file_name().is_none() {
                return Err(ApiError::invalid(
                    "invalid_field",
                    "file: send it as a file part (with a filename), not as a text field",
                ));
            }
            let name = file_name(field.file_name(), index)?;
            if let Some(ct) = field.content_type()
                && !readable_type(ct)
            {
                return Err(unsupported(format!(
                    "{name}: Roster does not read {ct} files; send CSV, TSV, JSON, SOAP XML or a \
                     zip of a bundle"
                )));
            }
            if upload
                .files
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(&name))
            {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("{name}: the same file name twice"),
                ));
            }
            let path = scratch.join(format!("{}-upload", uuid::Uuid::now_v7()));
            let mut out = tokio::io::BufWriter::new(
                tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| ApiError::internal(&e))?,
            );
            // Registered before anything is written, so a refusal removes it.
            upload.files.push(UploadedFile {
                name: name.clone(),
                path,
                sha256: String::new(),
                size: 0,
            });
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut head = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e, max))? {
                size += chunk.len() as u64;
                total += chunk.len() as u64;
                if total > max {
                    return Err(too_large(max));
                }
                if head.len() < 8 {
                    head.extend_from_slice(&chunk[..chunk.len().min(8 - head.len())]);
                    if head.len() >= 4
                        && let Some(what) = unreadable_content(&head)
                    {
                        return Err(unsupported(format!(
                            "{name}: {what}; Roster reads CSV, TSV, JSON, SOAP XML or a zip of a \
                             bundle"
                        )));
                    }
                }
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError::internal(&e))?;
            }
            out.flush().await.map_err(|e| ApiError::internal(&e))?;
            let file = upload.files.last_mut().expect("pushed above");
            file.sha256 = hex::encode(hasher.finalize());
            file.size = size;
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e, max))? {
            value.extend_from_slice(&chunk);
            if value.len() > MAX_FIELD_BYTES {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("{name}: over {MAX_FIELD_BYTES} bytes"),
                ));
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| ApiError::invalid("invalid_field", format!("{name}: not UTF-8 text")))?;
        let value = value.trim();
        let known = [
            "type",
            "mode",
            "dry_run",
            "ignore_encoding",
            "encoding",
            "invite_new_users",
            "sync_manager_email",
        ];
        if value.is_empty() && known.contains(&name.as_str()) {
            // Sent empty: as good as not sent (the default holds).
            continue;
        }
        match name.as_str() {
            "type" => {
                upload.format = Some(
                    value
                        .parse()
                        .map_err(|e| ApiError::invalid("unknown_type", format!("type: {e}")))?,
                );
            }
            "mode" => {
                upload.mode = Some(
                    value
                        .parse()
                        .map_err(|e| ApiError::invalid("invalid_field", format!("mode: {e}")))?,
                );
            }
            "dry_run" => upload.dry_run = boolean("dry_run", value)?,
            "ignore_encoding" => upload.ignore_encoding = boolean("ignore_encoding", value)?,
            "encoding" => {
                if encoding_rs::Encoding::for_label(value.as_bytes()).is_none() {
                    return Err(ApiError::invalid(
                        "invalid_field",
                        format!(
                            "encoding: {value:?} is not an encoding Roster knows (e.g. \
                             windows-1252, iso-8859-1, utf-16le)"
                        ),
                    ));
                }
                upload.encoding = Some(value.to_owned());
            }
            "invite_new_users" => {
                upload.invite_new_users = Some(boolean("invite_new_users", value)?);
            }
            "sync_manager_email" => {
                if !value.contains('@') || value.len() > 254 || value.contains(char::is_whitespace)
                {
                    return Err(ApiError::invalid(
                        "invalid_field",
                        format!("sync_manager_email: {value:?} is not an email address"),
                    ));
                }
                upload.sync_manager_email = Some(value.to_owned());
            }
            other => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "{other:?} is not a field of an import (file, type, mode, dry_run, \
                         ignore_encoding, encoding, invite_new_users, sync_manager_email)"
                    ),
                ));
            }
        }
    }
    if upload.files.is_empty() {
        return Err(ApiError::invalid(
            "missing_file",
            "no `file` part: send the file (or a bundle's files) as `file`",
        ));
    }
    if upload.files.len() > 1
        && !matches!(upload.format, None | Some(Format::Auto | Format::Bundle))
    {
        return Err(ApiError::invalid(
            "too_many_files",
            "several files make a bundle: send type=bundle (or auto), or one file",
        ));
    }
    Ok(upload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_signatures_roster_cannot_read_are_named() {
        for ok in [
            "text/csv",
            "text/plain; charset=utf-8",
            "application/vnd.ms-excel",
            "",
        ] {
            assert!(readable_type(ok), "{ok}");
        }
        for bad in ["image/png", "application/pdf", "video/mp4"] {
            assert!(!readable_type(bad), "{bad}");
        }
        assert_eq!(unreadable_content(b"%PDF-1.7"), Some("a PDF document"));
        assert_eq!(unreadable_content(b"Primary Email,Name"), None);
        assert_eq!(
            unreadable_content(b"PK\x03\x04"),
            None,
            "a zip may be a bundle"
        );
    }

    #[test]
    fn file_names_are_their_last_part() {
        assert_eq!(file_name(Some("../../etc/passwd"), 0).unwrap(), "passwd");
        assert_eq!(
            file_name(Some("C:\\data\\users.csv"), 0).unwrap(),
            "users.csv"
        );
        assert_eq!(file_name(None, 1).unwrap(), "upload-2");
        assert_eq!(file_name(Some(".."), 0).unwrap(), "upload-1");
        assert!(file_name(Some("a\nb.csv"), 0).is_err());
    }
}
