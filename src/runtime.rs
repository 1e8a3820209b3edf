//! What std gave a program and init, built without it, brings itself: the
//! heap (glibc's malloc, which the static binary has anyway) and what a
//! panic does. Not built for unit tests, which run on std.
//!
//! Init's own code cannot panic (clippy denies every way to), so the
//! handler is for what is left: an arithmetic or bounds check inserted by
//! the compiler, or an allocation that failed. It says so on stderr and
//! aborts; as PID 1 that ends the container, which is the honest outcome
//! for a broken init.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;

/// glibc's malloc returns memory aligned to 16 bytes on x86_64 and aarch64.
const MALLOC_ALIGN: usize = 16;

struct Malloc;

// SAFETY: every pointer handed out comes from malloc, calloc, realloc or
// posix_memalign with at least the layout's size and alignment, and is
// given back to free.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: malloc with a size; null on failure.
            return unsafe { libc::malloc(layout.size()) }.cast();
        }
        let mut out: *mut libc::c_void = core::ptr::null_mut();
        // SAFETY: the alignment is a power of two and a multiple of the
        // pointer size (it is above 16).
        match unsafe { libc::posix_memalign(&mut out, layout.align(), layout.size()) } {
            0 => out.cast(),
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: calloc with a count and a size; null on failure.
            return unsafe { libc::calloc(1, layout.size()) }.cast();
        }
        // SAFETY: as in alloc; the block is then zeroed whole.
        unsafe {
            let p = self.alloc(layout);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from one of the allocation calls above.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: ptr came from malloc or calloc; realloc keeps the
            // alignment malloc gives.
            return unsafe { libc::realloc(ptr.cast(), new_size) }.cast();
        }
        // SAFETY: a fresh block of the new size, the old contents copied
        // over (the smaller of the two sizes), then the old block freed.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static HEAP: Malloc = Malloc;

// The libc crate links libc itself, except when its `std` feature is on —
// which the test build's dev-dependencies switch on for it, expecting std
// to do it. init has no std, so it names libc here.
#[link(name = "c")]
unsafe extern "C" {}

/// Formats into a fixed buffer: the heap may be what failed.
struct Message {
    buf: [u8; 256],
    len: usize,
}

impl Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut message = Message {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(message, "cocalc-init: internal error: {}", info.message());
    if let Some(at) = info.location() {
        let _ = write!(message, " at {}:{}", at.file(), at.line());
    }
    let _ = message.write_str("\n");
    crate::stderr::write(message.buf.get(..message.len).unwrap_or(&[]));
    // SAFETY: abort ends the process; it does not return.
    unsafe { libc::abort() }
}

// The prebuilt `alloc` library was compiled for unwinding: its cleanup
// paths name libgcc's `_Unwind_Resume`, and its unwind tables std's
// personality routine; static glibc's stdio names libgcc's C personality
// routine for thread-cancellation cleanups. Nothing in init ever unwinds —
// `panic = "abort"`, one thread, no pthread_cancel — so none of them can be
// called. Defining them keeps the unwinder (libgcc_eh) out of the binary.

#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: abort ends the process; it does not return.
    unsafe { libc::abort() }
}

#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() -> ! {
    // SAFETY: abort ends the process; it does not return.
    unsafe { libc::abort() }
}

#[unsafe(no_mangle)]
extern "C" fn __gcc_personality_v0() -> ! {
    // SAFETY: abort ends the process; it does not return.
    unsafe { libc::abort() }
}
