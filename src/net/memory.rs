//! Gives freed memory back to the system. glibc keeps freed blocks for
//! reuse, so a server that once held a misbehaving friend's buffers (up to
//! its budget) would otherwise stay that large for good after the friend
//! is gone. Called when a friend goes offline: rare, and cheap next to it.

pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
