//! A whole-table `fdb` answer is written piecewise while the switch goes
//! on answering (issue 17, the soak): a client that asks for an FDB
//! larger than the socket's buffer and does not read it holds up neither
//! `shunt stats` nor an attach and a detach, and when it reads at last it
//! gets the whole answer, the same as `shunt fdb --json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ensure;
use crate::harness::{run_id, Switch, TestResult, SHUNT};
use crate::l2::Test;
use shunt_switch::control::proto::FdbEntry;

pub fn tests() -> Vec<Test> {
    vec![(
        "ctl::fdb_dump_does_not_hold_up_stats",
        fdb_dump_does_not_hold_up_stats,
    )]
}

/// Static entries: about 660 KB of answer, three times a Unix socket's
/// default buffer.
const STATICS: usize = 6000;

fn static_mac(i: usize) -> String {
    format!(
        "02:5f:aa:{:02x}:{:02x}:{:02x}",
        i >> 16 & 0xff,
        i >> 8 & 0xff,
        i & 0xff
    )
}

/// One request on the control socket, its answer line as sent.
fn raw(sock: &str, req: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("{sock}: {e}"))?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{sock}: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("{sock}: {e}"))?;
    Ok(line)
}

/// `shunt ARGS --name SW`'s output. Its pipe is read while it runs (the
/// harness's run_timeout reads it at the end, which a 660 KB answer does
/// not survive: the command blocks on a full pipe); killed, our own child,
/// after 20 s.
fn cli(sw: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(SHUNT)
        .args(args)
        .args(["--name", sw])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting shunt: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break,
            Ok(Some(st)) => return Err(format!("`shunt {}`: {st}", args.join(" "))),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`shunt {}` did not finish within 20 s",
                    args.join(" ")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for shunt: {e}")),
        }
    }
    reader
        .join()
        .map_err(|_| "the reader panicked".to_string())?
        .map_err(|e| format!("reading shunt's output: {e}"))
}

/// The static entries of an `fdb` answer.
fn statics(line: &str) -> Result<Vec<FdbEntry>, String> {
    let all: Vec<FdbEntry> = serde_json::from_str(line)
        .map_err(|e| format!("not an fdb answer ({e}): {} bytes", line.len()))?;
    Ok(all.into_iter().filter(|e| e.is_static).collect())
}

fn fdb_dump_does_not_hold_up_stats() -> TestResult {
    let sw = format!("sk1{:03}", run_id());
    let names: Vec<String> = ["a", "b", "c"].iter().map(|h| format!("{sw}{h}")).collect();
    let (a, c) = (&names[0], &names[2]);
    let mut toml = format!(
        "[switch]\nname = \"{sw}\"\nworkers = 1\n\n\
         [[network]]\nname = \"lan\"\nsubnet = \"10.77.170.0/24\"\n"
    );
    for (i, h) in names[..2].iter().enumerate() {
        toml += &format!(
            "\n[[host]]\nname = \"{h}\"\nnetworks = [\"lan\"]\nip = [\"10.77.170.{}/24\"]\n",
            11 + i
        );
    }
    for i in 0..STATICS {
        toml += &format!(
            "\n[[fdb]]\nnetwork = \"lan\"\nmac = \"{}\"\nport = \"{a}.lan\"\n",
            static_mac(i)
        );
    }
    let s = Switch::up_toml(&sw, &toml, &names)?;
    let sock = format!("/run/shunt/{sw}.sock");

    // The answer as `shunt fdb --json` has it: every static entry, sorted.
    let json = cli(&sw, &["fdb", "--json"])?;
    let listed = statics(&json)?;
    ensure!(
        listed.len() == STATICS,
        "{} static entries listed of {STATICS}",
        listed.len()
    );
    for (i, e) in listed.iter().enumerate() {
        ensure!(
            e.mac == static_mac(i) && e.port == format!("{a}.lan") && e.age_secs == 0.0,
            "entry {i}: {e:?}"
        );
    }
    let all = serde_json::from_str::<Vec<FdbEntry>>(&json)
        .map_err(|e| e.to_string())?
        .len();
    let text = cli(&sw, &["fdb"])?;
    ensure!(
        text.trim_end().ends_with(&format!("{all} entries")),
        "`shunt fdb` ends {:?}, not {all} entries",
        text.lines().last()
    );
    let whole = raw(&sock, "{\"cmd\":\"fdb\"}\n")?;

    // A client that asks for the table and reads none of it: the switch
    // fills the socket's buffer and waits in a write.
    let mut stuck = UnixStream::connect(&sock).map_err(|e| format!("{sock}: {e}"))?;
    stuck
        .write_all(b"{\"cmd\":\"fdb\"}\n")
        .map_err(|e| format!("{sock}: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    raw(&sock, "{\"cmd\":\"stats\"}\n")?;
    let socket_stats = t.elapsed();
    let t = Instant::now();
    s.stats()?;
    let cli_stats = t.elapsed();
    let t = Instant::now();
    s.cmd(&["attach", c, "lan"])?;
    s.cmd(&["detach", c, "lan"])?;
    let attach_detach = t.elapsed();
    println!(
        "  fdb of {} entries ({} bytes) unread: stats {socket_stats:?} on the socket, \
         {cli_stats:?} with `shunt stats`; attach + detach {attach_detach:?}",
        all,
        whole.len()
    );
    ensure!(
        socket_stats < Duration::from_secs(1) && cli_stats < Duration::from_secs(1),
        "stats held up by an unread fdb answer: {socket_stats:?} on the socket, {cli_stats:?} with the command"
    );
    ensure!(
        attach_detach < Duration::from_secs(10),
        "attach and detach took {attach_detach:?} behind an unread fdb answer"
    );

    // Read at last, it is the whole answer.
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut late = String::new();
    BufReader::new(stuck)
        .read_line(&mut late)
        .map_err(|e| format!("reading the late answer: {e}"))?;
    ensure!(
        late.ends_with('\n'),
        "the late answer ends without a newline"
    );
    ensure!(
        statics(&late)? == statics(&whole)?,
        "the late answer's static entries differ from a fresh one's ({} and {} bytes)",
        late.len(),
        whole.len()
    );
    Ok(())
}
