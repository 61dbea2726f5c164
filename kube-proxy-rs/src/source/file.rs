//! The `--manifests` source: reads a file or a directory, and re-reads it when it changes.
//!
//! ```text
//!   FileSource::read()  ──> Manifests                       (one-shot, for --once / --dry-run)
//!   FileSource::watch(poll) ──thread: every poll, read all files; content changed?──┐
//!        FileWatch { watch::Receiver<Snapshot> } <── send(Snapshot) ────────────────┘
//! ```
//!
//! A directory contributes its `*.yaml`, `*.yml` and `*.json` files, sorted by name, not
//! recursively; names starting with `.` are skipped (editor swap files, the `..data`
//! links of a mounted ConfigMap, whose files are followed through their symlinks). Each poll
//! reads every file and compares the bytes with the previous read, so an edit is seen even
//! when it keeps the size and lands within the file system's timestamp granularity; new
//! bytes are used once two consecutive polls read them alike, so a file caught mid-write is
//! not taken for its final content (writers should still prefer write-then-rename). When the
//! files stop parsing, the last good set stays current and the error is published beside it;
//! nothing is removed because of a half-written file.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tokio::sync::watch;

use super::manifest::{self, ManifestError, Manifests};

/// A poll interval that notices an edit quickly without reading files needlessly often.
pub const DEFAULT_POLL: Duration = Duration::from_millis(500);

/// Why the manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not UTF-8.
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A file does not parse.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A manifest file or directory.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

/// The raw content of the files, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Contents {
    fn digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.files.hash(&mut h);
        h.finish()
    }
}

impl FileSource {
    /// A source reading `path` (a file, or a directory of files).
    pub fn new(path: impl Into<PathBuf>) -> FileSource {
        FileSource { path: path.into() }
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files read: the path itself, or the directory's manifest files in name order.
    pub fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let read_err = |source| SourceError::Read {
            path: self.path.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.path).map_err(read_err)?;
        if !meta.is_dir() {
            return Ok(vec![self.path.clone()]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_manifest = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if name.starts_with('.') || !is_manifest {
                continue;
            }
            let path = entry.path();
            // Follow symlinks (ConfigMap mounts); skip directories named like files.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => files.push(path),
                Ok(_) => {}
                Err(source) => return Err(SourceError::Read { path, source }),
            }
        }
        files.sort();
        Ok(files)
    }

    fn read_contents(&self) -> Result<Contents, SourceError> {
        let mut files = Vec::new();
        for path in self.files()? {
            match std::fs::read(&path) {
                Ok(bytes) => files.push((path, bytes)),
                // Removed between listing and reading: it is simply gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && path != self.path => {}
                Err(source) => return Err(SourceError::Read { path, source }),
            }
        }
        Ok(Contents { files })
    }

    fn parse(contents: &Contents) -> Result<Manifests, SourceError> {
        let mut out = Manifests::default();
        for (path, bytes) in &contents.files {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| SourceError::NotUtf8 { path: path.clone() })?;
            out.extend(manifest::parse(path, text)?);
        }
        Ok(out)
    }

    /// Reads and parses the files once.
    pub fn read(&self) -> Result<Manifests, SourceError> {
        Self::parse(&self.read_contents()?)
    }

    /// Reads the files now, then re-reads them every `poll` on a background thread,
    /// publishing a [`Snapshot`] whenever what they hold changes. The thread stops when the
    /// returned [`FileWatch`] is dropped.
    pub fn watch(self, poll: Duration) -> FileWatch {
        let mut state = WatchState::default();
        let first = state.step(&self).unwrap_or_default();
        state.settle = true;
        let (tx, rx) = watch::channel(first);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("manifest-watch".into())
            .spawn(move || {
                // recv_timeout doubles as the sleep; the sender's drop ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(poll) {
                    if let Some(snapshot) = state.step(&self)
                        && tx.send(snapshot).is_err()
                    {
                        break; // every receiver is gone
                    }
                }
            })
            .expect("spawning a thread");
        FileWatch {
            rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

/// What a [`FileWatch`] publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every publication (0 before anything was read).
    pub generation: u64,
    /// The last set of objects that parsed, if any did.
    pub manifests: Option<Arc<Manifests>>,
    /// Why the files as they are now cannot be used (the `manifests` above are older).
    pub error: Option<Arc<SourceError>>,
}

