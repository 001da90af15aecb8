//! Error numbers: mirrors Xen 4.17's `public/errno.h`. Hypercalls return
//! them negated.
//!
//! Invariant: every value is Xen's (which are Linux's on x86), and [`name`]
//! spells each as the header does.

/// Operation not permitted.
pub const EPERM: i64 = 1;
/// No such file or directory.
pub const ENOENT: i64 = 2;
/// No such process (unknown domain).
pub const ESRCH: i64 = 3;
/// Interrupted call.
pub const EINTR: i64 = 4;
/// I/O error.
pub const EIO: i64 = 5;
/// No such device or address.
pub const ENXIO: i64 = 6;
/// Argument list too long.
pub const E2BIG: i64 = 7;
/// Bad file number.
pub const EBADF: i64 = 9;
/// Try again.
pub const EAGAIN: i64 = 11;
/// Out of memory.
pub const ENOMEM: i64 = 12;
/// Permission denied.
pub const EACCES: i64 = 13;
/// Bad address.
pub const EFAULT: i64 = 14;
/// Device or resource busy.
pub const EBUSY: i64 = 16;
/// Already exists.
pub const EEXIST: i64 = 17;
/// No such device.
pub const ENODEV: i64 = 19;
/// Is a directory.
pub const EISDIR: i64 = 21;
/// Invalid argument.
pub const EINVAL: i64 = 22;
/// No space left.
pub const ENOSPC: i64 = 28;
/// Read-only file system.
pub const EROFS: i64 = 30;
/// No data available.
pub const ENODATA: i64 = 61;
/// Function not implemented.
pub const ENOSYS: i64 = 38;
/// Directory not empty.
pub const ENOTEMPTY: i64 = 39;
/// Interrupted call, to be restarted: Xen-internal (`#ifdef __XEN__`), never
/// seen by a guest; the dispatcher turns it into a continuation.
pub const ERESTART: i64 = 85;
/// Operation not supported.
pub const EOPNOTSUPP: i64 = 95;
/// Already connected.
pub const EISCONN: i64 = 106;

/// The symbolic name of an errno value (positive or negated), as xenstore
/// and log lines spell it.
pub fn name(err: i64) -> &'static str {
    match err.abs() {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODATA => "ENODATA",
        ENODEV => "ENODEV",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ERESTART => "ERESTART",
        EOPNOTSUPP => "EOPNOTSUPP",
        EISCONN => "EISCONN",
        _ => "E?",
    }
}
