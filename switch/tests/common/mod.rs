//! What the port tests share: running a command, and veth pairs with one
//! end in a namespace of the test's own, removed when dropped.

use std::process::Command;

use shunt_tools::RawPort;

/// Returns from the test, saying `skipped: <reason>`, when the test file's
/// `cannot_run()` gives a reason.
macro_rules! skip_unless_able {
    () => {
        if let Some(reason) = cannot_run() {
            println!("skipped: {reason}");
            return;
        }
    };
}

/// Runs a command to completion; its stdout, or `Err` with its stderr.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A veth pair: `a` stays in the root namespace, `b` goes into `ns`.
/// Dropping it deletes both (and the namespace), also when a test fails.
pub struct Veth {
    pub a: String,
    pub b: String,
    pub ns: String,
}

impl Veth {
    /// `{prefix}{n}a`, `{prefix}{n}b` in namespace `{prefix}{n}ns`: one
    /// `n` per test, a prefix per test file.
    pub fn new(prefix: &str, n: u32) -> Veth {
        let v = Veth {
            a: format!("{prefix}{n}a"),
            b: format!("{prefix}{n}b"),
            ns: format!("{prefix}{n}ns"),
        };
        v.cleanup();
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", &v.ns],
            vec![
                "ip", "link", "add", &v.a, "type", "veth", "peer", "name", &v.b,
            ],
            vec!["ip", "link", "set", &v.b, "netns", &v.ns],
            vec!["ip", "link", "set", &v.a, "up"],
            vec![
                "ip", "netns", "exec", &v.ns, "ip", "link", "set", &v.b, "up",
            ],
        ];
        for s in steps {
            if let Err(e) = sh(&s) {
                panic!("setting up veth {}/{}: {e}", v.a, v.b);
            }
        }
        // Less noise (IPv6 router solicitations); fine if it fails.
        let _ = sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", v.a),
        ]);
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &v.ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", v.b),
        ]);
        v
    }

    #[allow(dead_code)] // not every test file sets one
    pub fn set_mtu(&self, mtu: u32) {
        let m = mtu.to_string();
        sh(&["ip", "link", "set", &self.a, "mtu", &m]).expect("mtu a");
        sh(&[
            "ip", "netns", "exec", &self.ns, "ip", "link", "set", &self.b, "mtu", &m,
        ])
        .expect("mtu b");
    }

    pub fn cleanup(&self) {
        let _ = sh(&["ip", "link", "del", &self.a]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }

    /// The namespace side, for sending and capturing raw frames.
    pub fn peer(&self) -> RawPort {
        RawPort::open(&self.ns, &self.b).expect("raw socket in the namespace")
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        self.cleanup();
    }
}
