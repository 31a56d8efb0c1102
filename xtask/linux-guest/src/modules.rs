//! Loading kernel modules from files, in name order, with `finit_module(2)`.

use std::os::fd::AsRawFd;

/// Loads every `*.ko` in `dir`, sorted by file name (xtask numbers them in
/// dependency order). Returns how many were loaded.
pub fn load_all(dir: &str) -> Result<usize, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {dir}: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    files.sort();
    for path in &files {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: finit_module reads the module from an open file descriptor
        // that outlives the call, with an empty NUL-terminated parameter string
        // and no flags; it touches no memory of ours besides those.
        let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), 0) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // Built in, or loaded already: nothing to do.
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("finit_module {}: {err}", path.display()));
            }
        }
    }
    Ok(files.len())
}
