//! The control socket: a Unix stream socket, root only (mode 0600), one
//! JSON request per line, JSON answers (proto.rs). No TCP listener, ever.
//!
//! Here: where the socket is, the client side, and the answers built from
//! the running switch (answers.rs). The server's loop, which also attaches
//! and detaches hosts, is the daemon's (daemon/requests.rs): this module
//! needs nothing from the daemon.

/// How long a client that connected may take to send its request (or a
/// capture's descriptor after it): one that sends nothing gives its
/// thread back then.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub mod answers;
pub mod proto;

use proto::{ErrorReply, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub const RUN_DIR: &str = "/run/shunt";

pub fn socket_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

/// The switch a command means: the one named, else $SHUNT_NAME, else
/// "shunt" if it runs, else the only switch running, else "shunt".
pub fn pick_name(given: Option<String>) -> String {
    if let Some(n) = given.or_else(|| std::env::var("SHUNT_NAME").ok()) {
        return n;
    }
    let default = crate::config::DEFAULT_NAME;
    if socket_path(default).exists() {
        return default.to_string();
    }
    let running: Vec<String> = std::fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".sock")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    match running.as_slice() {
        [only] => only.clone(),
        _ => default.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "switch {name:?} is not running (no control socket at {path}): start it with `shunt up`"
    )]
    NotRunning { name: String, path: String },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the switch answered something unreadable: connection closed")]
    Closed,
    #[error("the switch answered something unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// The switch's own words (`{"error": ...}`).
    #[error("{0}")]
    Remote(String),
}

/// Binds the control socket, readable and writable by root only.
pub fn bind(name: &str) -> Result<UnixListener, ControlError> {
    let path = socket_path(name);
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(RUN_DIR).map_err(io)?;
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(l)
}

/// Writes one message (a request or an answer) as a line.
pub fn send<T: Serialize>(out: &mut impl Write, msg: &T) -> std::io::Result<()> {
    out.write_all(proto::to_line(msg).as_bytes())
}

/// How much of a list answer [`send_list`] holds before it writes: the
/// answer's whole size in memory is never needed.
pub const LIST_CHUNK: usize = 64 * 1024;

/// Writes a list answer piecewise: the same bytes as `send(out, &list)`
/// with `list` the items collected into a `Vec` (one JSON array on one
/// line, each object with its keys sorted, as [`proto::to_line`] writes
/// them), but through a buffer of about [`LIST_CHUNK`] bytes, one item
/// encoded at a time. A whole-FDB answer of 100k+ entries was built whole
/// before (about 1 KiB an entry as a JSON value, then its text):
/// docs/reliability.md, "Soak".
///
/// An item that cannot be encoded (a map with non-string keys: none of
/// the answers has one) ends the answer with an error: what went before
/// is on the wire already, and the client sees a line cut short.
pub fn send_list<T: Serialize>(
    out: &mut impl Write,
    items: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(LIST_CHUNK + 1024);
    buf.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        // Through a value, as to_line: its objects keep their keys sorted.
        serde_json::to_value(&item)
            .and_then(|v| serde_json::to_writer(&mut buf, &v))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if buf.len() >= LIST_CHUNK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"]\n");
    out.write_all(&buf)
}

/// Client side: sends one request, returns the first answer, as `T`.
pub fn request<T: DeserializeOwned>(name: &str, req: &Request) -> Result<T, ControlError> {
    let (mut reader, _) = open(name, req)?;
    read(name, &mut reader)
}

