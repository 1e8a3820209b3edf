//! The system calls init makes, wrapped once: owned fds that close on
//! drop, errors as errno values with their English text, paths as
//! NUL-terminated bytes. init is built without std (see `main.rs`), so this
//! module and `libc` are its whole contact with the OS, apart from the
//! spawn attributes in `spawn` and the signal set-up in `signals`.

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::{CStr, c_int};
use core::fmt;

/// A failed system call: its errno, or a condition init found itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Os(c_int),
    Other(&'static str),
}

pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// The errno the last failed libc call left.
    pub fn last() -> Error {
        // SAFETY: glibc's errno location is valid for the calling thread.
        Error::Os(unsafe { *libc::__errno_location() })
    }

    pub fn errno(self) -> Option<c_int> {
        match self {
            Error::Os(e) => Some(e),
            Error::Other(_) => None,
        }
    }
}

unsafe extern "C" {
    /// glibc 2.32+: the English text of an errno, untranslated — unlike
    /// strerror, it does not pull gettext and iconv into a static binary.
    fn strerrordesc_np(errnum: c_int) -> *const core::ffi::c_char;
}

impl fmt::Display for Error {
    /// `No such file or directory (os error 2)`: std's wording, which the
    /// log used before init dropped std.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Other(text) => f.write_str(text),
            Error::Os(e) => {
                // SAFETY: strerrordesc_np returns a static string or null.
                let text = unsafe { strerrordesc_np(e) };
                if text.is_null() {
                    write!(f, "Unknown error {e} (os error {e})")
                } else {
                    // SAFETY: a NUL-terminated static string from glibc.
                    let text = unsafe { CStr::from_ptr(text) };
                    let text = core::str::from_utf8(text.to_bytes()).unwrap_or("?");
                    write!(f, "{text} (os error {e})")
                }
            }
        }
    }
}

/// Runs a call that returns -1 and sets errno on failure, again while it
/// was interrupted by a signal.
fn retry(mut call: impl FnMut() -> isize) -> Result<usize> {
    loop {
        let rc = call();
        if let Ok(n) = usize::try_from(rc) {
            return Ok(n);
        }
        match Error::last() {
            Error::Os(libc::EINTR) => continue,
            e => return Err(e),
        }
    }
}

/// A process id. `Display` prints the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(c_int);

impl Pid {
    pub const fn from_raw(pid: c_int) -> Pid {
        Pid(pid)
    }

    pub const fn as_raw(self) -> c_int {
        self.0
    }

    pub fn this() -> Pid {
        // SAFETY: getpid cannot fail.
        Pid(unsafe { libc::getpid() })
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An open file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(c_int);

impl Fd {
    /// Takes ownership of `fd`.
    ///
    /// # Safety
    /// `fd` must be open and owned by nobody else.
    pub unsafe fn from_raw(fd: c_int) -> Fd {
        Fd(fd)
    }

    pub fn raw(&self) -> c_int {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the fd. An error from close leaves it closed too.
        unsafe { libc::close(self.0) };
    }
}

pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<Fd> {
    // SAFETY: a NUL-terminated path; the result is a new fd we then own.
    let fd = retry(|| unsafe { libc::open(path.as_ptr(), flags, mode) as isize })?;
    let fd = c_int::try_from(fd).map_err(|_| Error::Other("fd out of range"))?;
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { Fd::from_raw(fd) })
}

/// One read appended to `buf`, into its spare capacity (no zero-fill);
/// 0 is the end of the file.
fn read_append(fd: c_int, buf: &mut Vec<u8>) -> Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: the kernel writes at most spare.len() bytes into the spare
    // capacity, and only the bytes it wrote are then taken as contents.
    let n = retry(|| unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) })?;
    // SAFETY: n <= the spare capacity, all initialised by the kernel.
    unsafe { buf.set_len((buf.len() + n).min(buf.capacity())) };
    Ok(n)
}

/// One read into `buf` (cleared first), up to its capacity.
pub fn read_into_spare(fd: c_int, buf: &mut Vec<u8>) -> Result<usize> {
    buf.clear();
    read_append(fd, buf)
}

pub fn write_all(fd: c_int, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writing a valid buffer to an fd.
        let n = retry(|| unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })?;
        if n == 0 {
            return Err(Error::Os(libc::EIO));
        }
        bytes = bytes.get(n..).unwrap_or(&[]);
    }
    Ok(())
}

