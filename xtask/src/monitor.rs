//! QEMU's human monitor, on the Unix socket that `-monitor
//! unix:PATH,server=on,wait=off` opens: one command at a time, for the
//! suite (`set_link`) and the bench's diagnosis of a stalled guest.

use std::path::Path;
use std::time::Duration;

use crate::Result;

/// The monitor's prompt, printed after its banner and after every answer.
const PROMPT: &str = "(qemu)";

/// Runs one command on the QEMU human monitor listening on the Unix socket
/// `socket` (`-monitor unix:...,server=on`); returns what it printed.
pub fn run(socket: &Path, command: &str, timeout: Duration) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("QEMU monitor {}: {e}", socket.display()))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.write_all(format!("{command}\n").as_bytes()).map_err(|e| format!("QEMU monitor: {e}"))?;
    // A banner and a prompt, the echoed command, its output, a prompt.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches(PROMPT).count() < 2 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => return Err(format!("QEMU monitor, {command:?}: {e} (it had said {seen:?})")),
        }
    }
    let output = seen.split(PROMPT).nth(1).unwrap_or_default();
    // Drop the echoed command line (with its line-editing escapes).
    Ok(output.split_once('\n').map_or("", |(_, rest)| rest).replace('\r', ""))
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;
    use std::path::PathBuf;

    use super::*;

    /// A stand-in for QEMU's monitor on a Unix socket: a banner and a
    /// prompt, then the echoed command (with line-editing escapes), `answer`
    /// and a prompt. Returns the socket's path and the command it was sent.
    fn fake_monitor(name: &str, answer: &'static str) -> (PathBuf, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, Write};
        let path = std::env::temp_dir().join(format!("xtask-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ").unwrap();
            let mut command = String::new();
            BufReader::new(&stream).read_line(&mut command).unwrap();
            write!(stream, "{}\x1b[K\r\n{answer}(qemu) ", command.trim_end()).unwrap();
            command
        });
        (path, server)
    }

    #[test]
    fn a_monitor_command_returns_what_qemu_printed_for_it() {
        let (path, server) = fake_monitor("answer", "/machine/peripheral-anon/device[0]/virtio-backend\r\n");
        let output = run(&path, "info virtio", Duration::from_secs(10)).unwrap();
        assert_eq!(output, "/machine/peripheral-anon/device[0]/virtio-backend\n");
        assert_eq!(server.join().unwrap(), "info virtio\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_monitor_command_without_output_succeeds() {
        let (path, server) = fake_monitor("silent", "");
        assert_eq!(run(&path, "set_link net0 off", Duration::from_secs(10)), Ok(String::new()));
        assert_eq!(server.join().unwrap(), "set_link net0 off\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_monitor_that_is_not_there_is_an_error() {
        let missing = Path::new("/nonexistent/monitor.sock");
        assert!(run(missing, "info virtio", Duration::from_secs(1)).is_err());
    }
}