#[derive(Default)]
struct WatchState {
    /// Wait for content to be stable over two polls (off for the first read).
    settle: bool,
    pending_digest: Option<u64>,
    last_digest: Option<u64>,
    last_failed: Option<String>,
    current: Snapshot,
}

impl WatchState {
    /// Reads once; returns a snapshot to publish if anything changed.
    fn step(&mut self, source: &FileSource) -> Option<Snapshot> {
        let contents = match source.read_contents() {
            Ok(c) => c,
            Err(e) => {
                // Read again on the next poll, whatever the content then.
                self.last_digest = None;
                return self.fail(e);
            }
        };
        let digest = contents.digest();
        if self.last_digest == Some(digest) {
            return None; // unchanged (and already parsed, well or badly)
        }
        // A file being written in place may be read half-written (truncated, then filled):
        // use a new content only once two consecutive polls read the same bytes.
        if self.settle && self.pending_digest != Some(digest) {
            self.pending_digest = Some(digest);
            return None;
        }
        self.last_digest = Some(digest);
        match FileSource::parse(&contents) {
            Err(e) => self.fail(e),
            Ok(manifests) => {
                self.last_failed = None;
                let same = self.current.manifests.as_deref() == Some(&manifests);
                if same && self.current.error.is_none() {
                    return None; // e.g. a file touched or rewritten identically
                }
                if !same {
                    self.current.manifests = Some(Arc::new(manifests));
                }
                self.current.error = None;
                self.publish()
            }
        }
    }

    fn fail(&mut self, e: SourceError) -> Option<Snapshot> {
        // Publish an error once, not on every poll.
        let text = e.to_string();
        if self.last_failed.as_ref() == Some(&text) {
            return None;
        }
        self.last_failed = Some(text);
        self.current.error = Some(Arc::new(e));
        self.publish()
    }

    fn publish(&mut self) -> Option<Snapshot> {
        self.current.generation += 1;
        Some(self.current.clone())
    }
}

/// A running manifest watch.
#[derive(Debug)]
pub struct FileWatch {
    rx: watch::Receiver<Snapshot>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FileWatch {
    /// The current snapshot.
    pub fn current(&self) -> Snapshot {
        self.rx.borrow().clone()
    }

    /// A receiver of snapshots: `changed().await` wakes on each publication.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.rx.clone()
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n";

    fn svc(name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\n\
             spec: {{clusterIP: 198.19.0.1, ports: [{{port: 80}}]}}\n"
        )
    }