/// Sends one request; the answers are read with [`read`] or [`read_value`].
pub fn open(
    name: &str,
    req: &Request,
) -> Result<(BufReader<UnixStream>, UnixStream), ControlError> {
    let path = socket_path(name);
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning {
                name: name.to_string(),
                path: path.display().to_string(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    s.write_all(proto::to_line(req).as_bytes()).map_err(io)?;
    let r = BufReader::new(s.try_clone().map_err(io)?);
    Ok((r, s))
}

/// The next answer as `T`; an `{"error": ...}` answer is an error.
pub fn read<T: DeserializeOwned>(
    name: &str,
    r: &mut BufReader<UnixStream>,
) -> Result<T, ControlError> {
    Ok(serde_json::from_value(read_value(name, r)?)?)
}

/// The next answer as it came; an `{"error": ...}` answer is an error.
pub fn read_value(name: &str, r: &mut BufReader<UnixStream>) -> Result<Value, ControlError> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|source| ControlError::Io {
        path: socket_path(name).display().to_string(),
        source,
    })?;
    if line.is_empty() {
        return Err(ControlError::Closed);
    }
    let v: Value = serde_json::from_str(&line)?;
    // Only an object is an error (serde would also read `["..."]` as one).
    if v.is_object() {
        if let Ok(e) = ErrorReply::deserialize(&v) {
            return Err(ControlError::Remote(e.error));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::FdbEntry;

    /// `n` entries as a whole-table answer has them: several networks,
    /// VLAN or none, static and learned, ages with and without fractions.
    fn entries(n: usize) -> Vec<FdbEntry> {
        (0..n)
            .map(|i| FdbEntry {
                network: ["lan", "dmz", "ü\"net"][i % 3].to_string(),
                vlan: (i % 3 == 1).then_some(10 + (i % 4000) as u16),
                mac: format!(
                    "02:5f:{:02x}:{:02x}:{:02x}:01",
                    i >> 16 & 0xff,
                    i >> 8 & 0xff,
                    i & 0xff
                ),
                port: if i % 7 == 0 {
                    "vxlan:192.0.2.7".into()
                } else {
                    format!("h{}.lan", i % 50)
                },
                is_static: i % 11 == 0,
                age_secs: if i % 11 == 0 {
                    0.0
                } else {
                    (i % 300_000) as f64 / 1000.0
                },
            })
            .collect()
    }

    /// A writer that keeps what it is given and the largest single write.
    #[derive(Default)]
    struct Wire {
        bytes: Vec<u8>,
        largest: usize,
        writes: usize,
    }

    impl Write for Wire {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(b.len());
            self.writes += 1;
            self.bytes.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_list_written_piecewise_is_the_whole_answer_byte_for_byte() {
        for n in [0, 1, 2, 3, 17, 600, 20_000, 130_000] {
            let list = entries(n);
            let mut wire = Wire::default();
            send_list(&mut wire, list.iter()).expect("written");
            let whole = proto::to_line(&list);
            assert!(
                wire.bytes == whole.as_bytes(),
                "{n} entries: piecewise {} bytes, whole {} bytes",
                wire.bytes.len(),
                whole.len()
            );
            // Never more than a chunk and the entry that filled it.
            assert!(
                wire.largest < LIST_CHUNK + 1024,
                "{n}: a write of {}",
                wire.largest
            );
            if whole.len() > 4 * LIST_CHUNK {
                assert!(
                    wire.writes >= whole.len() / (LIST_CHUNK + 1024),
                    "{n}: {} writes",
                    wire.writes
                );
            }
            let back: Vec<FdbEntry> = serde_json::from_slice(&wire.bytes).expect("one JSON array");
            assert_eq!(back, list);
        }
    }

    #[test]
    fn a_list_of_values_keeps_their_keys_sorted() {
        let list = vec![
            serde_json::json!({"z": 1, "a": [2, {"y": null, "b": "x"}]}),
            serde_json::json!("text\n"),
        ];
        let mut wire = Wire::default();
        send_list(&mut wire, &list).expect("written");
        assert_eq!(wire.bytes, proto::to_line(&list).into_bytes());
        assert_eq!(
            String::from_utf8(wire.bytes).expect("text"),
            "[{\"a\":[2,{\"b\":\"x\",\"y\":null}],\"z\":1},\"text\\n\"]\n"
        );
    }

    #[test]
    fn answers_read_back() {
        let (a, mut b) = UnixStream::pair().expect("a socket pair");
        b.write_all(b"{\"error\":\"no network named \\\"x\\\"\"}\n[\"x\"]\n{\"ok\"\n")
            .expect("written");
        drop(b);
        let mut r = BufReader::new(a);
        match read_value("t", &mut r) {
            Err(ControlError::Remote(m)) => assert_eq!(m, "no network named \"x\""),
            other => panic!("not the switch's error: {other:?}"),
        }
        assert_eq!(
            read_value("t", &mut r).expect("an array is an answer"),
            serde_json::json!(["x"])
        );
        assert!(matches!(
            read_value("t", &mut r),
            Err(ControlError::Unreadable(_))
        ));
        assert!(matches!(read_value("t", &mut r), Err(ControlError::Closed)));
    }
}
