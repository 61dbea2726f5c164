//! Where objects come from when there is no API server: manifest files.
//!
//! ```text
//!   --manifests PATH (file or directory) ──file::FileSource──> text ──manifest::parse──> Manifests
//!        re-read every poll; a change publishes a new Snapshot on a watch channel
//! ```
//!
//! [`manifest`] is pure (text in, objects out); [`file`](mod@file) does the reading and watching.

#[cfg(feature = "daemon")]
pub mod file;
pub mod manifest;

#[cfg(feature = "daemon")]
pub use file::{FileSource, FileWatch, Snapshot, SourceError};
pub use manifest::{Ignored, ManifestError, Manifests};
