//! `shunt impair` on the control path: the ports named, their new specs
//! published to the workers (who take them within a loop turn, at most
//! 100 ms).

use crate::ids::MAX_PORTS;
use crate::impair::{Direction, Settings, Spec};
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    #[error("no port or host named {0:?}")]
    NoPort(String),
    #[error("{0}")]
    Bad(String),
}

/// Sets (or with `clear`, clears) the impairment of `port` (a port, or a
/// host's ports) in `direction`. Unset knobs are off: the new spec
/// replaces the old one.
pub fn apply(
    rt: &Runtime,
    port: &str,
    direction: Direction,
    settings: &Settings,
    clear: bool,
) -> Result<String, ImpairError> {
    let ports = crate::control::answers::resolve_ports(rt, port);
    if ports.is_empty() {
        return Err(ImpairError::NoPort(port.to_string()));
    }
    let spec = if clear {
        None
    } else {
        let mut s = settings.spec().map_err(ImpairError::Bad)?;
        s.seed = Some(s.seed.unwrap_or_else(crate::impair::fresh_seed));
        (!s.is_noop()).then_some(s)
    };
    let mut said = Vec::new();
    for p in ports {
        let p = usize::from(p);
        if p >= MAX_PORTS {
            continue;
        }
        rt.impair.set(p, |x| {
            if direction.egress() {
                x.egress = spec;
            }
            if direction.ingress() {
                x.ingress = spec;
            }
        });
        let now = rt.impair.ports.load();
        said.push(format!(
            "{}: {}",
            rt.port_name(crate::ids::PortId::new(p).map_or(crate::ids::Egress::Stack, Into::into)),
            describe(&now[p].egress, &now[p].ingress)
        ));
    }
    for w in &rt.wake {
        let _ = w.write(1);
    }
    Ok(said.join("; "))
}

/// Both directions in words: `egress delay 20ms; ingress none`.
pub fn describe(egress: &Option<Spec>, ingress: &Option<Spec>) -> String {
    match (egress, ingress) {
        (None, None) => "no impairment".into(),
        (Some(e), Some(i)) if e == i => format!("both {}", e.describe()),
        _ => {
            let d = |s: &Option<Spec>| s.map_or("none".to_string(), |s| s.describe());
            format!("egress {}, ingress {}", d(egress), d(ingress))
        }
    }
}
