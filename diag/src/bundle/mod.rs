//! A bundle in memory ([`Bundle`]: the manifest and the bytes of each file), and reading and
//! writing it as a directory or a tar archive. The only I/O here is the file system.
//!
//! ```text
//!   collect ──> Bundle { manifest, files } ──write_dir / write_tar──> DIR/ or FILE.tar
//!   DIR/ or FILE.tar ──Bundle::read──> Bundle (format and version checked, every listed file
//!                                      present; a file changed since collection is noted)
//!                    ──snapshot::Snapshot::from_bundle──> NodeState + the rest (pure)
//! ```

pub mod format;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use format::{
    FORMAT, FileEntry, FileStatus, MANIFEST, Manifest, Part, Redaction, Truncated, VERSION,
};
use sha2::{Digest, Sha256};

/// A bundle that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `manifest.json` is not valid JSON or not shaped like a manifest.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde_json says.
        message: String,
    },
    /// The manifest is not a diag bundle manifest.
    #[error("{}:{line}: format is {found:?}, expected \"{}\"", path.display(), FORMAT)]
    Format {
        /// The manifest's path.
        path: PathBuf,
        /// Line of the `format` key.
        line: usize,
        /// The value found.
        found: String,
    },
    /// The bundle has a format version this diag does not read.
    #[error(
        "{}:{line}: bundle format version {found} is not supported (this diag reads version {})",
        path.display(), VERSION
    )]
    Version {
        /// The manifest's path.
        path: PathBuf,
        /// Line of the `version` key.
        line: usize,
        /// The version found.
        found: u32,
    },
    /// The manifest names a file the bundle does not hold.
    #[error("{}:{line}: names {file:?} ({part}), which is missing from the bundle", path.display())]
    MissingFile {
        /// The manifest's path.
        path: PathBuf,
        /// Line of the file's entry.
        line: usize,
        /// The file.
        file: String,
        /// Its part.
        part: Part,
    },
    /// The manifest names a file outside the bundle (`..`, absolute).
    #[error("{}:{line}: file name {file:?} is not a plain name inside the bundle", path.display())]
    BadFileName {
        /// The manifest's path.
        path: PathBuf,
        /// Line of the entry.
        line: usize,
        /// The name.
        file: String,
    },
    /// A path that is neither a bundle directory nor a tar archive of one.
    #[error("{}: not a bundle (no {MANIFEST})", path.display())]
    NotABundle {
        /// The path.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The 1-based line of the first occurrence of `needle` in `text` (1 when absent).
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|at| text[..at].matches('\n').count() + 1)
        .unwrap_or(1)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

/// A bundle: its manifest and the content of each file, by file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// File name -> content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Where it was read from (`DIR`, `FILE.tar`, `live`), for messages.
    pub origin: String,
    /// What reading noticed without failing (a file changed since collection).
    pub notes: Vec<String>,
}

impl Bundle {
    /// An empty bundle with this manifest.
    pub fn new(manifest: Manifest, origin: impl Into<String>) -> Bundle {
        Bundle {
            manifest,
            files: BTreeMap::new(),
            origin: origin.into(),
            notes: Vec::new(),
        }
    }

    /// Records a part: its manifest entry and, when `content` is given, its file (the entry's
    /// `file`, `bytes` and `sha256` are filled in).
    pub fn put(&mut self, mut entry: FileEntry, content: Option<Vec<u8>>) {
        if let Some(c) = content {
            let name = entry.file.clone().unwrap_or_else(|| entry.part.file_name());
            entry.bytes = Some(c.len() as u64);
            entry.sha256 = Some(sha256_hex(&c));
            entry.file = Some(name.clone());
            self.files.insert(name, c);
        }
        self.manifest.files.retain(|e| e.part != entry.part);
        self.manifest.files.push(entry);
    }

    /// Replaces the content of a part's file (redaction), keeping its entry in step.
    pub fn replace(&mut self, part: Part, content: Vec<u8>) {
        let Some(e) = self.manifest.files.iter_mut().find(|e| e.part == part) else {
            return;
        };
        let Some(name) = e.file.clone() else {
            return;
        };
        e.bytes = Some(content.len() as u64);
        e.sha256 = Some(sha256_hex(&content));
        self.files.insert(name, content);
    }

    /// The file name and content of a part, when the bundle holds it.
    pub fn part(&self, part: Part) -> Option<(&str, &[u8])> {
        let e = self.manifest.entry(part)?;
        let name = e.file.as_deref()?;
        self.files
            .get(name)
            .map(|c| (name, c.as_slice()))
            .filter(|_| e.status == FileStatus::Ok)
    }

