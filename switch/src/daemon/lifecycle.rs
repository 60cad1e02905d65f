//! `shunt up --detach` and `shunt down`: a switch started in the
//! background, and stopped from another process.

use super::cleanup::clean_stale;
use super::state::{is_zombie, log_path};
use super::UpError;
use crate::control::proto::{Pong, Request, Stopping};
use crate::control::{self, ControlError, RUN_DIR};
use std::time::{Duration, Instant};

/// `shunt up --detach`: starts the switch as a background process and
/// returns once it answers on its control socket.
pub fn up_detached(name: &str, file: Option<&str>, name_arg: Option<&str>) -> Result<u32, UpError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpError::NotRoot);
    }
    let io = |what: String| move |source| UpError::Io { what, source };
    let exe = std::env::current_exe().map_err(io("finding my own executable".into()))?;
    std::fs::create_dir_all(RUN_DIR).map_err(io(RUN_DIR.into()))?;
    let mut log =
        std::fs::File::create(log_path(name)).map_err(io(log_path(name).display().to_string()))?;
    // The log's first line, written here: a /run that is full (the file
    // can be made, not written) is said now, with the file's name, rather
    // than by a child that cannot say anything (docs/reliability.md).
    {
        use std::io::Write as _;
        if let Err(e) = writeln!(log, "shunt: log of switch {name:?} (`shunt up --detach`)")
            .and_then(|()| log.sync_data())
        {
            let _ = std::fs::remove_file(log_path(name));
            return Err(io(log_path(name).display().to_string())(e));
        }
    }
    let log2 = log.try_clone().map_err(io("log".into()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("up");
    if let Some(f) = file {
        cmd.arg(f);
    }
    if let Some(n) = name_arg {
        cmd.args(["--name", n]);
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(io("starting the switch".into()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_path(name)).unwrap_or_default();
            // Said here, so not left behind in /run/shunt.
            let _ = std::fs::remove_file(log_path(name));
            return Err(UpError::Exited {
                status,
                log: log.trim().to_string(),
            });
        }
        if let Ok(p) = control::request::<Pong>(name, &Request::Ping) {
            if p.pid == child.id() {
                return Ok(child.id());
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(UpError::NoAnswer { secs: 60 });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `shunt down`: asks a running switch to stop and waits until it has
/// removed everything; cleans up after a killed one. Says what it did.
pub fn down(name: &str) -> Result<String, UpError> {
    match control::request::<Stopping>(name, &Request::Shutdown) {
        Ok(Stopping { pid, .. }) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists() {
                // A zombie (its parent has not reaped it) has finished its work.
                if is_zombie(pid) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(UpError::DidNotStop {
                        name: name.to_string(),
                        pid,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = std::fs::remove_file(log_path(name));
            Ok(format!(
                "switch {name:?} stopped; its namespaces and devices are gone"
            ))
        }
        Err(ControlError::NotRunning { .. }) => {
            let removed = clean_stale(name)?;
            // The log of a switch that failed to come up (kept so that
            // `shunt up` could show it).
            let _ = std::fs::remove_file(log_path(name));
            if removed.is_empty() {
                Ok(format!(
                    "switch {name:?} is not running; nothing to clean up"
                ))
            } else {
                Ok(format!(
                    "switch {name:?} was not running; removed what it left: {}",
                    removed.join(", ")
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}
