//! A writer for the "newc" cpio format, the one the Linux kernel unpacks as
//! an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//! Only what the bench's initramfs needs: directories, regular files and a
//! character device, owned by root, with time 0 (so the archive is reproducible).

/// The newc magic (no checksums).
const MAGIC: &[u8] = b"070701";
/// File type bits of `mode` (`S_IFDIR`, `S_IFREG`, `S_IFCHR` in `<sys/stat.h>`).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// An archive being built in memory.
pub struct Archive {
    bytes: Vec<u8>,
    /// Inode numbers start at 1; the trailer has 0.
    next_inode: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Archive { bytes: Vec::new(), next_inode: 1 }
    }
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, permissions: u32, data: &[u8]) {
        self.entry(name, S_IFREG | permissions, 1, (0, 0), data);
    }

    pub fn char_device(&mut self, name: &str, permissions: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | permissions, 1, (major, minor), &[]);
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry(TRAILER, 0, 1, (0, 0), &[]);
        self.bytes
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let inode = self.next_inode;
        self.next_inode += 1;
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1, // with its NUL
            0,                     // check (newc has none)
        ];
        self.bytes.extend_from_slice(MAGIC);
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Header plus name, and data, each end on a 4-byte boundary.
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an archive back: (name, mode, rdev major, data) per entry.
    fn read(bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&bytes[at..at + 6], MAGIC, "magic at {at}");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap() as usize
            };
            let (mode, size, rdev_major, name_size) = (field(1), field(6), field(9), field(11));
            let name_start = at + 110;
            let name = std::str::from_utf8(&bytes[name_start..name_start + name_size - 1]).unwrap().to_string();
            assert_eq!(bytes[name_start + name_size - 1], 0);
            let data_start = (name_start + name_size).next_multiple_of(4);
            let data = bytes[data_start..data_start + size].to_vec();
            at = (data_start + size).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(at, bytes.len(), "nothing after the trailer");
                return out;
            }
            out.push((name, mode as u32, rdev_major as u32, data));
        }
    }

    #[test]
    fn entries_round_trip_with_padding() {
        let mut a = Archive::new();
        a.dir("dev");
        a.char_device("dev/console", 0o600, 5, 1);
        a.file("init", 0o755, b"hello");
        a.file("x", 0o644, &[]);
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            read(&bytes),
            vec![
                ("dev".to_string(), 0o040755, 0, vec![]),
                ("dev/console".to_string(), 0o020600, 5, vec![]),
                ("init".to_string(), 0o100755, 0, b"hello".to_vec()),
                ("x".to_string(), 0o100644, 0, vec![]),
            ]
        );
    }

    #[test]
    fn header_is_the_newc_layout() {
        let mut a = Archive::new();
        a.file("a", 0o644, b"z");
        let bytes = a.finish();
        // magic, ino 1, mode 0100644, uid, gid, nlink 1, mtime, size 1, ...
        assert!(bytes.starts_with(b"07070100000001000081a4000000000000000000000001000000000000000100000000"));
    }
}
