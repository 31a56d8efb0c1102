//! Skiff's kernel command line: space-separated `key=value` words (a bare
//! `key` means `key=`), set once at boot: from fw_cfg (`opt/skiff/cmdline`)
//! under the bootloader, from the start info under PVH (`qemu -append`).
//!
//! Known keys:
//! - `mode=run|test`: serve (the default), or run the in-kernel tests and exit.
//! - `log=LEVEL[,TARGET=LEVEL]...`: log levels (`off error warn info debug
//!   trace`, default `info`), as with `RUST_LOG`; `log=info,packet=trace`
//!   turns on the packet trace (`cargo xtask run --trace`, `net/src/trace.rs`).
//! - `ktest.inject=fail|panic|fault|hang`: make test mode misbehave on purpose,
//!   so that the harness can show it notices (see `xtask/src/qemu.rs`).

use spin::Once;

use crate::boot::CmdlineSource;
use crate::fw_cfg::FwCfg;

/// The fw_cfg file that holds the command line.
const FW_CFG_FILE: &str = "opt/skiff/cmdline";
/// Longer command lines are cut here (and the cut is logged).
pub const MAX_LEN: usize = 512;

/// The kernel command line.
pub struct Cmdline {
    buf: [u8; MAX_LEN],
    len: usize,
    /// The source was longer than `MAX_LEN` and was cut.
    pub truncated: bool,
}

static CMDLINE: Once<Cmdline> = Once::new();

impl Cmdline {
    /// Builds a command line from `text` (cut at `MAX_LEN` bytes).
    pub fn from_bytes(text: &[u8]) -> Self {
        let mut buf = [0u8; MAX_LEN];
        let len = text.len().min(MAX_LEN);
        buf[..len].copy_from_slice(&text[..len]);
        Cmdline { buf, len, truncated: text.len() > MAX_LEN }
    }

    /// The whole line, up to the first byte that is not UTF-8 (a cut can
    /// split a character).
    pub fn as_str(&self) -> &str {
        let bytes = &self.buf[..self.len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s.trim(),
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("").trim(),
        }
    }

    /// The value of the last `key=value` for `key`; `Some("")` for a bare `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.as_str().split_ascii_whitespace().rev().find_map(|word| match word.split_once('=') {
            Some((k, v)) => (k == key).then_some(v),
            None => (word == key).then_some(""),
        })
    }
}

/// Sets the command line from `source` (fw_cfg: empty if there is none). Runs
/// once; later calls return the first result.
pub fn init(source: CmdlineSource) -> &'static Cmdline {
    CMDLINE.call_once(|| match source {
        CmdlineSource::Given(line) => line,
        CmdlineSource::FwCfg => from_fw_cfg(),
    })
}

/// Reads the command line from fw_cfg (empty if there is none).
fn from_fw_cfg() -> Cmdline {
    // One byte more than we keep, to notice a line that was too long.
    let mut buf = [0u8; MAX_LEN + 1];
    let len = FwCfg::probe().and_then(|mut fw| fw.read_file(FW_CFG_FILE, &mut buf)).unwrap_or(0);
    // A `file=` item may be NUL-terminated; stop there (trailing
    // newlines are trimmed by `as_str`).
    let text = &buf[..len];
    let text = text.split(|&b| b == 0).next().unwrap_or(text);
    Cmdline::from_bytes(text)
}
