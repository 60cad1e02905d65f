//! The control socket: a Unix stream socket, root only (mode 0600), one
//! JSON request per line, JSON answers (proto.rs). No TCP listener, ever.
//!
//! Here: where the socket is, the client side, and the answers built from
//! the running switch (answers.rs). The server's loop, which also attaches
//! and detaches hosts, is the daemon's (daemon/requests.rs): this module
//! needs nothing from the daemon.

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
    if let Ok(e) = ErrorReply::deserialize(&v) {
        return Err(ControlError::Remote(e.error));
    }
    Ok(v)
}
