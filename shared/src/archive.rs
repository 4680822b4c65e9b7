//! Packing a bundle's files into one zip archive, so a bundle travels through the
//! pipeline as one file: a folder handed to `roster import`, or the files of one upload
//! to the import API. Entries are stored, not compressed (the archive lives minutes).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Packs `files` (entry name, path of its content) into a zip archive at `to`, in the
/// order given. Entry names are taken as given; the reader matches them by their last
/// part.
pub fn pack_files(files: &[(String, PathBuf)], to: &Path) -> std::io::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(to)?);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, path) in files {
        zip.start_file(name.as_str(), stored)?;
        std::io::copy(&mut std::fs::File::open(path)?, &mut zip)?;
    }
    zip.finish()?.flush()
}

/// Packs the bundle files of `folder` (its `.csv` files, by name; regular files only,
/// links refused: a link could name another tenant's files) into a zip archive at `to`.
/// Returns how many it packed.
pub fn pack_folder(folder: &Path, to: &Path) -> std::io::Result<usize> {
    let mut entries: Vec<_> = std::fs::read_dir(folder)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut files = Vec::new();
    for entry in entries {
        let kind = entry.file_type()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_symlink() {
            return Err(std::io::Error::other(format!(
                "{}: a link; a bundle folder must hold the files themselves",
                entry.path().display()
            )));
        }
        if kind.is_file() && name.to_lowercase().ends_with(".csv") {
            files.push((name, entry.path()));
        }
    }
    pack_files(&files, to)?;
    Ok(files.len())
}
