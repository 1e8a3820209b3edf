//! A file that init appends to and rotates by size: the log, and a
//! program's own `stdout_logfile`. It never follows a link planted at its
//! path, never blocks at the open or at a write, makes its folder when it
//! is missing, and opens the path anew when it no longer names the open
//! file (deleted, or renamed away by an outside logrotate). What a failure
//! means is the owner's to say: here it is only returned.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

/// The modes of a new file and of a folder made for it.
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    pub file: u32,
    pub folder: u32,
}

/// init's own log: readable by its group at most.
pub const PRIVATE: Modes = Modes {
    file: 0o640,
    folder: 0o750,
};

pub struct RotatingFile {
    /// Absolute.
    path: PathBuf,
    modes: Modes,
    file: Option<File>,
    /// Device and inode of the open file, to notice when the path stops
    /// naming it.
    id: (u64, u64),
    /// Opened since the last write: the path was just checked.
    fresh: bool,
    /// A character device such as /dev/null or a terminal: written as it
    /// is, never rotated nor looked for again.
    device: bool,
    /// Bytes in the current file, as far as we know.
    size: u64,
    /// The file's lock, while it is open (released with it).
    lock: Option<Flock<File>>,
    /// At the last open, another open file held the file's lock (another
    /// init writing there): its pid, where /proc/locks says.
    shared: Option<Option<u32>>,
}

impl RotatingFile {
    /// Not opened yet: the first write (or [`RotatingFile::open`]) opens it.
    pub fn new(path: PathBuf, modes: Modes) -> RotatingFile {
        RotatingFile {
            path,
            modes,
            file: None,
            id: (0, 0),
            fresh: false,
            device: false,
            size: 0,
            lock: None,
            shared: None,
        }
    }

    /// Whether, at the last open, another writer held the file: `Some`,
    /// with its pid where that could be told.
    pub fn shared_with(&self) -> Option<Option<u32>> {
        self.shared
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_device(&self) -> bool {
        self.device
    }

    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Closes it; the next write opens the path again.
    pub fn close(&mut self) {
        self.file = None;
        self.lock = None;
    }

    /// Opens (or creates) the path, and its folder if that is missing.
    pub fn open(&mut self) -> io::Result<()> {
        self.file = None;
        let mut options = OpenOptions::new();
        // Never write through a link someone planted at the path; never
        // wait at the open (a FIFO with no reader) nor at a write to a
        // device that would block (regular files ignore the flag).
        options
            .append(true)
            .create(true)
            .mode(self.modes.file)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits());
        let file = match options.open(&self.path) {
            // The folder is missing (never made, or deleted): make it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::folders::make(parent, self.modes.folder)?;
                }
                options.open(&self.path)?
            }
            other => other?,
        };
        let meta = file.metadata()?;
        self.device = meta.file_type().is_char_device();
        if !meta.is_file() && !self.device {
            return Err(io::Error::other("not a regular file or a character device"));
        }
        self.size = meta.len();
        self.id = (meta.dev(), meta.ino());
        // One writer a file: each open takes the file's lock (released
        // when it is closed), so that a second init on the same log finds
        // it held and can say so. Nothing waits for it.
        self.lock = None;
        self.shared = None;
        if !self.device {
            // The lock is on the open file, which a duplicate shares.
            match file
                .try_clone()
                .map(|dup| Flock::lock(dup, FlockArg::LockExclusiveNonblock))
            {
                Ok(Ok(lock)) => self.lock = Some(lock),
                Ok(Err((_, Errno::EWOULDBLOCK))) => {
                    self.shared = Some(crate::procs::lock_holder(meta.dev(), meta.ino()));
                }
                // No lock (a file system without them): nothing to say.
                Ok(Err(_)) | Err(_) => {}
            }
        }
        self.fresh = true;
        self.file = Some(file);
        Ok(())
    }

    /// Appends `bytes`, opening the path anew if it no longer names the
    /// open file: deleted (every line would be lost) or renamed away (they
    /// would go on into the old file).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        // lstat, as the file is opened with O_NOFOLLOW.
        let moved = self.file.is_none()
            || (!self.fresh
                && !self.device
                && std::fs::symlink_metadata(&self.path)
                    .map_or(true, |m| (m.dev(), m.ino()) != self.id));
        self.fresh = false;
        if moved {
            self.open()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("not open"));
        };
        file.write_all(bytes)?;
        self.size = self.size.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// Whether `line` bytes, written after `pending` bytes not yet written,
    /// would push the file past `max_bytes` (0: no limit). A line alone
    /// longer than the limit goes whole into a fresh file.
    pub fn would_overflow(&self, pending: u64, line: u64, max_bytes: u64) -> bool {
        if max_bytes == 0 || self.device {
            return false;
        }
        let used = self.size.saturating_add(pending);
        used > 0 && used.saturating_add(line) > max_bytes
    }

    /// Whether `bytes` more keep the file within `max_bytes` (0: no
    /// limit).
    pub fn fits(&self, bytes: u64, max_bytes: u64) -> bool {
        max_bytes == 0 || self.device || self.size.saturating_add(bytes) <= max_bytes
    }

    /// FILE.K-1 → FILE.K, …, FILE → FILE.1, then a fresh FILE. With no
    /// backups the file just starts over.
    pub fn rotate(&mut self, backups: u32) -> io::Result<()> {
        if backups == 0 {
            if let Some(file) = self.file.as_ref() {
                file.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        for k in (1..backups).rev() {
            let from = numbered(&self.path, k);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, k + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.open()
    }
}

/// What an open of `path` would refuse, found without creating anything:
/// for `--check`, in the words the open's error would have.
pub fn check(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        Err(format!(
            "{} is a symbolic link, which init does not follow: name the file itself",
            path.display()
        ))
    } else if !kind.is_file() && !kind.is_char_device() {
        Err(format!(
            "{}: not a regular file or a character device",
            path.display()
        ))
    } else {
        Ok(())
    }
}

/// FILE.K, the K-th backup.
pub fn numbered(path: &Path, k: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{k}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finds_what_the_open_refuses() {
        let dir = std::env::temp_dir().join(format!("cocalc-init-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(check(&dir.join("new/file")), Ok(()));
        std::fs::write(dir.join("file"), "").unwrap();
        assert_eq!(check(&dir.join("file")), Ok(()));
        assert_eq!(check(Path::new("/dev/null")), Ok(()));
        std::os::unix::fs::symlink(dir.join("file"), dir.join("link")).unwrap();
        assert!(
            check(&dir.join("link"))
                .unwrap_err()
                .contains("symbolic link")
        );
        assert!(check(&dir).unwrap_err().contains("not a regular file"));
        // And the open agrees.
        let mut link = RotatingFile::new(dir.join("link"), PRIVATE);
        assert!(link.open().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
