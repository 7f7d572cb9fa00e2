//! Errno names used in scenario files (`error = "EPERM"`) and in messages.

use nix::errno::Errno;

/// The errno names a scenario may expect, with their values.
const NAMES: &[(&str, Errno)] = &[
    ("EPERM", Errno::EPERM),
    ("ENOENT", Errno::ENOENT),
    ("ESRCH", Errno::ESRCH),
    ("EINTR", Errno::EINTR),
    ("EIO", Errno::EIO),
    ("E2BIG", Errno::E2BIG),
    ("EBADF", Errno::EBADF),
    ("ECHILD", Errno::ECHILD),
    ("EAGAIN", Errno::EAGAIN),
    ("ENOMEM", Errno::ENOMEM),
    ("EACCES", Errno::EACCES),
    ("EFAULT", Errno::EFAULT),
    ("EBUSY", Errno::EBUSY),
    ("EEXIST", Errno::EEXIST),
    ("EXDEV", Errno::EXDEV),
    ("ENODEV", Errno::ENODEV),
    ("ENOTDIR", Errno::ENOTDIR),
    ("EISDIR", Errno::EISDIR),
    ("EINVAL", Errno::EINVAL),
    ("ENFILE", Errno::ENFILE),
    ("EMFILE", Errno::EMFILE),
    ("ENOSPC", Errno::ENOSPC),
    ("EROFS", Errno::EROFS),
    ("EMLINK", Errno::EMLINK),
    ("ERANGE", Errno::ERANGE),
    ("ENOSYS", Errno::ENOSYS),
    ("EUSERS", Errno::EUSERS),
    ("EOPNOTSUPP", Errno::EOPNOTSUPP),
    ("ELOOP", Errno::ELOOP),
    ("ENOSPC", Errno::ENOSPC),
];

/// The errno called `name`, if it is one a scenario may name.
pub(crate) fn from_name(name: &str) -> Option<Errno> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// The symbolic name of `errno` (e.g. `EPERM`), or its number.
pub(crate) fn name(errno: Errno) -> String {
    NAMES.iter().find(|(_, e)| *e == errno).map_or_else(
        || format!("errno {}", errno as i32),
        |(n, _)| (*n).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (n, e) in NAMES {
            assert_eq!(from_name(n), Some(*e));
            assert_eq!(name(*e), *n);
        }
        assert_eq!(from_name("EWHATEVER"), None);
    }
}