    /// The manifest as pretty JSON (what `manifest.json` holds).
    pub fn manifest_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.manifest).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes the bundle as a directory (created if needed; existing files are replaced).
    pub fn write_dir(&self, dir: &Path) -> Result<(), BundleError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, content) in &self.files {
            let p = dir.join(name);
            fs::write(&p, content).map_err(io(&p))?;
        }
        let p = dir.join(MANIFEST);
        fs::write(&p, self.manifest_json()).map_err(io(&p))
    }

    /// Writes the bundle as one tar archive whose entries sit under `prefix/`.
    pub fn write_tar(&self, path: &Path, prefix: &str) -> Result<(), BundleError> {
        let file = fs::File::create(path).map_err(io(path))?;
        let mut tar = tar::Builder::new(file);
        let mtime = jiff::Timestamp::now().as_second().max(0) as u64;
        let manifest = self.manifest_json();
        let entries = std::iter::once((MANIFEST, manifest.as_bytes()))
            .chain(self.files.iter().map(|(n, c)| (n.as_str(), c.as_slice())));
        for (name, content) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, format!("{prefix}/{name}"), content)
                .map_err(io(path))?;
        }
        tar.into_inner().map_err(io(path))?;
        Ok(())
    }

    /// Reads a bundle from a directory or a tar archive (entries directly at the top or under
    /// one directory), checking the manifest's format and version and that every file it names
    /// is there.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let files = if path.is_dir() {
            read_dir_files(path)?
        } else {
            read_tar_files(path)?
        };
        Bundle::from_files(&files, path)
    }

    /// A bundle from the files of a directory or archive, by file name (`path`, where they
    /// were read from, for messages): the checks of [`Bundle::read`] without the I/O.
    pub fn from_files(
        files: &BTreeMap<String, Vec<u8>>,
        path: &Path,
    ) -> Result<Bundle, BundleError> {
        let manifest_path = path.join(MANIFEST);
        let Some(text) = files.get(MANIFEST) else {
            return Err(BundleError::NotABundle {
                path: path.to_path_buf(),
            });
        };
        let text = String::from_utf8_lossy(text).into_owned();
        let manifest = parse_manifest(&manifest_path, &text)?;
        let mut bundle = Bundle::new(manifest.clone(), path.display().to_string());
        for e in &manifest.files {
            let Some(name) = &e.file else { continue };
            let line = line_of(&text, &format!("\"{name}\""));
            if name.contains('/') || name == ".." || name.is_empty() {
                return Err(BundleError::BadFileName {
                    path: manifest_path,
                    line,
                    file: name.clone(),
                });
            }
            let Some(content) = files.get(name) else {
                if e.status != FileStatus::Ok {
                    continue;
                }
                return Err(BundleError::MissingFile {
                    path: manifest_path,
                    line,
                    file: name.clone(),
                    part: e.part,
                });
            };
            if let Some(want) = &e.sha256
                && *want != sha256_hex(content)
            {
                bundle.notes.push(format!(
                    "{name} was changed after collection (its SHA-256 differs from the manifest's)"
                ));
            }
            bundle.files.insert(name.clone(), content.clone());
        }
        Ok(bundle)
    }
}

/// Parses and checks `manifest.json` text (`path` for messages).
pub fn parse_manifest(path: &Path, text: &str) -> Result<Manifest, BundleError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| BundleError::Manifest {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    // format and version first: a newer bundle may not fit this diag's types at all
    let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(BundleError::Format {
            path: path.to_path_buf(),
            line: line_of(text, "\"format\""),
            found: format.to_string(),
        });
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != u64::from(VERSION) {
        return Err(BundleError::Version {
            path: path.to_path_buf(),
            line: line_of(text, "\"version\""),
            found: version.min(u64::from(u32::MAX)) as u32,
        });
    }
    // decode from the text (not the value) so shape errors carry a line
    serde_json::from_str(text).map_err(|e| BundleError::Manifest {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let p = entry.path();
        if p.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.insert(name, fs::read(&p).map_err(io(&p))?);
        }
    }
    Ok(out)
}

fn read_tar_files(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()
            .map_err(io(path))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(io(path))?;
        out.insert(name, content);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle {
        let mut b = Bundle::new(Manifest::new("node1", "2026-01-01T00:00:00Z"), "test");
        b.put(
            FileEntry {
                part: Part::Sysctl,
                file: None,
                command: "sysctl -e net.ipv4.ip_forward".into(),
                status: FileStatus::Ok,
                exit_code: Some(0),
                note: None,
                bytes: None,
                sha256: None,
                truncated: None,
            },
            Some(b"net.ipv4.ip_forward = 1\n".to_vec()),
        );
        b
    }

    #[test]
    fn dir_and_tar_round_trip() {
        let b = sample();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        b.write_dir(&dir).unwrap();
        let back = Bundle::read(&dir).unwrap();
        assert_eq!(back.manifest, b.manifest);
        assert_eq!(back.files, b.files);
        assert!(back.notes.is_empty());
        let tar = tmp.path().join("b.tar");
        b.write_tar(&tar, "node1").unwrap();
        let back = Bundle::read(&tar).unwrap();
        assert_eq!(back.files, b.files);
        assert_eq!(back.manifest.entry(Part::Sysctl).unwrap().bytes, Some(24));
    }

    #[test]
    fn version_missing_file_and_edits() {
        let b = sample();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("b");
        b.write_dir(&dir).unwrap();
        fs::write(dir.join("sysctl.txt"), "net.ipv4.ip_forward = 0\n").unwrap();
        let back = Bundle::read(&dir).unwrap();
        assert_eq!(back.notes.len(), 1, "{:?}", back.notes);

        fs::remove_file(dir.join("sysctl.txt")).unwrap();
        let e = Bundle::read(&dir).unwrap_err().to_string();
        assert!(
            e.contains("manifest.json:") && e.contains("\"sysctl.txt\""),
            "{e}"
        );
        assert!(e.contains("missing"), "{e}");

        let text = b
            .manifest_json()
            .replace("\"version\": 1", "\"version\": 7");
        fs::write(dir.join(MANIFEST), &text).unwrap();
        let e = Bundle::read(&dir).unwrap_err();
        assert!(
            matches!(
                e,
                BundleError::Version {
                    line: 3,
                    found: 7,
                    ..
                }
            ),
            "{e}"
        );

        fs::write(
            dir.join(MANIFEST),
            "{\"format\": \"diag-bundle\",\n\"version\": 1,\n",
        )
        .unwrap();
        let e = Bundle::read(&dir).unwrap_err();
        assert!(matches!(e, BundleError::Manifest { line: 3, .. }), "{e}");
    }
}
