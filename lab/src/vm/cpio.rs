//! An initramfs archive in the kernel's `newc` cpio format (`cpio -o -H newc`), uncompressed.
//!
//! ```text
//!   Archive::dir("/bin") .file("/bin/busybox", bytes, 0o755) .symlink("/bin/sh", "busybox")
//!      -> write_to(out): "070701" header + name + data, each padded to 4 bytes, "TRAILER!!!"
//! ```
//! Parent directories are added before their entries (the kernel's unpacker does not create
//! them). Archives may be concatenated: the kernel unpacks one after the other, so a run adds
//! its script as a second small archive after the image's.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device (major, minor).
    CharDev(u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
}

/// An initramfs being assembled: absolute guest paths to entries, written in path order (so
/// every directory precedes what it holds).
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Normalises `/a/b/` to `a/b` (cpio names are relative) and adds missing parents.
    fn key(&mut self, path: &str) -> String {
        let rel = path.trim_matches('/').to_string();
        for (i, _) in rel.match_indices('/') {
            self.entries.entry(rel[..i].to_string()).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
            });
        }
        rel
    }

    /// `mkdir -p PATH`.
    pub fn dir(&mut self, path: &str) -> &mut Archive {
        let k = self.key(path);
        if !k.is_empty() {
            self.entries.entry(k).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
            });
        }
        self
    }

    /// A regular file with `data` and permission bits `perm` (e.g. `0o755`); replaces an
    /// entry at the same path.
    pub fn file(&mut self, path: &str, data: Vec<u8>, perm: u32) -> &mut Archive {
        let k = self.key(path);
        self.entries.insert(
            k,
            Entry {
                kind: Kind::File(data),
                mode: perm & 0o7777,
            },
        );
        self
    }

    /// A symbolic link `path -> target`; replaces an entry at the same path.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Archive {
        let k = self.key(path);
        self.entries.insert(
            k,
            Entry {
                kind: Kind::Symlink(target.to_string()),
                mode: 0o777,
            },
        );
        self
    }

    /// A character device node (`mknod PATH c MAJOR MINOR`).
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) -> &mut Archive {
        let k = self.key(path);
        self.entries.insert(
            k,
            Entry {
                kind: Kind::CharDev(major, minor),
                mode: 0o600,
            },
        );
        self
    }

    /// Whether an entry exists at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_matches('/'))
    }

    /// Total bytes of file data held.
    pub fn data_len(&self) -> usize {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len(),
                _ => 0,
            })
            .sum()
    }

    /// Writes the archive, trailer included.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut w = Writer { out, offset: 0 };
        for (ino, (name, e)) in self.entries.iter().enumerate() {
            let (ftype, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
                Kind::Dir => (S_IFDIR, &[], (0, 0)),
                Kind::File(d) => (S_IFREG, d, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, t.as_bytes(), (0, 0)),
                Kind::CharDev(ma, mi) => (S_IFCHR, &[], (*ma, *mi)),
            };
            let nlink = if matches!(e.kind, Kind::Dir) { 2 } else { 1 };
            w.entry(ino as u32 + 1, ftype | e.mode, nlink, name, data, rdev)?;
        }
        w.entry(0, 0, 1, "TRAILER!!!", &[], (0, 0))
    }
}

struct Writer<'a, W: Write> {
    out: &'a mut W,
    offset: usize,
}

impl<W: Write> Writer<'_, W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.offset += b.len();
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - self.offset % 4) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn entry(
        &mut self,
        ino: u32,
        mode: u32,
        nlink: u32,
        name: &str,
        data: &[u8],
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let too_big = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        let size = u32::try_from(data.len()).map_err(|_| too_big("file over 4 GiB"))?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("name too long"))?;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_fields_are_padded() {
        let mut a = Archive::new();
        a.file("/usr/sbin/ipvsadm", b"ELF".to_vec(), 0o755)
            .symlink("/bin/sh", "busybox");
        let mut out = Vec::new();
        a.write_to(&mut out).unwrap();
        let names: Vec<&str> = a.entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["bin", "bin/sh", "usr", "usr/sbin", "usr/sbin/ipvsadm"]
        );
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
        // the symlink's target is its data; the mode carries S_IFLNK
        assert!(text.contains(&format!("{:08x}", S_IFLNK | 0o777)));
    }

    #[test]
    fn cpio_reads_what_we_write() {
        // cross-check with the system's cpio when present
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed: skipping the cross-check");
            return;
        };
        let mut a = Archive::new();
        a.file("/init", b"#!/bin/sh\n".to_vec(), 0o755)
            .file("/etc/x/y", vec![1; 5], 0o644)
            .char_dev("/dev/console", 5, 1);
        let mut out = Vec::new();
        a.write_to(&mut out).unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let listing = child.wait_with_output().unwrap();
        assert!(listing.status.success());
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout),
            "dev\ndev/console\netc\netc/x\netc/x/y\ninit\n"
        );
    }
}
