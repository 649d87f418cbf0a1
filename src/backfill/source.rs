//! What to backfill: the SOURCE arguments (a file, a directory walked in MoEngage's export
//! layout, or `s3://bucket/prefix` listed with ListObjectsV2), as a list of export files,
//! and each file opened as a byte stream (S3 through GetObject).

use std::io::Read;
use std::path::{Path, PathBuf};

use aws_sdk_s3::Client as S3;

use crate::settings::config::sdk_error_text;

/// Where an export file is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

/// One file to backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// How it is named in reports and the checkpoint: its path as given, or `s3://b/k`.
    pub name: String,
    /// Bytes as stored (compressed), for progress.
    pub size: u64,
    pub location: Location,
}

/// A SOURCE's files, and what was passed over (with why).
#[derive(Debug, Default)]
pub struct Listed {
    pub files: Vec<ExportFile>,
    /// Entries that are not export files (folders, other suffixes), with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// Why a SOURCE cannot be listed: the run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: {1}")]
    Local(String, std::io::Error),
    #[error("{0}: not a file, a directory or an s3://bucket/prefix")]
    NotFound(String),
    #[error("{0}: listing the bucket failed: {1}")]
    S3(String, String),
}

/// Whether a name is an export file by its suffix: gzip JSON Lines (`.json.gz`, `.gz`),
/// plain JSON Lines (`.json`, `.jsonl`, `.ndjson`), or PGP-encrypted (`.gpg`, `.pgp`:
/// reported as not supported).
/// A file whose name (after its last `/`) starts with `manifest` is a manifest, not events.
pub fn is_export_name(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[".gz", ".json", ".jsonl", ".ndjson", ".gpg", ".pgp"];
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    SUFFIXES.iter().any(|s| lower.ends_with(s)) && !base.starts_with("manifest")
}

/// Lists every SOURCE, in the order given (a directory's files sorted by path, a prefix's in
/// S3's key order). A file named on its own is taken whatever its suffix.
pub async fn list(sources: &[String], s3: impl Fn() -> S3) -> Result<Listed, SourceError> {
    let mut listed = Listed::default();
    for source in sources {
        if let Some(rest) = source.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            list_s3(&s3(), bucket, prefix, &mut listed)
                .await
                .map_err(|e| SourceError::S3(source.clone(), e))?;
            continue;
        }
        let path = Path::new(source);
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound(source.clone()),
            _ => SourceError::Local(source.clone(), e),
        })?;
        if meta.is_dir() {
            walk(path, &mut listed).map_err(|e| SourceError::Local(source.clone(), e))?;
        } else {
            listed.files.push(local(path, meta.len()));
        }
    }
    listed.drop_repeats();
    Ok(listed)
}

impl Listed {
    /// The object `key` of `bucket`, `size` bytes: an export file, or passed over (a folder,
    /// another suffix).
    pub fn push_s3(&mut self, bucket: &str, key: &str, size: u64) {
        let name = format!("s3://{bucket}/{key}");
        if key.ends_with('/') {
            self.skipped.push((name, "a folder"));
        } else if !is_export_name(key) {
            self.skipped.push((name, "not an export file"));
        } else {
            self.files.push(ExportFile {
                name,
                size,
                location: Location::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                },
            });
        }
    }

    /// A file listed twice (overlapping SOURCEs: a prefix and a key under it, a directory
    /// and a file in it) is kept once, where it was first listed: it would be sent twice.
    fn drop_repeats(&mut self) {
        let mut seen = std::collections::HashSet::new();
        let files = std::mem::take(&mut self.files);
        for file in files {
            let id = match &file.location {
                Location::Local(p) => Location::Local(p.canonicalize().unwrap_or(p.clone())),
                s3 => s3.clone(),
            };
            if seen.insert(id) {
                self.files.push(file);
            } else {
                self.skipped.push((file.name, "listed twice"));
            }
        }
    }
}

fn local(path: &Path, size: u64) -> ExportFile {
    ExportFile {
        name: path.display().to_string(),
        size,
        location: Location::Local(path.to_path_buf()),
    }
}

