//! Network namespaces and the `ip` command, on the control path only.

use std::fs::File;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("cannot run `{cmd}`: {source} (is iproute2 installed?)")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("cannot enter network namespace {name:?}: {source}")]
    Enter {
        name: String,
        source: std::io::Error,
    },
}

/// Runs `ip ARGS...`, returning stdout, or an error carrying the command
/// line and what `ip` said.
pub fn ip(args: &[&str]) -> Result<String, NetnsError> {
    run("ip", args)
}

pub fn run(prog: &str, args: &[&str]) -> Result<String, NetnsError> {
    let cmd = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name]).map(|_| ())
}

pub fn del(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "del", name]).map(|_| ())
}

/// Runs `f` on a thread that has entered namespace `name`. Descriptors it
/// opens there (a TAP, a socket) stay in that namespace after it returns.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let path = Path::new("/run/netns").join(name);
    let ns = File::open(&path).map_err(|source| NetnsError::Enter {
        name: name.to_string(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                NetnsError::Enter {
                    name: name.to_string(),
                    source: std::io::Error::from(e),
                }
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Enter {
                name: name.to_string(),
                source: std::io::Error::other("thread panicked"),
            })
        })
    })
}
