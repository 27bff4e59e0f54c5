//! The seam between sources and the file system: sysfs, powercap and /proc are read through
//! [`FileReader`], so tests can build trees in a temp dir and inject errors (permission
//! denied cannot be produced with `chmod` when tests run as root).

use std::io;
use std::path::{Path, PathBuf};

/// Reads files and lists directories.
pub trait FileReader: Send + Sync + std::fmt::Debug {
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// The entries of a directory, as full paths, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;

    /// Returns true if and only if `path` exists (as seen by this reader).
    fn exists(&self, path: &Path) -> bool;

    /// Reads a file holding one number (sysfs style), trimmed.
    fn read_u64(&self, path: &Path) -> io::Result<u64> {
        let s = self.read_to_string(path)?;
        s.trim().parse::<u64>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}: {:?}", path.display(), s.trim()),
            )
        })
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl FileReader for RealFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            out.push(entry?.path());
        }
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// A reader that fails reads of chosen files with a chosen error kind and passes everything
/// else to the real file system. For tests.
#[derive(Debug, Clone)]
pub struct FailingFs {
    /// Paths whose reads fail (compared whole).
    pub fail: Vec<PathBuf>,
    pub kind: io::ErrorKind,
}

impl FileReader for FailingFs {
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        if self.fail.iter().any(|p| p == path) {
            return Err(io::Error::from(self.kind));
        }
        std::fs::read_to_string(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        if self.fail.iter().any(|p| p == path) {
            return Err(io::Error::from(self.kind));
        }
        RealFs.read_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