/// A directory's export files, depth first, sorted by name at each level.
fn walk(dir: &Path, listed: &mut Listed) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, listed)?;
        } else if !kind.is_file() {
            listed
                .skipped
                .push((path.display().to_string(), "not a file"));
        } else if is_export_name(&entry.file_name().to_string_lossy()) {
            listed.files.push(local(&path, entry.metadata()?.len()));
        } else {
            listed
                .skipped
                .push((path.display().to_string(), "not an export file"));
        }
    }
    Ok(())
}

/// The objects under `prefix`, page by page (ListObjectsV2).
async fn list_s3(s3: &S3, bucket: &str, prefix: &str, listed: &mut Listed) -> Result<(), String> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error_text(&e))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let size = object.size().and_then(|s| u64::try_from(s).ok());
            listed.push_s3(bucket, key, size.unwrap_or(0));
        }
    }
    Ok(())
}

/// Opens a file as a blocking byte stream, for a file's reading thread. An S3 object is
/// requested here (GetObject, on the async runtime) and read through a bridge as it arrives.
pub async fn open(file: &ExportFile, s3: impl Fn() -> S3) -> std::io::Result<Box<dyn Read + Send>> {
    match &file.location {
        Location::Local(path) => Ok(Box::new(std::fs::File::open(path)?)),
        Location::S3 { bucket, key } => {
            let object = s3()
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| std::io::Error::other(sdk_error_text(&e)))?;
            let body = object.body.into_async_read();
            Ok(Box::new(tokio_util::io::SyncIoBridge::new(body)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_files_are_told_by_their_suffix() {
        for name in [
            "event_exports_1733400000.json.gz",
            "x.JSON.GZ",
            "a.jsonl",
            "a.json",
            "b.ndjson",
            "c.json.gz.gpg",
            "d.pgp",
        ] {
            assert!(is_export_name(name), "{name}");
        }
        for name in [
            "_SUCCESS",
            "manifest.csv",
            "exports/manifest.json",
            "Manifest-2026.json.gz",
            "readme.txt",
            "folder/",
        ] {
            assert!(!is_export_name(name), "{name}");
        }
    }

    #[test]
    fn a_directory_is_walked_in_order_and_other_files_are_passed_over() {
        let dir = std::env::temp_dir().join(format!("moe2seg-walk-{}", std::process::id()));
        let day = dir.join("acme_app").join("export_day=05-12-2026");
        std::fs::create_dir_all(&day).unwrap();
        for name in [
            "event_exports_2.json.gz",
            "event_exports_1.json.gz",
            "_SUCCESS",
        ] {
            std::fs::write(day.join(name), b"x").unwrap();
        }
        std::fs::write(dir.join("a.jsonl"), b"{}\n").unwrap();
        let mut listed = Listed::default();
        walk(&dir, &mut listed).unwrap();
        let names: Vec<String> = listed
            .files
            .iter()
            .map(|f| {
                f.name
                    .strip_prefix(&*dir.display().to_string())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "/a.jsonl",
                "/acme_app/export_day=05-12-2026/event_exports_1.json.gz",
                "/acme_app/export_day=05-12-2026/event_exports_2.json.gz"
            ]
        );
        assert_eq!(listed.skipped.len(), 1);
        assert!(listed.skipped[0].0.ends_with("_SUCCESS"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_listed_twice_is_kept_once() {
        let dir = std::env::temp_dir().join(format!("moe2seg-twice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.json.gz");
        std::fs::write(&file, b"x").unwrap();
        let dotted = format!("{}/./a.json.gz", dir.display());
        let sources = [dir.display().to_string(), dotted.clone(), dotted];
        let listed = list(&sources, || unreachable!("no S3 here")).await.unwrap();
        assert_eq!(listed.files.len(), 1);
        assert_eq!(listed.files[0].name, file.display().to_string());
        assert_eq!(listed.skipped.len(), 2);
        assert!(listed.skipped.iter().all(|(_, why)| *why == "listed twice"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