    /// Writes like a careful editor: a hidden temporary file, then a rename.
    fn put(path: &Path, content: impl AsRef<[u8]>) {
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn names(m: &Manifests) -> Vec<String> {
        m.services
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn directory_reads_manifest_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.yml"), svc("b")).unwrap();
        std::fs::write(d.join("a.yaml"), svc("a")).unwrap();
        std::fs::write(
            d.join("c.json"),
            r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("notes.txt"), "not yaml: [").unwrap();
        std::fs::write(d.join(".a.yaml.swp"), "garbage: [").unwrap();
        std::fs::create_dir(d.join("sub.yaml")).unwrap();
        // A ConfigMap mount: the visible name is a symlink into a hidden directory.
        std::fs::create_dir(d.join("..data")).unwrap();
        std::fs::write(d.join("..data/z.yaml"), svc("z")).unwrap();
        std::os::unix::fs::symlink(d.join("..data/z.yaml"), d.join("z.yaml")).unwrap();

        let src = FileSource::new(d);
        let files: Vec<_> = src
            .files()
            .unwrap()
            .iter()
            .map(|f| f.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(files, ["a.yaml", "b.yml", "c.json", "z.yaml"]);
        let m = src.read().unwrap();
        assert_eq!(names(&m), ["a", "b", "z"]);
        assert_eq!(m.nodes.len(), 1);

        let one = FileSource::new(d.join("b.yml")).read().unwrap();
        assert_eq!(names(&one), ["b"]);
        let e = FileSource::new(d.join("missing.yaml")).read().unwrap_err();
        assert!(matches!(e, SourceError::Read { .. }), "{e}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), svc("a")).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Service\nspec: []\n",
        )
        .unwrap();
        let e = FileSource::new(dir.path()).read().unwrap_err().to_string();
        let b = dir.path().join("b.yaml");
        assert!(
            e.starts_with(&format!(
                "{}:3:7 (document 1): spec: invalid type",
                b.display()
            )),
            "{e}"
        );
        std::fs::write(&b, [0xff, 0xfe]).unwrap();
        let e = FileSource::new(dir.path()).read().unwrap_err().to_string();
        assert!(e.ends_with("b.yaml: not UTF-8 text"), "{e}");
    }

    #[test]
    fn new_content_is_used_once_two_polls_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        let src = FileSource::new(&file);
        std::fs::write(&file, svc("a")).unwrap();
        let mut st = WatchState::default();
        assert_eq!(st.step(&src).map(|s| s.generation), Some(1)); // first read: at once
        st.settle = true;
        assert!(st.step(&src).is_none()); // unchanged
        std::fs::write(&file, "").unwrap(); // caught mid-write: truncated
        assert!(st.step(&src).is_none());
        std::fs::write(&file, svc("b")).unwrap();
        assert!(st.step(&src).is_none()); // new bytes, seen once
        let s = st.step(&src).expect("stable for two polls");
        assert_eq!(
            (s.generation, names(s.manifests.as_ref().unwrap())),
            (2, vec!["b".into()])
        );
        std::fs::remove_file(&file).unwrap();
        let s = st.step(&src).expect("a read error is published at once");
        assert!(matches!(s.error.as_deref(), Some(SourceError::Read { .. })));
        assert_eq!(names(s.manifests.as_ref().unwrap()), ["b"]);
        assert!(st.step(&src).is_none()); // the same error is not published again
    }

    /// Waits for the next publication (the timeout only guards against a hang).
    async fn next(rx: &mut watch::Receiver<Snapshot>) -> Snapshot {
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("a change is published")
            .expect("the watch is running");
        rx.borrow_and_update().clone()
    }

    #[tokio::test]
    async fn watch_publishes_changes_and_keeps_the_last_good_set_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("objects.yaml");
        put(&file, format!("{NODE}---\n{}", svc("a")));
        let w = FileSource::new(dir.path()).watch(Duration::from_millis(5));
        let first = w.current();
        assert_eq!(first.generation, 1);
        assert_eq!(names(first.manifests.as_ref().unwrap()), ["a"]);
        let mut rx = w.subscribe();
        rx.mark_unchanged();

        // A same-length edit is seen (content, not timestamps, is compared).
        put(&file, format!("{NODE}---\n{}", svc("b")));
        let s = next(&mut rx).await;
        assert_eq!(
            (s.generation, names(s.manifests.as_ref().unwrap())),
            (2, vec!["b".to_string()])
        );
        assert!(s.error.is_none());

        // A broken file: the error is published, the last good objects stay.
        put(&file, "apiVersion: v1\nkind: Service\nspec: [\n");
        let s = next(&mut rx).await;
        assert_eq!(names(s.manifests.as_ref().unwrap()), ["b"]);
        assert!(
            s.error
                .as_ref()
                .unwrap()
                .to_string()
                .contains("objects.yaml:")
        );

        // A new file appears and the broken one is fixed.
        put(&dir.path().join("more.yaml"), svc("c"));
        put(&file, svc("a"));
        let mut s = next(&mut rx).await;
        // The two writes may be seen in one poll or two; wait for the final state.
        while s.error.is_some() || names(s.manifests.as_ref().unwrap()) != ["c", "a"] {
            s = next(&mut rx).await;
        }
        assert!(s.error.is_none());

        // Rewriting identical content publishes nothing; a real change comes next.
        let gen_before = s.generation;
        put(&file, svc("a"));
        std::fs::remove_file(dir.path().join("more.yaml")).unwrap();
        let s = next(&mut rx).await;
        assert_eq!(names(s.manifests.as_ref().unwrap()), ["a"]);
        assert_eq!(s.generation, gen_before + 1);
        drop(w); // joins the thread
    }
}
