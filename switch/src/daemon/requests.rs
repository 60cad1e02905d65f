//! The control socket's server: one thread per connection, one request
//! each, answered from control::answers or, for attach and detach, by
//! changing the running topology.

use super::attach::{attach, detach};
use crate::control::answers;
use crate::control::proto::{self, Done, ErrorReply, Pong, Removed, Request, Stopping};
use crate::control::{send, send_list};
use crate::runtime::Runtime;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// How long a client may leave a list answer unread before the switch
/// stops writing it.
const FDB_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest request line (the largest, an attach with its host's
/// keys, is a few hundred bytes).
pub const MAX_REQUEST: usize = 64 << 10;

pub use crate::control::REQUEST_TIMEOUT;

/// Serves requests until the switch stops. `shutdown` asks the main
/// thread to tear everything down.
pub(super) fn serve(l: UnixListener, rt: Arc<Runtime>, shutdown: Sender<()>) {
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        if rt.stop.load(Relaxed) {
            break;
        }
        let rt = Arc::clone(&rt);
        let shutdown = shutdown.clone();
        // A thread that cannot be made (out of threads or memory) costs
        // this one connection, not the server.
        let spawned = std::thread::Builder::new()
            .name("shunt-ctl".into())
            .spawn(move || {
                if let Err(e) = handle(conn, &rt, &shutdown) {
                    crate::say!("shunt: control connection: {e}");
                }
            });
        if let Err(e) = spawned {
            crate::say!("shunt: control connection refused: no thread for it: {e}");
        }
    }
}

/// An error answer, in words.
fn refuse(out: &mut UnixStream, e: impl std::fmt::Display) -> std::io::Result<()> {
    send(
        out,
        &ErrorReply {
            error: e.to_string(),
        },
    )
}

fn handle(conn: UnixStream, rt: &Runtime, shutdown: &Sender<()>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut line = Vec::new();
    out.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let read = (&mut reader)
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', &mut line);
    match read {
        Ok(_) if line.len() > MAX_REQUEST => {
            refuse(
                &mut out,
                format!(
                    "a request is one JSON line of at most {MAX_REQUEST} bytes; this one is longer"
                ),
            )?;
            // Closing with the rest unread would reset the connection and
            // lose the answer: say it is the last, then read on (a bounded
            // amount, each read within the timeout) until the client goes.
            out.shutdown(std::net::Shutdown::Write)?;
            let _ = std::io::copy(&mut reader.take(64 << 20), &mut std::io::sink());
            return Ok(());
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return refuse(
                &mut out,
                format!("no request within {REQUEST_TIMEOUT:?} of connecting"),
            )
        }
        Err(e) => return Err(e),
    }
    // Answers such as a capture run long and watch the socket themselves.
    out.set_read_timeout(None)?;
    let req = match proto::decode(&line) {
        Ok(r) => r,
        Err(e) => return refuse(&mut out, e),
    };
    let done = |r: Result<String, super::AttachError>, out: &mut UnixStream| match r {
        Ok(message) => send(out, &Done { ok: true, message }),
        Err(e) => refuse(out, e),
    };
    match req {
        Request::Ping => send(
            &mut out,
            &Pong {
                ok: true,
                name: rt.name.clone(),
                pid: std::process::id(),
            },
        ),
        Request::Ports => send(&mut out, &answers::ports(rt)),
        // Written as it is encoded (100k+ entries: docs/reliability.md,
        // "Soak"); a client that stops reading for FDB_WRITE_TIMEOUT is
        // given up, and with it the table's copy.
        Request::Fdb { network } => match answers::fdb_rows(rt, network.as_deref()) {
            Ok(rows) => {
                out.set_write_timeout(Some(FDB_WRITE_TIMEOUT))?;
                send_list(&mut out, rows.iter())
            }
            Err(e) => refuse(&mut out, e),
        },
        Request::FdbDelete { network, mac } => match answers::fdb_delete(rt, &network, &mac) {
            Ok(removed) => send(&mut out, &Removed { ok: true, removed }),
            Err(e) => refuse(&mut out, e),
        },
        Request::Stats => send(&mut out, &answers::stats(rt)),
        Request::Stp => send(&mut out, &answers::stp(rt)),
        Request::Mdb { network, routers } => {
            match super::snoop::mdb_json(rt, network.as_deref(), routers) {
                Ok(v) => send(&mut out, &v),
                Err(e) => refuse(&mut out, e),
            }
        }
        Request::Dns { network } => match answers::dns(rt, network.as_deref()) {
            Ok(v) => send(&mut out, &v),
            Err(e) => refuse(&mut out, e),
        },
        Request::Trace { port, spec } => {
            match crate::capture::trace_filter(rt, port.as_deref(), &spec) {
                Ok(selected) => answers::trace(&mut out, rt, selected, spec.count, spec.seconds),
                Err(e) => refuse(&mut out, e),
            }
        }
        Request::TracePacket { packet } => match crate::probe::probe(rt, &packet) {
            Ok(report) => send(&mut out, &report),
            Err(e) => refuse(&mut out, e),
        },
        Request::Capture(spec) => match crate::capture::session(rt, &spec) {
            Ok((session, names)) => crate::capture::stream(&mut out, rt, &spec, session, names),
            Err(e) => refuse(&mut out, e),
        },
        Request::Attach { host, network } => done(attach(rt, &host, &network), &mut out),
        Request::Detach { host, network } => done(detach(rt, &host, &network), &mut out),
        Request::Impair {
            port,
            direction,
            settings,
            clear,
        } => {
            let dir = crate::impair::Direction::parse(direction.as_deref().unwrap_or("both"));
            let r = dir
                .map_err(super::impair::ImpairError::Bad)
                .and_then(|d| super::impair::apply(rt, &port, d, &settings, clear));
            match r {
                Ok(message) => send(&mut out, &Done { ok: true, message }),
                Err(e) => refuse(&mut out, e),
            }
        }
        Request::Link { port, up } => match super::link::set_by_name(
            rt,
            &port,
            crate::control::answers::resolve_ports(rt, &port),
            up,
        ) {
            Ok(message) => send(&mut out, &Done { ok: true, message }),
            Err(e) => refuse(&mut out, e),
        },
        Request::Storm(spec) => match super::storm::apply(rt, &spec) {
            Ok(message) => send(&mut out, &Done { ok: true, message }),
            Err(e) => refuse(&mut out, e),
        },
        Request::MirrorAdd(spec) => match super::mirror::add(rt, &spec) {
            Ok(message) => send(&mut out, &Done { ok: true, message }),
            Err(e) => refuse(&mut out, e),
        },
        Request::MirrorDel { name } => match super::mirror::del(rt, &name) {
            Ok(message) => send(&mut out, &Done { ok: true, message }),
            Err(e) => refuse(&mut out, e),
        },
        Request::MirrorList => send_list(&mut out, super::mirror::list(rt).iter()),
        Request::Shutdown => {
            send(
                &mut out,
                &Stopping {
                    ok: true,
                    pid: std::process::id(),
                },
            )?;
            let _ = shutdown.send(());
            Ok(())
        }
    }
}
