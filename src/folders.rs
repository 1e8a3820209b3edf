//! Making the folders init's own files (the log, the control socket, a
//! program's output file) go in, where they are missing.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The shared scratch folder every system has, and its mode there.
const TMP: &str = "/tmp";
const TMP_MODE: u32 = 0o1777;

/// Makes `folder` and its missing parents with `mode`. A `/tmp` that is
/// missing (a scratch or busybox image) is made as every system has it,
/// `1777`: made init's own, it would shut out every `user=` program that
/// writes there.
pub fn make(folder: &Path, mode: u32) -> io::Result<()> {
    let tmp = Path::new(TMP);
    if folder.starts_with(tmp) && std::fs::symlink_metadata(tmp).is_err() {
        match DirBuilder::new().mode(TMP_MODE).create(tmp) {
            // The umask took the sticky and the others' bits: set them.
            Ok(()) => std::fs::set_permissions(tmp, Permissions::from_mode(TMP_MODE))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    DirBuilder::new().recursive(true).mode(mode).create(folder)
}
