//! shunt: a userspace Ethernet switch. See docs/ and DESIGN.md.

// Tests may unwrap: a failed unwrap is a failed test. The datapath may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

/// A line on stderr that never panics. `eprintln!` panics when stderr
/// cannot be written, and the stderr of a switch started with `--detach`
/// is its log in /run/shunt: on a full /run the first log line killed the
/// switch (exit status 101; docs/reliability.md, "Faults"). A log line
/// that cannot be written is lost, the switch goes on.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

pub mod capture;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod ids;
pub mod impair;
pub mod l2;
pub mod netns;
pub mod pcapng;
pub mod pipeline;
pub mod port;
pub mod probe;
pub mod runtime;
pub mod stack;
pub mod stp;
pub mod testing;
pub mod trace;
pub mod worker;