/// What init needs to know of a file.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    /// Device and inode: which file this is.
    pub id: (u64, u64),
}

impl Stat {
    fn from(st: &libc::stat) -> Stat {
        Stat {
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
            id: (st.st_dev, st.st_ino),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

pub fn fstat(fd: c_int) -> Result<Stat> {
    // SAFETY: stat is plain data the kernel fills in.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a local stat.
    retry(|| unsafe { libc::fstat(fd, &mut st) as isize })?;
    Ok(Stat::from(&st))
}

/// `stat(2)`: follows symbolic links.
pub fn stat(path: &CStr) -> Result<Stat> {
    // SAFETY: stat is plain data the kernel fills in.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid pointer to a local stat.
    retry(|| unsafe { libc::stat(path.as_ptr(), &mut st) as isize })?;
    Ok(Stat::from(&st))
}

/// `lstat(2)`: a symbolic link is itself, not what it points to.
pub fn lstat(path: &CStr) -> Result<Stat> {
    // SAFETY: stat is plain data the kernel fills in.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid pointer to a local stat.
    retry(|| unsafe { libc::lstat(path.as_ptr(), &mut st) as isize })?;
    Ok(Stat::from(&st))
}

pub fn exists(path: &CStr) -> bool {
    stat(path).is_ok()
}

/// `access(2)` with `X_OK` and the like.
pub fn access(path: &CStr, mode: c_int) -> bool {
    // SAFETY: a NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), mode) == 0 }
}

/// `mkdir -p` with `mode` for every folder it makes.
pub fn create_dir_all(path: &[u8], mode: libc::mode_t) -> Result<()> {
    let c = cstring(path)?;
    if stat(&c).is_ok_and(|s| s.is_dir()) {
        return Ok(());
    }
    if let Some(parent) = crate::path::parent(path).filter(|p| !p.is_empty() && *p != path) {
        create_dir_all(parent, mode)?;
    }
    // SAFETY: a NUL-terminated path.
    match retry(|| unsafe { libc::mkdir(c.as_ptr(), mode) as isize }) {
        Ok(_) => Ok(()),
        // Made by someone else meanwhile, or a path ending in `/.`.
        Err(Error::Os(libc::EEXIST)) if stat(&c).is_ok_and(|s| s.is_dir()) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn rename(from: &CStr, to: &CStr) -> Result<()> {
    // SAFETY: NUL-terminated paths.
    retry(|| unsafe { libc::rename(from.as_ptr(), to.as_ptr()) as isize }).map(|_| ())
}

pub fn truncate_to_zero(fd: c_int) -> Result<()> {
    // SAFETY: ftruncate on an fd with a plain length.
    retry(|| unsafe { libc::ftruncate(fd, 0) as isize }).map(|_| ())
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> Result<(Fd, Fd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    retry(|| unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) as isize })?;
    let [read, write] = fds;
    // SAFETY: both just made, owned by nobody else.
    Ok(unsafe { (Fd::from_raw(read), Fd::from_raw(write)) })
}

pub fn set_nonblocking(fd: c_int) -> Result<()> {
    // SAFETY: fcntl with integer arguments.
    let flags = retry(|| unsafe { libc::fcntl(fd, libc::F_GETFL) as isize })?;
    let flags = c_int::try_from(flags).unwrap_or(0) | libc::O_NONBLOCK;
    // SAFETY: fcntl with integer arguments.
    retry(|| unsafe { libc::fcntl(fd, libc::F_SETFL, flags) as isize }).map(|_| ())
}

/// A whole (small) file, such as one under /proc.
pub fn read_file(path: &CStr) -> Result<Vec<u8>> {
    let fd = open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)?;
    // Read into spare capacity: a zeroed buffer costs more instructions
    // than the reading.
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        if read_append(fd.raw(), &mut out)? == 0 {
            return Ok(out);
        }
    }
}

/// The names in a folder, `.` and `..` left out.
pub fn list_dir(path: &CStr) -> Result<Vec<Vec<u8>>> {
    // SAFETY: a NUL-terminated path; the DIR is closed below.
    let dir = unsafe { libc::opendir(path.as_ptr()) };
    if dir.is_null() {
        return Err(Error::last());
    }
    let mut names = Vec::new();
    loop {
        // SAFETY: a DIR from opendir, not yet closed.
        let entry = unsafe { libc::readdir(dir) };
        if entry.is_null() {
            break;
        }
        // SAFETY: readdir's entry holds a NUL-terminated name.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    // SAFETY: closes the DIR opened above, once.
    unsafe { libc::closedir(dir) };
    Ok(names)
}

/// The working directory, as the kernel has it.
pub fn current_dir() -> Option<Vec<u8>> {
    // Spare capacity, not a zeroed buffer: zeroing 4 KiB cost more
    // instructions than the rest of start-up's file work together.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: getcwd writes at most spare.len() bytes, NUL included.
        let p = unsafe { libc::getcwd(spare.as_mut_ptr().cast(), spare.len()) };
        if !p.is_null() {
            // SAFETY: getcwd wrote a NUL-terminated string at the start.
            let len = unsafe { CStr::from_ptr(p) }.to_bytes().len();
            // SAFETY: those len bytes were written by getcwd.
            unsafe { buf.set_len(len) };
            return Some(buf);
        }
        if Error::last() != Error::Os(libc::ERANGE) || buf.capacity() > 1 << 20 {
            return None;
        }
        buf.reserve(buf.capacity() * 2);
    }
}

/// An environment variable's value, as bytes.
pub fn getenv(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: a NUL-terminated name; init never changes its environment,
    // so the value stays valid.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { CStr::from_ptr(value) }.to_bytes())
}

/// Bytes as a C string; a NUL inside cannot be passed to the kernel.
pub fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Os(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_std_words_them() {
        assert_eq!(
            alloc::format!("{}", Error::Os(libc::ENOENT)),
            "No such file or directory (os error 2)"
        );
        assert_eq!(
            alloc::format!("{}", Error::Os(libc::EMFILE)),
            "Too many open files (os error 24)"
        );
        assert_eq!(alloc::format!("{}", Error::Other("odd")), "odd");
        assert!(alloc::format!("{}", Error::Os(9999)).contains("9999"));
    }

    #[test]
    fn the_working_directory_is_std_s() {
        let ours = current_dir().unwrap();
        let std_s = std::env::current_dir().unwrap();
        assert_eq!(
            ours,
            std::os::unix::ffi::OsStrExt::as_bytes(std_s.as_os_str())
        );
    }

    #[test]
    fn files_folders_and_pipes() {
        let dir = alloc::format!("/tmp/cocalc-init-sys-{}", Pid::this());
        let deep = alloc::format!("{dir}/a/b");
        create_dir_all(deep.as_bytes(), 0o750).unwrap();
        create_dir_all(deep.as_bytes(), 0o750).unwrap();
        let file = cstring(alloc::format!("{deep}/f").as_bytes()).unwrap();
        let fd = open(
            &file,
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o640,
        )
        .unwrap();
        write_all(fd.raw(), b"hello").unwrap();
        assert_eq!(fstat(fd.raw()).unwrap().size, 5);
        assert!(stat(&file).unwrap().is_file());
        assert!(stat(&cstring(deep.as_bytes()).unwrap()).unwrap().is_dir());
        assert_eq!(read_file(&file).unwrap(), b"hello");
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        std::fs::write(alloc::format!("{deep}/big"), &big).unwrap();
        let big_c = cstring(alloc::format!("{deep}/big").as_bytes()).unwrap();
        assert_eq!(read_file(&big_c).unwrap(), big);
        let mut names = list_dir(&cstring(deep.as_bytes()).unwrap()).unwrap();
        names.sort();
        assert_eq!(names, [b"big".to_vec(), b"f".to_vec()]);
        let (r, w) = pipe().unwrap();
        write_all(w.raw(), b"xy").unwrap();
        drop(w);
        let mut buf = Vec::with_capacity(8);
        assert_eq!(read_into_spare(r.raw(), &mut buf).unwrap(), 2);
        assert_eq!(buf, b"xy");
        assert_eq!(read_into_spare(r.raw(), &mut buf).unwrap(), 0);
        assert_eq!(
            open(c"/nonexistent/x", libc::O_RDONLY, 0).unwrap_err(),
            Error::Os(libc::ENOENT)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
